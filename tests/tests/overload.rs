//! CI-sized overload: 4× a model origin's capacity, open loop, with a realistic
//! class mix. With shedding, the origin gets what it can take and the most
//! important requests first; without, the same load collapses it.

use std::time::Duration;

use outpost_tests::TestNode;
use outpost_tests::overload::{ModelOrigin, Placement, Spec, run};

const BASE: Duration = Duration::from_millis(50);
const KNEE: usize = 4;
const SLO: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_times_overload_is_shed_by_class_and_the_origin_keeps_its_goodput() {
    let capacity = ModelOrigin::capacity(BASE, KNEE);
    let case = |shedding: bool, factor: f64, secs: u64| async move {
        let r = run(&Spec {
            base: BASE,
            knee: KNEE,
            shedding,
            factor,
            duration: Duration::from_secs(secs),
            slo: SLO,
            placement: Placement::Shared,
            warmup: Duration::ZERO,
        })
        .await;
        println!("limit/in_flight/rtt/min: {:?}", r.limits);
        (r.figures, r.max_concurrency)
    };
    let (unloaded, _) = case(true, 0.5, 2).await;
    let unloaded_p99 = unloaded.classes[0].3;
    let (on, conc_on) = case(true, 4.0, 4).await;
    let (off, conc_off) = case(false, 4.0, 4).await;
    let report = format!(
        "capacity {capacity:.0}/s; unloaded critical p99 {unloaded_p99:?}\n\
         shedding on:  goodput {:.0}/s, origin concurrency max {conc_on}, classes {:?}\n\
         shedding off: goodput {:.0}/s, origin concurrency max {conc_off}, classes {:?}",
        on.goodput, on.classes, off.goodput, off.classes
    );
    println!("{report}");
    // The figures the benchmark holds to (90% goodput, 99.9% critical) need a
    // release build and a quiet machine; a debug build on a shared CI core gets a
    // margin.
    assert!(on.goodput >= 0.75 * capacity, "{report}");
    assert!(on.classes[0].1 >= 0.99, "critical success: {report}");
    assert!(!on.inverted, "a class did worse than a lower one: {report}");
    assert!(
        off.goodput < on.goodput / 2.0,
        "without shedding the same load collapses the origin: {report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_past_its_bucket_is_demoted_to_bulk() {
    let origin = outpost_tests::TestOrigin::start().await;
    let node = TestNode::new(&format!(
        "{}\n[limiter]\nclient_rate = 1\nclient_burst = 3\n",
        outpost_tests::config(origin.addr, &[("shed", "shed", "")], "admit = \"shed\"")
    ))
    .await;
    let send = |id: &'static str| {
        let node = &node;
        async move {
            let req = http::Request::get("/vod/movie/seg-1.ts")
                .header("x-client-id", id)
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .expect("request");
            node.send(req).await.status
        }
    };
    for _ in 0..5 {
        assert_eq!(send("heavy").await, http::StatusCode::OK);
    }
    assert_eq!(send("light").await, http::StatusCode::OK);
    let metrics = node.metrics().await;
    // Three within the burst, two demoted (the origin had room, so they were
    // still served, as bulk); the light client was not demoted.
    assert!(
        metrics.contains("outpost_client_demoted_total 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("outpost_admitted_total{origin=\"main\",class=\"bulk\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("outpost_clients_tracked 2"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_eight_times_overload_scripted_clients_get_no_more_than_a_viewer() {
    let run = |protections| {
        outpost_tests::overload::hostile_run(
            BASE,
            KNEE,
            12,
            8.0,
            Duration::from_secs(6),
            protections,
        )
    };
    let report = |r: &outpost_tests::overload::HostileRun| {
        format!(
            "viewer served (mean) {:.1} of {}; startup liar {:?}; id rotator {:?}; viewers {:?}",
            r.viewer_served(),
            r.viewers.first().map_or(0, |t| t.sent),
            r.startup_liar,
            r.id_rotator,
            r.viewers.iter().map(|t| t.served).collect::<Vec<_>>()
        )
    };
    let on = run(true).await;
    let off = run(false).await;
    let (on_text, off_text) = (report(&on), report(&off));
    println!("protections on:  {on_text}\nprotections off: {off_text}");
    // Both scripted clients get about an ordinary viewer's share: asserting
    // `critical`, or inventing a new id per request, buys next to nothing. On a quiet
    // machine both stay within a viewer's share (see benches/README.md); the margin
    // here is for a debug build sharing two cores with the other tests (the
    // allowance is a fixed number of requests, a viewer's share shrinks with load).
    let viewer = on.viewer_served();
    assert!(viewer > 0.0, "{on_text}");
    assert!(
        (on.startup_liar.served as f64) <= viewer * 2.5 + 5.0,
        "{on_text}"
    );
    assert!(
        (on.id_rotator.served as f64) <= viewer * 2.5 + 5.0,
        "{on_text}"
    );
    // Without the allowance and the address as the client, both win by far more
    // (seen: the liar 17–60×, the rotator 4–40× a viewer):
    // the scenario does test them.
    let viewer = off.viewer_served();
    assert!(
        (off.startup_liar.served as f64) > viewer * 5.0,
        "{off_text}"
    );
    assert!((off.id_rotator.served as f64) > viewer * 2.0, "{off_text}");
}
