//! The burst benchmark: what a live segment boundary does to the node. Repeated
//! bursts of concurrent requests (100 to 2,000) and the segment-boundary pattern
//! (every viewer within 200 ms, every 2 s), through the node on its default limiter
//! (one request guest), against nginx configured as operators run it
//! (tests/fixtures/origins; Debian's `nginx` package) and against a model origin
//! with a knee. Reports 200s, 503s, p50/p99 and the limit over time.
//!
//! `cargo run --release -p outpost-benches --bin burst -- [VIEWERS] [BOUNDARIES]`
//!
//! Placement as in the overload benchmark: with two or more CPUs the node runs on a
//! runtime of its own pinned to the first CPU, the generator on the others
//! (`ISOLATE=0`: all on the same threads). nginx is a process of its own, unpinned.

use std::sync::Arc;
use std::time::Duration;

use outpost_tests::burst::{Tally, burst, segment_boundaries};
use outpost_tests::nginx::Nginx;
use outpost_tests::overload::{LoadClient, ModelOrigin, NodeUnderTest, Placement, load_client};

fn main() {
    match outpost_tests::overload::bench_runtime() {
        Ok((placement, _, rt)) => rt.block_on(bench(placement)),
        Err(e) => eprintln!("burst: cannot start a runtime: {e}"),
    }
}

const BURSTS: [usize; 10] = [100, 400, 400, 800, 800, 800, 800, 800, 1200, 2000];

/// The node's default configuration (no `[limiter]` section) with one request guest.
fn config(origin: std::net::SocketAddr) -> String {
    format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\n\n\
         [origins.main]\naddress = \"{origin}\"\npool_max_idle = 4096\n\n\
         [guests.rw]\nwasm = \"builtin:rewrite\"\ninstance_reuse = 1000\n\
         [guests.rw.config]\nrules = [\"header set x-edge outpost\"]\n\n\
         [[routes]]\nname = \"all\"\norigin = \"main\"\nrequest = [\"rw\"]\n"
    )
}

fn row(label: &str, t: &Tally, limit: Option<u32>) {
    println!(
        "{label:>14} {:>6} {:>6} {:>6} {:>8.1} {:>8.1} {:>6}",
        t.ok,
        t.shed,
        t.other.len(),
        t.quantile(0.5).as_secs_f64() * 1e3,
        t.quantile(0.99).as_secs_f64() * 1e3,
        limit.map_or("-".to_string(), |l| l.to_string())
    );
}

fn header() {
    println!(
        "{:>14} {:>6} {:>6} {:>6} {:>8} {:>8} {:>6}",
        "burst", "200", "503", "other", "p50 ms", "p99 ms", "limit"
    );
}

/// The limit every 100 ms while `f` runs.
async fn traced<F: std::future::Future<Output = ()>>(node: &NodeUnderTest, f: F) -> Vec<u32> {
    let limiter = node.limiter.clone();
    let stop = Arc::new(tokio::sync::Notify::new());
    let probe = tokio::spawn({
        let stop = stop.clone();
        async move {
            let mut v = Vec::new();
            loop {
                tokio::select! {
                    _ = stop.notified() => break,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => v.push(limiter.snapshot().limit),
                }
            }
            v
        }
    });
    f.await;
    stop.notify_one();
    probe.await.unwrap_or_default()
}

async fn bursts(client: &LoadClient, node: &NodeUnderTest) {
    header();
    let trace = traced(node, async {
        for n in BURSTS {
            let t = burst(client, node.addr, "/small.txt", n).await;
            row(&n.to_string(), &t, Some(node.limiter.snapshot().limit));
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
    .await;
    println!("limit every 100 ms: {trace:?}");
}

async fn boundaries(client: &LoadClient, node: &NodeUnderTest, viewers: usize, n: usize) {
    println!("segment boundaries: {viewers} viewers within 200 ms, every 2 s, {n} times");
    header();
    let mut all = Tally::default();
    let trace = traced(node, async {
        let tallies = segment_boundaries(
            client,
            node.addr,
            viewers,
            n,
            Duration::from_millis(200),
            Duration::from_secs(2),
        )
        .await;
        for (i, t) in tallies.into_iter().enumerate() {
            row(&format!("boundary {i}"), &t, None);
            all.merge(t);
        }
    })
    .await;
    row("all", &all, Some(node.limiter.snapshot().limit));
    println!("limit every 100 ms: {trace:?}");
}

async fn bench(placement: Placement) {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, d: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (viewers, n) = (arg(1, 1000), arg(2, 5));
    let mut files = vec![("small.txt".to_string(), b"hello from nginx\n".to_vec())];
    for b in 0..n {
        files.push((format!("live/seg-{b}.ts"), vec![0x47; 64 * 1024]));
    }
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_slice()))
        .collect();
    let nginx = Nginx::start(&refs);
    println!("placement: {placement:?}");

    println!("\n## nginx alone (reference)");
    header();
    let direct = load_client();
    for n in [800, 2000] {
        let t = burst(&direct, nginx.addr, "/small.txt", n).await;
        row(&n.to_string(), &t, None);
    }

    println!("\n## bursts through the node, nginx behind it (default limiter)");
    let node = NodeUnderTest::start(&config(nginx.addr), placement).await;
    bursts(&load_client(), &node).await;
    drop(node);

    println!("\n## segment boundaries through the node, nginx behind it");
    let node = NodeUnderTest::start(&config(nginx.addr), placement).await;
    let client = load_client();
    boundaries(&client, &node, viewers, n).await;
    boundaries(&client, &node, viewers * 2, n.min(3)).await;
    drop(node);

    // Model origins with a knee: 2 ms per request up to KNEE in service, slowing with
    // the square of the excess past it. Above the knee a burst must wait at the node,
    // not collapse the origin.
    for knee in [256, 32] {
        println!("\n## bursts through the node, model origin (2 ms, knee {knee})");
        let model = ModelOrigin::start(Duration::from_millis(2), knee).await;
        let node = NodeUnderTest::start(&config(model.addr), placement).await;
        bursts(&load_client(), &node).await;
        println!(
            "model origin's highest concurrency: {} (knee {knee})",
            model
                .max_in_flight
                .load(std::sync::atomic::Ordering::SeqCst)
        );
    }
}
