//! Content codings for the client, after the response guests: a body the node
//! decoded for them is encoded again by the client's `Accept-Encoding`, and edge
//! compression (the route's `compress` types) encodes what the origin sent
//! uncompressed.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Response, StatusCode};

use crate::body::{self, Body};
use crate::cache::stored::FromStore;
use crate::coding::{self, Coding, Levels};
use crate::contract::types::RequestHead;
use crate::error::EdgeError;
use crate::node::RouteEntry;

/// Bodies of a known length up to this are encoded whole at the edge.
const ENCODE_WHOLE_UP_TO: u64 = 256 << 10;

/// A body the node decoded for the guests, encoded for the client by its
/// `Accept-Encoding` (the origin's own bytes when they are unchanged and the client
/// takes their coding as gladly as any), with `Content-Encoding`, `Vary` and the
/// ETag (weak once the bytes differ from the origin's) to match.
pub(super) fn encode_for_client(
    levels: Levels,
    headers: &mut HeaderMap,
    req: &RequestHead,
    decoded: Bytes,
    changed: bool,
    origin_coding: Coding,
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

/// Edge compression (the route's `compress` types): a 200 the origin sent
/// uncompressed, of a listed type and not known to be below `compress_min_bytes`,
/// is encoded as it streams in the coding the client prefers, unless the origin
/// said `Cache-Control: no-transform`. Listed types always get `Vary:
/// Accept-Encoding`; other types (media segments) are never touched.
pub(super) async fn edge(
    levels: Levels,
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
    // A stored copy's body, unchanged: its encoding is made once and kept with it.
    let stored = parts.extensions.remove::<FromStore>();
    if let Some(FromStore(s)) = stored.filter(|s| len == Some(s.0.body.len() as u64))
        && let Some(bytes) = s.encoded(c, levels)
    {
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
        return Ok(Response::from_parts(parts, body::full(bytes)));
    }
    // A small body of known length (a playlist, a manifest) is encoded whole: the
    // encoder then knows its size and sizes its tables to it (a streaming encoder
    // sets up for any size, several times the cost on a 20 KB playlist). Anything
    // else streams.
    if let Some(n) = len.filter(|&n| n <= ENCODE_WHOLE_UP_TO) {
        let whole = read_whole(route, body, n).await?;
        return Ok(encode_whole(parts, c, whole, levels));
    }
    Ok(Response::from_parts(
        parts,
        coding::encode_stream(c, body, len, levels),
    ))
}

/// A body of known length `n`, read whole.
async fn read_whole(route: &RouteEntry, body: Body, n: u64) -> Result<Bytes, EdgeError> {
    let origin_down = |message| EdgeError::OriginDown {
        origin: route.origin.client.name.clone(),
        message,
    };
    match body::collect_capped(body, n as usize).await {
        Ok(Some(b)) => Ok(b),
        Ok(None) => Err(origin_down(format!(
            "the body is longer than its Content-Length ({n})"
        ))),
        Err(e) => Err(origin_down(format!("reading the body: {e}"))),
    }
}

/// `whole` encoded in `c` (identity, if the encoder declines), with the length set.
fn encode_whole(
    mut parts: http::response::Parts,
    c: Coding,
    whole: Bytes,
    levels: Levels,
) -> Response<Body> {
    let bytes = match coding::encode(c, &whole, levels) {
        Some(encoded) => encoded,
        None => {
            parts.headers.remove(header::CONTENT_ENCODING);
            whole
        }
    };
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    Response::from_parts(parts, body::full(bytes))
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

/// The media type of a response (lower case, no parameters).
pub(super) fn media_type(h: &HeaderMap) -> Option<String> {
    let ct = h.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(ct.split(';').next()?.trim().to_ascii_lowercase())
}

/// The bytes differ from the origin's: its ETag, if strong, becomes weak.
pub(super) fn weaken_etag(headers: &mut HeaderMap) {
    if let Some(etag) = headers.get(header::ETAG)
        && let Ok(weak) = HeaderValue::from_bytes(&coding::weaken_etag(etag.as_bytes()))
    {
        headers.insert(header::ETAG, weak);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vary_is_added_once_and_not_over_a_star() {
        let mut h = HeaderMap::new();
        vary_on_accept_encoding(&mut h);
        vary_on_accept_encoding(&mut h);
        assert_eq!(h.get_all(header::VARY).iter().count(), 1);
        let mut star = HeaderMap::new();
        star.insert(header::VARY, HeaderValue::from_static("*"));
        vary_on_accept_encoding(&mut star);
        assert_eq!(star.get_all(header::VARY).iter().count(), 1);
    }

    #[test]
    fn media_type_drops_parameters_and_case() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("Application/VND.Apple.MpegURL; charset=utf-8"),
        );
        assert_eq!(
            media_type(&h).as_deref(),
            Some("application/vnd.apple.mpegurl")
        );
    }
}
