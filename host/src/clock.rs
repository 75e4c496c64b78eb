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

    /// Set a virtual clock to exactly `unix_ns`, back or forth: for a thread that
    /// runs requests ahead of a replay in any order, reading what the replay's
    /// clock will read then.
    pub fn put(&self, unix_ns: u64) {
        if let Some(t) = &self.0 {
            t.store(unix_ns, Ordering::Relaxed);
        }
    }

    /// Monotonic nanoseconds: for intervals only.
    pub fn monotonic_ns(&self) -> u64 {
        match &self.0 {
            Some(t) => t.load(Ordering::Relaxed),
            None => monotonic_ns(),
        }
    }

    /// The wall-clock time (virtual: the time it reads).
    pub fn system_time(&self) -> std::time::SystemTime {
        match &self.0 {
            Some(t) => {
                std::time::UNIX_EPOCH + std::time::Duration::from_nanos(t.load(Ordering::Relaxed))
            }
            None => std::time::SystemTime::now(),
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

/// How late this node's runtime runs a task that is ready: the time from a task
/// yielding to its running again, smoothed. When the node is short of CPU, an answer
/// from the origin waits this long before it is read; the limiter leaves it out of
/// the origin's latency. Zero until [`Lag::spawn_probe`] runs (and in replays).
#[derive(Clone, Default, Debug)]
pub struct Lag(Arc<AtomicU64>);

/// How often the probe measures.
const LAG_PROBE_EVERY: std::time::Duration = std::time::Duration::from_millis(5);

impl Lag {
    /// The current estimate, ns.
    pub fn ns(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Measure on the current tokio runtime until every clone of this `Lag` is gone.
    ///
    /// Every few milliseconds the probe sends itself a byte over a local socket pair
    /// and waits for it the way an origin connection waits for its answer: the time
    /// until it runs again is how late this runtime handles an answer that has
    /// arrived (the I/O driver's next poll, then the wait behind every ready task).
    pub fn spawn_probe(&self) {
        let weak = Arc::downgrade(&self.0);
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let Ok((mut tx, mut rx)) = tokio::net::UnixStream::pair() else {
                return;
            };
            let mut smoothed = 0.0f64;
            let mut byte = [0u8; 1];
            loop {
                tokio::time::sleep(LAG_PROBE_EVERY).await;
                let t = Instant::now();
                if tx.write_all(b"x").await.is_err() || rx.read(&mut byte).await.is_err() {
                    return;
                }
                let sample = t.elapsed().as_nanos() as f64;
                // Drain to "would block", so that the next wait is a real one (a
                // readiness left set would let the next read return at once).
                loop {
                    match rx.try_read(&mut byte) {
                        Ok(0) => return,
                        Ok(_) => continue,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(_) => return,
                    }
                }
                // At once to rise (a saturated moment delays the answers read in it),
                // slowly to fall.
                if sample > smoothed {
                    smoothed = sample;
                } else {
                    smoothed += (sample - smoothed) * 0.1;
                }
                match weak.upgrade() {
                    Some(lag) => lag.store(smoothed as u64, Ordering::Relaxed),
                    None => return,
                }
            }
        });
    }
}
