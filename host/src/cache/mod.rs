//! The edge cache: responses kept in memory under a byte budget, reused by the
//! rules of HTTP caching (RFC 9111, through `http-cache-semantics`), filled while
//! they stream to the first client, with concurrent misses for one key collapsed
//! into one origin request.
//!
//! One file per part: [`stored`] (a stored response and the answers made from it:
//! hit, `HEAD`, range, not modified), [`policy`] (what may be stored and for how
//! long: the targeted `CDN-Cache-Control` and `Surrogate-Control`, the route's
//! defaults, RFC 5861's stale directives), [`collapse`] (one fetch per key),
//! [`fill`] (the body that stores itself as it streams), [`tee`] (that stream,
//! shared with the requests collapsed behind it).
//!
//! Storage is `quick_cache`'s weighted cache: the budget is enforced on every
//! insert (no background task), eviction is its scan-resistant CLOCK-Pro-like
//! policy, and its hasher is fixed, so a replay evicts the same objects every run.
//! A key holds a few variants (the origin's `Vary`), or a hit-for-pass mark.
//! Beneath it, optionally, [`disk`]: every stored object written to a directory
//! too, read back on a memory miss, so a restarted node serves what it stored.

pub mod collapse;
pub mod disk;
pub mod fill;
pub mod policy;
pub mod stored;
pub mod tee;

use std::sync::Arc;
use std::time::SystemTime;

use quick_cache::Weighter;

use crate::clock::Clock;
use crate::metrics::{Counter, Gauge, Registry};

/// `Cache-Status` (RFC 9211), as a header name: inserting by a string parses it
/// on every response.
pub static CACHE_STATUS: http::HeaderName = http::HeaderName::from_static("cache-status");

/// The fields a guest steers the cache with ([`outpost_common::cache`]), as header
/// names.
pub static GUEST_FIELDS: [http::HeaderName; 3] = [
    http::HeaderName::from_static(outpost_common::cache::KEY),
    http::HeaderName::from_static(outpost_common::cache::TTL),
    http::HeaderName::from_static(outpost_common::cache::CONTROL),
];

/// Remove the guests' cache fields from `h` (a client's or an origin's never
/// count); most messages have none, so the names are looked for once first.
pub fn strip_guest_fields(h: &mut http::HeaderMap) {
    if h.keys().any(|k| GUEST_FIELDS.contains(k)) {
        for f in &GUEST_FIELDS {
            h.remove(f);
        }
    }
}

pub use collapse::{Flights, Joined, Lead, Waited};
pub use fill::{Fill, FillBody, Slot, Steer};
pub use policy::{RouteRules, Verdict};
pub use stored::{Freshness, Stored};
pub use tee::Tee;

/// The variants of one key kept at most (a `Vary` on a header with many values
/// would otherwise fill a key with copies).
const MAX_VARIANTS: usize = 8;

/// What a key holds.
#[derive(Clone, Debug)]
pub enum Entry {
    /// Stored responses, one per variant, the newest first.
    Variants(Arc<[Arc<Stored>]>),
    /// Hit-for-pass: the last response was uncacheable; until this time (ns on the
    /// node's clock) requests go straight to the origin, uncollapsed.
    Pass {
        /// When the mark lapses, ns on the node's clock.
        until_ns: u64,
    },
}

#[derive(Clone)]
struct Weigh;

impl Weighter<Arc<str>, Entry> for Weigh {
    fn weight(&self, key: &Arc<str>, e: &Entry) -> u64 {
        let held = match e {
            Entry::Variants(v) => v.iter().map(|s| s.weight()).sum(),
            Entry::Pass { .. } => 64,
        };
        held + key.len() as u64
    }
}

/// Counts what the budget evicts; the evicted entries are dropped outside the
/// store's locks (as quick_cache's default lifecycle does).
#[derive(Clone)]
struct Evict(Counter);

impl quick_cache::Lifecycle<Arc<str>, Entry> for Evict {
    type RequestState = [Option<(Arc<str>, Entry)>; 2];

    fn on_evict(&self, state: &mut Self::RequestState, key: Arc<str>, val: Entry) {
        self.0.inc();
        if let Some(slot) = state.iter_mut().find(|s| s.is_none()) {
            *slot = Some((key, val));
        }
    }
}

type Store = quick_cache::sync::Cache<
    Arc<str>,
    Entry,
    Weigh,
    std::hash::BuildHasherDefault<std::collections::hash_map::DefaultHasher>,
    Evict,
>;

/// The cache's sizes (`[cache]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// The disk tier's directory and byte budget, if it has one.
    pub disk: Option<(std::path::PathBuf, u64)>,
    /// The memory budget, bytes.
    pub memory_bytes: u64,
    /// The largest object stored, bytes; larger ones stream through uncached.
    pub max_object_bytes: usize,
    /// How long a collapsed request waits for its leader before it goes itself.
    pub collapse_timeout: std::time::Duration,
    /// How long a key found uncacheable is passed without collapsing.
    pub hit_for_pass: std::time::Duration,
}

impl CacheConfig {
    /// The sizes `config`'s `[cache]` gives (a relative disk directory is the
    /// config file's).
    pub fn of(config: &edge_config::Config) -> CacheConfig {
        let c = &config.cache;
        CacheConfig {
            disk: c.disk_dir.as_ref().map(|d| {
                (
                    config.resolve_path(d.get_ref()),
                    c.disk_mib.get_ref().saturating_mul(1 << 20),
                )
            }),
            memory_bytes: c.memory_mib.get_ref().saturating_mul(1 << 20),
            max_object_bytes: usize::try_from(c.max_object_mib.get_ref().saturating_mul(1 << 20))
                .unwrap_or(usize::MAX),
            collapse_timeout: c.collapse_timeout.get_ref().duration(),
            hit_for_pass: c.hit_for_pass.get_ref().duration(),
        }
    }
}

/// The node's cache: shared by every route that caches, kept across reloads.
pub struct Cache {
    store: Store,
    /// The disk tier, if configured.
    pub disk: Option<Arc<disk::Disk>>,
    /// Fetches in flight, for collapsing.
    pub flights: Flights,
    /// The largest object stored.
    pub max_object_bytes: usize,
    /// Its sizes.
    pub config: CacheConfig,
    /// The clock freshness is judged by (virtual in replays).
    pub clock: Clock,
    /// Its counters.
    pub metrics: CacheMetrics,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("config", &self.config)
            .field("objects", &self.store.len())
            .finish()
    }
}

impl Cache {
    /// An empty memory tier over the configured disk tier (opened, and indexed, now;
    /// a directory that cannot be used leaves the cache memory-only, with an error
    /// logged).
    pub fn new(config: CacheConfig, clock: Clock, metrics: CacheMetrics) -> Cache {
        let disk = config.disk.as_ref().and_then(|(dir, budget)| {
            match disk::Disk::open(dir, *budget) {
                Ok(d) => {
                    tracing::info!(dir = %dir.display(), objects = d.len(), "cache: disk tier open");
                    Some(Arc::new(d))
                }
                Err(e) => {
                    tracing::error!(dir = %dir.display(), "cache: the disk tier cannot be used: {e}");
                    None
                }
            }
        });
        // An estimate of the item count only sizes the table; 16 KiB an object.
        let items = usize::try_from(config.memory_bytes / 16_384)
            .unwrap_or(usize::MAX)
            .clamp(64, 1 << 22);
        // quick_cache splits the budget into shards and admits no entry heavier
        // than one shard: as many shards as fit two of the largest objects each,
        // from the configuration alone (not the machine's CPUs), so a replay
        // evicts the same objects anywhere.
        let fit = config.memory_bytes / (2 * config.max_object_bytes.max(1) as u64);
        let shards = usize::try_from(fit.clamp(1, 16))
            .unwrap_or(1)
            .next_power_of_two();
        let shards = if shards as u64 > fit.max(1) {
            (shards / 2).max(1)
        } else {
            shards
        };
        let options = quick_cache::OptionsBuilder::new()
            .estimated_items_capacity(items)
            .weight_capacity(config.memory_bytes.max(1))
            .shards(shards)
            .build();
        let evict = Evict(metrics.evicted.clone());
        let store = match options {
            Ok(o) => Store::with_options(o, Weigh, Default::default(), evict),
            Err(_) => Store::with(
                items,
                config.memory_bytes.max(1),
                Weigh,
                Default::default(),
                evict,
            ),
        };
        Cache {
            disk,
            store,
            flights: Flights::default(),
            max_object_bytes: config.max_object_bytes,
            config,
            clock,
            metrics,
        }
    }

    /// The time freshness is judged at.
    pub fn now(&self) -> SystemTime {
        self.clock.system_time()
    }

    /// What `key` holds.
    pub fn get(&self, key: &str) -> Option<Entry> {
        let e = self.store.get(key)?;
        if let Entry::Pass { until_ns } = e
            && self.clock.monotonic_ns() >= until_ns
        {
            return None;
        }
        Some(e)
    }

    /// What the disk tier holds under `key`, brought into memory.
    pub async fn load(&self, key: &Arc<str>) -> Option<Entry> {
        let disk = self.disk.clone()?;
        let k = key.clone();
        let s = tokio::task::spawn_blocking(move || disk.load(&k))
            .await
            .ok()??;
        self.metrics.disk_reads.inc();
        let s = Arc::new(s);
        self.remember(key.clone(), s.clone());
        Some(Entry::Variants(Arc::from([s])))
    }

    /// Store `s` under `key`, in place of the variant it matches (same `Vary`
    /// selection) or beside the others, and write it to the disk tier.
    pub fn insert(&self, key: Arc<str>, s: Stored) {
        let s = Arc::new(s);
        self.metrics.stored.inc();
        self.remember(key.clone(), s.clone());
        if let Some(disk) = self.disk.clone() {
            let ticket = disk.ticket();
            let write = move || disk.store(&key, &s, ticket);
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => drop(rt.spawn_blocking(write)),
                Err(_) => write(),
            }
        }
    }

    /// Keep `s` in the memory tier.
    fn remember(&self, key: Arc<str>, s: Arc<Stored>) {
        let mut variants: Vec<Arc<Stored>> = vec![s.clone()];
        if let Some(Entry::Variants(old)) = self.store.get(&*key) {
            let vary = |x: &Stored| x.headers.get(http::header::VARY).cloned();
            for o in old.iter() {
                if variants.len() < MAX_VARIANTS && vary(o) == vary(&s) && o.vary_key != s.vary_key
                {
                    variants.push(o.clone());
                }
            }
        }
        self.store.insert(key, Entry::Variants(variants.into()));
    }

    /// Mark `key` pass for the configured while: its responses are uncacheable.
    pub fn mark_pass(&self, key: &Arc<str>) {
        let until_ns = self.clock.monotonic_ns() + self.config.hit_for_pass.as_nanos() as u64;
        self.store.insert(key.clone(), Entry::Pass { until_ns });
        // The copy on disk is no longer the object either.
        if let Some(d) = &self.disk {
            d.remove(key);
        }
    }

    /// Forget `key` (an unsafe method changed it, or a purge), in both tiers.
    pub fn remove(&self, key: &str) -> bool {
        let on_disk = self.disk.as_ref().is_some_and(|d| d.remove(key));
        self.store.remove(key).is_some() || on_disk
    }

    /// Forget every key that starts with `prefix`, in both tiers; how many keys.
    pub fn purge_prefix(&self, prefix: &str) -> usize {
        let mem = self.purge_where(|k, _| k.starts_with(prefix));
        let disk = self
            .disk
            .as_ref()
            .map_or(0, |d| d.purge_where(|k, _| k.starts_with(prefix)));
        mem.max(disk)
    }

    /// Forget every object the origin tagged `tag` (`Surrogate-Key`), in both
    /// tiers; how many keys.
    pub fn purge_tag(&self, tag: &str) -> usize {
        let mem = self.purge_where(|_, e| match e {
            Entry::Variants(v) => v.iter().any(|s| s.tags.iter().any(|t| t == tag)),
            Entry::Pass { .. } => false,
        });
        let tagged = |_: &str, tags: &[String]| tags.iter().any(|t| t == tag);
        let disk = self.disk.as_ref().map_or(0, |d| d.purge_where(tagged));
        mem.max(disk)
    }

    fn purge_where(&self, doomed: impl Fn(&str, &Entry) -> bool) -> usize {
        let n = std::cell::Cell::new(0);
        self.store.retain(|k, e| {
            let gone = doomed(k, e);
            n.set(n.get() + usize::from(gone));
            !gone
        });
        n.get()
    }

    /// Bytes held.
    pub fn weight(&self) -> u64 {
        self.store.weight()
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }
}

/// The cache's own counters and gauges (per-route hit and miss counts are the
/// route's).
#[derive(Clone, Default)]
pub struct CacheMetrics {
    /// Objects stored.
    pub stored: Counter,
    /// Objects not stored for their size.
    pub too_large: Counter,
    /// Objects brought into memory from the disk tier.
    pub disk_reads: Counter,
    /// Keys the memory budget evicted.
    pub evicted: Counter,
    /// Bytes held on disk, set at scrape.
    pub disk_bytes: Gauge,
    /// Bytes held, set at scrape.
    pub bytes: Gauge,
    /// Keys held, set at scrape.
    pub objects: Gauge,
}

impl CacheMetrics {
    /// Register the families in `reg`.
    pub fn register(reg: &mut Registry) -> CacheMetrics {
        let m = CacheMetrics::default();
        reg.register(
            "outpost_cache_stored",
            "Responses stored in the edge cache",
            m.stored.clone(),
        );
        reg.register(
            "outpost_cache_too_large",
            "Responses not stored because they passed the object size limit",
            m.too_large.clone(),
        );
        reg.register(
            "outpost_cache_evicted",
            "Keys evicted from the edge cache's memory tier by its budget",
            m.evicted.clone(),
        );
        reg.register(
            "outpost_cache_disk_reads",
            "Objects brought into memory from the disk tier",
            m.disk_reads.clone(),
        );
        reg.register(
            "outpost_cache_disk_bytes",
            "Bytes held by the edge cache's disk tier",
            m.disk_bytes.clone(),
        );
        reg.register(
            "outpost_cache_bytes",
            "Bytes held by the edge cache",
            m.bytes.clone(),
        );
        reg.register(
            "outpost_cache_objects",
            "Keys held by the edge cache",
            m.objects.clone(),
        );
        m
    }

    /// Read the gauges off `cache`.
    pub fn set_gauges(&self, cache: &Cache) {
        self.bytes
            .set(i64::try_from(cache.weight()).unwrap_or(i64::MAX));
        self.objects
            .set(i64::try_from(cache.len()).unwrap_or(i64::MAX));
    }
}
