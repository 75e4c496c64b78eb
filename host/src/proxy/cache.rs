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
use crate::cache::{Cache, Entry, Fill, FillBody, Freshness, Joined, Lead, Stored, Verdict};
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
    /// Why the cache did not answer (`Cache-Status`'s `fwd`).
    fwd: &'static str,
    /// An unsafe method: the keys its success invalidates.
    invalidates: bool,
}

/// Look the request up.
pub(super) async fn lookup(
    node: &Node,
    route: &RouteEntry,
    head: &mut RequestHead,
    d: &mut Decision,
) -> Looked {
    let (Some(rules), Some(cache)) = (&route.cache, &node.cache) else {
        return Looked::Fetch(Fetch::default());
    };
    let req = request_parts(head);
    let key: Arc<str> = rules
        .key(&head.authority, &head.path, &head.query, &req.headers)
        .into();
    let method = req.method.clone();
    if method != Method::GET && method != Method::HEAD {
        return other_method(route, key, req, d);
    }
    let mut fetch = Fetch {
        fwd: "miss",
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
                return Looked::Fetch(Fetch {
                    key: Some(key),
                    req: Some(req),
                    fwd: "bypass",
                    ..fetch
                });
            }
            Some(Entry::Variants(variants)) => {
                if let Some(s) = fresh_variant(&variants, &req, now, &mut fetch) {
                    let result = if fetch.collapsed { "collapsed" } else { "hit" };
                    note(route, d, result, || result.into());
                    let status = hit_status(&s, now, fetch.collapsed);
                    return Looked::Hit(s.respond(&req, now, &status));
                }
            }
            None => {}
        }
        // A miss for a part or a HEAD goes through as asked; the whole object is
        // stored by the next full GET.
        if method == Method::HEAD || req.headers.contains_key(header::RANGE) {
            note(route, d, "pass", || "pass request".into());
            return Looked::Fetch(Fetch {
                key: Some(key),
                req: Some(req),
                fwd: "request",
                ..fetch
            });
        }
        match cache.flights.join(&key) {
            Joined::Leader(lead) => {
                fetch.lead = Some(lead);
                break;
            }
            Joined::Follower(rx) => {
                // Being refetched, and may be served meanwhile: serve it.
                if let Some(s) = &fetch.stale
                    && s.freshness(now) == Freshness::Revalidating
                {
                    note(route, d, "stale", || "stale while-revalidate".into());
                    let status = "outpost; hit; detail=stale-while-revalidate".to_string();
                    return Looked::Hit(s.respond(&req, now, &status));
                }
                fetch.collapsed = true;
                if !collapse::wait(rx, cache.config.collapse_timeout).await {
                    // The leader is slow: go alone, and store what comes back.
                    break;
                }
            }
        }
    }
    fetch.key = Some(key);
    fetch.req = Some(req);
    fetch.fill = true;
    Looked::Fetch(fetch.miss(route, head, d))
}

/// A method the cache does not answer: passed; an unsafe one invalidates what it
/// changes once it succeeds.
fn other_method(
    route: &RouteEntry,
    key: Arc<str>,
    req: http::request::Parts,
    d: &mut Decision,
) -> Looked {
    note(route, d, "pass", || "pass method".into());
    Looked::Fetch(Fetch {
        key: Some(key),
        fwd: "method",
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
        match s.policy.before_request(req, now) {
            BeforeRequest::Fresh(_) => return Some(s.clone()),
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
    let ttl = s.policy.time_to_live(now).as_secs();
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
        Some(s.respond(&req, now, &format!("outpost; hit; detail={why}")))
    }

    /// The origin's response, as the cache leaves it: stored (as it streams), a
    /// stale copy refreshed by a 304 or standing in for an origin error, invalidated
    /// keys forgotten, and `Cache-Status` set.
    pub(super) fn after(
        self,
        node: &Node,
        route: &RouteEntry,
        resp: Response<Body>,
        d: &mut Decision,
    ) -> Response<Body> {
        let (Some(cache), Some(rules), Some(key), Some(req)) = (
            node.cache.clone(),
            route.cache.as_ref(),
            self.key.clone(),
            self.req.as_ref(),
        ) else {
            return resp;
        };
        let status = resp.status();
        if self.invalidates {
            if status.is_success() || status.is_redirection() {
                invalidate(&cache, rules, req, &key, &resp);
            }
            return with_status(resp, "outpost; fwd=method");
        }
        let now = cache.now();
        if status.is_server_error()
            && let Some(s) = self.stand_in(node, route, "stale-if-error", d)
        {
            return s;
        }
        if status == StatusCode::NOT_MODIFIED
            && let Some(stale) = &self.stale
        {
            return self.refreshed(&cache, key, stale, req, resp, now);
        }
        let fwd = self.fwd;
        if !self.fill {
            return with_status(
                resp,
                &format!("outpost; fwd={fwd}; fwd-status={}", status.as_u16()),
            );
        }
        let (parts, body) = resp.into_parts();
        match rules.judge(req, &parts, now) {
            Verdict::Store(stored) => self.store(cache, key, *stored, parts, body),
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
                with_status(
                    resp,
                    &format!(
                        "outpost; fwd={fwd}; fwd-status={}; detail={why}",
                        status.as_u16()
                    ),
                )
            }
        }
    }

    /// Stream the origin's response to the client, storing it as it goes (unless
    /// its length is known to be over the object limit).
    fn store(
        self,
        cache: Arc<Cache>,
        key: Arc<str>,
        stored: Stored,
        parts: http::response::Parts,
        body: Body,
    ) -> Response<Body> {
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
            return with_status(resp, &format!("outpost; fwd={fwd}; detail=too-large"));
        }
        let collapsed = if self.collapsed { "; collapsed" } else { "" };
        let fill = Fill {
            cache,
            key,
            stored,
            lead: self.lead,
        };
        let resp = Response::from_parts(parts, body::boxed(FillBody::new(body, fill)));
        let status = format!("outpost; fwd={fwd}; fwd-status={status}; stored{collapsed}");
        with_status(resp, &status)
    }

    /// The origin said the stale copy still holds: store it with the 304's headers
    /// and answer from it.
    fn refreshed(
        &self,
        cache: &Arc<Cache>,
        key: Arc<str>,
        stale: &Stored,
        req: &http::request::Parts,
        resp: Response<Body>,
        now: std::time::SystemTime,
    ) -> Response<Body> {
        let (parts, _) = resp.into_parts();
        let AfterResponse::NotModified(policy, updated) =
            stale.policy.after_response(req, &parts, now)
        else {
            // A 304 that matches nothing stored: the client's own validators.
            return with_status(
                Response::from_parts(parts, body::empty()),
                "outpost; fwd=stale; fwd-status=304",
            );
        };
        let mut headers = stale.headers.clone();
        for (name, value) in &updated.headers {
            if !crate::cache::stored::TARGETED.contains(&name.as_str()) && name != header::AGE {
                headers.insert(name.clone(), value.clone());
            }
        }
        let fresh = Stored {
            lifetime: policy.age(now) + policy.time_to_live(now),
            policy,
            status: stale.status,
            headers,
            body: stale.body.clone(),
            vary_key: stale.vary_key.clone(),
            tags: stale.tags.clone(),
            stale_while_revalidate: stale.stale_while_revalidate,
            stale_if_error: stale.stale_if_error,
        };
        let answer = fresh.respond(req, now, "outpost; fwd=stale; fwd-status=304; stored");
        cache.insert(key, fresh);
        answer
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
        resp.headers_mut().insert("cache-status", v);
    }
    resp
}
