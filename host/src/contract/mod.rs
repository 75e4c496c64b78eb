//! The contract with the guests: the one `bindgen!` over `wit/` ([`bindings`]), the
//! conversions between `http` types and WIT types ([`convert`]) and the rules for
//! applying what a guest returns ([`edit`]). Below the runtime and the proxy: it
//! knows neither.

pub mod bindings;
pub mod convert;
pub mod edit;

pub use bindings::types;
