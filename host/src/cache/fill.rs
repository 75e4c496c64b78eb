//! Filling the cache as the body streams: the client gets each chunk as it arrives
//! (nothing is held back before the first byte) while a copy is kept; when the body
//! ends the copy is stored and the collapsed waiters are released. Past the object
//! size limit the copy is dropped and the key marked pass, so the rest streams
//! through uncached and the waiters go to the origin themselves.
//!
//! The response guests may still change what is stored (a lifetime, or not at
//! all: [`outpost_common::cache`]); they run after the fill has begun, and a body
//! they transform is read whole before they answer. So a whole body waits in its
//! [`Slot`] until the guests have [decided](Slot::decide), and a decision waits
//! for the body.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body as HttpBody, Frame, SizeHint};

use std::sync::Mutex;
use std::time::SystemTime;

use super::Cache;
use super::collapse::Lead;
use super::policy::{RouteRules, Verdict};
use super::stored::Stored;
use super::tee::Tee;
use crate::body::{Body, BoxError};

/// What is stored once the body is whole.
pub struct Fill {
    /// The cache.
    pub cache: Arc<Cache>,
    /// The key.
    pub key: Arc<str>,
    /// The response, without its body yet.
    pub stored: Stored,
    /// The flight this fill leads (none: it was not collapsed).
    pub lead: Option<Lead>,
    /// What a guest's lifetime is judged with: the route's rules, the request, and
    /// when the response came (its head is the stored one's).
    pub rejudge: (Arc<RouteRules>, http::request::Parts, SystemTime),
}

/// What the response guests decided about storing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Steer {
    /// Store it as judged.
    Keep,
    /// Store it for this many seconds instead.
    Ttl(u32),
    /// Do not store it.
    NoStore,
}

/// Where a whole body and the guests' decision meet.
#[derive(Clone, Default)]
pub struct Slot(Arc<Mutex<SlotState>>);

#[derive(Default)]
struct SlotState {
    steer: Option<Steer>,
    whole: Option<(Fill, bytes::Bytes)>,
}

impl Slot {
    fn lock(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The guests have decided: store now if the body is whole, else when it is.
    pub fn decide(&self, steer: Steer) {
        let whole = {
            let mut st = self.lock();
            st.steer = Some(steer);
            st.whole.take()
        };
        if let Some((fill, body)) = whole {
            store(fill, body, steer);
        }
    }

    fn whole(&self, fill: Fill, body: bytes::Bytes) {
        let steer = {
            let mut st = self.lock();
            match st.steer {
                Some(s) => s,
                None => {
                    st.whole = Some((fill, body));
                    return;
                }
            }
        };
        store(fill, body, steer);
    }
}

/// Store a whole body as the guests decided. The flight's waiters are released
/// after the insert (when `fill.lead` drops), so they find it.
fn store(mut fill: Fill, body: bytes::Bytes, steer: Steer) {
    match steer {
        Steer::Keep => {}
        Steer::NoStore => {
            fill.cache.mark_pass(&fill.key);
            return;
        }
        Steer::Ttl(secs) => {
            // Judged again from the stored head: the guest's lifetime replaces the
            // freshness fields, the only ones the stored head lacks (the edge's
            // targeted fields) among them; the origin's tags are kept.
            let (rules, req, at) = &fill.rejudge;
            let mut head = http::Response::new(());
            *head.status_mut() = fill.stored.status;
            *head.headers_mut() = fill.stored.headers.clone();
            match rules.judge_for(req, &head.into_parts().0, *at, Some(secs)) {
                Verdict::Store(s) => {
                    let tags = std::mem::take(&mut fill.stored.tags);
                    fill.stored = *s;
                    fill.stored.tags = tags;
                }
                Verdict::Pass(_) => {
                    fill.cache.mark_pass(&fill.key);
                    return;
                }
            }
        }
    }
    fill.stored.body = body;
    fill.cache.insert(fill.key.clone(), fill.stored);
}

/// A body that keeps a copy of what it streams and stores it at the end.
pub struct FillBody {
    inner: Body,
    /// Bytes kept so far (in `copy`, or in the tee).
    kept: usize,
    copy: BytesMut,
    fill: Option<Fill>,
    slot: Slot,
    /// The stream the collapsed waiters read, when they were given one.
    tee: Option<Arc<Tee>>,
}

impl FillBody {
    /// Stream `inner`, storing it through `fill` at the end, once `slot` has the
    /// guests' decision; every chunk also goes to `tee`, for the waiters.
    pub fn new(inner: Body, fill: Fill, slot: Slot, tee: Option<Arc<Tee>>) -> FillBody {
        // With a tee, its chunks are the copy: the body is not held twice.
        let hint = inner.size_hint().exact().unwrap_or(0) as usize;
        let cap = if tee.is_some() {
            0
        } else {
            hint.min(fill.cache.max_object_bytes)
        };
        FillBody {
            inner,
            kept: 0,
            copy: BytesMut::with_capacity(cap),
            fill: Some(fill),
            slot,
            tee,
        }
    }

    fn keep(&mut self, data: &Bytes) {
        let Some(fill) = &self.fill else { return };
        if self.kept + data.len() > fill.cache.max_object_bytes {
            // Too large (its length was not known): stream the rest uncached; later
            // requests pass for a while. The waiters reading along cannot be given
            // the rest without keeping it all: their responses end in an error.
            if let Some(t) = self.tee.take() {
                t.finish(false);
            }
            if let Some(fill) = self.fill.take() {
                fill.cache.mark_pass(&fill.key);
                fill.cache.metrics.too_large.inc();
            }
            self.copy = BytesMut::new();
            return;
        }
        self.kept += data.len();
        match &self.tee {
            Some(t) => t.push(data.clone()),
            None => self.copy.extend_from_slice(data),
        }
    }

    fn store(&mut self) {
        // Stored first, then the readers told the body is whole: whoever read it
        // to its end finds it stored.
        if let Some(fill) = self.fill.take() {
            let body = match &self.tee {
                Some(t) => t.whole(),
                None => std::mem::take(&mut self.copy).freeze(),
            };
            self.slot.whole(fill, body);
        }
        if let Some(t) = &self.tee {
            t.finish(true);
        }
    }

    /// Read the origin's body to its end in a task of its own, as fast as the
    /// origin sends it, into the tee: every reader, the first client included,
    /// reads from the tee at its own pace, and a slow one holds up nobody else
    /// (nor the origin connection).
    pub fn fetch_apart(self) {
        tokio::spawn(drain(self));
    }

    fn failed(&mut self) {
        if let Some(t) = &self.tee {
            t.finish(false);
        }
        self.fill = None;
    }
}

impl HttpBody for FillBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let data = data.clone();
                    self.keep(&data);
                }
                if self.inner.is_end_stream() {
                    self.store();
                }
            }
            Poll::Ready(None) => self.store(),
            // A failed body is not stored: the fill drops and the next waiter leads.
            Poll::Ready(Some(Err(_))) => self.failed(),
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

impl Drop for FillBody {
    fn drop(&mut self) {
        // An empty body may never be polled: it is whole all the same.
        if self.inner.is_end_stream() {
            self.store();
            return;
        }
        // The leader's client went away mid-body. Waiters are reading this fetch:
        // finish it for them (and store it) rather than cut them off.
        // (The stream is held here and by the flight; more holders are waiters.)
        let serving = self
            .tee
            .as_ref()
            .is_some_and(|t| !t.is_finished() && Arc::strong_count(t) > 2);
        if serving
            && self.fill.is_some()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            let rest = FillBody {
                inner: std::mem::replace(&mut self.inner, crate::body::empty()),
                kept: self.kept,
                copy: std::mem::take(&mut self.copy),
                fill: self.fill.take(),
                slot: self.slot.clone(),
                tee: self.tee.take(),
            };
            rt.spawn(drain(rest));
            return;
        }
        self.failed();
    }
}

/// Read `body` to its end (nobody else will), so its waiters and the cache get it.
async fn drain(mut body: FillBody) {
    use http_body_util::BodyExt;
    while let Some(frame) = body.frame().await {
        if frame.is_err() {
            return;
        }
    }
}
