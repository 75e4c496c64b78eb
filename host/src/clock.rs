//! The node's monotonic clock, shared by guests and the limiter.

use std::sync::OnceLock;
use std::time::Instant;

fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// Nanoseconds since the node's clock started; only intervals mean anything.
pub fn monotonic_ns() -> u64 {
    origin().elapsed().as_nanos() as u64
}
