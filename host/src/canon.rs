//! The one normalised view of a request's target (`outpost_common::canon`): in the
//! dependency-free crate so the console's playground, which runs the guests in a
//! browser, refuses and normalises exactly as the node does.

pub use outpost_common::canon::*;
