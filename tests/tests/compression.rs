//! Compressing origins: response guests see the decoded body and the client gets it
//! encoded as it accepts. nginx as the origin, with the fixture's `gzip on` for
//! playlists (tests/fixtures/origins), and a decompression bomb from a test origin.

use std::io::Read as _;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use outpost_tests::nginx::Nginx;
use outpost_tests::{MASTER, TestNode, decode_as, serve_loopback};

const ROUTE: &str = "response = [\"rend\"]\n\
transform = [\"application/vnd.apple.mpegurl\", \"application/dash+xml\"]";

fn rendition_config(origin: std::net::SocketAddr) -> String {
    outpost_tests::config(
        origin,
        &[(
            "rend",
            "rendition",
            "[guests.rend.config]\nmax_bandwidth = 2000000",
        )],
        ROUTE,
    )
}

async fn get(node: &TestNode, path: &str, accept: Option<&str>) -> outpost_tests::Reply {
    let mut req = Request::get(path);
    if let Some(a) = accept {
        req = req.header("accept-encoding", a);
    }
    node.send(req.body(Full::new(Bytes::new())).expect("request"))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_gzipped_by_nginx_is_shaped_and_sent_encoded() {
    let nginx = Nginx::start(&[("live/master.m3u8", MASTER.as_bytes())]);
    let node = TestNode::new(&rendition_config(nginx.addr)).await;

    // A browser's Accept-Encoding: nginx gzips, the guest trims, the client gets gzip.
    let r = get(&node, "/live/master.m3u8", Some("gzip, deflate, br")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    let text = String::from_utf8(decode_as(Some("gzip"), &r.body)).expect("utf-8");
    assert_eq!(text.matches("#EXT-X-STREAM-INF").count(), 2, "{text}");
    assert!(!text.contains("top/index.m3u8"), "{text}");
    assert!(
        r.header("x-outpost-rendition")
            .is_some_and(|h| h.starts_with("kept=2 dropped=2")),
        "{:?}",
        r.headers
    );
    assert_eq!(
        r.header("content-length")
            .and_then(|v| v.parse::<usize>().ok()),
        Some(r.body.len())
    );
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    // The bytes changed: no strong validator may leak (the rendition guest drops
    // the ETag when it trims; a guest that keeps one gets it weakened).
    assert!(
        r.header("etag").is_none_or(|e| e.starts_with("W/\"")),
        "{:?}",
        r.headers
    );

    // No Accept-Encoding: nginx sends identity, the client gets the same trimmed
    // text.
    let plain = get(&node, "/live/master.m3u8", None).await;
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.text(), text);

    // A cap above every variant: the guest changes nothing, and the client gets
    // nginx's own gzip bytes and validator, not a re-encoding.
    let untouched = TestNode::new(&outpost_tests::config(
        nginx.addr,
        &[(
            "rend",
            "rendition",
            "[guests.rend.config]\nmax_bandwidth = 100000000",
        )],
        ROUTE,
    ))
    .await;
    let r = get(&untouched, "/live/master.m3u8", Some("gzip, deflate, br")).await;
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(decode_as(Some("gzip"), &r.body), MASTER.as_bytes());
    assert!(
        r.header("etag").is_some_and(|e| e.starts_with("W/\"")),
        "nginx's weak ETag passes: {:?}",
        r.headers
    );
}

/// A gzip body of `inflated` zero bytes, written without holding them.
fn gzip_bomb(inflated: u64) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::copy(&mut std::io::repeat(0).take(inflated), &mut e).expect("gzip");
    e.finish().expect("gzip")
}

/// The same in zstd (higher ratios: 1 GiB in a few dozen KiB).
fn zstd_bomb(inflated: u64) -> Vec<u8> {
    let mut out = Vec::new();
    zstd::stream::copy_encode(std::io::repeat(0).take(inflated), &mut out, 19).expect("zstd");
    out
}

/// The process's peak resident memory, KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decompression_bomb_is_a_502_and_allocates_nothing_near_its_size() {
    let bombs: Vec<(&str, Bytes)> = vec![
        ("gzip", Bytes::from(gzip_bomb(256 << 20))),
        ("zstd", Bytes::from(zstd_bomb(1 << 30))),
    ];
    let sizes: Vec<(&str, usize)> = bombs.iter().map(|(c, b)| (*c, b.len())).collect();
    let served = bombs.clone();
    let (addr, _task) = serve_loopback(move |req| {
        let served = served.clone();
        async move {
            let want = req.uri().path().trim_start_matches('/').to_string();
            let mut r = match served.iter().find(|(c, _)| want.starts_with(c)) {
                Some((c, b)) => {
                    let mut r = Response::new(Full::new(b.clone()));
                    r.headers_mut().insert(
                        http::header::CONTENT_ENCODING,
                        http::HeaderValue::from_static(c),
                    );
                    r
                }
                None => Response::new(Full::new(Bytes::from(MASTER))),
            };
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/vnd.apple.mpegurl"),
            );
            r
        }
    })
    .await;
    let node = TestNode::new(&rendition_config(addr)).await;
    let before = peak_rss_kib();
    for (coding, len) in &sizes {
        let r = get(&node, &format!("/{coding}.m3u8"), Some("gzip, br, zstd")).await;
        assert_eq!(
            r.status,
            StatusCode::BAD_GATEWAY,
            "{coding} bomb ({len} bytes): {}",
            r.text()
        );
    }
    let grown_mib = peak_rss_kib().saturating_sub(before) / 1024;
    assert!(
        grown_mib < 64,
        "decoding the bombs (256 MiB and 1 GiB inflated) grew the peak RSS by {grown_mib} MiB"
    );
    // The node keeps serving.
    let ok = get(&node, "/master.m3u8", None).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.text().matches("#EXT-X-STREAM-INF").count(), 2);
    let metrics = tokio::time::timeout(Duration::from_secs(5), node.metrics())
        .await
        .expect("metrics");
    assert!(
        metrics.contains("outpost_responses_total{route=\"all\",status=\"5xx\"} 2"),
        "{metrics}"
    );
}
