//! The access log: one JSON line per request with what an operator's log pipeline
//! expects, written once the response has gone; reopened by a reload (logrotate).

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use edge_config::{Config, Source};
use http::Request;
use http_body_util::Full;
use outpost_tests::{TestNode, TestOrigin, config};

/// The log's lines once it holds `n` (waiting for the writer, up to 5 s).
async fn lines(path: &Path, n: usize) -> Vec<serde_json::Value> {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        if lines.len() >= n || start.elapsed() > Duration::from_secs(5) {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_gets_one_json_line_and_a_reload_reopens_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    let origin = TestOrigin::start().await;
    let toml = format!(
        "{}\n[access_log]\npath = \"{}\"\n",
        config(origin.addr, &[], ""),
        log.display()
    );
    let node = TestNode::new(&toml).await;
    let ok = node
        .send(
            Request::get("/echo?x=1")
                .header("user-agent", "Mozilla/5.0 (test)")
                .header("referer", "https://player.example/")
                .body(Full::new(Bytes::new()))
                .expect("request"),
        )
        .await;
    assert_eq!(ok.status, 200);
    let missing = node.get("/status/404").await;
    assert_eq!(missing.status, 404);

    let got = lines(&log, 2).await;
    assert_eq!(got.len(), 2, "{got:?}");
    let first = &got[0];
    assert_eq!(first["method"], "GET");
    assert_eq!(first["scheme"], "http");
    assert_eq!(first["path"], "/echo");
    assert_eq!(first["query"], "x=1");
    assert_eq!(first["status"], 200);
    assert_eq!(first["bytes"], ok.body.len() as u64);
    assert_eq!(first["client"], "127.0.0.1");
    assert_eq!(first["route"], "all");
    assert_eq!(first["origin"], "main");
    assert_eq!(first["answered_by"], "origin");
    assert_eq!(first["user_agent"], "Mozilla/5.0 (test)");
    assert_eq!(first["referer"], "https://player.example/");
    assert_eq!(first["proto"], "HTTP/1.1");
    let id = first["id"].as_str().expect("a request id");
    assert!(
        id.len() == 16 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "{id}"
    );
    let time = first["time"].as_str().expect("time");
    assert!(time.ends_with('Z') && time.len() == 24, "{time}");
    let upstream = first["upstream_ms"].as_f64().expect("upstream time");
    let total = first["duration_ms"].as_f64().expect("duration");
    assert!(upstream > 0.0 && upstream <= total, "{upstream} {total}");
    assert_eq!(got[1]["status"], 404);
    assert_ne!(got[1]["id"], first["id"]);

    // logrotate moves the file, then signals: the reload writes to a new file.
    let rotated = dir.path().join("access.log.1");
    std::fs::rename(&log, &rotated).expect("rotate");
    let config = Config::from_source(Source {
        name: "test.toml".into(),
        base_dir: ".".into(),
        text: toml.clone(),
    })
    .expect("config");
    node.running.reload(config).await.expect("reload");
    node.get("/after").await;
    let fresh = lines(&log, 1).await;
    assert_eq!(fresh.len(), 1);
    assert_eq!(fresh[0]["path"], "/after");
    assert_eq!(
        lines(&rotated, 2).await.len(),
        2,
        "the old file is left alone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sample_logs_that_share_of_requests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    let origin = TestOrigin::start().await;
    let toml = format!(
        "{}\n[access_log]\npath = \"{}\"\nsample = 0.25\n",
        config(origin.addr, &[], ""),
        log.display()
    );
    let node = TestNode::new(&toml).await;
    for i in 0..40 {
        node.get(&format!("/echo?n={i}")).await;
    }
    let got = lines(&log, 10).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(lines(&log, 10).await.len(), 10, "one in four of 40");
    assert_eq!(got[0]["query"], "n=0");
    assert_eq!(got[1]["query"], "n=4");
}
