//! Filling the cache as the body streams: the client gets each chunk as it arrives
//! (nothing is held back before the first byte) while a copy is kept; when the body
//! ends the copy is stored and the collapsed waiters are released. Past the object
//! size limit the copy is dropped and the key marked pass, so the rest streams
//! through uncached and the waiters go to the origin themselves.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body as HttpBody, Frame, SizeHint};

use super::Cache;
use super::collapse::Lead;
use super::stored::Stored;
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
}

/// A body that keeps a copy of what it streams and stores it at the end.
pub struct FillBody {
    inner: Body,
    copy: BytesMut,
    fill: Option<Fill>,
}

impl FillBody {
    /// Stream `inner`, storing it through `fill` at the end.
    pub fn new(inner: Body, fill: Fill) -> FillBody {
        let hint = inner.size_hint().exact().unwrap_or(0) as usize;
        let cap = hint.min(fill.cache.max_object_bytes);
        FillBody {
            inner,
            copy: BytesMut::with_capacity(cap),
            fill: Some(fill),
        }
    }

    fn keep(&mut self, data: &Bytes) {
        let Some(fill) = &self.fill else { return };
        if self.copy.len() + data.len() > fill.cache.max_object_bytes {
            // Too large: stream the rest uncached; later requests pass for a while.
            if let Some(fill) = self.fill.take() {
                fill.cache.mark_pass(&fill.key);
                fill.cache.metrics.too_large.inc();
            }
            self.copy = BytesMut::new();
            return;
        }
        self.copy.extend_from_slice(data);
    }

    fn store(&mut self) {
        if let Some(mut fill) = self.fill.take() {
            fill.stored.body = std::mem::take(&mut self.copy).freeze();
            fill.cache.insert(fill.key.clone(), fill.stored);
            // `fill.lead` drops here, after the insert: the waiters find it stored.
        }
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
            Poll::Ready(Some(Err(_))) => {
                self.fill = None;
            }
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
        }
    }
}
