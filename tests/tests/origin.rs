//! The node's side of origin connections: reused keep-alive connections that the
//! origin closes, TLS to origins.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use outpost_tests::{TestNode, config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An origin that answers the first request of each connection with keep-alive and
/// closes the connection without a word on the second, after reading it whole: the
/// race a pooled connection loses when the origin's keep-alive timeout fires as the
/// node reuses it, made certain. Records each request line it reads.
async fn closing_origin() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                for n in 0.. {
                    let Some(line) = read_request(&mut s).await else {
                        return;
                    };
                    log.lock().expect("log").push(line);
                    if n > 0 {
                        return; // closed, unanswered
                    }
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                        .await;
                }
            });
        }
    });
    (addr, seen)
}

/// Read one request (head, and a body of its `Content-Length`); its request line.
async fn read_request(s: &mut tokio::net::TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.ok()?;
    head.lines().next().map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_connection_the_origin_closed_is_retried_only_for_idempotent_requests() {
    let (origin, seen) = closing_origin().await;
    let node = TestNode::new(&config(origin, &[], "")).await;
    // The first request opens a connection that is pooled; the second reuses it and
    // the origin closes it unanswered: sent again on a new connection, it succeeds.
    for path in ["/a", "/b"] {
        let r = node.get(path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text());
        assert_eq!(r.text(), "ok");
    }
    // A HEAD and a DELETE are idempotent too.
    for method in ["HEAD", "DELETE"] {
        node.get("/warm").await;
        let r = node
            .send(
                Request::builder()
                    .method(method)
                    .uri("/c")
                    .body(Full::new(Bytes::new()))
                    .expect("request"),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{method}");
    }
    // A POST on a reused connection the origin closes is never sent twice: the
    // client gets the 502.
    node.get("/warm").await;
    let r = node
        .send(
            Request::post("/order")
                .body(Full::new(Bytes::from_static(b"buy=1")))
                .expect("request"),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    let seen = seen.lock().expect("log").clone();
    let count = |line: &str| seen.iter().filter(|l| l.starts_with(line)).count();
    assert_eq!(count("GET /a "), 1, "{seen:?}");
    assert_eq!(
        count("GET /b "),
        2,
        "once on the reused connection, once anew"
    );
    assert_eq!(count("HEAD /c "), 2, "{seen:?}");
    assert_eq!(count("DELETE /c "), 2, "{seen:?}");
    assert_eq!(count("POST /order "), 1, "a POST is sent once: {seen:?}");
    let metrics = node.metrics().await;
    assert!(
        metrics.contains("outpost_origin_retries_total{origin=\"main\"} 3"),
        "{metrics}"
    );
}

/// An origin that answers every request with its name, and can be stopped (its
/// listener and every connection closed) and started again on the same port.
struct Named {
    name: &'static str,
    addr: SocketAddr,
    hits: Arc<std::sync::atomic::AtomicUsize>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Named {
    async fn start(name: &'static str) -> Named {
        let mut n = Named {
            name,
            addr: "127.0.0.1:0".parse().expect("addr"),
            hits: Arc::default(),
            task: None,
        };
        n.up().await;
        n
    }

    async fn up(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .expect("bind");
        self.addr = listener.local_addr().expect("addr");
        let (name, hits) = (self.name, self.hits.clone());
        self.task = Some(tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((s, _)) = listener.accept().await {
                let hits = hits.clone();
                conns.spawn(async move {
                    let svc = hyper::service::service_fn(move |_req| {
                        hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        async move {
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                                Bytes::from_static(name.as_bytes()),
                            )))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                        .await;
                });
            }
        }));
    }

    /// Stop: the listener and every open connection close.
    fn down(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }

    fn hits(&self) -> usize {
        self.hits.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_loses_no_request_when_an_address_stops_and_takes_it_back_then_fails_over() {
    let mut pool = [
        Named::start("a").await,
        Named::start("b").await,
        Named::start("c").await,
    ];
    let spare = Named::start("spare").await;
    let toml = format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\n\n\
         [origins.main]\naddress = \"{}\"\naddresses = [\"{}\", \"{}\"]\nbackup = \"spare\"\n\
         eject_after = 2\neject_for = \"500ms\"\n\
         health_check = {{ path = \"/health\", interval = \"100ms\", timeout = \"100ms\", healthy = 2, unhealthy = 2 }}\n\n\
         [origins.spare]\naddress = \"{}\"\n\n\
         [[routes]]\nname = \"all\"\norigin = \"main\"\n",
        pool[0].addr, pool[1].addr, pool[2].addr, spare.addr
    );
    let node = TestNode::new(&toml).await;
    // A client loop: every request must succeed.
    let mut answers = Vec::new();
    let run = async |n: usize, answers: &mut Vec<String>| {
        for _ in 0..n {
            let r = node.get("/seg.ts").await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text());
            answers.push(r.text());
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    };
    run(60, &mut answers).await;
    for name in ["a", "b", "c"] {
        assert!(
            answers.iter().any(|a| a == name),
            "{name} serves: {answers:?}"
        );
    }
    // b stops: not one request fails, and b gets none once it is out.
    pool[1].down();
    answers.clear();
    run(100, &mut answers).await;
    assert!(
        answers[answers.len() - 60..].iter().all(|a| a != "b"),
        "{answers:?}"
    );
    let admin = node.running.admin.expect("admin");
    let states = reqwest_json(admin, "/origins").await;
    let b = &states["main"][1];
    assert_eq!(b["available"], false, "{states}");

    // b comes back: taken back once its checks pass.
    pool[1].up().await;
    let before = pool[1].hits();
    run(100, &mut answers).await;
    assert!(pool[1].hits() > before + 5, "b is taken back");

    // The whole pool stops: once the checks see it, the backup answers.
    for p in &mut pool {
        p.down();
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    answers.clear();
    run(20, &mut answers).await;
    assert!(answers.iter().all(|a| a == "spare"), "{answers:?}");
    assert!(spare.hits() >= 20);
}

/// GET `path` from the admin API as JSON.
async fn reqwest_json(admin: SocketAddr, path: &str) -> serde_json::Value {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let resp = client
        .get(format!("http://{admin}{path}").parse().expect("uri"))
        .await
        .expect("admin answers");
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    serde_json::from_slice(&body).expect("json")
}
