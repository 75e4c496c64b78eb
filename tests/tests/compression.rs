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
    outpost_tests::proc_status("VmHWM", 0)
        .and_then(|v| v.parse().ok())
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

/// An origin that sends everything uncompressed: `/page.txt` (8 KiB of text with a
/// strong ETag), `/small.txt` (100 bytes), `/keep.txt` (text marked
/// `no-transform`), `/seg.ts` (a media segment), `/stream.txt` (2 MiB of text in
/// 64 KiB chunks, no length).
async fn identity_origin() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    serve_loopback(|req| async move {
        let text =
            |n: usize| Bytes::from("the quick brown fox jumps over the lazy dog\n".repeat(n));
        let (ctype, body, extra): (&str, Bytes, Option<(&str, &str)>) = match req.uri().path() {
            "/page.txt" => ("text/plain", text(190), Some(("etag", "\"v1\""))),
            "/small.txt" => ("text/plain", Bytes::from(vec![b'a'; 100]), None),
            "/keep.txt" => (
                "text/plain",
                text(190),
                Some(("cache-control", "no-transform")),
            ),
            "/seg.ts" => ("video/mp2t", Bytes::from(vec![0x47u8; 8192]), None),
            _ => ("text/plain", text(47_000), None),
        };
        let mut r = Response::new(Full::new(body));
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(ctype),
        );
        if let Some((k, v)) = extra
            && let (Ok(k), Ok(v)) = (
                http::HeaderName::from_bytes(k.as_bytes()),
                http::HeaderValue::from_str(v),
            )
        {
            r.headers_mut().insert(k, v);
        }
        r
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_compresses_text_the_origin_sent_uncompressed_and_nothing_else() {
    let (origin, _task) = identity_origin().await;
    // No response guest: edge compression is the route's own (on by default for
    // text types).
    let node = TestNode::new(&outpost_tests::config(origin, &[], "")).await;
    let page = "the quick brown fox jumps over the lazy dog\n".repeat(190);

    for (accept, expected) in [
        ("gzip, deflate, br", Some("br")),
        ("gzip, deflate, br, zstd", Some("br")),
        ("gzip;q=1, br;q=0.5", Some("gzip")),
        ("zstd", Some("zstd")),
        ("deflate", Some("deflate")),
        ("identity", None),
    ] {
        let r = get(&node, "/page.txt", Some(accept)).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("content-encoding"), expected, "`{accept}`");
        assert_eq!(
            decode_as(r.header("content-encoding"), &r.body),
            page.as_bytes(),
            "`{accept}`"
        );
        assert_eq!(r.header("vary"), Some("Accept-Encoding"), "`{accept}`");
        if expected.is_some() {
            assert!(
                r.body.len() < page.len() / 4,
                "`{accept}`: {} bytes",
                r.body.len()
            );
            assert_eq!(r.header("etag"), Some("W/\"v1\""), "`{accept}`");
        } else {
            assert_eq!(r.header("etag"), Some("\"v1\""));
        }
    }
    // No Accept-Encoding: identity (and still Vary).
    let r = get(&node, "/page.txt", None).await;
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));

    // Below the minimum size, `no-transform`, a HEAD: as the origin sent them.
    let small = get(&node, "/small.txt", Some("br")).await;
    assert_eq!(small.header("content-encoding"), None);
    assert_eq!(small.body.len(), 100);
    let keep = get(&node, "/keep.txt", Some("br")).await;
    assert_eq!(keep.header("content-encoding"), None);
    assert_eq!(keep.text(), page);
    let head = node
        .send(
            Request::head("/page.txt")
                .header("accept-encoding", "br")
                .body(Full::new(Bytes::new()))
                .expect("request"),
        )
        .await;
    assert_eq!(head.header("content-encoding"), None);

    // Media segments are never touched: byte-identical, no Vary.
    let seg = get(&node, "/seg.ts", Some("gzip, deflate, br, zstd")).await;
    assert_eq!(seg.header("content-encoding"), None);
    assert_eq!(seg.header("vary"), None);
    assert_eq!(seg.body.len(), 8192);
    assert!(seg.body.iter().all(|&b| b == 0x47));

    // A large body streams through the encoder whole.
    let big = get(&node, "/stream.txt", Some("gzip")).await;
    assert_eq!(big.header("content-encoding"), Some("gzip"));
    let decoded = decode_as(Some("gzip"), &big.body);
    assert_eq!(decoded.len(), 44 * 47_000);
    assert!(big.body.len() < decoded.len() / 20, "{}", big.body.len());

    // A route with `compress = []` leaves everything as the origin sent it.
    let off = TestNode::new(&outpost_tests::config(origin, &[], "compress = []")).await;
    let r = get(&off, "/page.txt", Some("br")).await;
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.header("vary"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compression_levels_out_of_range_are_refused_at_their_key() {
    let text = "[compression]\ngzip_level = 6\nbrotli_level = 12\nzstd_level = 0\n";
    let err = outpost::Config::from_source(edge_config::Source {
        name: "bad.toml".into(),
        base_dir: ".".into(),
        text: text.into(),
    })
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(
        err.contains("bad.toml:3")
            && err.contains("compression.brotli_level (12) must be within 0..=11"),
        "{err}"
    );
    assert!(
        err.contains("bad.toml:4") && err.contains("compression.zstd_level"),
        "{err}"
    );
}
