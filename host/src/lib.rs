//! Outpost, the edge node: runs sandboxed WebAssembly guests on every request, in
//! front of the origin. The `outpost` binary is a thin CLI over this library, so
//! tests and benchmarks drive the same code.
//!
//! See ARCHITECTURE.md for the phases of a request and the module that owns each.

#![deny(missing_docs)]
// No function of the node over 80 lines of code (clippy.toml): each reads as one step.
#![warn(clippy::too_many_lines)]

// The layers, lowest first: a module uses only those listed before it
// (ARCHITECTURE.md draws them; `tests/layers.rs` holds every module to it). One
// group per line, so `rustfmt` keeps the order.

// Leaves: no dependency inside the crate.
pub mod body;
pub mod canon;
pub mod clock;
pub mod coding;

pub mod error;

pub mod tls;

pub mod metrics;

pub mod client;

pub mod contract;

pub mod decision;

pub mod demo;

pub mod limiter;

pub mod upstream;

pub mod cache;

pub mod record;

pub mod access;

pub mod tail;

pub mod runtime;

pub mod node;

pub mod proxy;

pub mod replay;

pub mod server;

pub mod console;

pub mod admin;

use std::net::SocketAddr;
use std::sync::Arc;

pub use edge_config::Config;
pub use node::{BuildOptions, Node, NodeSlot, Telemetry};

/// A running node: its listeners' addresses and the tasks serving them.
pub struct Running {
    /// The node serving requests (swapped by [`Running::reload`]).
    pub slot: NodeSlot,
    opts: BuildOptions,
    /// Where each configured listener listened at start (ports resolved); see
    /// [`Running::listening`] for now.
    pub listeners: Vec<SocketAddr>,
    /// Where the admin API listens, if enabled.
    pub admin: Option<SocketAddr>,
    /// The process's metrics (kept across reloads).
    pub telemetry: Arc<Telemetry>,
    /// Drains the listeners' connections.
    pub drain: server::Drain,
    /// The listeners serving now (a reload adds and removes them).
    bound: std::sync::Mutex<Vec<Bound>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// One listener serving: its configured address, where it listens, its task.
struct Bound {
    key: SocketAddr,
    local: SocketAddr,
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// The node serving requests now.
    pub fn node(&self) -> Arc<Node> {
        self.slot.current()
    }

    /// Where each listener serving now listens.
    pub fn listening(&self) -> Vec<SocketAddr> {
        self.bound
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|b| b.local)
            .collect()
    }

    /// Build a node from `config` and swap it in. New requests get the new node;
    /// requests in flight finish on the one they started with. Listeners follow
    /// the config, matched by address: a new one is bound (before the swap: one
    /// that cannot bind fails the reload), a removed one stops accepting and its
    /// connections drain; a kept one serves new connections with the new
    /// settings and certificates. On error nothing changes. The admin address is
    /// not rebound; counters keep counting.
    pub async fn reload(&self, config: Config) -> Result<(), Vec<edge_config::Diagnostic>> {
        let current = self.node();
        let opts = BuildOptions {
            demo_origin: current.demo_origin,
            cache: current.cache.clone(),
            ..self.opts.clone()
        };
        let node = Node::build(config, &opts).await?;
        let keys: Vec<SocketAddr> = node
            .config
            .listeners
            .iter()
            .map(|l| l.address.get_ref().0)
            .collect();
        let mut added = Vec::new();
        {
            let bound = self.bound.lock().unwrap_or_else(|p| p.into_inner());
            for (l, key) in node.config.listeners.iter().zip(&keys) {
                if bound.iter().any(|b| b.key == *key) {
                    continue;
                }
                match std::net::TcpListener::bind(key)
                    .and_then(|s| s.set_nonblocking(true).map(|()| s))
                    .and_then(tokio::net::TcpListener::from_std)
                {
                    Ok(listener) => added.push((*key, listener)),
                    Err(e) => {
                        return Err(vec![node.config.source().diagnostic(
                            l.address.span(),
                            format!("cannot listen on {key}: {e}"),
                        )]);
                    }
                }
            }
        }
        self.slot.replace(Arc::new(node));
        let mut bound = self.bound.lock().unwrap_or_else(|p| p.into_inner());
        bound.retain(|b| {
            let keep = keys.contains(&b.key);
            if !keep {
                tracing::info!(listener = %b.local, "listener removed: draining its connections");
                b.stop.cancel();
            }
            keep
        });
        for (key, listener) in added {
            if let Ok(b) = self.spawn_listener(key, listener) {
                tracing::info!(listener = %b.local, "listener added");
                bound.push(b);
            }
        }
        Ok(())
    }

    fn spawn_listener(
        &self,
        key: SocketAddr,
        listener: tokio::net::TcpListener,
    ) -> std::io::Result<Bound> {
        spawn_listener(&self.slot, &self.drain, key, listener)
    }

    /// Stop gracefully: stop accepting (`/healthz` turns 503), let requests in
    /// flight finish, close keep-alive connections after their current request;
    /// wait for that up to `deadline`. Returns the connections still open then.
    pub async fn drain(&self, deadline: std::time::Duration) -> usize {
        self.drain.start();
        let _ = tokio::time::timeout(deadline, self.drain.drained()).await;
        self.drain.open_connections()
    }

    /// Stop accepting connections.
    pub fn shutdown(&self) {
        for t in &self.tasks {
            t.abort();
        }
        for b in self.bound.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            b.task.abort();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Build a node from `config` and start its listeners and admin API. With
/// `listen_override`, the first listener binds there instead.
pub async fn start(
    config: Config,
    opts: &BuildOptions,
    listen_override: Option<SocketAddr>,
    admin_override: Option<Option<SocketAddr>>,
) -> anyhow::Result<Running> {
    // Counters belong to the process: every node this one's reloads build counts
    // in the same families.
    let telemetry = Arc::new(Telemetry::new());
    let opts = &BuildOptions {
        families: telemetry.families.clone(),
        ..opts.clone()
    };
    let node = Node::build(config, opts).await.map_err(|errs| {
        anyhow::anyhow!(
            "{}",
            errs.iter()
                .map(|d| format!("error: {d}"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    })?;
    let node = Arc::new(node);
    let slot = NodeSlot::new(node.clone());
    let mut listeners = Vec::new();
    let mut tasks = Vec::new();
    let mut bound = Vec::new();
    let drain = server::Drain::default();
    for (i, l) in node.config.listeners.iter().enumerate() {
        let key = l.address.get_ref().0;
        let addr = match (i, listen_override) {
            (0, Some(a)) => a,
            _ => key,
        };
        let listener = server::bind(addr).await?;
        let b = spawn_listener(&slot, &drain, key, listener)?;
        listeners.push(b.local);
        bound.push(b);
    }
    let admin_addr = admin_override.unwrap_or(node.config.node.admin.map(|a| a.0));
    let admin = match admin_addr {
        Some(a) => {
            let listener = server::bind(a).await?;
            let local = listener.local_addr()?;
            tasks.push(tokio::spawn(admin::serve(
                slot.clone(),
                listener,
                telemetry.clone(),
                drain.clone(),
            )));
            Some(local)
        }
        None => None,
    };
    Ok(Running {
        slot,
        opts: opts.clone(),
        listeners,
        admin,
        telemetry,
        drain,
        bound: std::sync::Mutex::new(bound),
        tasks,
    })
}

/// Serve `listener`, the one configured at `key`, until drained or stopped.
fn spawn_listener(
    slot: &NodeSlot,
    drain: &server::Drain,
    key: SocketAddr,
    listener: tokio::net::TcpListener,
) -> std::io::Result<Bound> {
    let local = listener.local_addr()?;
    let stop = drain.stopper();
    let task = tokio::spawn(server::serve(
        slot.clone(),
        listener,
        key,
        drain.clone(),
        stop.clone(),
    ));
    Ok(Bound {
        key,
        local,
        stop,
        task,
    })
}
