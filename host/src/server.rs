//! Listeners: accept connections and serve HTTP/1.1 and HTTP/2 (h2c, or over TLS
//! by ALPN) through the pipeline.
//!
//! A TLS listener takes its certificates from the node current at each accept: a
//! reload that changes them applies to new connections, and established ones keep
//! theirs. The TLS handshake counts toward `header_timeout`.
//!
//! [`Drain`] stops a node gracefully: listeners stop accepting (new connections are
//! refused), idle keep-alive connections close, busy ones close after their
//! current request (HTTP/2: GOAWAY), and [`Drain::drained`] resolves when the last
//! has.
//!
//! The client side is bounded everywhere a client could hold the node's resources
//! without making progress:
//! - connections open at once, per listener and per client address (past either, a
//!   new connection is closed at accept, with one log line a second, not one each);
//! - from accept to the first byte, and to a first complete request (HTTP/1 head or
//!   HTTP/2 stream), `header_timeout`: a socket that sends nothing, or only the HTTP/2
//!   preface, is closed then;
//! - a connection with no request in flight for `idle_timeout` is closed;
//! - a connection whose client takes nothing of a response for `send_timeout` is
//!   dropped, with its responses' limiter permits and origin connections (nginx's
//!   `send_timeout`); a response waiting on the origin does not count;
//! - a request body with no byte for `body_timeout` fails as a 408 (`body::ClientBody`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use crate::body::{self, Body, BoxError, ClientBody};
use crate::node::NodeSlot;
use crate::proxy;

/// The client-side bounds of one listener (see the module doc).
#[derive(Debug, Clone, Copy)]
pub struct ListenerLimits {
    /// From accept to a first complete request.
    pub header_timeout: Duration,
    /// With no request in flight.
    pub idle_timeout: Duration,
    /// Between two pieces of a request body.
    pub body_timeout: Duration,
    /// A response the client does not read for this long (the node has data for it
    /// and the client takes none) ends the connection.
    pub send_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// Connections open at once from one address.
    pub max_connections_per_ip: usize,
}

impl ListenerLimits {
    /// The limits a listener's config sets, `max_connections` also bounded by what the
    /// process's file descriptor limit allows (each proxied connection may need a
    /// second descriptor to the origin, and the admin API needs some).
    pub fn of(l: &edge_config::Listener) -> ListenerLimits {
        let fds = fd_budget();
        ListenerLimits {
            header_timeout: l.header_timeout.get_ref().duration(),
            idle_timeout: l.idle_timeout.get_ref().duration(),
            body_timeout: l.body_timeout.get_ref().duration(),
            send_timeout: l.send_timeout.get_ref().duration(),
            max_connections: (*l.max_connections.get_ref() as usize).min(fds),
            max_connections_per_ip: *l.max_connections_per_ip.get_ref() as usize,
        }
    }
}

/// Raise the soft file-descriptor limit to the hard one (as nginx's
/// `worker_rlimit_nofile` and Go's runtime do), once; return the client
/// connections it leaves room for.
fn fd_budget() -> usize {
    static BUDGET: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *BUDGET.get_or_init(|| {
        let soft = match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!("cannot read the file descriptor limit: {e}");
                1024
            }
        };
        // Half for clients, half for origin connections, less a reserve for the
        // admin API, guest files and logs.
        let budget = (soft.saturating_sub(128) / 2).max(16);
        tracing::debug!(soft, budget, "file descriptor budget");
        budget as usize
    })
}

/// Open connections, in all and per client address.
#[derive(Default)]
struct Conns {
    open: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    refused: AtomicU64,
    last_warning_s: AtomicU64,
}

/// One admitted connection; dropping it gives its place back.
struct ConnSlot {
    conns: Arc<Conns>,
    ip: IpAddr,
}

impl Conns {
    fn admit(self: &Arc<Self>, ip: IpAddr, limits: &ListenerLimits) -> Result<ConnSlot, String> {
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let open = self.open.load(Ordering::Relaxed);
        if open >= limits.max_connections {
            return Err(format!(
                "{open} connections open, the listener's max_connections"
            ));
        }
        let mine = per_ip.entry(ip).or_insert(0);
        if *mine >= limits.max_connections_per_ip {
            return Err(format!(
                "{mine} connections open from {ip}, the listener's max_connections_per_ip"
            ));
        }
        *mine += 1;
        self.open.fetch_add(1, Ordering::Relaxed);
        Ok(ConnSlot {
            conns: self.clone(),
            ip,
        })
    }

    /// Log a refusal at most once a second, with the count since the last line.
    fn refused(&self, why: &str, started: Instant) {
        let n = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let now_s = started.elapsed().as_secs() + 1;
        let last = self.last_warning_s.load(Ordering::Relaxed);
        if now_s > last
            && self
                .last_warning_s
                .compare_exchange(last, now_s, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!("refusing connections: {why} ({n} refused so far)");
        }
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.conns.open.fetch_sub(1, Ordering::Relaxed);
        let mut per_ip = self.conns.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

/// Stops listeners and connections gracefully; counts the connections open.
#[derive(Clone, Default)]
pub struct Drain(Arc<DrainState>);

#[derive(Default)]
struct DrainState {
    started: tokio_util::sync::CancellationToken,
    open: AtomicUsize,
    closed: tokio::sync::Notify,
}

impl Drain {
    /// Stop accepting and close connections as their requests finish.
    pub fn start(&self) {
        self.0.started.cancel();
    }

    /// Whether draining has started.
    pub fn is_draining(&self) -> bool {
        self.0.started.is_cancelled()
    }

    /// Client connections open (on every listener sharing this drain).
    pub fn open_connections(&self) -> usize {
        self.0.open.load(Ordering::SeqCst)
    }

    /// Resolves when no client connection is open.
    pub async fn drained(&self) {
        loop {
            let closed = self.0.closed.notified();
            if self.open_connections() == 0 {
                return;
            }
            closed.await;
        }
    }

    /// A token that stops one listener: cancelled by itself, or by the drain.
    pub fn stopper(&self) -> tokio_util::sync::CancellationToken {
        self.0.started.child_token()
    }

    fn opened(&self) -> Opened {
        self.0.open.fetch_add(1, Ordering::SeqCst);
        Opened(self.clone())
    }
}

/// One open connection, counted by its [`Drain`] until dropped.
struct Opened(Drain);

impl Drop for Opened {
    fn drop(&mut self) {
        if self.0.0.open.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.0.closed.notify_waiters();
        }
    }
}

/// Serve `listener` (the one configured at address `key`) until `stop` is
/// cancelled (by itself, or by the drain) or the task is dropped. Each connection
/// gets the settings and certificates of the node current when it is accepted.
pub async fn serve(
    slot: NodeSlot,
    listener: TcpListener,
    key: SocketAddr,
    drain: Drain,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut builder = http_builder((Duration::ZERO, edge_config::Http2Settings::default()));
    let conns = Arc::new(Conns::default());
    let started = Instant::now();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = stop.cancelled() => return,
        };
        let (stream, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                conns.refused(&format!("accept failed: {e}"), started);
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let node = slot.current();
        let Some(index) = node
            .config
            .listeners
            .iter()
            .position(|l| l.address.get_ref().0 == key)
        else {
            // A reload removed this listener; it is being stopped.
            continue;
        };
        let l = &node.config.listeners[index];
        let limits = ListenerLimits::of(l);
        if builder.0 != (limits.header_timeout, l.http2) {
            builder = http_builder((limits.header_timeout, l.http2));
        }
        let place = match conns.admit(crate::client::address_key(peer.ip()), &limits) {
            Ok(p) => p,
            Err(why) => {
                node.metrics.connections_refused.inc();
                conns.refused(&why, started);
                drop(stream);
                continue;
            }
        };
        node.metrics.connections.inc();
        let tls = node.listener_tls.get(index).cloned().flatten();
        drop(node);
        let _ = stream.set_nodelay(true);
        let conn = Conn {
            slot: slot.clone(),
            builder: builder.1.clone(),
            peer,
            limits,
            _place: place,
            _open: drain.opened(),
            stop: stop.clone(),
            accepted: Instant::now(),
        };
        tokio::spawn(conn.start(stream, tls));
    }
}

/// What a listener's connection settings are made from.
type BuilderKey = (Duration, edge_config::Http2Settings);

/// The HTTP/1 and HTTP/2 connection settings of a listener.
fn http_builder(
    key: BuilderKey,
) -> (
    BuilderKey,
    Arc<hyper_util::server::conn::auto::Builder<TokioExecutor>>,
) {
    let (header_timeout, h2) = key;
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout.max(Duration::from_millis(1)))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(h2.max_concurrent_streams)
        .max_header_list_size(h2.max_header_list_size)
        .initial_stream_window_size(h2.initial_stream_window)
        .initial_connection_window_size(h2.initial_connection_window);
    (key, Arc::new(builder))
}

/// Requests in flight on one connection and when that last changed; responses
/// waiting for the client to take their next piece, and when one last did.
struct Activity {
    /// When the connection was accepted.
    born: Instant,
    in_flight: AtomicUsize,
    requests: AtomicU64,
    last_change_ms: AtomicU64,
    /// Responses with a piece ready that the connection has not asked for yet.
    waiting_on_client: AtomicUsize,
    /// When the connection last asked a response for its next piece.
    last_taken_ms: AtomicU64,
    /// Wakes the watchdog when a request begins or a response starts waiting.
    changed: tokio::sync::Notify,
}

/// Why a connection is closed by its watchdog.
enum Close {
    /// No request in flight for its timeout: closed gracefully.
    Idle,
    /// Responses wait for a client that takes nothing: dropped.
    NotReading,
}

impl Activity {
    fn new(born: Instant) -> Activity {
        Activity {
            born,
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            last_change_ms: AtomicU64::new(0),
            waiting_on_client: AtomicUsize::new(0),
            last_taken_ms: AtomicU64::new(0),
            changed: tokio::sync::Notify::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.born.elapsed().as_millis() as u64
    }

    fn touch(&self) {
        self.last_change_ms.store(self.now_ms(), Ordering::SeqCst);
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.touch();
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_one();
        InFlight(self.clone())
    }

    /// Resolves once the connection should close: no request in flight for its
    /// timeout (`header_timeout` before a first request, counted from the accept;
    /// `idle_timeout` after), or a response the client has taken nothing of for
    /// `send_timeout`.
    async fn watch(&self, limits: ListenerLimits) -> Close {
        loop {
            // In flight first: `InFlight::drop` touches before it decrements, so a
            // zero read here comes with the fresh time (both SeqCst).
            let in_flight = self.in_flight.load(Ordering::SeqCst);
            let now = self.now_ms();
            let timeout = if self.requests.load(Ordering::SeqCst) == 0 {
                limits.header_timeout
            } else {
                limits.idle_timeout
            };
            let since = Duration::from_millis(
                now.saturating_sub(self.last_change_ms.load(Ordering::SeqCst)),
            );
            if in_flight == 0 && since >= timeout {
                return Close::Idle;
            }
            let mut next = if in_flight == 0 {
                timeout.saturating_sub(since)
            } else {
                limits.send_timeout
            };
            if self.waiting_on_client.load(Ordering::SeqCst) > 0 {
                let stalled = Duration::from_millis(
                    now.saturating_sub(self.last_taken_ms.load(Ordering::SeqCst)),
                );
                if stalled >= limits.send_timeout {
                    return Close::NotReading;
                }
                next = next.min(limits.send_timeout.saturating_sub(stalled));
            }
            tokio::select! {
                () = tokio::time::sleep(next.max(Duration::from_millis(50))) => {}
                () = self.changed.notified() => {}
            }
        }
    }
}

/// A request in flight; held by the response body until it has been sent.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            // Idle from now: the watchdog times that, not the send timeout.
            self.0.changed.notify_one();
        }
    }
}

/// A response body that keeps its request counted in flight until it is done, and
/// tells the connection's watchdog whether it waits for the client: from when it
/// has a piece ready (returned one, or the origin's next piece arrived) until the
/// connection asks for the next one. A response waiting for the origin's next piece
/// does not count: that is the origin's time, bounded by its own timeouts.
struct Tracked {
    inner: Body,
    _in_flight: InFlight,
    ready: Arc<Ready>,
}

/// Whether a response has a piece the connection has not asked for; doubles as the
/// waker handed to the origin's body, so a piece arriving while the connection does
/// not ask (its client reads nothing) counts.
struct Ready {
    activity: Arc<Activity>,
    waiting: std::sync::atomic::AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Ready {
    fn set(&self, waiting: bool) {
        if self.waiting.swap(waiting, Ordering::SeqCst) != waiting {
            let a = &self.activity;
            if waiting {
                a.last_taken_ms.store(a.now_ms(), Ordering::SeqCst);
                if a.waiting_on_client.fetch_add(1, Ordering::SeqCst) == 0 {
                    a.changed.notify_one();
                }
            } else {
                a.waiting_on_client.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}

impl Wake for Ready {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // The origin's next piece is here: from now on it waits for the connection.
        self.set(true);
        let waker = self.waker.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl Tracked {
    fn new(inner: Body, in_flight: InFlight) -> Tracked {
        let ready = Arc::new(Ready {
            activity: in_flight.0.clone(),
            waiting: std::sync::atomic::AtomicBool::new(false),
            waker: Mutex::new(None),
        });
        ready.set(true);
        Tracked {
            inner,
            _in_flight: in_flight,
            ready,
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.ready.set(false);
    }
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        // Asked: the client side is taking.
        self.ready.set(false);
        *self.ready.waker.lock().unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
        let waker = Waker::from(self.ready.clone());
        let out = Pin::new(&mut self.inner).poll_frame(&mut Context::from_waker(&waker));
        if matches!(out, Poll::Ready(Some(Ok(_)))) {
            self.ready.set(true);
        }
        out
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// An accepted connection and what serving it needs.
struct Conn {
    slot: NodeSlot,
    builder: Arc<hyper_util::server::conn::auto::Builder<TokioExecutor>>,
    peer: SocketAddr,
    limits: ListenerLimits,
    _place: ConnSlot,
    _open: Opened,
    stop: tokio_util::sync::CancellationToken,
    accepted: Instant,
}

impl Conn {
    /// Wait for a first byte, shake hands when the listener has TLS, then serve.
    async fn start(self, stream: TcpStream, tls: Option<Arc<rustls::ServerConfig>>) {
        let peer = self.peer;
        let timeout = self.limits.header_timeout;
        // A socket that sends nothing is closed at the header timeout (hyper's own
        // timer starts only with the first byte).
        let mut first = [0u8; 1];
        match tokio::time::timeout(timeout, stream.peek(&mut first)).await {
            Ok(Ok(n)) if n > 0 => {}
            Ok(Ok(_)) | Ok(Err(_)) => return,
            Err(_) => {
                tracing::debug!(%peer, "closed: no byte before the header timeout");
                return;
            }
        }
        let Some(tls) = tls else {
            return self.serve(stream, false).await;
        };
        let left = timeout.saturating_sub(self.accepted.elapsed());
        let handshake = tokio_rustls::TlsAcceptor::from(tls).accept(stream);
        match tokio::time::timeout(left, handshake).await {
            Ok(Ok(stream)) => self.serve(stream, true).await,
            Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
            Err(_) => tracing::debug!(%peer, "closed: no TLS handshake before the header timeout"),
        }
    }

    /// Serve HTTP on `io` until the connection ends, idles out, stalls, or drains.
    async fn serve<I>(self, io: I, over_tls: bool)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let Conn {
            slot,
            builder,
            peer,
            limits,
            stop,
            accepted,
            ..
        } = self;
        let activity = Arc::new(Activity::new(accepted));
        let act = activity.clone();
        let svc = service_fn(move |req: hyper::Request<Incoming>| {
            let in_flight = act.begin();
            // The node current when the request arrives serves all of it.
            let node = slot.current();
            // Boxed: hyper keeps the service future inline in a per-connection
            // allocation for the connection's whole life, so an unboxed pipeline
            // future (large: guests, limiter, origin client) would cost every idle
            // keep-alive connection its size (see benches/README.md, "Memory").
            Box::pin(async move {
                let (mut parts, incoming) = req.into_parts();
                let (body, upload) = ClientBody::new(body::boxed(incoming), limits.body_timeout);
                parts.extensions.insert(upload);
                if over_tls {
                    parts.extensions.insert(crate::client::OverTls);
                }
                let req = hyper::Request::from_parts(parts, body::boxed(body));
                let resp = proxy::serve(&node, req, peer).await;
                Ok::<_, std::convert::Infallible>(
                    resp.map(|inner| body::boxed(Tracked::new(inner, in_flight))),
                )
            })
        });
        let conn = builder.serve_connection(TokioIo::new(io), svc);
        tokio::pin!(conn);
        let close = tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(%peer, "connection ended: {e}");
                }
                return;
            }
            close = activity.watch(limits) => Some(close),
            () = stop.cancelled() => None,
        };
        match close {
            // Dropping the connection drops its responses: their limiter permits
            // and origin connections are released now, not when the client reads.
            Some(Close::NotReading) => {
                tracing::debug!(%peer, "closed: the client reads nothing");
            }
            Some(Close::Idle) => {
                tracing::debug!(%peer, "closed: idle");
                conn.as_mut().graceful_shutdown();
                // A peer that does not read its GOAWAY is not waited for.
                let _ = tokio::time::timeout(Duration::from_secs(1), conn).await;
            }
            None => {
                // Draining: the request in flight finishes, then the connection
                // closes (HTTP/2: GOAWAY first); a client that stops reading is
                // still dropped at its send timeout.
                conn.as_mut().graceful_shutdown();
                tokio::select! {
                    _ = conn => {}
                    close = activity.watch(limits) => if let Close::NotReading = close {
                        tracing::debug!(%peer, "closed while draining: the client reads nothing");
                    },
                }
            }
        }
    }
}

/// Bind a listener, with a clear error.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))
}
