//! Graceful drain: with requests in flight, the node stops accepting, turns
//! `/healthz` not-ready, lets every request finish, then reports nothing open.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use outpost_tests::{TestNode, TestOrigin, config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_lets_fifty_requests_in_flight_finish_and_refuses_new_connections() {
    let origin = TestOrigin::start().await;
    // The origin takes 3 s for `/slow`; the node's first-byte timeout must allow it.
    let toml = config(origin.addr, &[], "").replace(
        "first_byte_timeout = \"1s\"",
        "first_byte_timeout = \"10s\"",
    );
    let node = TestNode::new(&toml).await;
    let addr = node.addr;
    // Fifty requests, each on a connection of its own.
    let mut flights = Vec::new();
    for _ in 0..50 {
        flights.push(tokio::spawn(async move {
            let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(0)
                .build_http();
            let resp = client
                .get(format!("http://{addr}/slow").parse().expect("uri"))
                .await?;
            let status = resp.status();
            let body = resp.into_body().collect().await?.to_bytes();
            anyhow::Ok((status, body))
        }));
    }
    let start = Instant::now();
    while origin.hits() < 50 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "requests reach the origin"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let admin = node.running.admin.expect("admin");
    let healthz = || async move {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        client
            .get(format!("http://{admin}/healthz").parse().expect("uri"))
            .await
            .expect("admin answers")
            .status()
    };
    assert_eq!(healthz().await, 200);

    let running = std::sync::Arc::new(node);
    let draining = {
        let n = running.clone();
        tokio::spawn(async move { n.running.drain(Duration::from_secs(20)).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(healthz().await, 503, "not ready while draining");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "new connections are refused"
    );
    let left = draining.await.expect("drain task");
    assert_eq!(left, 0, "every connection closed");
    for f in flights {
        let (status, body) = f.await.expect("task").expect("the request completes");
        assert_eq!(status, 200);
        assert_eq!(&body[..], b"slow\n");
    }
    assert!(
        start.elapsed() >= Duration::from_secs(2),
        "the drain waited"
    );
}

/// A free loopback port (bound and released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_adds_a_tls_listener_and_drains_the_one_it_removes() {
    use outpost_tests::tls::{self, Ca};
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("Outpost test CA");
    let (cert, key) = ca.leaf(&["a.example"]).write(dir.path(), "a");
    let origin = TestOrigin::start().await;
    let old = free_port();
    let new = free_port();
    let routes = format!(
        "[origins.main]\naddress = \"{}\"\nfirst_byte_timeout = \"10s\"\n\n\
         [[routes]]\nname = \"all\"\norigin = \"main\"\n",
        origin.addr
    );
    let first = format!("[[listeners]]\naddress = \"127.0.0.1:{old}\"\n\n{routes}");
    let second = format!(
        "[[listeners]]\naddress = \"127.0.0.1:{new}\"\n\
         [[listeners.tls.certificates]]\ncert = \"{}\"\nkey = \"{}\"\n\n{routes}",
        cert.display(),
        key.display()
    );
    let node = TestNode::new(&first).await;
    let before = node.addr;
    // A request in flight on the listener about to be removed.
    let long = tokio::spawn(async move {
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let resp = client
            .get(format!("http://{before}/slow").parse().expect("uri"))
            .await?;
        let body = resp.into_body().collect().await?.to_bytes();
        anyhow::Ok(body)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let config = edge_config::Config::from_source(edge_config::Source {
        name: "test.toml".into(),
        base_dir: ".".into(),
        text: second.clone(),
    })
    .expect("config");
    node.running.reload(config).await.expect("reload");
    let added: std::net::SocketAddr = format!("127.0.0.1:{new}").parse().expect("addr");
    assert_eq!(node.running.listening(), vec![added]);
    // The new listener speaks TLS.
    let stream = tls::connect(added, "a.example", ca.client(&[b"h2"]))
        .await
        .expect("handshake");
    let r = tls::get(stream, "a.example", "/echo")
        .await
        .expect("request");
    assert_eq!(r.status, 200);
    // The removed one accepts nothing new, and its request in flight completes.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(tokio::net::TcpStream::connect(before).await.is_err());
    let body = long.await.expect("task").expect("the request completes");
    assert_eq!(&body[..], b"slow\n");
}
