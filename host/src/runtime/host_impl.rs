//! The host functions every guest imports (`outpost:edge/host`). None of them can
//! fail or panic on guest input.

use super::GuestState;
use super::speculate::{Asked, MAX_ASKED};
use crate::contract::bindings::host::{self, LoadSignals, LogLevel};

/// Log lines one guest instance may write (a fresh instance serves one request).
pub const MAX_LOG_LINES: u32 = 64;

impl GuestState {
    /// Ahead of a replay: note a question and its answer (past
    /// `speculate::MAX_ASKED`, the trace is spoilt and will not be kept).
    fn ask(&mut self, a: Asked) {
        if let Some(asked) = &mut self.asked {
            if asked.len() < MAX_ASKED {
                asked.push(a);
            } else {
                self.asked_too_much = true;
            }
        }
    }
}

impl host::Host for GuestState {
    fn log(&mut self, level: LogLevel, message: String) {
        if self.asked.is_some() {
            // Kept as the node would write it.
            self.ask(Asked::Log(level, clipped(&message).to_string()));
            return;
        }
        log_line(&self.guest, &mut self.logged, level, &message);
    }

    fn config_get(&mut self, key: String) -> Option<String> {
        self.config.get(&key).cloned()
    }

    fn config_all(&mut self) -> Vec<(String, String)> {
        self.config
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn load(&mut self) -> LoadSignals {
        let s = self.load.signals();
        let signals = LoadSignals {
            in_flight: s.in_flight,
            limit: s.limit,
            queued: s.queued,
            queue_delay_us: s.queue_delay_us,
            shed_rate: s.shed_rate,
            shed_rate_by_class: s.shed_rate_by_class.to_vec(),
            origin_latency_us: s.origin_latency_us,
            origin_min_latency_us: s.origin_min_latency_us,
            utilization: s.utilization,
        };
        // Only ahead of a replay: a live call clones nothing.
        if self.asked.is_some() {
            self.ask(Asked::Load(s));
        }
        signals
    }

    fn shared_get(&mut self, key: String) -> Option<String> {
        if let Some(v) = self.overlay.as_ref().and_then(|o| o.get(&key)) {
            return Some(v.clone());
        }
        let v = self.shared.get(&key);
        if self.asked.is_some() {
            self.ask(Asked::Get(key, v.clone()));
        }
        v
    }

    fn shared_set(&mut self, key: String, value: String) {
        // Ahead of its turn a call changes nothing: its trace is not taken.
        if self.asked.is_some() {
            self.ask(Asked::Set);
            return;
        }
        if let Some(o) = &mut self.overlay {
            // A shadow run's write: seen by its own instance only, bounded as the
            // live store would bound it.
            match self.shared.check_over(o, &key, &value) {
                Ok(()) => drop(o.insert(key, value)),
                Err(why) => {
                    tracing::debug!(guest = &*self.guest, "shadow shared-set dropped: {why}")
                }
            }
            return;
        }
        if let Err(why) = self.shared.set(key, value) {
            tracing::warn!(guest = &*self.guest, "shared-set dropped: {why}");
        }
    }

    fn now_ns(&mut self) -> u64 {
        let t = self.clock.monotonic_ns();
        self.ask(Asked::Now(t));
        t
    }

    fn unix_time(&mut self) -> u64 {
        let t = self.clock.unix_secs();
        self.ask(Asked::Unix(t));
        t
    }
}

/// Write a guest's log line under the per-instance cap (`logged` counts the lines
/// of one instance).
pub(super) fn log_line(guest: &str, logged: &mut u32, level: LogLevel, message: &str) {
    // Nor with many lines: past the cap an instance's lines are dropped, and that
    // is said once.
    *logged = logged.saturating_add(1);
    if *logged > MAX_LOG_LINES {
        if *logged == MAX_LOG_LINES + 1 {
            tracing::warn!(
                guest,
                "guest wrote more than {MAX_LOG_LINES} log lines in one instance; dropping the rest"
            );
        }
        return;
    }
    let message = clipped(message);
    match level {
        LogLevel::Trace => tracing::trace!(guest, "{message}"),
        LogLevel::Debug => tracing::debug!(guest, "{message}"),
        LogLevel::Info => tracing::info!(guest, "{message}"),
        LogLevel::Warn => tracing::warn!(guest, "{message}"),
        LogLevel::Error => tracing::error!(guest, "{message}"),
    }
}

/// A log line as the node writes it: at most 2,048 characters (a guest cannot
/// flood the log with one giant line).
fn clipped(message: &str) -> &str {
    match message.char_indices().nth(2048) {
        Some((i, _)) => &message[..i],
        None => message,
    }
}
