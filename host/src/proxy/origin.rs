//! Phase: origin. The request as the guests left it goes to the origin; the
//! origin's latency, measured at the socket from the end of the client's upload,
//! teaches its limiter.

use std::net::SocketAddr;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};

use super::target::strip_fixed_hop_by_hop;
use crate::body::{Body, Upload};
use crate::contract::convert::append_wit_headers;
use crate::contract::types::RequestHead;
use crate::decision::{AnsweredBy, Decision};
use crate::error::EdgeError;
use crate::limiter::Permit;
use crate::node::OriginEntry;
use crate::upstream::{ExchangeTiming, Recorded};

/// One exchange with an origin.
pub(super) struct Exchange<'a> {
    /// The origin.
    pub origin: &'a OriginEntry,
    /// The client's address (appended to `X-Forwarded-For`).
    pub client: SocketAddr,
    /// The client's upload, to tell its time from the origin's.
    pub upload: Option<&'a Upload>,
    /// The recorded answer a model origin replays (in-process replay).
    pub recorded: Option<Recorded>,
}

impl Exchange<'_> {
    /// Send the request and feed the origin's latency (or failure) to the limiter.
    pub(super) async fn fetch(
        self,
        head: &RequestHead,
        body: Body,
        permit: &mut Permit,
        d: &mut Decision,
    ) -> Result<Response<Body>, EdgeError> {
        let mut req = origin_request(head, self.origin, self.client, body)?;
        if let Some(rec) = self.recorded {
            req.extensions_mut().insert(rec);
        }
        d.answered(|| AnsweredBy::Origin);
        permit.begin();
        let sent = tokio::time::Instant::now();
        // Made anew only if it must be sent again (a pooled connection the origin
        // was closing): cheaper than a copy of every request, in case.
        let anew = || origin_request(head, self.origin, self.client, crate::body::empty()).ok();
        let resp = match self
            .origin
            .client
            .send_again(req, self.upload, Some(&anew))
            .await
        {
            Ok(r) => r,
            // The client's fault: the origin's latency is unknown, the limiter learns
            // nothing.
            Err(e @ EdgeError::ClientBody(_)) => return Err(e),
            Err(e) => {
                permit.record(matches!(e, EdgeError::OriginTimeout { .. }));
                return Err(e);
            }
        };
        // The origin's latency starts when it has the whole request: the client's
        // upload time is the client's.
        if let Some(done) = self.upload.and_then(Upload::done_at) {
            permit.exclude(done.saturating_duration_since(sent));
        }
        if let Some(latency) = resp
            .extensions()
            .get::<ExchangeTiming>()
            .and_then(ExchangeTiming::latency_ns)
        {
            permit.origin_took(latency);
            if d.detail {
                d.aside.upstream_ns = Some(latency);
            }
        }
        // Only a guest steers the cache: an origin's fields of that name go.
        let mut resp = resp;
        crate::cache::strip_guest_fields(resp.headers_mut());
        let status = resp.status();
        permit.record(
            status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS,
        );
        Ok(resp)
    }
}

/// The request the origin gets: the head as the guests left it, without hop-by-hop
/// headers, `Host` the origin's (configured, or the client's authority), and the
/// client appended to `X-Forwarded-For`.
pub(super) fn origin_request(
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
    append_wit_headers(headers, &head.headers);
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
    // The scheme the client used (a TLS listener: https), replacing any the client
    // sent: only the node knows it (or a trusted proxy in front, already read).
    headers.insert(
        "x-forwarded-proto",
        HeaderValue::from_static(if head.scheme == "https" {
            "https"
        } else {
            "http"
        }),
    );
    Ok(req)
}
