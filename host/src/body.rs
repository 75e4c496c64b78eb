//! The body type the node passes around, and a body that enforces a deadline.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::{BodyExt, Full};

/// Errors inside bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every body the node handles: streamed through, or built at the edge.
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// A complete body from bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty body.
pub fn empty() -> Body {
    full(Bytes::new())
}

/// Wrap any body as a [`Body`].
pub fn boxed<B>(b: B) -> Body
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    b.map_err(Into::into).boxed_unsync()
}

/// A body that fails once its deadline passes (the origin's total timeout).
pub struct DeadlineBody {
    inner: Body,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl DeadlineBody {
    /// `inner`, cut off at `deadline`.
    pub fn new(inner: Body, deadline: tokio::time::Instant) -> DeadlineBody {
        DeadlineBody {
            inner,
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the origin's total timeout passed while streaming the body")]
struct BodyDeadline;

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(BodyDeadline))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Read a whole body, failing past `limit` bytes. `Ok(None)` when it is too large.
pub async fn collect_capped(mut body: Body, limit: usize) -> Result<Option<Bytes>, BoxError> {
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Ok(None);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(Some(buf.freeze()))
}

/// What became of a client's request body: shared between the body the origin
/// client reads and the pipeline, so an origin failure caused by the client (a
/// stalled or malformed upload) is blamed on the client, and the origin's latency is
/// measured from the end of the upload, never including it.
#[derive(Debug, Default)]
pub struct Upload {
    state: std::sync::atomic::AtomicU8,
    /// The body was asked for its next piece and the client has not sent it yet.
    waiting_on_client: std::sync::atomic::AtomicBool,
    done: std::sync::OnceLock<tokio::time::Instant>,
    notify: tokio::sync::Notify,
}

/// How a client's upload ended, if it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadFailure {
    /// No byte arrived within the body timeout.
    Stalled,
    /// The client sent a malformed body (bad chunk size ...) or reset the stream.
    Malformed,
}

impl Upload {
    /// When the last byte of the body was read (None: not yet).
    pub fn done_at(&self) -> Option<tokio::time::Instant> {
        self.done.get().copied()
    }

    /// Wait until the body has been read whole (forever if it fails).
    pub async fn finished(&self) {
        loop {
            let notified = self.notify.notified();
            if self.done.get().is_some() {
                return;
            }
            notified.await;
        }
    }

    /// Whether the upload is waiting for the client right now (as opposed to
    /// waiting for the origin to read what it was sent).
    pub fn waiting_on_client(&self) -> bool {
        self.waiting_on_client
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// How the upload failed, if it did.
    pub fn failure(&self) -> Option<UploadFailure> {
        match self.state.load(std::sync::atomic::Ordering::Acquire) {
            1 => Some(UploadFailure::Stalled),
            2 => Some(UploadFailure::Malformed),
            _ => None,
        }
    }

    fn finish(&self) {
        if self.done.set(tokio::time::Instant::now()).is_ok() {
            self.notify.notify_waiters();
        }
    }

    fn fail(&self, f: UploadFailure) {
        let v = match f {
            UploadFailure::Stalled => 1,
            UploadFailure::Malformed => 2,
        };
        let _ = self.state.compare_exchange(
            0,
            v,
            std::sync::atomic::Ordering::AcqRel,
            std::sync::atomic::Ordering::Acquire,
        );
    }
}

/// A client's request body: fails when no byte arrives for `idle` (a stalled upload
/// holds an origin connection and a limiter slot), and reports to its [`Upload`].
pub struct ClientBody {
    inner: Body,
    idle: std::time::Duration,
    /// Started at the first poll: time the request spent queued or in guests
    /// before it is forwarded is not the client's.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    upload: std::sync::Arc<Upload>,
}

impl ClientBody {
    /// Wrap `inner`; the returned [`Upload`] tells how it went.
    pub fn new(inner: Body, idle: std::time::Duration) -> (ClientBody, std::sync::Arc<Upload>) {
        let upload = std::sync::Arc::new(Upload::default());
        if inner.is_end_stream() {
            upload.finish();
        }
        let body = ClientBody {
            inner,
            idle,
            sleep: None,
            upload: upload.clone(),
        };
        (body, upload)
    }
}

/// The client stopped sending its request body.
#[derive(Debug, thiserror::Error)]
#[error("the client sent no byte of its request body for {0:?}")]
pub struct BodyStalled(std::time::Duration);

impl HttpBody for ClientBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        use std::sync::atomic::Ordering::Release;
        let out = Pin::new(&mut self.inner).poll_frame(cx);
        self.upload
            .waiting_on_client
            .store(matches!(out, Poll::Pending), Release);
        match out {
            Poll::Ready(None) => {
                self.upload.finish();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                self.upload.fail(UploadFailure::Malformed);
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(Some(Ok(frame))) => {
                // The next piece is due within `idle` of the next poll.
                self.sleep = None;
                if self.inner.is_end_stream() {
                    self.upload.finish();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                let idle = self.idle;
                let sleep = self
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                if sleep.as_mut().poll(cx).is_ready() {
                    self.upload.fail(UploadFailure::Stalled);
                    return Poll::Ready(Some(Err(Box::new(BodyStalled(self.idle)))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
