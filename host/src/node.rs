//! A node built from a validated configuration: guests loaded and linked, origins'
//! clients and limiters, routes resolved. Loading reports every problem it finds.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use edge_config::{Config, Diagnostic, FailMode, GuestSource, OriginKind, Spanned};

use crate::limiter::{LimiterConfig, OriginLimiter};
use crate::metrics::{NodeMetrics, RouteMetrics};
use crate::origin::{OriginClient, OriginTimeouts};
use crate::runtime::{CompileCache, EngineOptions, Guest, GuestLimits, Runtime};

/// The wasm of a built-in guest, if the binary carries one by that name.
pub fn builtin_guest(name: &str) -> Option<&'static [u8]> {
    match name {
        "rewrite" => Some(include_bytes!(concat!(
            env!("OUTPOST_GUEST_DIR"),
            "/rewrite.wasm"
        ))),
        "rendition" => Some(include_bytes!(concat!(
            env!("OUTPOST_GUEST_DIR"),
            "/rendition.wasm"
        ))),
        "shed" => Some(include_bytes!(concat!(
            env!("OUTPOST_GUEST_DIR"),
            "/shed.wasm"
        ))),
        _ => None,
    }
}

/// Where the guest workspace's artifacts were built (for tests and benches).
pub const GUEST_ARTIFACTS: &str = env!("OUTPOST_GUEST_DIR");

/// An origin: its client and its limiter.
pub struct OriginEntry {
    /// The pooled client.
    pub client: OriginClient,
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
    /// Counters.
    pub metrics: RouteMetrics,
}

impl RouteEntry {
    fn matches(&self, host: &str, path: &str) -> bool {
        if !path.starts_with(&self.prefix) {
            return false;
        }
        match &self.host {
            None => true,
            Some(pattern) => match pattern.strip_prefix("*.") {
                Some(suffix) => host
                    .strip_suffix(suffix)
                    .is_some_and(|rest| rest.ends_with('.')),
                None => host == pattern,
            },
        }
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
    /// Routes, in match order.
    pub routes: Vec<RouteEntry>,
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
    pub recorder: Option<crate::record::Recorder>,
    next_request_id: std::sync::atomic::AtomicU64,
}

impl Node {
    /// Build a node: start demo origins, load every guest, resolve routes. All errors
    /// found are returned, positioned in the config where possible.
    pub async fn build(config: Config, opts: &BuildOptions) -> Result<Node, Vec<Diagnostic>> {
        let src = config.source().clone();
        let mut errors = Vec::new();
        let max_memory = config
            .guests
            .values()
            .map(|g| *g.memory_mib.get_ref() as usize * (1 << 20))
            .max()
            .unwrap_or(16 << 20);
        let mut runtime = Runtime::new(&EngineOptions {
            max_instances: *config.node.max_instances.get_ref(),
            max_memory_bytes: max_memory,
            tick: config.node.epoch_tick.get_ref().duration(),
            keep_resident: true,
        })
        .map_err(|e| vec![src.diagnostic(0..0, format!("cannot start the wasm engine: {e:#}"))])?;
        runtime.set_clock(opts.clock.clone());
        let cache = if opts.no_cache {
            None
        } else {
            opts.cache_dir
                .clone()
                .or_else(|| config.node.cache_dir.as_ref().map(PathBuf::from))
                .map(CompileCache::new)
        };

        let mut guests = BTreeMap::new();
        for (name, g) in &config.guests {
            let wasm: Result<std::borrow::Cow<'static, [u8]>, String> = match config.guest_source(g)
            {
                GuestSource::Builtin(b) => builtin_guest(&b)
                    .map(std::borrow::Cow::Borrowed)
                    .ok_or_else(|| format!("no built-in guest `{b}`")),
                GuestSource::File(p) => edge_config::read_capped(&p, MAX_WASM_BYTES)
                    .map(std::borrow::Cow::Owned)
                    .map_err(|e| format!("cannot read `{}`: {e}", p.display())),
            };
            let wasm = match wasm {
                Ok(w) => w,
                Err(e) => {
                    errors.push(src.diagnostic(g.wasm.span(), format!("guest `{name}`: {e}")));
                    continue;
                }
            };
            let limits = GuestLimits {
                memory_bytes: *g.memory_mib.get_ref() as usize * (1 << 20),
                cpu: g.cpu.get_ref().duration(),
                reuse: g.instance_reuse,
            };
            let values = g
                .config
                .iter()
                .map(|(k, v)| (k.clone(), v.get_ref().to_text()))
                .collect();
            match runtime.load(name.as_str(), &wasm, limits, values, cache.as_ref()) {
                Ok(guest) => {
                    guests.insert(name.to_string(), guest);
                }
                Err(e) => errors.push(src.diagnostic(g.wasm.span(), e.to_string())),
            }
        }

        // Each guest checks its own configuration; a problem is a config error at
        // the key (and list item) it names.
        let origin_names: Vec<String> = config.origins.keys().map(|k| k.to_string()).collect();
        for (name, guest) in &guests {
            let Some(g) = config.guests.get(name.as_str()) else {
                continue;
            };
            match guest.check_config(&runtime, origin_names.clone()).await {
                Ok(problems) => {
                    for p in problems {
                        let value = g.config.get(&p.key);
                        let span = match (value, p.item) {
                            (Some(v), Some(i)) => v
                                .get_ref()
                                .item_span(i as usize)
                                .unwrap_or_else(|| v.span()),
                            (Some(v), None) => v.span(),
                            (None, _) => g.wasm.span(),
                        };
                        let what = match p.item {
                            Some(i) => format!("`{}` item {i}", p.key),
                            None => format!("`{}`", p.key),
                        };
                        errors.push(src.diagnostic(
                            span,
                            format!("guest `{name}`: config {what}: {}", p.message),
                        ));
                    }
                }
                Err(e) => errors.push(src.diagnostic(
                    g.wasm.span(),
                    format!("guest `{name}`: its configuration check failed: {e}"),
                )),
            }
        }

        let clients = match crate::client::ClientRules::load(&config) {
            Ok(c) => c,
            Err(mut e) => {
                errors.append(&mut e);
                crate::client::ClientRules::default()
            }
        };

        let limiter_cfg = LimiterConfig::from(&config.limiter);
        // The limiters leave this node's own scheduling delay out of origin latency
        // (a replay's virtual clock has none).
        let lag = crate::clock::Lag::default();
        if !opts.clock.is_virtual() {
            lag.spawn_probe();
        }
        let mut origins = HashMap::new();
        let mut demo_origin = opts.demo_origin;
        for (name, o) in &config.origins {
            let limiter = OriginLimiter::with_lag(
                name.as_str(),
                limiter_cfg.clone(),
                opts.clock.clone(),
                lag.clone(),
            );
            if opts.model_origins {
                let client = OriginClient::model(name.as_str(), o.host_header.clone());
                origins.insert(name.to_string(), Arc::new(OriginEntry { client, limiter }));
                continue;
            }
            let authority = match (o.kind, &o.address) {
                (OriginKind::Demo, _) => {
                    let addr = match demo_origin {
                        Some(a) => a,
                        None => match crate::demo::spawn(([127, 0, 0, 1], 0).into()).await {
                            Ok(a) => {
                                demo_origin = Some(a);
                                a
                            }
                            Err(e) => {
                                errors.push(src.diagnostic(
                                    0..0,
                                    format!("cannot start the demo origin: {e}"),
                                ));
                                continue;
                            }
                        },
                    };
                    addr.to_string()
                }
                (OriginKind::Http, Some(a)) => a.get_ref().clone(),
                (OriginKind::Http, None) => {
                    errors.push(src.diagnostic(
                        0..0,
                        format!("origin `{name}`: expected an `address` (`HOST:PORT`)"),
                    ));
                    continue;
                }
            };
            let client = OriginClient::new(
                name.as_str(),
                &authority,
                o.host_header.clone(),
                OriginTimeouts {
                    connect: o.connect_timeout.get_ref().duration(),
                    first_byte: o.first_byte_timeout.get_ref().duration(),
                    total: o.total_timeout.get_ref().duration(),
                },
                o.pool_max_idle,
                o.pool_idle_timeout.duration(),
            );
            origins.insert(name.to_string(), Arc::new(OriginEntry { client, limiter }));
        }

        let mut routes = Vec::new();
        for r in &config.routes {
            let rname = r.name.get_ref().as_str();
            let resolve = |g: &Spanned<edge_config::Name>,
                           phase: &str,
                           exports: fn(&Guest) -> bool,
                           errors: &mut Vec<Diagnostic>|
             -> Option<GuestRef> {
                let guest = guests.get(g.get_ref().as_str())?;
                if !exports(guest) {
                    errors.push(src.diagnostic(
                        g.span(),
                        format!(
                            "route `{rname}` uses guest `{}` as a {phase} guest, but it does not export \
                             `outpost:edge/{phase}-hook@0.1.0` (it exports: {})",
                            g.get_ref(),
                            guest.hooks
                        ),
                    ));
                    return None;
                }
                let fail = config
                    .guests
                    .get(g.get_ref().as_str())
                    .map(|c| c.fail)
                    .unwrap_or_default();
                Some(GuestRef {
                    guest: guest.clone(),
                    fail,
                })
            };
            let admit = r
                .admit
                .as_ref()
                .and_then(|g| resolve(g, "admit", |g| g.hooks.admit, &mut errors));
            let request = r
                .request
                .iter()
                .filter_map(|g| resolve(g, "request", |g| g.hooks.request, &mut errors))
                .collect();
            let response = r
                .response
                .iter()
                .filter_map(|g| resolve(g, "response", |g| g.hooks.response, &mut errors))
                .collect();
            // A prefix or host not in the normalised form requests are routed in could
            // never match, and its guard would silently guard nothing.
            let prefix = r.path_prefix.get_ref();
            match crate::canon::path(prefix) {
                Ok(p) if p == *prefix => {}
                Ok(p) => errors.push(src.diagnostic(
                    r.path_prefix.span(),
                    format!(
                        "route `{rname}`: path_prefix `{prefix}` is not in normalised form; requests are routed as `{p}`"
                    ),
                )),
                Err(e) => errors.push(src.diagnostic(
                    r.path_prefix.span(),
                    format!("route `{rname}`: path_prefix `{prefix}` can never match: {e}"),
                )),
            }
            if let Some(h) = &r.host {
                let bare = h.strip_prefix("*.").unwrap_or(h);
                if crate::canon::host(bare).map_or(true, |n| {
                    n != bare.trim_end_matches('.').to_ascii_lowercase()
                }) {
                    errors.push(src.diagnostic(
                        r.name.span(),
                        format!(
                            "route `{rname}`: host `{h}` is not a host name (no port, no userinfo): requests are routed by host alone"
                        ),
                    ));
                }
            }
            let Some(origin) = origins.get(r.origin.get_ref().as_str()) else {
                continue;
            };
            routes.push(RouteEntry {
                name: rname.into(),
                host: r
                    .host
                    .as_ref()
                    .map(|h| h.trim_end_matches('.').to_ascii_lowercase()),
                prefix: r.path_prefix.get_ref().clone(),
                origin: origin.clone(),
                admit,
                request,
                response,
                transform: r
                    .transform
                    .iter()
                    .map(|t| t.trim().to_ascii_lowercase())
                    .collect(),
                transform_max_bytes: r.transform_max_bytes,
                compress: r
                    .compress
                    .iter()
                    .map(|t| t.trim().to_ascii_lowercase())
                    .collect(),
                compress_min_bytes: r.compress_min_bytes,
                metrics: RouteMetrics::default(),
            });
        }

        let recorder = match &config.record {
            Some(r) if !opts.model_origins => {
                let dir = config.resolve_path(&r.dir);
                match crate::record::Recorder::start(
                    dir.clone(),
                    *r.sample.get_ref(),
                    r.max_file_mib.saturating_mul(1 << 20),
                    r.max_total_mib.saturating_mul(1 << 20),
                ) {
                    Ok(rec) => Some(rec),
                    Err(e) => {
                        errors.push(src.diagnostic(
                            r.sample.span(),
                            format!("cannot record to `{}`: {e}", dir.display()),
                        ));
                        None
                    }
                }
            }
            _ => None,
        };
        if !errors.is_empty() {
            errors.sort_by_key(|d| (d.line, d.column));
            return Err(errors);
        }
        let levels = crate::coding::Levels::from(&config.compression);
        Ok(Node {
            fairness: crate::limiter::Fairness::new(
                *config.limiter.client_rate.get_ref(),
                *config.limiter.client_burst.get_ref(),
                *config.limiter.client_address_share.get_ref(),
                config.limiter.client_table,
            ),
            priority: crate::limiter::ClientBuckets::new(
                *config.limiter.priority_rate.get_ref(),
                *config.limiter.priority_burst.get_ref(),
                config.limiter.client_table,
            ),
            recorder,
            runtime,
            routes,
            origins,
            guests,
            metrics: NodeMetrics::default(),
            config,
            demo_origin,
            clients,
            next_request_id: std::sync::atomic::AtomicU64::new(
                opts.request_id_seed.unwrap_or_else(request_id_seed),
            ),
            clock: opts.clock.clone(),
            levels,
        })
    }

    /// A new request id: 16 hex digits, unique on this node (a counter from a
    /// time-derived start, so ids of successive nodes do not repeat).
    pub fn request_id(&self) -> String {
        let n = self
            .next_request_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{n:016x}")
    }

    /// The first route matching `host` (lower-case, no port) and `path`.
    pub fn route(&self, host: &str, path: &str) -> Option<&RouteEntry> {
        self.routes.iter().find(|r| r.matches(host, path))
    }
}

/// The largest guest component read (the shipped guests are well under 1 MiB).
const MAX_WASM_BYTES: u64 = 64 << 20;

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
