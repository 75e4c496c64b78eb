//! End to end over real sockets: client → node → origin, for each hook kind.

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use outpost_tests::{TestNode, TestOrigin, config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_hook_rewrites_what_the_origin_sees() {
    let origin = TestOrigin::start().await;
    let node = TestNode::new(&config(
        origin.addr,
        &[(
            "rw",
            "rewrite",
            "[guests.rw.config]\n\"set_header.x-edge\" = \"outpost\"\nremove_header = \"x-secret\"",
        )],
        "request = [\"rw\"]",
    ))
    .await;
    let req = Request::get("/a/./b/../c//d?utm_source=x&id=7&fbclid=y")
        .header("x-secret", "hunter2")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let r = node.send(req).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let echo = r.json();
    assert_eq!(echo["path"], "/a/c/d");
    assert_eq!(echo["query"], "id=7");
    assert_eq!(echo["headers"]["x-edge"], "outpost");
    assert!(echo["headers"].get("x-secret").is_none(), "{echo}");
    assert_eq!(origin.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_hook_answers_at_the_edge() {
    let origin = TestOrigin::start().await;
    let node = TestNode::new(&config(
        origin.addr,
        &[("teapot", "respond", "")],
        "request = [\"teapot\"]",
    ))
    .await;
    let r = node.get("/anything").await;
    assert_eq!(r.status, StatusCode::IM_A_TEAPOT);
    assert_eq!(r.text(), "short and stout");
    assert_eq!(r.header("x-from-guest"), Some("1"));
    assert_eq!(origin.hits(), 0, "the origin never sees an edge answer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admit_hook_classifies_and_rejects() {
    let origin = TestOrigin::start().await;
    let node = TestNode::new(&config(
        origin.addr,
        &[(
            "shed",
            "shed",
            "[guests.shed.config]\nreject_methods = \"TRACE\"",
        )],
        "admit = \"shed\"",
    ))
    .await;
    let ok = node.get("/live/stream/seg-1.ts").await;
    assert_eq!(ok.status, StatusCode::OK);
    let bot = node
        .send(
            Request::get("/page")
                .header("user-agent", "Googlebot/2.1")
                .body(Full::new(Bytes::new()))
                .expect("request"),
        )
        .await;
    assert_eq!(bot.status, StatusCode::OK);
    let trace = node
        .send(
            Request::builder()
                .method("TRACE")
                .uri("/x")
                .body(Full::new(Bytes::new()))
                .expect("request"),
        )
        .await;
    assert_eq!(trace.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(origin.hits(), 2);
    let m = node.metrics().await;
    assert!(
        m.contains("outpost_admitted_total{origin=\"main\",class=\"critical\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("outpost_admitted_total{origin=\"main\",class=\"bulk\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("outpost_guest_duration_seconds_count{guest=\"shed\"} 3"),
        "{m}"
    );
    assert!(
        m.contains("outpost_request_duration_seconds_count{route=\"all\"} 3"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_hook_filters_the_manifest() {
    let origin = TestOrigin::start().await;
    let node = TestNode::new(&config(
        origin.addr,
        &[(
            "rend",
            "rendition",
            "[guests.rend.config]\nmax_bandwidth = 2000000",
        )],
        "response = [\"rend\"]\ntransform = [\"application/vnd.apple.mpegurl\"]",
    ))
    .await;
    let r = node.get("/live/master.m3u8").await;
    assert_eq!(r.status, StatusCode::OK);
    let body = r.text();
    assert_eq!(body.matches("#EXT-X-STREAM-INF").count(), 2, "{body}");
    assert!(body.contains("low/index.m3u8") && body.contains("mid/index.m3u8"));
    assert!(!body.contains("top/index.m3u8"));
    assert_eq!(
        r.header("content-length")
            .and_then(|v| v.parse::<usize>().ok()),
        Some(r.body.len())
    );
    // Bodies of other content types stream through untouched.
    let echo = node.get("/echo").await;
    assert_eq!(echo.json()["path"], "/echo");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transform_cap_is_a_clear_502() {
    let origin = TestOrigin::start().await;
    let node = TestNode::new(&config(
        origin.addr,
        &[("rend", "rendition", "")],
        "response = [\"rend\"]\ntransform = [\"application/vnd.apple.mpegurl\"]\ntransform_max_bytes = 1024",
    ))
    .await;
    let r = node.get("/big").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert!(r.text().contains("transform_max_bytes"), "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_errors_map_to_502_and_504() {
    let origin = TestOrigin::start().await;
    let node = TestNode::new(&config(origin.addr, &[], "")).await;
    let slow = node.get("/slow").await;
    assert_eq!(slow.status, StatusCode::GATEWAY_TIMEOUT, "{}", slow.text());

    // An origin that is not listening.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = closed.local_addr().expect("addr");
    drop(closed);
    let node = TestNode::new(&config(dead, &[], "")).await;
    let r = node.get("/").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text());
    assert_eq!(r.header("x-outpost-error"), Some("origin"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unrouted_requests_get_404() {
    let origin = TestOrigin::start().await;
    let cfg = config(origin.addr, &[], "path_prefix = \"/only/\"");
    let node = TestNode::new(&cfg).await;
    assert_eq!(node.get("/elsewhere").await.status, StatusCode::NOT_FOUND);
    assert_eq!(node.get("/only/x").await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_clients_are_served() {
    use http_body_util::BodyExt;
    let origin = TestOrigin::start().await;
    let node = TestNode::new(&config(
        origin.addr,
        &[("rw", "rewrite", "")],
        "request = [\"rw\"]",
    ))
    .await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let resp = client
        .get(
            format!("http://{}/h2//path?utm_medium=a", node.addr)
                .parse()
                .expect("uri"),
        )
        .await
        .expect("h2c answer");
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let echo: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(echo["path"], "/h2/path");
    assert_eq!(echo["query"], "");
}

/// One crate exporting the admit, request and response hooks and one check
/// (`guests/fixtures/multi-hook`): it builds for wasm, the node finds all three
/// hooks in the one component, each runs in its phase, and the check runs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_crate_exports_every_hook_and_one_check() {
    let origin = TestOrigin::start().await;
    let route = "admit = \"m\"\nrequest = [\"m\"]\nresponse = [\"m\"]";
    let node = TestNode::new(&config(
        origin.addr,
        &[("m", "multi-hook", "[guests.m.config]\ntag = \"edge-7\"")],
        route,
    ))
    .await;
    let r = node.get("/a").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["headers"]["x-multi-request"], "edge-7");
    assert_eq!(r.header("x-multi-response"), Some("1"));
    let rejected = node
        .send(
            Request::get("/a")
                .header("x-multi", "reject")
                .body(Full::new(Bytes::new()))
                .expect("request"),
        )
        .await;
    assert_eq!(rejected.status, StatusCode::FORBIDDEN);
    assert_eq!(
        origin.hits(),
        1,
        "the rejected request never reached the origin"
    );

    // The one check the crate exports refuses what it should, at load.
    let built = build(config(
        origin.addr,
        &[("m", "multi-hook", "[guests.m.config]\ntag = \"\"")],
        route,
    ))
    .await;
    let errors = built
        .err()
        .expect("an empty tag is refused by the guest's check");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("tag") && e.contains("must not be empty")),
        "{errors:?}"
    );
}

/// Build a node from `toml`, or its errors.
async fn build(toml: String) -> Result<outpost::node::Node, Vec<String>> {
    let config = edge_config::Config::from_source(edge_config::Source {
        name: "edge.toml".into(),
        base_dir: ".".into(),
        text: toml,
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let opts = outpost::node::BuildOptions {
        no_cache: true,
        ..Default::default()
    };
    outpost::node::Node::build(config, &opts)
        .await
        .map_err(|errs| errs.iter().map(ToString::to_string).collect())
}

/// A guest exporting `init` (`guests/fixtures/pre-init`) is pre-initialized at
/// load: every request's fresh instance starts from the snapshot taken after
/// `init` ran once, with that guest's own configuration; a trap in `init`
/// refuses the guest at load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_work_runs_once_at_load_and_every_fresh_instance_starts_after_it() {
    let origin = TestOrigin::start().await;
    let guests = [
        ("a", "pre-init", "[guests.a.config]\nmark = \"41\""),
        ("b", "pre-init", "[guests.b.config]\nmark = \"42\""),
    ];
    let route_b =
        "[[routes]]\nname = \"b\"\npath_prefix = \"/b/\"\norigin = \"main\"\nrequest = [\"b\"]\n\n";
    let node = TestNode::new(&config(origin.addr, &guests, "request = [\"a\"]").replacen(
        "[[routes]]",
        &format!("{route_b}[[routes]]"),
        1,
    ))
    .await;
    for _ in 0..3 {
        // Fresh instances (no reuse): each starts where the snapshot left off.
        let a = node.get("/a").await.json();
        assert_eq!(a["headers"]["x-mark"], "41", "{a}");
        assert_eq!(a["headers"]["x-init-calls"], "1", "{a}");
    }
    let b = node.get("/b/x").await.json();
    assert_eq!(
        b["headers"]["x-mark"], "42",
        "one snapshot per guest config: {b}"
    );
    assert_eq!(b["headers"]["x-init-calls"], "1", "{b}");

    let built = build(config(
        origin.addr,
        &[(
            "c",
            "pre-init",
            "[guests.c.config]\ntrap_in_init = \"true\"",
        )],
        "request = [\"c\"]",
    ))
    .await;
    let errors = built.err().expect("a trap in init refuses the guest");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("guest `c`") && e.contains("start-up (`init`) failed")),
        "{errors:?}"
    );
}

/// The control for the test above: the same component loaded without the snapshot
/// starts every instance with nothing done (mark 0, `init` never called), and
/// pre-initializing it in place gives the snapshot's state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_snapshot_a_fresh_instance_has_done_no_start_up_work() {
    use outpost::contract::types::{HeaderOp, RequestAction};
    use outpost::runtime::{EngineOptions, GuestLimits, Runtime};
    let rt = Runtime::new(&EngineOptions {
        max_instances: 10,
        max_memory_bytes: 16 << 20,
        tick: std::time::Duration::from_millis(1),
        keep_resident: false,
    })
    .expect("engine");
    let wasm = std::fs::read(outpost_tests::guest_wasm("pre-init")).expect("guest built");
    let limits = GuestLimits {
        memory_bytes: 16 << 20,
        cpu: std::time::Duration::from_millis(100),
        reuse: 0,
    };
    let config = [("mark".to_string(), "9".to_string())]
        .into_iter()
        .collect();
    let plain = rt
        .load("p", &wasm, limits, config, None, Default::default())
        .expect("loads");
    let head = outpost_tests::request_head("/");
    let mark = |action: RequestAction| -> String {
        let RequestAction::Forward(edit) = action else {
            panic!("expected forward");
        };
        edit.headers
            .iter()
            .find_map(|op| match op {
                HeaderOp::Set(h) if h.name == "x-mark" => {
                    Some(String::from_utf8_lossy(&h.value).into_owned())
                }
                _ => None,
            })
            .expect("x-mark set")
    };
    let load = outpost::limiter::LoadSource::default();
    let before = plain.request(&rt, load.clone(), &head).await.expect("runs");
    assert_eq!(mark(before), "0", "no snapshot: init never ran");
    let initialized = rt
        .pre_initialize(&plain, &wasm, None)
        .await
        .expect("pre-initializes")
        .expect("the guest exports init");
    assert!(initialized.pre_initialized);
    let after = initialized.request(&rt, load, &head).await.expect("runs");
    assert_eq!(mark(after), "9");
}
