//! `edge_config::Config::from_source` on arbitrary UTF-8: errors are fine, panics
//! are not. Every diagnostic must be printable and point inside the text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let source = edge_config::Source {
        name: "fuzz.toml".to_string(),
        base_dir: std::path::PathBuf::from("/nonexistent-fuzz-base"),
        text: text.to_string(),
    };
    match edge_config::Config::from_source(source) {
        Ok(config) => {
            // A valid config re-validates cleanly and its paths resolve.
            assert!(config.validate().is_empty(), "validate() not idempotent");
            for guest in config.guests.values() {
                let _ = config.guest_source(guest);
            }
        }
        Err(e) => {
            assert!(!e.diagnostics.is_empty(), "an error without diagnostics");
            let lines = text.matches('\n').count() + 1;
            for d in &e.diagnostics {
                assert!(
                    d.line >= 1 && d.line <= lines,
                    "diagnostic line {} of {lines}: {d}",
                    d.line
                );
                assert!(d.column >= 1, "diagnostic column 0: {d}");
            }
            let _ = e.to_string();
        }
    }
});
