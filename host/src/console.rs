//! The web console on the admin listener (`/console/`): a dashboard of live charts,
//! a playground that runs the shipped guests' own code in the browser, a player
//! beside the node's decisions for its requests, and a live tail of decisions.
//!
//! Its assets are embedded: the page, script and style from `host/console/`, the
//! playground (`guests/playground` built for the browser by `build.rs`, bindings by
//! wasm-bindgen) and hls.js (vendored, `host/console/vendor/`). No inline script
//! or style: every page is served with a strict Content-Security-Policy.
//!
//! The page is fed by one server-sent-events stream (`/console/api/events`): a
//! `stats` event every second (counters summed from the node's own metric
//! families, so the page never parses Prometheus text) and a `decision` event per
//! request the [`Tail`] passes on while someone watches.
//!
//! On an admin listener that is not on loopback, every console path needs the
//! admin token (`Authorization: Bearer`, or the cookie the console's sign-in sets
//! from it); without a configured token the console is refused there.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body::Frame;
use tokio::sync::{broadcast, mpsc};

use crate::body::{self, Body, BoxError, full};
use crate::node::{Node, NodeSlot, Telemetry};

/// The console's Content-Security-Policy: its own scripts, styles and wasm only;
/// media from MSE blobs (hls.js); no frames, no inline code.
pub const CSP: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; media-src 'self' blob:; \
     worker-src 'self' blob:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The cookie the console's sign-in sets (the admin token, `HttpOnly`,
/// `SameSite=Strict`, path `/console`).
const COOKIE: &str = "outpost_console";

/// The embedded files: path under `/console/`, content type, bytes.
static ASSETS: [(&str, &str, &[u8]); 7] = [
    (
        "",
        "text/html; charset=utf-8",
        include_bytes!("../console/index.html"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../console/console.js"),
    ),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_bytes!("../console/console.css"),
    ),
    (
        "charts.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../console/charts.js"),
    ),
    (
        "playground.js",
        "text/javascript; charset=utf-8",
        include_bytes!(concat!(env!("OUT_DIR"), "/console/playground.js")),
    ),
    (
        "playground_bg.wasm",
        "application/wasm",
        include_bytes!(concat!(env!("OUT_DIR"), "/console/playground_bg.wasm")),
    ),
    (
        "hls.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../console/vendor/hls.min.js"),
    ),
];

/// The embedded files' total size, bytes (what a first visit can transfer at most,
/// before compression).
pub fn assets_bytes() -> usize {
    ASSETS.iter().map(|(_, _, b)| b.len()).sum()
}

/// One sample of the node's counters and gauges, summed across labels the page
/// does not split by. Counters are totals since start: the page charts their
/// rate from successive samples.
pub fn stats(node: &Node, telemetry: &Telemetry) -> serde_json::Value {
    let text = telemetry.text(node, false);
    let mut responses: BTreeMap<String, f64> = BTreeMap::new();
    let mut latency: BTreeMap<String, f64> = BTreeMap::new();
    let mut latency_count = 0.0;
    let mut classes: BTreeMap<&str, BTreeMap<String, f64>> = BTreeMap::new();
    let mut origins: BTreeMap<String, BTreeMap<&str, f64>> = BTreeMap::new();
    let mut guests: BTreeMap<String, BTreeMap<&str, f64>> = BTreeMap::new();
    let mut cache: BTreeMap<String, f64> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, labels, value)) = sample(line) else {
            continue;
        };
        let label = |k: &str| labels.get(k).cloned().unwrap_or_default();
        let add = |map: &mut BTreeMap<String, f64>, key: String| {
            *map.entry(key).or_default() += value;
        };
        match name {
            "outpost_responses_total" => add(&mut responses, label("status")),
            "outpost_request_duration_seconds_bucket" => add(&mut latency, label("le")),
            "outpost_request_duration_seconds_count" => latency_count += value,
            "outpost_admitted_total" | "outpost_queued_total" | "outpost_shed_total" => {
                let kind = name
                    .trim_start_matches("outpost_")
                    .trim_end_matches("_total");
                add(classes.entry(kind).or_default(), label("class"));
            }
            "outpost_limiter_limit" | "outpost_limiter_in_flight" | "outpost_limiter_queued" => {
                let kind = name.trim_start_matches("outpost_limiter_");
                *origins
                    .entry(label("origin"))
                    .or_default()
                    .entry(kind)
                    .or_default() += value;
            }
            "outpost_guest_duration_seconds_sum"
            | "outpost_guest_duration_seconds_count"
            | "outpost_guest_failures_total" => {
                let kind = match name {
                    "outpost_guest_duration_seconds_sum" => "seconds",
                    "outpost_guest_duration_seconds_count" => "calls",
                    _ => "failures",
                };
                *guests
                    .entry(label("guest"))
                    .or_default()
                    .entry(kind)
                    .or_default() += value;
            }
            "outpost_cache_lookups_total" => add(&mut cache, label("result")),
            _ => {}
        }
    }
    // Buckets by their upper bound, ascending (cumulative counts, as exposed).
    let mut buckets: Vec<(f64, f64)> = latency
        .into_iter()
        .map(|(le, n)| (le.parse::<f64>().unwrap_or(f64::INFINITY), n))
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    serde_json::json!({
        "t": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        "responses": responses,
        "latency": { "buckets": bucket_list(buckets), "count": latency_count },
        "classes": classes,
        "origins": origins,
        "guests": guests,
        "cache": cache,
        "cache_enabled": node.cache.is_some(),
        "routes": node.config.routes.iter().map(|r| r.name.get_ref().as_str().to_string()).collect::<Vec<_>>(),
    })
}

/// Histogram buckets as `[upper bound, cumulative count]`, `+Inf` last.
fn bucket_list(buckets: Vec<(f64, f64)>) -> Vec<serde_json::Value> {
    buckets
        .into_iter()
        .map(|(le, n)| {
            let le = if le.is_finite() {
                serde_json::json!(le)
            } else {
                serde_json::json!("+Inf")
            };
            serde_json::json!([le, n])
        })
        .collect()
}

/// One line of Prometheus text: name, labels, value.
fn sample(line: &str) -> Option<(&str, BTreeMap<String, String>, f64)> {
    let (head, value) = line.rsplit_once(' ')?;
    let value: f64 = value.parse().ok()?;
    let (name, labels) = match head.split_once('{') {
        Some((n, rest)) => (n, rest.strip_suffix('}')?),
        None => (head, ""),
    };
    let mut map = BTreeMap::new();
    let mut rest = labels;
    while let Some((k, after)) = rest.split_once("=\"") {
        let end = after.find('"')?;
        map.insert(
            k.trim_start_matches(',').to_string(),
            after[..end].to_string(),
        );
        rest = &after[end + 1..];
    }
    Some((name, map, value))
}

/// Whether a guest config key holds a secret (its value is never shown: not in
/// the admin API's `/config`, not in the console).
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["secret", "password", "token", "credential", "private"]
        .iter()
        .any(|w| k.contains(w))
}

/// The guests the node runs and their config as TOML (secrets redacted), the
/// playground's presets.
fn guest_configs(node: &Node) -> serde_json::Value {
    let list: Vec<serde_json::Value> = node
        .config
        .guests
        .iter()
        .map(|(name, g)| {
            let mut toml = String::new();
            for (k, v) in &g.config {
                let value = if is_secret_key(k) {
                    "\"<redacted>\"".to_string()
                } else {
                    toml_value(v.get_ref())
                };
                // A key that is not bare (`set_header.x-served-by`) is quoted, as written.
                let bare = !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                let key = if bare {
                    k.to_string()
                } else {
                    serde_json::Value::from(k.as_str()).to_string()
                };
                toml.push_str(&format!("{key} = {value}\n"));
            }
            serde_json::json!({
                "name": name.as_str(),
                "wasm": g.wasm.get_ref(),
                "config": toml,
            })
        })
        .collect();
    serde_json::Value::from(list)
}

fn toml_value(v: &edge_config::ConfigValue) -> String {
    use edge_config::{ConfigValue, Scalar};
    let scalar = |s: &Scalar| match s {
        // A JSON string is a TOML basic string for everything serde_json writes.
        Scalar::Text(t) => serde_json::Value::from(t.as_str()).to_string(),
        Scalar::Int(i) => i.to_string(),
        Scalar::Float(f) => f.to_string(),
        Scalar::Bool(b) => b.to_string(),
    };
    match v {
        ConfigValue::Scalar(s) => scalar(s),
        ConfigValue::List(items) => format!(
            "[{}]",
            items
                .iter()
                .map(|i| scalar(i.get_ref()))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// An embedded file, compressed for the client when it takes a coding (each
/// file is encoded once per coding, on first request, and kept).
async fn asset(path: &str, accept: Option<&[u8]>) -> Response<Body> {
    let Some(i) = path
        .strip_prefix("/console/")
        .and_then(|f| ASSETS.iter().position(|(name, _, _)| *name == f))
    else {
        return respond(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            full("not found\n"),
        );
    };
    let (_, ctype, bytes) = ASSETS[i];
    let coding = crate::coding::negotiate(accept).filter(|_| bytes.len() > 1024);
    static ENCODED: std::sync::Mutex<BTreeMap<(usize, &'static str), Bytes>> =
        std::sync::Mutex::new(BTreeMap::new());
    let cached = |c: crate::coding::Coding| {
        ENCODED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&(i, c.token()))
            .cloned()
    };
    let encoded = match coding {
        Some(c) => match cached(c) {
            Some(b) => Some((c, b)),
            None => {
                // Encoded once, off the async workers and outside the lock.
                let levels = crate::coding::Levels {
                    gzip: 9,
                    brotli: 8,
                    zstd: 19,
                };
                let made =
                    tokio::task::spawn_blocking(move || crate::coding::encode(c, bytes, levels))
                        .await
                        .ok()
                        .flatten();
                if let Some(b) = &made {
                    ENCODED
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert((i, c.token()), b.clone());
                }
                made.map(|b| (c, b))
            }
        },
        None => None,
    };
    let mut r = match encoded {
        Some((c, b)) => {
            let mut r = respond(StatusCode::OK, ctype, full(b));
            r.headers_mut().insert(
                header::CONTENT_ENCODING,
                HeaderValue::from_static(c.token()),
            );
            r
        }
        None => respond(StatusCode::OK, ctype, full(Bytes::from_static(bytes))),
    };
    r.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    r
}

/// The address the admin connection was accepted on (a request extension the
/// admin listener adds): what is bound, which `--admin` or a reload may make
/// differ from the configured address.
#[derive(Debug, Clone, Copy)]
pub struct AdminLocal(pub SocketAddr);

/// Whether an admin request needs no token: the configured admin address and the
/// one it came in on are both loopback, and it names a loopback host (`localhost`,
/// `127.0.0.1`, `[::1]`), so a page that rebinds its own name to 127.0.0.1 is not
/// let in.
pub fn open_on_loopback<B>(node: &Node, req: &hyper::Request<B>) -> bool {
    let configured = node
        .config
        .node
        .admin
        .is_none_or(|a| a.0.ip().is_loopback());
    let bound = req
        .extensions()
        .get::<AdminLocal>()
        .is_none_or(|l| l.0.ip().is_loopback());
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().host())
        .unwrap_or("");
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(""),
    };
    let loopback_name = name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    configured && bound && loopback_name
}

/// Whether `sent` is the admin `token`, compared in constant time (it is a secret).
pub fn same_token(sent: &str, token: &str) -> bool {
    sent.len() == token.len()
        && sent
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |a, (x, y)| a | (x ^ y))
            == 0
}

/// Whether `/console` is allowed for this request: on loopback (see
/// [`open_on_loopback`]), else with the admin token (bearer or cookie).
/// `Ok(true)`: a bearer token was sent, so the response sets the cookie.
fn authorised<B>(node: &Node, req: &hyper::Request<B>) -> Result<bool, &'static str> {
    if open_on_loopback(node, req) {
        return Ok(false);
    }
    let Some(token) = node.config.node.admin_token.as_ref().map(|t| t.get_ref()) else {
        return Err(
            "the console is open without a token only on a loopback admin address reached as \
             localhost or 127.0.0.1: set node.admin_token to use it otherwise",
        );
    };
    let same = |s: &str| same_token(s, token);
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer.is_some_and(same) {
        return Ok(true);
    }
    let cookie = req
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .any(same);
    if cookie {
        Ok(false)
    } else {
        Err("the console needs the admin token")
    }
}

fn respond(status: StatusCode, ctype: &str, body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(ctype) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Answer a request under `/console`. `client` is the admin connection's peer
/// (the player's requests go through the node as that client).
pub async fn handle(
    slot: &NodeSlot,
    telemetry: &Arc<Telemetry>,
    req: hyper::Request<hyper::body::Incoming>,
    client: SocketAddr,
) -> Response<Body> {
    let node = slot.current();
    let signed_in = match authorised(&node, &req) {
        Ok(b) => b,
        Err(why) => {
            let mut r = respond(
                StatusCode::UNAUTHORIZED,
                "text/plain; charset=utf-8",
                full(format!("{why}\n")),
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"outpost console\""),
            );
            return r;
        }
    };
    let path = req.uri().path().to_string();
    let mut resp = match path.as_str() {
        "/console" => {
            let mut r = respond(StatusCode::PERMANENT_REDIRECT, "text/plain", body::empty());
            r.headers_mut()
                .insert(header::LOCATION, HeaderValue::from_static("/console/"));
            r
        }
        "/console/api/stats" => respond(
            StatusCode::OK,
            "application/json",
            full(stats(&node, telemetry).to_string()),
        ),
        "/console/api/guests" => respond(
            StatusCode::OK,
            "application/json",
            full(guest_configs(&node).to_string()),
        ),
        "/console/api/events" => events(slot.clone(), telemetry.clone(), &node),
        p if p.starts_with("/console/play/") => play(&node, req, client).await,
        p => {
            let accept = req
                .headers()
                .get(header::ACCEPT_ENCODING)
                .map(HeaderValue::as_bytes);
            asset(p, accept).await
        }
    };
    if signed_in && let Some(token) = node.config.node.admin_token.as_ref() {
        let cookie = format!(
            "{COOKIE}={}; Path=/console; HttpOnly; SameSite=Strict",
            token.get_ref()
        );
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            resp.headers_mut().insert(header::SET_COOKIE, v);
        }
    }
    resp
}

/// `/console/play/PATH`: the request `PATH` served by the node itself, as if sent
/// to its listener (same origin for the page's player, and its decisions reach the
/// tail like any other request's).
async fn play(
    node: &Arc<Node>,
    req: hyper::Request<hyper::body::Incoming>,
    client: SocketAddr,
) -> Response<Body> {
    let (mut parts, body) = req.into_parts();
    let rest = parts
        .uri
        .path_and_query()
        .map_or("", |p| p.as_str())
        .strip_prefix("/console/play")
        .unwrap_or("/")
        .to_string();
    match rest.parse::<http::Uri>() {
        Ok(uri) => parts.uri = uri,
        Err(_) => {
            return respond(
                StatusCode::BAD_REQUEST,
                "text/plain; charset=utf-8",
                full("not a path\n"),
            );
        }
    }
    parts.headers.remove(header::COOKIE);
    parts.headers.remove(header::AUTHORIZATION);
    let req = hyper::Request::from_parts(parts, body::boxed(body));
    let mut resp = crate::proxy::serve(node, req, client).await;
    // The origin's content, on the console's origin: it may be fetched (the
    // player's XHR) but never run as the console's script or set its cookies.
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.remove(header::SET_COOKIE);
    resp
}

/// The server-sent-events stream: `stats` every second, `decision` per tailed
/// request. Ends when the page goes.
fn events(slot: NodeSlot, telemetry: Arc<Telemetry>, node: &Node) -> Response<Body> {
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let mut decisions = node.tail.subscribe();
    tokio::spawn(async move {
        // A sample now, the next a quarter second later (the page charts a rate
        // from two, so the first chart comes at once), then one a second.
        let mut next = tokio::time::Instant::now();
        let mut samples = 0u64;
        loop {
            let event = tokio::select! {
                () = tokio::time::sleep_until(next) => {
                    samples += 1;
                    let step = if samples == 1 { 250 } else { 1000 };
                    next = tokio::time::Instant::now() + std::time::Duration::from_millis(step);
                    let node = slot.current();
                    format!("event: stats\ndata: {}\n\n", stats(&node, &telemetry))
                }
                d = decisions.recv() => match d {
                    Ok(line) => format!("event: decision\ndata: {line}\n\n"),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        format!("event: lagged\ndata: {n}\n\n")
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                () = tx.closed() => break,
            };
            if tx.send(Bytes::from(event)).await.is_err() {
                break;
            }
        }
    });
    let mut r = respond(
        StatusCode::OK,
        "text/event-stream",
        body::boxed(EventBody { rx }),
    );
    r.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    r
}

/// A body fed by a channel, frame by frame.
struct EventBody {
    rx: mpsc::Receiver<Bytes>,
}

impl http_body::Body for EventBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.rx.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_lines_are_read_with_their_labels() {
        let (n, l, v) =
            sample(r#"outpost_responses_total{route="live",status="2xx"} 20"#).expect("a sample");
        assert_eq!(n, "outpost_responses_total");
        assert_eq!(l.get("route").map(String::as_str), Some("live"));
        assert_eq!(l.get("status").map(String::as_str), Some("2xx"));
        assert!((v - 20.0).abs() < f64::EPSILON);
        let (n, l, v) = sample("outpost_unrouted_total 3").expect("no labels");
        assert_eq!((n, l.len()), ("outpost_unrouted_total", 0));
        assert!((v - 3.0).abs() < f64::EPSILON);
        assert!(sample("garbage").is_none());
    }
}
