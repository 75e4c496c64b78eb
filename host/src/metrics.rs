//! Counters and their Prometheus text rendering, for the admin API's `/metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::GuestError;

/// Upper bounds of the latency histograms' buckets, seconds.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 1.0,
];

/// A latency histogram with fixed buckets (Prometheus style), lock-free.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl Histogram {
    /// Record one observation.
    pub fn observe(&self, d: std::time::Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(
            d.as_nanos().min(u128::from(u64::MAX)) as u64,
            Ordering::Relaxed,
        );
    }

    /// Write it as a Prometheus histogram (cumulative buckets, `_sum`, `_count`).
    pub fn expose(&self, x: &mut Exposition, name: &str, labels: &[(&str, &str)]) {
        let mut cumulative = 0;
        let bucket = format!("{name}_bucket");
        for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
            cumulative += get(&self.buckets[i]);
            let le = le.to_string();
            let mut l = labels.to_vec();
            l.push(("le", &le));
            x.sample(&bucket, &l, cumulative);
        }
        let count = get(&self.count);
        let mut l = labels.to_vec();
        l.push(("le", "+Inf"));
        x.sample(&bucket, &l, count);
        x.sample(
            &format!("{name}_sum"),
            labels,
            get(&self.sum_ns) as f64 / 1e9,
        );
        x.sample(&format!("{name}_count"), labels, count);
    }
}

/// Counters of one guest.
#[derive(Debug, Default)]
pub struct GuestMetrics {
    /// Time per invocation: instantiate, call, tear down.
    pub duration: Histogram,
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
    /// Time from the request to the response head.
    pub duration: Histogram,
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
    /// Connections closed at accept: a connection cap was reached.
    pub connections_refused: AtomicU64,
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
