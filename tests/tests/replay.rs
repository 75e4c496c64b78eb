//! Record and replay: recorded real traffic through the node, in-process (model
//! origins, virtual clock) and over the network, and diffs between two configs.

use std::path::PathBuf;

use outpost::decision::AnsweredBy;
use outpost::replay::{self, Pacing, Replayed};
use outpost_tests::{TestNode, TestOrigin, guest_wasm};
use outpost_traffic::{Entry, Options};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/traffic")
        .join(name)
}

fn read(name: &str) -> Vec<Entry> {
    let reader = outpost_traffic::read_file(fixture(name), &Options::default())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    reader.filter_map(Result::ok).collect()
}

fn config_from(text: &str) -> outpost::Config {
    outpost::Config::from_source(edge_config::Source {
        name: "replay.toml".into(),
        base_dir: ".".into(),
        text: text.into(),
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

async fn run(config: outpost::Config, entries: &[Entry]) -> (Vec<Replayed>, replay::Report) {
    run_with(config, entries, Vec::new()).await
}

/// [`run`], the model origins adding `origin_headers` to their answers.
async fn run_with(
    config: outpost::Config,
    entries: &[Entry],
    origin_headers: Vec<(String, String)>,
) -> (Vec<Replayed>, replay::Report) {
    let cache = tempfile::tempdir().expect("tempdir");
    let dir = Some(cache.path().to_path_buf());
    let (node, clock) = replay::replay_node_with(config, dir, origin_headers)
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let mut out = Vec::new();
    let report = replay::in_process(&node, &clock, entries.iter().cloned(), |d| {
        out.push(d.clone())
    })
    .await;
    (out, report)
}

fn jsonl(decisions: &[Replayed]) -> Vec<u8> {
    let mut v = Vec::new();
    replay::write_decisions(&mut v, decisions).expect("write");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nasa_log_in_process_twice_gives_byte_identical_decisions() {
    let entries = read("nasa-ksc-1995-08-01.log");
    assert_eq!(entries.len(), 33_996);
    let embedded = || outpost::Config::embedded().expect("embedded config");
    let (a, report) = run(embedded(), &entries).await;
    let (b, _) = run(embedded(), &entries).await;
    assert_eq!(a.len(), entries.len(), "no request lost or duplicated");
    assert!(jsonl(&a) == jsonl(&b), "two runs decided differently");
    // The default config's decisions, as a sanity check of what was replayed.
    assert_eq!(report.requests, 33_996);
    assert!(report.origin_requests > 30_000, "{}", report.summary());
    // The one request of the day whose target the node refuses (`/\\yahoo.com`: a
    // backslash, which an origin may read as a slash) is a 400 before routing.
    let refused: Vec<&Replayed> = a.iter().filter(|d| d.decision.route.is_none()).collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].decision.status, 400);
    assert!(
        a.iter()
            .filter(|d| d.decision.route.is_none())
            .all(|d| d.decision.status == 400),
        "the default's catch-all route takes every other request"
    );
    assert!(
        a.iter()
            .filter(|d| d.decision.answered_by == AnsweredBy::Origin)
            .all(|d| d
                .decision
                .headers_set
                .iter()
                .any(|h| h.starts_with("x-request-id: "))),
        "the default rewrite rules add request ids"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nasa_log_through_the_edge_cache_sends_under_8_percent_to_the_origin() {
    let entries = read("nasa-ksc-1995-08-01.log");
    let embedded = || outpost::Config::embedded().expect("embedded config");
    // An access log records no response headers: the model origin says its
    // answers may be cached for a day (and served stale while revalidated: in
    // a replay that revalidation is the request's own, so runs stay identical),
    // as the KSC server's static files could.
    let cc = || {
        let v = "max-age=86400, stale-while-revalidate=600";
        vec![("cache-control".to_string(), v.to_string())]
    };
    let (a, report) = run_with(embedded(), &entries, cc()).await;
    let (b, _) = run_with(embedded(), &entries, cc()).await;
    assert!(jsonl(&a) == jsonl(&b), "two runs decided differently");
    let share = report.origin_requests as f64 / report.requests as f64;
    assert!(
        share <= 0.08,
        "{:.1}% reached the origin\n{}",
        share * 100.0,
        report.summary()
    );
    // The NASA log has 2,220 distinct URLs: each reached the origin about once.
    assert!(report.origin_requests >= 2_000, "{}", report.summary());
    let ratio = report.hit_ratio().expect("the cache took part");
    assert!(ratio > 0.9, "{}", report.summary());
    assert!(
        report.summary().contains("cache: hit ratio"),
        "{}",
        report.summary()
    );
    assert!(
        a.iter()
            .any(|d| d.decision.answered_by == AnsweredBy::Cache)
    );
    assert!(
        a.iter()
            .filter(|d| d.decision.answered_by == AnsweredBy::Cache)
            .all(|d| d.decision.cache.as_deref() == Some("hit")),
        "every cache answer is recorded as a hit"
    );
}

/// Replay `entries` through `config` in-process on `jobs` threads.
async fn run_on(
    config: outpost::Config,
    entries: &[Entry],
    jobs: usize,
) -> (Vec<Replayed>, replay::Report) {
    let (node, clock) = replay::replay_node(config, None)
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let mut out = Vec::new();
    let report = replay::in_process_on(&node, &clock, entries.iter().cloned(), jobs, |d| {
        out.push(d.clone())
    })
    .await;
    (out, report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nasa_log_decides_byte_for_byte_the_same_on_one_thread_and_on_four() {
    let entries = read("nasa-ksc-1995-08-01.log");
    let embedded = || outpost::Config::embedded().expect("embedded config");
    let (one, alone) = run_on(embedded(), &entries, 1).await;
    let (four, shared) = run_on(embedded(), &entries, 4).await;
    assert_eq!(one.len(), entries.len());
    assert!(
        jsonl(&one) == jsonl(&four),
        "one thread and four decided differently"
    );
    // The equality is not vacuous: on four threads most guest calls (the admit and
    // the request guest of every request) were run ahead of their turn and taken.
    assert_eq!(alone.guest_calls_taken, 0);
    assert!(shared.guest_calls_taken > 20_000, "{}", shared.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_that_keeps_state_in_a_reused_instance_is_never_run_ahead() {
    // `counter` counts its instance's calls; reused for 1,000 calls, the count a
    // request gets depends on every call before it, so none may run ahead.
    let entries: Vec<Entry> = read("nasa-ksc-1995-08-01.log")
        .into_iter()
        .take(3000)
        .collect();
    let config = || {
        config_from(&format!(
            "[[listeners]]\naddress = \"127.0.0.1:0\"\n[origins.main]\naddress = \"127.0.0.1:9\"\n\
             [guests.c]\nwasm = \"{}\"\ninstance_reuse = 1000\n\
             [[routes]]\nname = \"all\"\norigin = \"main\"\nrequest = [\"c\"]\n",
            guest_wasm("counter").display()
        ))
    };
    let (one, _) = run_on(config(), &entries, 1).await;
    let (four, shared) = run_on(config(), &entries, 4).await;
    assert!(
        jsonl(&one) == jsonl(&four),
        "one thread and four decided differently"
    );
    assert_eq!(shared.guest_calls_taken, 0, "{}", shared.summary());
    let counts: Vec<&String> = four
        .iter()
        .filter_map(|d| {
            d.decision
                .headers_set
                .iter()
                .find(|h| h.starts_with("x-count"))
        })
        .collect();
    assert!(counts.len() > 2900, "{}", counts.len());
    assert!(counts.iter().any(|h| *h == "x-count: 1000"), "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_loads_its_pre_initialized_guests_from_the_compile_cache_the_second_time() {
    // In a replay `wasi:random` is a fixed stream, so a guest's snapshot after its
    // `init` is the same every load, and the compile cache keeps it.
    let dir = tempfile::tempdir().expect("tempdir");
    let compiled = || {
        std::fs::read_dir(dir.path())
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
                    .count()
            })
            .unwrap_or(0)
    };
    let embedded = || outpost::Config::embedded().expect("embedded config");
    let (first, _) = replay::replay_node(embedded(), Some(dir.path().to_path_buf()))
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert!(first.guests.values().all(|g| g.pre_initialized));
    // Each of the three guests: its component, the instrumented one, the snapshot.
    assert_eq!(compiled(), 9);
    drop(first);
    let (second, _) = replay::replay_node(embedded(), Some(dir.path().to_path_buf()))
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert!(second.guests.values().all(|g| g.pre_initialized));
    assert_eq!(compiled(), 9, "the second load compiled nothing new");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_whose_answer_depends_on_its_hash_seeds_decides_the_same_in_every_replay() {
    // `seeded` reports its HashSet's order of the request's header names: its hash
    // seeds come from `wasi:random` in each fresh instance.
    let names = [
        "accept",
        "accept-language",
        "cookie",
        "dnt",
        "referer",
        "user-agent",
    ];
    let entries: Vec<Entry> = read("nasa-ksc-1995-08-01.log")
        .into_iter()
        .take(1500)
        .map(|mut e| {
            e.headers = names.iter().map(|n| (n.to_string(), "1".into())).collect();
            e
        })
        .collect();
    let config = || {
        config_from(&format!(
            "[[listeners]]\naddress = \"127.0.0.1:0\"\n[origins.main]\naddress = \"127.0.0.1:9\"\n\
             [guests.s]\nwasm = \"{}\"\n\
             [[routes]]\nname = \"all\"\norigin = \"main\"\nrequest = [\"s\"]\n",
            guest_wasm("seeded").display()
        ))
    };
    let (a, _) = run_on(config(), &entries, 1).await;
    let (b, _) = run_on(config(), &entries, 1).await;
    let (c, ahead) = run_on(config(), &entries, 4).await;
    assert!(jsonl(&a) == jsonl(&b), "two replays decided differently");
    assert!(
        jsonl(&a) == jsonl(&c),
        "one thread and four decided differently"
    );
    // In a replay the stream is fixed: every instance drew the same seeds, so
    // every request with the same header names got the same order...
    let orders: std::collections::BTreeSet<&str> = a
        .iter()
        .filter_map(|d| {
            d.decision
                .headers_set
                .iter()
                .find_map(|h| h.strip_prefix("x-order: "))
        })
        .collect();
    assert_eq!(orders.len(), 1, "{orders:?}");
    // ...and a guest that imports `wasi:random` is run ahead in a replay.
    assert!(ahead.guest_calls_taken > 500, "{}", ahead.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_node_seeds_each_instance_from_real_randomness() {
    let origin = TestOrigin::start().await;
    let node = TestNode::new(&outpost_tests::config(
        origin.addr,
        &[("s", "seeded", "")],
        "request = [\"s\"]",
    ))
    .await;
    let mut orders = std::collections::BTreeSet::new();
    for _ in 0..16 {
        let req = http::Request::get("/echo")
            .header("accept", "1")
            .header("accept-language", "1")
            .header("cookie", "1")
            .header("dnt", "1")
            .header("referer", "1")
            .header("user-agent", "1")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .expect("request");
        let echo = node.send(req).await.json();
        orders.insert(
            echo["headers"]["x-order"]
                .as_str()
                .unwrap_or("?")
                .to_string(),
        );
    }
    // 16 fresh instances, 7 names: all in one order by chance is (1/7!)^15.
    assert!(orders.len() > 1, "{orders:?}");
}

/// Two rewrite configs that differ by one rule; the raw path is kept (no
/// normalisation) so the affected requests can be counted independently.
fn rules_config(extra_rule: &str) -> String {
    format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\n[origins.main]\naddress = \"127.0.0.1:9\"\n\
         [guests.rw]\nwasm = \"{}\"\n[guests.rw.config]\nnormalize_path = false\nstrip_query = \"\"\n\
         rules = [\"header set x-edge 1\"{extra_rule}]\n\
         [[routes]]\nname = \"all\"\norigin = \"main\"\nrequest = [\"rw\"]\n",
        guest_wasm("rewrite").display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diff_lists_exactly_the_requests_whose_rewrite_differs() {
    let entries = read("nasa-ksc-1995-08-01.log");
    let (a, _) = run(config_from(&rules_config("")), &entries).await;
    let (b, _) = run(
        config_from(&rules_config(", \"prefix /images/ /img/\"")),
        &entries,
    )
    .await;
    let (diffs, kinds) = replay::diff(&a, &b);
    // Independently: the requests whose path starts with /images/ and that form a
    // valid request target at all.
    let expected: Vec<u64> = entries
        .iter()
        .filter(|e| e.path.starts_with("/images/") && e.target().parse::<http::Uri>().is_ok())
        .map(|e| e.seq)
        .collect();
    assert!(expected.len() > 1000, "the log has many image requests");
    let got: Vec<u64> = diffs.iter().map(|d| d.seq).collect();
    assert_eq!(got, expected);
    assert_eq!(kinds.len(), 1, "{kinds:?}");
    assert_eq!(kinds.get("forwarded"), Some(&(expected.len() as u64)));
    let d = &diffs[0];
    assert!(
        d.b.forwarded
            .as_deref()
            .is_some_and(|f| f.contains(" /img/")),
        "{d:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_har_file_replays_in_both_modes() {
    let origin = TestOrigin::start().await;
    let node = TestNode::new(&format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\n[origins.main]\naddress = \"{}\"\n\
         [guests.rw]\nwasm = \"builtin:rewrite\"\n\
         [[routes]]\nname = \"all\"\norigin = \"main\"\nrequest = [\"rw\"]\n",
        origin.addr
    ))
    .await;
    for (file, n) in [
        ("har/chrome_github.com_home.har", 20),
        ("har/www.bbc.com.har", 120),
        ("har/chrome_h2_www.nghttp2.org.har", 11),
        ("har/capture-har_cnn.har", 2),
    ] {
        let entries = read(file);
        assert_eq!(entries.len(), n, "{file}");
        let (decisions, report) = run(node.running.node().config.clone(), &entries).await;
        assert_eq!(decisions.len(), n, "{file}");
        assert_eq!(report.requests, n as u64);
        // Over the network: every request answered, at the recorded pace × 1000.
        let before = origin.hits();
        let report = replay::network(
            node.addr,
            entries,
            Pacing::Recorded {
                speed: 1000.0,
                max_gap: Some(std::time::Duration::from_millis(50)),
            },
            16,
            |_, _| {},
        )
        .await;
        assert_eq!(report.requests, n as u64, "{file}");
        assert_eq!(
            report.status.get(&200).copied(),
            Some(n as u64),
            "{file}: {}",
            report.summary()
        );
        assert_eq!(origin.hits() - before, n, "{file}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nasa_log_replays_over_the_network() {
    let origin = TestOrigin::start().await;
    let node = TestNode::new(&outpost_tests::config(origin.addr, &[], "")).await;
    let entries: Vec<Entry> = read("nasa-ksc-1995-08-01.log");
    let n = entries.len() as u64;
    let report = replay::network(node.addr, entries, Pacing::Flood, 64, |_, _| {}).await;
    assert_eq!(report.requests, n);
    // Every request got an HTTP answer (a few NASA paths are not valid URIs: 0).
    let answered: u64 = report
        .status
        .iter()
        .filter(|(s, _)| **s != 0)
        .map(|(_, c)| c)
        .sum();
    assert!(answered >= n - 10, "{}", report.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_records_a_sample_that_replays() {
    let origin = TestOrigin::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let node = TestNode::new(&format!(
        "{}\n[record]\ndir = \"{}\"\nsample = 0.5\n",
        outpost_tests::config(
            origin.addr,
            &[(
                "rw",
                "rewrite",
                "[guests.rw.config]\nrules = [\"prefix /old/ /new/\"]"
            )],
            "request = [\"rw\"]"
        ),
        dir.path().display()
    ))
    .await;
    let mut sent = Vec::new();
    for i in 0..20 {
        sent.push(node.get(&format!("/old/{i}?utm_source=x")).await.body.len() as u64);
    }
    // The writer thread flushes when idle.
    let mut recorded = Vec::new();
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        recorded.clear();
        for f in outpost_traffic::recorded_files(dir.path(), "outpost").expect("list") {
            let r = outpost_traffic::read_file(&f, &Options::default()).expect("read");
            recorded.extend(r.filter_map(Result::ok));
        }
        if recorded.len() >= 10 {
            break;
        }
    }
    assert_eq!(recorded.len(), 10, "every second request is recorded");
    let metrics = node.metrics().await;
    assert!(metrics.contains("outpost_recorded_total 10"), "{metrics}");
    assert!(
        metrics.contains("outpost_record_dropped_total 0"),
        "{metrics}"
    );
    for e in &recorded {
        let d = e.decision.as_ref().expect("decisions recorded");
        assert_eq!(d["answered_by"], "origin");
        assert!(
            d["forwarded"]
                .as_str()
                .is_some_and(|f| f.starts_with("GET /new/")),
            "{d}"
        );
        assert_eq!(e.status, Some(200));
        assert!(e.duration_us.is_some(), "{e:?}");
    }
    // The finish phase records once the body has gone: the bytes each sampled
    // request (every second one, from the first) sent to its client.
    let recorded_bytes: Vec<Option<u64>> = recorded.iter().map(|e| e.response_bytes).collect();
    let sampled: Vec<Option<u64>> = sent.iter().step_by(2).map(|n| Some(*n)).collect();
    assert_eq!(recorded_bytes, sampled);
    // The recording replays in-process with the same decisions.
    let (decisions, _) = run(node.running.node().config.clone(), &recorded).await;
    for (d, e) in decisions.iter().zip(&recorded) {
        let was = e.decision.as_ref().expect("decision");
        assert_eq!(
            Some(d.decision.forwarded.as_deref().unwrap_or("")),
            was["forwarded"].as_str()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_launch_day_scenario_multiplies_the_live_share_and_compresses_time() {
    let entries = read("nasa-ksc-1995-08-01.log");
    let live = entries
        .iter()
        .filter(|e| e.path.starts_with("/shuttle/countdown/"))
        .count();
    let spike = replay::launch_day(&entries, "/shuttle/countdown/", 20, 10.0);
    assert_eq!(spike.len(), entries.len() + 19 * live);
    let span = |v: &[Entry]| v.last().map(|e| e.at_us).unwrap_or(0) - v[0].at_us;
    let (before, after) = (span(&entries), span(&spike));
    assert!(
        after <= before / 10 + 1_000_000 && after >= before / 10 - 1_000_000,
        "{before} µs compressed to {after} µs"
    );
    assert!(spike.windows(2).all(|w| w[0].at_us <= w[1].at_us));
    assert_eq!(
        spike,
        replay::launch_day(&entries, "/shuttle/countdown/", 20, 10.0)
    );
    // Through the default config, in-process: nothing lost, deterministic.
    let (a, report) = run(outpost::Config::embedded().expect("embedded"), &spike).await;
    assert_eq!(a.len(), spike.len());
    assert_eq!(report.requests, spike.len() as u64);
}
