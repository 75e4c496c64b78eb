//! The one place a request's phases run, in order:
//!
//! ```text
//! route ─► admit ─► limiter ─► request chain ─► origin ─► response chain ─► client
//! ```
//!
//! Each phase is a function below; guests' decisions are typed values from the WIT.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body::Body as _;

use crate::body::{self, Body, collect_capped};
use crate::coding;
use crate::error::{EdgeError, GuestError};
use crate::limiter::{CLASS_NAMES, LoadSource, Permit};
use crate::node::{GuestRef, Node, OriginEntry, RouteEntry};
use crate::runtime::bindings::types::{
    self, AdmitDecision, ClientInfo, HeaderOp, PriorityClass, RequestAction, RequestHead,
};
use edge_config::FailMode;

/// The phases of a request, named for logs and ARCHITECTURE.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Classify and pass the limiter.
    Admit,
    /// Rewrite the request or answer at the edge.
    Request,
    /// Forward to the origin.
    Origin,
    /// Rewrite the response.
    Response,
}

/// Serve one request through every phase. Never fails: errors become responses.
pub async fn serve(node: &Node, req: Request<Body>, client: SocketAddr) -> Response<Body> {
    match &node.recorder {
        Some(rec) if rec.sample() => {
            let mut trace = Trace::detailed();
            let start = std::time::Instant::now();
            let (parts, body) = req.into_parts();
            let entry = crate::record::Recorder::entry(&parts, client);
            let resp =
                serve_traced(node, Request::from_parts(parts, body), client, &mut trace).await;
            rec.finish(entry, &trace, start.elapsed());
            resp
        }
        // Not recorded: only the status is kept, nothing is formatted or copied.
        _ => serve_traced(node, req, client, &mut Trace::default()).await,
    }
}

/// What happened to one request: every decision taken, as plain values. The
/// replay harness compares these; recordings store them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Trace {
    /// The route that matched (none: no route).
    pub route: Option<String>,
    /// The class the admit phase gave (`critical` ... `bulk`).
    pub class: Option<String>,
    /// Each guest's action, in order: `admit:shed=normal`, `request:rw=forward`,
    /// `request:rw=respond 403`, `response:rendition=edit`, `request:rw=failed trap` ...
    pub guests: Vec<String>,
    /// The request as sent to the origin (method, path, query), if it was.
    pub forwarded: Option<String>,
    /// Headers the request guests set or changed (`name: value`), sorted.
    pub headers_set: Vec<String>,
    /// Headers the request guests removed, sorted.
    pub headers_removed: Vec<String>,
    /// The origin it went to.
    pub origin: Option<String>,
    /// Who answered: `origin`, `admit:<guest>`, `request:<guest>`, `limiter`, `error`.
    pub answered_by: String,
    /// Why it was shed or failed, when it was.
    pub reason: Option<String>,
    /// The status the client got.
    pub status: u16,
    /// Whether a response guest replaced the body.
    pub body_replaced: bool,
    /// Whether the decisions are recorded at all (recording, replay). Off, the
    /// pipeline keeps only `status` and `body_replaced`, so serving an ordinary
    /// request formats and copies nothing for the trace.
    #[serde(skip)]
    pub detail: bool,
}

impl Trace {
    /// A trace that records every decision.
    pub fn detailed() -> Trace {
        Trace {
            detail: true,
            ..Trace::default()
        }
    }

    /// Record a guest's action, built only when the trace is detailed.
    fn step(&mut self, action: impl FnOnce() -> String) {
        if self.detail {
            self.guests.push(action());
        }
    }
}

/// Serve one request, recording its decisions in `trace`.
pub async fn serve_traced(
    node: &Node,
    req: Request<Body>,
    client: SocketAddr,
    trace: &mut Trace,
) -> Response<Body> {
    let start = std::time::Instant::now();
    let (resp, route) = match run(node, req, client, trace).await {
        Ok((resp, route)) => (resp, Some(route)),
        Err((e, route)) => {
            node.metrics.record_error(e.source_label());
            match e {
                EdgeError::OriginDown { .. } => tracing::warn!(phase = ?Phase::Origin, "{e}"),
                EdgeError::ClientBody(_) => tracing::debug!(%client, "{e}"),
                _ => {}
            }
            if trace.detail {
                if trace.answered_by.is_empty() {
                    trace.answered_by = match e {
                        EdgeError::Shed { .. } => "limiter".into(),
                        _ => "error".into(),
                    };
                }
                trace.reason = Some(e.to_string());
            }
            (error_response(&e), route)
        }
    };
    trace.status = resp.status().as_u16();
    if let Some(r) = route {
        r.metrics.record_status(resp.status().as_u16());
        r.metrics.duration.observe(start.elapsed());
    }
    resp
}

type Failure<'a> = (EdgeError, Option<&'a RouteEntry>);

async fn run<'a>(
    node: &'a Node,
    req: Request<Body>,
    client: SocketAddr,
    trace: &mut Trace,
) -> Result<(Response<Body>, &'a RouteEntry), Failure<'a>> {
    let (mut parts, req_body) = req.into_parts();
    let upload = parts.extensions.remove::<Arc<crate::body::Upload>>();
    // One normalised view of the target for routing, every guest and the origin.
    let target = match Target::of(&parts) {
        Ok(t) => t,
        Err(e) => return Err((e, None)),
    };
    let Target {
        authority,
        host,
        path,
    } = target;
    // Client facts first: a `Connection` header must not be able to remove the
    // forwarding headers a trusted proxy set.
    let facts = node.clients.facts(client.ip(), &parts.headers);
    // Hop-by-hop headers, and those the client's `Connection` names, end here: before
    // the guests, so a client cannot name a header a guest sets and have it removed.
    strip_hop_by_hop(&mut parts.headers);
    // Guests see the authority that was routed on as `host`, not a `Host` header an
    // absolute-form target overrode.
    parts.headers.remove(header::HOST);
    if let Ok(v) = HeaderValue::from_str(&authority)
        && !authority.is_empty()
    {
        parts.headers.insert(header::HOST, v);
    }
    let path = path.as_str();
    let Some(route) = node.route(&host, path) else {
        node.metrics
            .unrouted
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return Err((
            EdgeError::NoRoute {
                host,
                path: path.to_string(),
            },
            None,
        ));
    };
    if trace.detail {
        trace.route = Some(route.name.to_string());
    }
    let fail = |e| Err((e, Some(route)));
    let client_ip = facts.ip;
    let mut head = RequestHead {
        method: parts.method.as_str().to_string(),
        scheme: facts.scheme.into(),
        authority,
        path: path.to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        headers: to_wit_headers(&parts.headers),
        client: ClientInfo {
            ip: facts.ip.to_string(),
            country: facts.country,
        },
        route: route.name.to_string(),
        id: node.request_id(),
    };
    let load = LoadSource::new(route.origin.limiter.clone());

    let incoming = trace.detail.then(|| head.headers.clone());

    // Phase: admit.
    let (class, cost) = match admit(node, route, &load, &head).await {
        Ok(Admitted::Class(mut c, cost, key)) => {
            if let Some(g) = &route.admit {
                trace.step(|| format!("admit:{}={}", g.guest.name, CLASS_NAMES[c.min(4)]));
            }
            // Per-client fairness: a client past its bucket is demoted to bulk. The
            // address the node established is the client (an IPv6 one by its /64); a
            // guest's key subdivides it.
            let address = if node.fairness.is_some() || node.priority.is_some() {
                crate::client::address_key(client_ip).to_string()
            } else {
                String::new()
            };
            if let Some(buckets) = &node.fairness
                && !buckets.take(&address, key.as_deref(), node.clock.monotonic_ns())
            {
                c = crate::limiter::CLASSES - 1;
                trace.step(|| "fairness=demoted".into());
            }
            // A class above normal rests on what the client asserts (CMCD, headers):
            // each address has an allowance of those; past it, normal.
            if c < NORMAL
                && let Some(allowance) = &node.priority
                && !allowance.take(&address, node.clock.monotonic_ns())
            {
                c = NORMAL;
                trace.step(|| "priority=capped".into());
            }
            if trace.detail {
                trace.class = CLASS_NAMES.get(c).map(|n| n.to_string());
            }
            (c, cost)
        }
        Ok(Admitted::Answer(resp)) => {
            if let (Some(g), true) = (&route.admit, trace.detail) {
                trace.answered_by = format!("admit:{}", g.guest.name);
                trace.step(|| format!("admit:{}=reject {}", g.guest.name, resp.status().as_u16()));
            }
            route
                .metrics
                .edge_answers
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Ok((resp, route));
        }
        Err(e) => return fail(e),
    };
    let mut permit = match route.origin.limiter.acquire(class, cost).await {
        Ok(p) => p,
        Err(reason) => return fail(EdgeError::Shed { reason }),
    };

    // Phase: request chain.
    let mut origin: &Arc<OriginEntry> = &route.origin;
    for g in &route.request {
        let out = g.guest.request(&node.runtime, load.clone(), &head).await;
        trace.step(|| {
            format!(
                "request:{}={}",
                g.guest.name,
                match &out {
                    Ok(RequestAction::Forward(_)) => "forward".to_string(),
                    Ok(RequestAction::Respond(r)) => format!("respond {}", r.status),
                    Err(e) => format!("failed {}", e.kind()),
                }
            )
        });
        match out {
            Ok(RequestAction::Forward(edit)) => {
                if let Err(e) =
                    apply_request_edit(&mut head, edit, node, &mut origin, &g.guest.name)
                {
                    g.guest.metrics.record_failure(&e);
                    if let Some(e) = on_failure(Phase::Request, g, e) {
                        return fail(e);
                    }
                }
            }
            Ok(RequestAction::Respond(r)) => match edge_response(r, &g.guest.name) {
                Ok(resp) => {
                    if trace.detail {
                        trace.answered_by = format!("request:{}", g.guest.name);
                    }
                    route
                        .metrics
                        .edge_answers
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return Ok((resp, route));
                }
                Err(e) => {
                    g.guest.metrics.record_failure(&e);
                    if let Some(e) = on_failure(Phase::Request, g, e) {
                        return fail(e);
                    }
                }
            },
            Err(e) => {
                if let Some(e) = on_failure(Phase::Request, g, e) {
                    return fail(e);
                }
            }
        }
    }

    // A request guest chose another origin: admission to the route's origin said
    // nothing about this one. Give back that slot and pass this origin's limiter
    // (same class and cost); the response guests read this origin's load.
    let load = if Arc::ptr_eq(origin, &route.origin) {
        load
    } else {
        drop(permit);
        permit = match origin.limiter.acquire(class, cost).await {
            Ok(p) => p,
            Err(reason) => return fail(EdgeError::Shed { reason }),
        };
        LoadSource::new(origin.limiter.clone())
    };

    // Phase: origin.
    if let Some(incoming) = &incoming {
        trace.origin = Some(origin.client.name.clone());
        trace.forwarded = Some(if head.query.is_empty() {
            format!("{} {}", head.method, head.path)
        } else {
            format!("{} {}?{}", head.method, head.path, head.query)
        });
        header_changes(incoming, &head.headers, trace);
    }
    let mut origin_req = match origin_request(&head, origin, client, req_body) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    if let Some(rec) = parts.extensions.get::<crate::origin::Recorded>() {
        origin_req.extensions_mut().insert(rec.clone());
    }
    if trace.detail {
        trace.answered_by = "origin".into();
    }
    permit.begin();
    let sent = tokio::time::Instant::now();
    let resp = match origin.client.send(origin_req, upload.as_deref()).await {
        Ok(r) => r,
        // The client's fault: the origin's latency is unknown, the limiter learns nothing.
        Err(e @ EdgeError::ClientBody(_)) => return fail(e),
        Err(e) => {
            permit.record(matches!(e, EdgeError::OriginTimeout { .. }));
            return fail(e);
        }
    };
    // The origin's latency starts when it has the whole request: the client's upload
    // time is the client's.
    if let Some(done) = upload.as_ref().and_then(|u| u.done_at()) {
        permit.exclude(done.saturating_duration_since(sent));
    }
    if let Some(latency) = resp
        .extensions()
        .get::<crate::origin::ExchangeTiming>()
        .and_then(crate::origin::ExchangeTiming::latency_ns)
    {
        permit.origin_took(latency);
    }
    let status = resp.status();
    permit.record(
        status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS,
    );

    // Phase: response chain.
    let resp = match response_chain(node, route, &load, &head, resp, trace).await {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    // Edge compression of what the origin sent uncompressed.
    let resp = match edge_compress(node.levels, route, &head, resp).await {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    // The HTTP version is hop-by-hop too: the client's connection has its own.
    parts.version = http::Version::default();
    // The permit is held until the body has streamed: that is when the origin is done.
    Ok((
        Response::from_parts(
            parts,
            body::boxed(PermitBody {
                inner: body,
                _permit: permit,
            }),
        ),
        route,
    ))
}

enum Admitted {
    Class(usize, u32, Option<String>),
    Answer(Response<Body>),
}

async fn admit(
    node: &Node,
    route: &RouteEntry,
    load: &LoadSource,
    head: &RequestHead,
) -> Result<Admitted, EdgeError> {
    let Some(g) = &route.admit else {
        return Ok(Admitted::Class(class_index(PriorityClass::Normal), 1, None));
    };
    match g.guest.admit(&node.runtime, load.clone(), head).await {
        Ok(AdmitDecision::Admit(a)) => Ok(Admitted::Class(
            class_index(a.class),
            a.cost.max(1),
            a.client_key,
        )),
        Ok(AdmitDecision::Reject(r)) => match edge_response(r, &g.guest.name) {
            Ok(resp) => Ok(Admitted::Answer(resp)),
            Err(e) => {
                g.guest.metrics.record_failure(&e);
                on_failure(Phase::Admit, g, e).map_or(Ok(Admitted::Class(2, 1, None)), Err)
            }
        },
        Err(e) => on_failure(Phase::Admit, g, e).map_or(Ok(Admitted::Class(2, 1, None)), Err),
    }
}

/// Fail open: count and skip (None). Fail closed: the error to answer with.
fn on_failure(phase: Phase, g: &GuestRef, e: GuestError) -> Option<EdgeError> {
    use std::sync::atomic::Ordering::Relaxed;
    match g.fail {
        FailMode::Open => {
            g.guest.metrics.skipped.fetch_add(1, Relaxed);
            tracing::debug!(?phase, kind = e.kind(), "skipping failed guest: {e}");
            None
        }
        FailMode::Closed => {
            g.guest.metrics.closed.fetch_add(1, Relaxed);
            tracing::warn!(?phase, kind = e.kind(), "{e}");
            Some(EdgeError::GuestClosed(e))
        }
    }
}

/// The authority a request addressed, as the client sent it: its URI's (HTTP/2,
/// absolute form), else its `Host` header; empty when it has neither.
pub fn authority_of(parts: &http::request::Parts) -> String {
    parts
        .uri
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| {
            parts
                .headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_default()
}

/// The request target as routing, guests and the origin see it (see `canon`).
struct Target {
    /// Normalised `host[:port]`; empty for an HTTP/1.0 request without `Host`.
    authority: String,
    /// Normalised host, no port.
    host: String,
    /// Normalised path.
    path: String,
}

impl Target {
    /// RFC 9112 §3.2: the absolute-form (or HTTP/2 `:authority`) authority wins over
    /// `Host`; an HTTP/1.1 request without `Host`, with two, or with userinfo is
    /// refused; then [`canon`] normalises host and path or refuses them.
    fn of(parts: &http::request::Parts) -> Result<Target, EdgeError> {
        let bad = |m: &str| EdgeError::BadRequest(m.to_string());
        let mut hosts = parts.headers.get_all(header::HOST).iter();
        let (first, second) = (hosts.next(), hosts.next());
        if second.is_some() {
            return Err(bad("more than one Host header"));
        }
        let raw = match parts.uri.authority() {
            Some(a) => a.as_str(),
            None => match first {
                Some(h) => h.to_str().map_err(|_| bad("malformed Host header"))?,
                None if parts.version == http::Version::HTTP_11 => {
                    return Err(bad("HTTP/1.1 request without a Host header"));
                }
                None => "",
            },
        };
        let refused = |r: crate::canon::Refused| EdgeError::BadRequest(r.to_string());
        let (host, authority) = crate::canon::host_and_authority(raw).map_err(refused)?;
        Ok(Target {
            authority,
            host,
            path: crate::canon::path(parts.uri.path()).map_err(refused)?,
        })
    }
}

/// Record which headers the request guests set, changed or removed.
fn header_changes(before: &[types::Header], after: &[types::Header], trace: &mut Trace) {
    let values = |hs: &[types::Header], name: &str| -> Vec<String> {
        hs.iter()
            .filter(|h| h.name == name)
            .map(|h| String::from_utf8_lossy(&h.value).into_owned())
            .collect()
    };
    let mut names: Vec<&str> = before
        .iter()
        .chain(after.iter())
        .map(|h| h.name.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        let (b, a) = (values(before, name), values(after, name));
        if b == a {
            continue;
        }
        if a.is_empty() {
            trace.headers_removed.push(name.to_string());
        } else {
            trace.headers_set.push(format!("{name}: {}", a.join(", ")));
        }
    }
}

/// The index of the `normal` class.
const NORMAL: usize = 2;

fn class_index(c: PriorityClass) -> usize {
    match c {
        PriorityClass::Critical => 0,
        PriorityClass::High => 1,
        PriorityClass::Normal => 2,
        PriorityClass::Low => 3,
        PriorityClass::Bulk => 4,
    }
}

fn to_wit_headers(h: &HeaderMap) -> Vec<types::Header> {
    h.iter()
        .map(|(k, v)| types::Header {
            name: k.as_str().to_string(),
            value: v.as_bytes().to_vec(),
        })
        .collect()
}

fn invalid(guest: &str, message: String) -> GuestError {
    GuestError::Invalid {
        guest: guest.to_string(),
        message,
    }
}

fn check_header(guest: &str, h: &types::Header) -> Result<(), GuestError> {
    HeaderName::from_bytes(h.name.as_bytes())
        .map_err(|_| invalid(guest, format!("bad header name {:?}", h.name)))?;
    HeaderValue::from_bytes(&h.value)
        .map_err(|_| invalid(guest, format!("bad value for header {:?}", h.name)))?;
    Ok(())
}

/// Apply header operations to a WIT header list. Every op is validated before any is
/// applied, so a bad edit leaves the list untouched.
pub fn apply_header_ops(
    headers: &mut Vec<types::Header>,
    ops: Vec<HeaderOp>,
    guest: &str,
) -> Result<(), GuestError> {
    for op in &ops {
        if let HeaderOp::Set(h) | HeaderOp::Append(h) = op {
            check_header(guest, h)?;
        }
    }
    for op in ops {
        match op {
            HeaderOp::Set(mut h) => {
                h.name.make_ascii_lowercase();
                headers.retain(|x| !x.name.eq_ignore_ascii_case(&h.name));
                headers.push(h);
            }
            HeaderOp::Append(mut h) => {
                h.name.make_ascii_lowercase();
                headers.push(h);
            }
            HeaderOp::Remove(name) => headers.retain(|x| !x.name.eq_ignore_ascii_case(&name)),
        }
    }
    Ok(())
}

/// Apply a request guest's edit. Everything is validated before anything changes, so
/// a failing guest under `fail = "open"` leaves the request exactly as it was.
fn apply_request_edit<'n>(
    head: &mut RequestHead,
    edit: types::RequestEdit,
    node: &'n Node,
    origin: &mut &'n Arc<OriginEntry>,
    guest: &str,
) -> Result<(), GuestError> {
    if let Some(m) = &edit.method {
        Method::from_bytes(m.as_bytes())
            .map_err(|_| invalid(guest, format!("bad method {m:?}")))?;
    }
    // A path a guest writes is held to what a client's is: normalised (or refused),
    // and it may not move the request under another route, whose guards it has not
    // passed (`/PRIVATE/x` lower-cased on a catch-all must not reach `/private/`).
    let edited_path = match &edit.path {
        Some(p) => {
            let normal = crate::canon::path(p)
                .map_err(|r| invalid(guest, format!("path {p:?} refused: {r}")))?;
            let host = crate::canon::host(&head.authority).unwrap_or_default();
            match (node.route(&host, &head.path), node.route(&host, &normal)) {
                (Some(a), Some(b)) if std::ptr::eq(a, b) => {}
                (_, b) => {
                    return Err(invalid(
                        guest,
                        format!(
                            "path {normal:?} would be served by route `{}`, not the route the request passed (`{}`)",
                            b.map_or("(none)", |r| &*r.name),
                            head.route
                        ),
                    ));
                }
            }
            Some(normal)
        }
        None => None,
    };
    let path = edited_path.as_deref().unwrap_or(&head.path);
    let query = edit.query.as_deref().unwrap_or(&head.query);
    format!("{path}?{query}")
        .parse::<http::uri::PathAndQuery>()
        .map_err(|e| invalid(guest, format!("path or query do not form a valid URI: {e}")))?;
    let chosen = match &edit.origin {
        Some(o) => Some(node.origins.get(o).ok_or_else(|| {
            invalid(
                guest,
                format!("chose origin `{o}`, which is not configured"),
            )
        })?),
        None => None,
    };
    apply_header_ops(&mut head.headers, edit.headers, guest)?;
    if let Some(m) = edit.method {
        head.method = m;
    }
    if let Some(p) = edited_path {
        head.path = p;
    }
    if let Some(q) = edit.query {
        head.query = q;
    }
    if let Some(o) = chosen {
        *origin = o;
    }
    Ok(())
}

fn edge_response(r: types::Response, guest: &str) -> Result<Response<Body>, GuestError> {
    let status = StatusCode::from_u16(r.status)
        .map_err(|_| invalid(guest, format!("bad status {}", r.status)))?;
    let mut resp = Response::new(body::full(r.body));
    *resp.status_mut() = status;
    for h in &r.headers {
        check_header(guest, h)?;
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_bytes(&h.value),
        ) {
            resp.headers_mut().append(n, v);
        }
    }
    resp.headers_mut().remove(header::CONTENT_LENGTH);
    Ok(resp)
}

/// Hop-by-hop headers (RFC 9110 §7.6.1, plus `keep-alive` and `proxy-connection`),
/// as header names: removing by name skips parsing a string on every request.
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
    header::TRANSFER_ENCODING,
];

/// Remove the fixed hop-by-hop headers only: for a request after the guests, whose
/// `Connection` (if a guest set one) is not the client's.
fn strip_fixed_hop_by_hop(h: &mut HeaderMap) {
    for n in &HOP_BY_HOP {
        h.remove(n);
    }
}

fn strip_hop_by_hop(h: &mut HeaderMap) {
    // Headers the `Connection` header names are hop-by-hop too.
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        h.remove(n);
    }
    for n in &HOP_BY_HOP {
        h.remove(n);
    }
}

fn origin_request(
    head: &RequestHead,
    origin: &OriginEntry,
    client: SocketAddr,
    body: Body,
) -> Result<Request<Body>, EdgeError> {
    let pq = if head.query.is_empty() {
        head.path.clone()
    } else {
        format!("{}?{}", head.path, head.query)
    };
    let mut req = Request::new(body);
    *req.method_mut() = Method::from_bytes(head.method.as_bytes())
        .map_err(|_| EdgeError::BadRequest(format!("bad method {:?}", head.method)))?;
    *req.uri_mut() = pq
        .parse()
        .map_err(|e| EdgeError::BadRequest(format!("bad request target: {e}")))?;
    let headers = req.headers_mut();
    for h in &head.headers {
        // HTTP/2 pseudo-headers never appear in HeaderMap; skip anything invalid.
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_bytes(&h.value),
        ) {
            headers.append(n, v);
        }
    }
    strip_fixed_hop_by_hop(headers);
    // An HTTP/1.0 client may send no Host: the origin's own authority then.
    let host = match (&origin.client.host_header, head.authority.as_str()) {
        (Some(h), _) => h.as_str(),
        (None, "") => origin.client.authority(),
        (None, a) => a,
    };
    if let Ok(v) = HeaderValue::from_str(host) {
        headers.insert(header::HOST, v);
    }
    // Several `X-Forwarded-For` fields are one list (RFC 9110 §5.3): combine them in
    // order, then append the peer.
    let mut xff = String::new();
    for v in headers.get_all("x-forwarded-for") {
        if let Ok(v) = v.to_str() {
            xff.push_str(v.trim());
            xff.push_str(", ");
        }
    }
    xff.push_str(&client.ip().to_string());
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert("x-forwarded-for", v);
    }
    Ok(req)
}

fn media_type(h: &HeaderMap) -> Option<String> {
    let ct = h.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(ct.split(';').next()?.trim().to_ascii_lowercase())
}

async fn response_chain(
    node: &Node,
    route: &RouteEntry,
    load: &LoadSource,
    req: &RequestHead,
    resp: Response<Body>,
    trace: &mut Trace,
) -> Result<Response<Body>, EdgeError> {
    if route.response.is_empty() {
        return Ok(resp);
    }
    let (mut parts, body) = resp.into_parts();
    // A compressed body the node can decode is decoded for the guests (and encoded
    // again for the client afterwards); one in a coding it does not know passes by
    // them untouched.
    let content_encoding = parts
        .headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.as_bytes().to_vec())
        .filter(|v| v.as_slice() != b"identity");
    let origin_coding = content_encoding
        .as_deref()
        .and_then(coding::Coding::from_content_encoding);
    let wants_body = (content_encoding.is_none() || origin_coding.is_some())
        && media_type(&parts.headers).is_some_and(|m| route.transform.contains(&m));
    // The origin's encoded bytes, to send as they are if nothing changes them.
    let mut origin_encoded: Option<(coding::Coding, Bytes)> = None;
    let mut body_bytes: Option<Bytes> = None;
    let mut stream = Some(body);
    if wants_body {
        let b = stream.take().unwrap_or_else(body::empty);
        if b.size_hint()
            .exact()
            .is_some_and(|n| n > route.transform_max_bytes as u64)
        {
            return Err(EdgeError::BodyTooLarge {
                limit: route.transform_max_bytes,
            });
        }
        match collect_capped(b, route.transform_max_bytes).await {
            Ok(Some(bytes)) => match origin_coding {
                Some(c) if !bytes.is_empty() => {
                    // The cap holds for the decoded size too: a bomb stops there.
                    match coding::decode(c, &bytes, route.transform_max_bytes) {
                        Ok(decoded) => {
                            parts.headers.remove(header::CONTENT_ENCODING);
                            parts.headers.remove(header::CONTENT_LENGTH);
                            body_bytes = Some(decoded);
                            origin_encoded = Some((c, bytes));
                        }
                        Err(coding::DecodeError::TooLarge) => {
                            return Err(EdgeError::BodyTooLarge {
                                limit: route.transform_max_bytes,
                            });
                        }
                        Err(coding::DecodeError::Corrupt(m)) => {
                            return Err(EdgeError::OriginDown {
                                origin: route.origin.client.name.clone(),
                                message: format!("cannot decode the body: {m}"),
                            });
                        }
                    }
                }
                _ => body_bytes = Some(bytes),
            },
            Ok(None) => {
                return Err(EdgeError::BodyTooLarge {
                    limit: route.transform_max_bytes,
                });
            }
            Err(e) => {
                return Err(EdgeError::OriginDown {
                    origin: route.origin.client.name.clone(),
                    message: format!("reading the body: {e}"),
                });
            }
        }
    }
    let mut head = types::ResponseHead {
        status: parts.status.as_u16(),
        headers: to_wit_headers(&parts.headers),
    };
    let mut changed_body = false;
    for g in &route.response {
        let out = g
            .guest
            .response(
                &node.runtime,
                load.clone(),
                req,
                &head,
                body_bytes.as_deref(),
            )
            .await;
        trace.step(|| {
            format!(
                "response:{}={}",
                g.guest.name,
                match &out {
                    Ok(e) if e.body.is_some() => "edit+body".to_string(),
                    Ok(_) => "edit".to_string(),
                    Err(e) => format!("failed {}", e.kind()),
                }
            )
        });
        let edit = match out {
            Ok(edit) => edit,
            Err(e) => match on_failure(Phase::Response, g, e) {
                Some(e) => return Err(e),
                None => continue,
            },
        };
        // Validate the status first; header ops validate before applying, so a bad
        // edit changes nothing and needs no copy of the head to roll back.
        let applied = match edit.status {
            Some(s) if StatusCode::from_u16(s).is_err() => {
                Err(invalid(&g.guest.name, format!("bad status {s}")))
            }
            status => apply_header_ops(&mut head.headers, edit.headers, &g.guest.name)
                .map(|()| head.status = status.unwrap_or(head.status)),
        };
        match applied {
            Ok(()) => {
                if let (Some(b), true) = (edit.body, body_bytes.is_some()) {
                    body_bytes = Some(Bytes::from(b));
                    changed_body = true;
                    trace.body_replaced = true;
                }
            }
            Err(e) => {
                g.guest.metrics.record_failure(&e);
                if let Some(e) = on_failure(Phase::Response, g, e) {
                    return Err(e);
                }
            }
        }
    }
    parts.status = StatusCode::from_u16(head.status).unwrap_or(parts.status);
    parts.headers = HeaderMap::with_capacity(head.headers.len());
    for h in &head.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_bytes(&h.value),
        ) {
            parts.headers.append(n, v);
        }
    }
    let body = match (stream, body_bytes) {
        (Some(s), _) => s,
        (None, Some(b)) => {
            if changed_body {
                route
                    .metrics
                    .transformed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            let b = match origin_encoded {
                Some((origin_coding, original)) => encode_for_client(
                    node.levels,
                    &mut parts.headers,
                    req,
                    b,
                    changed_body,
                    origin_coding,
                    original,
                ),
                None => {
                    if changed_body {
                        weaken_etag(&mut parts.headers);
                    }
                    b
                }
            };
            parts.headers.remove(header::TRANSFER_ENCODING);
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(b.len()));
            body::full(b)
        }
        (None, None) => body::empty(),
    };
    Ok(Response::from_parts(parts, body))
}

/// A body the node decoded for the guests, encoded for the client by its
/// `Accept-Encoding` (the origin's own bytes when they are unchanged and the client
/// takes their coding as gladly as any), with `Content-Encoding`, `Vary` and the
/// ETag (weak once the bytes differ from the origin's) to match.
fn encode_for_client(
    levels: coding::Levels,
    headers: &mut HeaderMap,
    req: &RequestHead,
    decoded: Bytes,
    changed: bool,
    origin_coding: coding::Coding,
    original: Bytes,
) -> Bytes {
    let want = coding::negotiate_preferring(accept_encoding(req), Some(origin_coding));
    let (bytes, sent) = match want {
        Some(c) if c == origin_coding && !changed => (original, Some(c)),
        Some(c) => match coding::encode(c, &decoded, levels) {
            Some(e) => (e, Some(c)),
            None => (decoded, None),
        },
        None => (decoded, None),
    };
    if let Some(c) = sent {
        headers.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static(c.token()),
        );
    }
    vary_on_accept_encoding(headers);
    if changed || sent != Some(origin_coding) {
        weaken_etag(headers);
    }
    bytes
}

/// The client's `Accept-Encoding`, if it sent one.
fn accept_encoding(req: &RequestHead) -> Option<&[u8]> {
    req.headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("accept-encoding"))
        .map(|h| h.value.as_slice())
}

/// Say that the response depends on `Accept-Encoding` (once).
fn vary_on_accept_encoding(headers: &mut HeaderMap) {
    let varies = headers.get_all(header::VARY).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|t| t.trim() == "*" || t.trim().eq_ignore_ascii_case("accept-encoding"))
        })
    });
    if !varies {
        headers.append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
}

/// Edge compression (the route's `compress` types): a 200 the origin sent
/// uncompressed, of a listed type and not known to be below `compress_min_bytes`,
/// is encoded as it streams in the coding the client prefers, unless the origin
/// said `Cache-Control: no-transform`. Listed types always get `Vary:
/// Accept-Encoding`; other types (media segments) are never touched.
async fn edge_compress(
    levels: coding::Levels,
    route: &RouteEntry,
    req: &RequestHead,
    resp: Response<Body>,
) -> Result<Response<Body>, EdgeError> {
    let listed = media_type(resp.headers()).is_some_and(|m| route.compress.contains(&m));
    if !listed || resp.headers().contains_key(header::CONTENT_ENCODING) {
        return Ok(resp);
    }
    let (mut parts, body) = resp.into_parts();
    vary_on_accept_encoding(&mut parts.headers);
    let len = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let too_small = len.is_some_and(|n| n < route.compress_min_bytes);
    let no_transform = parts
        .headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("no-transform"));
    let chosen = coding::negotiate(accept_encoding(req));
    let Some(c) = chosen.filter(|_| {
        parts.status == StatusCode::OK && req.method != "HEAD" && !too_small && !no_transform
    }) else {
        return Ok(Response::from_parts(parts, body));
    };
    parts.headers.insert(
        header::CONTENT_ENCODING,
        HeaderValue::from_static(c.token()),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    // Byte ranges of the original do not address the compressed stream.
    parts.headers.remove(header::ACCEPT_RANGES);
    weaken_etag(&mut parts.headers);
    // A small body of known length (a playlist, a manifest) is encoded whole: the
    // encoder then knows its size and sizes its tables to it (a streaming encoder
    // sets up for any size, several times the cost on a 20 KB playlist). Anything
    // else streams.
    if let Some(n) = len.filter(|&n| n <= ENCODE_WHOLE_UP_TO) {
        let whole = match body::collect_capped(body, n as usize).await {
            Ok(Some(b)) => b,
            Ok(None) => {
                return Err(EdgeError::OriginDown {
                    origin: route.origin.client.name.clone(),
                    message: format!("the body is longer than its Content-Length ({n})"),
                });
            }
            Err(e) => {
                return Err(EdgeError::OriginDown {
                    origin: route.origin.client.name.clone(),
                    message: format!("reading the body: {e}"),
                });
            }
        };
        return Ok(match coding::encode(c, &whole, levels) {
            Some(encoded) => {
                parts
                    .headers
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(encoded.len()));
                Response::from_parts(parts, body::full(encoded))
            }
            None => {
                parts.headers.remove(header::CONTENT_ENCODING);
                parts
                    .headers
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(whole.len()));
                Response::from_parts(parts, body::full(whole))
            }
        });
    }
    Ok(Response::from_parts(
        parts,
        coding::encode_stream(c, body, len, levels),
    ))
}

/// Bodies of a known length up to this are encoded whole at the edge.
const ENCODE_WHOLE_UP_TO: u64 = 256 << 10;

/// The bytes differ from the origin's: its ETag, if strong, becomes weak.
fn weaken_etag(headers: &mut HeaderMap) {
    if let Some(etag) = headers.get(header::ETAG)
        && let Ok(weak) = HeaderValue::from_bytes(&coding::weaken_etag(etag.as_bytes()))
    {
        headers.insert(header::ETAG, weak);
    }
}

/// A body that holds the limiter permit until it has been fully sent (or dropped).
struct PermitBody {
    inner: Body,
    _permit: Permit,
}

impl http_body::Body for PermitBody {
    type Data = Bytes;
    type Error = body::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The response for an error.
pub fn error_response(e: &EdgeError) -> Response<Body> {
    let status = e.status();
    // The body says what kind of failure it was, never internal detail (addresses,
    // parser messages): that goes to the log and the recorded decision.
    let text = match e {
        EdgeError::OriginDown { .. } => "the origin is unreachable\n".to_string(),
        EdgeError::OriginTimeout { .. } => "the origin did not answer in time\n".to_string(),
        _ => format!("{e}\n"),
    };
    let mut resp = Response::new(body::full(text));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    h.insert(
        "x-outpost-error",
        HeaderValue::from_static(e.source_label()),
    );
    resp
}
