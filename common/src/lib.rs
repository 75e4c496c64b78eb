//! What both sides of the contract must agree on, in one place: the node (`host/`),
//! its configuration (`edge-config/`) and the guest SDK (`guests/sdk`, built for
//! `wasm32-wasip2`) all use this crate, so they cannot drift apart.
//!
//! - [`class`]: the priority classes' names and order;
//! - [`Cidr`]: IP networks, one rule for host bits and IPv4-mapped addresses;
//! - [`store`]: the bounds of a guest's shared store, and the check a write passes;
//! - [`builtin`]: the guests the node's binary carries;
//! - [`cache`]: the fields a guest steers the edge cache with;
//! - [`canon`]: the one normalised form of a request's target (the node routes and
//!   guards on it; the console's playground shows guests the same).
//!
//! No dependencies: std only.

pub mod builtin;
pub mod cache;
pub mod canon;
pub mod cidr;
pub mod class;
pub mod store;

pub use cidr::Cidr;
