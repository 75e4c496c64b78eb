//! The guests the node's binary carries (`wasm = "builtin:NAME"`): the one list the
//! config validates against and the node's build script builds and embeds (it
//! includes this file).

/// Crate names of the shipped guests in `guests/`.
pub const BUILTIN_GUESTS: [&str; 3] = ["rewrite", "rendition", "shed"];
