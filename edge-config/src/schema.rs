//! The configuration's shape: raw serde structs, unknown fields rejected.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::Source;
use crate::values::{Addr, Cidr, Millis, Name};

/// Built-in guests the binary carries, usable as `wasm = "builtin:NAME"`.
pub const BUILTIN_GUESTS: &[&str] = &outpost_common::builtin::BUILTIN_GUESTS;

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
    /// Compression levels.
    #[serde(default)]
    pub compression: Compression,
    /// How the node establishes facts about the client (address, scheme, country).
    #[serde(default)]
    pub client: Client,
    /// Sampled recording of requests and their decisions, for replay.
    #[serde(default)]
    pub record: Option<Record>,
    /// The access log (absent: none).
    #[serde(default)]
    pub access_log: Option<AccessLogSettings>,
    /// The edge cache's sizes (which routes cache is each route's `cache`).
    #[serde(default)]
    pub cache: CacheSettings,
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
    /// The bearer token the admin API's changes (cache purges) need when it
    /// listens elsewhere than on loopback; without one they are refused there.
    #[serde(default)]
    pub admin_token: Option<Spanned<String>>,
    /// Where compiled guests are cached; relative to the working directory.
    #[serde(default = "default_cache_dir")]
    pub cache_dir: Option<String>,
    /// The most the compile cache holds, MiB: past it the entries used least
    /// recently are removed.
    #[serde(default = "default_cache_max_mib")]
    pub cache_max_mib: Spanned<u64>,
    /// The epoch ticker's period: the granularity of guest CPU deadlines.
    #[serde(default = "default_tick")]
    pub epoch_tick: Spanned<Millis>,
    /// Guest instances that may exist at once (the pooling allocator's size).
    #[serde(default = "default_max_instances")]
    pub max_instances: Spanned<u32>,
    /// On SIGTERM (or ctrl-c), how long requests in flight may take to finish
    /// before the process exits anyway.
    #[serde(default = "default_drain_timeout")]
    pub drain_timeout: Spanned<Millis>,
}

/// The access log: one JSON line per request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLogSettings {
    /// `"-"` for standard output, or a file (relative to the working directory,
    /// appended to; reopened by a reload, so logrotate can move it).
    pub path: Spanned<String>,
    /// Rotate the file when it reaches this size: `path` becomes `path.1`, `.1`
    /// becomes `.2` ... (0: never; the node does not rotate standard output).
    #[serde(default = "default_access_log_mib")]
    pub max_file_mib: u64,
    /// Rotated files kept.
    #[serde(default = "default_access_log_keep")]
    pub keep_files: u32,
    /// The share of requests logged (1: all).
    #[serde(default = "default_access_log_sample")]
    pub sample: Spanned<f64>,
}

fn default_access_log_mib() -> u64 {
    100
}
fn default_access_log_keep() -> u32 {
    5
}
fn default_access_log_sample() -> Spanned<f64> {
    Spanned::new(0..0, 1.0)
}

impl Default for Node {
    fn default() -> Self {
        Node {
            admin: None,
            admin_token: None,
            cache_dir: default_cache_dir(),
            cache_max_mib: default_cache_max_mib(),
            epoch_tick: default_tick(),
            max_instances: default_max_instances(),
            drain_timeout: default_drain_timeout(),
        }
    }
}

fn default_drain_timeout() -> Spanned<Millis> {
    Spanned::new(0..0, Millis(30_000))
}

fn default_cache_dir() -> Option<String> {
    Some(".outpost-cache".into())
}
fn default_cache_max_mib() -> Spanned<u64> {
    Spanned::new(0..0, 1024)
}
fn default_tick() -> Spanned<Millis> {
    Spanned::new(0..0, Millis(1))
}
fn default_max_instances() -> Spanned<u32> {
    Spanned::new(0..0, 1000)
}

/// Recording: a sample of requests (heads and the decisions taken) written to
/// rotating JSONL files that `outpost replay` reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// The directory, relative to the config file.
    pub dir: String,
    /// The fraction of requests recorded, 0 to 1.
    #[serde(default = "default_sample")]
    pub sample: Spanned<f64>,
    /// Largest file before a new one is started, MiB.
    #[serde(default = "default_record_file")]
    pub max_file_mib: u64,
    /// Largest total of the directory's recordings, MiB; the oldest files go first.
    #[serde(default = "default_record_total")]
    pub max_total_mib: u64,
    /// Largest response body kept per request, KiB: the bodies response guests
    /// transform (the route's `transform` types, decoded), gzip-compressed in the
    /// recording so replay can serve them again. Longer ones are cut there and
    /// marked. 0: keep no body. (Bodies count toward `max_total_mib`.)
    #[serde(default = "default_record_body")]
    pub max_body_kib: u64,
}

fn default_sample() -> Spanned<f64> {
    Spanned::new(0..0, 0.01)
}
fn default_record_file() -> u64 {
    64
}
fn default_record_total() -> u64 {
    1024
}
fn default_record_body() -> u64 {
    256
}

/// How the node establishes facts about a client.
///
/// The client's address is the peer's, unless the peer is a trusted proxy: then the
/// forwarding header is read from the right, skipping trusted proxies, and the first
/// untrusted address is the client (so a client cannot forge its address by sending
/// the header itself). The scheme comes from `x-forwarded-proto` (or `Forwarded`'s
/// `proto=`) only from a trusted peer.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Client {
    /// Peers whose forwarding headers are believed (CIDRs or addresses).
    #[serde(default)]
    pub trusted_proxies: Vec<Spanned<Cidr>>,
    /// Which forwarding header to read from trusted peers.
    #[serde(default)]
    pub forwarded_header: ForwardedHeader,
    /// A CSV file of `CIDR,CC` lines (ISO 3166-1 alpha-2), relative to the config
    /// file: the IP-to-country table.
    #[serde(default)]
    pub country_table: Option<Spanned<String>>,
    /// A MaxMind DB file (GeoIP2/GeoLite2 Country or City, or any database whose
    /// records carry `country.iso_code`), relative to the config file.
    #[serde(default)]
    pub country_db: Option<Spanned<String>>,
    /// Inline IP-to-country entries: `"CIDR" = "CC"`, consulted before the table and
    /// the database.
    #[serde(default)]
    pub countries: BTreeMap<Cidr, Spanned<String>>,
}

/// The forwarding header read from trusted proxies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeader {
    /// `X-Forwarded-For` (and `X-Forwarded-Proto`).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded` (`for=`, `proto=`).
    Forwarded,
}

/// A listening socket.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    /// `IP:PORT`; port 0 picks a free port.
    pub address: Spanned<Addr>,
    /// Longest wait for a client's complete request head, counted from the accept
    /// (a connection that sends nothing, or only the HTTP/2 preface, is closed then).
    #[serde(default = "default_header_timeout")]
    pub header_timeout: Spanned<Millis>,
    /// A connection with no request in flight is closed after this long.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: Spanned<Millis>,
    /// Longest gap between two pieces of a request body (a stalled upload is a 408).
    #[serde(default = "default_body_timeout")]
    pub body_timeout: Spanned<Millis>,
    /// A response the client takes nothing of for this long ends its connection.
    #[serde(default = "default_send_timeout")]
    pub send_timeout: Spanned<Millis>,
    /// Connections open at once on this listener (further ones are closed at
    /// accept; also capped by the process's file descriptor limit).
    #[serde(default = "default_max_connections")]
    pub max_connections: Spanned<u32>,
    /// Connections open at once from one client address. Generous by default: a
    /// carrier-grade NAT or a corporate proxy puts hundreds of viewers behind one
    /// address, and they all ask at the same segment boundary; the header, idle and
    /// send timeouts are what bound a client that holds connections open.
    #[serde(default = "default_max_connections_per_ip")]
    pub max_connections_per_ip: Spanned<u32>,
    /// Terminate TLS on this listener (HTTPS, with HTTP/2 by ALPN).
    #[serde(default)]
    pub tls: Option<Spanned<ListenerTls>>,
    /// HTTP/2 settings (h2c, and HTTP/2 over TLS).
    #[serde(default)]
    pub http2: Http2Settings,
}

/// A listener's HTTP/2 settings: what it advertises to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Http2Settings {
    /// Streams a client may have open at once on one connection.
    #[serde(default = "default_h2_streams")]
    pub max_concurrent_streams: u32,
    /// The largest request header block accepted, bytes (decoded).
    #[serde(default = "default_h2_header_list")]
    pub max_header_list_size: u32,
    /// Flow-control window of each stream, bytes (the client's upload pace).
    #[serde(default = "default_h2_stream_window")]
    pub initial_stream_window: u32,
    /// Flow-control window of a whole connection, bytes.
    #[serde(default = "default_h2_connection_window")]
    pub initial_connection_window: u32,
}

impl Default for Http2Settings {
    fn default() -> Http2Settings {
        Http2Settings {
            max_concurrent_streams: default_h2_streams(),
            max_header_list_size: default_h2_header_list(),
            initial_stream_window: default_h2_stream_window(),
            initial_connection_window: default_h2_connection_window(),
        }
    }
}

fn default_h2_streams() -> u32 {
    256
}
fn default_h2_header_list() -> u32 {
    64 * 1024
}
fn default_h2_stream_window() -> u32 {
    1 << 20
}
fn default_h2_connection_window() -> u32 {
    4 << 20
}

/// TLS on a listener: its certificates, chosen by the name the client asks for (SNI).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerTls {
    /// Certificates with their keys. A client's server name picks the one whose
    /// names match it exactly, else the one with a matching wildcard; a client that
    /// sends no name, or one no certificate holds, gets the first.
    pub certificates: Vec<Spanned<Certificate>>,
    /// Issue session tickets (resumption without server state, keys rotated every
    /// 6 hours); a session cache serves resumption either way.
    #[serde(default = "yes")]
    pub session_tickets: bool,
}

fn yes() -> bool {
    true
}

/// TLS to an origin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginTls {
    /// The CA certificates (PEM) the origin's certificate must chain to; by
    /// default the system's roots.
    #[serde(default)]
    pub ca: Option<Spanned<String>>,
    /// The name sent as SNI and that the certificate must hold; by default the
    /// host of `host_header`, else of `address`.
    #[serde(default)]
    pub server_name: Option<Spanned<String>>,
    /// A client certificate to present (mutual TLS).
    #[serde(default)]
    pub client_certificate: Option<Spanned<Certificate>>,
    /// Offer HTTP/2 by ALPN (used when the origin picks it).
    #[serde(default = "yes")]
    pub http2: bool,
    /// Verify the origin's certificate. Turning this off accepts any certificate:
    /// for tests only; the node logs a warning at every load.
    #[serde(default = "yes")]
    pub verify: bool,
}

/// A certificate chain and its private key, both PEM.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    /// The chain, leaf first (PEM), relative to the config file.
    pub cert: Spanned<String>,
    /// The leaf's private key (PEM: PKCS#8, PKCS#1 or SEC1), relative to the config file.
    pub key: Spanned<String>,
    /// The server names it serves (`example.com`, `*.example.com`); by default the
    /// DNS names the certificate itself lists.
    #[serde(default)]
    pub names: Vec<Spanned<String>>,
}

fn default_header_timeout() -> Spanned<Millis> {
    Spanned::new(0..0, Millis(10_000))
}

fn default_idle_timeout() -> Spanned<Millis> {
    Spanned::new(0..0, Millis(60_000))
}

fn default_body_timeout() -> Spanned<Millis> {
    Spanned::new(0..0, Millis(10_000))
}

fn default_send_timeout() -> Spanned<Millis> {
    Spanned::new(0..0, Millis(60_000))
}

fn default_max_connections() -> Spanned<u32> {
    Spanned::new(0..0, 50_000)
}

fn default_max_connections_per_ip() -> Spanned<u32> {
    Spanned::new(0..0, 4096)
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
    /// `IP:PORT` or `HOST:PORT` of the origin (required unless `kind = "demo"`). A
    /// host name is resolved at every new connection, so DNS changes are followed.
    #[serde(default)]
    pub address: Option<Spanned<String>>,
    /// More addresses of the same origin: with `address`, a pool the node balances
    /// across, checks and ejects from.
    #[serde(default)]
    pub addresses: Vec<Spanned<String>>,
    /// How a pool picks an address: `least-outstanding` (fewest requests in flight,
    /// the default) or `hash` (the same path and query to the same address while
    /// it is available: rendezvous hashing, so an address leaving moves only its
    /// own share).
    #[serde(default)]
    pub balance: Balance,
    /// Active health checks of each address.
    #[serde(default)]
    pub health_check: Option<Spanned<HealthCheck>>,
    /// Passive ejection: an address that fails this many requests in a row
    /// (connection failures, timeouts, 502/503/504) is taken out for `eject_for`.
    /// 0 turns it off.
    #[serde(default = "default_eject_after")]
    pub eject_after: u32,
    /// How long an ejected address stays out.
    #[serde(default = "default_eject_for")]
    pub eject_for: Millis,
    /// The largest share of a pool's addresses ejected at once (at least one may
    /// always be).
    #[serde(default = "default_max_ejected")]
    pub max_ejected: Spanned<f64>,
    /// Another origin taken only when no address of this one is available
    /// (unhealthy or ejected).
    #[serde(default)]
    pub backup: Option<Spanned<Name>>,
    /// The `Host` header to send; by default the client's is kept.
    #[serde(default)]
    pub host_header: Option<String>,
    /// Longest wait to connect.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: Spanned<Millis>,
    /// Longest wait for the response head once the request is sent.
    #[serde(default = "default_first_byte_timeout")]
    pub first_byte_timeout: Spanned<Millis>,
    /// Longest time for the whole exchange, body included.
    #[serde(default = "default_total_timeout")]
    pub total_timeout: Spanned<Millis>,
    /// Idle keep-alive connections kept per origin.
    #[serde(default = "default_pool_idle")]
    pub pool_max_idle: usize,
    /// Speak TLS to the origin (HTTPS), verifying its certificate by default.
    #[serde(default)]
    pub tls: Option<Spanned<OriginTls>>,
    /// How long an idle pooled connection is kept. Keep it below the origin's own
    /// keep-alive timeout (Apache's and Node.js's default is 5 s, nginx's 75 s): a
    /// connection the origin is closing as the node reuses it costs a retry. The
    /// default, 4 s, is below every common origin's.
    #[serde(default = "default_pool_idle_timeout")]
    pub pool_idle_timeout: Millis,
}

fn default_eject_after() -> u32 {
    5
}
fn default_eject_for() -> Millis {
    Millis(10_000)
}
fn default_max_ejected() -> Spanned<f64> {
    Spanned::new(0..0, 0.5)
}

/// How a pool picks an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Balance {
    /// Fewest requests in flight.
    #[default]
    LeastOutstanding,
    /// Rendezvous hash of path and query.
    Hash,
}

/// An active health check of each address of an origin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// The path asked for (`GET`); a 2xx or 3xx answer is a pass.
    pub path: String,
    /// Between two checks of one address.
    #[serde(default = "default_check_interval")]
    pub interval: Millis,
    /// Longest wait for a check's answer.
    #[serde(default = "default_check_timeout")]
    pub timeout: Millis,
    /// Passes in a row that make an unhealthy address healthy again.
    #[serde(default = "default_check_healthy")]
    pub healthy: u32,
    /// Failures in a row that make an address unhealthy.
    #[serde(default = "default_check_unhealthy")]
    pub unhealthy: u32,
}

fn default_check_interval() -> Millis {
    Millis(2_000)
}
fn default_check_timeout() -> Millis {
    Millis(1_000)
}
fn default_check_healthy() -> u32 {
    2
}
fn default_check_unhealthy() -> u32 {
    3
}

fn default_connect_timeout() -> Spanned<Millis> {
    Spanned::new(0..0, Millis(1_000))
}
fn default_first_byte_timeout() -> Spanned<Millis> {
    Spanned::new(0..0, Millis(10_000))
}
fn default_total_timeout() -> Spanned<Millis> {
    Spanned::new(0..0, Millis(60_000))
}
fn default_pool_idle() -> usize {
    256
}
fn default_pool_idle_timeout() -> Millis {
    Millis(4_000)
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
    /// Key/values handed to the guest (`config-get`), with their positions.
    #[serde(default)]
    pub config: BTreeMap<String, Spanned<ConfigValue>>,
}

fn default_memory_mib() -> Spanned<u32> {
    Spanned::new(0..0, 16)
}
fn default_cpu() -> Spanned<Millis> {
    Spanned::new(0..0, Millis(10))
}

/// A guest config value: strings, numbers and booleans are all handed over as text;
/// an array of them as one text with an item per line (items may not contain line
/// breaks), which the guest reads back with `host::config_lines`.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigValue {
    /// A string, number or boolean.
    Scalar(Scalar),
    /// An array of scalars, each with its position in the file.
    List(Vec<Spanned<Scalar>>),
}

/// One string, number or boolean of a guest's config.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// A string.
    Text(String),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
}

impl Scalar {
    /// The value as the guest sees it.
    pub fn to_text(&self) -> String {
        match self {
            Scalar::Text(s) => s.clone(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

impl ConfigValue {
    /// The value as the guest sees it.
    pub fn to_text(&self) -> String {
        match self {
            ConfigValue::Scalar(s) => s.to_text(),
            ConfigValue::List(items) => items
                .iter()
                .map(|i| i.get_ref().to_text())
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    /// Where item `index` of a list value is in the file, if this is a list.
    pub fn item_span(&self, index: usize) -> Option<std::ops::Range<usize>> {
        match self {
            ConfigValue::List(items) => items.get(index).map(Spanned::span),
            ConfigValue::Scalar(_) => None,
        }
    }
}

struct ScalarVisitor;

impl<'de> serde::de::Visitor<'de> for ScalarVisitor {
    type Value = Scalar;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string, number or boolean")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar::Text(v.to_string()))
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Scalar, E> {
        Ok(Scalar::Text(v))
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::Int(v))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Scalar, E> {
        i64::try_from(v)
            .map(Scalar::Int)
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Scalar, E> {
        Ok(Scalar::Float(v))
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar::Bool(v))
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Scalar, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

struct ValueVisitor;

impl<'de> serde::de::Visitor<'de> for ValueVisitor {
    type Value = ConfigValue;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string, number, boolean or an array of them")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ConfigValue, E> {
        ScalarVisitor.visit_str(v).map(ConfigValue::Scalar)
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<ConfigValue, E> {
        ScalarVisitor.visit_string(v).map(ConfigValue::Scalar)
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ConfigValue, E> {
        ScalarVisitor.visit_i64(v).map(ConfigValue::Scalar)
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ConfigValue, E> {
        ScalarVisitor.visit_u64(v).map(ConfigValue::Scalar)
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<ConfigValue, E> {
        ScalarVisitor.visit_f64(v).map(ConfigValue::Scalar)
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<ConfigValue, E> {
        ScalarVisitor.visit_bool(v).map(ConfigValue::Scalar)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<ConfigValue, A::Error> {
        let mut items: Vec<Spanned<Scalar>> = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Scalar>>()? {
            if let Scalar::Text(t) = item.get_ref()
                && (t.contains('\n') || t.contains('\r'))
            {
                return Err(serde::de::Error::custom(
                    "an item of a list value may not contain a line break",
                ));
            }
            items.push(item);
        }
        Ok(ConfigValue::List(items))
    }
}

impl<'de> Deserialize<'de> for ConfigValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ConfigValue, D::Error> {
        d.deserialize_any(ValueVisitor)
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
    /// Content types (without parameters) the edge compresses for clients that
    /// accept it, when the origin sent them uncompressed: text, never media
    /// segments. Streamed, not buffered, unless a guest reads the body. An empty
    /// list turns edge compression off for the route.
    #[serde(default = "default_compress")]
    pub compress: Vec<String>,
    /// Bodies of a known length below this are sent as they are (compressing a
    /// few bytes only adds a header's worth).
    #[serde(default = "default_compress_min")]
    pub compress_min_bytes: u64,
    /// The edge cache's rules for this route; absent: the route does not cache.
    #[serde(default)]
    pub cache: Option<RouteCache>,
    /// Candidate guests run beside the live ones on a sample of requests, never
    /// deciding anything: their decisions are compared with the live guests'.
    #[serde(default)]
    pub shadow: Option<Shadow>,
}

/// A route's shadow: candidate request guests, run after the response has gone on
/// a sample of the route's requests, on the same inputs the live request guests
/// had, under their own bounds; their decisions are only compared and counted
/// (`outpost_shadow_total`), and the disagreements recorded.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shadow {
    /// Candidate request guests, in order (they stand for the route's `request`).
    #[serde(default)]
    pub request: Vec<Spanned<Name>>,
    /// Candidate response guests, in order (they stand for the route's `response`,
    /// on the origin's answer as the live response guests got it; the route must
    /// have response guests of its own).
    #[serde(default)]
    pub response: Vec<Spanned<Name>>,
    /// The share of the route's requests shadowed, 0 to 1 (exactly every
    /// `1/sample`-th request).
    #[serde(default = "default_shadow_sample")]
    pub sample: Spanned<f64>,
    /// A directory (relative to the config file) for a recording of the requests
    /// where the candidates disagreed, which `outpost replay --diff` reads.
    #[serde(default)]
    pub dir: Option<String>,
}

fn default_shadow_sample() -> Spanned<f64> {
    Spanned::new(0..0, 0.05)
}

/// The edge cache's sizes: one cache per node, shared by the routes that cache,
/// kept across reloads while these stay the same.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSettings {
    /// The memory budget, MiB: objects, their headers and keys.
    #[serde(default = "default_cache_memory")]
    pub memory_mib: Spanned<u64>,
    /// The largest object stored, MiB; a larger one streams through uncached.
    #[serde(default = "default_cache_object")]
    pub max_object_mib: Spanned<u64>,
    /// How long a request waits for another's fetch of the same key before it
    /// goes to the origin itself.
    #[serde(default = "default_collapse_timeout")]
    pub collapse_timeout: Spanned<Millis>,
    /// How long a key whose response was uncacheable goes straight to the origin,
    /// without collapsing (Varnish's hit-for-pass).
    #[serde(default = "default_hit_for_pass")]
    pub hit_for_pass: Spanned<Millis>,
    /// A directory for the disk tier (relative to the config file): stored objects
    /// are written there too and served from it after a restart. Absent: memory only.
    #[serde(default)]
    pub disk_dir: Option<Spanned<String>>,
    /// The disk tier's budget, MiB; the least recently used objects go first.
    #[serde(default = "default_cache_disk")]
    pub disk_mib: Spanned<u64>,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            memory_mib: default_cache_memory(),
            max_object_mib: default_cache_object(),
            collapse_timeout: default_collapse_timeout(),
            hit_for_pass: default_hit_for_pass(),
            disk_dir: None,
            disk_mib: default_cache_disk(),
        }
    }
}

fn default_cache_memory() -> Spanned<u64> {
    Spanned::new(0..0, 256)
}
fn default_cache_object() -> Spanned<u64> {
    Spanned::new(0..0, 16)
}
fn default_collapse_timeout() -> Spanned<Millis> {
    Spanned::new(0..0, Millis(10_000))
}
fn default_cache_disk() -> Spanned<u64> {
    Spanned::new(0..0, 4096)
}
fn default_hit_for_pass() -> Spanned<Millis> {
    Spanned::new(0..0, Millis(30_000))
}

/// A route's cache rules (`[routes.cache]`): freshness comes from the origin's
/// headers (RFC 9111; `CDN-Cache-Control` and `Surrogate-Control` first); these
/// fill in where the origin says nothing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteCache {
    /// Cache on this route (`false` keeps the table but turns it off).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// The lifetime of a response that gives none and does not forbid storing;
    /// absent: only the RFC's heuristic (a tenth of the time since
    /// `Last-Modified`).
    #[serde(default)]
    pub default_ttl: Option<Spanned<Millis>>,
    /// The lifetime of a 404 or 410 that gives none.
    #[serde(default = "default_negative_ttl")]
    pub negative_ttl: Spanned<Millis>,
    /// The lifetime of an origin error (5xx) that gives none; absent: errors are
    /// never stored.
    #[serde(default)]
    pub error_ttl: Option<Spanned<Millis>>,
    /// How long past its freshness a stored copy may answer when the origin fails
    /// or the limiter would shed (at least; a response's own `stale-if-error` may
    /// say longer, its `must-revalidate` says none).
    #[serde(default = "default_stale_if_error")]
    pub stale_if_error: Spanned<Millis>,
    /// Query parameters left out of the key; a trailing `*` matches a prefix
    /// (`utm_*`), `"*"` alone drops the whole query. A player's `CMCD` parameter
    /// is always left out.
    #[serde(default)]
    pub ignore_query: Vec<String>,
    /// Request headers whose values are part of the key.
    #[serde(default)]
    pub key_headers: Vec<Spanned<String>>,
}

fn default_negative_ttl() -> Spanned<Millis> {
    Spanned::new(0..0, Millis(10_000))
}
fn default_stale_if_error() -> Spanned<Millis> {
    Spanned::new(0..0, Millis(60_000))
}

fn default_compress() -> Vec<String> {
    [
        "text/html",
        "text/css",
        "text/plain",
        "text/javascript",
        "text/xml",
        "application/javascript",
        "application/json",
        "application/xml",
        "application/vnd.apple.mpegurl",
        "application/dash+xml",
        "image/svg+xml",
    ]
    .iter()
    .map(|t| t.to_string())
    .collect()
}
fn default_compress_min() -> u64 {
    256
}

/// The levels the edge compresses at (edge compression, and bodies the node
/// decoded for its guests and encodes again).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compression {
    /// gzip and deflate, 1..=9.
    #[serde(default = "default_gzip_level")]
    pub gzip_level: Spanned<u32>,
    /// Brotli, 0..=11 (default 4); bodies up to 4 KiB are encoded at 1 at most.
    #[serde(default = "default_brotli_level")]
    pub brotli_level: Spanned<u32>,
    /// zstd, 1..=19.
    #[serde(default = "default_zstd_level")]
    pub zstd_level: Spanned<u32>,
}

impl Default for Compression {
    fn default() -> Self {
        Compression {
            gzip_level: default_gzip_level(),
            brotli_level: default_brotli_level(),
            zstd_level: default_zstd_level(),
        }
    }
}

fn default_gzip_level() -> Spanned<u32> {
    Spanned::new(0..0, 6)
}
fn default_brotli_level() -> Spanned<u32> {
    // 4, not 5: at 5 the brotli crate switches to a costlier match finder, ten times
    // the CPU for the same size on a playlist (benches/README, "Edge compression").
    Spanned::new(0..0, 4)
}
fn default_zstd_level() -> Spanned<u32> {
    Spanned::new(0..0, 3)
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
    pub initial_limit: Spanned<u32>,
    /// The limit never falls below this.
    #[serde(default = "default_min_limit")]
    pub min_limit: Spanned<u32>,
    /// The limit never rises above this.
    #[serde(default = "default_max_limit")]
    pub max_limit: Spanned<u32>,
    /// Requests that may wait for admission, per origin.
    #[serde(default = "default_queue")]
    pub queue_size: Spanned<usize>,
    /// Longest wait in the queue while the origin is not overloaded: the patience a
    /// burst gets (every viewer asking for the new segment at once). The top class
    /// may wait five times this, `high` twice.
    #[serde(default = "default_queue_timeout")]
    pub queue_timeout: Spanned<Millis>,
    /// Longest wait once the origin is overloaded (the queue stands and the origin is
    /// slower than its baseline): waiters older than this are shed, newest first
    /// admitted.
    #[serde(default = "default_queue_timeout_congested")]
    pub queue_timeout_congested: Spanned<Millis>,
    /// CoDel's target: the queue stands when even its shortest wait has stayed above
    /// this (or the origin's minimum latency, if longer) for `queue_interval`. A
    /// burst that drains, however deep, never stands.
    #[serde(default = "default_queue_target")]
    pub queue_target: Spanned<Millis>,
    /// CoDel's interval (see `queue_target`).
    #[serde(default = "default_queue_interval")]
    pub queue_interval: Spanned<Millis>,
    /// Latency the origin may add above its minimum before the limit falls, on top
    /// of `tolerance`: a 0.2 ms origin answering in 1 ms is not overloaded, and the
    /// node's own scheduling noise is of this order. It counts in full for origins
    /// much faster than it and fades for slower ones (`slack² / (slack + min
    /// latency)`: a tenth of it at nine times it), whose knee `tolerance` places.
    #[serde(default = "default_latency_slack")]
    pub latency_slack: Spanned<Millis>,
    /// How much slower than its minimum latency the origin may answer before the
    /// limit stops growing: the gradient is `tolerance × min latency / latency`
    /// (1.0..=2.0). Closer to 1 holds the origin nearer its knee; more tolerates
    /// noisier origins.
    #[serde(default = "default_tolerance")]
    pub tolerance: Spanned<f64>,
    /// The share of the limit added every round to probe for capacity (0..=0.5).
    #[serde(default = "default_headroom")]
    pub headroom: Spanned<f64>,
    /// Per-client fairness: each client may send this many requests per second at
    /// its class; past its bucket a request is demoted to `bulk`, so under load a
    /// heavy client is shed before everyone else. 0 (the default) turns it off.
    /// The client is its address (through trusted proxies); the admit guest's client
    /// key (a header, CMCD `sid`) only subdivides it: each key has this rate, the
    /// address as a whole `client_address_share` times it, so a client that invents
    /// a new id per request gains nothing.
    #[serde(default = "default_client_rate")]
    pub client_rate: Spanned<f64>,
    /// The bucket's size: the burst a client may send above its rate.
    #[serde(default = "default_client_burst")]
    pub client_burst: Spanned<f64>,
    /// Clients tracked at most (oldest forgotten first).
    #[serde(default = "default_client_table")]
    pub client_table: usize,
    /// How many clients' rates one address may use at most (viewers behind a NAT).
    #[serde(default = "default_client_address_share")]
    pub client_address_share: Spanned<f64>,
    /// Requests per second one client address may have admitted above `normal`
    /// (`critical`, `high`): the class comes from what a client asserts (CMCD `su`,
    /// `ot`, priority headers), so past its allowance a request is capped at
    /// `normal`. Lowering a class is always free. 0 turns the cap off.
    #[serde(default = "default_priority_rate")]
    pub priority_rate: Spanned<f64>,
    /// The allowance's burst: a player's start-up (playlists, init segment, first
    /// segments) fetches several at once.
    #[serde(default = "default_priority_burst")]
    pub priority_burst: Spanned<f64>,
}

fn default_client_address_share() -> Spanned<f64> {
    Spanned::new(0..0, 8.0)
}
fn default_priority_rate() -> Spanned<f64> {
    Spanned::new(0..0, 2.0)
}
fn default_priority_burst() -> Spanned<f64> {
    Spanned::new(0..0, 10.0)
}

fn default_client_rate() -> Spanned<f64> {
    Spanned::new(0..0, 0.0)
}
fn default_client_burst() -> Spanned<f64> {
    Spanned::new(0..0, 50.0)
}
fn default_client_table() -> usize {
    65_536
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
            queue_target: default_queue_target(),
            queue_interval: default_queue_interval(),
            latency_slack: default_latency_slack(),
            tolerance: default_tolerance(),
            headroom: default_headroom(),
            client_rate: default_client_rate(),
            client_burst: default_client_burst(),
            client_table: default_client_table(),
            client_address_share: default_client_address_share(),
            priority_rate: default_priority_rate(),
            priority_burst: default_priority_burst(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_initial_limit() -> Spanned<u32> {
    Spanned::new(0..0, 64)
}
fn default_min_limit() -> Spanned<u32> {
    Spanned::new(0..0, 4)
}
fn default_max_limit() -> Spanned<u32> {
    Spanned::new(0..0, 1024)
}
fn default_queue() -> Spanned<usize> {
    Spanned::new(0..0, 4096)
}
fn default_queue_timeout() -> Spanned<Millis> {
    Spanned::new(0..0, Millis(1000))
}
fn default_queue_target() -> Spanned<Millis> {
    Spanned::new(0..0, Millis(5))
}
fn default_queue_interval() -> Spanned<Millis> {
    Spanned::new(0..0, Millis(100))
}
fn default_latency_slack() -> Spanned<Millis> {
    Spanned::new(0..0, Millis(2))
}
fn default_tolerance() -> Spanned<f64> {
    Spanned::new(0..0, 1.05)
}
fn default_headroom() -> Spanned<f64> {
    Spanned::new(0..0, 0.05)
}
fn default_queue_timeout_congested() -> Spanned<Millis> {
    Spanned::new(0..0, Millis(10))
}
