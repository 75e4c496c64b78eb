//! What the host offers a guest: configuration, load signals, clocks and logging.
//!
//! On the component target (`wasm32-wasip2`, `target_os = "wasi"`) these call the
//! `outpost:edge/host` imports. Everywhere else (native tests, and a browser build
//! on `wasm32-unknown-unknown`, which has no component imports) they read the
//! thread-local mock that [`crate::testing`] sets, so guests unit-test natively
//! with plain `cargo test`.

use crate::types::{LoadSignals, LogLevel};
use std::str::FromStr;

#[cfg(target_os = "wasi")]
mod imp {
    use crate::types::{LoadSignals, LogLevel};
    use crate::wit::host as h;

    pub fn config(key: &str) -> Option<String> {
        h::config_get(key)
    }
    pub fn config_all() -> Vec<(String, String)> {
        h::config_all()
    }
    pub fn load() -> LoadSignals {
        h::load().into()
    }
    pub fn now_ns() -> u64 {
        h::now_ns()
    }
    pub fn unix_time() -> u64 {
        h::unix_time()
    }
    pub fn log(level: LogLevel, message: &str) {
        h::log(level.into(), message)
    }
    pub fn shared_get(key: &str) -> Option<String> {
        h::shared_get(key)
    }
    pub fn shared_set(key: &str, value: &str) {
        h::shared_set(key, value)
    }
}

#[cfg(not(target_os = "wasi"))]
use crate::testing::mock as imp;

/// A value of this guest's shared store (kept by the node per guest, seen by
/// every instance on the node, emptied by a reload), or `None`.
pub fn shared_get(key: &str) -> Option<String> {
    imp::shared_get(key)
}

/// Set a value in this guest's shared store. The host bounds the store (1,024
/// keys, 128-byte keys, 1,024-byte values); a write past a bound is dropped.
pub fn shared_set(key: &str, value: &str) {
    imp::shared_set(key, value)
}

/// This guest's configuration value `key`, or `None`.
pub fn config(key: &str) -> Option<String> {
    imp::config(key)
}

/// Every configuration value of this guest, sorted by key.
pub fn config_all() -> Vec<(String, String)> {
    imp::config_all()
}

/// The load signals of the origin this request is routed to.
pub fn load() -> LoadSignals {
    imp::load()
}

/// A monotonic clock in nanoseconds, for measuring intervals only.
pub fn now_ns() -> u64 {
    imp::now_ns()
}

/// Wall-clock time, seconds since the Unix epoch.
pub fn unix_time() -> u64 {
    imp::unix_time()
}

/// Write a line to the node's log, tagged with the guest's name.
pub fn log(level: LogLevel, message: &str) {
    imp::log(level, message)
}

/// [`log`] at `trace`.
pub fn trace(message: &str) {
    log(LogLevel::Trace, message)
}

/// [`log`] at `debug`.
pub fn debug(message: &str) {
    log(LogLevel::Debug, message)
}

/// [`log`] at `info`.
pub fn info(message: &str) {
    log(LogLevel::Info, message)
}

/// [`log`] at `warn`.
pub fn warn(message: &str) {
    log(LogLevel::Warn, message)
}

/// [`log`] at `error`.
pub fn error(message: &str) {
    log(LogLevel::Error, message)
}

/// Config value `key` parsed as `T`. A value that does not parse is logged as a
/// warning and treated as absent, so a typo in the operator's TOML degrades to
/// the default instead of failing requests.
pub fn config_parse<T: FromStr>(key: &str) -> Option<T> {
    let raw = config(key)?;
    match raw.trim().parse::<T>() {
        Ok(v) => Some(v),
        Err(_) => {
            warn(&format!(
                "config `{key}`: cannot parse {raw:?} as {}; using the default",
                std::any::type_name::<T>()
            ));
            None
        }
    }
}

/// Config value `key` as a boolean (`true`/`false`, `1`/`0`, `yes`/`no`,
/// `on`/`off`, any case); absent or unparsable (logged) → `default`.
pub fn config_bool(key: &str, default: bool) -> bool {
    let Some(raw) = config(key) else {
        return default;
    };
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => true,
        "false" | "0" | "no" | "off" => false,
        _ => {
            warn(&format!(
                "config `{key}`: {raw:?} is not a boolean; using {default}"
            ));
            default
        }
    }
}

/// Config value `key` as a comma-separated list (items trimmed, empties
/// dropped), or `None` when absent.
pub fn config_list(key: &str) -> Option<Vec<String>> {
    config(key).map(|v| crate::url::split_list(&v))
}

/// Config value `key` as a list of lines: a TOML array in the operator's config
/// arrives one item per line, so item `i` here is item `i` of the array (the index
/// a [`crate::ConfigProblem::item`] names). Items are trimmed; `None` when absent.
pub fn config_lines(key: &str) -> Option<Vec<String>> {
    config(key).map(|v| v.lines().map(|l| l.trim().to_string()).collect())
}

/// Run `f` with the configuration `parse` builds, parsed **once per instance**: an
/// instance's configuration never changes (a reload starts new instances), so a
/// guest that parses rules or tables keeps them in `cell` for every later call on
/// the same instance (with `instance_reuse`, or a pre-initialised instance). Off
/// the component target (native tests and the browser build, where the mock config
/// changes between calls) it parses every time.
///
/// ```ignore
/// static CONFIG: std::sync::OnceLock<Config> = std::sync::OnceLock::new();
/// host::with_config(&CONFIG, Config::from_host, |c| decide(req, c))
/// ```
pub fn with_config<T, R>(
    cell: &'static std::sync::OnceLock<T>,
    parse: impl FnOnce() -> T,
    f: impl FnOnce(&T) -> R,
) -> R {
    #[cfg(target_os = "wasi")]
    {
        f(cell.get_or_init(parse))
    }
    #[cfg(not(target_os = "wasi"))]
    {
        let _ = cell;
        f(&parse())
    }
}
