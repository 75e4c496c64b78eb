//! Part of the cache phase: stale-while-revalidate (RFC 5861). A stored copy
//! within its `stale-while-revalidate` window answers at once, and one request's
//! worth of revalidation runs in the background: it passes the origin's limiter
//! like any request (in the class of the request that found the copy stale), asks
//! with the stored validators, and a 304 refreshes the copy, a new response
//! replaces it. The flight it leads keeps other requests for the key from
//! refetching meanwhile (they are served the stale copy too).

use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::BodyExt;

use super::origin::origin_request;
use crate::body;
use crate::cache::{Cache, Lead, RouteRules, Stored, Verdict};
use crate::contract::types::RequestHead;
use crate::node::OriginEntry;

/// A background revalidation of one stale copy.
pub(super) struct Refresh {
    /// Where it goes, and the limiter it passes.
    pub origin: Arc<OriginEntry>,
    /// The request as the origin gets it (with the stored validators).
    pub head: RequestHead,
    /// The client whose request found the copy stale (`X-Forwarded-For`).
    pub client: SocketAddr,
    /// That request's class and cost.
    pub class: usize,
    /// Its cost.
    pub cost: u32,
    /// The cache.
    pub cache: Arc<Cache>,
    /// The route's rules.
    pub rules: Arc<RouteRules>,
    /// The key.
    pub key: Arc<str>,
    /// The request as the rules read it.
    pub req: http::request::Parts,
    /// The stale copy.
    pub stale: Arc<Stored>,
    /// The flight for the key, released when the refresh is done.
    pub lead: Lead,
    /// A lifetime a request guest set.
    pub ttl: Option<u32>,
}

impl Refresh {
    /// Run it in the background.
    pub(super) fn spawn(self) {
        tokio::spawn(self.run());
    }

    async fn run(self) {
        let _lead = &self.lead;
        let Ok(mut permit) = self.origin.limiter.acquire(self.class, self.cost).await else {
            // Shed: the stale copy keeps answering until the next try.
            return;
        };
        let Ok(req) = origin_request(&self.head, &self.origin, self.client, body::empty()) else {
            return;
        };
        permit.begin();
        let resp = match self.origin.client.send(req, None).await {
            Ok(r) => r,
            Err(e) => {
                let timeout = matches!(e, crate::error::EdgeError::OriginTimeout { .. });
                permit.record(timeout);
                tracing::debug!(key = %self.key, "cache: background revalidation failed: {e}");
                return;
            }
        };
        let status = resp.status();
        permit.record(status.as_u16() == 503 || status.as_u16() == 429);
        let now = self.cache.now();
        let (parts, body) = resp.into_parts();
        if status == http::StatusCode::NOT_MODIFIED {
            let fresh =
                super::cache::refresh_from(&self.rules, &self.stale, &self.req, &parts, now);
            if let Some(fresh) = fresh {
                self.cache.insert(self.key.clone(), fresh);
            }
            return;
        }
        // An origin error does not replace a copy that may stand in for it.
        if status.is_server_error() && self.stale.may_serve_on_error(now) {
            return;
        }
        match self.rules.judge_for(&self.req, &parts, now, self.ttl) {
            Verdict::Store(mut s) => {
                let Some(whole) = read_whole(body, self.cache.max_object_bytes).await else {
                    return;
                };
                s.body = whole;
                self.cache.insert(self.key.clone(), *s);
            }
            // Not to be stored any more: the stale copy goes too.
            Verdict::Pass(_) => self.cache.mark_pass(&self.key),
        }
    }
}

/// The whole of `body`, if it ends within `limit` bytes.
async fn read_whole(mut body: body::Body, limit: usize) -> Option<bytes::Bytes> {
    let mut whole = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.ok()?.into_data() {
            if whole.len() + data.len() > limit {
                return None;
            }
            whole.extend_from_slice(&data);
        }
    }
    Some(whole.freeze())
}
