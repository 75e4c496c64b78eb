//! The pooled keep-alive client to one origin (one address or a pool of them,
//! `pool`), over TCP or TLS, with connect, first-byte and total timeouts mapped to
//! 502 and 504.

pub mod pool;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use http::{Request, Response, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::body::{Body, DeadlineBody, Upload, UploadFailure, boxed};
use crate::error::EdgeError;
use crate::metrics::Counter;
use rustls_pki_types::ServerName;

/// Makes a request anew for a retry, only when one is needed (cloning every
/// request up front, in case, cost 2.5 µs a request); None: it cannot be.
pub type Again<'a> = &'a (dyn Fn() -> Option<Request<Body>> + Send + Sync);

/// Timeouts of one origin.
#[derive(Debug, Clone, Copy)]
pub struct OriginTimeouts {
    /// To connect.
    pub connect: Duration,
    /// From sending the request to the response head.
    pub first_byte: Duration,
    /// For the whole exchange, body included.
    pub total: Duration,
}

/// How the node talks to one origin.
#[derive(Clone)]
pub struct OriginSettings {
    /// The `Host` header to send instead of the client's, if configured.
    pub host_header: Option<String>,
    /// Its timeouts.
    pub timeouts: OriginTimeouts,
    /// Idle keep-alive connections kept.
    pub pool_max_idle: usize,
    /// How long an idle connection is kept: below the origin's own keep-alive
    /// timeout, or the node reuses connections the origin is closing.
    pub pool_idle_timeout: Duration,
    /// Counts requests sent again after a failed first attempt.
    pub retries: Counter,
    /// TLS to the origin: the client config and the server name to send and verify.
    pub tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    /// How a pool picks an address.
    pub balance: pool::Balance,
    /// Passive ejection.
    pub ejection: pool::Ejection,
    /// Counts ejections.
    pub ejections: Counter,
    /// Active health checks.
    pub health: Option<HealthSettings>,
}

/// An active health check of each address.
#[derive(Debug, Clone)]
pub struct HealthSettings {
    /// The path asked for.
    pub path: String,
    /// Between two rounds of checks.
    pub interval: Duration,
    /// Longest wait for an answer.
    pub timeout: Duration,
    /// Passes in a row that make an address healthy.
    pub healthy: u32,
    /// Failures in a row that make it unhealthy.
    pub unhealthy: u32,
}

/// Aborts its task when dropped (the health checks of a client a reload replaced).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A client for one origin.
pub struct OriginClient {
    /// The origin's name.
    pub name: String,
    /// Its addresses.
    pool: Arc<pool::Pool>,
    /// Taken when no address of this origin is available.
    backup: OnceLock<Weak<OriginClient>>,
    _checks: Option<AbortOnDrop>,
    /// The `Host` header to send instead of the client's, if configured.
    pub host_header: Option<String>,
    timeouts: OriginTimeouts,
    /// `https` when the origin speaks TLS.
    scheme: http::uri::Scheme,
    client: Client<TimedConnector, Body>,
    /// Keeps no idle connection: a retry through it always gets a new one.
    fresh: Client<TimedConnector, Body>,
    /// Requests sent again on a new connection after a reused one failed.
    retries: Counter,
    model: bool,
    /// Headers a model origin adds to every answer that lacks them.
    model_headers: Vec<(http::HeaderName, http::HeaderValue)>,
}

/// What a recorded origin answered, carried in a replayed request's extensions:
/// a model origin answers with it instead of the network.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    /// Status (200 when the recording has none).
    pub status: Option<u16>,
    /// Body length (without a recorded body, the body is filler bytes of that
    /// length, capped at 1 MiB).
    pub bytes: Option<u64>,
    /// Response headers, if recorded.
    pub headers: Vec<(String, String)>,
    /// The body itself, when the recording kept it (served instead of filler).
    pub body: Option<bytes::Bytes>,
}

impl OriginClient {
    /// A client for the origin at `authorities` (`host:port`, at least one).
    pub fn new(name: &str, authorities: &[String], settings: OriginSettings) -> OriginClient {
        let OriginSettings {
            host_header,
            timeouts,
            pool_max_idle,
            pool_idle_timeout,
            retries,
            tls,
            balance,
            ejection,
            ejections,
            health,
        } = settings;
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(timeouts.connect));
        http.set_nodelay(true);
        http.set_keepalive(Some(Duration::from_secs(60)));
        http.enforce_http(false);
        let scheme = if tls.is_some() {
            http::uri::Scheme::HTTPS
        } else {
            http::uri::Scheme::HTTP
        };
        let connector = TimedConnector {
            http,
            tls: tls.map(|(config, name)| TlsTo {
                connector: tokio_rustls::TlsConnector::from(config),
                name,
                timeout: timeouts.connect,
            }),
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_max_idle_per_host(pool_max_idle)
            .pool_idle_timeout(pool_idle_timeout)
            .build(connector.clone());
        let fresh = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(connector);
        let pool = Arc::new(pool::Pool::new(
            authorities.iter().map(|a| pool::Member::new(a)).collect(),
            balance,
            ejection,
            ejections,
        ));
        let checks = health.map(|h| {
            AbortOnDrop(tokio::spawn(check_health(
                Arc::downgrade(&pool),
                client.clone(),
                scheme.clone(),
                host_header.clone(),
                h,
            )))
        });
        OriginClient {
            name: name.to_string(),
            pool,
            backup: OnceLock::new(),
            _checks: checks,
            host_header,
            timeouts,
            scheme,
            client,
            fresh,
            retries,
            model: false,
            model_headers: Vec::new(),
        }
    }

    /// A model origin: no network; every request is answered from the [`Recorded`]
    /// response it carries (200 and an empty body without one). For in-process
    /// replay.
    /// `headers` are added to every answer that lacks them (`cache-control`: what
    /// a recording without response headers stands for).
    pub fn model(
        name: &str,
        host_header: Option<String>,
        headers: &[(String, String)],
    ) -> OriginClient {
        let t = Duration::from_secs(60);
        let mut c = OriginClient::new(
            name,
            &["model.invalid:0".to_string()],
            OriginSettings {
                host_header,
                timeouts: OriginTimeouts {
                    connect: t,
                    first_byte: t,
                    total: t,
                },
                pool_max_idle: 0,
                pool_idle_timeout: t,
                retries: Counter::default(),
                tls: None,
                balance: pool::Balance::LeastOutstanding,
                ejection: pool::Ejection {
                    after: 0,
                    duration: t,
                    max_share: 0.0,
                },
                ejections: Counter::default(),
                health: None,
            },
        );
        c.model = true;
        c.model_headers = headers
            .iter()
            .filter_map(|(n, v)| {
                Some((
                    http::HeaderName::from_bytes(n.trim().as_bytes()).ok()?,
                    http::HeaderValue::from_str(v.trim()).ok()?,
                ))
            })
            .collect();
        c
    }

    fn answer_model(&self, req: &Request<Body>) -> Response<Body> {
        let rec = req
            .extensions()
            .get::<Recorded>()
            .cloned()
            .unwrap_or_default();
        let body = rec.body.clone().unwrap_or_else(|| {
            // Filler: a slice of one shared MiB (no allocation or copy per request).
            static FILLER: std::sync::OnceLock<bytes::Bytes> = std::sync::OnceLock::new();
            let len = rec.bytes.unwrap_or(0).min(1 << 20) as usize;
            FILLER
                .get_or_init(|| bytes::Bytes::from(vec![b'.'; 1 << 20]))
                .slice(..len)
        });
        let mut resp = Response::new(crate::body::full(body));
        *resp.status_mut() =
            http::StatusCode::from_u16(rec.status.unwrap_or(200)).unwrap_or(http::StatusCode::OK);
        for (k, v) in &rec.headers {
            if let (Ok(n), Ok(v)) = (
                http::HeaderName::from_bytes(k.as_bytes()),
                http::HeaderValue::from_str(v),
            ) && !matches!(
                n.as_str(),
                "content-length" | "transfer-encoding" | "content-encoding"
            ) {
                resp.headers_mut().append(n, v);
            }
        }
        for (n, v) in &self.model_headers {
            if !resp.headers().contains_key(n) {
                resp.headers_mut().insert(n.clone(), v.clone());
            }
        }
        resp
    }

    /// Requests sent a second time, on a new connection, after the first attempt
    /// failed before any answer byte.
    pub fn retries(&self) -> u64 {
        self.retries.get()
    }

    /// The origin's (first) `host:port`.
    pub fn authority(&self) -> &str {
        self.pool
            .members
            .first()
            .map_or("", |m| m.authority.as_str())
    }

    /// Take `backup` when no address of this origin is available (its own backup
    /// is never taken in turn). Held weakly: origins may name each other.
    pub fn set_backup(&self, backup: &Arc<OriginClient>) {
        let _ = self.backup.set(Arc::downgrade(backup));
    }

    /// Each address's state, for the admin API.
    pub fn addresses(&self) -> Vec<serde_json::Value> {
        self.pool.states()
    }

    /// Send `req` (its URI holds path and query) and return the response, its body
    /// cut off at the total timeout.
    ///
    /// With `upload` (the client's request body), the first-byte timeout starts when
    /// the body has been sent whole, and a failure the client's body caused (stalled,
    /// malformed) is the client's error, not the origin's.
    pub async fn send(
        &self,
        req: Request<Body>,
        upload: Option<&Upload>,
    ) -> Result<Response<Body>, EdgeError> {
        self.send_again(req, upload, None).await
    }

    /// [`OriginClient::send`], with `again` to make the request anew should an
    /// idempotent one without a body need sending again (see `exchange`).
    pub async fn send_again(
        &self,
        req: Request<Body>,
        upload: Option<&Upload>,
        again: Option<Again<'_>>,
    ) -> Result<Response<Body>, EdgeError> {
        if self.model {
            return Ok(self.answer_model(&req));
        }
        if !self.pool.any_available() {
            if let Some(backup) = self.backup.get().and_then(Weak::upgrade) {
                // The backup's own `Host`, when it names one (its TLS name does).
                let host = backup
                    .host_header
                    .as_deref()
                    .and_then(|h| http::HeaderValue::from_str(h).ok());
                let with_host = |mut r: Request<Body>| {
                    if let Some(v) = &host {
                        r.headers_mut().insert(http::header::HOST, v.clone());
                    }
                    r
                };
                let again_here = again.map(|make| move || make().map(with_host));
                let again_here = again_here.as_ref().map(|f| f as Again<'_>);
                let panic = !backup.pool.any_available();
                return backup
                    .send_here(with_host(req), upload, panic, again_here)
                    .await;
            }
            // No address available and no backup: try them all anyway.
            return self.send_here(req, upload, true, again).await;
        }
        self.send_here(req, upload, false, again).await
    }

    /// Send to one of this origin's addresses (any of them, in `panic`).
    async fn send_here(
        &self,
        mut req: Request<Body>,
        upload: Option<&Upload>,
        panic: bool,
        again: Option<Again<'_>>,
    ) -> Result<Response<Body>, EdgeError> {
        let start = tokio::time::Instant::now();
        // The hash key (path and query), copied only for a pool that hashes.
        let key = if self.pool.hashes() {
            req.uri()
                .path_and_query()
                .map_or(&b"/"[..], |pq| pq.as_str().as_bytes())
                .to_vec()
        } else {
            Vec::new()
        };
        let taken = self
            .pool
            .pick(&key, None, panic)
            .ok_or_else(|| EdgeError::OriginDown {
                origin: self.name.clone(),
                message: "no address available".into(),
            })?;
        self.aim(&mut req, taken.member)?;
        let first_byte = self.timeouts.first_byte.min(self.timeouts.total);
        let blame_client = || upload.and_then(Upload::failure).map(EdgeError::ClientBody);
        let mut used = taken.index;
        let answer = self.exchange(&taken, req, &key, (panic, again), &mut used);
        let first_byte_timer = async {
            if let Some(u) = upload {
                u.finished().await;
            }
            tokio::time::sleep(first_byte).await;
        };
        let result = tokio::select! {
            r = answer => Some(r),
            _ = first_byte_timer => None,
            _ = tokio::time::sleep(self.timeouts.total) => None,
        };
        let failed = |e: EdgeError| {
            if !matches!(e, EdgeError::ClientBody(_)) {
                self.pool.record(used, pool::Outcome::Failed);
            }
            Err(e)
        };
        let resp = match result {
            None => {
                if let Some(u) = upload
                    && u.done_at().is_none()
                    && u.waiting_on_client()
                {
                    // Still uploading, and waiting for the client's next piece: the
                    // client is slow, not the origin. (An origin that stopped
                    // reading leaves the body waiting on it: its timeout.)
                    return Err(EdgeError::ClientBody(UploadFailure::Stalled));
                }
                return failed(EdgeError::OriginTimeout {
                    origin: self.name.clone(),
                    what: "first byte",
                });
            }
            Some(Err(e)) => {
                if let Some(e) = blame_client() {
                    return Err(e);
                }
                return failed(self.failure(&e));
            }
            Some(Ok(resp)) => resp,
        };
        let gateway_error = matches!(resp.status().as_u16(), 502..=504);
        self.pool.record(
            used,
            if gateway_error {
                pool::Outcome::Failed
            } else {
                pool::Outcome::Answered
            },
        );
        let deadline = start + self.timeouts.total;
        Ok(resp.map(|b| boxed(DeadlineBody::new(boxed(b), deadline))))
    }

    /// Point `req` (its URI holds path and query) at `member`.
    fn aim(&self, req: &mut Request<Body>, member: &pool::Member) -> Result<(), EdgeError> {
        let mut uri = std::mem::take(req.uri_mut()).into_parts();
        uri.scheme = Some(self.scheme.clone());
        uri.authority = member.uri_authority.clone();
        if uri.path_and_query.is_none() {
            uri.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
        }
        *req.uri_mut() = Uri::from_parts(uri).map_err(|e| {
            EdgeError::BadRequest(format!(
                "cannot form the origin URI for `{}`: {e}",
                member.authority
            ))
        })?;
        *req.version_mut() = http::Version::HTTP_11;
        Ok(())
    }

    /// The error an exchange failure is.
    fn failure(&self, e: &hyper_util::client::legacy::Error) -> EdgeError {
        let message = error_chain(e);
        if message.contains("timed out") || message.contains("timeout") {
            return EdgeError::OriginTimeout {
                origin: self.name.clone(),
                what: "connect",
            };
        }
        EdgeError::OriginDown {
            origin: self.name.clone(),
            message,
        }
    }
}

impl OriginClient {
    /// One exchange through the pool; an idempotent request without a body whose
    /// exchange fails before any answer byte (a reused connection the origin was
    /// closing, most often) is sent once more on a new connection, as nginx's
    /// `proxy_next_upstream error`. Anything else is never sent twice.
    ///
    /// A connection that cannot be made sent nothing: then the request (an
    /// idempotent one without a body) goes to another address of the pool if
    /// there is one, and `used` says which.
    async fn exchange(
        &self,
        taken: &pool::Taken<'_>,
        req: Request<Body>,
        key: &[u8],
        (panic, again): (bool, Option<Again<'_>>),
        used: &mut usize,
    ) -> Result<Response<hyper::body::Incoming>, hyper_util::client::legacy::Error> {
        let again = again.filter(|_| may_send_twice(&req));
        let failed = match self.client.request(req).await {
            Err(e) => e,
            done => return done,
        };
        let Some(make) = again else {
            return Err(failed);
        };
        // The request made anew and aimed at `member`.
        let anew = |member: &pool::Member| {
            let mut r = make()?;
            self.aim(&mut r, member).ok()?;
            Some(r)
        };
        let failed = if failed.is_connect() {
            failed
        } else {
            // A reused connection failed: once more on a new one, same address.
            let Some(r) = anew(taken.member) else {
                return Err(failed);
            };
            self.retries.inc();
            tracing::debug!(
                origin = %self.name,
                "sent again on a new connection: {}",
                error_chain(&failed)
            );
            match self.fresh.request(r).await {
                Err(e) if e.is_connect() => e,
                done => return done,
            }
        };
        // Nothing was sent: another address of the pool, if there is one.
        let Some(other) = self.pool.pick(key, Some(taken.index), panic) else {
            return Err(failed);
        };
        self.pool.record(taken.index, pool::Outcome::Failed);
        let Some(r) = anew(other.member) else {
            return Err(failed);
        };
        *used = other.index;
        self.retries.inc();
        tracing::debug!(
            origin = %self.name,
            from = %taken.member.authority,
            to = %other.member.authority,
            "cannot connect; sent to another address: {}",
            error_chain(&failed)
        );
        self.client.request(r).await
    }
}

/// Check each address of `pool` every `h.interval` until the pool is dropped.
async fn check_health(
    pool: Weak<pool::Pool>,
    client: Client<TimedConnector, Body>,
    scheme: http::uri::Scheme,
    host_header: Option<String>,
    h: HealthSettings,
) {
    loop {
        tokio::time::sleep(h.interval).await;
        let Some(pool) = pool.upgrade() else {
            return;
        };
        for (i, m) in pool.members.iter().enumerate() {
            let uri = format!("{scheme}://{}{}", m.authority, h.path);
            let Ok(mut req) = Request::get(uri).body(crate::body::empty()) else {
                pool.checked(i, false, h.healthy, h.unhealthy);
                continue;
            };
            if let Some(v) = host_header
                .as_deref()
                .and_then(|v| http::HeaderValue::from_str(v).ok())
            {
                req.headers_mut().insert(http::header::HOST, v);
            }
            let passed = match tokio::time::timeout(h.timeout, client.request(req)).await {
                Ok(Ok(resp)) => resp.status().is_success() || resp.status().is_redirection(),
                _ => false,
            };
            pool.checked(i, passed, h.healthy, h.unhealthy);
        }
    }
}

/// When the origin had the last byte of a request and when its first answer byte was
/// read, as seen at the connection's socket (the process's
/// [`crate::clock::monotonic_ns`]): in every response's extensions. The difference is
/// the origin's latency without connection set-up and without the time the answer
/// then waited for this node's tasks to hand it on.
#[derive(Debug, Clone, Default)]
pub struct ExchangeTiming(Arc<ExchangeClock>);

/// [`ExchangeTiming`]'s instants (0: not yet) and the latest exchange's latency.
#[derive(Debug, Default)]
pub struct ExchangeClock {
    sent_ns: AtomicU64,
    answered_ns: AtomicU64,
    latency_ns: AtomicU64,
}

impl ExchangeTiming {
    /// Request bytes went out: the exchange's clock starts (again, while the request
    /// is still being written: its last byte counts).
    fn wrote(&self) {
        self.0.answered_ns.store(0, Ordering::Relaxed);
        self.0
            .sent_ns
            .store(crate::clock::monotonic_ns(), Ordering::Release);
    }

    /// The first answer byte of the exchange came: its latency is kept.
    fn answered(&self) {
        let now = crate::clock::monotonic_ns();
        self.0.answered_ns.store(now, Ordering::Relaxed);
        let sent = self.0.sent_ns.load(Ordering::Relaxed);
        self.0
            .latency_ns
            .store(now.saturating_sub(sent).max(1), Ordering::Release);
    }

    /// The latency at the socket of the connection's latest answered exchange: the
    /// response's own (or, when the connection was already reused by the time it is
    /// read, the next one's, as good a sample of the origin), if any was answered.
    pub fn latency_ns(&self) -> Option<u64> {
        Some(self.0.latency_ns.load(Ordering::Acquire)).filter(|&l| l > 0)
    }
}

/// [`HttpConnector`], then a TLS handshake when the origin speaks TLS; each
/// connection's [`ExchangeTiming`] attached to the responses that come on it.
#[derive(Clone)]
pub struct TimedConnector {
    http: HttpConnector,
    tls: Option<TlsTo>,
}

/// How to shake hands with a TLS origin.
#[derive(Clone)]
struct TlsTo {
    connector: tokio_rustls::TlsConnector,
    name: ServerName<'static>,
    /// The handshake's own bound (the connect timeout, again).
    timeout: Duration,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<Uri> for TimedConnector {
    type Response = TimedStream;
    type Error = BoxError;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<TimedStream, BoxError>> + Send>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let connecting = self.http.call(dst);
        let tls = self.tls.clone();
        Box::pin(async move {
            let tcp = connecting.await?.into_inner();
            let transport = match tls {
                None => Transport::Plain(tcp),
                Some(t) => {
                    let handshake = t.connector.connect(t.name.clone(), tcp);
                    let stream = tokio::time::timeout(t.timeout, handshake)
                        .await
                        .map_err(|_| "TLS handshake timed out")?
                        .map_err(|e| format!("TLS handshake with `{}`: {e}", t.name.to_str()))?;
                    Transport::Tls(Box::new(stream))
                }
            };
            Ok(TimedStream {
                io: hyper_util::rt::TokioIo::new(transport),
                timing: ExchangeTiming::default(),
            })
        })
    }
}

/// A connection to an origin: plain TCP or TLS over it.
pub enum Transport {
    /// Plain TCP.
    Plain(tokio::net::TcpStream),
    /// TLS over TCP.
    Tls(Box<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>),
}

impl tokio::io::AsyncRead for Transport {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Transport::Tls(s) => std::pin::Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for Transport {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            Transport::Tls(s) => std::pin::Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => std::pin::Pin::new(s).poll_flush(cx),
            Transport::Tls(s) => std::pin::Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Transport::Tls(s) => std::pin::Pin::new(s).poll_shutdown(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Transport::Plain(s) => s.is_write_vectored(),
            Transport::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(s) => std::pin::Pin::new(s).poll_write_vectored(cx, bufs),
            Transport::Tls(s) => std::pin::Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }
}

/// A connection made by [`TimedConnector`]: HTTP/1.1 to the origin carries one
/// exchange at a time, so a write after a read starts the next one.
pub struct TimedStream {
    io: hyper_util::rt::TokioIo<Transport>,
    timing: ExchangeTiming,
}

impl hyper_util::client::legacy::connect::Connection for TimedStream {
    fn connected(&self) -> hyper_util::client::legacy::connect::Connected {
        let (tcp, h2) = match self.io.inner() {
            Transport::Plain(s) => (s, false),
            Transport::Tls(s) => {
                let (tcp, session) = s.get_ref();
                (tcp, session.alpn_protocol() == Some(b"h2"))
            }
        };
        let connected = tcp.connected().extra(self.timing.clone());
        if h2 {
            connected.negotiated_h2()
        } else {
            connected
        }
    }
}

impl hyper::rt::Read for TimedStream {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = &mut *self;
        let clock = &this.timing.0;
        let waiting = clock.sent_ns.load(Ordering::Relaxed) > 0
            && clock.answered_ns.load(Ordering::Relaxed) == 0;
        if !waiting || buf.remaining() == 0 {
            return std::pin::Pin::new(&mut this.io).poll_read(cx, buf);
        }
        // The exchange's first read: through a small buffer of our own, so that only
        // a read that brought bytes (not a wake-up, not the origin closing) stops the
        // clock.
        let mut first = [0u8; 4096];
        let want = buf.remaining().min(first.len());
        let mut read = tokio::io::ReadBuf::new(&mut first[..want]);
        let polled =
            tokio::io::AsyncRead::poll_read(std::pin::Pin::new(this.io.inner_mut()), cx, &mut read);
        if let std::task::Poll::Ready(Ok(())) = &polled
            && !read.filled().is_empty()
        {
            this.timing.answered();
            buf.put_slice(read.filled());
        }
        polled
    }
}

impl hyper::rt::Write for TimedStream {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let polled = std::pin::Pin::new(&mut this.io).poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = &polled
            && *n > 0
        {
            this.timing.wrote();
        }
        polled
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let polled = std::pin::Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        if let std::task::Poll::Ready(Ok(n)) = &polled
            && *n > 0
        {
            this.timing.wrote();
        }
        polled
    }
}

/// Whether `req` may be sent a second time if its exchange fails before any
/// answer byte: only an idempotent request (RFC 9110, 9.2.2) with no body to replay.
fn may_send_twice(req: &Request<Body>) -> bool {
    use http::Method;
    let idempotent = matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    );
    idempotent && http_body::Body::is_end_stream(req.body())
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
