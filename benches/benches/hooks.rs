//! Per-request cost of each hook (fresh instance + call + teardown) and of the
//! admit → request → response chain, in-process.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use outpost::limiter::LoadSource;
use outpost::runtime::bindings::types::{ClientInfo, Header, RequestHead, ResponseHead};
use outpost::runtime::{EngineOptions, GuestLimits, Runtime};

fn wasm(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/{}.wasm",
        outpost::node::GUEST_ARTIFACTS,
        name.replace('-', "_")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn head() -> RequestHead {
    let h = |n: &str, v: &str| Header {
        name: n.into(),
        value: v.into(),
    };
    RequestHead {
        method: "GET".into(),
        scheme: "http".into(),
        authority: "cdn.example.com".into(),
        path: "/live/./event//720p/index.m3u8".into(),
        query: "utm_source=newsletter&session=abc123&fbclid=xyz".into(),
        headers: vec![
            h("host", "cdn.example.com"),
            h(
                "user-agent",
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15",
            ),
            h("accept", "*/*"),
            h("accept-encoding", "gzip, deflate, br"),
            h("accept-language", "en-US,en;q=0.9"),
            h("cmcd-request", "bl=12000,mtp=25400"),
            h("cmcd-session", "sid=\"6e2fb550\",st=l"),
            h("referer", "https://www.example.com/watch/launch"),
        ],
        client: ClientInfo {
            ip: "203.0.113.7".into(),
            country: None,
        },
        route: "live".into(),
        id: "00000000000000a1".into(),
    }
}

fn master() -> Vec<u8> {
    let mut s = String::from("#EXTM3U\n#EXT-X-VERSION:3\n");
    for (i, bw) in [
        400_000u64, 800_000, 1_500_000, 3_000_000, 6_000_000, 8_000_000,
    ]
    .iter()
    .enumerate()
    {
        s.push_str(&format!(
            "#EXT-X-STREAM-INF:BANDWIDTH={bw},RESOLUTION=1280x720,CODECS=\"avc1.64001f,mp4a.40.2\"\nv{i}/index.m3u8\n"
        ));
    }
    s.into_bytes()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let runtime = Runtime::new(&EngineOptions {
        max_instances: 100,
        max_memory_bytes: 16 << 20,
        tick: Duration::from_millis(1),
        keep_resident: true,
    })
    .expect("engine");
    let cold_runtime = Runtime::new(&EngineOptions {
        max_instances: 100,
        max_memory_bytes: 16 << 20,
        tick: Duration::from_millis(1),
        keep_resident: false,
    })
    .expect("engine");
    let limits = GuestLimits {
        memory_bytes: 16 << 20,
        cpu: Duration::from_millis(50),
        reuse: 0,
    };
    let load = |name: &str, cfg: &[(&str, &str)]| {
        let cfg: BTreeMap<String, String> = cfg
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        runtime
            .load(name, &wasm(name), limits, cfg, None)
            .expect("guest loads")
    };
    let noop_admit = load("noop-admit", &[]);
    let noop_request = load("noop-request", &[]);
    let noop_response = load("noop-response", &[]);
    let shed = load("shed", &[]);
    let rewrite = load(
        "rewrite",
        &[
            ("set_header.x-served-by", "outpost"),
            ("remove_header", "x-debug"),
        ],
    );
    let rendition = load("rendition", &[("max_bandwidth", "4000000")]);
    let req = head();
    let resp_head = ResponseHead {
        status: 200,
        headers: vec![Header {
            name: "content-type".into(),
            value: "application/vnd.apple.mpegurl".into(),
        }],
    };
    let body = master();
    let ls = LoadSource::default();

    let mut g = c.benchmark_group("hook");
    g.bench_function("admit/noop", |b| {
        b.iter(|| {
            rt.block_on(noop_admit.admit(&runtime, ls.clone(), black_box(&req)))
                .expect("ok")
        })
    });
    g.bench_function("admit/shed", |b| {
        b.iter(|| {
            rt.block_on(shed.admit(&runtime, ls.clone(), black_box(&req)))
                .expect("ok")
        })
    });
    g.bench_function("request/noop", |b| {
        b.iter(|| {
            rt.block_on(noop_request.request(&runtime, ls.clone(), black_box(&req)))
                .expect("ok")
        })
    });
    g.bench_function("request/rewrite", |b| {
        b.iter(|| {
            rt.block_on(rewrite.request(&runtime, ls.clone(), black_box(&req)))
                .expect("ok")
        })
    });
    g.bench_function("response/noop", |b| {
        b.iter(|| {
            rt.block_on(noop_response.response(&runtime, ls.clone(), &req, &resp_head, None))
                .expect("ok")
        })
    });
    g.bench_function("response/rendition-6-variants", |b| {
        b.iter(|| {
            rt.block_on(rendition.response(
                &runtime,
                ls.clone(),
                &req,
                &resp_head,
                Some(black_box(&body)),
            ))
            .expect("ok")
        })
    });
    g.finish();

    // The instance policy: what keeping memory resident saves, and what reusing one
    // instance for many requests (not done by the node) would save.
    let mut g = c.benchmark_group("policy");
    let cold_noop = cold_runtime
        .load(
            "noop-request",
            &wasm("noop-request"),
            limits,
            BTreeMap::new(),
            None,
        )
        .expect("guest loads");
    g.bench_function("request/noop/fresh-not-resident", |b| {
        b.iter(|| {
            rt.block_on(cold_noop.request(&cold_runtime, ls.clone(), black_box(&req)))
                .expect("ok")
        })
    });
    g.bench_function("request/noop/fresh-resident", |b| {
        b.iter(|| {
            rt.block_on(noop_request.request(&runtime, ls.clone(), black_box(&req)))
                .expect("ok")
        })
    });
    g.bench_function("request/noop/reused-x100", |b| {
        b.iter(|| {
            rt.block_on(noop_request.request_reused(&runtime, ls.clone(), black_box(&req), 100))
                .expect("ok")
        })
    });
    g.bench_function("request/rewrite/reused-x100", |b| {
        b.iter(|| {
            rt.block_on(rewrite.request_reused(&runtime, ls.clone(), black_box(&req), 100))
                .expect("ok")
        })
    });
    g.finish();

    c.bench_function("chain/shed+rewrite+rendition", |b| {
        b.iter(|| {
            rt.block_on(async {
                shed.admit(&runtime, ls.clone(), &req).await.expect("admit");
                rewrite
                    .request(&runtime, ls.clone(), &req)
                    .await
                    .expect("request");
                rendition
                    .response(&runtime, ls.clone(), &req, &resp_head, Some(&body))
                    .await
                    .expect("response")
            })
        })
    });
}

mod group {
    use super::*;
    criterion_group! {
        name = benches;
        config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
        targets = bench
    }
}
criterion_main!(group::benches);
