//! Phase: response. The response guests, in order: status and header operations on
//! every response; the body only for content types the route declares, buffered up
//! to `transform_max_bytes`, decoded first when the origin compressed it (and
//! encoded again for the client afterwards, in [`super::compress`]).

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use http_body::Body as _;

use super::Phase;
use super::compress::{encode_for_client, media_type, weaken_etag};
use super::fail::{on_failure, on_failure_in};
use crate::body::{self, Body, collect_capped};
use crate::coding::{self, Coding};
use crate::contract::convert::{append_wit_headers, headers_to_wit};
use crate::contract::edit::{apply_header_ops, invalid};
use crate::contract::types::{self, RequestHead, ResponseEdit};
use crate::decision::Decision;
use crate::error::{EdgeError, GuestError};
use crate::limiter::LoadSource;
use crate::node::{GuestRef, Node, RouteEntry};

/// The body as the response guests see it.
#[derive(Default)]
struct GuestBody {
    /// The (decoded) bytes, when the route transforms this type.
    bytes: Option<Bytes>,
    /// The origin's encoded bytes, to send as they are if nothing changes them.
    origin_encoded: Option<(Coding, Bytes)>,
    /// A guest replaced the bytes.
    changed: bool,
}

/// Run the response guests over `resp`.
pub(super) async fn chain(
    node: &Node,
    route: &RouteEntry,
    load: &LoadSource,
    req: &RequestHead,
    resp: Response<Body>,
    d: &mut Decision,
) -> Result<Response<Body>, EdgeError> {
    if route.response.is_empty() {
        return Ok(resp);
    }
    let (mut parts, body) = resp.into_parts();
    let (mut guest_body, stream) = match wanted_coding(route, &parts.headers) {
        Some(coding) => (
            read_body(route, &mut parts.headers, body, coding).await?,
            None,
        ),
        None => (GuestBody::default(), Some(body)),
    };
    let mut head = types::ResponseHead {
        status: parts.status.as_u16(),
        headers: headers_to_wit(&parts.headers),
    };
    if d.detail {
        // What the guests are about to see, for a recording that replays them.
        d.aside.seen_headers = Some(
            parts
                .headers
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
                .collect(),
        );
        d.aside.seen_body.clone_from(&guest_body.bytes);
    }
    let shadow_in = shadow_input(route, req, &head, &guest_body, d);
    for g in &route.response {
        let out = g
            .guest
            .response(
                &node.runtime,
                load.clone(),
                req,
                &head,
                guest_body.bytes.as_deref(),
            )
            .await;
        d.step(|| format!("response:{}={}", g.guest.name, step(&out)));
        let edit = match out {
            Ok(edit) => edit,
            Err(e) => match on_failure(Phase::Response, g, e) {
                Some(e) => return Err(e),
                None => continue,
            },
        };
        apply(&node.runtime, g, edit, &mut head, &mut guest_body, d)?;
    }
    keep_shadow(shadow_in, &head, &guest_body, d);
    if d.detail && guest_body.changed {
        d.body_digest = guest_body.bytes.as_deref().map(crate::decision::digest);
    }
    parts.status = StatusCode::from_u16(head.status).unwrap_or(parts.status);
    parts.headers = HeaderMap::with_capacity(head.headers.len());
    append_wit_headers(&mut parts.headers, &head.headers);
    let body = match stream {
        Some(s) => s,
        None => {
            // The guests had the body: what goes out is theirs, not a stored copy's.
            parts.extensions.remove::<crate::cache::stored::FromStore>();
            client_body(node, route, &mut parts.headers, req, guest_body)
        }
    };
    Ok(Response::from_parts(parts, body))
}

/// What the response candidates of a shadow sample run on: the request head, the
/// origin's answer and its body as the live guests get them.
type ShadowInput = (RequestHead, types::ResponseHead, Option<Bytes>);

fn shadow_input(
    route: &RouteEntry,
    req: &RequestHead,
    head: &types::ResponseHead,
    body: &GuestBody,
    d: &Decision,
) -> Option<ShadowInput> {
    d.aside
        .shadowed
        .as_ref()
        .filter(|_| {
            route
                .shadow
                .as_ref()
                .is_some_and(|s| !s.response.is_empty())
        })
        .map(|_| (req.clone(), head.clone(), body.bytes.clone()))
}

/// Keep the shadow's input with the live guests' verdict on it.
fn keep_shadow(
    input: Option<ShadowInput>,
    after: &types::ResponseHead,
    body: &GuestBody,
    d: &mut Decision,
) {
    if let (Some((req, before, bytes)), Some(s)) = (input, d.aside.shadowed.as_deref_mut()) {
        let live = verdict(&before, after, body);
        s.response = Some(crate::decision::ShadowedResponse {
            req,
            head: before,
            body: bytes,
            live,
        });
    }
}

/// What a chain of response guests made of `before`: the status, the header
/// changes, the body's digest when they replaced it.
fn verdict(
    before: &types::ResponseHead,
    after: &types::ResponseHead,
    body: &GuestBody,
) -> crate::decision::Verdict {
    let mut d = Decision::detailed();
    super::request::header_changes(&before.headers, &after.headers, &mut d);
    crate::decision::Verdict {
        action: "response".into(),
        headers_set: d.headers_set,
        headers_removed: d.headers_removed,
        status: Some(after.status),
        body_digest: body
            .bytes
            .as_deref()
            .filter(|_| body.changed)
            .map(crate::decision::digest),
        ..Default::default()
    }
}

/// Run candidate response `guests` over the answer the live ones got, deciding
/// nothing (a shadow): their verdict, and whether any of them failed.
pub(super) async fn shadow_chain(
    node: &Node,
    route: &RouteEntry,
    guests: &[GuestRef],
    s: &crate::decision::ShadowedResponse,
) -> (crate::decision::Verdict, bool) {
    let load = LoadSource::new(route.origin.limiter.clone());
    let mut head = s.head.clone();
    let mut body = GuestBody {
        bytes: s.body.clone(),
        ..GuestBody::default()
    };
    let mut scratch = Decision::detailed();
    let mut failed = false;
    let runtime = &node.shadow_runtime;
    for g in guests {
        let out = g
            .guest
            .response(runtime, load.clone(), &s.req, &head, body.bytes.as_deref())
            .await;
        let closed = match out {
            Ok(edit) => match apply(runtime, g, edit, &mut head, &mut body, &mut scratch) {
                Ok(applied) => {
                    failed |= !applied;
                    None
                }
                Err(e) => Some(e),
            },
            Err(e) => {
                failed = true;
                on_failure_in(g.guest.metrics.on(runtime), Phase::Response, g, e)
            }
        };
        if let Some(e) = closed {
            let action = match e {
                EdgeError::GuestClosed(g) => format!("failed {}", g.kind()),
                e => format!("failed {e}"),
            };
            let v = crate::decision::Verdict {
                action,
                ..Default::default()
            };
            return (v, true);
        }
    }
    (verdict(&s.head, &head, &body), failed)
}

fn step(out: &Result<ResponseEdit, GuestError>) -> String {
    match out {
        Ok(e) if e.body.is_some() => "edit+body".to_string(),
        Ok(_) => "edit".to_string(),
        Err(e) => format!("failed {}", e.kind()),
    }
}

/// Apply one guest's edit. The status is validated first; header ops validate
/// before applying, so a bad edit changes nothing and needs no copy of the head to
/// roll back. `Ok(false)`: the edit was bad and skipped (fail open), counted in
/// the guest's metrics on `runtime`.
fn apply(
    runtime: &crate::runtime::Runtime,
    g: &GuestRef,
    edit: ResponseEdit,
    head: &mut types::ResponseHead,
    body: &mut GuestBody,
    d: &mut Decision,
) -> Result<bool, EdgeError> {
    let applied = match edit.status {
        Some(s) if StatusCode::from_u16(s).is_err() => {
            Err(invalid(&g.guest.name, format!("bad status {s}")))
        }
        status => apply_header_ops(&mut head.headers, edit.headers, &g.guest.name)
            .map(|()| head.status = status.unwrap_or(head.status)),
    };
    match applied {
        Ok(()) => {
            if let (Some(b), true) = (edit.body, body.bytes.is_some()) {
                body.bytes = Some(Bytes::from(b));
                body.changed = true;
                d.body_replaced = true;
            }
            Ok(true)
        }
        Err(e) => {
            let metrics = g.guest.metrics.on(runtime);
            metrics.record_failure(&e);
            on_failure_in(metrics, Phase::Response, g, e).map_or(Ok(false), Err)
        }
    }
}

/// Whether the guests get this body, and in which coding it arrives (`None`
/// inside: identity). A body in a coding the node does not know passes by them.
#[expect(
    clippy::option_option,
    reason = "none: not for the guests; some(none): identity"
)]
fn wanted_coding(route: &RouteEntry, h: &HeaderMap) -> Option<Option<Coding>> {
    let content_encoding = h
        .get(header::CONTENT_ENCODING)
        .map(HeaderValue::as_bytes)
        .filter(|v| *v != b"identity");
    let coding = content_encoding.and_then(Coding::from_content_encoding);
    let known = content_encoding.is_none() || coding.is_some();
    let listed = media_type(h).is_some_and(|m| route.transform.contains(&m));
    (known && listed).then_some(coding)
}

/// Read the body for the guests, capped at `transform_max_bytes` (the decoded size
/// too: a bomb stops there), decoded if it came compressed.
async fn read_body(
    route: &RouteEntry,
    headers: &mut HeaderMap,
    body: Body,
    coding: Option<Coding>,
) -> Result<GuestBody, EdgeError> {
    let cap = route.transform_max_bytes;
    let too_large = || EdgeError::BodyTooLarge { limit: cap };
    let origin_down = |message| EdgeError::OriginDown {
        origin: route.origin.client.name.clone(),
        message,
    };
    if body.size_hint().exact().is_some_and(|n| n > cap as u64) {
        return Err(too_large());
    }
    let bytes = match collect_capped(body, cap).await {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Err(too_large()),
        Err(e) => return Err(origin_down(format!("reading the body: {e}"))),
    };
    let Some(c) = coding.filter(|_| !bytes.is_empty()) else {
        return Ok(GuestBody {
            bytes: Some(bytes),
            ..GuestBody::default()
        });
    };
    match coding::decode(c, &bytes, cap) {
        Ok(decoded) => {
            headers.remove(header::CONTENT_ENCODING);
            headers.remove(header::CONTENT_LENGTH);
            Ok(GuestBody {
                bytes: Some(decoded),
                origin_encoded: Some((c, bytes)),
                changed: false,
            })
        }
        Err(coding::DecodeError::TooLarge) => Err(too_large()),
        Err(coding::DecodeError::Corrupt(m)) => {
            Err(origin_down(format!("cannot decode the body: {m}")))
        }
    }
}

/// The body the guests saw (and perhaps changed), for the client: encoded again if
/// the origin's was, with a length to match.
fn client_body(
    node: &Node,
    route: &RouteEntry,
    headers: &mut HeaderMap,
    req: &RequestHead,
    body: GuestBody,
) -> Body {
    let Some(b) = body.bytes else {
        return body::empty();
    };
    if body.changed {
        route.metrics.transformed.inc();
    }
    let b = match body.origin_encoded {
        Some((origin_coding, original)) => encode_for_client(
            node.levels,
            headers,
            req,
            b,
            body.changed,
            origin_coding,
            original,
        ),
        None => {
            if body.changed {
                weaken_etag(headers);
            }
            b
        }
    };
    headers.remove(header::TRANSFER_ENCODING);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(b.len()));
    body::full(b)
}
