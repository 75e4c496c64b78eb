//! Building a node from a validated config, in steps that each return what they
//! built and push positioned diagnostics: the engine, the guests (loaded, then
//! each checking its own config), the client rules, the origins, the routes, the
//! recorder. Every problem found is reported, not only the first.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use edge_config::{Config, Diagnostic, GuestSource, OriginKind, Spanned};

use super::{BuildOptions, GuestRef, Node, OriginEntry, RouteEntry, builtin_guest};
use crate::limiter::{LimiterConfig, OriginLimiter};
use crate::runtime::{CompileCache, EngineOptions, Guest, GuestLimits, Runtime};
use crate::upstream::pool::{Balance, Ejection};
use crate::upstream::{HealthSettings, OriginClient, OriginSettings, OriginTimeouts};

/// The largest guest component read (the shipped guests are well under 1 MiB).
const MAX_WASM_BYTES: u64 = 64 << 20;

type Guests = BTreeMap<String, Arc<Guest>>;
type Origins = HashMap<String, Arc<OriginEntry>>;

impl Node {
    /// Build a node: start demo origins, load every guest, resolve routes. All errors
    /// found are returned, positioned in the config where possible.
    pub async fn build(config: Config, opts: &BuildOptions) -> Result<Node, Vec<Diagnostic>> {
        let mut errors = Vec::new();
        let runtime = engine(&config, opts)?;
        let guests = load_guests(&config, opts, &runtime, &mut errors);
        let refused = check_guest_configs(&config, &runtime, &guests, &mut errors).await;
        let guests = pre_initialize(&config, opts, &runtime, guests, &refused, &mut errors).await;
        let clients = crate::client::ClientRules::load(&config).unwrap_or_else(|mut e| {
            errors.append(&mut e);
            crate::client::ClientRules::default()
        });
        let (origins, demo_origin) = build_origins(&config, opts, &mut errors).await;
        let routes = resolve_routes(&config, &guests, &origins, opts, &mut errors);
        let recorder = start_recorder(&config, opts, &mut errors);
        let cache = edge_cache(&config, opts, &routes);
        let listener_tls = load_certificates(&config, &mut errors);
        let access_log = open_access_log(&config, opts, &mut errors);
        if !errors.is_empty() {
            errors.sort_by_key(|d| (d.line, d.column));
            return Err(errors);
        }
        let families = &opts.families.limiter;
        let limiter = &config.limiter;
        Ok(Node {
            fairness: crate::limiter::Fairness::new(
                *limiter.client_rate.get_ref(),
                *limiter.client_burst.get_ref(),
                *limiter.client_address_share.get_ref(),
                limiter.client_table,
            )
            .map(|f| f.counting(families.client_demoted.clone())),
            priority: crate::limiter::ClientBuckets::new(
                *limiter.priority_rate.get_ref(),
                *limiter.priority_burst.get_ref(),
                limiter.client_table,
            )
            .map(|b| b.counting(families.priority_capped.clone())),
            recorder,
            cache,
            listener_tls,
            access_log,
            tail: opts.families.tail.clone(),
            shadow_runtime: runtime.for_shadow(),
            runtime,
            route_index: super::routing::RouteIndex::new(
                routes
                    .iter()
                    .map(|r| (r.host.as_deref(), r.prefix.as_str())),
            ),
            routes,
            origins,
            guests,
            metrics: opts.families.node(),
            levels: crate::coding::Levels::from(&config.compression),
            config,
            demo_origin,
            clients,
            next_request_id: std::sync::atomic::AtomicU64::new(
                opts.request_id_seed.unwrap_or_else(super::request_id_seed),
            ),
            clock: opts.clock.clone(),
        })
    }
}

/// The access log, opened (a file: created or appended to).
fn open_access_log(
    config: &Config,
    opts: &BuildOptions,
    errors: &mut Vec<Diagnostic>,
) -> Option<Arc<crate::access::AccessLog>> {
    let a = config.access_log.as_ref()?;
    let target = crate::access::Target {
        path: a.path.get_ref().clone(),
        max_bytes: a.max_file_mib.saturating_mul(1 << 20),
        keep: a.keep_files,
        sample: *a.sample.get_ref(),
    };
    match crate::access::AccessLog::open(target, opts.families.access_log_dropped.clone()) {
        Ok(log) => Some(Arc::new(log)),
        Err(e) => {
            errors.push(config.source().diagnostic(
                a.path.span(),
                format!("cannot open the access log `{}`: {e}", a.path.get_ref()),
            ));
            None
        }
    }
}

/// Each listener's TLS config, its certificates read and checked.
fn load_certificates(
    config: &Config,
    errors: &mut Vec<Diagnostic>,
) -> Vec<Option<Arc<rustls::ServerConfig>>> {
    config
        .listeners
        .iter()
        .map(|l| {
            let tls = l.tls.as_ref()?;
            crate::tls::listener_config(config, tls)
                .map_err(|mut e| errors.append(&mut e))
                .ok()
        })
        .collect()
}

/// The edge cache, when a route caches: the one the node being replaced had, if
/// its sizes are unchanged (a reload keeps what is stored), else a new one.
fn edge_cache(
    config: &Config,
    opts: &BuildOptions,
    routes: &[RouteEntry],
) -> Option<Arc<crate::cache::Cache>> {
    if routes.iter().all(|r| r.cache.is_none()) {
        return None;
    }
    let sizes = crate::cache::CacheConfig::of(config);
    if let Some(c) = &opts.cache
        && c.config == sizes
        && c.clock.is_virtual() == opts.clock.is_virtual()
    {
        return Some(c.clone());
    }
    Some(Arc::new(crate::cache::Cache::new(
        sizes,
        opts.clock.clone(),
        opts.families.cache.clone(),
    )))
}

/// A route's cache rules, when it caches.
fn route_cache(r: &edge_config::Route) -> Option<crate::cache::RouteRules> {
    let c = r.cache.as_ref().filter(|c| c.enabled)?;
    Some(crate::cache::RouteRules {
        default_ttl: c.default_ttl.as_ref().map(|t| t.get_ref().duration()),
        negative_ttl: c.negative_ttl.get_ref().duration(),
        error_ttl: c.error_ttl.as_ref().map(|t| t.get_ref().duration()),
        stale_if_error: c.stale_if_error.get_ref().duration(),
        ignore_query: c.ignore_query.clone(),
        // Names were checked by validation; one that still fails to parse is left out.
        key_headers: c
            .key_headers
            .iter()
            .filter_map(|h| http::HeaderName::from_bytes(h.get_ref().as_bytes()).ok())
            .collect(),
    })
}

/// The wasm engine, sized for the largest guest memory configured.
fn engine(config: &Config, opts: &BuildOptions) -> Result<Runtime, Vec<Diagnostic>> {
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
    .map_err(|e| {
        vec![
            config
                .source()
                .diagnostic(0..0, format!("cannot start the wasm engine: {e:#}")),
        ]
    })?;
    runtime.set_clock(opts.clock.clone());
    Ok(runtime)
}

/// Read, compile (or take from the compile cache) and link every guest.
fn load_guests(
    config: &Config,
    opts: &BuildOptions,
    runtime: &Runtime,
    errors: &mut Vec<Diagnostic>,
) -> Guests {
    let src = config.source();
    let cache = compile_cache(config, opts);
    let mut guests = BTreeMap::new();
    for (name, g) in &config.guests {
        let wasm = match wasm_of(config.guest_source(g)) {
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
        let metrics = opts.families.guests.guest(name.as_str());
        match runtime.load(
            name.as_str(),
            &wasm,
            limits,
            values,
            cache.as_ref(),
            metrics,
        ) {
            Ok(guest) => {
                guests.insert(name.to_string(), guest);
            }
            Err(e) => errors.push(src.diagnostic(g.wasm.span(), e.to_string())),
        }
    }
    guests
}

/// The compile cache the options and the config name, if any.
fn compile_cache(config: &Config, opts: &BuildOptions) -> Option<CompileCache> {
    if opts.no_cache {
        return None;
    }
    opts.cache_dir
        .clone()
        .or_else(|| config.node.cache_dir.as_ref().map(PathBuf::from))
        .map(|dir| CompileCache::new(dir).bounded(*config.node.cache_max_mib.get_ref() << 20))
}

/// A guest's component: built into the binary, or read from a file.
fn wasm_of(source: GuestSource<PathBuf>) -> Result<Cow<'static, [u8]>, String> {
    match source {
        GuestSource::Builtin(b) => builtin_guest(&b)
            .map(Cow::Borrowed)
            .ok_or_else(|| format!("no built-in guest `{b}`")),
        GuestSource::File(p) => edge_config::read_capped(&p, MAX_WASM_BYTES)
            .map(Cow::Owned)
            .map_err(|e| format!("cannot read `{}`: {e}", p.display())),
    }
}

/// Every guest that exports `init` (and whose configuration passed its check)
/// replaced by its pre-initialized snapshot (`runtime::preinit`).
async fn pre_initialize(
    config: &Config,
    opts: &BuildOptions,
    runtime: &Runtime,
    guests: Guests,
    refused: &std::collections::BTreeSet<String>,
    errors: &mut Vec<Diagnostic>,
) -> Guests {
    let src = config.source();
    let cache = compile_cache(config, opts);
    let mut out = BTreeMap::new();
    for (name, guest) in guests {
        let Some(g) = config.guests.get(name.as_str()) else {
            out.insert(name, guest);
            continue;
        };
        let at = |e: &dyn std::fmt::Display| src.diagnostic(g.wasm.span(), e.to_string());
        // A configuration its check refused is reported as such, not run.
        if refused.contains(&name) {
            out.insert(name, guest);
            continue;
        }
        let initialized = match wasm_of(config.guest_source(g)) {
            Ok(wasm) => runtime.pre_initialize(&guest, &wasm, cache.as_ref()).await,
            Err(e) => {
                errors.push(at(&e));
                continue;
            }
        };
        match initialized {
            Ok(Some(g)) => {
                out.insert(name, g);
            }
            Ok(None) => {
                out.insert(name, guest);
            }
            Err(e) => errors.push(at(&e)),
        }
    }
    out
}

/// Each guest checks its own configuration; a problem is a config error at the key
/// (and list item) it names.
async fn check_guest_configs(
    config: &Config,
    runtime: &Runtime,
    guests: &Guests,
    errors: &mut Vec<Diagnostic>,
) -> std::collections::BTreeSet<String> {
    let mut refused = std::collections::BTreeSet::new();
    let src = config.source();
    let origin_names: Vec<String> = config.origins.keys().map(|k| k.to_string()).collect();
    for (name, guest) in guests {
        let Some(g) = config.guests.get(name.as_str()) else {
            continue;
        };
        let problems = match guest.check_config(runtime, origin_names.clone()).await {
            Ok(p) => p,
            Err(e) => {
                errors.push(src.diagnostic(
                    g.wasm.span(),
                    format!("guest `{name}`: its configuration check failed: {e}"),
                ));
                refused.insert(name.clone());
                continue;
            }
        };
        if !problems.is_empty() {
            refused.insert(name.clone());
        }
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
    refused
}

/// Every origin's client and limiter; the demo origin started if one is configured
/// (or the running one reused).
async fn build_origins(
    config: &Config,
    opts: &BuildOptions,
    errors: &mut Vec<Diagnostic>,
) -> (Origins, Option<SocketAddr>) {
    let limiter_cfg = LimiterConfig::from(&config.limiter);
    // The limiters leave this node's own scheduling delay out of origin latency (a
    // replay's virtual clock has none).
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
            opts.families.limiter.counters(name.as_str()),
        );
        let client = if opts.model_origins {
            OriginClient::model(name.as_str(), o.host_header.clone(), &opts.model_headers)
        } else {
            let Some(authority) =
                authority_of(config, name.as_str(), o, &mut demo_origin, errors).await
            else {
                continue;
            };
            let Ok(tls) = origin_tls(config, o, &authority).map_err(|e| errors.push(e)) else {
                continue;
            };
            let authorities: Vec<String> = std::iter::once(authority)
                .chain(o.addresses.iter().map(|a| a.get_ref().clone()))
                .collect();
            OriginClient::new(
                name.as_str(),
                &authorities,
                origin_settings(name.as_str(), o, opts, tls),
            )
        };
        origins.insert(
            name.to_string(),
            Arc::new(OriginEntry {
                client: Arc::new(client),
                limiter,
            }),
        );
    }
    for (name, o) in &config.origins {
        if let (Some(b), Some(entry)) = (&o.backup, origins.get(name.as_str()))
            && let Some(backup) = origins.get(b.get_ref().as_str())
        {
            entry.client.set_backup(&backup.client);
        }
    }
    (origins, demo_origin)
}

/// How the node talks to origin `name`.
fn origin_settings(
    name: &str,
    o: &edge_config::Origin,
    opts: &BuildOptions,
    tls: Option<(
        Arc<rustls::ClientConfig>,
        rustls_pki_types::ServerName<'static>,
    )>,
) -> OriginSettings {
    OriginSettings {
        host_header: o.host_header.clone(),
        timeouts: OriginTimeouts {
            connect: o.connect_timeout.get_ref().duration(),
            first_byte: o.first_byte_timeout.get_ref().duration(),
            total: o.total_timeout.get_ref().duration(),
        },
        pool_max_idle: o.pool_max_idle,
        pool_idle_timeout: o.pool_idle_timeout.duration(),
        retries: opts.families.origin_retries(name),
        tls,
        balance: match o.balance {
            edge_config::Balance::LeastOutstanding => Balance::LeastOutstanding,
            edge_config::Balance::Hash => Balance::Hash,
        },
        ejection: Ejection {
            after: o.eject_after,
            duration: o.eject_for.duration(),
            max_share: *o.max_ejected.get_ref(),
        },
        ejections: opts.families.origin_ejections(name),
        health: o.health_check.as_ref().map(|h| {
            let h = h.get_ref();
            HealthSettings {
                path: h.path.clone(),
                interval: h.interval.duration(),
                timeout: h.timeout.duration(),
                healthy: h.healthy.max(1),
                unhealthy: h.unhealthy.max(1),
            }
        }),
    }
}

/// An origin's TLS client config and server name, when it speaks TLS.
fn origin_tls(
    config: &Config,
    o: &edge_config::Origin,
    authority: &str,
) -> Result<
    Option<(
        Arc<rustls::ClientConfig>,
        rustls_pki_types::ServerName<'static>,
    )>,
    Diagnostic,
> {
    let Some(tls) = &o.tls else {
        return Ok(None);
    };
    let client = crate::tls::origin_config(config, tls)?;
    let explicit = tls.get_ref().server_name.as_ref();
    let name = crate::tls::origin_server_name(
        explicit.map(|n| n.get_ref().as_str()),
        o.host_header.as_deref(),
        authority,
    )
    .map_err(|e| {
        let span = explicit.map_or_else(|| tls.span(), edge_config::Spanned::span);
        config.source().diagnostic(span, e)
    })?;
    Ok(Some((client, name)))
}

/// Where origin `name` listens: its address, or the demo origin's (started once).
async fn authority_of(
    config: &Config,
    name: &str,
    o: &edge_config::Origin,
    demo_origin: &mut Option<SocketAddr>,
    errors: &mut Vec<Diagnostic>,
) -> Option<String> {
    let src = config.source();
    match (o.kind, &o.address) {
        (OriginKind::Demo, _) => {
            if let Some(a) = demo_origin {
                return Some(a.to_string());
            }
            match crate::demo::spawn(([127, 0, 0, 1], 0).into()).await {
                Ok(a) => {
                    *demo_origin = Some(a);
                    Some(a.to_string())
                }
                Err(e) => {
                    errors.push(src.diagnostic(0..0, format!("cannot start the demo origin: {e}")));
                    None
                }
            }
        }
        (OriginKind::Http, Some(a)) => Some(a.get_ref().clone()),
        (OriginKind::Http, None) => {
            errors.push(src.diagnostic(
                0..0,
                format!("origin `{name}`: expected an `address` (`HOST:PORT`)"),
            ));
            None
        }
    }
}

/// Every route with its guests and origin resolved.
fn resolve_routes(
    config: &Config,
    guests: &Guests,
    origins: &Origins,
    opts: &BuildOptions,
    errors: &mut Vec<Diagnostic>,
) -> Vec<RouteEntry> {
    let mut routes = Vec::new();
    for r in &config.routes {
        let rname = r.name.get_ref().as_str();
        let mut resolve =
            |g: &Spanned<edge_config::Name>, phase: &str, exports: fn(&Guest) -> bool| {
                resolve_guest(config, guests, rname, g, phase, exports, errors)
            };
        let admit = r
            .admit
            .as_ref()
            .and_then(|g| resolve(g, "admit", |g| g.hooks.admit));
        let request = r
            .request
            .iter()
            .filter_map(|g| resolve(g, "request", |g| g.hooks.request))
            .collect();
        let response = r
            .response
            .iter()
            .filter_map(|g| resolve(g, "response", |g| g.hooks.response))
            .collect();
        let candidates = r.shadow.as_ref().map(|s| {
            let request: Vec<GuestRef> = s
                .request
                .iter()
                .filter_map(|g| resolve(g, "request", |g| g.hooks.request))
                .collect();
            let response: Vec<GuestRef> = s
                .response
                .iter()
                .filter_map(|g| resolve(g, "response", |g| g.hooks.response))
                .collect();
            (request, response)
        });
        check_route_target(config, r, errors);
        let shadow = candidates.and_then(|c| shadow_entry(config, r, c, opts, errors));
        let Some(origin) = origins.get(r.origin.get_ref().as_str()) else {
            continue;
        };
        let lower = |ts: &[String]| ts.iter().map(|t| t.trim().to_ascii_lowercase()).collect();
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
            transform: lower(&r.transform),
            transform_max_bytes: r.transform_max_bytes,
            compress: lower(&r.compress),
            compress_min_bytes: r.compress_min_bytes,
            cache: route_cache(r).map(Arc::new),
            shadow,
            metrics: opts.families.route(rname),
        });
    }
    routes
}

/// Route `r`'s shadow over `candidates`, with its recording of disagreements (none
/// in an in-process replay).
fn shadow_entry(
    config: &Config,
    r: &edge_config::Route,
    candidates: (Vec<GuestRef>, Vec<GuestRef>),
    opts: &BuildOptions,
    errors: &mut Vec<Diagnostic>,
) -> Option<Arc<crate::node::ShadowEntry>> {
    let s = r.shadow.as_ref()?;
    let recorder = match s.dir.as_ref().filter(|_| !opts.model_origins) {
        Some(d) => {
            let dir = config.resolve_path(d);
            // One writer per route (its own file names), never the recorder's.
            let same_as_record = config
                .record
                .as_ref()
                .is_some_and(|rec| config.resolve_path(&rec.dir) == dir);
            if same_as_record {
                errors.push(config.source().diagnostic(
                    s.sample.span(),
                    format!(
                        "route `{}`: the shadow's `dir` is `[record].dir`; give the shadow a directory of its own",
                        r.name.get_ref()
                    ),
                ));
                return None;
            }
            match crate::record::Recorder::start(
                dir.clone(),
                &format!("shadow-{}", r.name.get_ref().as_str()),
                1.0,
                64 << 20,
                1 << 30,
                0,
                crate::record::RecorderFamilies::default(),
            ) {
                Ok(rec) => Some(Arc::new(rec)),
                Err(e) => {
                    errors.push(config.source().diagnostic(
                        s.sample.span(),
                        format!(
                            "cannot record shadow disagreements to `{}`: {e}",
                            dir.display()
                        ),
                    ));
                    return None;
                }
            }
        }
        None => None,
    };
    Some(Arc::new(crate::node::ShadowEntry::new(
        candidates,
        *s.sample.get_ref(),
        recorder,
        opts.families.shadow.clone(),
        opts.families.shadow_kinds.clone(),
    )))
}

/// A guest as route `rname` uses it in `phase`: an error if it does not export
/// that phase's hook.
fn resolve_guest(
    config: &Config,
    guests: &Guests,
    rname: &str,
    g: &Spanned<edge_config::Name>,
    phase: &str,
    exports: fn(&Guest) -> bool,
    errors: &mut Vec<Diagnostic>,
) -> Option<GuestRef> {
    let guest = guests.get(g.get_ref().as_str())?;
    if !exports(guest) {
        errors.push(config.source().diagnostic(
            g.span(),
            format!(
                "route `{rname}` uses guest `{}` as {} {phase} guest, but it does not export \
                 `outpost:edge/{phase}-hook@{}` (it exports: {})",
                g.get_ref(),
                if phase.starts_with('a') { "an" } else { "a" },
                crate::contract::VERSION,
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
}

/// A prefix or host not in the normalised form requests are routed in could never
/// match, and its guard would silently guard nothing.
fn check_route_target(config: &Config, r: &edge_config::Route, errors: &mut Vec<Diagnostic>) {
    let src = config.source();
    let rname = r.name.get_ref().as_str();
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
}

/// The recorder, when `[record]` is configured (never in an in-process replay).
fn start_recorder(
    config: &Config,
    opts: &BuildOptions,
    errors: &mut Vec<Diagnostic>,
) -> Option<Arc<crate::record::Recorder>> {
    let r = config.record.as_ref().filter(|_| !opts.model_origins)?;
    let dir = config.resolve_path(&r.dir);
    match crate::record::Recorder::start(
        dir.clone(),
        "outpost",
        *r.sample.get_ref(),
        r.max_file_mib.saturating_mul(1 << 20),
        r.max_total_mib.saturating_mul(1 << 20),
        usize::try_from(r.max_body_kib.saturating_mul(1 << 10)).unwrap_or(usize::MAX),
        opts.families.record.clone(),
    ) {
        Ok(rec) => Some(Arc::new(rec)),
        Err(e) => {
            errors.push(config.source().diagnostic(
                r.sample.span(),
                format!("cannot record to `{}`: {e}", dir.display()),
            ));
            None
        }
    }
}
