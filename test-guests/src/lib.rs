//! The guest workspace's test fixtures, built for `wasm32-wasip2` by this crate's
//! build script (dev-only: the production node's build does not build them), with
//! a constant holding each component's path: `TRAP`, `SPIN`, `HOG`, ...
//!
//! ```ignore
//! let wasm = std::fs::read(outpost_test_guests::TRAP)?;
//! ```

include!(concat!(env!("OUT_DIR"), "/guests.rs"));

/// The component of the guest crate `name` (`-` or `_`), fixture or shipped.
pub fn path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(DIR).join(format!("{}.wasm", name.replace('-', "_")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_fixture_is_built() {
        for name in super::FIXTURES {
            let p = super::path(name);
            assert!(p.exists(), "{}", p.display());
        }
        assert!(std::path::Path::new(super::TRAP).exists());
    }
}
