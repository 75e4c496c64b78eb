//! Running guests: the wasmtime engine, the epoch ticker, loading components (with an
//! on-disk cache of compiled code) and invoking one hook in a fresh, bounded instance.

mod cache;
mod host_impl;
mod metrics;
mod preinit;
mod speculate;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::component::{Component, InstancePre, Linker, ResourceTable};
use wasmtime::{Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimits};
use wasmtime::{StoreLimitsBuilder, UpdateDeadline};

use crate::contract::bindings::{
    self, admit_hook, config_check, request_hook, response_hook, types,
};
use crate::error::GuestError;
use crate::limiter::LoadSource;

pub use cache::CompileCache;
pub use metrics::{GuestFamilies, GuestMetrics};
pub use speculate::{Memo, Role, Speculation};

/// Hooks a guest exports, found in its component when it loads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hooks {
    /// Exports `outpost:edge/admit-hook`.
    pub admit: bool,
    /// Exports `outpost:edge/request-hook`.
    pub request: bool,
    /// Exports `outpost:edge/response-hook`.
    pub response: bool,
}

impl std::fmt::Display for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = [
            (self.admit, "admit"),
            (self.request, "request"),
            (self.response, "response"),
        ]
        .into_iter()
        .filter_map(|(on, n)| on.then_some(n))
        .collect();
        if names.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&names.join(", "))
        }
    }
}

/// Tuning of the engine, from the node config.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Instances that may exist at once.
    pub max_instances: u32,
    /// The largest linear memory any guest may have, bytes.
    pub max_memory_bytes: usize,
    /// Epoch tick period.
    pub tick: Duration,
    /// Keep the pages an instance touched resident when its pool slot is reused.
    pub keep_resident: bool,
}

/// Load `wasm` as the node would (compile, check the contract version, link, find
/// its hooks); the hooks it exports, or why it cannot be loaded.
pub fn inspect(wasm: &[u8]) -> Result<String, String> {
    let runtime = Runtime::new(&EngineOptions {
        max_instances: 4,
        max_memory_bytes: 16 << 20,
        tick: Duration::from_millis(1),
        keep_resident: false,
    })
    .map_err(|e| format!("cannot start the wasm engine: {e:#}"))?;
    let guest = runtime
        .load(
            "guest",
            wasm,
            GuestLimits {
                memory_bytes: 16 << 20,
                cpu: Duration::from_millis(50),
                reuse: 0,
            },
            BTreeMap::new(),
            None,
            GuestMetrics::default(),
        )
        .map_err(|e| e.to_string())?;
    Ok(guest.hooks.to_string())
}

/// The shared wasmtime engine and its epoch ticker. Dropping it stops the ticker.
pub struct Runtime {
    engine: Engine,
    linker: Linker<GuestState>,
    tick: Duration,
    stop: Arc<AtomicBool>,
    clock: crate::clock::Clock,
    /// Its part in a speculated replay, if any (see `speculate`); the flag spares
    /// a live node's guest calls the lock.
    speculation: std::sync::RwLock<Option<Arc<Speculation>>>,
    speculating: AtomicBool,
    /// It runs a route's shadow candidates (`proxy::shadow`): their calls count in
    /// the guests' shadow metrics and their `shared-set`s stay in their instance.
    shadow: bool,
}

impl Runtime {
    /// Give guests this clock (`now-ns`, `unix-time`): virtual in replays.
    pub fn set_clock(&mut self, clock: crate::clock::Clock) {
        self.clock = clock;
    }

    /// An engine with the pooling allocator and epoch interruption, and its ticker thread.
    pub fn new(opts: &EngineOptions) -> anyhow::Result<Runtime> {
        let mut pool = PoolingAllocationConfig::new();
        let n = opts.max_instances.max(1);
        pool.total_component_instances(n)
            .total_core_instances(n.saturating_mul(4))
            .total_memories(n.saturating_mul(2))
            .total_tables(n.saturating_mul(4))
            .total_stacks(n)
            .max_core_instances_per_component(16)
            .max_memories_per_component(2)
            .max_tables_per_component(8)
            .max_memory_size(opts.max_memory_bytes)
            .pagemap_scan(wasmtime::Enabled::Auto);
        if opts.keep_resident {
            // Keep the pages a request touched mapped: a fresh instance then costs no
            // page faults (see ARCHITECTURE.md, "Instance policy").
            pool.linear_memory_keep_resident(2 << 20)
                .table_keep_resident(64 << 10)
                .async_stack_keep_resident(128 << 10);
        }
        let mut config = wasmtime::Config::new();
        config
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            .cranelift_opt_level(wasmtime::OptLevel::Speed);
        // `OUTPOST_PROFILE=perfmap`: write /tmp/perf-<pid>.map so `perf report` names
        // guest functions (see benches/README.md, "Profiling").
        if std::env::var_os("OUTPOST_PROFILE").is_some_and(|v| v == "perfmap") {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        bindings::host::add_to_linker::<GuestState, wasmtime::component::HasSelf<GuestState>>(
            &mut linker,
            |s| s,
        )?;

        let stop = Arc::new(AtomicBool::new(false));
        let ticker_engine = engine.clone();
        let ticker_stop = stop.clone();
        let tick = opts.tick.max(Duration::from_micros(100));
        std::thread::Builder::new()
            .name("outpost-epoch".into())
            .spawn(move || {
                // Tick on an absolute schedule so sleep overshoot does not stretch
                // every guest's deadline.
                let mut next = std::time::Instant::now();
                while !ticker_stop.load(Ordering::Relaxed) {
                    next += tick;
                    let now = std::time::Instant::now();
                    match next.checked_duration_since(now) {
                        Some(wait) => std::thread::sleep(wait),
                        None => next = now,
                    }
                    ticker_engine.increment_epoch();
                }
            })?;
        Ok(Runtime {
            engine,
            linker,
            tick,
            stop,
            clock: crate::clock::Clock::default(),
            speculation: std::sync::RwLock::new(None),
            speculating: AtomicBool::new(false),
            shadow: false,
        })
    }

    /// Take part in a speculated replay (`None`: no longer).
    pub fn speculate(&self, s: Option<Arc<Speculation>>) {
        self.speculating.store(s.is_some(), Ordering::Release);
        *self.speculation.write().unwrap_or_else(|p| p.into_inner()) = s;
    }

    fn speculation(&self) -> Option<Arc<Speculation>> {
        if !self.speculating.load(Ordering::Acquire) {
            return None;
        }
        self.speculation
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Another runtime on the same engine and guests, with `clock`, a part in a
    /// speculated replay or none, and `shadow` (its drop leaves the epoch ticker
    /// running: the ticker is this runtime's).
    fn sibling(
        &self,
        clock: crate::clock::Clock,
        speculation: Option<Arc<Speculation>>,
        shadow: bool,
    ) -> Runtime {
        Runtime {
            engine: self.engine.clone(),
            linker: self.linker.clone(),
            tick: self.tick,
            stop: Arc::new(AtomicBool::new(false)),
            clock,
            speculating: AtomicBool::new(speculation.is_some()),
            speculation: std::sync::RwLock::new(speculation),
            shadow,
        }
    }

    /// A runtime for a thread that runs guests ahead of a replay: the same engine
    /// and guests, its own clock and part.
    pub fn ahead(&self, clock: crate::clock::Clock, s: Arc<Speculation>) -> Runtime {
        self.sibling(clock, Some(s), false)
    }

    /// A runtime for the shadow runs of route candidates: the same engine, clock
    /// and guests; calls counted apart, and writes to a guest's shared store kept
    /// in the instance that made them.
    pub fn for_shadow(&self) -> Runtime {
        self.sibling(self.clock.clone(), None, true)
    }

    /// Whether it runs shadow candidates ([`Self::for_shadow`]).
    pub fn is_shadow(&self) -> bool {
        self.shadow
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Compile (or load from `cache`) and link a guest.
    pub fn load(
        &self,
        name: &str,
        wasm: &[u8],
        limits: GuestLimits,
        config: BTreeMap<String, String>,
        cache: Option<&CompileCache>,
        metrics: GuestMetrics,
    ) -> Result<Arc<Guest>, GuestError> {
        let component = self.compile(wasm, cache).map_err(|e| GuestError::Load {
            guest: name.to_string(),
            message: format!("not a valid WebAssembly component: {e:#}"),
        })?;
        let parts = Linked {
            name: name.into(),
            limits,
            config: Arc::new(config),
            shared: Arc::default(),
            metrics,
        };
        self.link(&component, parts)
    }

    /// Compile `wasm` (or take it from `cache`).
    fn compile(&self, wasm: &[u8], cache: Option<&CompileCache>) -> wasmtime::Result<Component> {
        match cache {
            Some(c) => c.component(&self.engine, wasm),
            None => Component::new(&self.engine, wasm),
        }
    }

    /// The contract version a guest was built against, when it is not this node's
    /// (read from the `outpost:edge/...@V` names it imports and exports).
    fn contract_version(&self, component: &Component) -> Option<String> {
        let ty = component.component_type();
        let imports = ty.imports(&self.engine).map(|(n, _)| n);
        let exports = ty.exports(&self.engine).map(|(n, _)| n);
        imports
            .chain(exports)
            .filter_map(crate::contract::version_of)
            .find(|v| *v != crate::contract::VERSION)
            .map(str::to_string)
    }

    /// Link a compiled guest and find the hooks it exports.
    fn link(&self, component: &Component, parts: Linked) -> Result<Arc<Guest>, GuestError> {
        let Linked {
            name,
            limits,
            config,
            shared,
            metrics,
        } = parts;
        let name = &*name;
        if let Some(theirs) = self.contract_version(component) {
            return Err(GuestError::Load {
                guest: name.to_string(),
                message: format!(
                    "built against the contract {pkg}@{theirs}, and this node speaks \
                     {pkg}@{ours}: rebuild the guest with the SDK of this node's version",
                    pkg = crate::contract::PACKAGE,
                    ours = crate::contract::VERSION,
                ),
            });
        }
        let pre = self
            .linker
            .instantiate_pre(component)
            .map_err(|e| GuestError::Load {
                guest: name.to_string(),
                message: format!("cannot link: {e:#}"),
            })?;
        let admit = admit_hook::GuestIndices::new(&pre).ok();
        let request = request_hook::GuestIndices::new(&pre).ok();
        let response = response_hook::GuestIndices::new(&pre).ok();
        let check = config_check::GuestIndices::new(&pre).ok();
        let hooks = Hooks {
            admit: admit.is_some(),
            request: request.is_some(),
            response: response.is_some(),
        };
        if hooks == Hooks::default() {
            return Err(GuestError::Load {
                guest: name.to_string(),
                message:
                    "exports no hook: expected at least one of `outpost:edge/admit-hook@0.1.0`, \
                          `outpost:edge/request-hook@0.1.0`, `outpost:edge/response-hook@0.1.0`"
                        .into(),
            });
        }
        let deadline_ticks = (limits.cpu.as_micros() / self.tick.as_micros().max(1)).max(1) as u64;
        // Only imports whose every answer a trace sees, or that answer the same
        // every time in the guests' deny-by-default context (no preopens, no
        // environment, no stdio), and in a replay `wasi:random` (a fixed stream,
        // the same from the start of every instance: `wasi_ctx`): anything else
        // (`wasi:clocks`, `wasi:sockets`...) and its calls are never run ahead.
        let fixed_random = self.clock.is_virtual();
        let unseen = component
            .component_type()
            .imports(&self.engine)
            .any(|(n, _)| {
                let alike = ["outpost:edge/", "wasi:io/", "wasi:cli/", "wasi:filesystem/"]
                    .iter()
                    .any(|p| n.starts_with(p));
                !(alike || fixed_random && n.starts_with("wasi:random/"))
            });
        Ok(Arc::new(Guest {
            name: name.into(),
            pre,
            admit,
            request,
            response,
            check,
            hooks,
            limits,
            deadline_ticks,
            config,
            shared,
            reuse: limits.reuse,
            idle: std::sync::Mutex::new(Vec::new()),
            metrics,
            pre_initialized: false,
            speculable: limits.reuse <= 1 && !unseen,
        }))
    }
}

/// What a guest is linked with, besides its component.
struct Linked {
    name: Arc<str>,
    limits: GuestLimits,
    config: Arc<BTreeMap<String, String>>,
    shared: Arc<SharedStore>,
    metrics: GuestMetrics,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Per-guest bounds.
#[derive(Debug, Clone, Copy)]
pub struct GuestLimits {
    /// Linear memory cap, bytes.
    pub memory_bytes: usize,
    /// CPU deadline per invocation.
    pub cpu: Duration,
    /// Calls one instance may serve before it is dropped. 0 or 1: a fresh instance
    /// for every call (the default, full isolation). More trades isolation between
    /// requests for speed: only for guests that keep no state.
    pub reuse: u32,
}

/// A loaded guest: linked once, instantiated fresh for every invocation.
pub struct Guest {
    /// The guest's name in the config.
    pub name: Arc<str>,
    pre: InstancePre<GuestState>,
    admit: Option<admit_hook::GuestIndices>,
    request: Option<request_hook::GuestIndices>,
    response: Option<response_hook::GuestIndices>,
    check: Option<config_check::GuestIndices>,
    /// The hooks it exports.
    pub hooks: Hooks,
    /// Its bounds.
    pub limits: GuestLimits,
    deadline_ticks: u64,
    config: Arc<BTreeMap<String, String>>,
    /// Its shared store.
    pub shared: Arc<SharedStore>,
    /// Calls one instance may serve (0 or 1: a fresh instance per call).
    reuse: u32,
    idle: std::sync::Mutex<Vec<Live>>,
    /// Its counters.
    pub metrics: GuestMetrics,
    /// Its instances start from a snapshot taken after its `init` (see `preinit`).
    pub pre_initialized: bool,
    /// Whether its calls may be run ahead of a replay: a fresh instance per call,
    /// and no import whose answers a trace cannot see (`wasi:clocks`, and
    /// `wasi:random` unless the clock is virtual and its stream fixed).
    speculable: bool,
}

/// A store's resource limits ([`StoreLimits`]), remembering whether they refused a
/// memory growth: a failed call is then classified as over its memory cap by what
/// happened, not by the wording of the trap.
pub struct Limits {
    inner: StoreLimits,
    memory_refused: bool,
}

impl wasmtime::ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.inner.memory_growing(current, desired, maximum);
        if !matches!(allowed, Ok(true)) {
            self.memory_refused = true;
        }
        allowed
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.memory_refused = true;
        self.inner.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

/// What the store saw of a failed call, for [`classify`].
#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    past_deadline: bool,
    memory_refused: bool,
}

/// The data of one guest instance's store.
pub struct GuestState {
    limits: Limits,
    wasi: wasmtime_wasi::WasiCtx,
    table: ResourceTable,
    guest: Arc<str>,
    config: Arc<BTreeMap<String, String>>,
    shared: Arc<SharedStore>,
    clock: crate::clock::Clock,
    load: LoadSource,
    ticks: u64,
    /// Log lines this instance has written (capped: `host_impl::MAX_LOG_LINES`).
    logged: u32,
    /// Ahead of a replay: every question the guest asks the host, and the answer.
    asked: Option<Vec<speculate::Asked>>,
    /// It asked more than a trace holds.
    asked_too_much: bool,
    /// In a shadow run: its `shared-set`s, which it reads back and nobody else
    /// sees (a candidate decides nothing, and changes no live state either).
    overlay: Option<std::collections::HashMap<String, String>>,
}

/// A guest's shared store (`host.shared-get` / `shared-set`): bounded, per guest,
/// per node.
#[derive(Default)]
pub struct SharedStore(std::sync::Mutex<std::collections::HashMap<String, String>>);

impl SharedStore {
    /// Keys a store holds at most.
    pub const MAX_KEYS: usize = outpost_common::store::MAX_KEYS;

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    /// Whether to write `key` would pass the bounds, with `pending` keys (a
    /// shadow run's overlay) written over the store as it is.
    pub fn check_over(
        &self,
        pending: &std::collections::HashMap<String, String>,
        key: &str,
        value: &str,
    ) -> Result<(), &'static str> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let len = map.len() + pending.keys().filter(|k| !map.contains_key(*k)).count();
        let exists = map.contains_key(key) || pending.contains_key(key);
        outpost_common::store::check_write(key, value, len, exists)
    }

    /// Set `key`; refused past the bounds (`outpost_common::store`, which the
    /// SDK's test double enforces too).
    pub fn set(&self, key: String, value: String) -> Result<(), &'static str> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        outpost_common::store::check_write(&key, &value, map.len(), map.contains_key(&key))?;
        map.insert(key, value);
        Ok(())
    }
}

impl wasmtime_wasi::WasiView for GuestState {
    fn ctx(&mut self) -> wasmtime_wasi::WasiCtxView<'_> {
        wasmtime_wasi::WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl Guest {
    fn store(&self, runtime: &Runtime, load: LoadSource) -> Store<GuestState> {
        let state = GuestState {
            limits: Limits {
                inner: StoreLimitsBuilder::new()
                    .memory_size(self.limits.memory_bytes)
                    .instances(32)
                    .tables(32)
                    .memories(4)
                    .trap_on_grow_failure(true)
                    .build(),
                memory_refused: false,
            },
            wasi: wasi_ctx(runtime.clock.is_virtual()),
            table: ResourceTable::new(),
            guest: self.name.clone(),
            config: self.config.clone(),
            shared: self.shared.clone(),
            clock: runtime.clock.clone(),
            load,
            ticks: 0,
            logged: 0,
            asked: None,
            asked_too_much: false,
            overlay: runtime.shadow.then(Default::default),
        };
        let mut store = Store::new(&runtime.engine, state);
        store.limiter(|s| &mut s.limits);
        let deadline = self.deadline_ticks;
        store.set_epoch_deadline(1);
        // Every tick the guest is still running, count it; past the deadline, trap.
        // Yielding in between lets the worker thread serve other requests.
        store.epoch_deadline_callback(move |mut cx| {
            let s = cx.data_mut();
            s.ticks += 1;
            if s.ticks >= deadline {
                Err(wasmtime::Trap::Interrupt.into())
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store
    }

    /// Run the admit hook.
    pub async fn admit(
        &self,
        runtime: &Runtime,
        load: LoadSource,
        req: &types::RequestHead,
    ) -> Result<types::AdmitDecision, GuestError> {
        match self.invoke(runtime, load, Call::Admit(req)).await? {
            Out::Admit(d) => Ok(d),
            _ => Err(self.missing("admit")),
        }
    }

    /// Run the request hook.
    pub async fn request(
        &self,
        runtime: &Runtime,
        load: LoadSource,
        req: &types::RequestHead,
    ) -> Result<types::RequestAction, GuestError> {
        match self.invoke(runtime, load, Call::Request(req)).await? {
            Out::Request(a) => Ok(a),
            _ => Err(self.missing("request")),
        }
    }

    /// Run the response hook.
    pub async fn response(
        &self,
        runtime: &Runtime,
        load: LoadSource,
        req: &types::RequestHead,
        resp: &types::ResponseHead,
        body: Option<&[u8]>,
    ) -> Result<types::ResponseEdit, GuestError> {
        match self
            .invoke(runtime, load, Call::Response(req, resp, body))
            .await?
        {
            Out::Response(e) => Ok(e),
            _ => Err(self.missing("response")),
        }
    }

    /// Run the guest's configuration check (`config-check`), if it exports one, in a
    /// fresh instance under its bounds. `Ok(vec![])` when it has none or finds
    /// nothing wrong.
    pub async fn check_config(
        &self,
        runtime: &Runtime,
        origins: Vec<String>,
    ) -> Result<Vec<config_check::ConfigProblem>, GuestError> {
        let Some(indices) = &self.check else {
            return Ok(Vec::new());
        };
        let mut store = self.store(runtime, LoadSource::default());
        let run = async {
            let instance = self.pre.instantiate_async(&mut store).await?;
            let check = indices.load(&mut store, &instance)?;
            check
                .call_check(&mut store, &config_check::CheckContext { origins })
                .await
        };
        let out = run.await;
        let seen = self.seen(&store);
        out.map_err(|e| classify(&self.name, e, seen))
    }

    /// Run the request hook `n` times on one instance, whatever the guest's reuse
    /// setting: for the benchmarks that measure what reuse saves.
    pub async fn request_reused(
        &self,
        runtime: &Runtime,
        load: LoadSource,
        req: &types::RequestHead,
        n: usize,
    ) -> Result<(), GuestError> {
        let mut inst = self.instantiate(runtime, load).await?;
        for _ in 0..n {
            let Some(h) = &inst.request else {
                return Err(self.missing("request"));
            };
            inst.store.set_epoch_deadline(1);
            inst.store.data_mut().ticks = 0;
            h.call_on_request(&mut inst.store, req).await.map_err(|e| {
                let seen = Seen {
                    past_deadline: false,
                    ..self.seen(&inst.store)
                };
                classify(&self.name, e, seen)
            })?;
        }
        Ok(())
    }

    /// A fresh instance with every hook it exports looked up.
    async fn instantiate(&self, runtime: &Runtime, load: LoadSource) -> Result<Live, GuestError> {
        let mut store = self.store(runtime, load);
        let looked_up = async {
            let instance = self.pre.instantiate_async(&mut store).await?;
            let admit = match &self.admit {
                Some(i) => Some(i.load(&mut store, &instance)?),
                None => None,
            };
            let request = match &self.request {
                Some(i) => Some(i.load(&mut store, &instance)?),
                None => None,
            };
            let response = match &self.response {
                Some(i) => Some(i.load(&mut store, &instance)?),
                None => None,
            };
            wasmtime::Result::Ok((admit, request, response))
        }
        .await;
        match looked_up {
            Ok((admit, request, response)) => Ok(Live {
                store,
                admit,
                request,
                response,
                calls: 0,
            }),
            Err(e) => {
                let seen = self.seen(&store);
                Err(classify(&self.name, e, seen))
            }
        }
    }

    /// The one path every invocation takes: an instance (fresh, or a reused one when
    /// the operator opted in), one call under the guest's bounds, then teardown or
    /// return to the idle list. In a replay on several threads, first a traced
    /// call whose answers still hold (`speculate`); on a thread ahead, [`Self::ahead`].
    async fn invoke(
        &self,
        runtime: &Runtime,
        load: LoadSource,
        call: Call<'_>,
    ) -> Result<Out, GuestError> {
        let start = std::time::Instant::now();
        if let Some(s) = runtime.speculation() {
            match s.role {
                Role::Replay => {
                    if let Some(out) = s.taken(self, &call, &load, &runtime.clock) {
                        return Ok(out);
                    }
                }
                Role::Ahead => return self.ahead(runtime, load, call, &s).await,
            }
        }
        // A shadow run never takes or leaves an instance a live call could use: its
        // memory and its overlay of the shared store are its own.
        let reuse = if runtime.shadow { 0 } else { self.reuse };
        let reused = if reuse > 0 {
            self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
        } else {
            None
        };
        let mut inst = match reused {
            Some(mut inst) => {
                let data = inst.store.data_mut();
                data.load = load;
                data.ticks = 0;
                inst.store.set_epoch_deadline(1);
                inst
            }
            None => match self.instantiate(runtime, load).await {
                Ok(i) => i,
                Err(e) => return Err(self.failed(runtime, e, start)),
            },
        };
        let out = match call {
            Call::Admit(req) => match &inst.admit {
                Some(h) => h.call_on_admit(&mut inst.store, req).await.map(Out::Admit),
                None => return Err(self.missing("admit")),
            },
            Call::Request(req) => match &inst.request {
                Some(h) => h
                    .call_on_request(&mut inst.store, req)
                    .await
                    .map(Out::Request),
                None => return Err(self.missing("request")),
            },
            Call::Response(req, resp, body) => match &inst.response {
                Some(h) => h
                    .call_on_response(&mut inst.store, req, resp, body)
                    .await
                    .map(Out::Response),
                None => return Err(self.missing("response")),
            },
        };
        inst.calls += 1;
        let seen = self.seen(&inst.store);
        match out {
            Ok(v) => {
                // A trapped instance is never reused; a healthy one may be, up to its
                // call budget, if the operator marked the guest reusable.
                if inst.calls < reuse {
                    let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
                    if idle.len() < MAX_IDLE {
                        idle.push(inst);
                    }
                } else {
                    drop(inst);
                }
                let metrics = self.metrics.on(runtime);
                metrics.invocations.inc();
                metrics.duration.observe(start.elapsed());
                Ok(v)
            }
            Err(e) => {
                drop(inst);
                Err(self.failed(runtime, classify(&self.name, e, seen), start))
            }
        }
    }

    /// A call ahead of a replay: in a fresh instance, every question to the host
    /// traced, nothing counted; its trace kept if it succeeded.
    async fn ahead(
        &self,
        runtime: &Runtime,
        load: LoadSource,
        call: Call<'_>,
        s: &Speculation,
    ) -> Result<Out, GuestError> {
        if !self.speculable || matches!(call, Call::Response(..)) {
            return Err(GuestError::Load {
                guest: self.name.to_string(),
                message: "not run ahead of a replay".into(),
            });
        }
        let start = std::time::Instant::now();
        let mut inst = self.instantiate(runtime, load).await?;
        inst.store.data_mut().asked = Some(Vec::new());
        let out = match (&call, &inst.admit, &inst.request) {
            (Call::Admit(req), Some(h), _) => {
                h.call_on_admit(&mut inst.store, req).await.map(Out::Admit)
            }
            (Call::Request(req), _, Some(h)) => h
                .call_on_request(&mut inst.store, req)
                .await
                .map(Out::Request),
            _ => return Err(self.missing("admit or request")),
        };
        let seen = self.seen(&inst.store);
        let out = out.map_err(|e| classify(&self.name, e, seen))?;
        let data = inst.store.data_mut();
        if !data.asked_too_much {
            let asked = data.asked.take().unwrap_or_default();
            s.keep(self, &call, asked, &out, start.elapsed());
        }
        Ok(out)
    }

    /// What `store` saw: its deadline passed, its memory cap refused a growth.
    fn seen(&self, store: &Store<GuestState>) -> Seen {
        Seen {
            past_deadline: store.data().ticks >= self.deadline_ticks,
            memory_refused: store.data().limits.memory_refused,
        }
    }

    fn failed(&self, runtime: &Runtime, err: GuestError, start: std::time::Instant) -> GuestError {
        let metrics = self.metrics.on(runtime);
        metrics.invocations.inc();
        metrics.duration.observe(start.elapsed());
        metrics.record_failure(&err);
        err
    }

    fn missing(&self, hook: &str) -> GuestError {
        GuestError::Load {
            guest: self.name.to_string(),
            message: format!("does not export the {hook} hook"),
        }
    }
}

/// A guest's WASI context. Deny by default: no preopens, no env, no args, no
/// inherited stdio. On a virtual clock (a replay), `wasi:random` is a fixed stream
/// too, the same for every instance: a guest's hash seeds (and anything else it
/// draws) are the same every run, so a replay decides the same every run and a
/// pre-initialized snapshot is the same every load (and goes through the compile
/// cache). A live node's guests draw real randomness.
fn wasi_ctx(fixed: bool) -> wasmtime_wasi::WasiCtx {
    let mut b = wasmtime_wasi::WasiCtx::builder();
    if fixed {
        const STREAM: [u8; 16] = *b"outpost-replay-1";
        b.secure_random(wasmtime_wasi::random::Deterministic::new(STREAM.to_vec()))
            .insecure_random(wasmtime_wasi::random::Deterministic::new(STREAM.to_vec()))
            .insecure_random_seed(u128::from_le_bytes(STREAM));
    }
    b.build()
}

/// Idle instances kept per reusable guest.
pub const MAX_IDLE: usize = 64;

/// An instance and its looked-up hooks.
struct Live {
    store: Store<GuestState>,
    admit: Option<admit_hook::Guest>,
    request: Option<request_hook::Guest>,
    response: Option<response_hook::Guest>,
    calls: u32,
}

/// One hook call's arguments.
enum Call<'a> {
    Admit(&'a types::RequestHead),
    Request(&'a types::RequestHead),
    Response(
        &'a types::RequestHead,
        &'a types::ResponseHead,
        Option<&'a [u8]>,
    ),
}

/// One hook call's result.
#[derive(Clone)]
enum Out {
    Admit(types::AdmitDecision),
    Request(types::RequestAction),
    Response(types::ResponseEdit),
}

fn classify(guest: &Arc<str>, e: wasmtime::Error, seen: Seen) -> GuestError {
    let guest = guest.to_string();
    if seen.past_deadline
        || matches!(
            e.downcast_ref::<wasmtime::Trap>(),
            Some(wasmtime::Trap::Interrupt)
        )
    {
        return GuestError::Deadline { guest };
    }
    let message = format!("{e:#}");
    if seen.memory_refused {
        return GuestError::Memory { guest, message };
    }
    GuestError::Trap { guest, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guest_built_against_another_contract_version_is_refused_naming_both() {
        let runtime = Runtime::new(&EngineOptions {
            max_instances: 4,
            max_memory_bytes: 1 << 20,
            tick: Duration::from_millis(1),
            keep_resident: false,
        })
        .expect("engine");
        let component = |version: &str| {
            wat::parse_str(format!(
                r#"(component
                    (core module $m (func (export "f")))
                    (core instance $i (instantiate $m))
                    (func $f (canon lift (core func $i "f")))
                    (instance $hook (export "noop" (func $f)))
                    (export "outpost:edge/request-hook@{version}" (instance $hook)))"#
            ))
            .expect("wat")
        };
        let load = |wasm: &[u8]| {
            runtime
                .load(
                    "future",
                    wasm,
                    GuestLimits {
                        memory_bytes: 1 << 20,
                        cpu: Duration::from_millis(50),
                        reuse: 0,
                    },
                    BTreeMap::new(),
                    None,
                    GuestMetrics::default(),
                )
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        let newer = load(&component("0.2.0"));
        assert!(
            newer.contains("outpost:edge@0.2.0") && newer.contains("outpost:edge@0.1.0"),
            "{newer}"
        );
        // The same shape at this node's version is not refused for its version.
        let same = load(&component(crate::contract::VERSION));
        assert!(!same.contains("built against"), "{same}");
    }

    #[test]
    fn failures_are_classified_by_what_the_store_saw_not_by_their_wording() {
        let g: Arc<str> = "g".into();
        let kind = |message: &str, seen: Seen| {
            classify(&g, wasmtime::Error::msg(message.to_string()), seen).kind()
        };
        // A guest's own panic that mentions growing memory is a trap...
        assert_eq!(
            kind(
                "panicked: cannot grow the table, memory allocation failed",
                Seen::default()
            ),
            "trap"
        );
        // ...and a refused growth is memory, whatever the trap says.
        let refused = Seen {
            memory_refused: true,
            ..Seen::default()
        };
        assert_eq!(kind("wasm trap: unreachable", refused), "memory");
        // Past the deadline wins: the CPU bound was what stopped it.
        let late = Seen {
            past_deadline: true,
            memory_refused: true,
        };
        assert_eq!(kind("wasm trap: interrupt", late), "deadline");
    }
}
