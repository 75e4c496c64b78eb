//! The web console (issue "A web console on the admin port"), in headless Chromium
//! driven over the DevTools protocol (`outpost_tests::cdp`), against real nodes on
//! real sockets:
//!
//! * the dashboard's request-rate chart rises while a load generator runs; the
//!   decisions tail fills and filters; the player plays the demo stream beside
//!   the node's decisions for it; the playground, on the node's own rewrite
//!   config, decides a request as the node did. A screenshot of each view is kept
//!   in `$CARGO_TARGET_TMPDIR/console/`;
//! * differential: 1,000 requests of the NASA log through the playground's wasm (in
//!   Chromium) and through the node decide the same rewrites; the rendition
//!   filter trims the HLS and DASH fixtures to the same bytes in both;
//! * the console's guard: a strict CSP, no inline script, and the admin token on a
//!   non-loopback admin address.
//!
//! Needs Debian's `chromium` (`.ci/run` installs it); a missing one fails with what
//! to install.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use outpost_tests::cdp::Browser;
use outpost_tests::{StaticOrigin, TestNode};
use serde_json::{Value, json};

/// Run blocking browser work on this multi-threaded runtime.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Where the views' screenshots are kept (a test artifact).
fn screenshot(b: &mut Browser, name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console");
    let path = dir.join(format!("{name}.png"));
    blocking(|| b.screenshot(&path));
    let size = std::fs::metadata(&path).map_or(0, |m| m.len());
    assert!(size > 10_000, "{} is only {size} bytes", path.display());
    eprintln!("screenshot: {} ({size} bytes)", path.display());
    path
}

fn js_str(s: &str) -> String {
    Value::from(s).to_string()
}

/// A plain GET to the admin listener: status, headers, body.
async fn admin_get(
    node: &TestNode,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, http::HeaderMap, String) {
    let admin = node.running.admin.expect("admin enabled");
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let mut req = Request::get(format!("http://{admin}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client
        .request(req.body(Full::new(Bytes::new())).expect("request"))
        .await
        .expect("admin answers");
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    (
        parts.status.as_u16(),
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_console_charts_load_tails_decisions_plays_the_demo_and_decides_as_the_node() {
    let node = TestNode::new(edge_config::EMBEDDED_DEFAULT).await;
    let admin = node.running.admin.expect("admin enabled");
    let node = Arc::new(node);
    let mut b = blocking(|| Browser::open(&format!("http://{admin}/console/#dashboard")));

    // Dashboard: the first chart is drawn from the second stats event.
    let first = blocking(|| {
        b.wait_for(
            "document.body.dataset.firstChartMs",
            Duration::from_secs(30),
        )
    });
    let transfer = blocking(|| {
        b.eval(
            "performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'))\
             .reduce((a, e) => a + (e.transferSize || e.encodedBodySize || 0), 0)",
        )
    })
    .expect("transfer size");
    eprintln!(
        "console: first chart {first} ms after navigation start; {transfer} bytes transferred for the dashboard"
    );
    let idle =
        blocking(|| b.eval("outpostConsole.charts.status.latest('total')")).expect("latest rate");
    assert!(idle.as_f64().unwrap_or(0.0) < 5.0, "idle rate {idle}");

    // A load generator: 8 clients in a loop over real HTTP, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for i in 0..8 {
        let (node, stop) = (node.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let path = if i % 2 == 0 {
                    "/live/master.m3u8"
                } else {
                    "/live/360p/index.m3u8"
                };
                node.get(path).await;
                n += 1;
            }
            n
        }));
    }
    let busy = blocking(|| {
        b.wait_for(
            "(() => { const v = outpostConsole.charts.status.latest('total'); return v > 20 ? v : null; })()",
            Duration::from_secs(30),
        )
    });
    let shown = blocking(|| {
        b.eval("document.querySelector('#chart-status b[data-series=\"total\"]').dataset.value")
    })
    .expect("legend");
    eprintln!("console: request rate shown {busy}/s under load (legend {shown})");
    assert!(
        blocking(|| b.eval("document.querySelectorAll('#chart-status polyline').length"))
            .expect("polylines")
            .as_u64()
            .unwrap_or(0)
            >= 1
    );
    // Latency percentiles and guest time are charted too.
    blocking(|| {
        b.wait_for(
            "outpostConsole.charts.latency.latest('p99') > 0 && outpostConsole.charts.guests.latest('rewrite') > 0",
            Duration::from_secs(10),
        )
    });
    screenshot(&mut b, "dashboard");

    // Decisions tail, filtered.
    blocking(|| b.eval("location.hash = '#decisions'")).expect("navigate");
    blocking(|| {
        b.wait_for(
            "document.querySelectorAll('#dt-rows tr').length > 5",
            Duration::from_secs(10),
        )
    });
    let filtered = blocking(|| {
        b.eval(
            "(() => { const p = document.getElementById('dt-path'); p.value = 'index.m3u8'; \
             p.dispatchEvent(new Event('input')); \
             return [...document.querySelectorAll('#dt-rows tr td:nth-child(2)')].map(t => t.textContent); })()",
        )
    })
    .expect("filter");
    let rows = filtered.as_array().cloned().unwrap_or_default();
    assert!(!rows.is_empty(), "no row after filtering");
    assert!(
        rows.iter()
            .all(|r| r.as_str().is_some_and(|r| r.contains("index.m3u8"))),
        "{rows:?}"
    );
    screenshot(&mut b, "decisions");
    stop.store(true, Ordering::Relaxed);
    let mut sent = 0;
    for l in load {
        sent += l.await.unwrap_or(0);
    }
    eprintln!("console: the load generator sent {sent} requests");

    // Player: the demo stream through the node, beside its decisions.
    blocking(|| b.eval("location.hash = '#player'; outpostConsole.player.play(); true"))
        .expect("play");
    let played = blocking(|| {
        b.wait_for(
            "Number(document.body.dataset.played || 0) > 4 && document.body.dataset.played",
            Duration::from_secs(90),
        )
    });
    let offered = blocking(|| b.eval("document.body.dataset.offered")).expect("offered");
    let offered: Vec<u64> = offered
        .as_str()
        .unwrap_or("")
        .split(',')
        .filter_map(|v| v.parse().ok())
        .collect();
    assert!(!offered.is_empty(), "no rendition offered");
    assert!(
        offered.iter().all(|b| *b <= 4_000_000),
        "offered above the default cap: {offered:?}"
    );
    let mut rows = Vec::new();
    for _ in 0..60 {
        rows = blocking(|| {
            b.eval("[...document.querySelectorAll('#pl-decisions tr')].map(t => t.textContent)")
        })
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default();
        let has = |a: &str, b: &str| {
            rows.iter()
                .any(|r| r.as_str().is_some_and(|r| r.contains(a) && r.contains(b)))
        };
        if has(".ts", "sid=") && has(".ts", "etp=") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let text: Vec<&str> = rows.iter().filter_map(Value::as_str).collect();
    assert!(
        text.iter().any(|r| r.contains(".ts") && r.contains("sid="))
            && text.iter().any(|r| r.contains(".ts") && r.contains("etp=")),
        "the player's decisions lack a segment with the CMCD received and the CMSD sent:\n{}",
        text.join("\n")
    );
    eprintln!(
        "console: the player played {played} s, offered {offered:?}; {} decisions beside it",
        rows.len()
    );
    screenshot(&mut b, "player");

    // Playground on the node's own rewrite config: the same decision as the node.
    blocking(|| b.eval("location.hash = '#playground'")).expect("navigate");
    blocking(|| {
        b.wait_for(
            "window.outpostPlayground && document.getElementById('pg-preset').options.length > 1 \
             && document.getElementById('pg-config').value.includes('strip_query')",
            Duration::from_secs(30),
        )
    });
    let target = "/live/master.m3u8?utm_source=news&b=2&fbclid=x&a=1";
    let text =
        format!("GET {target} HTTP/1.1\nHost: example.com\nUser-Agent: Mozilla/5.0 (iPhone)");
    let out = blocking(|| {
        b.eval(&format!(
            "document.getElementById('pg-request').value = {}; outpostPlayground.run()",
            js_str(&text)
        ))
    })
    .expect("playground run");
    let reply = node
        .send(
            Request::get(target)
                .header("host", "example.com")
                .header("user-agent", "Mozilla/5.0 (iPhone)")
                .body(Full::new(Bytes::new()))
                .expect("request"),
        )
        .await;
    assert_eq!(reply.status, 200);
    let decided = blocking(|| {
        b.wait_for(
            &format!(
                "outpostConsole.recent.find(d => d.path === {}) || null",
                js_str(target)
            ),
            Duration::from_secs(10),
        )
    });
    let d = &decided["decision"];
    assert_eq!(
        out["forwarded"], d["forwarded"],
        "playground {out} node {d}"
    );
    // The values the node sets per request (its request id) differ; the names may not.
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|h| h.as_str()?.split(':').next().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(names(&out["headers_set"]), names(&d["headers_set"]));
    assert!(
        out["headers_set"]
            .as_array()
            .is_some_and(|a| a.iter().any(|h| h == "x-client-class: mobile"))
    );
    let changed = blocking(|| b.eval("document.querySelectorAll('#pg-forwarded .changed').length"))
        .expect("highlight");
    assert!(
        changed.as_u64().unwrap_or(0) >= 2,
        "changed lines {changed}"
    );
    screenshot(&mut b, "playground");
}

/// The guest config under test, as the node and the playground both read it.
const REWRITE: &str = r#"strip_query = "utm_*,fbclid"
sort_query = true
lowercase_path = true
remove_header = "x-debug"
"set_header.x-served-by" = "outpost"
rules = [
  "prefix /shuttle/ /space/shuttle/",
  "rewrite /images/{*rest} /img/{rest}",
  "redirect 301 /history/{*rest} https://history.example.com/{rest}",
  "client-class x-client-class",
  "header copy user-agent x-original-agent",
]
"#;

const AGENTS: [&str; 3] = [
    "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)",
    "Googlebot/2.1 (+http://www.google.com/bot.html)",
];

/// The first 1,000 requests of the NASA log the node can be sent (a few 1995
/// paths are not valid URIs), each with a User-Agent in turn.
fn nasa_requests() -> Vec<Value> {
    let log =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/traffic/nasa-ksc-1995-08-01.log");
    let reader = outpost_traffic::read_file(&log, &outpost_traffic::Options::default())
        .expect("the NASA log");
    reader
        .filter_map(Result::ok)
        .filter(|e| e.method == "GET" || e.method == "HEAD")
        .filter(|e| {
            let t = if e.query.is_empty() {
                e.path.clone()
            } else {
                format!("{}?{}", e.path, e.query)
            };
            t.parse::<http::Uri>().is_ok()
        })
        .take(1000)
        .enumerate()
        .map(|(i, e)| {
            json!({
                "method": e.method,
                "scheme": "http",
                "authority": "example.com",
                "path": e.path,
                "query": e.query,
                "headers": [["host", "example.com"], ["user-agent", AGENTS[i % AGENTS.len()]], ["x-debug", "1"]],
                "client_ip": "127.0.0.1",
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_playground_decides_as_the_node_on_the_nasa_log_and_the_manifest_fixtures() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/media");
    let origin = StaticOrigin::start(&fixtures).await;
    let rec = tempfile::tempdir().expect("recording dir");
    let mut config = format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\n\n[origins.main]\naddress = \"{}\"\n\n\
         [record]\ndir = \"{}\"\nsample = 1.0\n\n\
         [guests.rw]\nwasm = \"builtin:rewrite\"\n[guests.rw.config]\n{REWRITE}\n",
        origin.addr,
        rec.path().display()
    );
    config.push_str("[[routes]]\nname = \"all\"\norigin = \"main\"\nrequest = [\"rw\"]\n");
    let node = TestNode::new(&config).await;
    let requests = nasa_requests();
    assert_eq!(requests.len(), 1000);
    for r in &requests {
        let target = match r["query"].as_str() {
            Some(q) if !q.is_empty() => format!("{}?{q}", r["path"].as_str().unwrap_or("/")),
            _ => r["path"].as_str().unwrap_or("/").to_string(),
        };
        let mut req = Request::builder()
            .method(r["method"].as_str().unwrap_or("GET"))
            .uri(target);
        for h in r["headers"].as_array().into_iter().flatten() {
            req = req.header(h[0].as_str().unwrap_or(""), h[1].as_str().unwrap_or(""));
        }
        node.send(req.body(Full::new(Bytes::new())).expect("request"))
            .await;
    }
    // The node's decisions, from its own recording (written off the request path).
    let mut decisions = Vec::new();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        decisions = recorded(rec.path());
        if decisions.len() >= requests.len() {
            break;
        }
    }
    assert_eq!(decisions.len(), requests.len(), "recorded decisions");

    let admin = node.running.admin.expect("admin enabled");
    let mut b = blocking(|| Browser::open(&format!("http://{admin}/console/#playground")));
    blocking(|| b.wait_for("window.outpostPlayground", Duration::from_secs(30)));
    let mine = blocking(|| {
        b.eval(&format!(
            "outpostPlayground.rewriteBatch({}, {})",
            js_str(REWRITE),
            Value::from(requests.clone())
        ))
    })
    .expect("rewrite batch");
    let mine = mine.as_array().cloned().unwrap_or_default();
    assert_eq!(mine.len(), requests.len());
    let mut differ = Vec::new();
    let (mut redirects, mut rewritten) = (0, 0);
    for ((req, node_d), page) in requests.iter().zip(&decisions).zip(&mine) {
        let node_status = node_d["status"].as_u64();
        let same = if page["action"] == "respond" {
            redirects += 1;
            page["response"]["status"].as_u64() == node_status && node_d["forwarded"].is_null()
        } else {
            if page["forwarded"].as_str().is_some_and(|f| {
                !f.ends_with(&format!(
                    "{}{}",
                    req["path"].as_str().unwrap_or(""),
                    req["query"]
                        .as_str()
                        .filter(|q| !q.is_empty())
                        .map(|q| format!("?{q}"))
                        .unwrap_or_default()
                ))
            }) {
                rewritten += 1;
            }
            page["forwarded"] == node_d["forwarded"]
                && page["headers_set"] == node_d["headers_set"]
                && page["headers_removed"] == node_d["headers_removed"]
        };
        if !same {
            differ.push(format!("{req}\n  node: {node_d}\n  page: {page}"));
        }
    }
    eprintln!(
        "differential: {} requests, {rewritten} rewritten, {redirects} answered at the edge, {} differ",
        requests.len(),
        differ.len()
    );
    assert!(
        differ.is_empty(),
        "{} of {} decided differently, first:\n{}",
        differ.len(),
        requests.len(),
        differ
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        rewritten > 100 && redirects > 0,
        "the config must bite: {rewritten} rewritten, {redirects} redirected"
    );
    drop(node);

    // The rendition filter: the node's trimmed manifests and the page's, byte for byte.
    for cap in ["1000000", "3000000", "20000000"] {
        let config = format!(
            "[[listeners]]\naddress = \"127.0.0.1:0\"\n\n[origins.main]\naddress = \"{}\"\n\n\
             [guests.rend]\nwasm = \"builtin:rendition\"\n[guests.rend.config]\nmax_bandwidth = {cap}\n\n\
             [[routes]]\nname = \"all\"\norigin = \"main\"\nresponse = [\"rend\"]\n\
             transform = [\"application/vnd.apple.mpegurl\", \"application/dash+xml\"]\n",
            origin.addr
        );
        let node = TestNode::new(&config).await;
        for (file, ctype) in [
            ("master.m3u8", "application/vnd.apple.mpegurl"),
            ("manifest.mpd", "application/dash+xml"),
        ] {
            let at_node = node.get(&format!("/{file}")).await;
            assert_eq!(at_node.status, 200);
            let original = std::fs::read_to_string(fixtures.join(file)).expect("fixture");
            let response = json!({
                "status": 200,
                "headers": [["content-type", ctype]],
                "request": { "method": "GET", "scheme": "http", "authority": "127.0.0.1", "path": format!("/{file}"), "query": "", "headers": [] },
            });
            let page = blocking(|| {
                b.eval(&format!(
                    "outpostPlayground.rendition({}, {response}, {}, {{}})",
                    js_str(&format!("max_bandwidth = {cap}\n")),
                    js_str(&original)
                ))
            })
            .expect("rendition");
            let page_body = page["body"]
                .as_str()
                .map_or(original.clone(), str::to_string);
            assert_eq!(
                page_body,
                at_node.text(),
                "{file} at cap {cap}: the page and the node trimmed differently ({page})"
            );
            if cap == "1000000" {
                assert_ne!(page_body, original, "{file}: a 1 Mb/s cap must trim");
            }
        }
    }
}

/// Every decision of the JSONL recording under `dir`, in order.
fn recorded(dir: &Path) -> Vec<Value> {
    let Ok(files) = outpost_traffic::recorded_files(dir, "outpost") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for f in files {
        let Ok(r) = outpost_traffic::read_file(&f, &outpost_traffic::Options::default()) else {
            continue;
        };
        out.extend(r.filter_map(Result::ok).filter_map(|e| e.decision));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_has_a_strict_policy_and_needs_the_token_off_loopback() {
    // On loopback: open, with the policy on every file.
    let node = TestNode::new(edge_config::EMBEDDED_DEFAULT).await;
    let (status, headers, body) = admin_get(&node, "/console/", &[]).await;
    assert_eq!(status, 200);
    let csp = headers
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        csp.contains("script-src 'self' 'wasm-unsafe-eval'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    // No inline script or style, no inline handler.
    let lower = body.to_ascii_lowercase();
    for (i, _) in lower.match_indices("<script") {
        let tag = &lower[i..lower[i..].find('>').map_or(lower.len(), |e| i + e)];
        assert!(tag.contains("src="), "an inline script: {tag}");
    }
    assert!(
        !lower.contains("<style") && !lower.contains(" onclick=") && !lower.contains(" style=")
    );
    for f in [
        "console.js",
        "charts.js",
        "console.css",
        "playground.js",
        "playground_bg.wasm",
        "hls.min.js",
    ] {
        let (status, headers, _) = admin_get(&node, &format!("/console/{f}"), &[]).await;
        assert_eq!(status, 200, "{f}");
        assert!(headers.contains_key("content-security-policy"), "{f}");
    }
    // A page that rebinds its own name to 127.0.0.1 is not let in without the token.
    let (status, _, _) = admin_get(
        &node,
        "/console/api/stats",
        &[("host", "rebind.example:9901")],
    )
    .await;
    assert_eq!(status, 401, "a loopback console reached by another name");
    // What the player fetches through the node may be read, never run as the
    // console's script nor set its cookies.
    let (status, headers, _) = admin_get(&node, "/console/play/live/master.m3u8", &[]).await;
    assert_eq!(status, 200);
    let play_csp = headers
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(play_csp.starts_with("sandbox"), "{play_csp}");
    assert_eq!(
        headers
            .get("x-content-type-options")
            .and_then(|v| v.to_str().ok()),
        Some("nosniff")
    );
    let (status, _, stats) = admin_get(&node, "/console/api/stats", &[]).await;
    assert_eq!(status, 200);
    let stats: Value = serde_json::from_str(&stats).expect("stats JSON");
    assert!(
        stats["origins"]["demo"]["limit"].as_f64().unwrap_or(0.0) > 0.0,
        "{stats}"
    );
    drop(node);

    // Configured on a public address (the test still binds loopback): the token.
    let with_token = edge_config::EMBEDDED_DEFAULT.replacen(
        "admin = \"127.0.0.1:9901\"",
        "admin = \"0.0.0.0:9901\"\nadmin_token = \"console-s3cret-token\"",
        1,
    );
    assert_ne!(with_token, edge_config::EMBEDDED_DEFAULT);
    let node = TestNode::new(&with_token).await;
    for path in [
        "/console/",
        "/console/api/stats",
        "/console/api/events",
        "/console/play/live/master.m3u8",
    ] {
        let (status, _, _) = admin_get(&node, path, &[]).await;
        assert_eq!(status, 401, "{path} without the token");
        let (status, _, _) = admin_get(
            &node,
            path,
            &[("authorization", "Bearer wrong-token-of-same-len")],
        )
        .await;
        assert_eq!(status, 401, "{path} with a wrong token");
    }
    let (status, headers, _) = admin_get(
        &node,
        "/console/",
        &[("authorization", "Bearer console-s3cret-token")],
    )
    .await;
    assert_eq!(status, 200);
    let cookie = headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap_or("").to_string();
    let (status, _, _) = admin_get(&node, "/console/api/stats", &[("cookie", &pair)]).await;
    assert_eq!(status, 200, "the sign-in cookie opens the console");
    drop(node);

    // Public, and no token configured: refused, saying why.
    let no_token = edge_config::EMBEDDED_DEFAULT.replacen(
        "admin = \"127.0.0.1:9901\"",
        "admin = \"0.0.0.0:9901\"",
        1,
    );
    let node = TestNode::new(&no_token).await;
    let (status, _, body) = admin_get(&node, "/console/", &[]).await;
    assert_eq!(status, 401);
    assert!(body.contains("admin_token"), "{body}");
}
