//! Scenarios made from recordings: "launch day", the live share multiplied and the
//! whole compressed in time.

use outpost_traffic::Entry;

/// The "launch day" scenario: the share of `entries` under `live_prefix` multiplied
/// by `factor` (each copy a distinct client, `-2`, `-3` ... appended to its IP's
/// last label as a client id header), and the whole compressed `compress` times in
/// time around its first request. Deterministic: the same input gives the same
/// scenario.
pub fn launch_day(entries: &[Entry], live_prefix: &str, factor: u32, compress: f64) -> Vec<Entry> {
    let start = entries.iter().map(|e| e.at_us).min().unwrap_or(0);
    let squeeze = |at: u64| start + ((at.saturating_sub(start)) as f64 / compress.max(1e-9)) as u64;
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let mut base = e.clone();
        base.at_us = squeeze(e.at_us);
        let copies = if e.path.starts_with(live_prefix) {
            factor.max(1)
        } else {
            1
        };
        for i in 0..copies {
            let mut c = base.clone();
            if i > 0 {
                // Spread the copies over the same second, in order.
                c.at_us += u64::from(i) * 1_000_000 / u64::from(copies);
                c.headers
                    .push(("x-client-id".into(), format!("launch-viewer-{}-{i}", e.seq)));
            }
            out.push(c);
        }
    }
    out.sort_by_key(|e| e.at_us);
    for (i, e) in out.iter_mut().enumerate() {
        e.seq = i as u64;
    }
    out
}
