//! The node's metric families: its own (responses, latency and edge answers per
//! route, errors by source, connections) and those of the modules it builds
//! (guests, limiters, recorder). Registered once per process; a node built by a
//! reload takes handles from the same families, so counters keep counting.

use crate::cache::CacheMetrics;
use crate::limiter::{LimiterFamilies, LoadSnapshot};
use crate::metrics::{ByName, Counter, Family, Histogram, Registry, label, labels2};
use crate::record::RecorderFamilies;
use crate::runtime::GuestFamilies;

type Labels = Vec<(&'static str, String)>;

/// The process's registry and the node families registered in it: created once
/// (by `start`), kept across reloads.
pub struct Telemetry {
    /// What `/metrics` encodes.
    pub registry: Registry,
    /// The families nodes count in.
    pub families: NodeFamilies,
}

impl Telemetry {
    /// A registry with every node family registered.
    pub fn new() -> Telemetry {
        let mut registry = Registry::default();
        let families = NodeFamilies::register(&mut registry);
        Telemetry { registry, families }
    }

    /// Render every metric: the gauges read off `node` (the one serving now), then
    /// the process's registry, in OpenMetrics when the scraper asks for it.
    pub fn text(&self, node: &super::Node, openmetrics: bool) -> String {
        let mut origins: Vec<_> = node.origins.iter().collect();
        origins.sort_by(|a, b| a.0.cmp(b.0));
        self.families.set_gauges(
            origins
                .iter()
                .map(|(name, o)| (name.as_str(), o.limiter.snapshot())),
            node.fairness.as_ref().map_or(0, |f| f.len()),
        );
        if let Some(c) = &node.cache {
            self.families.cache.set_gauges(c);
        }
        crate::metrics::encode(&self.registry, openmetrics)
    }
}

impl Default for Telemetry {
    fn default() -> Telemetry {
        Telemetry::new()
    }
}

impl std::fmt::Debug for NodeFamilies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeFamilies")
    }
}

/// Every family a node counts in.
#[derive(Clone, Default)]
pub struct NodeFamilies {
    responses: ByName,
    duration: Family<Labels, Histogram>,
    edge_answers: ByName,
    transformed: ByName,
    errors: ByName,
    unrouted: Counter,
    connections: Counter,
    connections_refused: Counter,
    /// The guests' families.
    pub guests: GuestFamilies,
    /// The limiters' families.
    pub limiter: LimiterFamilies,
    /// The recorder's counters.
    pub record: RecorderFamilies,
    /// The edge cache's counters and gauges.
    pub cache: CacheMetrics,
    cache_lookups: ByName,
    origin_retries: ByName,
    origin_ejections: ByName,
    /// Access log lines dropped because its writer fell behind.
    pub access_log_dropped: Counter,
    /// Shadow runs by route and result.
    pub shadow: ByName,
    /// Shadow disagreements by route and kind.
    pub shadow_kinds: ByName,
    /// The console's stream of decisions (process-wide, like the counters).
    pub tail: crate::tail::Tail,
}

impl NodeFamilies {
    /// Register every family in `reg`.
    pub fn register(reg: &mut Registry) -> NodeFamilies {
        let f = NodeFamilies {
            guests: GuestFamilies::register(reg),
            limiter: LimiterFamilies::register(reg),
            record: RecorderFamilies::register(reg),
            cache: CacheMetrics::register(reg),
            ..NodeFamilies::default()
        };
        reg.register(
            "outpost_cache_lookups",
            "Edge cache lookups by route and result (hit, collapsed, stale, miss, pass)",
            f.cache_lookups.clone(),
        );
        reg.register(
            "outpost_shadow",
            "Shadow runs of candidate guests by route and result (agree, disagree, failed, dropped)",
            f.shadow.clone(),
        );
        reg.register(
            "outpost_shadow_disagreements",
            "Shadow disagreements by route and what differed (action, forwarded, origin, headers)",
            f.shadow_kinds.clone(),
        );
        reg.register(
            "outpost_responses",
            "Responses by route and status class",
            f.responses.clone(),
        );
        reg.register(
            "outpost_request_duration_seconds",
            "Time from request to response head, per route",
            f.duration.clone(),
        );
        reg.register(
            "outpost_edge_answers",
            "Requests answered by a guest at the edge",
            f.edge_answers.clone(),
        );
        reg.register(
            "outpost_transformed",
            "Response bodies transformed by a guest",
            f.transformed.clone(),
        );
        reg.register(
            "outpost_errors",
            "Error responses by source",
            f.errors.clone(),
        );
        reg.register(
            "outpost_origin_retries",
            "Requests sent to an origin a second time, on a new connection, after the \
             first attempt failed before any answer byte (idempotent requests only)",
            f.origin_retries.clone(),
        );
        reg.register(
            "outpost_origin_ejections",
            "Origin addresses ejected after failing requests in a row",
            f.origin_ejections.clone(),
        );
        reg.register(
            "outpost_access_log_dropped",
            "Access log lines dropped because the writer fell behind",
            f.access_log_dropped.clone(),
        );
        reg.register(
            "outpost_unrouted",
            "Requests that matched no route",
            f.unrouted.clone(),
        );
        reg.register(
            "outpost_connections",
            "Client connections accepted",
            f.connections.clone(),
        );
        reg.register(
            "outpost_connections_refused",
            "Client connections closed at accept because a connection cap was reached",
            f.connections_refused.clone(),
        );
        f
    }

    /// The retry counter of origin `name`.
    pub fn origin_retries(&self, name: &str) -> Counter {
        self.origin_retries
            .get_or_create_owned(&label("origin", name))
    }

    /// The ejection counter of origin `name`.
    pub fn origin_ejections(&self, name: &str) -> Counter {
        self.origin_ejections
            .get_or_create_owned(&label("origin", name))
    }

    /// The handles of route `name`.
    pub fn route(&self, name: &str) -> RouteMetrics {
        let status = |class| {
            self.responses
                .get_or_create_owned(&labels2("route", name, "status", class))
        };
        RouteMetrics {
            duration: self.duration.get_or_create_owned(&label("route", name)),
            responses: ["1xx", "2xx", "3xx", "4xx", "5xx"].map(status),
            edge_answers: self.edge_answers.get_or_create_owned(&label("route", name)),
            transformed: self.transformed.get_or_create_owned(&label("route", name)),
            cache: CACHE_RESULTS.map(|r| {
                self.cache_lookups
                    .get_or_create_owned(&labels2("route", name, "result", r))
            }),
        }
    }

    /// The node-wide handles.
    pub fn node(&self) -> NodeMetrics {
        let source = |s| self.errors.get_or_create_owned(&label("source", s));
        NodeMetrics {
            unrouted: self.unrouted.clone(),
            errors: ["client", "origin", "limiter", "guest"].map(source),
            connections: self.connections.clone(),
            connections_refused: self.connections_refused.clone(),
        }
    }

    /// Read the gauges off the node serving now (at each scrape).
    pub fn set_gauges<'a>(
        &self,
        limiters: impl Iterator<Item = (&'a str, LoadSnapshot)>,
        clients_tracked: usize,
    ) {
        self.limiter.set_gauges(limiters);
        self.limiter
            .clients_tracked
            .set(i64::try_from(clients_tracked).unwrap_or(i64::MAX));
    }
}

/// Counters of one route.
#[derive(Debug, Clone, Default)]
pub struct RouteMetrics {
    /// Time from the request to the response head.
    pub duration: Histogram,
    /// Responses by status class: 1xx..5xx.
    pub responses: [Counter; 5],
    /// Answered at the edge by a guest (redirects, rejections ...).
    pub edge_answers: Counter,
    /// Bodies transformed by a response guest.
    pub transformed: Counter,
    /// Cache lookups by result, in the order of [`CACHE_RESULTS`].
    pub cache: [Counter; 5],
}

/// The results a cache lookup counts under.
pub const CACHE_RESULTS: [&str; 5] = ["hit", "collapsed", "stale", "miss", "pass"];

impl RouteMetrics {
    /// Count a cache lookup's result (one of [`CACHE_RESULTS`]).
    pub fn record_cache(&self, result: &str) {
        if let Some(i) = CACHE_RESULTS.iter().position(|r| *r == result) {
            self.cache[i].inc();
        }
    }

    /// Count a response status.
    pub fn record_status(&self, status: u16) {
        let i = usize::from(status / 100).clamp(1, 5) - 1;
        self.responses[i].inc();
    }
}

/// Node-wide counters.
#[derive(Debug, Clone, Default)]
pub struct NodeMetrics {
    /// Requests that matched no route.
    pub unrouted: Counter,
    /// Error responses by source: client, origin, limiter, guest.
    pub errors: [Counter; 4],
    /// Connections accepted.
    pub connections: Counter,
    /// Connections closed at accept: a connection cap was reached.
    pub connections_refused: Counter,
}

impl NodeMetrics {
    /// Count an error by the source label of [`crate::error::EdgeError::source_label`].
    pub fn record_error(&self, source: &str) {
        let i = match source {
            "client" => 0,
            "origin" => 1,
            "limiter" => 2,
            _ => 3,
        };
        self.errors[i].inc();
    }
}
