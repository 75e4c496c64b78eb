//! A stored response: what the origin sent (status, headers, body) and the policy
//! that says when it may be reused, and the answers made from it (hit, HEAD, range,
//! not modified).

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use http_cache_semantics::CachePolicy;

use crate::body::{self, Body};
use crate::coding::{Coding, Levels};

/// Headers addressed to the edge alone: they set the edge's freshness or tag the
/// object, and never reach a client.
pub const TARGETED: [&str; 3] = ["cdn-cache-control", "surrogate-control", "surrogate-key"];

/// One stored response.
#[derive(Debug)]
pub struct Stored {
    /// When it may be reused, by the rules of RFC 9111 (with the edge's targeted
    /// directives in place of `Cache-Control`).
    pub policy: CachePolicy,
    /// The origin's status.
    pub status: StatusCode,
    /// The origin's headers, as a client gets them: hop-by-hop and targeted
    /// headers removed.
    pub headers: HeaderMap,
    /// The whole body, as the origin encoded it.
    pub body: Bytes,
    /// The request's values of the headers the response varies on: which variant
    /// of its key this is.
    pub vary_key: String,
    /// The origin's `Surrogate-Key` tags, for purging by tag.
    pub tags: Vec<String>,
    /// Its freshness lifetime, from the policy when it was stored.
    pub lifetime: Duration,
    /// When it was stored (or last refreshed by a 304).
    pub stored_at: SystemTime,
    /// How long past its freshness it may be served while it is refetched
    /// (`stale-while-revalidate`).
    pub stale_while_revalidate: Duration,
    /// How long past its freshness it may stand in for an origin that fails or a
    /// request the limiter would shed (`stale-if-error`, or the route's bound).
    pub stale_if_error: Duration,
    /// Its body as edge compression encoded it for clients, kept with the copy.
    pub encoded: Encoded,
}

/// A stored body's encodings for clients (edge compression), at most one per
/// coding: a hit of a playlist is not compressed again for every browser.
/// Outside the weight the copy was stored with; bounded by one encoding per coding
/// of a body no larger than [`Encoded::MAX_BODY`].
#[derive(Debug, Default)]
pub struct Encoded(std::sync::Mutex<Vec<(Coding, Levels, Bytes)>>);

impl Encoded {
    /// Bodies up to this size keep their encodings.
    pub const MAX_BODY: usize = 256 << 10;
}

/// A response answered from a stored copy whose body it carries unchanged: edge
/// compression takes the copy's kept encoding instead of encoding again. Removed
/// by whatever replaces the body.
#[derive(Clone)]
pub struct FromStore(pub std::sync::Arc<Stored>);

/// How a stored response relates to a request at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// It may be served as it is.
    Fresh,
    /// Stale, but within `stale-while-revalidate`: served while it is refetched.
    Revalidating,
    /// Stale: it must be revalidated (it may still stand in for a failure).
    Stale,
}

impl Stored {
    /// The bytes it holds against the memory budget.
    pub fn weight(&self) -> u64 {
        let headers: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 32)
            .sum();
        (self.body.len() + headers + 512) as u64
    }

    /// Its age at `now`.
    pub fn age(&self, now: SystemTime) -> Duration {
        self.policy.age(now)
    }

    /// How far past its freshness it is at `now` (zero while fresh).
    pub fn staleness(&self, now: SystemTime) -> Duration {
        self.age(now).saturating_sub(self.lifetime)
    }

    /// How long it stays fresh from `now` (zero once stale). The policy's own
    /// `time_to_live` parses the freshness fields again at every call; `lifetime`
    /// is what they said when the copy was stored, and its age grows with the clock.
    pub fn ttl(&self, now: SystemTime) -> Duration {
        self.lifetime.saturating_sub(self.age(now))
    }

    /// Its freshness at `now`: fresh while younger than its lifetime (the policy's
    /// `is_stale`, without parsing `Cache-Control`, `Expires` and `Date` again).
    pub fn freshness(&self, now: SystemTime) -> Freshness {
        if self.age(now) < self.lifetime {
            Freshness::Fresh
        } else if self.staleness(now) < self.stale_while_revalidate {
            Freshness::Revalidating
        } else {
            Freshness::Stale
        }
    }

    /// This copy refreshed by a 304 at `now`: the policy after it, and the 304's
    /// own end-to-end headers over the stored ones (RFC 9111 §4.3.4), not the
    /// edge's targeted fields, `Age`, or what describes a body the 304 does not
    /// carry.
    pub fn refreshed(
        &self,
        policy: CachePolicy,
        not_modified: &HeaderMap,
        now: SystemTime,
    ) -> Stored {
        const KEPT: [&str; 7] = [
            "age",
            "content-length",
            "content-encoding",
            "content-type",
            "content-range",
            "transfer-encoding",
            "connection",
        ];
        let mut headers = self.headers.clone();
        for name in not_modified.keys() {
            if TARGETED.contains(&name.as_str()) || KEPT.contains(&name.as_str()) {
                continue;
            }
            headers.remove(name);
            for v in not_modified.get_all(name) {
                headers.append(name.clone(), v.clone());
            }
        }
        Stored {
            lifetime: policy.age(now) + policy.time_to_live(now),
            stored_at: now,
            policy,
            status: self.status,
            headers,
            body: self.body.clone(),
            vary_key: self.vary_key.clone(),
            tags: self.tags.clone(),
            stale_while_revalidate: self.stale_while_revalidate,
            stale_if_error: self.stale_if_error,
            encoded: Encoded::default(),
        }
    }

    /// Whether it answers `req` as it is at `now`, decided without the policy's
    /// `before_request` (which copies the stored headers and parses the freshness
    /// fields on every call): it is fresh, and the request's values of the fields it
    /// varies on are the stored request's (never under `Vary: *`). Only for a
    /// request without `Cache-Control` or `Pragma` (the node does not heed a
    /// client's), the URI and method already matched by the key; false sends the
    /// request through the policy.
    pub fn fresh_for(&self, req: &HeaderMap, now: SystemTime) -> bool {
        if self.freshness(now) != Freshness::Fresh {
            return false;
        }
        let mut vary = self
            .headers
            .get_all(header::VARY)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .peekable();
        if vary.peek().is_none() {
            return self.vary_key.is_empty();
        }
        !vary.any(|n| n.trim() == "*")
            && super::policy::vary_key(&self.headers, req) == self.vary_key
    }

    /// Its body encoded in `coding` at `levels`: encoded on the first call and kept
    /// (one per coding; a new level replaces it), or None if the body is larger
    /// than [`Encoded::MAX_BODY`] or the encoder declines.
    pub fn encoded(&self, coding: Coding, levels: Levels) -> Option<Bytes> {
        if self.body.len() > Encoded::MAX_BODY {
            return None;
        }
        let lock = || self.encoded.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((.., b)) = lock().iter().find(|(c, l, _)| *c == coding && *l == levels) {
            return Some(b.clone());
        }
        // Encoded outside the lock: two first hits may both encode; one is kept.
        let bytes = crate::coding::encode(coding, &self.body, levels)?;
        let mut kept = lock();
        kept.retain(|(c, ..)| *c != coding);
        kept.push((coding, levels, bytes.clone()));
        Some(bytes)
    }

    /// Whether it may stand in for a failed or shed request at `now`.
    pub fn may_serve_on_error(&self, now: SystemTime) -> bool {
        self.staleness(now) <= self.stale_if_error
    }

    /// The answer to a request from this copy: `HEAD` without the body; a single
    /// byte range as 206 (or 416); 304 when the client's validators match; `Age`
    /// and `Cache-Status` always.
    pub fn respond(
        &self,
        req: &http::request::Parts,
        now: SystemTime,
        status: &str,
    ) -> Response<Body> {
        let mut headers = self.headers.clone();
        let age = self.age(now).as_secs();
        headers.insert(header::AGE, HeaderValue::from(age));
        if let Ok(v) = HeaderValue::from_str(status) {
            headers.insert(&super::CACHE_STATUS, v);
        }
        headers.remove(header::TRANSFER_ENCODING);
        if self.status == StatusCode::OK && not_modified(req, &self.headers) {
            return answer(
                StatusCode::NOT_MODIFIED,
                keep_for_304(headers),
                Bytes::new(),
            );
        }
        let (status, body) = match ranged(req, &self.headers, self.status, &self.body) {
            Ranged::Whole => (self.status, self.body.clone()),
            Ranged::Part { start, end } => {
                let range = format!("bytes {start}-{}/{}", end - 1, self.body.len());
                if let Ok(v) = HeaderValue::from_str(&range) {
                    headers.insert(header::CONTENT_RANGE, v);
                }
                (StatusCode::PARTIAL_CONTENT, self.body.slice(start..end))
            }
            Ranged::Unsatisfiable => {
                let range = format!("bytes */{}", self.body.len());
                if let Ok(v) = HeaderValue::from_str(&range) {
                    headers.insert(header::CONTENT_RANGE, v);
                }
                headers.remove(header::CONTENT_ENCODING);
                (StatusCode::RANGE_NOT_SATISFIABLE, Bytes::new())
            }
        };
        if status == StatusCode::NO_CONTENT {
            // A 204 has no body and no length (RFC 9110 §8.6).
            headers.remove(header::CONTENT_LENGTH);
        } else {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        }
        if self.status == StatusCode::OK {
            headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        }
        let body = if req.method == Method::HEAD {
            Bytes::new()
        } else {
            body
        };
        answer(status, headers, body)
    }
}

fn answer(status: StatusCode, headers: HeaderMap, body: Bytes) -> Response<Body> {
    let mut resp = Response::new(body::full(body));
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}

/// A 304 carries the validators and freshness, not the representation's metadata
/// (RFC 9110 §15.4.5).
fn keep_for_304(mut h: HeaderMap) -> HeaderMap {
    for n in [
        header::CONTENT_LENGTH,
        header::CONTENT_TYPE,
        header::CONTENT_ENCODING,
        header::CONTENT_RANGE,
        header::ACCEPT_RANGES,
    ] {
        h.remove(n);
    }
    h
}

/// Whether the client's conditional request is answered with 304 (RFC 9110 §13.1.2,
/// §13.1.3): `If-None-Match` by weak comparison, else `If-Modified-Since` against
/// `Last-Modified`.
fn not_modified(req: &http::request::Parts, stored: &HeaderMap) -> bool {
    if req.method != Method::GET && req.method != Method::HEAD {
        return false;
    }
    if let Some(inm) = req.headers.get(header::IF_NONE_MATCH) {
        let Some(etag) = stored.get(header::ETAG).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let etag = etag.trim().trim_start_matches("W/");
        return inm.to_str().is_ok_and(|list| {
            list.split(',')
                .map(|t| t.trim())
                .any(|t| t == "*" || t.trim_start_matches("W/") == etag)
        });
    }
    let since = req
        .headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(httpdate);
    let modified = stored.get(header::LAST_MODIFIED).and_then(httpdate);
    matches!((since, modified), (Some(s), Some(m)) if m <= s)
}

fn httpdate(v: &HeaderValue) -> Option<SystemTime> {
    httpdate::parse_http_date(v.to_str().ok()?).ok()
}

/// What part of a stored body a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Ranged {
    /// All of it: no `Range`, several ranges, a unit other than bytes, or an
    /// `If-Range` that does not match.
    Whole,
    /// `start..end`.
    Part { start: usize, end: usize },
    /// A range that starts past the end.
    Unsatisfiable,
}

/// A single `bytes=` range (RFC 9110 §14.1.2) over a stored full 200 response; a
/// range request over anything else, or one the edge does not split, is answered
/// whole (which the RFC allows).
fn ranged(
    req: &http::request::Parts,
    stored: &HeaderMap,
    status: StatusCode,
    body: &[u8],
) -> Ranged {
    let Some(range) = req.headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ranged::Whole;
    };
    if status != StatusCode::OK || req.method != Method::GET {
        return Ranged::Whole;
    }
    if let Some(if_range) = req.headers.get(header::IF_RANGE) {
        // Strong comparison only: a weak tag or a date never matches.
        let etag = stored.get(header::ETAG);
        let strong = etag.is_some_and(|e| !e.as_bytes().starts_with(b"W/"));
        if !(strong && etag == Some(if_range)) {
            return Ranged::Whole;
        }
    }
    let Some(spec) = range.trim().strip_prefix("bytes=") else {
        return Ranged::Whole;
    };
    if spec.contains(',') {
        return Ranged::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Ranged::Whole;
    };
    let len = body.len();
    let (first, last) = (first.trim(), last.trim());
    let (start, end) = if first.is_empty() {
        // A suffix: the last N bytes.
        let Ok(n) = last.parse::<usize>() else {
            return Ranged::Whole;
        };
        if n == 0 {
            return Ranged::Unsatisfiable;
        }
        (len.saturating_sub(n), len)
    } else {
        let Ok(start) = first.parse::<usize>() else {
            return Ranged::Whole;
        };
        let end = if last.is_empty() {
            len
        } else {
            match last.parse::<usize>() {
                Ok(l) if l >= start => l.saturating_add(1).min(len),
                _ => return Ranged::Whole,
            }
        };
        (start, end)
    };
    if start >= len {
        return Ranged::Unsatisfiable;
    }
    Ranged::Part { start, end }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> http::request::Parts {
        let mut b = http::Request::builder().uri("/a");
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(()).expect("request").into_parts().0
    }

    fn etag(tag: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ETAG, HeaderValue::from_str(tag).expect("etag"));
        h
    }

    #[test]
    fn a_body_is_encoded_once_per_coding_and_level() {
        let req = req(&[]);
        let resp = http::Response::builder()
            .header("cache-control", "max-age=60")
            .header("content-type", "application/vnd.apple.mpegurl")
            .body(())
            .expect("resp")
            .into_parts()
            .0;
        let super::super::Verdict::Store(mut s) =
            super::super::RouteRules::default().judge(&req, &resp, SystemTime::now())
        else {
            panic!("stored");
        };
        s.body = Bytes::from("#EXTM3U\n#EXT-X-VERSION:3\n".repeat(40));
        let levels = Levels::default();
        let first = s.encoded(Coding::Br, levels).expect("encodes");
        let again = s.encoded(Coding::Br, levels).expect("kept");
        assert_eq!(
            first.as_ptr(),
            again.as_ptr(),
            "the same bytes, not a second encoding"
        );
        assert_eq!(
            crate::coding::decode(Coding::Br, &first, 1 << 20).expect("decodes"),
            s.body
        );
        let gzip = s.encoded(Coding::Gzip, levels).expect("encodes");
        assert_ne!(gzip.as_ptr(), first.as_ptr());
        let other = Levels {
            brotli: 0,
            ..levels
        };
        let relevelled = s.encoded(Coding::Br, other).expect("encodes");
        assert_ne!(
            relevelled.as_ptr(),
            first.as_ptr(),
            "a new level encodes again"
        );
        s.body = Bytes::from(vec![b'a'; Encoded::MAX_BODY + 1]);
        assert!(
            s.encoded(Coding::Zstd, levels).is_none(),
            "too large to keep"
        );
    }

    #[test]
    fn byte_ranges_are_cut_from_the_whole_body() {
        let body = b"0123456789";
        let h = HeaderMap::new();
        let ok = StatusCode::OK;
        let cases = [
            ("bytes=0-3", Ranged::Part { start: 0, end: 4 }),
            ("bytes=5-", Ranged::Part { start: 5, end: 10 }),
            ("bytes=-3", Ranged::Part { start: 7, end: 10 }),
            ("bytes=8-100", Ranged::Part { start: 8, end: 10 }),
            ("bytes=-100", Ranged::Part { start: 0, end: 10 }),
            ("bytes=10-", Ranged::Unsatisfiable),
            ("bytes=-0", Ranged::Unsatisfiable),
            ("bytes=4-2", Ranged::Whole),
            ("bytes=0-1,4-5", Ranged::Whole),
            ("items=0-1", Ranged::Whole),
            ("bytes=x-1", Ranged::Whole),
        ];
        for (range, want) in cases {
            assert_eq!(
                ranged(&req(&[("range", range)]), &h, ok, body),
                want,
                "{range}"
            );
        }
        // Not on a stored 404, and not when If-Range names another version.
        let r = req(&[("range", "bytes=0-1")]);
        assert_eq!(ranged(&r, &h, StatusCode::NOT_FOUND, body), Ranged::Whole);
        let r = req(&[("range", "bytes=0-1"), ("if-range", "\"v1\"")]);
        assert_eq!(ranged(&r, &etag("\"v2\""), ok, body), Ranged::Whole);
        assert_eq!(ranged(&r, &etag("W/\"v1\""), ok, body), Ranged::Whole);
        assert_eq!(
            ranged(&r, &etag("\"v1\""), ok, body),
            Ranged::Part { start: 0, end: 2 }
        );
    }

    #[test]
    fn validators_match_weakly_and_dates_by_time() {
        let stored = etag("\"abc\"");
        assert!(not_modified(
            &req(&[("if-none-match", "W/\"abc\"")]),
            &stored
        ));
        assert!(not_modified(
            &req(&[("if-none-match", "\"x\", \"abc\"")]),
            &stored
        ));
        assert!(not_modified(&req(&[("if-none-match", "*")]), &stored));
        assert!(!not_modified(
            &req(&[("if-none-match", "\"abd\"")]),
            &stored
        ));
        let mut lm = HeaderMap::new();
        lm.insert(
            header::LAST_MODIFIED,
            HeaderValue::from_static("Tue, 01 Dec 2026 10:00:00 GMT"),
        );
        let later = req(&[("if-modified-since", "Tue, 01 Dec 2026 10:00:01 GMT")]);
        let earlier = req(&[("if-modified-since", "Tue, 01 Dec 2026 09:59:59 GMT")]);
        assert!(not_modified(&later, &lm));
        assert!(!not_modified(&earlier, &lm));
        // If-None-Match wins over If-Modified-Since (RFC 9110 §13.2.2).
        let both = req(&[
            ("if-none-match", "\"zzz\""),
            ("if-modified-since", "Tue, 01 Dec 2026 10:00:01 GMT"),
        ]);
        let mut h = lm.clone();
        h.insert(header::ETAG, HeaderValue::from_static("\"abc\""));
        assert!(!not_modified(&both, &h));
    }
}
