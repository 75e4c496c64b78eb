//! The overload benchmark: a model origin of fixed capacity behind the node,
//! open-loop load at 1×, 2×, 4× and 8× its capacity with a live-video class mix,
//! shedding on and off side by side; then 8× with two scripted clients (one that
//! asserts `critical` on every request, one that rotates its client id) beside 24
//! ordinary viewers, each on its own loopback address (`HOSTILE=0` skips it).
//!
//! `cargo run --release -p outpost-benches --bin overload -- [SECONDS] [BASE_MS] [KNEE] [WARMUP_MS]`
//!
//! Each loaded run starts after `WARMUP_MS` (default 1000) at half the origin's
//! capacity on the same node, not counted, with the generator's connections opened
//! first: the spike arrives at a node that has been serving (0: at one just started).
//!
//! On a machine with two or more CPUs the node runs on a runtime of its own pinned
//! to the first CPU, and the generator and model origin on the others, as at a POP
//! where clients and origin are other machines. `ISOLATE=0` runs all three on the
//! same threads instead (the generator's own CPU then shows in the node's tail).

use std::time::Duration;

use outpost_tests::overload::{ModelOrigin, Placement, Spec, hostile_run, run, settle};

fn main() {
    match outpost_tests::overload::bench_runtime() {
        Ok((placement, rest, rt)) => rt.block_on(bench(placement, rest)),
        Err(e) => eprintln!("overload: cannot start a runtime: {e}"),
    }
}

async fn bench(placement: Placement, rest: Vec<usize>) {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, d: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let secs = arg(1, 10);
    let base = Duration::from_millis(arg(2, 20));
    let knee = arg(3, 8) as usize;
    let slo = Duration::from_secs(1);
    let capacity = ModelOrigin::capacity(base, knee);
    println!(
        "model origin: {base:?} per request up to {knee} in service (capacity {capacity:.0} req/s); \
         {secs}s per run; latency objective {slo:?}"
    );
    match placement {
        Placement::Own { node_cpu } => println!(
            "node on CPU {node_cpu} (a runtime of its own); generator and origin on CPUs {rest:?}"
        ),
        Placement::Shared => {
            println!("node, generator and origin share the same threads (ISOLATE=0 or one CPU)")
        }
    }
    println!(
        "{:>4} {:>9} {:>9} {:>7} {:>6}  per class (critical..bulk): success % / p50 ms / p99 ms",
        "load", "shedding", "goodput", "of cap", "conc"
    );
    let factors: Vec<f64> = std::env::var("FACTORS")
        .ok()
        .map(|v| v.split(',').filter_map(|f| f.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1.0, 2.0, 4.0, 8.0]);
    // The unloaded reference: a tenth of the capacity, nothing queued or shed.
    let warmup = Duration::from_millis(arg(4, 1000));
    let spec = Spec {
        base,
        knee,
        shedding: true,
        factor: 0.1,
        duration: Duration::from_secs(secs),
        slo,
        placement,
        warmup: Duration::ZERO,
    };
    let idle = run(&spec).await;
    let p99s: Vec<String> = idle
        .figures
        .classes
        .iter()
        .map(|(_, _, _, p99)| format!("{:.0}", p99.as_secs_f64() * 1e3))
        .collect();
    println!(
        "unloaded (0.1×) p99 ms per class (critical..bulk): {}",
        p99s.join(" / ")
    );
    for factor in factors {
        for shedding in [true, false] {
            let r = run(&Spec {
                shedding,
                factor,
                warmup,
                ..spec
            })
            .await;
            if std::env::var("VERBOSE").is_ok_and(|v| v == "1") {
                println!(
                    "  limiter every 200 ms (limit/in flight/latency ms/min latency ms): {}",
                    r.limits.join(" ")
                );
                let mut fails = std::collections::BTreeMap::<(u64, u16), usize>::new();
                for o in r
                    .outcomes
                    .iter()
                    .filter(|o| o.class == 0 && o.status != 200)
                {
                    *fails
                        .entry(((o.sent.as_millis() / 100) as u64, o.status))
                        .or_default() += 1;
                }
                println!("  critical failures by (100 ms, status): {fails:?}");
            }
            let (f, conc) = (r.figures, r.max_concurrency);
            let classes: Vec<String> = f
                .classes
                .iter()
                .map(|(_, rate, p50, p99)| {
                    format!(
                        "{:.1}/{:.0}/{:.0}",
                        rate * 100.0,
                        p50.as_secs_f64() * 1e3,
                        p99.as_secs_f64() * 1e3
                    )
                })
                .collect();
            println!(
                "{:>3}× {:>9} {:>8.0}/s {:>6.0}% {:>6}  {}{}",
                factor,
                if shedding { "on" } else { "off" },
                f.goodput,
                f.goodput / capacity * 100.0,
                conc,
                classes.join("  "),
                if f.inverted {
                    "  (class order inverted)"
                } else {
                    ""
                }
            );
        }
    }
    // Scripted clients under 8× load: one asserts `critical` (CMCD su) on every
    // request, one rotates its client id at 4× a viewer's rate; 24 ordinary viewers.
    if std::env::var("HOSTILE").map_or(true, |v| v != "0") {
        for protections in [true, false] {
            let r = hostile_run(base, knee, 24, 8.0, Duration::from_secs(secs), protections).await;
            println!(
                "8× with scripted clients, protections {}: viewer served {:.1} of {} (mean); \
                 su on every request {} of {}; rotating id (4× rate) {} of {}",
                if protections { "on " } else { "off" },
                r.viewer_served(),
                r.viewers.first().map_or(0, |t| t.sent),
                r.startup_liar.served,
                r.startup_liar.sent,
                r.id_rotator.served,
                r.id_rotator.sent
            );
        }
    }
    // Step changes of the origin's capacity under 4× load: how fast the limit follows.
    if std::env::var("SETTLE").map_or(true, |v| v != "0") {
        let half = Duration::from_secs(secs.max(4));
        for (from, to) in [(knee, (knee / 2).max(1)), ((knee / 2).max(1), knee)] {
            let s = settle(base, from, to, 4.0, half, placement).await;
            let trace: Vec<String> = s.trace.iter().map(u32::to_string).collect();
            println!(
                "knee {from} → {to} at {:.0}s under 4× load: limit settled at {:.1} in {:.1}s; limit every 100 ms: {}",
                half.as_secs_f64(),
                s.settled,
                s.settle_time.as_secs_f64(),
                trace.join(" ")
            );
        }
    }
}
