//! Phase: cache. After the request guests (which may change the key), before the
//! origin: a fresh stored copy answers at once and takes no origin permit; a miss
//! joins the fetch already in flight for its key, or leads one whose response is
//! stored as it streams; a stale copy is revalidated, and stands in when the origin
//! fails or the limiter would shed. Every response of a caching route carries
//! `Cache-Status` (RFC 9211) and, from the cache, `Age`.

use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode};
use http_cache_semantics::{AfterResponse, BeforeRequest};

use crate::body::{self, Body};
use crate::cache::collapse;
use crate::cache::stored::FromStore;
use crate::cache::{CACHE_STATUS, GUEST_FIELDS};
use crate::cache::{
    Cache, Entry, Fill, FillBody, Freshness, Joined, Lead, Slot, Steer, Stored, Tee, Verdict,
    Waited,
};
use crate::contract::convert::append_wit_headers;
use crate::contract::types::RequestHead;
use crate::decision::{AnsweredBy, Decision};
use crate::node::{Node, RouteEntry};

/// Count a lookup's result for the route and note it in the decision.
fn note(
    route: &RouteEntry,
    d: &mut Decision,
    result: &'static str,
    detail: impl FnOnce() -> String,
) {
    route.metrics.record_cache(result);
    if matches!(result, "hit" | "collapsed" | "stale") {
        d.answered(|| AnsweredBy::Cache);
    }
    d.cache(detail);
}

/// How many times a collapsed request looks again after its leader is done.
const MAX_LOOKS: usize = 3;

/// What the cache phase decided.
pub(super) enum Looked {
    /// Answered from the cache.
    Hit(Response<Body>),
    /// Go to the origin.
    Fetch(Fetch),
}

/// A request on its way to the origin, as the cache sees it.
#[derive(Default)]
pub(super) struct Fetch {
    /// Its key (none: the route does not cache, or the method is not cacheable).
    key: Option<Arc<str>>,
    /// The request as the cache rules read it.
    req: Option<http::request::Parts>,
    /// Whether the response may be stored.
    fill: bool,
    /// The flight it leads, released when its response is stored or dropped.
    lead: Option<Lead>,
    /// A stale copy: revalidated by this fetch, and served if the origin fails or
    /// the request is shed.
    stale: Option<Arc<Stored>>,
    /// Whether this request waited for another's fetch.
    collapsed: bool,
    /// When it began waiting for another's fetch: a copy stored since then is
    /// that fetch's, fresh enough for it even if its lifetime is zero.
    waited_since: Option<std::time::SystemTime>,
    /// Why the cache did not answer (`Cache-Status`'s `fwd`).
    fwd: &'static str,
    /// An unsafe method: the keys its success invalidates.
    invalidates: bool,
    /// A lifetime a request guest set, seconds.
    ttl: Option<u32>,
}

/// What [`Fetch::settled`] made of the origin's response.
enum Settled {
    /// The answer, with nothing to store.
    Answer(Response<Body>),
    /// A response to judge for storing.
    Judge(Response<Body>),
}

/// What the request guests asked of the cache ([`outpost_common::cache`]).
#[derive(Default)]
struct Asked {
    key: Option<String>,
    bypass: bool,
    ttl: Option<u32>,
}

/// Take the request guests' cache fields out of the head (the origin never sees
/// them, whether or not the route caches).
fn asked(head: &mut RequestHead) -> Asked {
    use outpost_common::cache::{BYPASS, CONTROL, KEY, TTL};
    let mut a = Asked::default();
    head.headers.retain(|h| {
        if h.name.eq_ignore_ascii_case(KEY) {
            a.key = Some(String::from_utf8_lossy(&h.value).into_owned());
        } else if h.name.eq_ignore_ascii_case(TTL) {
            a.ttl = std::str::from_utf8(&h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok());
        } else if h.name.eq_ignore_ascii_case(CONTROL) {
            a.bypass = h.value.trim_ascii().eq_ignore_ascii_case(BYPASS.as_bytes());
        } else {
            return true;
        }
        false
    });
    a
}

/// On a caching route, one spelling of `Accept-Encoding` for each set of codings
/// ([`crate::coding::canonical_accept`]), before the key, the stored variants and
/// the origin see it: browsers that accept the same codings share a variant.
fn canonical_accept_encoding(head: &mut RequestHead) {
    let mut joined: Option<Vec<u8>> = None;
    head.headers.retain(|h| {
        if !h.name.eq_ignore_ascii_case("accept-encoding") {
            return true;
        }
        let j = joined.get_or_insert_with(Vec::new);
        if !j.is_empty() {
            j.extend_from_slice(b", ");
        }
        j.extend_from_slice(&h.value);
        false
    });
    // A client that sent the field but accepts none of the codings asked for
    // `identity`: it says so to the origin (no field would mean any coding).
    if let Some(j) = joined {
        let v = crate::coding::canonical_accept(&j).unwrap_or_else(|| "identity".into());
        head.headers.push(crate::contract::types::Header {
            name: "accept-encoding".into(),
            value: v.into_bytes(),
        });
    }
}

/// The response guests' decision about storing, taken out of the response (the
/// client never sees it), and handed to the fill's `slot`.
pub(super) fn steer(resp: &mut Response<Body>, slot: Option<Slot>) {
    use outpost_common::cache::NO_STORE;
    let h = resp.headers_mut();
    if !h.keys().any(|k| GUEST_FIELDS.contains(k)) {
        if let Some(slot) = slot {
            slot.decide(Steer::Keep);
        }
        return;
    }
    let [key, ttl, control] = &GUEST_FIELDS;
    let ttl = h.remove(ttl);
    let control = h.remove(control);
    h.remove(key);
    let Some(slot) = slot else { return };
    let no_store = control.is_some_and(|v| {
        v.as_bytes()
            .trim_ascii()
            .eq_ignore_ascii_case(NO_STORE.as_bytes())
    });
    let ttl = ttl.and_then(|v| v.to_str().ok()?.trim().parse::<u32>().ok());
    let decision = match (no_store, ttl) {
        (true, _) | (false, Some(0)) => Steer::NoStore,
        (false, Some(secs)) => Steer::Ttl(secs),
        (false, None) => Steer::Keep,
    };
    if decision != Steer::Keep
        && let Some(v) = resp
            .headers()
            .get(&CACHE_STATUS)
            .and_then(|v| v.to_str().ok())
    {
        let v = v.replace("; stored", "; detail=guest");
        if let Ok(v) = HeaderValue::from_str(&v) {
            resp.headers_mut().insert(&CACHE_STATUS, v);
        }
    }
    slot.decide(decision);
}

/// The answer to `req` from the stored copy `s`, marked as carrying its body
/// unchanged ([`FromStore`]: edge compression reuses the copy's encodings).
fn from_store(
    s: &Arc<Stored>,
    req: &http::request::Parts,
    now: std::time::SystemTime,
    status: &str,
) -> Response<Body> {
    let mut resp = s.respond(req, now, status);
    // Only a whole body is the copy's (not a range of it, not a 304).
    if resp.status() == http::StatusCode::OK {
        resp.extensions_mut().insert(FromStore(s.clone()));
    }
    resp
}

/// Look the request up.
pub(super) async fn lookup(
    node: &Node,
    route: &RouteEntry,
    to: &Upstream<'_>,
    head: &mut RequestHead,
    d: &mut Decision,
) -> Looked {
    let asked = asked(head);
    let (Some(rules), Some(cache)) = (&route.cache, &node.cache) else {
        return Looked::Fetch(Fetch::default());
    };
    canonical_accept_encoding(head);
    let (key, req) = key_of(rules, head, &asked);
    let method = req.method.clone();
    if asked.bypass || method != Method::GET && method != Method::HEAD {
        return passed(route, key, req, asked.bypass, d);
    }
    let mut fetch = Fetch {
        fwd: "miss",
        ttl: asked.ttl,
        ..Fetch::default()
    };
    for _ in 0..MAX_LOOKS {
        let now = cache.now();
        let entry = match cache.get(&key) {
            Some(e) => Some(e),
            None => cache.load(&key).await,
        };
        match entry {
            Some(Entry::Pass { .. }) => {
                note(route, d, "pass", || "pass hit-for-pass".into());
                return fetch.passing(key, req, "bypass");
            }
            Some(Entry::Variants(variants)) => {
                if let Some(s) = fresh_variant(&variants, &req, now, &mut fetch) {
                    let result = if fetch.collapsed { "collapsed" } else { "hit" };
                    note(route, d, result, || result.into());
                    let status = hit_status(&s, now, fetch.collapsed);
                    return Looked::Hit(from_store(&s, &req, now, &status));
                }
            }
            None => {}
        }
        // A miss for a part or a HEAD goes through as asked; the whole object is
        // stored by the next full GET.
        if method == Method::HEAD || req.headers.contains_key(header::RANGE) {
            note(route, d, "pass", || "pass request".into());
            return fetch.passing(key, req, "request");
        }
        match cache.flights.join(&key) {
            Joined::Leader(lead) => {
                // In a replay (virtual clock) the revalidation is this request's
                // own, in order: a background task would make runs differ.
                if let Some(s) = fetch.stale.clone()
                    && s.freshness(now) == Freshness::Revalidating
                    && !cache.clock.is_virtual()
                {
                    note(route, d, "stale", || "stale while-revalidate".into());
                    let refresh = Refreshing {
                        cache,
                        rules,
                        to,
                        key: &key,
                        req: &req,
                    };
                    return Looked::Hit(refresh.serve_stale(head, s, lead, fetch.ttl, now));
                }
                fetch.lead = Some(lead);
                break;
            }
            Joined::Follower(rx) => {
                match follow(cache, route, rx, &req, now, &mut fetch, d).await {
                    Next::Answer(resp) => return Looked::Hit(resp),
                    Next::Look => {}
                    Next::Go => break,
                }
            }
        }
    }
    fetch.key = Some(key);
    fetch.req = Some(req);
    fetch.fill = true;
    Looked::Fetch(fetch.miss(route, head, d))
}

/// Where a request that goes to the origin goes, and as what.
pub(super) struct Upstream<'a> {
    /// The origin (the route's, or the one a request guest chose).
    pub origin: &'a Arc<crate::node::OriginEntry>,
    /// The client.
    pub client: std::net::SocketAddr,
    /// Its class and cost at the origin's limiter.
    pub class: usize,
    /// Its cost.
    pub cost: u32,
}

/// What a background revalidation needs from the lookup.
struct Refreshing<'a> {
    cache: &'a Arc<Cache>,
    rules: &'a Arc<crate::cache::RouteRules>,
    to: &'a Upstream<'a>,
    key: &'a Arc<str>,
    req: &'a http::request::Parts,
}

impl Refreshing<'_> {
    /// Answer from `stale` now and revalidate it in the background, leading the
    /// key's flight.
    fn serve_stale(
        self,
        head: &RequestHead,
        stale: Arc<Stored>,
        lead: Lead,
        ttl: Option<u32>,
        now: std::time::SystemTime,
    ) -> Response<Body> {
        let status = "outpost; hit; detail=stale-while-revalidate";
        let answer = stale.respond(self.req, now, status);
        let mut head = head.clone();
        head.headers.retain(|h| {
            !h.name.eq_ignore_ascii_case("if-none-match")
                && !h.name.eq_ignore_ascii_case("if-modified-since")
        });
        add_validators(&mut head, &stale);
        super::refresh::Refresh {
            origin: self.to.origin.clone(),
            head,
            client: self.to.client,
            class: self.to.class,
            cost: self.to.cost,
            cache: self.cache.clone(),
            rules: self.rules.clone(),
            key: self.key.clone(),
            req: self.req.clone(),
            stale,
            lead,
            ttl,
        }
        .spawn();
        answer
    }
}

/// What a collapsed request does once its wait is over.
enum Next {
    /// Answer it with this (from the cache).
    Answer(Response<Body>),
    /// Look again: the leader is done.
    Look,
    /// Go to the origin alone.
    Go,
}

/// A request behind another's fetch of its key: served a stale copy that may be
/// served while it is refetched, or the leader's response as it streams; else it
/// looks again once the leader is done, or goes alone if the leader is slow.
async fn follow(
    cache: &Cache,
    route: &RouteEntry,
    rx: tokio::sync::watch::Receiver<Option<Arc<Tee>>>,
    req: &http::request::Parts,
    now: std::time::SystemTime,
    fetch: &mut Fetch,
    d: &mut Decision,
) -> Next {
    if let Some(s) = &fetch.stale
        && s.freshness(now) == Freshness::Revalidating
    {
        note(route, d, "stale", || "stale while-revalidate".into());
        let status = "outpost; hit; detail=stale-while-revalidate";
        return Next::Answer(from_store(s, req, now, status));
    }
    fetch.collapsed = true;
    fetch.waited_since.get_or_insert(now);
    match collapse::wait(rx, cache.config.collapse_timeout).await {
        // Another variant than this request's (`Vary`): look again.
        Waited::Streaming(tee) if !tee.serves(&req.headers) => Next::Look,
        Waited::Streaming(tee) => {
            note(route, d, "collapsed", || "collapsed streaming".into());
            let status = "outpost; hit; collapsed; detail=streaming";
            Next::Answer(tee.respond(status))
        }
        Waited::Done => Next::Look,
        Waited::TimedOut => Next::Go,
    }
}

/// The request's key and the request as the cache rules read it. A guest's key
/// replaces path and query (the host stays part of it); the rules then compare no
/// URI, the key says which requests are one object.
fn key_of(
    rules: &crate::cache::RouteRules,
    head: &RequestHead,
    asked: &Asked,
) -> (Arc<str>, http::request::Parts) {
    let mut req = request_parts(head);
    let key = match &asked.key {
        Some(k) => format!("{}#{k}", head.authority.to_ascii_lowercase()),
        None => rules.key(&head.authority, &head.path, &head.query, &req.headers),
    };
    // The key says which requests are one object (ignored parameters, a guest's
    // key): the rules compare no URI.
    req.uri = http::Uri::from_static("/");
    // A client's own Cache-Control and Pragma are not heeded, as Varnish and
    // Fastly do: no client can push its requests past the cache to the origin,
    // or keep a response out of it.
    req.headers.remove(header::CACHE_CONTROL);
    req.headers.remove(header::PRAGMA);
    (key.into(), req)
}

/// A request the cache does not answer: one a guest bypassed, or a method other
/// than GET and HEAD (an unsafe one invalidates what it changes once it succeeds).
fn passed(
    route: &RouteEntry,
    key: Arc<str>,
    req: http::request::Parts,
    bypassed: bool,
    d: &mut Decision,
) -> Looked {
    let why = if bypassed { "guest" } else { "method" };
    note(route, d, "pass", || format!("pass {why}"));
    Looked::Fetch(Fetch {
        key: Some(key),
        fwd: if bypassed { "bypass" } else { "method" },
        invalidates: !req.method.is_safe(),
        req: Some(req),
        ..Fetch::default()
    })
}

/// The variant of `variants` that answers `req` fresh at `now`; else the stale
/// one that matches it is kept in `fetch` for revalidation.
fn fresh_variant(
    variants: &[Arc<Stored>],
    req: &http::request::Parts,
    now: std::time::SystemTime,
    fetch: &mut Fetch,
) -> Option<Arc<Stored>> {
    // A HEAD is answered from a stored GET (RFC 9110 §9.3.2).
    let get;
    let req = if req.method == Method::HEAD {
        let mut r = http::Request::new(());
        *r.uri_mut() = req.uri.clone();
        *r.headers_mut() = req.headers.clone();
        get = r.into_parts().0;
        &get
    } else {
        req
    };
    for s in variants {
        // The common hit decided from what was fixed at storing; anything else
        // (stale, another variant) by the policy.
        if s.fresh_for(&req.headers, now) {
            return Some(s.clone());
        }
        match s.policy.before_request(req, now) {
            BeforeRequest::Fresh(_) => return Some(s.clone()),
            // The fetch this request waited for stored it: its answer, however
            // short its lifetime (a `no-cache` playlist is not revalidated once
            // per waiter, one after another).
            BeforeRequest::Stale { matches: true, .. }
                if fetch.waited_since.is_some_and(|t| s.stored_at >= t) =>
            {
                return Some(s.clone());
            }
            BeforeRequest::Stale { matches: true, .. } => {
                fetch.fwd = "stale";
                fetch.stale = Some(s.clone());
                return None;
            }
            BeforeRequest::Stale { .. } => fetch.fwd = "vary-miss",
        }
    }
    None
}

/// `Cache-Status` of a hit: its remaining freshness, and whether it waited for
/// another request's fetch.
fn hit_status(s: &Stored, now: std::time::SystemTime, collapsed: bool) -> String {
    let ttl = s.ttl(now).as_secs();
    if collapsed {
        format!("outpost; hit; ttl={ttl}; collapsed")
    } else {
        format!("outpost; hit; ttl={ttl}")
    }
}

/// The request as the cache rules read it: method, URI, headers.
fn request_parts(head: &RequestHead) -> http::request::Parts {
    let mut req = http::Request::new(());
    *req.method_mut() = Method::from_bytes(head.method.as_bytes()).unwrap_or(Method::GET);
    let target = if head.query.is_empty() {
        head.path.clone()
    } else {
        format!("{}?{}", head.path, head.query)
    };
    if let Ok(uri) = target.parse() {
        *req.uri_mut() = uri;
    }
    append_wit_headers(req.headers_mut(), &head.headers);
    req.into_parts().0
}

/// Revalidate a stale copy: ask the origin whether the stored one still holds (a
/// 304 then refreshes the copy).
fn add_validators(head: &mut RequestHead, s: &Stored) {
    for (from, to) in [
        (header::ETAG, "if-none-match"),
        (header::LAST_MODIFIED, "if-modified-since"),
    ] {
        if let Some(v) = s.headers.get(from) {
            head.headers.push(crate::contract::types::Header {
                name: to.into(),
                value: v.as_bytes().to_vec(),
            });
        }
    }
}

impl Fetch {
    /// Straight to the origin, nothing stored (`fwd` says why).
    fn passing(self, key: Arc<str>, req: http::request::Parts, fwd: &'static str) -> Looked {
        Looked::Fetch(Fetch {
            key: Some(key),
            req: Some(req),
            fwd,
            ..self
        })
    }

    /// A miss that fetches to store: the origin is asked for the whole object (the
    /// client's own conditions are answered from it), or whether the stale copy
    /// still holds.
    fn miss(self, route: &RouteEntry, head: &mut RequestHead, d: &mut Decision) -> Fetch {
        head.headers.retain(|h| {
            !h.name.eq_ignore_ascii_case("if-none-match")
                && !h.name.eq_ignore_ascii_case("if-modified-since")
        });
        if let Some(s) = &self.stale {
            add_validators(head, s);
        }
        let what = if self.collapsed {
            "collapsed-miss"
        } else {
            "miss"
        };
        note(route, d, "miss", || what.into());
        self
    }

    /// The stale copy's answer when the origin cannot be used (it failed, timed
    /// out, or the limiter sheds the request), if the copy is within its bound.
    pub(super) fn stand_in(
        &self,
        node: &Node,
        route: &RouteEntry,
        why: &'static str,
        d: &mut Decision,
    ) -> Option<Response<Body>> {
        let cache = node.cache.as_ref()?;
        let s = self.stale.as_ref()?;
        let req = self.req.as_ref()?;
        let now = cache.now();
        if !s.may_serve_on_error(now) {
            return None;
        }
        note(route, d, "stale", || format!("stale {why}"));
        let mut req = req.clone();
        // The client gets the stored copy, not the revalidation the node added.
        req.headers.remove(header::IF_NONE_MATCH);
        req.headers.remove(header::IF_MODIFIED_SINCE);
        Some(from_store(
            s,
            &req,
            now,
            &format!("outpost; hit; detail={why}"),
        ))
    }

    /// The origin's response, as the cache leaves it: stored (as it streams), a
    /// stale copy refreshed by a 304 or standing in for an origin error, invalidated
    /// keys forgotten, and `Cache-Status` set. A response being stored comes with
    /// the [`Slot`] the response guests' decision goes to.
    pub(super) fn after(
        self,
        node: &Node,
        route: &RouteEntry,
        resp: Response<Body>,
        d: &mut Decision,
    ) -> (Response<Body>, Option<Slot>) {
        let (Some(cache), Some(rules), Some(key), Some(req)) = (
            node.cache.clone(),
            route.cache.clone(),
            self.key.clone(),
            self.req.as_ref(),
        ) else {
            return (resp, None);
        };
        let resp = self.settled(node, route, &cache, &rules, key.clone(), req, resp, d);
        let resp = match resp {
            Settled::Answer(resp) => return (resp, None),
            Settled::Judge(resp) => resp,
        };
        let (parts, body) = resp.into_parts();
        let fwd = self.fwd;
        let status = parts.status;
        let now = cache.now();
        match rules.judge_for(req, &parts, now, self.ttl) {
            Verdict::Store(stored) => {
                let (resp, slot) = self.store(cache, rules, key, *stored, parts, body, now);
                (resp, Some(slot))
            }
            Verdict::Pass(why) => {
                // Hit-for-pass: the next requests for the key go to the origin
                // without waiting for one another. Only for a status that could
                // have been stored: a 304 or a 206 says nothing about the object.
                if storable_status(status) {
                    cache.mark_pass(&key);
                }
                drop(self.lead);
                d.cache(|| format!("miss, then pass {why}"));
                let resp = Response::from_parts(parts, body);
                let status = status.as_u16();
                let text = format!("outpost; fwd={fwd}; fwd-status={status}; detail={why}");
                (with_status(resp, &text), None)
            }
        }
    }

    /// The answers that involve no storing: an unsafe method's invalidation, a
    /// stale copy for an origin error, a 304 refreshing a stale copy, a response
    /// the cache does not fill; else the response, to judge for storing.
    #[allow(clippy::too_many_arguments)]
    fn settled(
        &self,
        node: &Node,
        route: &RouteEntry,
        cache: &Arc<Cache>,
        rules: &crate::cache::RouteRules,
        key: Arc<str>,
        req: &http::request::Parts,
        resp: Response<Body>,
        d: &mut Decision,
    ) -> Settled {
        let status = resp.status();
        if self.invalidates {
            if status.is_success() || status.is_redirection() {
                invalidate(cache, rules, req, &key, &resp);
            }
            return Settled::Answer(with_status(resp, "outpost; fwd=method"));
        }
        if status.is_server_error()
            && let Some(s) = self.stand_in(node, route, "stale-if-error", d)
        {
            return Settled::Answer(s);
        }
        if status == StatusCode::NOT_MODIFIED
            && let Some(stale) = &self.stale
        {
            let now = cache.now();
            return Settled::Answer(Self::refreshed(cache, rules, key, stale, req, resp, now));
        }
        if !self.fill {
            let fwd = self.fwd;
            let text = format!("outpost; fwd={fwd}; fwd-status={}", status.as_u16());
            return Settled::Answer(with_status(resp, &text));
        }
        Settled::Judge(resp)
    }

    /// Stream the origin's response to the client, storing it as it goes (unless
    /// its length is known to be over the object limit).
    #[allow(clippy::too_many_arguments)]
    fn store(
        self,
        cache: Arc<Cache>,
        rules: Arc<crate::cache::RouteRules>,
        key: Arc<str>,
        stored: Stored,
        parts: http::response::Parts,
        body: Body,
        now: std::time::SystemTime,
    ) -> (Response<Body>, Slot) {
        let slot = Slot::default();
        let fwd = self.fwd;
        let status = parts.status.as_u16();
        let length = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if length.is_some_and(|n| n > cache.max_object_bytes) {
            cache.mark_pass(&key);
            cache.metrics.too_large.inc();
            let resp = Response::from_parts(parts, body);
            let text = format!("outpost; fwd={fwd}; detail=too-large");
            return (with_status(resp, &text), slot);
        }
        let collapsed = if self.collapsed { "; collapsed" } else { "" };
        // Requests collapsed behind this one are served from it as it streams.
        let tee = self.lead.as_ref().map(|lead| {
            let length = length.map(|n| n as u64);
            let headers = stored.headers.clone();
            let tee = Tee::new(stored.status, headers, stored.vary_key.clone(), length);
            lead.publish(tee.clone());
            tee
        });
        let req = self
            .req
            .unwrap_or_else(|| http::Request::new(()).into_parts().0);
        let fill = Fill {
            cache,
            key,
            stored,
            lead: self.lead,
            rejudge: (rules, req, now),
        };
        // With its length known (so it will be kept whole), the origin's body is
        // read apart and this client reads along like any waiter. Not in a replay,
        // where requests run strictly in order.
        let apart = length.is_some() && !fill.cache.clock.is_virtual();
        let body = match (tee, apart) {
            (Some(tee), true) => {
                FillBody::new(body, fill, slot.clone(), Some(tee.clone())).fetch_apart();
                tee.body()
            }
            (tee, _) => body::boxed(FillBody::new(body, fill, slot.clone(), tee)),
        };
        let resp = Response::from_parts(parts, body);
        let status = format!("outpost; fwd={fwd}; fwd-status={status}; stored{collapsed}");
        (with_status(resp, &status), slot)
    }

    /// The origin said the stale copy still holds: store it with the 304's headers
    /// and answer from it.
    fn refreshed(
        cache: &Arc<Cache>,
        rules: &crate::cache::RouteRules,
        key: Arc<str>,
        stale: &Stored,
        req: &http::request::Parts,
        resp: Response<Body>,
        now: std::time::SystemTime,
    ) -> Response<Body> {
        let (parts, _) = resp.into_parts();
        let Some(fresh) = refresh_from(rules, stale, req, &parts, now) else {
            // A 304 that matches nothing stored: the stale copy is what there is.
            return stale.respond(req, now, "outpost; hit; fwd=stale; detail=unmatched-304");
        };
        let answer = fresh.respond(req, now, "outpost; fwd=stale; fwd-status=304; stored");
        cache.insert(key, fresh);
        answer
    }
}

/// `stale`, refreshed by the origin's 304 `not_modified`, judged as the edge
/// judges (the targeted directives in place of `Cache-Control`); none when the 304
/// does not match it.
pub(super) fn refresh_from(
    rules: &crate::cache::RouteRules,
    stale: &Stored,
    req: &http::request::Parts,
    not_modified: &http::response::Parts,
    now: std::time::SystemTime,
) -> Option<Stored> {
    let view = rules.edge_view(not_modified);
    match stale.policy.after_response(req, &view, now) {
        AfterResponse::NotModified(policy, _) => {
            Some(stale.refreshed(policy, &not_modified.headers, now))
        }
        AfterResponse::Modified(..) => None,
    }
}

/// A successful unsafe request changed its target, and what its `Location` and
/// `Content-Location` name on the same host (RFC 9111 §4.4).
fn invalidate(
    cache: &Cache,
    rules: &crate::cache::RouteRules,
    req: &http::request::Parts,
    key: &str,
    resp: &Response<Body>,
) {
    cache.remove(key);
    let authority = key.split('/').next().unwrap_or_default();
    for h in [header::LOCATION, header::CONTENT_LOCATION] {
        let Some(target) = resp.headers().get(h).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        let Ok(uri) = target.parse::<http::Uri>() else {
            continue;
        };
        let same_host = uri.host().is_none_or(|host| {
            host.eq_ignore_ascii_case(authority.split(':').next().unwrap_or_default())
        });
        if same_host {
            let k = rules.key(
                authority,
                uri.path(),
                uri.query().unwrap_or(""),
                &req.headers,
            );
            cache.remove(&k);
        }
    }
}

/// Statuses a cache may store (RFC 9110 §15.1's heuristically cacheable ones, and
/// 302/307 with explicit freshness).
fn storable_status(s: StatusCode) -> bool {
    matches!(
        s.as_u16(),
        200 | 203 | 204 | 300 | 301 | 302 | 307 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// `resp` with its `Cache-Status`, without the edge's targeted fields (they are the
/// edge's, stored or not: RFC 9213 §2.1).
fn with_status(mut resp: Response<Body>, status: &str) -> Response<Body> {
    for h in crate::cache::stored::TARGETED {
        resp.headers_mut().remove(h);
    }
    if let Ok(v) = HeaderValue::from_str(status) {
        resp.headers_mut().insert(&CACHE_STATUS, v);
    }
    resp
}
