//! A thread-local stand-in for the host, for native unit tests.
//!
//! ```
//! use outpost_guest::{host, testing, LoadSignals};
//! testing::reset();
//! testing::set_config(&[("max_bandwidth", "3000000")]);
//! testing::set_load(LoadSignals::with_utilization(0.9));
//! assert_eq!(host::config("max_bandwidth").as_deref(), Some("3000000"));
//! host::warn("hello");
//! assert_eq!(testing::logs(), vec![(outpost_guest::LogLevel::Warn, "hello".to_string())]);
//! ```
//!
//! Each test thread has its own mock, so tests running in parallel do not see
//! each other's config. Call [`reset`] (or [`set_config`], which replaces the
//! whole table) at the start of a test.

use crate::types::{LoadSignals, LogLevel};
use std::cell::RefCell;
use std::collections::BTreeMap;

#[derive(Default)]
struct State {
    config: BTreeMap<String, String>,
    load: LoadSignals,
    unix_time: Option<u64>,
    now_ns: Option<u64>,
    logs: Vec<(LogLevel, String)>,
    shared: BTreeMap<String, String>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

/// Forget all config, load, clocks and logs of this thread.
pub fn reset() {
    STATE.with(|s| *s.borrow_mut() = State::default());
}

/// Replace this thread's config table.
pub fn set_config(pairs: &[(&str, &str)]) {
    STATE.with(|s| {
        s.borrow_mut().config = pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
    });
}

/// Set the load signals [`crate::host::load`] returns.
pub fn set_load(load: LoadSignals) {
    STATE.with(|s| s.borrow_mut().load = load);
}

/// Pin the wall clock [`crate::host::unix_time`] returns.
pub fn set_unix_time(secs: u64) {
    STATE.with(|s| s.borrow_mut().unix_time = Some(secs));
}

/// Pin the monotonic clock [`crate::host::now_ns`] returns.
pub fn set_now_ns(ns: u64) {
    STATE.with(|s| s.borrow_mut().now_ns = Some(ns));
}

/// The guest's shared store as [`crate::host::shared_get`] sees it.
pub fn shared() -> BTreeMap<String, String> {
    STATE.with(|s| s.borrow().shared.clone())
}

/// The lines logged on this thread so far.
pub fn logs() -> Vec<(LogLevel, String)> {
    STATE.with(|s| s.borrow().logs.clone())
}

/// The lines logged on this thread so far, clearing them.
pub fn take_logs() -> Vec<(LogLevel, String)> {
    STATE.with(|s| std::mem::take(&mut s.borrow_mut().logs))
}

/// The implementation behind [`crate::host`] off the component target.
#[cfg(not(target_os = "wasi"))]
pub(crate) mod mock {
    use super::STATE;
    use crate::types::{LoadSignals, LogLevel};

    pub fn config(key: &str) -> Option<String> {
        STATE.with(|s| s.borrow().config.get(key).cloned())
    }
    pub fn config_all() -> Vec<(String, String)> {
        STATE.with(|s| {
            s.borrow()
                .config
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
    }
    pub fn load() -> LoadSignals {
        STATE.with(|s| s.borrow().load.clone())
    }
    pub fn now_ns() -> u64 {
        STATE.with(|s| s.borrow().now_ns).unwrap_or_else(|| {
            use std::sync::OnceLock;
            use std::time::Instant;
            static START: OnceLock<Instant> = OnceLock::new();
            let nanos = START.get_or_init(Instant::now).elapsed().as_nanos();
            u64::try_from(nanos).unwrap_or(u64::MAX)
        })
    }
    pub fn unix_time() -> u64 {
        STATE.with(|s| s.borrow().unix_time).unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        })
    }
    pub fn log(level: LogLevel, message: &str) {
        STATE.with(|s| s.borrow_mut().logs.push((level, message.to_string())));
    }
    pub fn shared_get(key: &str) -> Option<String> {
        STATE.with(|s| s.borrow().shared.get(key).cloned())
    }
    /// A write past the store's bounds is dropped, as on the node
    /// (`outpost_common::store`).
    pub fn shared_set(key: &str, value: &str) {
        STATE.with(|s| {
            let mut s = s.borrow_mut();
            let fits = outpost_common::store::check_write(
                key,
                value,
                s.shared.len(),
                s.shared.contains_key(key),
            );
            if fits.is_ok() {
                s.shared.insert(key.to_string(), value.to_string());
            }
        });
    }
}
