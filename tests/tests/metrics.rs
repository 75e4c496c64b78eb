//! `/metrics` as a scraper reads it: Prometheus text that `promtool check metrics`
//! (Debian's `prometheus` package) accepts, OpenMetrics on request, and counters
//! that belong to the process: a reload keeps them counting.

use std::io::Write as _;
use std::process::{Command, Stdio};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use outpost_tests::{TestNode, TestOrigin, config};

/// A node with an admit, a request and a response guest, so every family has
/// samples.
fn guests_config(origin: std::net::SocketAddr) -> String {
    config(
        origin,
        &[
            ("shed", "shed", ""),
            (
                "rw",
                "rewrite",
                "[guests.rw.config]\n\"set_header.x-edge\" = \"outpost\"",
            ),
            ("nr", "noop-response", ""),
        ],
        "admit = \"shed\"\nrequest = [\"rw\"]\nresponse = [\"nr\"]",
    )
}

fn parse(text: &str) -> outpost::Config {
    outpost::Config::from_source(edge_config::Source {
        name: "reload.toml".into(),
        base_dir: ".".into(),
        text: text.into(),
    })
    .expect("valid config")
}

/// The value of the sample `name{labels}` (exactly as written), if present.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool_and_openmetrics_is_served_on_request() {
    let origin = TestOrigin::start().await;
    let node = TestNode::new(&guests_config(origin.addr)).await;
    for path in ["/", "/a", "/b?x=1"] {
        assert_eq!(node.get(path).await.status, StatusCode::OK);
    }
    let text = node.metrics().await;
    assert!(
        text.contains("# TYPE outpost_responses_total counter"),
        "{text}"
    );
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run promtool ({e}): install Debian's `prometheus` package")
        });
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool ran");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let admin = node.running.admin.expect("admin");
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let req = Request::get(format!("http://{admin}/metrics"))
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )
        .body(Full::new(Bytes::new()))
        .expect("request");
    let resp = client.request(req).await.expect("admin answers");
    let ctype = resp.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_string();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let om = String::from_utf8_lossy(&body);
    assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(om.contains("# TYPE outpost_responses counter"), "{om}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_keep_counting_across_ten_reloads() {
    let origin = TestOrigin::start().await;
    let text = guests_config(origin.addr);
    let node = TestNode::new(&text).await;
    let ok = "outpost_responses_total{route=\"all\",status=\"2xx\"}";
    let rw = "outpost_guest_invocations_total{guest=\"rw\"}";
    let admitted = "outpost_admitted_total{origin=\"main\",class=\"normal\"}";
    for i in 1..=10u32 {
        assert_eq!(node.get("/").await.status, StatusCode::OK);
        node.running.reload(parse(&text)).await.expect("reloads");
        let m = node.metrics().await;
        for series in [ok, rw, admitted] {
            assert_eq!(
                sample(&m, series),
                Some(f64::from(i)),
                "{series} after {i} requests and {i} reloads:\n{m}"
            );
        }
    }
    // A reload that fails changes nothing, counters included.
    let broken = config(
        origin.addr,
        &[("bad", "no-such-guest", "")],
        "request = [\"bad\"]",
    );
    assert!(node.running.reload(parse(&broken)).await.is_err());
    assert_eq!(sample(&node.metrics().await, ok), Some(10.0));
}
