//! The rewrite guest's rules end to end: client → node (real sockets) → origins.
//! Client facts (trusted proxies, country) come from the host, rules from the
//! operator's TOML.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use outpost_tests::{TestNode, TestOrigin, guest_wasm};
use sha2::{Digest, Sha256};

/// A config with origins `main`, `beta` (and `eu`), the rewrite guest configured
/// with `rules` (TOML array items) and `extra` config lines, and one catch-all route.
fn config(origins: &[(&str, &TestOrigin)], rules: &[&str], extra: &str, client: &str) -> String {
    let mut s = String::from("[[listeners]]\naddress = \"127.0.0.1:0\"\n\n");
    for (name, o) in origins {
        s.push_str(&format!(
            "[origins.{name}]\naddress = \"{}\"\nfirst_byte_timeout = \"2s\"\n\n",
            o.addr
        ));
    }
    s.push_str(client);
    s.push_str(&format!(
        "\n[guests.rw]\nwasm = \"{}\"\nfail = \"closed\"\n[guests.rw.config]\n{extra}\nrules = [\n",
        guest_wasm("rewrite").display()
    ));
    for r in rules {
        s.push_str(&format!("  {r:?},\n"));
    }
    s.push_str("]\n\n[[routes]]\nname = \"all\"\norigin = \"main\"\nrequest = [\"rw\"]\n");
    s
}

fn get(target: &str, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let mut b = Request::get(target);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(Bytes::new())).expect("request")
}

/// HMAC-SHA256, written out (RFC 2104) so the test does not share code with the
/// guest it checks.
fn hmac_hex(key: &[u8], msg: &[u8]) -> String {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |b: u8| k.iter().map(|x| x ^ b).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(msg)
        .finalize();
    let outer = Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize();
    outer.iter().map(|b| format!("{b:02x}")).collect()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_urls_are_checked_at_the_edge() {
    let origin = TestOrigin::start().await;
    let node = TestNode::new(&config(
        &[("main", &origin)],
        &["sign /live/ key=media skew=5"],
        "\"secret.media\" = \"launch-day-secret\"",
        "",
    ))
    .await;
    let exp = now() + 300;
    let token = hmac_hex(
        b"launch-day-secret",
        format!("/live/a.m3u8:{exp}").as_bytes(),
    );

    // Valid: forwarded, the token parameters stripped (one cache key).
    let r = node
        .get(&format!("/live/a.m3u8?expires={exp}&token={token}"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["path"], "/live/a.m3u8");
    assert_eq!(r.json()["query"], "");
    assert_eq!(origin.hits(), 1);

    // Tampered path, tampered token, expired, missing: 403 at the edge.
    let expired = now() - 60;
    let expired_token = hmac_hex(
        b"launch-day-secret",
        format!("/live/a.m3u8:{expired}").as_bytes(),
    );
    let mut flipped = token.clone().into_bytes();
    flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).expect("ascii");
    for target in [
        format!("/live/b.m3u8?expires={exp}&token={token}"),
        format!("/live/a.m3u8?expires={exp}&token={flipped}"),
        format!("/live/a.m3u8?expires={}&token={token}", exp + 1),
        format!("/live/a.m3u8?expires={expired}&token={expired_token}"),
        "/live/a.m3u8".to_string(),
    ] {
        let r = node.get(&target).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{target}: {}", r.text());
    }
    assert_eq!(origin.hits(), 1, "no refused request reached the origin");

    // Outside the prefix nothing is required.
    assert_eq!(node.get("/vod/x.mp4").await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ab_split_is_sticky_and_within_one_percent_of_its_weights() {
    let main = TestOrigin::start().await;
    let beta = TestOrigin::start().await;
    let node = Arc::new(
        TestNode::new(&config(
            &[("main", &main), ("beta", &beta)],
            &["split launch by cookie.uid main:90 beta:10"],
            "",
            "",
        ))
        .await,
    );
    const CLIENTS: usize = 10_000;
    let mut arms: HashMap<usize, String> = HashMap::new();
    let mut tasks = Vec::new();
    for worker in 0..16 {
        let node = node.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for id in (worker..CLIENTS).step_by(16) {
                let cookie = format!("theme=dark; uid=viewer-{id}");
                let r = node.send(get("/watch", &[("cookie", &cookie)])).await;
                assert_eq!(r.status, StatusCode::OK);
                let arm = r.json()["headers"]["x-split-launch"]
                    .as_str()
                    .unwrap_or("none")
                    .to_string();
                out.push((id, arm));
            }
            out
        }));
    }
    for t in tasks {
        for (id, arm) in t.await.expect("worker") {
            arms.insert(id, arm);
        }
    }
    let beta_n = arms.values().filter(|a| *a == "beta").count();
    let main_n = arms.values().filter(|a| *a == "main").count();
    assert_eq!(beta_n + main_n, CLIENTS);
    assert_eq!(beta.hits(), beta_n, "the arm header names the origin used");
    assert_eq!(main.hits(), main_n);
    let share = beta_n as f64 / CLIENTS as f64;
    assert!(
        (share - 0.10).abs() <= 0.01,
        "beta got {beta_n} of {CLIENTS} ({share:.4}), want 10% ± 1%"
    );
    // Same client, same arm, every time.
    for id in (0..CLIENTS).step_by(97) {
        let cookie = format!("uid=viewer-{id}");
        let r = node.send(get("/watch", &[("cookie", &cookie)])).await;
        assert_eq!(
            r.json()["headers"]["x-split-launch"].as_str(),
            Some(arms[&id].as_str()),
            "client {id} changed arms"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_by_host_header_cookie_and_country() {
    let main = TestOrigin::start().await;
    let beta = TestOrigin::start().await;
    let eu = TestOrigin::start().await;
    let client = "[client]\ntrusted_proxies = [\"127.0.0.1\"]\n\
                  [client.countries]\n\"198.51.100.0/24\" = \"DE\"\n\"203.0.113.0/24\" = \"US\"\n";
    let node = TestNode::new(&config(
        &[("main", &main), ("beta", &beta), ("eu", &eu)],
        &[
            "route beta when host=beta.example.com",
            "route beta when header.x-beta=1",
            "route beta when cookie.beta=yes path=/app/",
            "route eu when country=DE,FR",
        ],
        "",
        client,
    ))
    .await;
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: &[Case] = &[
        (&[("host", "beta.example.com")], "/", "beta"),
        (&[("x-beta", "1")], "/", "beta"),
        (&[("cookie", "a=1; beta=yes")], "/app/x", "beta"),
        (&[("cookie", "a=1; beta=yes")], "/other", "main"),
        (&[("x-forwarded-for", "198.51.100.20")], "/", "eu"),
        (&[("x-forwarded-for", "203.0.113.5")], "/", "main"),
        (&[], "/", "main"),
    ];
    for (headers, path, want) in cases {
        let before = (main.hits(), beta.hits(), eu.hits());
        let r = node.send(get(path, headers)).await;
        assert_eq!(r.status, StatusCode::OK, "{headers:?}");
        let after = (main.hits(), beta.hits(), eu.hits());
        let got = if after.0 > before.0 {
            "main"
        } else if after.1 > before.1 {
            "beta"
        } else {
            "eu"
        };
        assert_eq!(got, *want, "{headers:?} {path}");
    }
    // Admission follows the origin the guest chose: a request passes only the
    // limiter of the origin it goes to (after the request guests and the cache),
    // which holds it and gets its latency.
    let metrics = node.metrics().await;
    for (origin, n) in [
        ("main", main.hits()),
        ("beta", beta.hits()),
        ("eu", eu.hits()),
    ] {
        let line = format!("outpost_admitted_total{{origin=\"{origin}\",class=\"normal\"}} {n}");
        assert!(
            metrics.lines().any(|l| l == line),
            "want `{line}` in:\n{metrics}"
        );
    }
    assert_eq!((beta.hits(), eu.hits()), (3, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_https_and_canonical_host() {
    let origin = TestOrigin::start().await;
    let node = TestNode::new(&config(
        &[("main", &origin)],
        &[
            "https 308",
            "canonical-host www.example.com 301",
            "redirect 302 /old/{*rest} https://{host}/new/{rest}",
        ],
        "",
        "[client]\ntrusted_proxies = [\"127.0.0.1\"]\n",
    ))
    .await;
    let r = node
        .send(get("/a?x=1", &[("host", "www.example.com")]))
        .await;
    assert_eq!(r.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(r.header("location"), Some("https://www.example.com/a?x=1"));

    // Behind a trusted TLS terminator the scheme is https: the next rule applies.
    let https = [("x-forwarded-proto", "https"), ("host", "example.com")];
    let r = node.send(get("/a", &https)).await;
    assert_eq!(r.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(r.header("location"), Some("https://www.example.com/a"));

    let www = [("x-forwarded-proto", "https"), ("host", "www.example.com")];
    let r = node.send(get("/old/2024/launch.html?ref=x", &www)).await;
    assert_eq!(r.status, StatusCode::FOUND);
    assert_eq!(
        r.header("location"),
        Some("https://www.example.com/new/2024/launch.html?ref=x")
    );
    assert_eq!(origin.hits(), 0);
    let r = node.send(get("/fine", &www)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(origin.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrites_header_rules_request_id_and_client_class() {
    let origin = TestOrigin::start().await;
    let node = TestNode::new(&config(
        &[("main", &origin)],
        &[
            "rewrite /videos/{id}/{*rest} /v/{id}/{rest}",
            "prefix /img/ /static/images/",
            "header set x-edge-country {country}",
            "header copy user-agent x-original-ua",
            "header append via outpost",
            "header remove x-debug",
            "request-id x-request-id",
            "client-class x-client-class",
        ],
        "",
        "[client]\n[client.countries]\n\"127.0.0.0/8\" = \"NL\"\n",
    ))
    .await;
    let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15";
    let r = node
        .send(get(
            "/videos/42/hls/./720p//seg-1.ts",
            &[("user-agent", iphone), ("x-debug", "1"), ("via", "1.1 cdn")],
        ))
        .await;
    let echo = r.json();
    assert_eq!(echo["path"], "/v/42/hls/720p/seg-1.ts");
    let h = &echo["headers"];
    assert_eq!(h["x-client-class"], "mobile");
    assert_eq!(h["x-original-ua"], iphone);
    assert_eq!(h["x-edge-country"], "NL");
    assert!(h.get("x-debug").is_none());
    let id = h["x-request-id"].as_str().expect("request id").to_string();
    assert_eq!(id.len(), 16);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    // Ids are unique per request; a client's own id is kept.
    let r2 = node.get("/img/logo.png").await;
    assert_eq!(r2.json()["path"], "/static/images/logo.png");
    assert_ne!(
        r2.json()["headers"]["x-request-id"].as_str(),
        Some(id.as_str())
    );
    let r3 = node
        .send(get(
            "/",
            &[("x-request-id", "abc-123"), ("user-agent", "Googlebot/2.1")],
        ))
        .await;
    assert_eq!(r3.json()["headers"]["x-request-id"], "abc-123");
    assert_eq!(r3.json()["headers"]["x-client-class"], "bot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_lists_use_the_client_address_through_trusted_proxies_only() {
    let origin = TestOrigin::start().await;
    let node = TestNode::new(&config(
        &[("main", &origin)],
        &[
            "deny-ip 192.0.2.0/24",
            "allow-ip 127.0.0.0/8, 198.51.100.0/24, 192.0.2.0/24",
        ],
        "",
        "[client]\ntrusted_proxies = [\"127.0.0.1\"]\n",
    ))
    .await;
    let denied = node
        .send(get("/", &[("x-forwarded-for", "192.0.2.9")]))
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    let outside = node
        .send(get("/", &[("x-forwarded-for", "203.0.113.9")]))
        .await;
    assert_eq!(outside.status, StatusCode::FORBIDDEN);
    let allowed = node
        .send(get("/", &[("x-forwarded-for", "198.51.100.3")]))
        .await;
    assert_eq!(allowed.status, StatusCode::OK);
    assert_eq!(
        node.get("/").await.status,
        StatusCode::OK,
        "loopback itself"
    );
    assert_eq!(origin.hits(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_peer_cannot_forge_its_address() {
    let origin = TestOrigin::start().await;
    // No trusted proxies: X-Forwarded-For from the client is ignored.
    let node = TestNode::new(&config(
        &[("main", &origin)],
        &["allow-ip 198.51.100.0/24"],
        "",
        "",
    ))
    .await;
    let r = node
        .send(get("/", &[("x-forwarded-for", "198.51.100.3")]))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_rule_is_a_config_error_at_its_line() {
    let origin = TestOrigin::start().await;
    let text = config(
        &[("main", &origin)],
        &[
            "https 308",
            "redirect 303 /a /b",
            "route nowhere when path=/x/",
            "deny-ip 10.0.0.0/33",
        ],
        "",
        "",
    );
    let config = outpost::Config::from_source(edge_config::Source {
        name: "edge.toml".into(),
        base_dir: ".".into(),
        text: text.clone(),
    })
    .expect("the file itself is valid TOML and schema");
    let errors = match outpost::node::Node::build(
        config,
        &outpost::BuildOptions {
            no_cache: true,
            ..Default::default()
        },
    )
    .await
    {
        Ok(_) => panic!("a node with bad rules must not build"),
        Err(e) => e,
    };
    let line_of = |needle: &str| {
        text.lines()
            .position(|l| l.contains(needle))
            .map(|i| i + 1)
            .expect("line")
    };
    let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 3, "{shown:#?}");
    for (needle, what) in [
        ("redirect 303", "303"),
        ("route nowhere", "nowhere"),
        ("deny-ip 10.0.0.0/33", "10.0.0.0/33"),
    ] {
        let line = line_of(needle);
        assert!(
            shown
                .iter()
                .any(|e| e.starts_with(&format!("edge.toml:{line}:")) && e.contains(what)),
            "no error at line {line} about {what}: {shown:#?}"
        );
    }
}
