//! Per-request cost of each hook (fresh instance + call + teardown) and of the
//! admit → request → response chain, in-process.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use outpost::contract::types::{ClientInfo, Header, RequestHead, ResponseHead};
use outpost::limiter::LoadSource;
use outpost::runtime::{EngineOptions, GuestLimits, Runtime};

fn wasm(name: &str) -> Vec<u8> {
    let path = outpost_test_guests::path(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
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

/// A browser's request: 18 header fields, a 2 KB cookie among them.
fn browser_head() -> RequestHead {
    let mut head = head();
    let h = |n: &str, v: String| Header {
        name: n.into(),
        value: v.into_bytes(),
    };
    let cookie: String = (0..40)
        .map(|i| format!("c{i:02}={:040x}; ", i * 7919))
        .collect();
    for (n, v) in [
        (
            "sec-ch-ua",
            "\"Chromium\";v=\"156\", \"Not=A?Brand\";v=\"24\"",
        ),
        ("sec-ch-ua-mobile", "?0"),
        ("sec-ch-ua-platform", "\"Linux\""),
        ("sec-fetch-site", "same-site"),
        ("sec-fetch-mode", "cors"),
        ("sec-fetch-dest", "empty"),
        ("origin", "https://www.example.com"),
        ("priority", "u=1, i"),
        ("connection", "keep-alive"),
    ] {
        head.headers.push(h(n, v.to_string()));
    }
    head.headers.push(h("cookie", cookie));
    head
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

/// A 10-variant multivariant playlist with audio groups and I-frame playlists.
fn master10() -> Vec<u8> {
    let mut s = String::from(
        "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n\
         #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aac\",NAME=\"English\",DEFAULT=YES,AUTOSELECT=YES,LANGUAGE=\"en\",URI=\"audio/en.m3u8\"\n\
         #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aac\",NAME=\"Deutsch\",DEFAULT=NO,AUTOSELECT=YES,LANGUAGE=\"de\",URI=\"audio/de.m3u8\"\n",
    );
    let ladder = [
        (300_000u64, "416x234"),
        (600_000, "640x360"),
        (900_000, "768x432"),
        (1_500_000, "960x540"),
        (2_500_000, "1280x720"),
        (3_500_000, "1280x720"),
        (5_000_000, "1920x1080"),
        (6_500_000, "1920x1080"),
        (8_000_000, "2560x1440"),
        (12_000_000, "3840x2160"),
    ];
    for (i, (bw, res)) in ladder.iter().enumerate() {
        s.push_str(&format!(
            "#EXT-X-STREAM-INF:BANDWIDTH={bw},AVERAGE-BANDWIDTH={},RESOLUTION={res},FRAME-RATE=29.970,CODECS=\"avc1.640028,mp4a.40.2\",AUDIO=\"aac\"\nv{i}/index.m3u8\n",
            bw * 9 / 10
        ));
    }
    for (i, (bw, res)) in ladder.iter().enumerate().take(4) {
        s.push_str(&format!(
            "#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH={},RESOLUTION={res},CODECS=\"avc1.640028\",URI=\"v{i}/iframes.m3u8\"\n",
            bw / 10
        ));
    }
    s.into_bytes()
}

/// A typical MPD as `ffmpeg -f dash` writes it: one video set of 5, one audio.
fn dash_mpd() -> Vec<u8> {
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
         <MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" profiles=\"urn:mpeg:dash:profile:isoff-live:2011\" type=\"static\" mediaPresentationDuration=\"PT1M0.0S\" minBufferTime=\"PT4.0S\">\n\
         \t<Period id=\"0\" start=\"PT0.0S\">\n\
         \t\t<AdaptationSet id=\"0\" contentType=\"video\" startWithSAP=\"1\" segmentAlignment=\"true\" bitstreamSwitching=\"true\" frameRate=\"30/1\" maxWidth=\"1920\" maxHeight=\"1080\" par=\"16:9\">\n",
    );
    for (i, (bw, w, h)) in [
        (800_000u64, 640, 360),
        (1_500_000, 960, 540),
        (3_000_000, 1280, 720),
        (6_000_000, 1920, 1080),
        (8_000_000, 1920, 1080),
    ]
    .iter()
    .enumerate()
    {
        s.push_str(&format!(
            "\t\t\t<Representation id=\"{i}\" mimeType=\"video/mp4\" codecs=\"avc1.640028\" bandwidth=\"{bw}\" width=\"{w}\" height=\"{h}\" sar=\"1:1\">\n\
             \t\t\t\t<SegmentTemplate timescale=\"15360\" initialization=\"init-stream$RepresentationID$.m4s\" media=\"chunk-stream$RepresentationID$-$Number%05d$.m4s\" startNumber=\"1\">\n\
             \t\t\t\t\t<SegmentTimeline><S t=\"0\" d=\"61440\" r=\"14\" /></SegmentTimeline>\n\
             \t\t\t\t</SegmentTemplate>\n\t\t\t</Representation>\n"
        ));
    }
    s.push_str(
        "\t\t</AdaptationSet>\n\
         \t\t<AdaptationSet id=\"1\" contentType=\"audio\" startWithSAP=\"1\" segmentAlignment=\"true\" bitstreamSwitching=\"true\">\n\
         \t\t\t<Representation id=\"5\" mimeType=\"audio/mp4\" codecs=\"mp4a.40.2\" bandwidth=\"128000\" audioSamplingRate=\"48000\">\n\
         \t\t\t\t<AudioChannelConfiguration schemeIdUri=\"urn:mpeg:dash:23003:3:audio_channel_configuration:2011\" value=\"2\" />\n\
         \t\t\t</Representation>\n\t\t</AdaptationSet>\n\t</Period>\n</MPD>\n",
    );
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
    let load_plain = |name: &str, cfg: &[(&str, &str)]| {
        let cfg: BTreeMap<String, String> = cfg
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        runtime
            .load(name, &wasm(name), limits, cfg, None, Default::default())
            .expect("guest loads")
    };
    // As the node loads a guest: pre-initialized when it exports `init`.
    let load = |name: &str, cfg: &[(&str, &str)]| {
        let plain = load_plain(name, cfg);
        rt.block_on(runtime.pre_initialize(&plain, &wasm(name), None))
            .expect("pre-initializes")
            .unwrap_or(plain)
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
    // A typical operator rule set: 20 rules of every kind (plus the query and
    // header keys), none of which answers for the benchmark's request.
    let rules20 = [
        "deny-ip 198.51.100.0/24,2001:db8:bad::/48",
        "allow-ip 0.0.0.0/0,::/0",
        "canonical-host cdn.example.com 301",
        "redirect 301 /old/{*rest} https://{host}/new/{rest}",
        "redirect 302 /promo/{id} https://www.example.com/p/{id}",
        "rewrite /videos/{id}/{*rest} /v/{id}/{rest}",
        "prefix /static/ /assets/v2/",
        "sign /private/ key=media",
        "header set x-forwarded-proto {scheme}",
        "header set x-edge-id {id}",
        "header copy user-agent x-original-ua",
        "header append via 1.1 outpost",
        "header remove x-debug",
        "request-id x-request-id",
        "client-class x-client-class",
        "route beta when cookie.beta=1",
        "route eu when country=DE,FR,NL",
        "route media when host=*.media.example.com path=/live/",
        "split launch by cookie.uid main:90 beta:10",
        "header set x-edge main",
    ]
    .join("\n");
    let rewrite20_config = [
        ("strip_query", "utm_*,fbclid,gclid"),
        ("sort_query", "true"),
        ("secret.media", "0123456789abcdef0123456789abcdef"),
        ("rules", rules20.as_str()),
    ];
    let rewrite20 = load("rewrite", &rewrite20_config);
    let rewrite20_plain = load_plain("rewrite", &rewrite20_config);
    let origins = ["main", "beta", "eu", "media"].map(String::from).to_vec();
    let problems = rt
        .block_on(rewrite20.check_config(&runtime, origins))
        .expect("check runs");
    assert!(problems.is_empty(), "the 20 rules are valid: {problems:?}");
    let rendition = load("rendition", &[("max_bandwidth", "4000000")]);
    let rendition_plain = load_plain("rendition", &[("max_bandwidth", "4000000")]);
    let body10 = master10();
    let mpd = dash_mpd();
    let dash_head = ResponseHead {
        status: 200,
        headers: vec![Header {
            name: "content-type".into(),
            value: "application/dash+xml".into(),
        }],
    };
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
    g.bench_function("request/rewrite-20-rules", |b| {
        b.iter(|| {
            rt.block_on(rewrite20.request(&runtime, ls.clone(), black_box(&req)))
                .expect("ok")
        })
    });
    g.bench_function("response/rendition-10-variants", |b| {
        b.iter(|| {
            rt.block_on(rendition.response(
                &runtime,
                ls.clone(),
                &req,
                &resp_head,
                Some(black_box(&body10)),
            ))
            .expect("ok")
        })
    });
    g.bench_function("response/rendition-dash-mpd", |b| {
        b.iter(|| {
            rt.block_on(rendition.response(
                &runtime,
                ls.clone(),
                &req,
                &dash_head,
                Some(black_box(&mpd)),
            ))
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
            Default::default(),
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
    // What pre-initialization (`init` run once at load, snapshotted) saves: the
    // same guests without the snapshot parse their configuration per request.
    g.bench_function("request/rewrite-20-rules/not-pre-initialized", |b| {
        b.iter(|| {
            rt.block_on(rewrite20_plain.request(&runtime, ls.clone(), black_box(&req)))
                .expect("ok")
        })
    });
    g.bench_function("response/rendition-10-variants/not-pre-initialized", |b| {
        b.iter(|| {
            rt.block_on(rendition_plain.response(
                &runtime,
                ls.clone(),
                &req,
                &resp_head,
                Some(black_box(&body10)),
            ))
            .expect("ok")
        })
    });
    // What a browser's header block costs a call: the same guests, 18 fields and a
    // 2 KB cookie instead of 8 fields.
    let browser = browser_head();
    g.bench_function("request/noop/browser-headers", |b| {
        b.iter(|| {
            rt.block_on(noop_request.request(&runtime, ls.clone(), black_box(&browser)))
                .expect("ok")
        })
    });
    g.bench_function("request/noop/browser-headers/reused-x100", |b| {
        b.iter(|| {
            rt.block_on(noop_request.request_reused(&runtime, ls.clone(), black_box(&browser), 100))
                .expect("ok")
        })
    });
    g.bench_function("chain/browser-headers", |b| {
        b.iter(|| {
            rt.block_on(async {
                shed.admit(&runtime, ls.clone(), &browser)
                    .await
                    .expect("admit");
                rewrite
                    .request(&runtime, ls.clone(), &browser)
                    .await
                    .expect("request");
                rendition
                    .response(&runtime, ls.clone(), &browser, &resp_head, Some(&body))
                    .await
                    .expect("response")
            })
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
