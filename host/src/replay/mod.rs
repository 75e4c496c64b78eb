//! Replay recorded traffic through a node and report, or diff, its decisions.
//!
//! In-process: no sockets. The same `proxy` the node runs, built with model
//! origins (each request answered from its recording) and a virtual clock moved to
//! each request's recorded arrival, requests taken one at a time: the same input
//! gives byte-identical decisions every run. Network: real HTTP against a running
//! node, open-loop at the recorded times (× speed, gaps clamped) or as fast as a
//! concurrency cap allows.
//!
//! One file per part: [`in_process`] (the node with model origins, the requests one
//! at a time), [`network`] (over HTTP), [`diff`] (two configs' decisions compared),
//! [`expect`] (assertions over a replay), [`scenario`] (recordings turned into a
//! launch day).

mod diff;
mod expect;
mod in_process;
mod network;
mod scenario;
mod verify;

use std::collections::BTreeMap;
use std::io::Write;

use serde::{Deserialize, Serialize};

use crate::decision::{AnsweredBy, Decision};

pub use diff::{Difference, Group, changed_fields, changes, diff, grouped};
pub use expect::{Bound, Expect, Expectations};
pub use in_process::{default_jobs, in_process, in_process_on, replay_node, replay_node_with};
pub use network::{Pacing, network};
pub use scenario::launch_day;
pub use verify::{EXCLUDED, Verification, verify};

/// One replayed request and its decision, as written to the decisions JSONL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replayed {
    /// The entry's position in its input.
    pub seq: u64,
    /// The request as recorded: `METHOD /path?query`.
    pub request: String,
    /// What the node decided.
    #[serde(flatten)]
    pub decision: Decision,
    /// The body the response guests made, when they replaced it (in-process
    /// replay only; `--diff` shows how two runs' bodies differ).
    #[serde(skip)]
    pub body: Option<bytes::Bytes>,
}

/// Totals over a replay.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Report {
    /// Requests replayed.
    pub requests: u64,
    /// Entries skipped as malformed.
    pub malformed: u64,
    /// Requests that reached an origin.
    pub origin_requests: u64,
    /// Response bytes the clients got.
    pub response_bytes: u64,
    /// Counts by status code.
    pub status: BTreeMap<u16, u64>,
    /// Counts by who answered (`origin`, `request:rw`, `limiter` ...).
    pub answered_by: BTreeMap<String, u64>,
    /// Per route: counts by who answered.
    pub routes: BTreeMap<String, BTreeMap<String, u64>>,
    /// Per class: (admitted to the origin, shed by the limiter).
    pub classes: BTreeMap<String, (u64, u64)>,
    /// Requests whose path or query the guests changed.
    pub rewritten: u64,
    /// Edge cache lookups by result (`hit`, `collapsed`, `stale`, `miss`, `pass`).
    pub cache: BTreeMap<String, u64>,
    /// Latency percentiles of the node's handling, microseconds (p50, p90, p99, max).
    pub latency_us: [u64; 4],
    /// Wall time of the run, seconds.
    pub seconds: f64,
    /// Threads of an in-process replay (the replay and those running guests ahead).
    pub jobs: usize,
    /// Guest calls taken from a run ahead of their turn (in-process, `jobs` > 1).
    pub guest_calls_taken: u64,
    /// Guest calls the replay ran in turn (no trace, or one whose answers changed).
    pub guest_calls_run: u64,
    /// Of those, the ones with a trace whose answers had changed.
    pub guest_calls_stale: u64,
}

impl Report {
    fn add(&mut self, d: &Replayed, bytes: u64) {
        let t = &d.decision;
        self.requests += 1;
        self.response_bytes += bytes;
        *self.status.entry(t.status).or_default() += 1;
        let who = t.answered_by.to_string();
        *self.answered_by.entry(who.clone()).or_default() += 1;
        let route = t.route.clone().unwrap_or_else(|| "(none)".into());
        *self
            .routes
            .entry(route)
            .or_default()
            .entry(who)
            .or_default() += 1;
        if t.answered_by == AnsweredBy::Origin {
            self.origin_requests += 1;
        }
        if let Some(c) = &t.class {
            let e = self.classes.entry(c.clone()).or_default();
            if t.answered_by == AnsweredBy::Limiter {
                e.1 += 1;
            } else if t.answered_by == AnsweredBy::Origin {
                e.0 += 1;
            }
        }
        if t.forwarded.as_deref().is_some_and(|f| f != d.request) {
            self.rewritten += 1;
        }
        if let Some(c) = &t.cache {
            let result = match c.split_whitespace().next().unwrap_or("") {
                "collapsed-miss" | "miss," => "miss",
                r => r,
            };
            *self.cache.entry(result.to_string()).or_default() += 1;
        }
    }

    /// The share of cache lookups answered from the cache (fresh or stale), if the
    /// cache took part at all.
    pub fn hit_ratio(&self) -> Option<f64> {
        let total: u64 = self.cache.values().sum();
        let hits: u64 = ["hit", "collapsed", "stale"]
            .iter()
            .filter_map(|k| self.cache.get(*k))
            .sum();
        (total > 0).then(|| hits as f64 / total as f64)
    }

    /// Human-readable summary.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "requests {}  malformed {}  origin requests {}  rewritten {}  response bytes {}\n\
             latency µs p50 {} p90 {} p99 {} max {}  ({:.2} s, {:.0} req/s)\n",
            self.requests,
            self.malformed,
            self.origin_requests,
            self.rewritten,
            self.response_bytes,
            self.latency_us[0],
            self.latency_us[1],
            self.latency_us[2],
            self.latency_us[3],
            self.seconds,
            self.requests as f64 / self.seconds.max(1e-9)
        );
        if self.jobs > 1 {
            s.push_str(&format!(
                "threads {}: guest calls taken from runs ahead {}, run in turn {} \
                 ({} with a trace whose answers had changed)\n",
                self.jobs, self.guest_calls_taken, self.guest_calls_run, self.guest_calls_stale
            ));
        }
        s.push_str("status:");
        for (k, v) in &self.status {
            s.push_str(&format!(" {k}={v}"));
        }
        s.push_str("\nanswered by:");
        for (k, v) in &self.answered_by {
            s.push_str(&format!(" {k}={v}"));
        }
        s.push('\n');
        for (route, counts) in &self.routes {
            s.push_str(&format!("route {route}:"));
            for (k, v) in counts {
                s.push_str(&format!(" {k}={v}"));
            }
            s.push('\n');
        }
        for (class, (admitted, shed)) in &self.classes {
            s.push_str(&format!("class {class}: admitted {admitted} shed {shed}\n"));
        }
        if let Some(ratio) = self.hit_ratio() {
            s.push_str(&format!("cache: hit ratio {:.1}%", ratio * 100.0));
            for (k, v) in &self.cache {
                s.push_str(&format!(" {k}={v}"));
            }
            s.push('\n');
        }
        s
    }
}

fn percentiles(mut v: Vec<u64>) -> [u64; 4] {
    if v.is_empty() {
        return [0; 4];
    }
    v.sort_unstable();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    [at(0.5), at(0.9), at(0.99), v[v.len() - 1]]
}

/// Headers a replay does not resend: bodies are not replayed, and framing and
/// connection management belong to the replaying connection.
fn replayable(name: &str) -> bool {
    !matches!(
        name.to_ascii_lowercase().as_str(),
        "content-length"
            | "transfer-encoding"
            | "connection"
            | "keep-alive"
            | "upgrade"
            | "expect"
            | "host"
            | "te"
            | "trailer"
            | "proxy-connection"
    )
}

/// Write decisions as JSONL (stable field order: byte-identical across runs).
pub fn write_decisions(out: &mut dyn Write, decisions: &[Replayed]) -> std::io::Result<()> {
    for d in decisions {
        let line = serde_json::to_string(d).map_err(std::io::Error::other)?;
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
    }
    Ok(())
}
