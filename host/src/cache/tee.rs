//! A leader's response as it streams, for the requests collapsed behind it: each
//! chunk the origin sends is kept here as well as sent to the leader's client, and
//! every waiter reads the same chunks at its own pace, from the first one, without
//! waiting for the object to be whole.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use http_body::{Body as HttpBody, Frame, SizeHint};

use crate::body::{self, Body, BoxError};

/// The shared stream of one fetch.
pub struct Tee {
    status: StatusCode,
    headers: HeaderMap,
    /// The leader's values of the headers the response varies on.
    vary_key: String,
    length: Option<u64>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    chunks: Vec<Bytes>,
    /// Some(true): the body ended whole; Some(false): it failed.
    end: Option<bool>,
    wakers: Vec<Waker>,
}

#[derive(Debug, thiserror::Error)]
#[error("the collapsed fetch this response streamed from failed")]
struct LeaderFailed;

impl Tee {
    /// A stream for a response of `status`, `headers` (as stored) and `length`
    /// bytes, if known.
    pub fn new(
        status: StatusCode,
        headers: HeaderMap,
        vary_key: String,
        length: Option<u64>,
    ) -> Arc<Tee> {
        Arc::new(Tee {
            status,
            headers,
            vary_key,
            length,
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A chunk arrived from the origin.
    pub fn push(&self, chunk: Bytes) {
        let wakers = {
            let mut st = self.lock();
            st.chunks.push(chunk);
            std::mem::take(&mut st.wakers)
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    /// The body ended (`ok`) or failed.
    pub fn finish(&self, ok: bool) {
        let wakers = {
            let mut st = self.lock();
            if st.end.is_none() {
                st.end = Some(ok);
            }
            std::mem::take(&mut st.wakers)
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    /// Whether this response answers a request with `req` headers: the same
    /// values of every header it varies on as the leader's (never with
    /// `Vary: *`).
    pub fn serves(&self, req: &HeaderMap) -> bool {
        let any = self.headers.get_all(header::VARY).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|n| n.trim() == "*"))
        });
        !any && super::policy::vary_key(&self.headers, req) == self.vary_key
    }

    /// Whether the body has ended or failed.
    pub fn is_finished(&self) -> bool {
        self.lock().end.is_some()
    }

    /// Everything pushed so far, in one piece (the stored copy of a whole body).
    pub fn whole(&self) -> Bytes {
        let st = self.lock();
        match st.chunks.as_slice() {
            [one] => one.clone(),
            chunks => Bytes::from(chunks.concat()),
        }
    }

    /// The body from its first chunk, for any reader.
    pub fn body(self: &Arc<Tee>) -> Body {
        body::boxed(TeeBody {
            tee: self.clone(),
            next: 0,
        })
    }

    /// A waiter's response: the leader's status and headers, `Age: 0`, the
    /// `Cache-Status` given, and the body from its first chunk.
    pub fn respond(self: &Arc<Tee>, cache_status: &str) -> Response<Body> {
        let mut resp = Response::new(self.body());
        *resp.status_mut() = self.status;
        let h = resp.headers_mut();
        *h = self.headers.clone();
        h.remove(header::TRANSFER_ENCODING);
        h.insert(header::AGE, HeaderValue::from_static("0"));
        match self.length {
            Some(n) => {
                h.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
            }
            // Chunked, as the origin sent it.
            None => {
                h.remove(header::CONTENT_LENGTH);
            }
        }
        if let Ok(v) = HeaderValue::from_str(cache_status) {
            h.insert(&super::CACHE_STATUS, v);
        }
        resp
    }
}

/// One waiter's read of a [`Tee`].
struct TeeBody {
    tee: Arc<Tee>,
    next: usize,
}

impl HttpBody for TeeBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let tee = self.tee.clone();
        let mut st = tee.lock();
        if let Some(chunk) = st.chunks.get(self.next).cloned() {
            drop(st);
            self.next += 1;
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        match st.end {
            Some(true) => Poll::Ready(None),
            Some(false) => Poll::Ready(Some(Err(Box::new(LeaderFailed)))),
            None => {
                st.wakers.push(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        let st = self.tee.lock();
        st.end == Some(true) && self.next >= st.chunks.len()
    }

    fn size_hint(&self) -> SizeHint {
        self.tee
            .length
            .map_or_else(SizeHint::default, SizeHint::with_exact)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn waiters_read_every_chunk_from_the_first_as_it_arrives() {
        let tee = Tee::new(StatusCode::OK, HeaderMap::new(), String::new(), Some(6));
        tee.push(Bytes::from_static(b"ab"));
        let early = tee.respond("outpost; hit");
        let reader = tokio::spawn(async move { early.into_body().collect().await });
        tokio::task::yield_now().await;
        tee.push(Bytes::from_static(b"cd"));
        tee.push(Bytes::from_static(b"ef"));
        tee.finish(true);
        let got = reader.await.expect("join").expect("body").to_bytes();
        assert_eq!(&got[..], b"abcdef");
        // A late waiter reads it all too.
        let late = tee.respond("outpost; hit").into_body().collect().await;
        assert_eq!(&late.expect("body").to_bytes()[..], b"abcdef");
    }

    #[test]
    fn a_waiter_is_served_only_the_leaders_variant() {
        let mut resp = HeaderMap::new();
        resp.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        let mut gzip = HeaderMap::new();
        gzip.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        let leader = super::super::policy::vary_key(&resp, &gzip);
        let tee = Tee::new(StatusCode::OK, resp.clone(), leader, None);
        assert!(tee.serves(&gzip));
        assert!(!tee.serves(&HeaderMap::new()), "another Accept-Encoding");
        resp.insert(header::VARY, HeaderValue::from_static("*"));
        let star = Tee::new(StatusCode::OK, resp, String::new(), None);
        assert!(!star.serves(&HeaderMap::new()), "Vary: * never matches");
    }

    #[tokio::test]
    async fn a_failed_fetch_fails_its_waiters() {
        let tee = Tee::new(StatusCode::OK, HeaderMap::new(), String::new(), None);
        tee.push(Bytes::from_static(b"ab"));
        tee.finish(false);
        assert!(tee.respond("x").into_body().collect().await.is_err());
    }
}
