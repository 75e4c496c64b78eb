//! Shadow mode (issue "Replay that reproduces what the node decided ... and a shadow
//! mode"): a route's candidate request guests run on a sample of live requests
//! after their responses have gone, deciding nothing; their disagreements with the
//! live guests are counted and recorded. Real HTTP over real sockets, under load.

use std::time::Duration;

use outpost_tests::{StaticOrigin, TestNode, guest_wasm};

/// `outpost_shadow_total{route="all",result=R}`.
fn shadow_count(metrics: &str, result: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!(
                "outpost_shadow_total{{route=\"all\",result=\"{result}\"}} "
            ))
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Shadow runs finished or dropped.
fn settled(metrics: &str) -> u64 {
    shadow_count(metrics, "agree")
        + shadow_count(metrics, "disagree")
        + shadow_count(metrics, "dropped")
}

/// The node's metrics once `n` shadow runs have finished or been dropped (or after
/// `tries` tenths of a second).
async fn metrics_once_settled(node: &TestNode, n: u64, tries: u32) -> String {
    let mut m = String::new();
    for _ in 0..tries {
        m = node.metrics().await;
        if settled(&m) >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    m
}

/// The entries of the shadow's recording in `dir`, in order.
fn recorded(dir: &std::path::Path) -> Vec<outpost_traffic::Entry> {
    let files = outpost_traffic::recorded_files(dir, "shadow-all").expect("recording");
    let mut out = Vec::new();
    for f in files {
        let r = outpost_traffic::read_file(&f, &outpost_traffic::Options::default()).expect("read");
        out.extend(r.filter_map(Result::ok));
    }
    out
}

/// Paths: a quarter under `/old/` (where the candidate rewrites differently), in a
/// fixed pseudo-random order.
fn paths(n: usize) -> Vec<String> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x.is_multiple_of(4) {
                format!("/old/{i}")
            } else {
                format!("/keep/{i}")
            }
        })
        .collect()
}

fn config(origin: std::net::SocketAddr, candidate: &str, dir: &std::path::Path) -> String {
    format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\n\n[origins.main]\naddress = \"{origin}\"\n\n\
         [guests.live]\nwasm = \"builtin:rewrite\"\n[guests.live.config]\nrules = [\"prefix /old/ /new/\"]\n\n\
         {candidate}\n\
         [[routes]]\nname = \"all\"\norigin = \"main\"\nrequest = [\"live\"]\n\
         shadow = {{ request = [\"candidate\"], sample = 0.5, dir = \"{}\" }}\n",
        dir.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_that_differs_on_a_known_share_is_measured_at_that_share_under_load() {
    let root = tempfile::tempdir().expect("root");
    let origin = StaticOrigin::start(root.path()).await;
    let rec = tempfile::tempdir().expect("dir");
    let candidate = "[guests.candidate]\nwasm = \"builtin:rewrite\"\n[guests.candidate.config]\nrules = [\"prefix /old/ /newer/\"]\n";
    let node =
        std::sync::Arc::new(TestNode::new(&config(origin.addr, candidate, rec.path())).await);
    let all = paths(800);
    let old = all.iter().filter(|p| p.starts_with("/old/")).count();
    // Under load: eight clients at once.
    let mut tasks = Vec::new();
    for chunk in all.chunks(100) {
        let (node, chunk) = (node.clone(), chunk.to_vec());
        tasks.push(tokio::spawn(async move {
            for p in chunk {
                // The origin has no such file: 404, decided by the live guest.
                let r = node.get(&p).await;
                assert_eq!(r.status, 404, "{p}");
            }
        }));
    }
    for t in tasks {
        t.await.expect("client");
    }
    // The live guest alone decided: the origin saw /new/, never /newer/.
    let seen: Vec<String> = origin.requests().into_iter().map(|s| s.path).collect();
    assert_eq!(seen.iter().filter(|p| p.starts_with("/new/")).count(), old);
    assert!(
        !seen.iter().any(|p| p.starts_with("/newer/")),
        "a candidate decided"
    );

    // Every second request is shadowed: 400 runs, counted once they finish.
    let m = metrics_once_settled(&node, 400, 100).await;
    let (agree, disagree, dropped) = (
        shadow_count(&m, "agree"),
        shadow_count(&m, "disagree"),
        shadow_count(&m, "dropped"),
    );
    assert_eq!(agree + disagree + dropped, 400, "{m}");
    // The shadow thread runs at the lowest priority: under load it may fall
    // behind and drop samples, but its queue takes this burst whole.
    assert_eq!(dropped, 0, "{m}");
    let share = disagree as f64 / (agree + disagree) as f64;
    let expected = old as f64 / all.len() as f64;
    // The sample is every second request of a pseudo-random sequence: the
    // binomial standard error at 400 is about 2.2 points; allow four.
    eprintln!(
        "shadow: measured {share:.3} disagreeing, expected {expected:.3} ({old} of {})",
        all.len()
    );
    assert!(
        (share - expected).abs() < 0.09,
        "measured {share}, expected {expected}"
    );
    assert!(
        m.contains("outpost_shadow_disagreements_total{route=\"all\",kind=\"forwarded\"}"),
        "{m}"
    );

    // The disagreements are a recording `outpost replay --diff` reads: the
    // requests under /old/, as the live guests got them.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let recorded = recorded(rec.path());
    assert_eq!(recorded.len() as u64, disagree);
    assert!(recorded.iter().all(|e| e.path.starts_with("/old/")));
    let reason = recorded[0]
        .decision
        .as_ref()
        .and_then(|d| d["reason"].as_str())
        .unwrap_or("");
    assert!(
        reason.contains("/newer/") && reason.contains("/new/"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spinning_candidate_costs_the_live_requests_nothing() {
    let root = tempfile::tempdir().expect("root");
    let origin = StaticOrigin::start(root.path()).await;
    let rec = tempfile::tempdir().expect("dir");
    let candidate = format!(
        "[guests.candidate]\nwasm = \"{}\"\ncpu = \"20ms\"\n",
        guest_wasm("spin").display()
    );
    let node = TestNode::new(&config(origin.addr, &candidate, rec.path())).await;
    for p in paths(200) {
        let r = node.get(&p).await;
        assert_eq!(r.status, 404, "{p}");
    }
    // Each shadow run is stopped at the candidate's own deadline (or dropped when
    // they fall behind); none ever touched a live request.
    let m = metrics_once_settled(&node, 100, 200).await;
    assert_eq!(settled(&m), 100, "{m}");
    // Skipped (`fail = "open"`), as live: the candidates then forward the request
    // unchanged, which differs from the live rewrite only under /old/.
    assert!(shadow_count(&m, "failed") > 0, "{m}");
    assert_eq!(origin.requests().len(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_candidate_with_another_cap_disagrees_on_exactly_the_masters_it_trims() {
    let origin = outpost_tests::TestOrigin::start().await;
    let rec = tempfile::tempdir().expect("dir");
    let config = format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\n\n[origins.main]\naddress = \"{}\"\n\n\
         [guests.rend]\nwasm = \"builtin:rendition\"\n[guests.rend.config]\nmax_bandwidth = 4000000\n\n\
         [guests.rend2]\nwasm = \"builtin:rendition\"\n[guests.rend2.config]\nmax_bandwidth = 2000000\n\n\
         [[routes]]\nname = \"all\"\norigin = \"main\"\nresponse = [\"rend\"]\n\
         transform = [\"application/vnd.apple.mpegurl\"]\n\
         shadow = {{ response = [\"rend2\"], sample = 1.0, dir = \"{}\" }}\n",
        origin.addr,
        rec.path().display()
    );
    let node = TestNode::new(&config).await;
    // 10 masters (the 2 Mb/s cap trims one more variant) and 10 other answers.
    for i in 0..10 {
        let r = node.get(&format!("/v{i}/master.m3u8")).await;
        assert_eq!(r.status, 200);
        assert!(
            r.text().contains("BANDWIDTH=3000000"),
            "the live cap decided"
        );
        let r = node.get(&format!("/echo/{i}")).await;
        assert_eq!(r.status, 200);
    }
    let m = metrics_once_settled(&node, 20, 100).await;
    assert_eq!(shadow_count(&m, "disagree"), 10, "{m}");
    assert_eq!(shadow_count(&m, "agree"), 10, "{m}");
    assert!(
        m.contains("outpost_shadow_disagreements_total{route=\"all\",kind=\"body\"} 10"),
        "{m}"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let recorded = recorded(rec.path());
    assert_eq!(recorded.len(), 10);
    assert!(recorded.iter().all(|e| e.path.ends_with("master.m3u8")));
}

/// The value of the metric line starting `name` (with its labels), 0 when absent.
fn metric(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_that_is_its_own_candidate_is_counted_once_per_role_and_its_shadow_writes_stay_in_the_shadow()
 {
    // Fresh instances, and reused ones: a shadow run never takes or leaves an
    // instance a live call uses.
    for reuse in [0, 8] {
        own_candidate(reuse).await;
    }
}

async fn own_candidate(reuse: u32) {
    let root = tempfile::tempdir().expect("root");
    let origin = StaticOrigin::start(root.path()).await;
    let rec = tempfile::tempdir().expect("dir");
    // The `tally` fixture counts requests in its shared store: live, and as the
    // route's candidate on every request.
    let config = format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\n\n[origins.main]\naddress = \"{}\"\n\n\
         [guests.tally]\nwasm = \"{}\"\ninstance_reuse = {reuse}\n\n\
         [[routes]]\nname = \"all\"\norigin = \"main\"\nrequest = [\"tally\"]\n\
         shadow = {{ request = [\"tally\"], sample = 1.0, dir = \"{}\" }}\n",
        origin.addr,
        guest_wasm("tally").display(),
        rec.path().display()
    );
    let node = TestNode::new(&config).await;
    for i in 0..40 {
        assert_eq!(node.get(&format!("/t/{i}")).await.status, 404);
    }
    let m = metrics_once_settled(&node, 40, 100).await;
    assert_eq!(settled(&m), 40, "{m}");
    assert_eq!(shadow_count(&m, "dropped"), 0, "{m}");
    // Each candidate ran once its live request had written: it read a later
    // tally than the live call did, so every run disagrees.
    assert_eq!(shadow_count(&m, "disagree"), 40, "{m}");
    // Once all forty shadow runs have written, one more live request: the store
    // holds the live calls' count alone.
    assert_eq!(node.get("/t/last").await.status, 404);
    let tallies: Vec<String> = origin
        .requests()
        .iter()
        .map(|s| s.headers.get("x-tally").cloned().unwrap_or_default())
        .collect();
    let expected: Vec<String> = (0..=40).map(|n| n.to_string()).collect();
    assert_eq!(
        tallies, expected,
        "a shadow run wrote to the live store (instance_reuse = {reuse})"
    );
    // The live call reads back its own write.
    let last = origin.requests().pop().expect("last");
    assert_eq!(
        last.headers.get("x-tally-next").map(String::as_str),
        Some("41")
    );
    // Each role counts its own calls, 41 each once the last shadow run is done.
    let m = metrics_once_settled(&node, 41, 100).await;
    assert_eq!(shadow_count(&m, "disagree"), 41, "{m}");
    assert_eq!(
        metric(&m, "outpost_guest_invocations_total{guest=\"tally\"} "),
        41,
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "outpost_shadow_guest_invocations_total{guest=\"tally\"} "
        ),
        41,
        "{m}"
    );
}

#[tokio::test]
async fn a_shadow_call_reads_back_its_own_writes_and_leaves_the_store_as_it_was() {
    use outpost::contract::types::{HeaderOp, RequestAction};
    use outpost::runtime::{EngineOptions, GuestLimits, Runtime};
    let rt = Runtime::new(&EngineOptions {
        max_instances: 8,
        max_memory_bytes: 16 << 20,
        tick: Duration::from_millis(1),
        keep_resident: false,
    })
    .expect("engine");
    let wasm = std::fs::read(guest_wasm("tally")).expect("guest built");
    let limits = GuestLimits {
        memory_bytes: 16 << 20,
        cpu: Duration::from_millis(100),
        reuse: 0,
    };
    let tally = rt
        .load(
            "tally",
            &wasm,
            limits,
            Default::default(),
            None,
            Default::default(),
        )
        .expect("loads");
    let head = outpost_tests::request_head("/");
    let set = |action: RequestAction| -> Vec<String> {
        let RequestAction::Forward(edit) = action else {
            panic!("expected forward");
        };
        edit.headers
            .iter()
            .filter_map(|op| match op {
                HeaderOp::Set(h) => Some(String::from_utf8_lossy(&h.value).into_owned()),
                _ => None,
            })
            .collect()
    };
    tally.shared.set("n".into(), "5".into()).expect("set");
    let load = outpost::limiter::LoadSource::default();
    let shadow = rt.for_shadow();
    // The candidate reads the live tally, writes 6 and reads its 6 back...
    let out = tally
        .request(&shadow, load.clone(), &head)
        .await
        .expect("runs");
    assert_eq!(set(out), ["5", "6"]);
    // ...which nobody else sees: the store still says 5, and a second shadow
    // call (a fresh instance) starts from it again.
    assert_eq!(tally.shared.get("n").as_deref(), Some("5"));
    let out = tally
        .request(&shadow, load.clone(), &head)
        .await
        .expect("runs");
    assert_eq!(set(out), ["5", "6"]);
    // A live call writes for real.
    let out = tally.request(&rt, load, &head).await.expect("runs");
    assert_eq!(set(out), ["5", "6"]);
    assert_eq!(tally.shared.get("n").as_deref(), Some("6"));
}
