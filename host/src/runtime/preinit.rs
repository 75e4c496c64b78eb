//! Pre-initialization (`outpost:edge/init`): a guest that exports `init` is
//! instantiated once when the node loads it, with its configuration and under its
//! bounds; `init` runs (the configuration parsed, tables built), and the instance's
//! memories and globals are snapshotted into a new component (wasmtime-wizer's
//! component support: it instruments the component so its state can be read, and
//! rewrites the data segments from what it read). Every request's fresh instance
//! then starts from that state, copy-on-write from the pool's image, instead of
//! redoing the start-up work. The instrumented component goes through the compile
//! cache (it depends on the wasm alone); the snapshot is compiled at every load of
//! a live node, and cached in a replay, where it is the same every load.

use std::sync::Arc;

use wasmtime::Store;
use wasmtime::component::{Instance, Lift, WasmList};
use wasmtime_wizer::{ComponentInstanceState, Wizer};

use super::{CompileCache, Guest, GuestState, Linked, Runtime, classify};
use crate::contract::bindings::init;
use crate::error::GuestError;
use crate::limiter::LoadSource;

impl Runtime {
    /// `guest` (loaded from `wasm`) pre-initialized, if it exports `init`; None if
    /// it does not. A trap in `init` refuses the guest, with its error.
    pub async fn pre_initialize(
        &self,
        guest: &Arc<Guest>,
        wasm: &[u8],
        cache: Option<&CompileCache>,
    ) -> Result<Option<Arc<Guest>>, GuestError> {
        if init::GuestIndices::new(&guest.pre).is_err() {
            return Ok(None);
        }
        let failed = |stage: &str, e: wasmtime::Error| GuestError::Load {
            guest: guest.name.to_string(),
            message: format!("pre-initialization failed ({stage}): {e:#}"),
        };
        let mut wizer = Wizer::new();
        wizer.keep_init_func(true);
        // Instrumenting parses and rewrites the guest's own bytes: a panic there (a
        // malformed component wizer does not expect) refuses this guest, not the node.
        let instrumented = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wizer.instrument_component(wasm)
        }))
        .unwrap_or_else(|_| Err(wasmtime::Error::msg("the instrumenter panicked")));
        let (cx, instrumented) = instrumented.map_err(|e| failed("instrumenting", e))?;
        let component = self
            .compile(&instrumented, cache)
            .map_err(|e| failed("compiling", e))?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| failed("linking", e))?;
        let indices = init::GuestIndices::new(&pre).map_err(|e| failed("linking", e))?;
        let mut store = guest.store(self, LoadSource::default());
        let ran = async {
            let instance = pre.instantiate_async(&mut store).await?;
            indices
                .load(&mut store, &instance)?
                .call_init(&mut store)
                .await?;
            wasmtime::Result::Ok(instance)
        }
        .await;
        let instance = match ran {
            Ok(i) => i,
            Err(e) => {
                let seen = guest.seen(&store);
                return Err(GuestError::Load {
                    guest: guest.name.to_string(),
                    message: format!(
                        "its start-up (`init`) failed: {}",
                        classify(&guest.name, e, seen)
                    ),
                });
            }
        };
        // The snapshot's accessor calls are the node's, not the guest's: they get a
        // deadline of their own, not what `init` left of the guest's.
        store.data_mut().ticks = 0;
        store.set_epoch_deadline(1);
        let mut state = Snapshot {
            store: &mut store,
            instance,
            error: None,
        };
        let snapshot = wizer
            .snapshot_component(&cx, &mut state)
            .await
            .map_err(|e| failed("snapshot", e))?;
        if let Some(e) = state.error {
            return Err(failed("reading its state", e));
        }
        // A snapshot holds whatever `init` left in memory, hash seeds drawn from
        // `wasi:random` included. Live, those are real random and differ on every
        // load: each would be a new cache entry never read again. In a replay they
        // come from a fixed stream (`wasi_ctx`), so the same guest and config give
        // the same snapshot, and the compile cache spares the next replay its
        // compilation.
        let cache = if self.clock.is_virtual() { cache } else { None };
        let component = self
            .compile(&snapshot, cache)
            .map_err(|e| failed("compiling the snapshot", e))?;
        let parts = Linked {
            name: guest.name.clone(),
            limits: guest.limits,
            config: guest.config.clone(),
            shared: guest.shared.clone(),
            metrics: guest.metrics.clone(),
        };
        let mut initialized = self.link(&component, parts)?;
        if let Some(g) = Arc::get_mut(&mut initialized) {
            g.pre_initialized = true;
        }
        Ok(Some(initialized))
    }
}

/// The instrumented instance whose state the snapshot reads, through the accessor
/// functions wizer added. The trait's calls cannot fail, so the first error is
/// kept here and refuses the guest once the snapshot is done.
struct Snapshot<'a> {
    store: &'a mut Store<GuestState>,
    instance: Instance,
    error: Option<wasmtime::Error>,
}

impl Snapshot<'_> {
    /// Call `instance#func` (no parameters, one result) and hand its result to
    /// `then`; on failure, keep the error and return the default.
    async fn call<R, O>(
        &mut self,
        instance: &str,
        func: &str,
        then: impl FnOnce(&Store<GuestState>, R) -> O,
    ) -> O
    where
        R: Lift + Send + Sync + 'static,
        O: Default,
    {
        let result = async {
            let (_, outer) = self
                .instance
                .get_export(&mut *self.store, None, instance)
                .ok_or_else(|| wasmtime::format_err!("no export `{instance}`"))?;
            let (_, f) = self
                .instance
                .get_export(&mut *self.store, Some(&outer), func)
                .ok_or_else(|| wasmtime::format_err!("no export `{instance}#{func}`"))?;
            let f = self
                .instance
                .get_typed_func::<(), (R,)>(&mut *self.store, f)?;
            let (r,) = f.call_async(&mut *self.store, ()).await?;
            wasmtime::Result::Ok(r)
        }
        .await;
        match result {
            Ok(r) => then(self.store, r),
            Err(e) => {
                self.error.get_or_insert(e);
                O::default()
            }
        }
    }
}

impl ComponentInstanceState for Snapshot<'_> {
    async fn call_func_ret_list_u8(
        &mut self,
        instance: &str,
        func: &str,
        contents: impl FnOnce(&[u8]) + Send,
    ) {
        self.call(instance, func, |store, list: WasmList<u8>| {
            contents(list.as_le_slice(store));
        })
        .await;
    }

    async fn call_func_ret_s32(&mut self, instance: &str, func: &str) -> i32 {
        self.call(instance, func, |_, r: i32| r).await
    }

    async fn call_func_ret_s64(&mut self, instance: &str, func: &str) -> i64 {
        self.call(instance, func, |_, r: i64| r).await
    }

    async fn call_func_ret_f32(&mut self, instance: &str, func: &str) -> u32 {
        self.call(instance, func, |_, r: f32| r.to_bits()).await
    }

    async fn call_func_ret_f64(&mut self, instance: &str, func: &str) -> u64 {
        self.call(instance, func, |_, r: f64| r.to_bits()).await
    }
}
