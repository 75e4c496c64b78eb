//! The contract with the guests: the one `bindgen!` over `wit/` ([`bindings`]), the
//! conversions between `http` types and WIT types ([`convert`]) and the rules for
//! applying what a guest returns ([`edit`]). Below the runtime and the proxy: it
//! knows neither.

pub mod bindings;
pub mod convert;
pub mod edit;

pub use bindings::types;

/// The WIT package this node speaks (`wit/outpost.wit`'s `package` line).
pub const PACKAGE: &str = "outpost:edge";

/// Its version: a guest built against another one is refused at load, naming both.
pub const VERSION: &str = "0.1.0";

/// The contract version a guest's import or export name (`outpost:edge/x@V`) was
/// built against, if it is one of the contract's.
pub fn version_of(name: &str) -> Option<&str> {
    let rest = name.strip_prefix(PACKAGE)?.strip_prefix('/')?;
    Some(rest.split_once('@')?.1)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_version_is_the_wit_packages() {
        let wit = include_str!("../../../wit/outpost.wit");
        let line = format!("package {}@{};", super::PACKAGE, super::VERSION);
        assert!(
            wit.lines().any(|l| l.trim() == line),
            "wit/outpost.wit: expected `{line}`"
        );
        assert_eq!(
            super::version_of("outpost:edge/request-hook@0.2.0"),
            Some("0.2.0")
        );
        assert_eq!(super::version_of("wasi:io/streams@0.2.0"), None);
    }
}
