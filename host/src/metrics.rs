//! The metrics layer: the process's one `prometheus-client` registry, the lock-free
//! latency histogram the request path observes into, and the text the admin API
//! serves.
//!
//! Each module that counts something declares its families and registers them
//! itself (`register(&mut Registry) -> Families`); the node hands out handles (a
//! `Counter` is a shared atomic) when it is built. Registry and families belong to
//! the process, not to a node, so a reload keeps every counter counting.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

pub use prometheus_client::encoding::EncodeLabelSet;
pub use prometheus_client::metrics::counter::Counter;
pub use prometheus_client::metrics::family::Family;
pub use prometheus_client::metrics::gauge::Gauge;
pub use prometheus_client::registry::Registry;

/// Upper bounds of the latency histograms' buckets, seconds.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 1.0,
];

/// A latency histogram with fixed buckets, lock-free (one relaxed add per
/// observation; `prometheus-client`'s own histogram takes a lock). Clones share
/// their counts.
#[derive(Debug, Clone, Default)]
pub struct Histogram(Arc<HistogramCounts>);

#[derive(Debug, Default)]
struct HistogramCounts {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl Histogram {
    /// Record one observation.
    pub fn observe(&self, d: std::time::Duration) {
        let c = &self.0;
        let secs = d.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            c.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        c.count.fetch_add(1, Ordering::Relaxed);
        c.sum_ns.fetch_add(
            d.as_nanos().min(u128::from(u64::MAX)) as u64,
            Ordering::Relaxed,
        );
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.0.count.load(Ordering::Relaxed)
    }
}

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let c = &self.0;
        let buckets: Vec<(f64, u64)> = LATENCY_BUCKETS
            .iter()
            .zip(&c.buckets)
            .map(|(le, n)| (*le, n.load(Ordering::Relaxed)))
            .collect();
        let sum = c.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, self.count(), &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// Media types of the two text formats `/metrics` serves.
pub mod content_type {
    /// Prometheus text 0.0.4, the default.
    pub const PROMETHEUS: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
    /// OpenMetrics 1.0.0, for a scraper that asks for it.
    pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
}

/// The registry as text: OpenMetrics when `openmetrics`, else the Prometheus text
/// format (what `promtool check metrics` and older scrapers read).
pub fn encode(registry: &Registry, openmetrics: bool) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; an encoder error would be a bug in a metric.
    let r = if openmetrics {
        prometheus_client::encoding::text::encode(&mut out, registry)
    } else {
        prometheus_client::encoding::prometheus_text::encode(&mut out, registry)
    };
    if let Err(e) = r {
        tracing::error!("encoding metrics: {e}");
    }
    out
}

/// Whether an `Accept` header asks for OpenMetrics.
pub fn wants_openmetrics(accept: Option<&[u8]>) -> bool {
    accept.is_some_and(|a| {
        a.windows(b"application/openmetrics-text".len())
            .any(|w| w.eq_ignore_ascii_case(b"application/openmetrics-text"))
    })
}

/// A family whose one label is a name (`route`, `guest`, `origin`, `source`).
pub type ByName = Family<Vec<(&'static str, String)>, Counter>;

/// The label set `[(key, value)]`.
pub fn label(key: &'static str, value: &str) -> Vec<(&'static str, String)> {
    vec![(key, value.to_string())]
}

/// The label set `[(k1, v1), (k2, v2)]`.
pub fn labels2(
    k1: &'static str,
    v1: &str,
    k2: &'static str,
    v2: &str,
) -> Vec<(&'static str, String)> {
    vec![(k1, v1.to_string()), (k2, v2.to_string())]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_encodes_cumulative_buckets_in_both_formats() {
        let mut reg = Registry::default();
        let fam: Family<Vec<(&'static str, String)>, Histogram> = Family::default();
        reg.register("outpost_test_seconds", "A test", fam.clone());
        let h = fam.get_or_create(&label("route", "r")).clone();
        h.observe(std::time::Duration::from_micros(30));
        h.observe(std::time::Duration::from_secs(2));
        let text = encode(&reg, false);
        assert!(
            text.contains("outpost_test_seconds_bucket{route=\"r\",le=\"5e-05\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("outpost_test_seconds_bucket{route=\"r\",le=\"+Inf\"} 2"),
            "{text}"
        );
        assert!(text.contains("outpost_test_seconds_count{route=\"r\"} 2"));
        let om = encode(&reg, true);
        assert!(om.ends_with("# EOF\n"), "{om}");
    }

    #[test]
    fn counters_are_named_with_total_in_both_formats() {
        let mut reg = Registry::default();
        let c = Counter::<u64>::default();
        reg.register("outpost_things", "Things", c.clone());
        c.inc();
        let text = encode(&reg, false);
        assert!(
            text.contains("# TYPE outpost_things_total counter"),
            "{text}"
        );
        assert!(text.contains("outpost_things_total 1"), "{text}");
        assert!(wants_openmetrics(Some(
            b"application/openmetrics-text;version=1.0.0,text/plain;q=0.5"
        )));
        assert!(!wants_openmetrics(Some(b"text/plain")));
        assert!(!wants_openmetrics(None));
    }
}
