//! The host functions every guest imports (`outpost:edge/host`). None of them can
//! fail or panic on guest input.

use super::GuestState;
use crate::contract::bindings::host::{self, LoadSignals, LogLevel};

/// Log lines one guest instance may write (a fresh instance serves one request).
pub const MAX_LOG_LINES: u32 = 64;

impl host::Host for GuestState {
    fn log(&mut self, level: LogLevel, message: String) {
        // Nor with many lines: past the cap an instance's lines are dropped, and
        // that is said once.
        self.logged = self.logged.saturating_add(1);
        if self.logged > MAX_LOG_LINES {
            if self.logged == MAX_LOG_LINES + 1 {
                tracing::warn!(
                    guest = &*self.guest,
                    "guest wrote more than {MAX_LOG_LINES} log lines in one instance; dropping the rest"
                );
            }
            return;
        }
        // A guest cannot flood the log with one giant line.
        let message: &str = match message.char_indices().nth(2048) {
            Some((i, _)) => &message[..i],
            None => &message,
        };
        let guest = &*self.guest;
        match level {
            LogLevel::Trace => tracing::trace!(guest, "{message}"),
            LogLevel::Debug => tracing::debug!(guest, "{message}"),
            LogLevel::Info => tracing::info!(guest, "{message}"),
            LogLevel::Warn => tracing::warn!(guest, "{message}"),
            LogLevel::Error => tracing::error!(guest, "{message}"),
        }
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
        LoadSignals {
            in_flight: s.in_flight,
            limit: s.limit,
            queued: s.queued,
            queue_delay_us: s.queue_delay_us,
            shed_rate: s.shed_rate,
            shed_rate_by_class: s.shed_rate_by_class.to_vec(),
            origin_latency_us: s.origin_latency_us,
            origin_min_latency_us: s.origin_min_latency_us,
            utilization: s.utilization,
        }
    }

    fn shared_get(&mut self, key: String) -> Option<String> {
        self.shared.get(&key)
    }

    fn shared_set(&mut self, key: String, value: String) {
        if let Err(why) = self.shared.set(key, value) {
            tracing::warn!(guest = &*self.guest, "shared-set dropped: {why}");
        }
    }

    fn now_ns(&mut self) -> u64 {
        self.clock.monotonic_ns()
    }

    fn unix_time(&mut self) -> u64 {
        self.clock.unix_secs()
    }
}
