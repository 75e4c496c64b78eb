//! Phase: finish. What runs when the response body has gone to the client (or the
//! client went away): the limiter permit is released (the origin is done only
//! then), and a sampled request is recorded, and every request access-logged, with
//! the bytes it sent and its whole duration.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Response;
use http_body::{Frame, SizeHint};
use outpost_traffic::Entry;

use super::target::strip_hop_by_hop;
use crate::access::{AccessLog, Started};
use crate::body::{self, Body, BoxError};
use crate::decision::Decision;
use crate::limiter::Permit;
use crate::record::Recorder;

/// The response as the client gets it: hop-by-hop headers removed, the HTTP
/// version the client's connection's own, the permit held until the body ends.
pub(super) fn to_client(resp: Response<Body>, permit: Option<Permit>) -> Response<Body> {
    let (mut parts, inner) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    // The HTTP version is hop-by-hop too: the client's connection has its own.
    parts.version = http::Version::default();
    let body = match permit {
        Some(p) => body::boxed(PermitBody { inner, _permit: p }),
        None => inner,
    };
    Response::from_parts(parts, body)
}

/// A body that holds the limiter permit until it has been fully sent (or dropped).
struct PermitBody {
    inner: Body,
    _permit: Permit,
}

impl http_body::Body for PermitBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Who is told about a request once its response has gone: the recorder (a
/// sampled request), the access log and the console's tail.
#[derive(Default)]
pub(super) struct Watchers {
    pub recorder: Option<(Arc<Recorder>, Entry)>,
    pub access: Option<(Arc<AccessLog>, Started)>,
    pub tail: Option<(crate::tail::Tail, crate::tail::Tailed)>,
    /// A shadow run to start (the route's candidate guests).
    pub shadow: Option<Box<dyn FnOnce() + Send>>,
}

/// `resp`, recorded and logged once its body has ended (or the client dropped it).
pub(super) fn watched(
    resp: Response<Body>,
    mut watchers: Watchers,
    decision: Decision,
    start: std::time::Instant,
) -> Response<Body> {
    if let Some((_, tailed)) = &mut watchers.tail {
        tailed.response(resp.headers());
    }
    if let Some((_, entry)) = &mut watchers.recorder {
        entry.response_headers = crate::record::kept_headers(resp.headers());
    }
    resp.map(|inner| {
        body::boxed(RecordedBody {
            inner,
            sent: 0,
            pending: Some(Pending {
                watchers,
                decision,
                start,
            }),
        })
    })
}

/// What the recording and the access log still need once the body has gone.
struct Pending {
    watchers: Watchers,
    decision: Decision,
    start: std::time::Instant,
}

/// A body that counts what it sends and records the request when it ends.
struct RecordedBody {
    inner: Body,
    sent: u64,
    pending: Option<Pending>,
}

impl RecordedBody {
    fn finish(&mut self) {
        if let Some(p) = self.pending.take() {
            let took = p.start.elapsed();
            if let Some((log, head)) = &p.watchers.access {
                log.log(head, &p.decision, self.sent, took);
            }
            if let Some((tail, tailed)) = &p.watchers.tail {
                tail.send(tailed, &p.decision, self.sent, took);
            }
            if let Some((rec, entry)) = p.watchers.recorder {
                rec.finish(entry, &p.decision, self.sent, took);
            }
            if let Some(job) = p.watchers.shadow {
                job();
            }
        }
    }
}

impl http_body::Body for RecordedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.sent += data.len() as u64;
                }
                if self.inner.is_end_stream() {
                    self.finish();
                }
            }
            Poll::Ready(None | Some(Err(_))) => self.finish(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for RecordedBody {
    fn drop(&mut self) {
        // The client went away before the end (or the body was empty and never
        // polled): record what was sent.
        self.finish();
    }
}
