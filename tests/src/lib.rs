//! The integration-test harness: a real origin on `127.0.0.1:0`, a real node built
//! from a config, and a real HTTP client. Tests read like sentences:
//!
//! ```ignore
//! let origin = TestOrigin::start().await;
//! let node = TestNode::new(&config_for(&origin)).await;
//! let resp = node.get("/echo?x=1").await;
//! ```

#![allow(missing_docs)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use outpost::{BuildOptions, Config, Running};
use tokio::net::TcpListener;

pub mod burst;
pub mod cdp;
pub mod nginx;
pub mod overload;
pub mod tls;

/// Path of a guest built from `guests/` (crate name, `-` or `_`): a fixture, built
/// by the dev-only `outpost-test-guests`, or a shipped guest.
pub fn guest_wasm(name: &str) -> PathBuf {
    outpost_test_guests::path(name)
}

/// The head a guest gets for `GET http://a.test{path}` from 192.0.2.1 on route
/// `all`, request id 1: for calling a guest directly (`Guest::request`).
pub fn request_head(path: &str) -> outpost::contract::types::RequestHead {
    outpost::contract::types::RequestHead {
        method: "GET".into(),
        scheme: "http".into(),
        authority: "a.test".into(),
        path: path.into(),
        query: String::new(),
        headers: Vec::new(),
        client: outpost::contract::types::ClientInfo {
            ip: "192.0.2.1".into(),
            country: None,
        },
        route: "all".into(),
        id: "1".into(),
    }
}

/// A 4-rendition HLS multivariant playlist, as an origin would serve it.
pub const MASTER: &str = "#EXTM3U\n#EXT-X-VERSION:3\n\
#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360\nlow/index.m3u8\n\
#EXT-X-STREAM-INF:BANDWIDTH=1500000,RESOLUTION=960x540\nmid/index.m3u8\n\
#EXT-X-STREAM-INF:BANDWIDTH=3000000,RESOLUTION=1280x720\nhigh/index.m3u8\n\
#EXT-X-STREAM-INF:BANDWIDTH=6000000,RESOLUTION=1920x1080\ntop/index.m3u8\n";

/// A loopback HTTP server (HTTP/1 and HTTP/2) answering every request with
/// `handle`: the accept-and-serve loop every test origin shares. Returns its
/// address and the accept task (abort it to stop the server).
pub async fn serve_loopback<F, Fut>(handle: F) -> (SocketAddr, tokio::task::JoinHandle<()>)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
    let addr = listener.local_addr().expect("origin addr");
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let handle = handle.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let answer = handle(req);
                    async move { Ok::<_, Infallible>(answer.await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, task)
}

/// A real HTTP origin with a few behaviours, counting the requests it sees.
pub struct TestOrigin {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn origin_handle(req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let reply = |status: u16, ctype: &str, body: Bytes| {
        let mut r = Response::new(Full::new(body));
        *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
        if let Ok(v) = ctype.parse() {
            r.headers_mut().insert(http::header::CONTENT_TYPE, v);
        }
        r
    };
    if path == "/slow" {
        tokio::time::sleep(Duration::from_secs(3)).await;
        return reply(200, "text/plain", Bytes::from_static(b"slow\n"));
    }
    if let Some(code) = path.strip_prefix("/status/") {
        return reply(code.parse().unwrap_or(500), "text/plain", Bytes::new());
    }
    if path.ends_with("master.m3u8") {
        return reply(
            200,
            "application/vnd.apple.mpegurl",
            Bytes::from_static(MASTER.as_bytes()),
        );
    }
    if let Some(n) = path.strip_prefix("/bytes/") {
        let n: usize = n.parse().unwrap_or(0);
        let body: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
        return reply(200, "application/octet-stream", Bytes::from(body));
    }
    if path == "/big" {
        return reply(
            200,
            "application/vnd.apple.mpegurl",
            Bytes::from(vec![b'#'; 4 << 20]),
        );
    }
    // Echo: what the origin received, as JSON.
    let headers: BTreeMap<String, String> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let method = req.method().as_str().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let sum: u64 = body.iter().map(|b| u64::from(*b)).sum();
    let echo = serde_json::json!({
        "method": method,
        "path": path,
        "query": query,
        "headers": headers,
        "body_len": body.len(),
        "body_sum": sum,
    });
    reply(200, "application/json", Bytes::from(echo.to_string()))
}

impl TestOrigin {
    pub async fn start() -> TestOrigin {
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let (addr, task) = serve_loopback(move |req| {
            counter.fetch_add(1, Ordering::SeqCst);
            origin_handle(req)
        })
        .await;
        TestOrigin { addr, hits, task }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// The content type a [`StaticOrigin`] serves for `path`, by extension: the media
/// types players and the `rendition` guest's `transform` route option key on.
pub fn media_content_type(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map_or("", |(_, e)| e);
    match ext.to_ascii_lowercase().as_str() {
        "m3u8" => "application/vnd.apple.mpegurl",
        "mpd" => "application/dash+xml",
        "ts" => "video/mp2t",
        "m4s" => "video/iso.segment",
        "mp4" => "video/mp4",
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript",
        "json" => "application/json",
        _ => "application/octet-stream",
    }
}

/// One request a [`StaticOrigin`] answered.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// The raw query string (still percent-encoded), `""` when none.
    pub query: String,
    pub headers: BTreeMap<String, String>,
    pub status: u16,
}

/// A real static-file origin on `127.0.0.1:0`: serves the files under `root`
/// (`GET`/`HEAD`, `/` is `index.html`) with [`media_content_type`], and logs
/// every request it sees, in order.
pub struct StaticOrigin {
    pub addr: SocketAddr,
    pub root: PathBuf,
    log: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StaticOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn static_handle(
    root: &std::path::Path,
    req: &Request<Incoming>,
) -> (u16, &'static str, Bytes) {
    let path = req.uri().path();
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "index.html" } else { rel };
    // Plain relative paths only: no `..`, no absolute or empty components.
    if rel
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == ".." || c.contains('\\'))
    {
        return (403, "text/plain", Bytes::from_static(b"forbidden\n"));
    }
    if req.method() != http::Method::GET && req.method() != http::Method::HEAD {
        return (405, "text/plain", Bytes::new());
    }
    match tokio::fs::read(root.join(rel)).await {
        Ok(bytes) => (200, media_content_type(rel), Bytes::from(bytes)),
        Err(_) => (404, "text/plain", Bytes::from_static(b"not found\n")),
    }
}

/// Whether `needle` occurs in `haystack`.
fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Field `n` (after the name) of the `name:` line of this process's
/// `/proc/self/status` (Linux), e.g. `("VmHWM", 0)` for the peak RSS in KiB.
pub fn proc_status(name: &str, n: usize) -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.split(':').next() == Some(name))?;
    line.split_whitespace().nth(n + 1).map(str::to_string)
}

/// Encode `data` in the content coding `coding` (`gzip`, `deflate`, `br`, `zstd`)
/// with the codec's own crate, as an origin would.
pub fn encode_as(coding: &str, data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    match coding {
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).expect("gzip");
            e.finish().expect("gzip")
        }
        "deflate" => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).expect("deflate");
            e.finish().expect("deflate")
        }
        "br" => {
            let mut out = Vec::new();
            brotli::BrotliCompress(&mut &data[..], &mut out, &Default::default()).expect("br");
            out
        }
        "zstd" => zstd::stream::encode_all(data, 3).expect("zstd"),
        other => panic!("no such coding in the tests: {other}"),
    }
}

/// Decode `data` from the content coding `coding` (None or `identity`: as is).
pub fn decode_as(coding: Option<&str>, data: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    match coding {
        None | Some("identity") => out.extend_from_slice(data),
        Some("gzip") => {
            flate2::read::GzDecoder::new(data)
                .read_to_end(&mut out)
                .expect("gzip");
        }
        Some("deflate") => {
            flate2::read::ZlibDecoder::new(data)
                .read_to_end(&mut out)
                .expect("deflate");
        }
        Some("br") => {
            brotli::Decompressor::new(data, 4096)
                .read_to_end(&mut out)
                .expect("br");
        }
        Some("zstd") => out = zstd::stream::decode_all(data).expect("zstd"),
        Some(other) => panic!("no such coding in the tests: {other}"),
    }
    out
}

impl StaticOrigin {
    pub async fn start(root: impl Into<PathBuf>) -> StaticOrigin {
        StaticOrigin::start_compressing(root, None).await
    }

    /// Like nginx with `gzip on` for playlists: manifests (HLS, DASH) are sent in
    /// `coding` to a client whose `Accept-Encoding` names it, with `Vary:
    /// Accept-Encoding`; everything else as is, without `Vary`.
    pub async fn start_compressing(
        root: impl Into<PathBuf>,
        coding: Option<&'static str>,
    ) -> StaticOrigin {
        let root: PathBuf = root.into();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (task_root, task_log) = (root.clone(), log.clone());
        let (addr, task) = serve_loopback(move |req: Request<Incoming>| {
            let (root, log) = (task_root.clone(), task_log.clone());
            async move {
                let (status, ctype, body) = static_handle(&root, &req).await;
                let head = req.method() == http::Method::HEAD;
                log.lock().unwrap_or_else(|e| e.into_inner()).push(Seen {
                    method: req.method().as_str().to_string(),
                    path: req.uri().path().to_string(),
                    query: req.uri().query().unwrap_or("").to_string(),
                    headers: req
                        .headers()
                        .iter()
                        .map(|(k, v)| {
                            (
                                k.to_string(),
                                String::from_utf8_lossy(v.as_bytes()).into_owned(),
                            )
                        })
                        .collect(),
                    status,
                });
                let accepts = |c: &str| {
                    req.headers()
                        .get_all(http::header::ACCEPT_ENCODING)
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .flat_map(|v| v.split(','))
                        .any(|t| t.split(';').next().unwrap_or("").trim() == c)
                };
                let manifest =
                    ctype == "application/vnd.apple.mpegurl" || ctype == "application/dash+xml";
                let compress = coding.filter(|c| status == 200 && manifest && accepts(c));
                let plain = body.clone();
                let body = match compress {
                    Some(c) => Bytes::from(encode_as(c, &body)),
                    None => body,
                };
                let len = body.len();
                let mut r = Response::new(Full::new(if head { Bytes::new() } else { body }));
                *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                let h = r.headers_mut();
                // As nginx's `gzip_vary`: only the types it compresses vary.
                if coding.is_some() && manifest {
                    h.insert(
                        http::header::VARY,
                        http::HeaderValue::from_static("Accept-Encoding"),
                    );
                }
                if let Some(c) = compress {
                    h.insert(
                        http::header::CONTENT_ENCODING,
                        http::HeaderValue::from_static(c),
                    );
                }
                h.insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static(ctype),
                );
                h.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
                // Files may be cached for a minute, as a static origin says, but a
                // live media playlist (segments listed, no end) for one second, as
                // live packagers say; the page's reports and errors never.
                let live = ctype == "application/vnd.apple.mpegurl"
                    && contains_bytes(&plain, b"#EXTINF")
                    && !contains_bytes(&plain, b"#EXT-X-ENDLIST");
                let cc = if status != 200 || req.uri().path() == "/report" {
                    "no-store"
                } else if live {
                    "public, max-age=1"
                } else {
                    "public, max-age=60"
                };
                h.insert(
                    http::header::CACHE_CONTROL,
                    http::HeaderValue::from_static(cc),
                );
                r
            }
        })
        .await;
        StaticOrigin {
            addr,
            root,
            log,
            task,
        }
    }

    /// Every request seen so far, in arrival order.
    pub fn requests(&self) -> Vec<Seen> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The bytes of the file at `rel` under the root, as the origin serves them.
    pub fn file(&self, rel: &str) -> Bytes {
        let p = self.root.join(rel.trim_start_matches('/'));
        Bytes::from(std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
    }
}

/// A response as the test sees it.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A running node on loopback, and a client for it.
pub struct TestNode {
    pub running: Running,
    pub addr: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
    _cache: tempfile::TempDir,
}

impl TestNode {
    /// Start a node from config text (its listener and admin address are overridden
    /// to free loopback ports).
    pub async fn new(toml: &str) -> TestNode {
        let cache = tempfile::tempdir().expect("tempdir");
        let config = Config::from_source(edge_config::Source {
            name: "test.toml".into(),
            base_dir: ".".into(),
            text: toml.into(),
        })
        .unwrap_or_else(|e| panic!("test config is invalid:\n{e}"));
        let opts = BuildOptions {
            cache_dir: Some(cache.path().to_path_buf()),
            no_cache: false,
            ..Default::default()
        };
        let running = outpost::start(
            config,
            &opts,
            Some("127.0.0.1:0".parse().expect("addr")),
            Some(Some("127.0.0.1:0".parse().expect("addr"))),
        )
        .await
        .unwrap_or_else(|e| panic!("node did not start: {e:#}"));
        let addr = running.listeners[0];
        TestNode {
            running,
            addr,
            client: Client::builder(TokioExecutor::new()).build_http(),
            _cache: cache,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(
            Request::get(path)
                .body(Full::new(Bytes::new()))
                .expect("request"),
        )
        .await
    }

    pub async fn send(&self, mut req: Request<Full<Bytes>>) -> Reply {
        let pq = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or("/".into());
        *req.uri_mut() = format!("http://{}{}", self.addr, pq).parse().expect("uri");
        let resp = self.client.request(req).await.expect("the node answers");
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// The admin API's `/metrics` text.
    pub async fn metrics(&self) -> String {
        let admin = self.running.admin.expect("admin enabled");
        let resp = self
            .client
            .get(format!("http://{admin}/metrics").parse().expect("uri"))
            .await
            .expect("admin answers");
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        String::from_utf8_lossy(&body).into_owned()
    }
}

/// A config with one origin at `origin`, the given guests and one catch-all route.
/// `guests` are `(name, crate, extra TOML lines)`, `route` is the route's hook lines.
pub fn config(origin: SocketAddr, guests: &[(&str, &str, &str)], route: &str) -> String {
    let mut s = format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\n\n[origins.main]\naddress = \"{origin}\"\nfirst_byte_timeout = \"1s\"\n\n"
    );
    for (name, krate, extra) in guests {
        s.push_str(&format!(
            "[guests.{name}]\nwasm = \"{}\"\n{extra}\n\n",
            guest_wasm(krate).display()
        ));
    }
    s.push_str(&format!(
        "[[routes]]\nname = \"all\"\norigin = \"main\"\n{route}\n"
    ));
    s
}
