//! The host functions every guest imports (`outpost:edge/host`). None of them can
//! fail or panic on guest input.

use super::GuestState;
use super::bindings::host::{self, LoadSignals, LogLevel};

impl host::Host for GuestState {
    fn log(&mut self, level: LogLevel, message: String) {
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
