//! What the node does around a guest call, reimplemented for the browser.
//!
//! The node's own code (`host/`) is not built for the browser (it links wasmtime,
//! hyper, tokio), so the small pieces that decide what a guest sees and what its
//! answer does to the request are repeated here, minimally but faithfully. Each
//! names its original; keep them in step:
//!
//! * [`canon_path`], [`canon_host_and_authority`]: not repeated: the node's own
//!   `outpost_common::canon`, the one normalised target routing and guests see;
//! * [`HeaderMap`], [`strip_hop_by_hop`], [`strip_guest_cache_fields`], the `host`
//!   header: `host/src/proxy/target.rs` (`route`), how the head is built, in the
//!   order an `http::HeaderMap` gives the guests;
//! * [`apply_header_ops`], [`check_header`]: `host/src/contract/edit.rs`;
//! * [`check_edge_response`]: `host/src/contract/convert.rs` (`edge_response`);
//! * [`valid_method`], [`scan_target`]: what `http::Method::from_bytes` and
//!   `http::uri::PathAndQuery` (http 1.5) accept, as `host/src/proxy/request.rs`
//!   (`apply_request_edit`) checks an edit;
//! * [`take_cache_fields`]: `host/src/proxy/cache.rs` (`asked`), the guest's cache
//!   fields taken out before the origin sees the request;
//! * [`header_changes`], [`forwarded`]: `host/src/proxy/request.rs`
//!   (`note_forwarded`, `header_changes`), the decision record.

use outpost_guest::common::cache as cache_fields;
use outpost_guest::common::canon;
use outpost_guest::{Header, HeaderOp, RequestHead, Response};
use serde::Serialize;

/// The normalised form of an origin-form path, or why it is refused (the node
/// answers `400`): the node's own `outpost_common::canon::path`.
pub fn canon_path(raw: &str) -> Result<String, &'static str> {
    canon::path(raw).map_err(|r| r.0)
}

/// The normalised host (no port) and the authority to forward (`host[:port]`), or
/// why they are refused: the node's own `outpost_common::canon::host_and_authority`.
pub fn canon_host_and_authority(authority: &str) -> Result<(String, String), &'static str> {
    canon::host_and_authority(authority).map_err(|r| r.0)
}

/// An RFC 9110 `tchar`.
fn tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// What `http::Method::from_bytes` accepts: a non-empty token.
pub fn valid_method(m: &str) -> bool {
    !m.is_empty() && m.bytes().all(tchar)
}

/// What `http::HeaderName::from_bytes` accepts: a non-empty token (upper case is
/// accepted and lower-cased), shorter than 64 KiB.
pub fn valid_header_name(n: &str) -> bool {
    !n.is_empty() && n.len() < 1 << 16 && n.bytes().all(tchar)
}

/// What `http::HeaderValue::from_bytes` accepts: no control character but tab.
pub fn valid_header_value(v: &[u8]) -> bool {
    v.iter().all(|&b| b >= 32 && b != 127 || b == b'\t')
}

/// A header a guest wrote must be a valid HTTP header: `contract/edit.rs`
/// `check_header`.
pub fn check_header(h: &Header) -> Result<(), String> {
    if !valid_header_name(&h.name) {
        return Err(format!("bad header name {:?}", h.name));
    }
    if !valid_header_value(&h.value) {
        return Err(format!("bad value for header {:?}", h.name));
    }
    Ok(())
}

/// Apply header operations, every one validated before any applies:
/// `contract/edit.rs` `apply_header_ops`.
pub fn apply_header_ops(headers: &mut Vec<Header>, ops: Vec<HeaderOp>) -> Result<(), String> {
    for op in &ops {
        if let HeaderOp::Set(h) | HeaderOp::Append(h) = op {
            check_header(h)?;
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

/// A response a guest answers with, validated as the node validates it before
/// sending it (`contract/convert.rs` `edge_response`): a bad status or header is
/// the guest's error.
pub fn check_edge_response(r: &Response) -> Result<(), String> {
    if !valid_status(r.status) {
        return Err(format!("bad status {}", r.status));
    }
    r.headers.iter().try_for_each(check_header)
}

/// What `http::StatusCode::from_u16` accepts.
pub fn valid_status(s: u16) -> bool {
    (100..1000).contains(&s)
}

/// Byte classes of http 1.5's path-and-query scanner (`uri/path.rs`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Valid,
    Query,
    Fragment,
    Invalid,
}

fn path_class(b: u8) -> Class {
    match b {
        b'?' => Class::Query,
        b'#' => Class::Fragment,
        0x21 | 0x24..=0x3B | 0x3D | 0x40..=0x5F | 0x61..=0x7A | 0x7C | 0x7E => Class::Valid,
        0x80..=0xFF | b'"' | b'{' | b'}' => Class::Valid,
        _ => Class::Invalid,
    }
}

fn query_class(b: u8) -> Class {
    match b {
        b'#' => Class::Fragment,
        0x21 | 0x24..=0x3B | 0x3D | 0x3F..=0x7E | 0x80..=0xFF => Class::Valid,
        _ => Class::Invalid,
    }
}

/// Whether `target` (`path?query`) parses as an `http::uri::PathAndQuery`: `Ok`
/// with the length it keeps (a fragment is cut off), or the parser's complaint.
pub fn scan_target(target: &str) -> Result<usize, &'static str> {
    let bytes = target.as_bytes();
    if bytes.is_empty() {
        return Err("empty string");
    }
    if bytes.len() > usize::from(u16::MAX - 1) {
        return Err("uri too long");
    }
    if bytes == b"*" {
        return Ok(1);
    }
    if !matches!(bytes[0], b'/' | b'?' | b'#') {
        return Err("path must start with '/'");
    }
    let mut in_query = false;
    for (i, &b) in bytes.iter().enumerate() {
        let class = if in_query {
            query_class(b)
        } else {
            path_class(b)
        };
        match class {
            Class::Valid => {}
            Class::Query => in_query = true,
            Class::Fragment => return Ok(i),
            Class::Invalid => return Err("invalid uri character"),
        }
    }
    Ok(bytes.len())
}

/// The hop-by-hop headers the node removes before any guest (RFC 9110 §7.6.1,
/// plus `keep-alive` and `proxy-connection`).
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
    "transfer-encoding",
];

/// Whether a value is what `HeaderValue::to_str` accepts (visible ASCII and tab).
fn visible_ascii(v: &[u8]) -> bool {
    v.iter().all(|&b| b == b'\t' || (32..127).contains(&b))
}

/// A client's header fields as the node holds them before the guests: an
/// `http::HeaderMap`, whose order the guests see (`contract/convert.rs`
/// `headers_to_wit`): one entry per name, in the order names first arrived, the
/// values of a name together; removing a name moves the last entry into its place
/// (`swap_remove`), inserting a new name adds it at the end.
#[derive(Debug, Clone, Default)]
pub struct HeaderMap(Vec<(String, Vec<Vec<u8>>)>);

impl HeaderMap {
    /// The fields in arrival order (names lower case), appended one by one.
    pub fn from_fields(fields: Vec<Header>) -> HeaderMap {
        let mut map = HeaderMap::default();
        for h in fields {
            match map.0.iter_mut().find(|(n, _)| *n == h.name) {
                Some((_, values)) => values.push(h.value),
                None => map.0.push((h.name, vec![h.value])),
            }
        }
        map
    }

    fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }

    /// Every value of `name`.
    pub fn get_all(&self, name: &str) -> Vec<&[u8]> {
        self.0
            .iter()
            .filter(|(n, _)| n == name)
            .flat_map(|(_, vs)| vs.iter().map(Vec::as_slice))
            .collect()
    }

    /// `HeaderMap::remove`: every value of `name`, the last entry moved into its place.
    pub fn remove(&mut self, name: &str) {
        if let Some(i) = self.0.iter().position(|(n, _)| n == name) {
            self.0.swap_remove(i);
        }
    }

    /// `HeaderMap::insert`: `name` has this one value (in place if it was there).
    pub fn insert(&mut self, name: &str, value: &[u8]) {
        match self.0.iter_mut().find(|(n, _)| n == name) {
            Some((_, values)) => *values = vec![value.to_vec()],
            None => self.0.push((name.to_string(), vec![value.to_vec()])),
        }
    }

    /// As the guests get it (`headers_to_wit`).
    pub fn into_fields(self) -> Vec<Header> {
        self.0
            .into_iter()
            .flat_map(|(name, values)| {
                values.into_iter().map(move |value| Header {
                    name: name.clone(),
                    value,
                })
            })
            .collect()
    }
}

/// Remove the headers the client's `Connection` names, then the fixed hop-by-hop
/// ones: `proxy/target.rs` `strip_hop_by_hop`.
pub fn strip_hop_by_hop(h: &mut HeaderMap) {
    let named: Vec<String> = h
        .get_all("connection")
        .into_iter()
        .filter(|v| visible_ascii(v))
        .filter_map(|v| std::str::from_utf8(v).ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| valid_header_name(n))
        .collect();
    for n in &named {
        h.remove(n);
    }
    if HOP_BY_HOP.iter().any(|n| h.contains(n)) {
        for n in HOP_BY_HOP {
            h.remove(n);
        }
    }
}

/// Only a guest steers the cache: a client's cache fields never count
/// (`cache/mod.rs` `strip_guest_fields`).
pub fn strip_guest_cache_fields(h: &mut HeaderMap) {
    if cache_fields::FIELDS.iter().any(|n| h.contains(n)) {
        for n in cache_fields::FIELDS {
            h.remove(n);
        }
    }
}

/// What the request guests asked of the edge cache (their cache fields, which the
/// origin never sees).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CacheAsk {
    /// `outpost-cache-key`: the key to look the response up under.
    pub key: Option<String>,
    /// `outpost-cache-ttl`: seconds to store the response for.
    pub ttl: Option<u32>,
    /// `outpost-cache: bypass`: keep the request away from the cache.
    pub bypass: bool,
}

/// Take the request guests' cache fields out of the head: `proxy/cache.rs` `asked`.
/// `None` when there were none.
pub fn take_cache_fields(head: &mut RequestHead) -> Option<CacheAsk> {
    let mut a = CacheAsk::default();
    let mut any = false;
    head.headers.retain(|h| {
        if h.name.eq_ignore_ascii_case(cache_fields::KEY) {
            a.key = Some(String::from_utf8_lossy(&h.value).into_owned());
        } else if h.name.eq_ignore_ascii_case(cache_fields::TTL) {
            a.ttl = std::str::from_utf8(&h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok());
        } else if h.name.eq_ignore_ascii_case(cache_fields::CONTROL) {
            a.bypass = h
                .value
                .trim_ascii()
                .eq_ignore_ascii_case(cache_fields::BYPASS.as_bytes());
        } else {
            return true;
        }
        any = true;
        false
    });
    any.then_some(a)
}

/// The request as sent to the origin, as the decision records it
/// (`Decision::forwarded`): `METHOD path[?query]`.
pub fn forwarded(head: &RequestHead) -> String {
    if head.query.is_empty() {
        format!("{} {}", head.method, head.path)
    } else {
        format!("{} {}?{}", head.method, head.path, head.query)
    }
}

/// Which headers the guests set or changed (`name: value, value`) and removed,
/// each sorted by name, as the decision records them.
pub fn header_changes(before: &[Header], after: &[Header]) -> (Vec<String>, Vec<String>) {
    let values = |hs: &[Header], name: &str| -> Vec<String> {
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
    let (mut set, mut removed) = (Vec::new(), Vec::new());
    for name in names {
        let (b, a) = (values(before, name), values(after, name));
        if b == a {
            continue;
        }
        if a.is_empty() {
            removed.push(name.to_string());
        } else {
            set.push(format!("{name}: {}", a.join(", ")));
        }
    }
    (set, removed)
}

/// A header list as `[name, value]` pairs (values that are not UTF-8 lossily).
pub fn pairs(headers: &[Header]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|h| {
            (
                h.name.clone(),
                String::from_utf8_lossy(&h.value).into_owned(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_as_the_node_normalises_them() {
        for (raw, want) in [
            ("/", "/"),
            ("//private/v.mp4", "/private/v.mp4"),
            ("/public/../private/v.mp4", "/private/v.mp4"),
            ("/%70rivate/v.mp4", "/private/v.mp4"),
            ("/a%3bb/%c3%a9", "/a%3Bb/%C3%A9"),
            ("/a/.", "/a/"),
            ("/caf\u{e9}", "/caf\u{e9}"),
        ] {
            assert_eq!(canon_path(raw), Ok(want.to_string()), "{raw}");
        }
        for raw in ["/a%2Fb", "/a;b", "/a%", "/%C0%AF", "/%ff", "*", "", "/a b"] {
            assert!(canon_path(raw).is_err(), "{raw}");
        }
    }

    #[test]
    fn hosts_as_the_node_normalises_them() {
        assert_eq!(
            canon_host_and_authority("S1.Test.:0080"),
            Ok(("s1.test".into(), "s1.test:80".into()))
        );
        assert_eq!(
            canon_host_and_authority("[0:0::1]:80"),
            Ok(("[::1]".into(), "[::1]:80".into()))
        );
        for bad in ["user@a", "a:x", "[zz]", ".", "a b"] {
            assert!(canon_host_and_authority(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn targets_as_http_parses_them() {
        assert_eq!(scan_target("/a?b=c"), Ok(6));
        assert_eq!(scan_target("/a?b#c"), Ok(4));
        assert_eq!(scan_target("/a{\"x\"}?q=?"), Ok(11));
        assert!(scan_target("/a b").is_err());
        assert!(scan_target("/a?b c").is_err());
        assert!(scan_target("a").is_err());
    }

    #[test]
    fn hop_by_hop_and_cache_fields_go() {
        let mut hs = HeaderMap::from_fields(vec![
            Header::new("connection", "x-secret, close"),
            Header::new("x-secret", "1"),
            Header::new("keep-alive", "5"),
            Header::new("outpost-cache", "bypass"),
            Header::new("x-kept", "1"),
        ]);
        strip_hop_by_hop(&mut hs);
        strip_guest_cache_fields(&mut hs);
        assert_eq!(
            pairs(&hs.into_fields()),
            vec![("x-kept".into(), "1".into())]
        );
    }

    #[test]
    fn the_order_is_a_header_maps() {
        let mut hs = HeaderMap::from_fields(vec![
            Header::new("host", "a"),
            Header::new("x-a", "1"),
            Header::new("accept", "*/*"),
            Header::new("x-a", "2"),
            Header::new("x-b", "1"),
        ]);
        hs.remove("host");
        hs.insert("host", b"b");
        let names: Vec<String> = hs.into_fields().into_iter().map(|h| h.name).collect();
        assert_eq!(names, ["x-b", "x-a", "x-a", "accept", "host"]);
    }

    #[test]
    fn changes_are_recorded_sorted() {
        let before = vec![Header::new("b", "1"), Header::new("a", "1")];
        let after = vec![
            Header::new("a", "2"),
            Header::new("c", "3"),
            Header::new("c", "4"),
        ];
        assert_eq!(
            header_changes(&before, &after),
            (vec!["a: 2".into(), "c: 3, 4".into()], vec!["b".into()])
        );
    }
}
