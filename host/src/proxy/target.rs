//! Before the phases: the request's one normalised target (RFC 9112 §3.2 and
//! [`crate::canon`]), the client's facts, hop-by-hop headers removed, the route,
//! and the request head every guest and the origin see.

use std::net::SocketAddr;

use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, request::Parts};

use crate::canon::{self, Refused};
use crate::contract::convert::headers_to_wit;
use crate::contract::types::{ClientInfo, RequestHead};
use crate::decision::Decision;
use crate::error::EdgeError;
use crate::node::{Node, RouteEntry};

/// In a replay, the id a request gets: its position in the recording (plus one),
/// so a request's id does not depend on which requests before it were routed, and
/// a run ahead of its turn knows it.
#[derive(Debug, Clone, Copy)]
pub struct ReplayId(pub u64);

/// Route the request and build its head. Client facts are established first: a
/// `Connection` header must not be able to remove the forwarding headers a trusted
/// proxy set. Hop-by-hop headers, and those the client's `Connection` names, end
/// here, before the guests, so a client cannot name a header a guest sets and have
/// it removed.
pub(super) fn route<'n>(
    node: &'n Node,
    parts: &mut Parts,
    client: SocketAddr,
    d: &mut Decision,
) -> Result<(&'n RouteEntry, RequestHead), EdgeError> {
    let Target {
        authority,
        host,
        path,
    } = Target::of(parts)?;
    let facts = node.clients.facts(
        client.ip(),
        &parts.headers,
        parts.extensions.get::<crate::client::OverTls>().is_some(),
    );
    strip_hop_by_hop(&mut parts.headers);
    // Only a guest steers the cache.
    crate::cache::strip_guest_fields(&mut parts.headers);
    // Guests see the authority that was routed on as `host`, not a `Host` header an
    // absolute-form target overrode.
    parts.headers.remove(header::HOST);
    if let Ok(v) = HeaderValue::from_str(&authority)
        && !authority.is_empty()
    {
        parts.headers.insert(header::HOST, v);
    }
    let Some(route) = node.route(&host, &path) else {
        node.metrics.unrouted.inc();
        return Err(EdgeError::NoRoute { host, path });
    };
    if d.detail {
        d.route = Some(route.name.to_string());
    }
    let head = RequestHead {
        method: parts.method.as_str().to_string(),
        scheme: facts.scheme.into(),
        authority,
        path,
        query: parts.uri.query().unwrap_or("").to_string(),
        headers: headers_to_wit(&parts.headers),
        client: ClientInfo {
            ip: ip_text(facts.ip),
            country: facts.country,
        },
        route: route.name.to_string(),
        id: match parts.extensions.remove::<ReplayId>() {
            Some(ReplayId(n)) => crate::node::hex16(n),
            None => node.request_id(),
        },
    };
    if d.detail {
        d.aside.request_id = Some(head.id.clone());
        d.aside.client = Some(head.client.ip.clone());
    }
    Ok((route, head))
}

/// An address as text: IPv4 written digit by digit (`Display` goes through the
/// formatting machinery, a measurable share of a cache hit), IPv6 by `Display`.
fn ip_text(ip: std::net::IpAddr) -> String {
    let std::net::IpAddr::V4(v4) = ip else {
        return ip.to_string();
    };
    let mut s = String::with_capacity(15);
    for (i, o) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        if o >= 100 {
            s.push(char::from(b'0' + o / 100));
        }
        if o >= 10 {
            s.push(char::from(b'0' + o / 10 % 10));
        }
        s.push(char::from(b'0' + o % 10));
    }
    s
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
    fn of(parts: &Parts) -> Result<Target, EdgeError> {
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
        let refused = |r: Refused| EdgeError::BadRequest(r.to_string());
        let (host, authority) = canon::host_and_authority(raw).map_err(refused)?;
        Ok(Target {
            authority,
            host,
            path: canon::path(parts.uri.path()).map_err(refused)?,
        })
    }
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
pub(super) fn strip_fixed_hop_by_hop(h: &mut HeaderMap) {
    // Most requests carry one or none: look for them once before removing each.
    if h.keys().any(|k| HOP_BY_HOP.contains(k)) {
        for n in &HOP_BY_HOP {
            h.remove(n);
        }
    }
}

/// Remove the hop-by-hop headers and those the `Connection` header names.
pub(super) fn strip_hop_by_hop(h: &mut HeaderMap) {
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
    strip_fixed_hop_by_hop(h);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_named_headers_are_removed_with_the_fixed_ones() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("x-secret, close"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.9.99.100",
            "255.255.255.255",
            "192.168.1.20",
            "::1",
            "2001:db8::8:800:200c:417a",
        ] {
            let a: std::net::IpAddr = ip.parse().expect("ip");
            assert_eq!(ip_text(a), a.to_string());
        }
    }

    #[test]
    fn two_host_headers_or_none_on_http_1_1_are_refused() {
        let (mut parts, ()) = http::Request::new(()).into_parts();
        parts.version = http::Version::HTTP_11;
        assert!(Target::of(&parts).is_err(), "no Host");
        parts
            .headers
            .append(header::HOST, HeaderValue::from_static("a.test"));
        parts
            .headers
            .append(header::HOST, HeaderValue::from_static("b.test"));
        assert!(Target::of(&parts).is_err(), "two Hosts");
    }
}
