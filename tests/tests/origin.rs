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
