//! What may be stored, under which key, and for how long.
//!
//! The rules of RFC 9111 are `http-cache-semantics`'. Around them, the edge's own:
//! - `CDN-Cache-Control` (RFC 9213), else `Surrogate-Control`, replaces
//!   `Cache-Control` for the edge's judgement; neither reaches a client.
//! - A response with `Set-Cookie` is never stored (one viewer's cookie would be
//!   every viewer's), as Varnish's default.
//! - 404 and 410 without a lifetime of their own get the route's `negative_ttl`; an
//!   origin error (5xx) is stored only when the route sets `error_ttl`.
//! - The route's `default_ttl` applies to a response that gives no freshness at all
//!   and does not forbid storing; without it, the RFC's heuristic (10% of the time
//!   since `Last-Modified`) applies where the RFC allows it.
//! - `stale-while-revalidate` and `stale-if-error` (RFC 5861) from the response; the
//!   route's `stale_if_error` is a floor, unless the response says
//!   `must-revalidate`.

use std::time::{Duration, SystemTime};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use http_cache_semantics::{CacheOptions, CachePolicy};

use super::stored::{Stored, TARGETED};

/// A route's cache rules (`[routes.cache]`).
#[derive(Debug, Clone, Default)]
pub struct RouteRules {
    /// The lifetime of a response that gives none (none: the RFC's heuristic).
    pub default_ttl: Option<Duration>,
    /// The lifetime of a 404 or 410 that gives none.
    pub negative_ttl: Duration,
    /// The lifetime of an origin error (5xx) that gives none; none: never stored.
    pub error_ttl: Option<Duration>,
    /// How long past freshness a copy may stand in for a failed or shed request.
    pub stale_if_error: Duration,
    /// Query parameters left out of the key (`*` at the end: a prefix); `["*"]`:
    /// the whole query.
    pub ignore_query: Vec<String>,
    /// Request headers whose values are part of the key.
    pub key_headers: Vec<HeaderName>,
}

/// What to do with an origin's response.
pub enum Verdict {
    /// Store it (its body is added as it streams).
    Store(Box<Stored>),
    /// Do not store it; `why` says why (for the `Cache-Status` detail).
    Pass(&'static str),
}

impl RouteRules {
    /// The key of a request: host, path, the query without the ignored parameters
    /// (and without `CMCD`), and the key headers' values.
    pub fn key(&self, authority: &str, path: &str, query: &str, headers: &HeaderMap) -> String {
        let mut key = String::with_capacity(authority.len() + path.len() + query.len() + 2);
        for c in authority.trim_end_matches('.').chars() {
            key.push(c.to_ascii_lowercase());
        }
        key.push_str(path);
        let kept: Vec<&str> = query
            .split('&')
            .filter(|p| !p.is_empty() && !self.ignored(p.split('=').next().unwrap_or(p)))
            .collect();
        if !kept.is_empty() {
            key.push('?');
            key.push_str(&kept.join("&"));
        }
        for h in &self.key_headers {
            key.push('\n');
            key.push_str(h.as_str());
            key.push(':');
            for v in headers.get_all(h) {
                key.push_str(&String::from_utf8_lossy(v.as_bytes()));
            }
        }
        key
    }

    /// Whether the query parameter `name` is left out of the key: a configured one,
    /// or `CMCD`, a player's per-request data (CTA-5004 asks CDNs to keep it out
    /// of their keys; every segment request of every viewer carries a different one).
    fn ignored(&self, name: &str) -> bool {
        name == "CMCD"
            || self.ignore_query.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => name == p,
            })
    }

    /// Judge the origin's response `resp` to `req`, received at `now`.
    pub fn judge(
        &self,
        req: &http::request::Parts,
        resp: &http::response::Parts,
        now: SystemTime,
    ) -> Verdict {
        self.judge_for(req, resp, now, None)
    }

    /// [`judge`](Self::judge), with a lifetime a guest set: `ttl` seconds replace
    /// what the response's own freshness fields say (0: not stored). A guest's
    /// lifetime does not store what must never be shared: a `Set-Cookie`, a
    /// partial response, a method other than GET.
    pub fn judge_for(
        &self,
        req: &http::request::Parts,
        resp: &http::response::Parts,
        now: SystemTime,
        ttl: Option<u32>,
    ) -> Verdict {
        if ttl == Some(0) {
            return Verdict::Pass("guest");
        }
        if req.method != Method::GET {
            return Verdict::Pass("method");
        }
        if resp.headers.contains_key(header::SET_COOKIE) {
            return Verdict::Pass("set-cookie");
        }
        if resp.status == StatusCode::PARTIAL_CONTENT {
            return Verdict::Pass("partial");
        }
        // An answer to an authenticated request is one user's, unless the origin
        // itself says it may be shared (RFC 9111 §3.5); a route's default lifetime
        // does not say so.
        if ttl.is_none() && req.headers.contains_key(header::AUTHORIZATION) {
            let own = directives(resp.headers.get_all(header::CACHE_CONTROL));
            let shared = ["public", "s-maxage", "must-revalidate"];
            if !own.iter().any(|(n, _)| shared.contains(&n.as_str())) {
                return Verdict::Pass("authorization");
            }
        }
        let mut view = self.edge_view(resp);
        if let Some(secs) = ttl {
            let h = view.headers_mut();
            if let Ok(v) = HeaderValue::from_str(&format!("s-maxage={secs}")) {
                h.insert(header::CACHE_CONTROL, v);
            }
            h.remove(header::EXPIRES);
            h.remove(header::PRAGMA);
            if view.status().is_server_error() {
                *view.status_mut() = StatusCode::OK;
            }
        }
        let policy = CachePolicy::new_options(req, &view, now, CacheOptions::default());
        if !policy.is_storable() || policy.time_to_live(now).is_zero() && !has_validator(resp) {
            return Verdict::Pass("uncacheable");
        }
        // What is kept of the request: its target and the headers the response
        // varies on, not its cookies or credentials (they would be stored, and
        // written to disk).
        let policy = CachePolicy::new_options(
            &minimal_request(req, &resp.headers),
            &view,
            now,
            CacheOptions::default(),
        );
        let cc = directives(view.headers().get_all(header::CACHE_CONTROL));
        let secs = |name: &str| {
            cc.iter()
                .find(|(n, _)| n == name)
                .and_then(|(_, v)| v.parse::<u64>().ok())
                .map(Duration::from_secs)
        };
        let must_revalidate = cc
            .iter()
            .any(|(n, _)| n == "must-revalidate" || n == "proxy-revalidate");
        let stale_if_error = match (secs("stale-if-error"), must_revalidate) {
            (Some(d), _) => d.max(self.stale_if_error),
            (None, true) => Duration::ZERO,
            (None, false) => self.stale_if_error,
        };
        let (headers, tags) = headers_and_tags(&resp.headers);
        Verdict::Store(Box::new(Stored {
            lifetime: policy.age(now) + policy.time_to_live(now),
            stored_at: now,
            vary_key: vary_key(&resp.headers, &req.headers),
            policy,
            status: resp.status,
            headers,
            body: bytes::Bytes::new(),
            tags,
            stale_while_revalidate: secs("stale-while-revalidate").unwrap_or_default(),
            stale_if_error,
            encoded: super::stored::Encoded::default(),
        }))
    }

    /// The response as the edge judges it: the targeted directives in place of
    /// `Cache-Control`, the route's lifetimes where the response gives none.
    pub fn edge_view(&self, resp: &http::response::Parts) -> http::Response<()> {
        let mut view = http::Response::new(());
        *view.status_mut() = resp.status;
        if resp.status.is_server_error() && self.error_ttl.is_some() {
            // `http-cache-semantics` stores no 5xx at all; where the route caches
            // errors, one is judged as a 200 would be (its own status is kept).
            *view.status_mut() = StatusCode::OK;
        }
        let h = view.headers_mut();
        *h = resp.headers.clone();
        // An `Age` past 2^31 seconds is 2^31 (RFC 9111 §1.2.2): larger ones would
        // overflow the age arithmetic.
        let age = h
            .get(header::AGE)
            .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
        if age.is_some_and(|a| a > 1 << 31) {
            h.insert(header::AGE, HeaderValue::from(1u64 << 31));
        }
        let targeted = resp
            .headers
            .get("cdn-cache-control")
            .or_else(|| resp.headers.get("surrogate-control"))
            .cloned();
        if let Some(t) = targeted {
            h.insert(header::CACHE_CONTROL, t);
            // The targeted field's freshness wins over Expires too (RFC 9213 §2.1).
            h.remove(header::EXPIRES);
        }
        let cc = directives(h.get_all(header::CACHE_CONTROL));
        let has = |n: &str| cc.iter().any(|(d, _)| d == n);
        let explicit = has("max-age") || has("s-maxage") || h.contains_key(header::EXPIRES);
        let forbidden = has("no-store") || has("private") || has("no-cache");
        if explicit || forbidden {
            return view;
        }
        let ttl = match resp.status.as_u16() {
            404 | 410 => Some(self.negative_ttl),
            500..=599 => self.error_ttl,
            // The statuses that may be cached without an explicit lifetime
            // (RFC 9110 §15.1); a 302 or 303 never gets the route's default.
            200 | 203 | 204 | 300 | 301 | 308 | 405 | 414 => self.default_ttl,
            _ => None,
        };
        if let Some(ttl) = ttl {
            let mut v = cc
                .iter()
                .map(|(n, v)| {
                    if v.is_empty() {
                        n.clone()
                    } else {
                        format!("{n}={v}")
                    }
                })
                .collect::<Vec<_>>();
            v.push(format!("s-maxage={}", ttl.as_secs()));
            if let Ok(v) = HeaderValue::from_str(&v.join(", ")) {
                h.insert(header::CACHE_CONTROL, v);
            }
        }
        view
    }
}

/// `req` reduced to what a stored policy needs: method, target, `Host`, and the
/// headers `resp` varies on.
/// The origin's headers as clients get them (the edge's targeted fields removed),
/// and its `Surrogate-Key` tags.
fn headers_and_tags(origin: &HeaderMap) -> (HeaderMap, Vec<String>) {
    let mut headers = origin.clone();
    for h in TARGETED {
        headers.remove(h);
    }
    let tags = origin
        .get_all("surrogate-key")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(str::split_whitespace)
        .map(str::to_string)
        .collect();
    (headers, tags)
}

fn minimal_request(req: &http::request::Parts, resp: &HeaderMap) -> http::request::Parts {
    let mut r = http::Request::new(());
    *r.method_mut() = req.method.clone();
    *r.uri_mut() = req.uri.clone();
    let h = r.headers_mut();
    let varied = resp
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok());
    for name in std::iter::once(header::HOST).chain(varied) {
        for v in req.headers.get_all(&name) {
            h.append(name.clone(), v.clone());
        }
    }
    r.into_parts().0
}

/// Whether a response can be revalidated (so storing it with no freshness is
/// still worth it).
fn has_validator(resp: &http::response::Parts) -> bool {
    resp.headers.contains_key(header::ETAG) || resp.headers.contains_key(header::LAST_MODIFIED)
}

/// The request's values of the headers `resp` varies on.
pub fn vary_key(resp: &HeaderMap, req: &HeaderMap) -> String {
    let mut out = String::new();
    for name in resp
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let name = name.trim().to_ascii_lowercase();
        out.push_str(&name);
        out.push('=');
        // Several fields of one name are one list (RFC 9110, 5.3): joined as such,
        // so `a` + `bc` and `ab` + `c` stay apart; bytes outside printable ASCII
        // (and the escape itself) escaped, so distinct values never share a key.
        for (i, v) in req.get_all(name.as_str()).iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            for &b in v.as_bytes() {
                match b {
                    b'\\' => out.push_str("\\\\"),
                    0x20..=0x7e => out.push(char::from(b)),
                    _ => out.push_str(&format!("\\x{b:02x}")),
                }
            }
        }
        out.push('\n');
    }
    out
}

/// Cache-Control directives, lower-case names, values unquoted.
fn directives<'a>(values: impl IntoIterator<Item = &'a HeaderValue>) -> Vec<(String, String)> {
    values
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|d| {
            let d = d.trim();
            if d.is_empty() {
                return None;
            }
            let (n, v) = d.split_once('=').unwrap_or((d, ""));
            Some((
                n.trim().to_ascii_lowercase(),
                v.trim().trim_matches('"').to_string(),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> http::request::Parts {
        http::Request::get("http://a.example/x")
            .header("host", "a.example")
            .body(())
            .expect("request")
            .into_parts()
            .0
    }

    fn resp(status: u16, headers: &[(&str, &str)]) -> http::response::Parts {
        let mut b = http::Response::builder().status(status);
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(()).expect("response").into_parts().0
    }

    #[test]
    fn vary_keys_keep_split_and_non_ascii_values_apart() {
        let vary = resp(200, &[("vary", "X-A")]).headers;
        let key = |values: &[&[u8]]| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append("x-a", HeaderValue::from_bytes(v).expect("value"));
            }
            vary_key(&vary, &h)
        };
        assert_ne!(key(&[b"a", b"bc"]), key(&[b"ab", b"c"]));
        assert_eq!(
            key(&[b"a", b"b"]),
            key(&[b"a, b"]),
            "one list, two spellings"
        );
        assert_ne!(key(&[b"\xff"]), key(&[b"\xfe"]));
        assert_ne!(key(&[b"\\xff"]), key(&[b"\xff"]), "the escape's own text");
    }

    fn ttl(rules: &RouteRules, status: u16, headers: &[(&str, &str)]) -> Option<u64> {
        let now = SystemTime::now();
        match rules.judge(&req(), &resp(status, headers), now) {
            Verdict::Store(s) => Some(s.lifetime.as_secs()),
            Verdict::Pass(_) => None,
        }
    }

    #[test]
    fn lifetimes_follow_the_response_then_the_route() {
        let r = RouteRules {
            negative_ttl: Duration::from_secs(7),
            default_ttl: Some(Duration::from_secs(30)),
            ..RouteRules::default()
        };
        type Case<'a> = (u16, &'a [(&'a str, &'a str)], Option<u64>);
        let cases: &[Case] = &[
            (200, &[("cache-control", "max-age=60")], Some(60)),
            (200, &[("cache-control", "max-age=60, s-maxage=5")], Some(5)),
            // The targeted fields win for the edge.
            (
                200,
                &[
                    ("cache-control", "max-age=60"),
                    ("cdn-cache-control", "max-age=600"),
                ],
                Some(600),
            ),
            (
                200,
                &[
                    ("cache-control", "no-store"),
                    ("surrogate-control", "max-age=9"),
                ],
                Some(9),
            ),
            (
                200,
                &[
                    ("cache-control", "max-age=60"),
                    ("cdn-cache-control", "no-store"),
                ],
                None,
            ),
            (200, &[("cache-control", "no-store")], None),
            (200, &[("cache-control", "private, max-age=60")], None),
            (
                200,
                &[("cache-control", "max-age=60"), ("set-cookie", "s=1")],
                None,
            ),
            // No freshness given: the route's default.
            (200, &[], Some(30)),
            (404, &[], Some(7)),
            (410, &[("cache-control", "max-age=100")], Some(100)),
            // Errors only where the route says so.
            (503, &[], None),
            (206, &[("cache-control", "max-age=60")], None),
        ];
        for (status, headers, want) in cases {
            assert_eq!(ttl(&r, *status, headers), *want, "{status} {headers:?}");
        }
        let errors = RouteRules {
            error_ttl: Some(Duration::from_secs(2)),
            ..RouteRules::default()
        };
        assert_eq!(ttl(&errors, 503, &[]), Some(2));
    }

    #[test]
    fn stale_bounds_come_from_the_response_and_the_route() {
        let r = RouteRules {
            stale_if_error: Duration::from_secs(10),
            ..RouteRules::default()
        };
        let judge = |cc: &str| match r.judge(
            &req(),
            &resp(200, &[("cache-control", cc)]),
            SystemTime::now(),
        ) {
            Verdict::Store(s) => (
                s.stale_while_revalidate.as_secs(),
                s.stale_if_error.as_secs(),
            ),
            Verdict::Pass(why) => panic!("{cc}: {why}"),
        };
        assert_eq!(judge("max-age=1"), (0, 10));
        assert_eq!(
            judge("max-age=1, stale-while-revalidate=4, stale-if-error=60"),
            (4, 60)
        );
        assert_eq!(judge("max-age=1, must-revalidate"), (0, 0));
    }

    #[test]
    fn keys_drop_ignored_parameters_and_fold_the_host() {
        let r = RouteRules {
            ignore_query: vec!["utm_*".into(), "fbclid".into()],
            key_headers: vec![HeaderName::from_static("x-tier")],
            ..RouteRules::default()
        };
        let mut h = HeaderMap::new();
        h.insert("x-tier", HeaderValue::from_static("gold"));
        assert_eq!(
            r.key("A.Example.", "/p", "utm_source=x&id=7&fbclid=1", &h),
            "a.example/p?id=7\nx-tier:gold"
        );
        assert_eq!(
            r.key("a.example", "/p", "utm_a=1", &HeaderMap::new()),
            "a.example/p\nx-tier:"
        );
        let all = RouteRules {
            ignore_query: vec!["*".into()],
            ..RouteRules::default()
        };
        assert_eq!(all.key("a", "/p", "x=1", &HeaderMap::new()), "a/p");
        // A player's CMCD never splits the key, whatever else is configured.
        let none = RouteRules::default();
        assert_eq!(
            none.key(
                "a",
                "/s.ts",
                "CMCD=bl%3D0%2Cbr%3D400&v=2",
                &HeaderMap::new()
            ),
            "a/s.ts?v=2"
        );
    }
}
