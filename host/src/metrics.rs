//! Counters and their Prometheus text rendering, for the admin API's `/metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::GuestError;

/// Counters of one guest.
#[derive(Debug, Default)]
pub struct GuestMetrics {
    /// Invocations, successful or not.
    pub invocations: AtomicU64,
    /// Traps.
    pub traps: AtomicU64,
    /// Deadline interruptions.
    pub deadlines: AtomicU64,
    /// Memory cap hits.
    pub memory: AtomicU64,
    /// Invalid results and load failures.
    pub invalid: AtomicU64,
    /// Failures skipped under fail mode `open`.
    pub skipped: AtomicU64,
    /// Failures answered with 503 under fail mode `closed`.
    pub closed: AtomicU64,
}

impl GuestMetrics {
    pub(crate) fn record_invocation(&self) {
        self.invocations.fetch_add(1, Ordering::Relaxed);
    }

    /// Count a failure by kind.
    pub fn record_failure(&self, e: &GuestError) {
        let c = match e {
            GuestError::Trap { .. } => &self.traps,
            GuestError::Deadline { .. } => &self.deadlines,
            GuestError::Memory { .. } => &self.memory,
            GuestError::Load { .. } | GuestError::Invalid { .. } => &self.invalid,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Counters of one route.
#[derive(Debug, Default)]
pub struct RouteMetrics {
    /// Responses by status class: 1xx..5xx.
    pub responses: [AtomicU64; 5],
    /// Answered at the edge by a guest (redirects, rejections ...).
    pub edge_answers: AtomicU64,
    /// Bodies transformed by a response guest.
    pub transformed: AtomicU64,
}

impl RouteMetrics {
    /// Count a response status.
    pub fn record_status(&self, status: u16) {
        let i = usize::from(status / 100).clamp(1, 5) - 1;
        self.responses[i].fetch_add(1, Ordering::Relaxed);
    }
}

/// Node-wide counters.
#[derive(Debug, Default)]
pub struct NodeMetrics {
    /// Requests that matched no route.
    pub unrouted: AtomicU64,
    /// Errors by source: client, origin, limiter, guest.
    pub errors_client: AtomicU64,
    /// Origin failures (502/504).
    pub errors_origin: AtomicU64,
    /// Requests shed.
    pub errors_limiter: AtomicU64,
    /// Guest failures answered 503.
    pub errors_guest: AtomicU64,
    /// Connections accepted.
    pub connections: AtomicU64,
}

impl NodeMetrics {
    /// Count an error by the source label of [`crate::error::EdgeError::source_label`].
    pub fn record_error(&self, source: &str) {
        let c = match source {
            "client" => &self.errors_client,
            "origin" => &self.errors_origin,
            "limiter" => &self.errors_limiter,
            _ => &self.errors_guest,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Writes Prometheus text exposition.
#[derive(Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// Declare a metric family.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// One sample.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let v = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.out, "{k}=\"{v}\"");
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// The text.
    pub fn finish(self) -> String {
        self.out
    }
}

/// Read a counter.
pub fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}
