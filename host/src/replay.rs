//! Replay recorded traffic through a node and report, or diff, its decisions.
//!
//! In-process: no sockets. The same `pipeline` the node runs, built with model
//! origins (each request answered from its recording) and a virtual clock moved to
//! each request's recorded arrival, requests taken one at a time: the same input
//! gives byte-identical decisions every run. Network: real HTTP against a running
//! node, open-loop at the recorded times (× speed, gaps clamped) or as fast as a
//! concurrency cap allows.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request};
use http_body_util::BodyExt;
use outpost_traffic::Entry;
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::decision::{AnsweredBy, Decision};
use crate::node::{BuildOptions, Node};
use crate::proxy::serve_decided;
use crate::upstream::Recorded;

/// One replayed request and its decision, as written to the decisions JSONL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replayed {
    /// The entry's position in its input.
    pub seq: u64,
    /// The request as recorded: `METHOD /path?query`.
    pub request: String,
    /// What the node decided.
    #[serde(flatten)]
    pub decision: Decision,
}

/// Totals over a replay.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Report {
    /// Requests replayed.
    pub requests: u64,
    /// Entries skipped as malformed.
    pub malformed: u64,
    /// Requests that reached an origin.
    pub origin_requests: u64,
    /// Response bytes the clients got.
    pub response_bytes: u64,
    /// Counts by status code.
    pub status: BTreeMap<u16, u64>,
    /// Counts by who answered (`origin`, `request:rw`, `limiter` ...).
    pub answered_by: BTreeMap<String, u64>,
    /// Per route: counts by who answered.
    pub routes: BTreeMap<String, BTreeMap<String, u64>>,
    /// Per class: (admitted to the origin, shed by the limiter).
    pub classes: BTreeMap<String, (u64, u64)>,
    /// Requests whose path or query the guests changed.
    pub rewritten: u64,
    /// Latency percentiles of the node's handling, microseconds (p50, p90, p99, max).
    pub latency_us: [u64; 4],
    /// Wall time of the run, seconds.
    pub seconds: f64,
}

impl Report {
    fn add(&mut self, d: &Replayed, bytes: u64) {
        let t = &d.decision;
        self.requests += 1;
        self.response_bytes += bytes;
        *self.status.entry(t.status).or_default() += 1;
        let who = t.answered_by.to_string();
        *self.answered_by.entry(who.clone()).or_default() += 1;
        let route = t.route.clone().unwrap_or_else(|| "(none)".into());
        *self
            .routes
            .entry(route)
            .or_default()
            .entry(who)
            .or_default() += 1;
        if t.answered_by == AnsweredBy::Origin {
            self.origin_requests += 1;
        }
        if let Some(c) = &t.class {
            let e = self.classes.entry(c.clone()).or_default();
            if t.answered_by == AnsweredBy::Limiter {
                e.1 += 1;
            } else if t.answered_by == AnsweredBy::Origin {
                e.0 += 1;
            }
        }
        if t.forwarded.as_deref().is_some_and(|f| f != d.request) {
            self.rewritten += 1;
        }
    }

    /// Human-readable summary.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "requests {}  malformed {}  origin requests {}  rewritten {}  response bytes {}\n\
             latency µs p50 {} p90 {} p99 {} max {}  ({:.2} s, {:.0} req/s)\n",
            self.requests,
            self.malformed,
            self.origin_requests,
            self.rewritten,
            self.response_bytes,
            self.latency_us[0],
            self.latency_us[1],
            self.latency_us[2],
            self.latency_us[3],
            self.seconds,
            self.requests as f64 / self.seconds.max(1e-9)
        );
        s.push_str("status:");
        for (k, v) in &self.status {
            s.push_str(&format!(" {k}={v}"));
        }
        s.push_str("\nanswered by:");
        for (k, v) in &self.answered_by {
            s.push_str(&format!(" {k}={v}"));
        }
        s.push('\n');
        for (route, counts) in &self.routes {
            s.push_str(&format!("route {route}:"));
            for (k, v) in counts {
                s.push_str(&format!(" {k}={v}"));
            }
            s.push('\n');
        }
        for (class, (admitted, shed)) in &self.classes {
            s.push_str(&format!("class {class}: admitted {admitted} shed {shed}\n"));
        }
        s
    }
}

fn percentiles(mut v: Vec<u64>) -> [u64; 4] {
    if v.is_empty() {
        return [0; 4];
    }
    v.sort_unstable();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    [at(0.5), at(0.9), at(0.99), v[v.len() - 1]]
}

/// Headers a replay does not resend: bodies are not replayed, and framing and
/// connection management belong to the replaying connection.
fn replayable(name: &str) -> bool {
    !matches!(
        name.to_ascii_lowercase().as_str(),
        "content-length"
            | "transfer-encoding"
            | "connection"
            | "keep-alive"
            | "upgrade"
            | "expect"
            | "host"
            | "te"
            | "trailer"
            | "proxy-connection"
    )
}

/// The request an entry describes, with its recording attached for a model origin.
fn request_of(e: &Entry) -> Result<Request<crate::body::Body>, String> {
    let method = Method::from_bytes(e.method.as_bytes()).map_err(|_| "bad method".to_string())?;
    let mut req = Request::new(crate::body::empty());
    *req.method_mut() = method;
    *req.uri_mut() = e
        .target()
        .parse()
        .map_err(|err| format!("bad target {:?}: {err}", e.target()))?;
    let h = req.headers_mut();
    for (k, v) in &e.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            h.append(n, v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&e.authority) {
        h.insert(http::header::HOST, v);
    }
    req.extensions_mut().insert(Recorded {
        status: e.status,
        bytes: e.response_bytes,
        headers: e.response_headers.clone(),
    });
    Ok(req)
}

fn client_of(e: &Entry) -> SocketAddr {
    e.client_ip
        .as_deref()
        .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 0))
        .unwrap_or_else(|| SocketAddr::from(([192, 0, 2, 1], 0)))
}

/// A node for in-process replay of `config`: model origins, a virtual clock,
/// request ids from 1.
pub async fn replay_node(
    config: edge_config::Config,
    cache_dir: Option<std::path::PathBuf>,
) -> Result<(Node, Clock), Vec<edge_config::Diagnostic>> {
    let clock = Clock::virtual_at(0);
    let node = Node::build(
        config,
        &BuildOptions {
            cache_dir,
            no_cache: false,
            demo_origin: None,
            clock: clock.clone(),
            model_origins: true,
            request_id_seed: Some(1),
            families: Default::default(),
        },
    )
    .await?;
    Ok((node, clock))
}

/// Replay `entries` in-process through `node` (from [`replay_node`]), one at a
/// time. Each decision is passed to `each`; the report is returned.
pub async fn in_process(
    node: &Node,
    clock: &Clock,
    entries: impl IntoIterator<Item = Entry>,
    mut each: impl FnMut(&Replayed),
) -> Report {
    let mut report = Report::default();
    let mut latencies = Vec::new();
    let started = Instant::now();
    for e in entries {
        clock.set(e.at_us.saturating_mul(1000));
        let request = format!("{} {}", e.method, e.target());
        let mut decision = Decision::detailed();
        let t0 = Instant::now();
        let bytes = match request_of(&e) {
            Ok(req) => {
                let resp = serve_decided(node, req, client_of(&e), &mut decision).await;
                match resp.into_body().collect().await {
                    Ok(b) => b.to_bytes().len() as u64,
                    Err(_) => 0,
                }
            }
            Err(why) => {
                decision.answered_by = AnsweredBy::Error;
                decision.reason = Some(why);
                decision.status = 400;
                0
            }
        };
        latencies.push(t0.elapsed().as_micros() as u64);
        let d = Replayed {
            seq: e.seq,
            request,
            decision,
        };
        report.add(&d, bytes);
        each(&d);
    }
    report.seconds = started.elapsed().as_secs_f64();
    report.latency_us = percentiles(latencies);
    report
}

/// How a network replay paces its requests.
#[derive(Debug, Clone, Copy)]
pub enum Pacing {
    /// Open loop at the recorded times divided by `speed`, idle gaps clamped.
    Recorded {
        /// Speed factor (100: a hundred times faster).
        speed: f64,
        /// Longest idle gap, after scaling.
        max_gap: Option<Duration>,
    },
    /// As fast as possible with at most this many requests in flight.
    Flood,
}

/// Replay `entries` over real HTTP against the node at `target`. At most
/// `concurrency` requests are in flight in either pacing. Each request's status
/// and latency (as a [`Replayed`] with only `status` and `answered_by` = `network`)
/// goes to `each`.
pub async fn network(
    target: SocketAddr,
    entries: Vec<Entry>,
    pacing: Pacing,
    concurrency: usize,
    mut each: impl FnMut(&Replayed, u64),
) -> Report {
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let client: Client<_, http_body_util::Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let started = Instant::now();
    let start = tokio::time::Instant::now();
    let mut schedule = match pacing {
        Pacing::Recorded { speed, max_gap } => {
            outpost_traffic::Schedule::new(speed, max_gap).map(|s| s.clock())
        }
        Pacing::Flood => None,
    };
    let mut tasks = tokio::task::JoinSet::new();
    for e in entries {
        if let Some(clock) = schedule.as_mut() {
            tokio::time::sleep_until(start + clock.offset(e.at_us)).await;
        }
        let Ok(permit) = sem.clone().acquire_owned().await else {
            break;
        };
        let client = client.clone();
        tasks.spawn(async move {
            let _permit = permit;
            send_one(&client, target, e).await
        });
    }
    let mut report = Report::default();
    let mut latencies = Vec::new();
    let mut done = Vec::new();
    while let Some(r) = tasks.join_next().await {
        if let Ok(x) = r {
            done.push(x);
        }
    }
    done.sort_by_key(|(d, _, _)| d.seq);
    for (d, bytes, micros) in done {
        report.add(&d, bytes);
        latencies.push(micros);
        each(&d, micros);
    }
    report.seconds = started.elapsed().as_secs_f64();
    report.latency_us = percentiles(latencies);
    report
}

/// One request of a network replay: its decision (status only), body bytes and
/// latency, µs.
async fn send_one(
    client: &hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<Bytes>,
    >,
    target: SocketAddr,
    e: Entry,
) -> (Replayed, u64, u64) {
    let request = format!("{} {}", e.method, e.target());
    let t0 = Instant::now();
    let mut b = Request::builder()
        .method(e.method.as_str())
        .uri(format!("http://{target}{}", e.target()));
    for (k, v) in e.headers.iter().filter(|(k, _)| replayable(k)) {
        b = b.header(k.as_str(), v.as_str());
    }
    b = b.header("host", e.authority.as_str());
    let (status, bytes) = match b.body(http_body_util::Full::new(Bytes::new())) {
        Ok(req) => match client.request(req).await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let n = match resp.into_body().collect().await {
                    Ok(b) => b.to_bytes().len() as u64,
                    Err(_) => 0,
                };
                (status, n)
            }
            Err(_) => (0, 0),
        },
        Err(_) => (0, 0),
    };
    let micros = t0.elapsed().as_micros() as u64;
    let d = Replayed {
        seq: e.seq,
        request,
        decision: Decision {
            answered_by: if status == 0 {
                AnsweredBy::Error
            } else {
                AnsweredBy::Network
            },
            status,
            ..Decision::default()
        },
    };
    (d, bytes, micros)
}

/// The fields in which two decisions differ.
pub fn changed_fields(a: &Decision, b: &Decision) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut check = |name, same: bool| {
        if !same {
            out.push(name);
        }
    };
    check("route", a.route == b.route);
    check("class", a.class == b.class);
    check("guests", a.guests == b.guests);
    check("forwarded", a.forwarded == b.forwarded);
    check(
        "headers",
        a.headers_set == b.headers_set && a.headers_removed == b.headers_removed,
    );
    check("origin", a.origin == b.origin);
    check("answered_by", a.answered_by == b.answered_by);
    check("status", a.status == b.status);
    check("body", a.body_replaced == b.body_replaced);
    out
}

/// One request whose decisions differ between two runs.
#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    /// The entry's position.
    pub seq: u64,
    /// The request as recorded.
    pub request: String,
    /// The kinds of change (`forwarded`, `status` ...).
    pub changed: Vec<&'static str>,
    /// Decisions under A.
    pub a: Decision,
    /// Decisions under B.
    pub b: Decision,
}

/// Compare two decision lists (same inputs, in the same order).
pub fn diff(a: &[Replayed], b: &[Replayed]) -> (Vec<Difference>, BTreeMap<String, u64>) {
    let mut out = Vec::new();
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    for (x, y) in a.iter().zip(b.iter()) {
        let changed = changed_fields(&x.decision, &y.decision);
        if changed.is_empty() {
            continue;
        }
        *kinds.entry(changed.join("+")).or_default() += 1;
        out.push(Difference {
            seq: x.seq,
            request: x.request.clone(),
            changed,
            a: x.decision.clone(),
            b: y.decision.clone(),
        });
    }
    (out, kinds)
}

/// Assertions over a replay, from a small TOML file:
///
/// ```toml
/// [[expect]]
/// name = "the countdown is never shed"
/// under = "/shuttle/countdown/"   # only requests whose recorded path starts so
/// max_shed = 0                     # answered by the limiter
/// max_status_5xx = "0.1%"          # a count, or a share of the matching requests
/// max_origin_requests = 40000
/// max_edge_answers = 0             # answered by a guest
/// max_status_4xx = 10
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectations {
    /// The assertions.
    pub expect: Vec<Expect>,
}

/// One assertion.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Its name, in the verdict.
    pub name: String,
    /// Only requests whose recorded path starts with this.
    #[serde(default)]
    pub under: Option<String>,
    /// Bounds, each a count or a percentage string.
    #[serde(default)]
    pub max_shed: Option<Bound>,
    /// Bound on origin requests.
    #[serde(default)]
    pub max_origin_requests: Option<Bound>,
    /// Bound on answers by a guest.
    #[serde(default)]
    pub max_edge_answers: Option<Bound>,
    /// Bound on 4xx statuses.
    #[serde(default)]
    pub max_status_4xx: Option<Bound>,
    /// Bound on 5xx statuses.
    #[serde(default)]
    pub max_status_5xx: Option<Bound>,
}

/// A count (`10`) or a share (`"1.5%"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Bound {
    /// At most this many.
    Count(u64),
    /// At most this share, written `"N%"`.
    Share(String),
}

impl Bound {
    fn allows(&self, n: u64, of: u64) -> Result<bool, String> {
        match self {
            Bound::Count(c) => Ok(n <= *c),
            Bound::Share(s) => {
                let pct: f64 = s
                    .trim()
                    .strip_suffix('%')
                    .and_then(|p| p.trim().parse().ok())
                    .ok_or_else(|| format!("bad share {s:?}: expected e.g. \"1.5%\""))?;
                Ok(n as f64 <= pct / 100.0 * of as f64)
            }
        }
    }
}

impl Expectations {
    /// Check every assertion; the lines of the verdict and whether all held.
    pub fn check(&self, decisions: &[Replayed]) -> (Vec<String>, bool) {
        let mut lines = Vec::new();
        let mut ok = true;
        for e in &self.expect {
            let matching: Vec<&Replayed> = decisions
                .iter()
                .filter(|d| match &e.under {
                    None => true,
                    Some(p) => d
                        .request
                        .split_once(' ')
                        .is_some_and(|(_, path)| path.starts_with(p.as_str())),
                })
                .collect();
            let of = matching.len() as u64;
            let count = |f: &dyn Fn(&Decision) -> bool| -> u64 {
                matching.iter().filter(|d| f(&d.decision)).count() as u64
            };
            let checks: [(&str, &Option<Bound>, u64); 5] = [
                (
                    "shed",
                    &e.max_shed,
                    count(&|t| t.answered_by == AnsweredBy::Limiter),
                ),
                (
                    "origin requests",
                    &e.max_origin_requests,
                    count(&|t| t.answered_by == AnsweredBy::Origin),
                ),
                (
                    "edge answers",
                    &e.max_edge_answers,
                    count(&|t| t.answered_by.is_edge()),
                ),
                (
                    "4xx",
                    &e.max_status_4xx,
                    count(&|t| (400..500).contains(&t.status)),
                ),
                (
                    "5xx",
                    &e.max_status_5xx,
                    count(&|t| (500..600).contains(&t.status)),
                ),
            ];
            for (what, bound, n) in checks {
                let Some(bound) = bound else { continue };
                let verdict = match bound.allows(n, of) {
                    Ok(true) => "ok",
                    Ok(false) => {
                        ok = false;
                        "FAILED"
                    }
                    Err(why) => {
                        ok = false;
                        lines.push(format!("{}: {why}", e.name));
                        continue;
                    }
                };
                lines.push(format!(
                    "{verdict}  {}: {what} {n} of {of} (bound {bound:?})",
                    e.name
                ));
            }
        }
        (lines, ok)
    }
}

/// Write decisions as JSONL (stable field order: byte-identical across runs).
pub fn write_decisions(out: &mut dyn Write, decisions: &[Replayed]) -> std::io::Result<()> {
    for d in decisions {
        let line = serde_json::to_string(d).map_err(std::io::Error::other)?;
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// The "launch day" scenario: the share of `entries` under `live_prefix` multiplied
/// by `factor` (each copy a distinct client, `-2`, `-3` ... appended to its IP's
/// last label as a client id header), and the whole compressed `compress` times in
/// time around its first request. Deterministic: the same input gives the same
/// scenario.
pub fn launch_day(entries: &[Entry], live_prefix: &str, factor: u32, compress: f64) -> Vec<Entry> {
    let start = entries.iter().map(|e| e.at_us).min().unwrap_or(0);
    let squeeze = |at: u64| start + ((at.saturating_sub(start)) as f64 / compress.max(1e-9)) as u64;
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let mut base = e.clone();
        base.at_us = squeeze(e.at_us);
        let copies = if e.path.starts_with(live_prefix) {
            factor.max(1)
        } else {
            1
        };
        for i in 0..copies {
            let mut c = base.clone();
            if i > 0 {
                // Spread the copies over the same second, in order.
                c.at_us += u64::from(i) * 1_000_000 / u64::from(copies);
                c.headers
                    .push(("x-client-id".into(), format!("launch-viewer-{}-{i}", e.seq)));
            }
            out.push(c);
        }
    }
    out.sort_by_key(|e| e.at_us);
    for (i, e) in out.iter_mut().enumerate() {
        e.seq = i as u64;
    }
    out
}
