//! The request path: the one place a request's phases run, in order.
//!
//! ```text
//! target ─► admit ─► request ─► cache ─┬─ hit ──────────────────────┬─► response ─► compress ─► finish
//!                                      └─ miss ─► limiter ─► origin ┘
//! ```
//!
//! One file per phase, each a function taking the per-request values it needs:
//! [`target`] (the normalised target, routing, the WIT request head), [`admit`]
//! (the admit guest, fairness, the class), [`request`] (the request guests),
//! [`cache`] (the edge cache: hits, collapsing, storing, stale copies), [`origin`]
//! (the exchange with the origin; only here is the limiter passed), [`response`]
//! (the response guests),
//! [`compress`] (content codings for the client), [`finish`] (what runs when the
//! body has gone: the permit's release, the recording). Errors become responses in
//! [`fail`]. [`serve`] reads like that list. A route's candidate guests run in
//! [`shadow`], after the response has gone, deciding nothing.

mod admit;
mod ahead;
mod cache;
mod compress;
mod fail;
mod finish;
mod origin;
mod refresh;
mod request;
mod response;
mod shadow;
mod target;

use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, Response};

use crate::body::{Body, Upload};
use crate::decision::Decision;
use crate::error::EdgeError;
use crate::limiter::LoadSource;
use crate::node::{Node, RouteEntry};

pub use ahead::ahead;
pub use fail::error_response;
pub use target::ReplayId;

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
/// A request in the recorder's sample is recorded by the finish phase, once its
/// response body has gone (so is one the access log samples, or the console tails).
pub async fn serve(node: &Arc<Node>, req: Request<Body>, client: SocketAddr) -> Response<Body> {
    let sampled = node.recorder.as_ref().filter(|r| r.sample());
    let logged = node.access_log.as_ref().filter(|l| l.sample());
    let tailed = node.tail.wants();
    if sampled.is_none() && logged.is_none() && !tailed {
        // Neither recorded nor logged: only the status is kept, nothing is
        // formatted or copied.
        let mut decision = Decision::default();
        let resp = serve_decided(node, req, client, &mut decision).await;
        return match decision.aside.shadowed.take() {
            // In its route's shadow sample: the candidates run once it has gone.
            Some(s) => finish::watched(
                resp,
                finish::Watchers {
                    shadow: Some(shadow_job(node, s)),
                    ..finish::Watchers::default()
                },
                decision,
                std::time::Instant::now(),
            ),
            None => resp,
        };
    }
    let mut decision = Decision::detailed();
    let start = std::time::Instant::now();
    let (parts, body) = req.into_parts();
    let watch = finish::Watchers {
        recorder: sampled.map(|r| (r.clone(), crate::record::Recorder::entry(&parts, client))),
        access: logged.map(|log| {
            let tls = parts.extensions.get::<crate::client::OverTls>().is_some();
            (log.clone(), crate::access::Started::of(&parts, client, tls))
        }),
        tail: tailed.then(|| (node.tail.clone(), crate::tail::Tailed::of(&parts))),
        shadow: None,
    };
    let req = Request::from_parts(parts, body);
    let resp = serve_decided(node, req, client, &mut decision).await;
    let mut watch = watch;
    watch.shadow = decision.aside.shadowed.take().map(|s| shadow_job(node, s));
    finish::watched(resp, watch, decision, start)
}

/// A request in its route's shadow sample: keep the head the live request guests
/// got (`before`) and their verdict, for the candidates to run on once it has gone.
fn note_shadow(
    node: &Node,
    route: &RouteEntry,
    before: crate::contract::types::RequestHead,
    head: &crate::contract::types::RequestHead,
    chained: &Result<request::Chained<'_>, EdgeError>,
    client: SocketAddr,
    d: &mut Decision,
) {
    let live = match chained {
        Ok(request::Chained::Forward(t)) => request::verdict_forward(&before, head, t.origin),
        Ok(request::Chained::Answer(resp)) => crate::decision::Verdict {
            action: format!("respond {}", resp.status().as_u16()),
            ..Default::default()
        },
        Err(e) => crate::decision::Verdict {
            // As the shadow words it: the kind of failure, not its message.
            action: match e {
                EdgeError::GuestClosed(g) => format!("failed {}", g.kind()),
                e => format!("failed {e}"),
            },
            ..Default::default()
        },
    };
    d.aside.shadowed = Some(Box::new(crate::decision::Shadowed {
        route: node
            .routes
            .iter()
            .position(|r| std::ptr::eq(r, route))
            .unwrap_or(usize::MAX),
        before,
        live,
        client,
        response: None,
    }));
}

/// What the finish phase runs for a request in its route's shadow sample.
fn shadow_job(node: &Arc<Node>, s: Box<crate::decision::Shadowed>) -> Box<dyn FnOnce() + Send> {
    let node = node.clone();
    Box::new(move || shadow::submit(node, s))
}

/// Serve one request, recording its decisions in `decision`.
pub async fn serve_decided(
    node: &Node,
    req: Request<Body>,
    client: SocketAddr,
    decision: &mut Decision,
) -> Response<Body> {
    let start = std::time::Instant::now();
    let (resp, route) = match run(node, req, client, decision).await {
        Ok((resp, route)) => (resp, Some(route)),
        Err((e, route)) => (fail::answer(node, &e, client, decision), route),
    };
    decision.status = resp.status().as_u16();
    if let Some(r) = route {
        r.metrics.record_status(resp.status().as_u16());
        r.metrics.duration.observe(start.elapsed());
    }
    resp
}

/// An error, and the route it happened on (none: before routing).
type Failure<'a> = (EdgeError, Option<&'a RouteEntry>);

/// The phases, in order.
async fn run<'a>(
    node: &'a Node,
    req: Request<Body>,
    client: SocketAddr,
    d: &mut Decision,
) -> Result<(Response<Body>, &'a RouteEntry), Failure<'a>> {
    let (mut parts, req_body) = req.into_parts();
    let upload = parts.extensions.remove::<Arc<Upload>>();
    let recorded = parts.extensions.remove::<crate::upstream::Recorded>();
    let (route, mut head) = target::route(node, &mut parts, client, d).map_err(|e| (e, None))?;
    let fail = |e| (e, Some(route));
    let load = LoadSource::new(route.origin.limiter.clone());
    let incoming = d.detail.then(|| head.headers.clone());

    let (class, cost) = match admit::admit(node, route, &load, &head, client.ip(), d).await {
        Ok(admit::Admitted::Class { class, cost }) => (class, cost),
        Ok(admit::Admitted::Answer(resp)) => return Ok((resp, route)),
        Err(e) => return Err(fail(e)),
    };
    let ticket = request::Ticket {
        origin: &route.origin,
        load,
        class,
        cost,
    };
    let shadowed = shadow::sampled(route, &head);
    let chained = request::chain(node, route, &mut head, ticket, d).await;
    if let Some(before) = shadowed {
        note_shadow(node, route, before, &head, &chained, client, d);
    }
    let ticket = match chained {
        Ok(request::Chained::Forward(t)) => t,
        Ok(request::Chained::Answer(resp)) => return Ok((resp, route)),
        Err(e) => return Err(fail(e)),
    };
    let request::Ticket { origin, load, .. } = ticket;
    let answer = |resp| Answer {
        route,
        load: &load,
        permit: None,
        slot: None,
        resp,
    };

    let to = cache::Upstream {
        origin,
        client,
        class: ticket.class,
        cost: ticket.cost,
    };
    let fetch = match cache::lookup(node, route, &to, &mut head, d).await {
        cache::Looked::Hit(resp) => return answer(resp).deliver(node, &head, d).await,
        cache::Looked::Fetch(f) => f,
    };
    // Only a request that goes to the origin passes its limiter; a stored copy
    // within its stale bound answers one the limiter sheds.
    let mut permit = match origin.limiter.acquire(ticket.class, ticket.cost).await {
        Ok(p) => p,
        Err(reason) => match fetch.stand_in(node, route, "shed", d) {
            Some(resp) => return answer(resp).deliver(node, &head, d).await,
            None => return Err(fail(EdgeError::Shed { reason })),
        },
    };
    if let Some(incoming) = &incoming {
        request::note_forwarded(d, origin, &head, incoming);
    }
    let exchange = origin::Exchange {
        origin,
        client,
        upload: upload.as_deref(),
        recorded,
    };
    let (resp, slot) = match exchange.fetch(&head, req_body, &mut permit, d).await {
        Ok(resp) => fetch.after(node, route, resp, d),
        Err(e) => match fetch.stand_in(node, route, "stale-if-error", d) {
            Some(resp) => (resp, None),
            None => return Err(fail(e)),
        },
    };
    Answer {
        permit: Some(permit),
        slot,
        ..answer(resp)
    }
    .deliver(node, &head, d)
    .await
}

/// A response on its way to the client, from the origin or the cache.
struct Answer<'a, 'l> {
    route: &'a RouteEntry,
    load: &'l LoadSource,
    /// The origin permit, held until the body has gone (none: from the cache).
    permit: Option<crate::limiter::Permit>,
    /// Where the response guests' decision about storing goes, when it is stored.
    slot: Option<crate::cache::Slot>,
    resp: Response<Body>,
}

impl<'a> Answer<'a, '_> {
    /// The response guests, edge compression, then the client.
    async fn deliver(
        self,
        node: &Node,
        head: &crate::contract::types::RequestHead,
        d: &mut Decision,
    ) -> Result<(Response<Body>, &'a RouteEntry), Failure<'a>> {
        let route = self.route;
        let fail = |e| (e, Some(route));
        let resp = response::chain(node, route, self.load, head, self.resp, d).await;
        let mut resp = resp.map_err(fail)?;
        // A guest's cache fields never reach the client, on any route.
        cache::steer(&mut resp, self.slot);
        let resp = compress::edge(node.levels, route, head, resp).await;
        let resp = resp.map_err(fail)?;
        Ok((finish::to_client(resp, self.permit), route))
    }
}
