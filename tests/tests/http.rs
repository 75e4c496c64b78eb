//! The HTTP path itself: bodies stream through untouched, hostile clients are cut off,
//! compiled guests are cached across restarts.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use outpost_tests::{TestNode, TestOrigin, config, guest_wasm};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_stream_through_untouched_both_ways() {
    let origin = TestOrigin::start().await;
    let node = TestNode::new(&config(
        origin.addr,
        &[("rw", "rewrite", ""), ("rend", "rendition", "")],
        "request = [\"rw\"]\nresponse = [\"rend\"]\ntransform = [\"application/vnd.apple.mpegurl\"]",
    ))
    .await;
    // 8 MiB down: not a transformed type, so it streams, byte for byte.
    let n = 8 << 20;
    let r = node.get(&format!("/bytes/{n}")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body.len(), n);
    assert!(
        r.body
            .iter()
            .enumerate()
            .all(|(i, b)| *b == (i % 251) as u8)
    );
    // 3 MiB up.
    let up: Vec<u8> = (0..3u32 << 20).map(|i| (i % 7) as u8).collect();
    let sum: u64 = up.iter().map(|b| u64::from(*b)).sum();
    let r = node
        .send(
            Request::post("/upload")
                .body(Full::new(Bytes::from(up)))
                .expect("request"),
        )
        .await;
    let echo = r.json();
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["body_len"], 3 << 20);
    assert_eq!(echo["body_sum"], sum);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_head_is_cut_off() {
    let origin = TestOrigin::start().await;
    let toml = config(origin.addr, &[], "").replace(
        "address = \"127.0.0.1:0\"\n",
        "address = \"127.0.0.1:0\"\nheader_timeout = \"300ms\"\n",
    );
    let node = TestNode::new(&toml).await;
    let mut slow = tokio::net::TcpStream::connect(node.addr)
        .await
        .expect("connect");
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .expect("write");
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut buf)).await;
    assert!(
        read.is_ok(),
        "the node must close the connection of a client stuck mid-head"
    );
    let text = String::from_utf8_lossy(&buf);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
    // Garbage instead of HTTP gets a 400 and the node keeps serving.
    let mut junk = tokio::net::TcpStream::connect(node.addr)
        .await
        .expect("connect");
    junk.write_all(b"\x16\x03\x01 definitely not http\r\n\r\n")
        .await
        .expect("write");
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), junk.read_to_end(&mut buf)).await;
    assert!(
        String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 400"),
        "{buf:?}"
    );
    assert_eq!(node.get("/").await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiled_guests_are_cached_so_a_restart_does_not_recompile() {
    use outpost::runtime::{CompileCache, EngineOptions, GuestLimits, Runtime};
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = CompileCache::new(dir.path());
    let wasm = std::fs::read(guest_wasm("rewrite")).expect("guest built");
    let opts = EngineOptions {
        max_instances: 10,
        max_memory_bytes: 16 << 20,
        tick: Duration::from_millis(1),
        keep_resident: true,
    };
    let limits = GuestLimits {
        memory_bytes: 16 << 20,
        cpu: Duration::from_millis(50),
        reuse: 0,
    };
    let rt = Runtime::new(&opts).expect("engine");
    assert!(!cache.contains(rt.engine(), &wasm));
    rt.load(
        "rw",
        &wasm,
        limits,
        Default::default(),
        Some(&cache),
        Default::default(),
    )
    .expect("compiles");
    assert!(cache.contains(rt.engine(), &wasm));
    drop(rt);
    // A new engine with the same settings finds the entry and loads from it.
    let rt = Runtime::new(&opts).expect("engine");
    assert!(cache.contains(rt.engine(), &wasm));
    let g = rt
        .load(
            "rw",
            &wasm,
            limits,
            Default::default(),
            Some(&cache),
            Default::default(),
        )
        .expect("loads from cache");
    assert!(g.hooks.request);
    // A corrupt entry is ignored and rewritten, not fatal.
    for e in std::fs::read_dir(dir.path()).expect("dir").flatten() {
        std::fs::write(e.path(), b"corrupt").expect("corrupt it");
    }
    let g = rt
        .load(
            "rw",
            &wasm,
            limits,
            Default::default(),
            Some(&cache),
            Default::default(),
        )
        .expect("recompiles");
    assert!(g.hooks.request);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_swaps_the_config_and_requests_in_flight_finish_on_the_old_one() {
    let origin = TestOrigin::start().await;
    let patient = config(origin.addr, &[], "").replace(
        "first_byte_timeout = \"1s\"",
        "first_byte_timeout = \"10s\"",
    );
    let node = std::sync::Arc::new(TestNode::new(&patient).await);
    let in_flight = {
        let node = node.clone();
        tokio::spawn(async move { node.get("/slow").await.status })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The new config answers everything at the edge.
    let teapot = config(
        origin.addr,
        &[("teapot", "respond", "")],
        "request = [\"teapot\"]",
    );
    let parsed = edge_config::Config::from_source(edge_config::Source {
        name: "reload.toml".into(),
        base_dir: ".".into(),
        text: teapot,
    })
    .expect("valid");
    node.running.reload(parsed).await.expect("reloads");
    assert_eq!(node.get("/").await.status, StatusCode::IM_A_TEAPOT);
    assert_eq!(
        in_flight.await.expect("join"),
        StatusCode::OK,
        "finished on the old config"
    );
    // A config that does not load changes nothing.
    let broken = config(
        origin.addr,
        &[("bad", "no-such-guest", "")],
        "request = [\"bad\"]",
    );
    let parsed = edge_config::Config::from_source(edge_config::Source {
        name: "broken.toml".into(),
        base_dir: ".".into(),
        text: broken,
    })
    .expect("parses");
    assert!(node.running.reload(parsed).await.is_err());
    assert_eq!(node.get("/").await.status, StatusCode::IM_A_TEAPOT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_advertises_its_configured_http2_settings() {
    let origin = TestOrigin::start().await;
    let toml = config(origin.addr, &[], "").replace(
        "address = \"127.0.0.1:0\"\n",
        "address = \"127.0.0.1:0\"\nhttp2 = { max_concurrent_streams = 7 }\n",
    );
    let node = TestNode::new(&toml).await;
    let tcp = tokio::net::TcpStream::connect(node.addr)
        .await
        .expect("connect");
    let (client, conn) = h2::client::handshake(tcp).await.expect("h2c handshake");
    tokio::spawn(conn);
    let mut client = client.ready().await.expect("ready");
    let req = Request::get(format!("http://{}/echo", node.addr))
        .body(())
        .expect("request");
    let (resp, _) = client.send_request(req, true).expect("send");
    let resp = resp.await.expect("response");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(client.current_max_send_streams(), 7);
}
