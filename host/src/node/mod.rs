//! A node built from a validated configuration: guests loaded and linked, origins'
//! clients and limiters, routes resolved ([`build`]: every problem it finds,
//! positioned in the config). [`NodeSlot`] holds the node serving now.

mod build;
mod metrics;
mod routing;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use edge_config::{Config, FailMode};

use crate::limiter::OriginLimiter;
use crate::runtime::{Guest, Runtime};
use crate::upstream::OriginClient;

use crate::metrics::ByName;
pub use metrics::{NodeFamilies, NodeMetrics, RouteMetrics, Telemetry};

pub use outpost_common::builtin::BUILTIN_GUESTS;

include!(concat!(env!("OUT_DIR"), "/builtin.rs"));

/// The wasm of a built-in guest, if the binary carries one by that name.
pub fn builtin_guest(name: &str) -> Option<&'static [u8]> {
    BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, w)| *w)
}

/// Where the shipped guests were built (the test fixtures are the dev-only
/// `outpost-test-guests` crate's).
pub const GUEST_ARTIFACTS: &str = env!("OUTPOST_GUEST_DIR");

/// An origin: its client and its limiter.
pub struct OriginEntry {
    /// The pooled client.
    pub client: Arc<OriginClient>,
    /// Its admission limiter.
    pub limiter: Arc<OriginLimiter>,
}

/// A guest as a route uses it.
#[derive(Clone)]
pub struct GuestRef {
    /// The loaded guest.
    pub guest: Arc<Guest>,
    /// What to do when it fails.
    pub fail: FailMode,
}

/// A resolved route.
pub struct RouteEntry {
    /// Its name.
    pub name: Arc<str>,
    host: Option<String>,
    prefix: String,
    /// Default origin.
    pub origin: Arc<OriginEntry>,
    /// The admit guest.
    pub admit: Option<GuestRef>,
    /// Request guests in order.
    pub request: Vec<GuestRef>,
    /// Response guests in order.
    pub response: Vec<GuestRef>,
    /// Content types response guests may transform (lower-case, no parameters).
    pub transform: Vec<String>,
    /// Cap on buffered bodies.
    pub transform_max_bytes: usize,
    /// Content types compressed at the edge (lower-case, no parameters).
    pub compress: Vec<String>,
    /// Known lengths below this are not compressed.
    pub compress_min_bytes: u64,
    /// The edge cache's rules (none: the route does not cache).
    pub cache: Option<Arc<crate::cache::RouteRules>>,
    /// Candidate guests run beside the live ones (`shadow`), if any.
    pub shadow: Option<Arc<ShadowEntry>>,
    /// Counters.
    pub metrics: RouteMetrics,
}

/// A route's shadow: the candidate request guests, the sample, where the
/// disagreements are recorded, and the counts.
pub struct ShadowEntry {
    /// Candidate request guests, in order.
    pub request: Vec<GuestRef>,
    /// Candidate response guests, in order.
    pub response: Vec<GuestRef>,
    every: u64,
    seen: std::sync::atomic::AtomicU64,
    /// The recording of the requests where the candidates disagreed.
    pub recorder: Option<Arc<crate::record::Recorder>>,
    /// `outpost_shadow_total{route, result}`: agree, disagree, failed, dropped.
    pub results: ByName,
    /// `outpost_shadow_disagreements_total{route, kind}`.
    pub kinds: ByName,
}

impl ShadowEntry {
    /// A shadow of `request` and `response` guests over `sample` of the requests.
    pub fn new(
        (request, response): (Vec<GuestRef>, Vec<GuestRef>),
        sample: f64,
        recorder: Option<Arc<crate::record::Recorder>>,
        results: ByName,
        kinds: ByName,
    ) -> ShadowEntry {
        let every = if sample <= 0.0 {
            0
        } else {
            (1.0 / sample).round().max(1.0) as u64
        };
        ShadowEntry {
            request,
            response,
            every,
            seen: std::sync::atomic::AtomicU64::new(0),
            recorder,
            results,
            kinds,
        }
    }

    /// Whether the route's next request is in the sample (exactly every
    /// `1/sample`-th).
    pub fn sample(&self) -> bool {
        self.every > 0
            && self
                .seen
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                .is_multiple_of(self.every)
    }
}

/// Options that are not in the config file.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Override the compile cache directory (None: the config's).
    pub cache_dir: Option<PathBuf>,
    /// Disable the compile cache.
    pub no_cache: bool,
    /// A demo origin already running (from the node a reload replaces), to reuse.
    pub demo_origin: Option<SocketAddr>,
    /// The clock guests and limiters read (default: real time; virtual in replays).
    pub clock: crate::clock::Clock,
    /// Answer every origin request from the recording it carries instead of the
    /// network (in-process replay).
    pub model_origins: bool,
    /// The first request id (default: derived from the time).
    pub request_id_seed: Option<u64>,
    /// The metric families the node counts in (default: fresh ones no registry
    /// exports; `start` registers them, and a reload keeps them).
    pub families: NodeFamilies,
    /// Headers model origins add to answers that lack them (in-process replay of
    /// recordings without response headers: `cache-control: max-age=3600`).
    pub model_headers: Vec<(String, String)>,
    /// The edge cache of the node a reload replaces: kept while its sizes stay.
    pub cache: Option<Arc<crate::cache::Cache>>,
}

/// The node requests are served by. A reload swaps it whole; a request keeps the node
/// it started on until it finishes.
#[derive(Clone)]
pub struct NodeSlot(Arc<std::sync::RwLock<Arc<Node>>>);

impl NodeSlot {
    /// A slot holding `node`.
    pub fn new(node: Arc<Node>) -> NodeSlot {
        NodeSlot(Arc::new(std::sync::RwLock::new(node)))
    }

    /// The current node.
    pub fn current(&self) -> Arc<Node> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Swap in `node`; returns the one it replaces.
    pub fn replace(&self, node: Arc<Node>) -> Arc<Node> {
        std::mem::replace(
            &mut *self.0.write().unwrap_or_else(|p| p.into_inner()),
            node,
        )
    }
}

/// A node ready to serve.
pub struct Node {
    /// The wasmtime runtime.
    pub runtime: Runtime,
    /// The same, for the shadow runs of route candidates ([`Runtime::for_shadow`]).
    pub shadow_runtime: Runtime,
    /// Routes, in match order.
    pub routes: Vec<RouteEntry>,
    /// The routes indexed by host.
    route_index: routing::RouteIndex,
    /// Origins by name.
    pub origins: HashMap<String, Arc<OriginEntry>>,
    /// Guests by name.
    pub guests: BTreeMap<String, Arc<Guest>>,
    /// Node-wide counters.
    pub metrics: NodeMetrics,
    /// The configuration it was built from.
    pub config: Config,
    /// Where the demo origin listens, if one was started.
    pub demo_origin: Option<SocketAddr>,
    /// How client address, scheme and country are established.
    pub clients: crate::client::ClientRules,
    /// The clock guests and limiters read.
    pub clock: crate::clock::Clock,
    /// Compression levels (`[compression]`).
    pub levels: crate::coding::Levels,
    /// Per-client token buckets, when `[limiter] client_rate` is set.
    pub fairness: Option<crate::limiter::Fairness>,
    /// Per-address allowance of admissions above `normal` (`[limiter] priority_rate`).
    pub priority: Option<crate::limiter::ClientBuckets>,
    /// The traffic recorder, when `[record]` is configured.
    pub recorder: Option<Arc<crate::record::Recorder>>,
    /// The edge cache, when a route caches.
    pub cache: Option<Arc<crate::cache::Cache>>,
    /// Each configured listener's TLS config (in `config.listeners` order; None:
    /// plain HTTP). A listener takes the current node's at every accept, so a
    /// reload swaps certificates for new connections only.
    pub listener_tls: Vec<Option<Arc<rustls::ServerConfig>>>,
    /// The access log, when `[node] access_log` is set.
    pub access_log: Option<Arc<crate::access::AccessLog>>,
    /// The console's decisions stream.
    pub tail: crate::tail::Tail,
    next_request_id: std::sync::atomic::AtomicU64,
}

impl Node {
    /// A new request id: 16 hex digits, unique on this node (a counter from a
    /// time-derived start, so ids of successive nodes do not repeat).
    pub fn request_id(&self) -> String {
        let n = self
            .next_request_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        hex16(n)
    }

    /// The first route matching `host` (lower-case, no port) and `path`.
    pub fn route(&self, host: &str, path: &str) -> Option<&RouteEntry> {
        let i = self.route_index.find(host, path)?;
        self.routes.get(i)
    }
}

/// `n` as sixteen hex digits, written without the formatting machinery (every
/// request pays for it).
pub(crate) fn hex16(n: u64) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    (0..16)
        .rev()
        .map(|i| char::from(HEX[(n >> (i * 4)) as usize & 0xf]))
        .collect()
}

#[test]
fn request_ids_are_sixteen_hex_digits() {
    for n in [0, 1, 0xabc, u64::MAX, 0x0123_4567_89ab_cdef] {
        assert_eq!(hex16(n), format!("{n:016x}"));
    }
}

fn request_id_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    // splitmix64: spread the clock's bits so ids do not look sequential across nodes.
    let mut z = nanos.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
