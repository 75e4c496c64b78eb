//! The configuration's shape: raw serde structs, unknown fields rejected.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::Source;
use crate::values::{Addr, Millis, Name};

/// Built-in guests the binary carries, usable as `wasm = "builtin:NAME"`.
pub const BUILTIN_GUESTS: &[&str] = &["rewrite", "rendition", "shed"];

/// A whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Node-wide settings.
    #[serde(default)]
    pub node: Node,
    /// Where the node accepts client connections.
    #[serde(default)]
    pub listeners: Vec<Listener>,
    /// The origins requests are forwarded to, by name.
    #[serde(default)]
    pub origins: BTreeMap<Name, Origin>,
    /// The guests, by name.
    #[serde(default)]
    pub guests: BTreeMap<Name, Guest>,
    /// Routes, matched in order; the first match wins.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// The admission limiter's parameters.
    #[serde(default)]
    pub limiter: Limiter,
    #[serde(skip, default = "empty_source")]
    pub(crate) source: Source,
}

fn empty_source() -> Source {
    Source {
        name: String::new(),
        base_dir: ".".into(),
        text: String::new(),
    }
}

/// Node-wide settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// The admin API's address (metrics, health, config); none disables it.
    #[serde(default)]
    pub admin: Option<Addr>,
    /// Where compiled guests are cached; relative to the working directory.
    #[serde(default = "default_cache_dir")]
    pub cache_dir: Option<String>,
    /// The epoch ticker's period: the granularity of guest CPU deadlines.
    #[serde(default = "default_tick")]
    pub epoch_tick: Millis,
    /// Guest instances that may exist at once (the pooling allocator's size).
    #[serde(default = "default_max_instances")]
    pub max_instances: u32,
}

impl Default for Node {
    fn default() -> Self {
        Node {
            admin: None,
            cache_dir: default_cache_dir(),
            epoch_tick: default_tick(),
            max_instances: default_max_instances(),
        }
    }
}

fn default_cache_dir() -> Option<String> {
    Some(".outpost-cache".into())
}
fn default_tick() -> Millis {
    Millis(1)
}
fn default_max_instances() -> u32 {
    1000
}

/// A listening socket.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    /// `IP:PORT`; port 0 picks a free port.
    pub address: Spanned<Addr>,
    /// Longest wait for a client's complete request head.
    #[serde(default = "default_header_timeout")]
    pub header_timeout: Millis,
}

fn default_header_timeout() -> Millis {
    Millis(10_000)
}

/// What kind of origin this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OriginKind {
    /// A real HTTP/1.1 server at `address`.
    #[default]
    Http,
    /// The built-in demo origin (a synthetic live HLS stream), started on loopback.
    Demo,
}

/// An origin server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Origin {
    /// `http` (default) or `demo`.
    #[serde(default)]
    pub kind: OriginKind,
    /// `IP:PORT` or `HOST:PORT` of the origin (required unless `kind = "demo"`).
    #[serde(default)]
    pub address: Option<Spanned<String>>,
    /// The `Host` header to send; by default the client's is kept.
    #[serde(default)]
    pub host_header: Option<String>,
    /// Longest wait to connect.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: Millis,
    /// Longest wait for the response head once the request is sent.
    #[serde(default = "default_first_byte_timeout")]
    pub first_byte_timeout: Millis,
    /// Longest time for the whole exchange, body included.
    #[serde(default = "default_total_timeout")]
    pub total_timeout: Millis,
    /// Idle keep-alive connections kept per origin.
    #[serde(default = "default_pool_idle")]
    pub pool_max_idle: usize,
    /// How long an idle pooled connection is kept.
    #[serde(default = "default_pool_idle_timeout")]
    pub pool_idle_timeout: Millis,
}

fn default_connect_timeout() -> Millis {
    Millis(1_000)
}
fn default_first_byte_timeout() -> Millis {
    Millis(10_000)
}
fn default_total_timeout() -> Millis {
    Millis(60_000)
}
fn default_pool_idle() -> usize {
    256
}
fn default_pool_idle_timeout() -> Millis {
    Millis(90_000)
}

/// What a guest does when it fails (traps, exceeds its deadline or memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    /// Skip the guest and count the failure; the request goes on.
    #[default]
    Open,
    /// Answer 503.
    Closed,
}

/// A guest: a WebAssembly component and its limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Guest {
    /// Path of the component (`.wasm`), relative to the config file, or
    /// `builtin:NAME` for a guest the binary carries.
    pub wasm: Spanned<String>,
    /// Linear memory cap, MiB.
    #[serde(default = "default_memory_mib")]
    pub memory_mib: Spanned<u32>,
    /// CPU deadline per invocation.
    #[serde(default = "default_cpu")]
    pub cpu: Spanned<Millis>,
    /// `open` (skip and count) or `closed` (503) on failure.
    #[serde(default)]
    pub fail: FailMode,
    /// Calls one instance may serve. 0 (the default): a fresh instance for every
    /// call, nothing shared between requests. N > 1: an instance serves up to N calls,
    /// so state a guest keeps in memory is seen by later requests: only for guests
    /// that keep none.
    #[serde(default)]
    pub instance_reuse: u32,
    /// Key/values handed to the guest (`config-get`).
    #[serde(default)]
    pub config: BTreeMap<String, ConfigValue>,
}

fn default_memory_mib() -> Spanned<u32> {
    Spanned::new(0..0, 16)
}
fn default_cpu() -> Spanned<Millis> {
    Spanned::new(0..0, Millis(10))
}

/// A guest config value: strings, numbers and booleans are all handed over as text.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum ConfigValue {
    /// A string.
    Text(String),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
}

impl ConfigValue {
    /// The value as the guest sees it.
    pub fn to_text(&self) -> String {
        match self {
            ConfigValue::Text(s) => s.clone(),
            ConfigValue::Int(i) => i.to_string(),
            ConfigValue::Float(f) => f.to_string(),
            ConfigValue::Bool(b) => b.to_string(),
        }
    }
}

/// Where a guest's component comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestSource<P> {
    /// Carried by the binary.
    Builtin(String),
    /// A file.
    File(P),
}

impl Guest {
    /// Where the component comes from, as written.
    pub fn source(&self) -> GuestSource<&str> {
        let w = self.wasm.get_ref().as_str();
        match w.strip_prefix("builtin:") {
            Some(b) => GuestSource::Builtin(b.to_string()),
            None => GuestSource::File(w),
        }
    }
}

/// A route: which requests it takes and what runs on them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// The route's name, for metrics, logs and guests.
    pub name: Spanned<Name>,
    /// Host to match (without port); `*.example.com` matches subdomains; absent
    /// matches any host.
    #[serde(default)]
    pub host: Option<String>,
    /// Path prefix to match.
    #[serde(default = "default_prefix")]
    pub path_prefix: Spanned<String>,
    /// The origin requests are sent to (a request guest may choose another).
    pub origin: Spanned<Name>,
    /// The guest that classifies requests for admission.
    #[serde(default)]
    pub admit: Option<Spanned<Name>>,
    /// Request guests, run in order.
    #[serde(default)]
    pub request: Vec<Spanned<Name>>,
    /// Response guests, run in order.
    #[serde(default)]
    pub response: Vec<Spanned<Name>>,
    /// Content types (without parameters) whose bodies response guests may
    /// transform; other bodies stream through untouched.
    #[serde(default)]
    pub transform: Vec<String>,
    /// Largest body buffered for transformation; larger ones pass untouched
    /// (or fail with 502 when `transform_required`).
    #[serde(default = "default_transform_max")]
    pub transform_max_bytes: usize,
}

fn default_prefix() -> Spanned<String> {
    Spanned::new(0..0, "/".to_string())
}
fn default_transform_max() -> usize {
    1 << 20
}

/// The admission limiter: an adaptive concurrency limit per origin and a bounded
/// priority queue in front of it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limiter {
    /// Turn admission control off (every request goes to the origin).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// The limit each origin starts at.
    #[serde(default = "default_initial_limit")]
    pub initial_limit: u32,
    /// The limit never falls below this.
    #[serde(default = "default_min_limit")]
    pub min_limit: Spanned<u32>,
    /// The limit never rises above this.
    #[serde(default = "default_max_limit")]
    pub max_limit: Spanned<u32>,
    /// Requests that may wait for admission, per origin.
    #[serde(default = "default_queue")]
    pub queue_size: usize,
    /// Longest wait in the queue while it has drained recently.
    #[serde(default = "default_queue_timeout")]
    pub queue_timeout: Millis,
    /// Longest wait when the queue has not drained for a while (CoDel-style).
    #[serde(default = "default_queue_timeout_congested")]
    pub queue_timeout_congested: Millis,
}

impl Default for Limiter {
    fn default() -> Self {
        Limiter {
            enabled: true,
            initial_limit: default_initial_limit(),
            min_limit: default_min_limit(),
            max_limit: default_max_limit(),
            queue_size: default_queue(),
            queue_timeout: default_queue_timeout(),
            queue_timeout_congested: default_queue_timeout_congested(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_initial_limit() -> u32 {
    64
}
fn default_min_limit() -> Spanned<u32> {
    Spanned::new(0..0, 4)
}
fn default_max_limit() -> Spanned<u32> {
    Spanned::new(0..0, 1024)
}
fn default_queue() -> usize {
    1024
}
fn default_queue_timeout() -> Millis {
    Millis(100)
}
fn default_queue_timeout_congested() -> Millis {
    Millis(10)
}
