//! The edge cache over real sockets: a node in front of a scripted origin that
//! counts what reaches it. Each RFC 9111 behaviour is a row of a table; then
//! collapsing, hit-for-pass, negative caching, stale copies standing in for a
//! failing origin and for requests the limiter sheds, purges, and the budget.
//!
//! The origin is told what to answer by the query: `h=name:value` adds a header
//! (`+` is a space), `status=N`, `delay=MS`, `etag=TAG` (and then answers a
//! matching `If-None-Match` with 304), `len=N` (a body of N bytes), `body=master` (an
//! HLS multivariant playlist of four renditions). The body names
//! the path and how many times it was fetched, so a test can tell copies apart.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use outpost_tests::{Reply, TestNode, serve_loopback};

/// What the scripted origin saw.
#[derive(Default)]
struct Script {
    /// Fetches per path and query.
    hits: Mutex<HashMap<String, usize>>,
    /// Requests being answered now, and the most at once.
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// Answer every request with 503.
    failing: AtomicBool,
    /// The headers of the last request per target.
    last: Mutex<HashMap<String, HeaderMap>>,
}

struct Origin {
    addr: SocketAddr,
    script: Arc<Script>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Origin {
    async fn start() -> Origin {
        let script = Arc::new(Script::default());
        let s = script.clone();
        let (addr, task) = serve_loopback(move |req| answer(s.clone(), req)).await;
        Origin { addr, script, task }
    }

    /// Fetches of `target` (path and query) so far.
    fn hits(&self, target: &str) -> usize {
        let hits = self.script.hits.lock().expect("hits");
        hits.get(target).copied().unwrap_or(0)
    }

    fn last_header(&self, target: &str, name: &str) -> Option<String> {
        let last = self.script.last.lock().expect("last");
        last.get(target)?
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

fn decode(v: &str) -> String {
    v.replace('+', " ").replace("%22", "\"").replace("%2C", ",")
}

async fn answer(script: Arc<Script>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let n = {
        let mut hits = script.hits.lock().expect("hits");
        let n = hits.entry(target.clone()).or_default();
        *n += 1;
        *n
    };
    script
        .last
        .lock()
        .expect("last")
        .insert(target.clone(), req.headers().clone());
    let now = script.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    script.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let mut resp = Response::new(Full::new(Bytes::new()));
    let mut status = 200;
    let mut delay = 0;
    let mut etag = None;
    let mut len = None;
    for p in req.uri().query().unwrap_or("").split('&') {
        let Some((k, v)) = p.split_once('=') else {
            continue;
        };
        match k {
            "h" => {
                if let Some((name, value)) = decode(v).split_once(':') {
                    let name = http::HeaderName::from_bytes(name.as_bytes()).expect("name");
                    let value = http::HeaderValue::from_str(value).expect("value");
                    resp.headers_mut().append(name, value);
                }
            }
            "status" => status = v.parse().expect("status"),
            "delay" => delay = v.parse().expect("delay"),
            "etag" => etag = Some(format!("\"{v}\"")),
            "len" => len = Some(v.parse::<usize>().expect("len")),
            "body" if v == "master" => len = Some(usize::MAX),
            _ => {}
        }
    }
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    script.in_flight.fetch_sub(1, Ordering::SeqCst);
    if script.failing.load(Ordering::SeqCst) {
        *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        return resp;
    }
    if let Some(tag) = &etag {
        resp.headers_mut()
            .insert(http::header::ETAG, tag.parse().expect("etag"));
        let inm = req.headers().get(http::header::IF_NONE_MATCH);
        if inm.is_some_and(|v| v.as_bytes() == tag.as_bytes()) {
            *resp.status_mut() = StatusCode::NOT_MODIFIED;
            return resp;
        }
    }
    *resp.status_mut() = StatusCode::from_u16(status).expect("status");
    let body = match len {
        Some(usize::MAX) => Bytes::from_static(outpost_tests::MASTER.as_bytes()),
        Some(n) => Bytes::from(vec![b'x'; n]),
        None => Bytes::from(format!("{} #{n}", req.uri().path())),
    };
    *resp.body_mut() = Full::new(body);
    resp
}

/// One origin, one caching route; `route` adds lines to the route (hooks),
/// `extra` top-level tables (guests, `[cache]`, `[limiter]`).
fn node_config(origin: SocketAddr, route: &str, extra: &str) -> String {
    format!(
        r#"
[[listeners]]
address = "127.0.0.1:0"

[origins.main]
address = "{origin}"
first_byte_timeout = "2s"

{extra}

[[routes]]
name = "all"
origin = "main"
{route}
[routes.cache]
negative_ttl = "30s"
stale_if_error = "60s"
"#
    )
}

async fn get(node: &TestNode, target: &str, headers: &[(&str, &str)]) -> Reply {
    let mut b = Request::get(target);
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    node.send(b.body(Full::new(Bytes::new())).expect("request"))
        .await
}

fn status_of(r: &Reply) -> String {
    r.header("cache-status").unwrap_or("").to_string()
}

/// One RFC behaviour: a first request, a second one (with these headers), and
/// what should follow.
struct Row {
    what: &'static str,
    target: &'static str,
    second: &'static [(&'static str, &'static str)],
    /// Origin fetches after both requests.
    fetches: usize,
    /// The second answer's `Cache-Status` starts with this.
    cache_status: &'static str,
}

const ROWS: &[Row] = &[
    Row {
        what: "max-age: the second request is a hit",
        target: "/a?h=cache-control:max-age=60",
        second: &[],
        fetches: 1,
        cache_status: "outpost; hit",
    },
    Row {
        what: "s-maxage wins over max-age for a shared cache",
        target: "/b?h=cache-control:max-age=60,+s-maxage=0",
        second: &[],
        fetches: 2,
        cache_status: "outpost; fwd=",
    },
    Row {
        what: "Expires in the future",
        target: "/c?h=expires:Thu,+01+Jan+2099+00:00:00+GMT",
        second: &[],
        fetches: 1,
        cache_status: "outpost; hit",
    },
    Row {
        what: "no-store is never stored",
        target: "/d?h=cache-control:no-store",
        second: &[],
        fetches: 2,
        cache_status: "outpost; fwd=bypass",
    },
    Row {
        what: "private is not for a shared cache",
        target: "/e?h=cache-control:private,+max-age=60",
        second: &[],
        fetches: 2,
        cache_status: "outpost; fwd=bypass",
    },
    Row {
        what: "Set-Cookie is never stored",
        target: "/f?h=cache-control:max-age=60&h=set-cookie:s=1",
        second: &[],
        fetches: 2,
        cache_status: "outpost; fwd=bypass",
    },
    Row {
        what: "CDN-Cache-Control overrides Cache-Control for the edge",
        target: "/g?h=cache-control:no-store&h=cdn-cache-control:max-age=60",
        second: &[],
        fetches: 1,
        cache_status: "outpost; hit",
    },
    Row {
        what: "Surrogate-Control overrides Cache-Control for the edge",
        target: "/h?h=cache-control:max-age=0&h=surrogate-control:max-age=60",
        second: &[],
        fetches: 1,
        cache_status: "outpost; hit",
    },
    Row {
        what: "CDN-Cache-Control: no-store keeps the edge out",
        target: "/i?h=cache-control:max-age=60&h=cdn-cache-control:no-store",
        second: &[],
        fetches: 2,
        cache_status: "outpost; fwd=bypass",
    },
    Row {
        what: "a client's no-cache is not heeded: it cannot push load onto the origin",
        target: "/j?h=cache-control:max-age=60",
        second: &[("cache-control", "no-cache"), ("pragma", "no-cache")],
        fetches: 1,
        cache_status: "outpost; hit",
    },
    Row {
        what: "Vary: another value of the header is another variant",
        target: "/k?h=cache-control:max-age=60&h=vary:x-tier",
        second: &[("x-tier", "gold")],
        fetches: 2,
        cache_status: "outpost; fwd=",
    },
    Row {
        what: "Vary: * never matches",
        target: "/l?h=cache-control:max-age=60&h=vary:*",
        second: &[],
        fetches: 2,
        cache_status: "outpost; fwd=",
    },
    Row {
        what: "heuristic freshness from Last-Modified",
        target: "/m?h=last-modified:Mon,+01+Jan+2001+00:00:00+GMT",
        second: &[],
        fetches: 1,
        cache_status: "outpost; hit",
    },
    Row {
        what: "no freshness, no validator: not stored",
        target: "/n",
        second: &[],
        fetches: 2,
        cache_status: "outpost; fwd=bypass",
    },
    Row {
        what: "Authorization: not stored without public",
        target: "/o?h=cache-control:max-age=60",
        second: &[("authorization", "Bearer x")],
        fetches: 2,
        cache_status: "outpost; fwd=",
    },
    Row {
        what: "no-cache with an ETag: revalidated, 304 refreshes the copy",
        target: "/p?h=cache-control:no-cache&etag=v1",
        second: &[],
        fetches: 2,
        cache_status: "outpost; fwd=stale; fwd-status=304",
    },
    Row {
        what: "404 is cached with the route's negative TTL",
        target: "/q?status=404",
        second: &[],
        fetches: 1,
        cache_status: "outpost; hit",
    },
    Row {
        what: "an origin error is not cached without error_ttl",
        target: "/r?status=500",
        second: &[],
        fetches: 2,
        cache_status: "outpost; fwd=",
    },
];

#[tokio::test]
async fn each_rfc_9111_behaviour_over_real_sockets() {
    let origin = Origin::start().await;
    let node = TestNode::new(&node_config(origin.addr, "", "")).await;
    let mut failures = Vec::new();
    for row in ROWS {
        // Authorization on the first request too, for that row.
        let first_headers: &[(&str, &str)] = if row.what.starts_with("Authorization") {
            row.second
        } else {
            &[]
        };
        let first = get(&node, row.target, first_headers).await;
        let second = get(&node, row.target, row.second).await;
        let fetches = origin.hits(row.target);
        let status = status_of(&second);
        if fetches != row.fetches || !status.starts_with(row.cache_status) {
            failures.push(format!(
                "{}: {fetches} fetches (want {}), second Cache-Status `{status}` (want `{}…`), first `{}`",
                row.what,
                row.fetches,
                row.cache_status,
                status_of(&first)
            ));
        }
        // The edge's own directives never reach a client.
        for h in ["cdn-cache-control", "surrogate-control", "surrogate-key"] {
            assert!(
                second.header(h).is_none(),
                "{}: {h} was forwarded",
                row.what
            );
        }
        if row.cache_status == "outpost; hit" {
            assert!(
                second.header("age").is_some(),
                "{}: a hit has Age",
                row.what
            );
            assert_eq!(
                first.body, second.body,
                "{}: a hit is the stored body",
                row.what
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The revalidation asked the origin with the stored validator.
    let inm = origin.last_header("/p?h=cache-control:no-cache&etag=v1", "if-none-match");
    assert_eq!(inm.as_deref(), Some("\"v1\""));
}

#[tokio::test]
async fn head_range_and_conditionals_are_answered_from_the_stored_object() {
    let origin = Origin::start().await;
    let node = TestNode::new(&node_config(origin.addr, "", "")).await;
    let t = "/obj?h=cache-control:max-age=60&etag=e1&len=1000";
    let full = get(&node, t, &[]).await;
    assert_eq!(full.body.len(), 1000);
    let head = node
        .send(
            Request::head(t)
                .body(Full::new(Bytes::new()))
                .expect("head"),
        )
        .await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-length"), Some("1000"));
    let part = get(&node, t, &[("range", "bytes=100-199")]).await;
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.header("content-range"), Some("bytes 100-199/1000"));
    assert_eq!(part.body.len(), 100);
    let suffix = get(&node, t, &[("range", "bytes=-10")]).await;
    assert_eq!(suffix.header("content-range"), Some("bytes 990-999/1000"));
    let past = get(&node, t, &[("range", "bytes=5000-")]).await;
    assert_eq!(past.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(past.header("content-range"), Some("bytes */1000"));
    let same = get(&node, t, &[("if-none-match", "\"e1\"")]).await;
    assert_eq!(same.status, StatusCode::NOT_MODIFIED);
    assert!(same.body.is_empty());
    let other = get(&node, t, &[("if-none-match", "\"e0\"")]).await;
    assert_eq!(other.status, StatusCode::OK);
    assert_eq!(origin.hits(t), 1, "all of it from one fetch");
}

#[tokio::test]
async fn an_unsafe_method_invalidates_what_it_changed() {
    let origin = Origin::start().await;
    let node = TestNode::new(&node_config(origin.addr, "", "")).await;
    let t = "/doc?h=cache-control:max-age=60";
    get(&node, t, &[]).await;
    assert!(status_of(&get(&node, t, &[]).await).contains("hit"));
    let post = node
        .send(
            Request::post(t)
                .body(Full::new(Bytes::from("x")))
                .expect("post"),
        )
        .await;
    assert_eq!(post.status, StatusCode::OK);
    let after = get(&node, t, &[]).await;
    assert!(
        status_of(&after).contains("fwd=miss"),
        "{}",
        status_of(&after)
    );
    assert_eq!(origin.hits(t), 3);
}

#[tokio::test]
async fn concurrent_misses_make_one_origin_request() {
    let origin = Origin::start().await;
    let node = Arc::new(TestNode::new(&node_config(origin.addr, "", "")).await);
    let t = "/popular?h=cache-control:max-age=60&delay=300&len=50000";
    let replies = fan_out(&node, t, 200).await;
    assert!(replies.iter().all(|(s, len)| *s == 200 && *len == 50_000));
    assert_eq!(origin.hits(t), 1, "one origin request for 200 viewers");
    // A missing object: the storm reaches the origin once too.
    let missing = "/missing?status=404&delay=200";
    let replies = fan_out(&node, missing, 200).await;
    assert!(replies.iter().all(|(s, _)| *s == 404));
    assert_eq!(origin.hits(missing), 1);
}

#[tokio::test]
async fn uncacheable_objects_are_not_serialised_behind_a_leader() {
    let origin = Origin::start().await;
    // No admission limit: the test is about the cache's own serialisation.
    let config = node_config(origin.addr, "", "[limiter]\nenabled = false\n");
    let node = Arc::new(TestNode::new(&config).await);
    let t = "/personal?h=cache-control:no-store&delay=300";
    let start = Instant::now();
    let replies = fan_out(&node, t, 200).await;
    let took = start.elapsed();
    assert!(replies.iter().all(|(s, _)| *s == 200));
    assert_eq!(origin.hits(t), 200, "every request reaches the origin");
    // One leader's round trip, then everyone else in parallel (hit-for-pass):
    // serialised, this would take 200 × 300 ms.
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(
        origin.script.max_in_flight.load(Ordering::SeqCst) >= 50,
        "the waiters went to the origin in parallel"
    );
}

async fn fan_out(node: &Arc<TestNode>, target: &'static str, n: usize) -> Vec<(u16, usize)> {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let node = node.clone();
        tasks.push(tokio::spawn(async move {
            let r = get(&node, target, &[]).await;
            (r.status.as_u16(), r.body.len())
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("request task"));
    }
    out
}

#[tokio::test]
async fn a_stale_copy_stands_in_for_a_failing_origin() {
    let origin = Origin::start().await;
    let node = TestNode::new(&node_config(origin.addr, "", "")).await;
    let t = "/live.m3u8?h=cache-control:max-age=1";
    let first = get(&node, t, &[]).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    origin.script.failing.store(true, Ordering::SeqCst);
    let stale = get(&node, t, &[]).await;
    assert_eq!(stale.status, StatusCode::OK);
    assert_eq!(stale.body, first.body);
    assert!(
        status_of(&stale).contains("stale-if-error"),
        "{}",
        status_of(&stale)
    );
    // The origin gone altogether: the same.
    drop(origin);
    let gone = get(&node, t, &[]).await;
    assert_eq!(gone.status, StatusCode::OK);
    assert_eq!(gone.body, first.body);
}

#[tokio::test]
async fn stale_copies_are_served_instead_of_shedding() {
    let origin = Origin::start().await;
    let limiter = "[limiter]\ninitial_limit = 1\nmin_limit = 1\nmax_limit = 1\nqueue_size = 1\n";
    let node = Arc::new(TestNode::new(&node_config(origin.addr, "", limiter)).await);
    let targets: Vec<&'static str> = (0..8)
        .map(|i| &*Box::leak(format!("/s{i}?h=cache-control:max-age=1&delay=400").into_boxed_str()))
        .collect();
    for t in &targets {
        assert_eq!(get(&node, t, &[]).await.status, StatusCode::OK);
    }
    tokio::time::sleep(Duration::from_millis(2100)).await;
    // Eight different stale objects at once against a limit of one and a queue of
    // one: without the cache six would be shed.
    let mut tasks = Vec::new();
    for t in targets.clone() {
        let node = node.clone();
        tasks.push(tokio::spawn(async move { get(&node, t, &[]).await }));
    }
    let mut shed_served = 0;
    for t in tasks {
        let r = t.await.expect("task");
        assert_eq!(r.status, StatusCode::OK, "{}", status_of(&r));
        shed_served += usize::from(status_of(&r).contains("detail=shed"));
    }
    assert!(
        shed_served >= 4,
        "{shed_served} stale answers for shed requests"
    );
}

/// A plain HTTP client, for what [`TestNode`]'s own does not do (streaming,
/// the admin API).
fn raw_client() -> hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
> {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http()
}

/// `POST /cache/purge?QUERY` on the node's admin API: how many keys it purged.
async fn purge(node: &TestNode, query: &str) -> u64 {
    let admin = node.running.admin.expect("admin");
    let client = raw_client();
    let req = Request::post(format!("http://{admin}/cache/purge?{query}"))
        .body(Full::new(Bytes::new()))
        .expect("request");
    let resp = client.request(req).await.expect("the admin API answers");
    assert_eq!(resp.status(), StatusCode::OK);
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .expect("body")
        .to_bytes();
    let reply: serde_json::Value = serde_json::from_slice(&body).expect("json");
    reply["purged"].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn purges_by_key_prefix_and_tag() {
    let origin = Origin::start().await;
    let node = TestNode::new(&node_config(origin.addr, "", "")).await;
    let a = "/v/a?h=cache-control:max-age=60&h=surrogate-key:show-1+all";
    let b = "/v/b?h=cache-control:max-age=60&h=surrogate-key:show-2+all";
    let c = "/w/c?h=cache-control:max-age=60";
    for t in [a, b, c] {
        get(&node, t, &[]).await;
    }
    assert_eq!(purge(&node, "tag=show-1").await, 1);
    assert_eq!(origin.hits(a), 1);
    get(&node, a, &[]).await;
    assert_eq!(origin.hits(a), 2, "purged by tag");
    assert!(
        status_of(&get(&node, b, &[]).await).contains("hit"),
        "untouched"
    );
    let host = format!("127.0.0.1:{}", node.addr.port());
    assert_eq!(purge(&node, &format!("prefix={host}/v/")).await, 2);
    assert_eq!(
        purge(
            &node,
            &format!("key={host}/w/c%3Fh%3Dcache-control:max-age%3D60")
        )
        .await,
        1
    );
    get(&node, c, &[]).await;
    assert_eq!(origin.hits(c), 2, "purged by key");
}

#[tokio::test]
async fn memory_stays_within_the_budget_under_a_working_set_ten_times_its_size() {
    let origin = Origin::start().await;
    let node = TestNode::new(&node_config(
        origin.addr,
        "",
        "[cache]\nmemory_mib = 1\nmax_object_mib = 1\n",
    ))
    .await;
    // 10 MiB of 64 KiB objects through a 1 MiB cache.
    for i in 0..160 {
        let t = format!("/big/{i}?h=cache-control:max-age=60&len=65536");
        assert_eq!(get(&node, &t, &[]).await.status, StatusCode::OK);
    }
    let cache = node.running.node().cache.clone().expect("cache");
    assert!(cache.weight() <= 1 << 20, "{} bytes held", cache.weight());
    assert!(cache.len() >= 4, "still holds objects: {}", cache.len());
    let metrics = node.metrics().await;
    assert!(
        metrics.contains("outpost_cache_stored_total 160"),
        "{metrics}"
    );
    let evicted: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("outpost_cache_evicted_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(
        evicted + cache.len() as u64 >= 150,
        "{evicted} evicted, {} held",
        cache.len()
    );
}

/// A live HLS origin: a media playlist whose newest segment changes every 2 s
/// (`Cache-Control: max-age=1`), and its segments (cacheable for an hour). It
/// counts the requests for each path.
async fn live_origin() -> (
    SocketAddr,
    Arc<Mutex<HashMap<String, usize>>>,
    tokio::task::JoinHandle<()>,
) {
    let counts: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let c = counts.clone();
    let (addr, task) = serve_loopback(move |req: Request<Incoming>| {
        let c = c.clone();
        async move {
            let path = req.uri().path().to_string();
            *c.lock().expect("counts").entry(path.clone()).or_default() += 1;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("time")
                .as_secs();
            let (cc, body) = if path == "/live/index.m3u8" {
                let newest = now / 2;
                let mut p = format!(
                    "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:{}\n",
                    newest - 2
                );
                for n in newest - 2..=newest {
                    p.push_str(&format!("#EXTINF:2.000,\nseg-{n}.ts\n"));
                }
                ("public, max-age=1", Bytes::from(p))
            } else {
                ("public, max-age=3600", Bytes::from(vec![0x47u8; 20_000]))
            };
            let mut r = Response::new(Full::new(body));
            r.headers_mut()
                .insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static(cc));
            r
        }
    })
    .await;
    (addr, counts, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_viewers_of_a_live_stream_reach_the_origin_once_per_object() {
    let (origin, counts, task) = live_origin().await;
    let node = Arc::new(TestNode::new(&node_config(origin, "", "")).await);
    let secs = 6;
    let until = Instant::now() + Duration::from_secs(secs);
    let mut viewers = Vec::new();
    for v in 0..500u64 {
        let node = node.clone();
        viewers.push(tokio::spawn(async move {
            // Viewers join over the first second, then poll every second.
            tokio::time::sleep(Duration::from_millis(v * 2)).await;
            let mut last = String::new();
            let mut failures = 0;
            while Instant::now() < until {
                let playlist = get(&node, "/live/index.m3u8", &[]).await;
                failures += usize::from(playlist.status != StatusCode::OK);
                let newest = playlist
                    .text()
                    .lines()
                    .rfind(|l| l.ends_with(".ts"))
                    .unwrap_or_default()
                    .to_string();
                if !newest.is_empty() && newest != last {
                    let seg = get(&node, &format!("/live/{newest}"), &[]).await;
                    failures +=
                        usize::from(seg.status != StatusCode::OK || seg.body.len() != 20_000);
                    last = newest;
                }
                tokio::time::sleep(Duration::from_millis(1000)).await;
            }
            failures
        }));
    }
    let mut failures = 0;
    for v in viewers {
        failures += v.await.expect("viewer");
    }
    task.abort();
    assert_eq!(failures, 0, "every viewer got every answer");
    let counts = counts.lock().expect("counts").clone();
    let playlist = counts.get("/live/index.m3u8").copied().unwrap_or(0);
    let segments: Vec<(&String, &usize)> =
        counts.iter().filter(|(p, _)| p.ends_with(".ts")).collect();
    assert!(segments.len() >= 3, "{counts:?}");
    assert!(
        segments.iter().all(|(_, n)| **n == 1),
        "every segment reached the origin once: {segments:?}"
    );
    // Fresh for a second: at most one fetch per second of the test (and the one
    // in flight when it ends).
    assert!(
        playlist <= secs as usize + 2,
        "{playlist} playlist fetches in {secs} s"
    );
}

/// A browser's hits on a stored playlist are compressed once, not per hit: the
/// copy keeps its encoding. With response guests that reshape the body per
/// viewer, each viewer still gets its own shape, compressed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hits_reuse_the_copys_encoding_unless_a_guest_reshapes_the_body() {
    let origin = Origin::start().await;
    let node = TestNode::new(&node_config(origin.addr, "", "")).await;
    let playlist = "/live.m3u8?h=cache-control:max-age=60&h=content-type:application/vnd.apple.mpegurl&body=master";
    let br = [("accept-encoding", "gzip, deflate, br, zstd")];
    let first = get(&node, playlist, &br).await;
    let hits = [
        get(&node, playlist, &br).await,
        get(&node, playlist, &br).await,
    ];
    let plain = get(&node, playlist, &[]).await;
    assert_eq!(origin.hits(playlist), 1);
    for h in &hits {
        assert!(status_of(h).contains("hit"), "{}", status_of(h));
        assert_eq!(h.header("content-encoding"), Some("br"));
        assert_eq!(
            h.header("content-length"),
            Some(h.body.len().to_string().as_str())
        );
        assert_eq!(h.body, hits[0].body);
        assert_eq!(
            outpost_tests::decode_as(Some("br"), &h.body),
            plain.body.to_vec()
        );
    }
    assert_eq!(
        outpost_tests::decode_as(first.header("content-encoding"), &first.body),
        plain.body.to_vec()
    );

    // Shaped per viewer by the rendition guest: the kept encoding is not used.
    let guest = "[guests.rendition]\nwasm = \"builtin:rendition\"\n[guests.rendition.config]\n\"class.mobile.max_height\" = 540\n";
    let route = "response = [\"rendition\"]\ntransform = [\"application/vnd.apple.mpegurl\"]";
    let node = TestNode::new(&node_config(origin.addr, route, guest)).await;
    let master = "/shaped.m3u8?h=cache-control:max-age=60&h=content-type:application/vnd.apple.mpegurl&body=master";
    let variants = |r: &Reply| {
        String::from_utf8(outpost_tests::decode_as(
            r.header("content-encoding"),
            &r.body,
        ))
        .expect("text")
        .matches("#EXT-X-STREAM-INF")
        .count()
    };
    for _ in 0..2 {
        let desktop = get(&node, master, &[br[0], ("x-client-class", "desktop")]).await;
        let mobile = get(&node, master, &[br[0], ("x-client-class", "mobile")]).await;
        assert_eq!(variants(&desktop), 4);
        assert_eq!(variants(&mobile), 2);
    }
    assert_eq!(origin.hits(master), 1);
}

#[tokio::test]
async fn viewers_of_different_classes_get_differently_shaped_masters_from_one_stored_master() {
    let origin = Origin::start().await;
    let guest = "[guests.rendition]\nwasm = \"builtin:rendition\"\n[guests.rendition.config]\n\"class.mobile.max_height\" = 540\n";
    let route = "response = [\"rendition\"]\ntransform = [\"application/vnd.apple.mpegurl\"]";
    let config = node_config(origin.addr, route, guest);
    let node = TestNode::new(&config).await;
    let master = "/master.m3u8?h=cache-control:max-age=60&h=content-type:application/vnd.apple.mpegurl&body=master";
    let variants = |r: &Reply| r.text().matches("#EXT-X-STREAM-INF").count();
    let desktop = get(&node, master, &[("x-client-class", "desktop")]).await;
    let mobile = get(&node, master, &[("x-client-class", "mobile")]).await;
    let desktop_again = get(&node, master, &[("x-client-class", "desktop")]).await;
    assert_eq!(origin.hits(master), 1, "one stored master");
    assert!(status_of(&mobile).contains("hit"), "{}", status_of(&mobile));
    assert_eq!(variants(&desktop), 4, "{}", desktop.text());
    assert_eq!(variants(&mobile), 2, "{}", mobile.text());
    assert_eq!(desktop_again.body, desktop.body);
}

#[tokio::test]
async fn the_disk_tier_serves_after_a_restart() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let extra = format!(
        "[cache]\ndisk_dir = \"{}\"\ndisk_mib = 64\n",
        dir.path().display()
    );
    // The key holds the host the client addressed: the same before and after.
    const HOST: &[(&str, &str)] = &[("host", "video.example")];
    let t = "/vod/seg-1.ts?h=cache-control:max-age=3600&h=surrogate-key:vod&len=300000";
    let first = {
        let node = TestNode::new(&node_config(origin.addr, "", &extra)).await;
        let r = get(&node, t, HOST).await;
        // The write to disk happens beside the response.
        for _ in 0..100 {
            let whole = std::fs::read_dir(dir.path())
                .expect("dir")
                .filter_map(Result::ok)
                .any(|e| !e.file_name().to_string_lossy().ends_with(".tmp"));
            if whole {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        r
    };
    // A new process, in effect: an empty memory tier over the same directory.
    let node = TestNode::new(&node_config(origin.addr, "", &extra)).await;
    let again = get(&node, t, HOST).await;
    assert_eq!(origin.hits(t), 1, "served from disk: {}", status_of(&again));
    assert!(
        status_of(&again).starts_with("outpost; hit"),
        "{}",
        status_of(&again)
    );
    assert_eq!(again.body, first.body);
    assert!(again.header("age").is_some());
    let metrics = node.metrics().await;
    assert!(
        metrics.contains("outpost_cache_disk_reads_total 1"),
        "{metrics}"
    );
    // A purge by tag reaches the disk too.
    assert_eq!(purge(&node, "tag=vod").await, 1);
    drop(node);
    let node = TestNode::new(&node_config(origin.addr, "", &extra)).await;
    get(&node, t, HOST).await;
    assert_eq!(origin.hits(t), 2, "purged from disk too");
}

#[tokio::test]
async fn guests_steer_the_key_the_bypass_and_what_is_stored() {
    let origin = Origin::start().await;
    let guests = format!(
        "[guests.req]\nwasm = \"{}\"\n[guests.resp]\nwasm = \"{}\"\n",
        outpost_tests::guest_wasm("cache-request").display(),
        outpost_tests::guest_wasm("cache-response").display(),
    );
    let route = "request = [\"req\"]\nresponse = [\"resp\"]";
    let config = node_config(origin.addr, route, &guests);
    let node = TestNode::new(&config).await;
    let cacheable = "h=cache-control:max-age=60";

    // One key chosen by the guest: different URLs, one stored object.
    let a = format!("/a?{cacheable}&cache-key=shared");
    let b = format!("/b?{cacheable}&cache-key=shared");
    let first = get(&node, &a, &[]).await;
    let second = get(&node, &b, &[]).await;
    assert_eq!(
        origin.hits(&a) + origin.hits(&b),
        1,
        "{}",
        status_of(&second)
    );
    assert_eq!(first.body, second.body);
    // The guest's fields reach neither the origin nor the client.
    assert!(origin.last_header(&a, "outpost-cache-key").is_none());
    assert!(second.header("outpost-cache-key").is_none());

    // Bypass: neither looked up nor stored.
    let by = format!("/by?{cacheable}&cache=bypass");
    get(&node, &by, &[]).await;
    let again = get(&node, &by, &[]).await;
    assert_eq!(origin.hits(&by), 2);
    assert!(
        status_of(&again).contains("fwd=bypass"),
        "{}",
        status_of(&again)
    );

    // A request guest's lifetime stores what the origin said not to.
    let forced = "/forced?h=cache-control:no-store&cache-ttl=60";
    get(&node, forced, &[]).await;
    assert!(status_of(&get(&node, forced, &[]).await).contains("hit"));
    assert_eq!(origin.hits(forced), 1);

    // A response guest keeps a cacheable response out.
    let kept_out = format!("/out?{cacheable}&store=no");
    let r = get(&node, &kept_out, &[]).await;
    assert!(status_of(&r).contains("detail=guest"), "{}", status_of(&r));
    get(&node, &kept_out, &[]).await;
    assert_eq!(origin.hits(&kept_out), 2);

    // A response guest's lifetime: stored for 1 s instead of 60.
    let short = format!("/short?{cacheable}&store-ttl=1");
    get(&node, &short, &[]).await;
    assert!(status_of(&get(&node, &short, &[]).await).contains("hit"));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    get(&node, &short, &[]).await;
    assert_eq!(origin.hits(&short), 2, "expired after the guest's lifetime");

    // A client cannot steer the cache by sending the fields itself.
    let sneaky = format!("/sneaky?{cacheable}");
    get(&node, &sneaky, &[("outpost-cache", "bypass")]).await;
    let r = get(&node, &sneaky, &[("outpost-cache", "bypass")]).await;
    assert!(status_of(&r).contains("hit"), "{}", status_of(&r));
}

/// An origin that sends a 200,000-byte object in 10 chunks over a second (with a
/// `Content-Length`, or `chunked`), and counts its requests: a raw HTTP/1.1
/// server, so the pace is the test's.
async fn slow_origin(chunked: bool) -> (SocketAddr, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    slow_origin_sized(chunked, 20_000).await
}

/// [`slow_origin`] with chunks of `chunk` bytes.
async fn slow_origin_sized(
    chunked: bool,
    chunk: usize,
) -> (SocketAddr, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                continue;
            };
            let c = c.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                c.fetch_add(1, Ordering::SeqCst);
                let length = if chunked {
                    "transfer-encoding: chunked".to_string()
                } else {
                    format!("content-length: {}", chunk * 10)
                };
                let head = format!(
                    "HTTP/1.1 200 OK\r\n{length}\r\ncache-control: max-age=60\r\ncontent-type: video/mp2t\r\nconnection: close\r\n\r\n"
                );
                if s.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                for i in 0..10u8 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let size = chunk;
                    let mut chunk = Vec::new();
                    if chunked {
                        chunk.extend_from_slice(format!("{size:x}\r\n").as_bytes());
                    }
                    chunk.extend_from_slice(&vec![i; size]);
                    if chunked {
                        chunk.extend_from_slice(b"\r\n");
                    }
                    if s.write_all(&chunk).await.is_err() {
                        return;
                    }
                }
                if chunked {
                    let _ = s.write_all(b"0\r\n\r\n").await;
                }
            });
        }
    });
    (addr, count, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collapsed_requests_are_served_as_the_leader_streams() {
    streamed_to_waiters(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collapsed_requests_stream_a_chunked_response_too() {
    streamed_to_waiters(true).await;
}

async fn streamed_to_waiters(chunked: bool) {
    let (origin, count, task) = slow_origin(chunked).await;
    let node = Arc::new(TestNode::new(&node_config(origin, "", "")).await);
    let client = raw_client();
    let mut viewers = Vec::new();
    for i in 0..30u64 {
        let (node, client) = (node.clone(), client.clone());
        viewers.push(tokio::spawn(async move {
            // The leader first, then the rest while it streams.
            tokio::time::sleep(Duration::from_millis(if i == 0 { 0 } else { 150 })).await;
            let start = Instant::now();
            let uri = format!("http://{}/live/seg-9.ts", node.addr);
            let resp = client
                .request(
                    Request::get(uri)
                        .body(Full::new(Bytes::new()))
                        .expect("req"),
                )
                .await
                .expect("response");
            let head_at = start.elapsed();
            if i == 0 {
                // The leader's viewer leaves mid-object, once the others are
                // reading along: the node finishes the fetch for them.
                tokio::time::sleep(Duration::from_millis(300)).await;
                drop(resp);
                return None;
            }
            let status = resp
                .headers()
                .get("cache-status")
                .map(|v| v.to_str().unwrap_or("").to_string());
            let body = http_body_util::BodyExt::collect(resp.into_body())
                .await
                .expect("whole body")
                .to_bytes();
            Some((head_at, status.unwrap_or_default(), body))
        }));
    }
    let mut streamed = 0;
    for v in viewers {
        let Some((head_at, status, body)) = v.await.expect("viewer") else {
            continue;
        };
        assert_eq!(body.len(), 200_000);
        assert!(
            body.chunks(20_000)
                .enumerate()
                .all(|(i, c)| c.iter().all(|b| usize::from(*b) == i))
        );
        if status.contains("detail=streaming") {
            streamed += 1;
            // Served from the leader's stream: the head at once, not after the
            // whole second the origin takes.
            assert!(head_at < Duration::from_millis(500), "{head_at:?}");
        }
    }
    task.abort();
    assert_eq!(count.load(Ordering::SeqCst), 1, "one origin request");
    assert!(streamed >= 25, "{streamed} of 29 waiters streamed");
    // And it was stored whole, though its first viewer left.
    let r = get(&node, "/live/seg-9.ts", &[]).await;
    assert!(
        status_of(&r).starts_with("outpost; hit"),
        "{}",
        status_of(&r)
    );
    assert_eq!(r.body.len(), 200_000);
}

#[tokio::test]
async fn stale_while_revalidate_answers_at_once_and_refreshes_in_the_background() {
    let origin = Origin::start().await;
    let node = TestNode::new(&node_config(origin.addr, "", "")).await;
    let t = "/playlist.m3u8?h=cache-control:max-age=2,+stale-while-revalidate=30&etag=v1&delay=400";
    let first = get(&node, t, &[]).await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    // Stale, within its window: answered from the cache without waiting for the
    // origin's 400 ms, which is asked in the background.
    let start = Instant::now();
    let stale = get(&node, t, &[]).await;
    let took = start.elapsed();
    assert_eq!(stale.body, first.body);
    assert!(
        status_of(&stale).contains("stale-while-revalidate"),
        "{}",
        status_of(&stale)
    );
    assert!(took < Duration::from_millis(300), "{took:?}");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(origin.hits(t), 2, "one background revalidation");
    assert_eq!(
        origin.last_header(t, "if-none-match").as_deref(),
        Some("\"v1\""),
        "asked with the stored validator"
    );
    // The 304 refreshed the copy: fresh again.
    let fresh = get(&node, t, &[]).await;
    let status = status_of(&fresh);
    assert!(status.starts_with("outpost; hit; ttl="), "{status}");
    assert_eq!(fresh.body, first.body);
    assert_eq!(origin.hits(t), 2);
}

#[tokio::test]
async fn purges_need_the_admin_token_off_loopback_and_the_token_stays_secret() {
    let origin = Origin::start().await;
    // The config puts the admin API on every address (the test binds it to
    // loopback, but the node judges by the config, as an operator wrote it).
    let extra = "[node]\nadmin = \"0.0.0.0:0\"\nadmin_token = \"s3cret-token\"\n";
    let node = TestNode::new(&node_config(origin.addr, "", extra)).await;
    let t = "/doc?h=cache-control:max-age=60";
    get(&node, t, &[]).await;
    let admin = node.running.admin.expect("admin");
    let client = raw_client();
    let send = |auth: Option<&'static str>, path: &'static str, post: bool| {
        let client = client.clone();
        async move {
            let mut b = if post {
                Request::post(format!("http://{admin}{path}"))
            } else {
                Request::get(format!("http://{admin}{path}"))
            };
            if let Some(a) = auth {
                b = b.header("authorization", a);
            }
            let resp = client
                .request(b.body(Full::new(Bytes::new())).expect("request"))
                .await
                .expect("admin answers");
            let status = resp.status();
            let body = http_body_util::BodyExt::collect(resp.into_body())
                .await
                .expect("body")
                .to_bytes();
            (status, String::from_utf8_lossy(&body).into_owned())
        }
    };
    let purge = "/cache/purge?prefix=";
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Bearer s3cret-toke"),
        Some("s3cret-token"),
    ] {
        let (status, _) = send(auth, purge, true).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{auth:?}");
    }
    assert!(
        status_of(&get(&node, t, &[]).await).contains("hit"),
        "nothing was purged"
    );
    let (status, body) = send(Some("Bearer s3cret-token"), purge, true).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(origin.hits(t), 1);
    get(&node, t, &[]).await;
    assert_eq!(origin.hits(t), 2, "purged with the token");
    // A GET does not purge; the config the admin API shows hides the token.
    assert_eq!(
        send(None, purge, false).await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
    let (_, config) = send(None, "/config", false).await;
    assert!(config.contains("admin_token"), "{config}");
    assert!(!config.contains("s3cret-token"), "{config}");
}

#[tokio::test]
async fn odd_and_hostile_exchanges_neither_break_nor_poison_the_cache() {
    let origin = Origin::start().await;
    let route_cache = "";
    let config = node_config(origin.addr, route_cache, "").replace(
        "[routes.cache]\n",
        "[routes.cache]\ndefault_ttl = \"60s\"\nignore_query = [\"utm_*\"]\n",
    );
    let node = TestNode::new(&config).await;

    // Ignored parameters: one object, whatever their values.
    get(&node, "/p?id=7&utm_source=a", &[]).await;
    let r = get(&node, "/p?id=7&utm_source=b", &[]).await;
    assert!(
        status_of(&r).starts_with("outpost; hit"),
        "{}",
        status_of(&r)
    );
    assert_eq!(origin.hits("/p?id=7&utm_source=b"), 0);

    // An answer to an authenticated request is not shared on the route's default
    // lifetime: the next viewer, without credentials, goes to the origin.
    let account = "/account";
    get(&node, account, &[("authorization", "Bearer alice")]).await;
    let anon = get(&node, account, &[]).await;
    assert_eq!(origin.hits(account), 2, "{}", status_of(&anon));

    // A client cannot keep an object out of the cache, nor evict it.
    let t = "/keep?h=cache-control:max-age=60";
    get(&node, t, &[("cache-control", "no-store")]).await;
    let r = get(&node, t, &[("cache-control", "no-store")]).await;
    assert!(
        status_of(&r).starts_with("outpost; hit"),
        "{}",
        status_of(&r)
    );
    assert_eq!(origin.hits(t), 1);

    // An absurd Age from the origin is capped, not a crash of every later hit.
    let aged = "/aged?h=cache-control:max-age=60&h=age:18446744073709551615&etag=a";
    for _ in 0..3 {
        assert_eq!(get(&node, aged, &[]).await.status, StatusCode::OK);
    }

    // Targeted freshness survives a revalidation: CDN-Cache-Control says an hour
    // while Cache-Control says revalidate; after the first 304 it is still an
    // hour for the edge, and clients never see the edge's directive.
    let cdn = "/cdn?h=cache-control:no-cache&h=cdn-cache-control:max-age=0&etag=t";
    get(&node, cdn, &[]).await;
    let refreshed = get(&node, cdn, &[]).await;
    assert!(
        status_of(&refreshed).contains("fwd-status=304"),
        "{}",
        status_of(&refreshed)
    );
    assert_eq!(refreshed.header("cache-control"), Some("no-cache"));
    assert!(refreshed.header("cdn-cache-control").is_none());

    // An origin cannot steer the cache with a guest's fields.
    let o = "/origin-steer?h=cache-control:max-age=60&h=outpost-cache:no-store";
    let first = get(&node, o, &[]).await;
    assert!(first.header("outpost-cache").is_none());
    assert!(status_of(&get(&node, o, &[]).await).starts_with("outpost; hit"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_share_a_revalidation_of_a_copy_with_no_lifetime() {
    let origin = Origin::start().await;
    let node = Arc::new(TestNode::new(&node_config(origin.addr, "", "")).await);
    // A live playlist as many packagers send it: always revalidate, with an ETag.
    let t = "/live.m3u8?h=cache-control:no-cache&etag=p1&delay=300";
    get(&node, t, &[]).await;
    let start = Instant::now();
    let replies = fan_out(&node, t, 50).await;
    assert!(replies.iter().all(|(s, _)| *s == 200));
    // One revalidation for all 50, not one after another.
    assert_eq!(origin.hits(t), 2);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_first_viewer_holds_up_neither_the_others_nor_the_fill() {
    // 30 MB: more than the sockets between the node and a viewer buffer.
    let (origin, count, task) = slow_origin_sized(false, 3_000_000).await;
    let extra = "[cache]\nmemory_mib = 256\nmax_object_mib = 64\n";
    let node = Arc::new(TestNode::new(&node_config(origin, "", extra)).await);
    let client = raw_client();
    let uri = format!("http://{}/live/seg-1.ts", node.addr);
    let get_head = |client: hyper_util::client::legacy::Client<_, Full<Bytes>>, uri: String| async move {
        client
            .request(
                Request::get(uri)
                    .body(Full::new(Bytes::new()))
                    .expect("req"),
            )
            .await
            .expect("response")
    };
    // The first viewer takes the head and then reads nothing for 3 s.
    let stalled = get_head(client.clone(), uri.clone()).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let start = Instant::now();
    let mut others = Vec::new();
    for _ in 0..10 {
        let (client, uri) = (client.clone(), uri.clone());
        others.push(tokio::spawn(async move {
            let resp = get_head(client, uri).await;
            http_body_util::BodyExt::collect(resp.into_body())
                .await
                .expect("body")
                .to_bytes()
                .len()
        }));
    }
    for o in others {
        assert_eq!(o.await.expect("viewer"), 30_000_000);
    }
    // At the origin's pace (1 s), not the stalled viewer's.
    assert!(
        start.elapsed() < Duration::from_millis(2500),
        "{:?}",
        start.elapsed()
    );
    // Stored, though the first viewer has not read it.
    let r = get(&node, "/live/seg-1.ts", &[]).await;
    assert!(
        status_of(&r).starts_with("outpost; hit"),
        "{}",
        status_of(&r)
    );
    assert_eq!(count.load(Ordering::SeqCst), 1);
    drop(stalled);
    task.abort();
}
