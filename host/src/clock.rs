//! The node's clock, shared by guests and the limiter: real time, or a virtual
//! clock the replay harness moves, so a replay gives the same decisions every run.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// Nanoseconds since the process's clock started; only intervals mean anything.
pub fn monotonic_ns() -> u64 {
    origin().elapsed().as_nanos() as u64
}

/// A node's clock. The default is real time; [`Clock::virtual_at`] makes one that
/// only moves when told to.
#[derive(Clone, Default, Debug)]
pub struct Clock(Option<Arc<AtomicU64>>);

impl Clock {
    /// A virtual clock reading `unix_ns` (nanoseconds since the Unix epoch).
    pub fn virtual_at(unix_ns: u64) -> Clock {
        Clock(Some(Arc::new(AtomicU64::new(unix_ns))))
    }

    /// Whether this clock is virtual.
    pub fn is_virtual(&self) -> bool {
        self.0.is_some()
    }

    /// Move a virtual clock to `unix_ns` (never backwards); no effect on real time.
    pub fn set(&self, unix_ns: u64) {
        if let Some(t) = &self.0 {
            t.fetch_max(unix_ns, Ordering::Relaxed);
        }
    }

    /// Monotonic nanoseconds: for intervals only.
    pub fn monotonic_ns(&self) -> u64 {
        match &self.0 {
            Some(t) => t.load(Ordering::Relaxed),
            None => monotonic_ns(),
        }
    }

    /// Seconds since the Unix epoch.
    pub fn unix_secs(&self) -> u64 {
        match &self.0 {
            Some(t) => t.load(Ordering::Relaxed) / 1_000_000_000,
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        }
    }
}
