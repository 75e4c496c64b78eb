//! In-process replay: the node built with model origins (each request answered
//! from its recording) and a virtual clock moved to each request's recorded
//! arrival; requests one at a time, so the same input gives byte-identical
//! decisions. The other cores run the guests of the requests ahead
//! (`runtime::speculate`), whose traced calls the replay takes when every answer
//! they got from the host still holds: the same decisions, sooner.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use http::{HeaderName, HeaderValue, Method, Request};
use http_body_util::BodyExt;
use outpost_traffic::Entry;

use super::{Replayed, Report, percentiles};
use crate::clock::Clock;
use crate::decision::{AnsweredBy, Decision};
use crate::node::{BuildOptions, Node};
use crate::proxy::{ReplayId, serve_decided};
use crate::runtime::{Memo, Role, Speculation};
use crate::upstream::Recorded;

/// The request an entry describes, with its recording attached for a model origin.
fn request_of(e: &Entry) -> Result<Request<crate::body::Body>, String> {
    let method = Method::from_bytes(e.method.as_bytes()).map_err(|_| "bad method".to_string())?;
    let mut req = Request::new(crate::body::empty());
    *req.method_mut() = method;
    *req.uri_mut() = e
        .target()
        .parse()
        .map_err(|err| format!("bad target {:?}: {err}", e.target()))?;
    let h = req.headers_mut();
    for (k, v) in &e.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            h.append(n, v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&e.authority) {
        h.insert(http::header::HOST, v);
    }
    let body = match &e.body {
        Some(b) => Some(crate::record::body_bytes(b, 64 << 20)?),
        None => None,
    };
    req.extensions_mut().insert(Recorded {
        status: e.status,
        bytes: e.response_bytes,
        headers: e.response_headers.clone(),
        body,
    });
    Ok(req)
}

fn client_of(e: &Entry) -> SocketAddr {
    e.client_ip
        .as_deref()
        .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 0))
        .unwrap_or_else(|| SocketAddr::from(([192, 0, 2, 1], 0)))
}

/// A node for in-process replay of `config`: model origins, a virtual clock,
/// request ids from 1.
pub async fn replay_node(
    config: edge_config::Config,
    cache_dir: Option<std::path::PathBuf>,
) -> Result<(Arc<Node>, Clock), Vec<edge_config::Diagnostic>> {
    replay_node_with(config, cache_dir, Vec::new()).await
}

/// [`replay_node`], its model origins adding `model_headers` to every answer that
/// lacks them.
pub async fn replay_node_with(
    config: edge_config::Config,
    cache_dir: Option<std::path::PathBuf>,
    model_headers: Vec<(String, String)>,
) -> Result<(Arc<Node>, Clock), Vec<edge_config::Diagnostic>> {
    let clock = Clock::virtual_at(0);
    let node = Node::build(
        config,
        &BuildOptions {
            cache_dir,
            no_cache: false,
            demo_origin: None,
            clock: clock.clone(),
            model_origins: true,
            request_id_seed: Some(1),
            families: Default::default(),
            model_headers,
            cache: None,
        },
    )
    .await?;
    Ok((Arc::new(node), clock))
}

/// Requests replayed per chunk: the runs ahead of a chunk's turn hold at most this
/// many requests' traced calls.
const CHUNK: usize = 4096;

/// The threads an in-process replay uses by default: one per core.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// Replay `entries` in-process through `node` (from [`replay_node`]), in order, on
/// every core ([`in_process_on`] with [`default_jobs`]). Each decision is passed to
/// `each`; the report is returned.
pub async fn in_process(
    node: &Arc<Node>,
    clock: &Clock,
    entries: impl IntoIterator<Item = Entry>,
    each: impl FnMut(&Replayed),
) -> Report {
    in_process_on(node, clock, entries, default_jobs(), each).await
}

/// Replay `entries` in-process through `node`, one request at a time on the
/// virtual clock, with `jobs - 1` threads running the guests of the requests ahead
/// (`runtime::speculate`): the decisions are the same whatever `jobs` is.
pub async fn in_process_on(
    node: &Arc<Node>,
    clock: &Clock,
    entries: impl IntoIterator<Item = Entry>,
    jobs: usize,
    mut each: impl FnMut(&Replayed),
) -> Report {
    let jobs = jobs.clamp(1, most_jobs(node));
    let mut report = Report {
        jobs,
        ..Report::default()
    };
    let _done = Unspeculate(node);
    let mut latencies = Vec::new();
    let started = Instant::now();
    let mut entries = entries.into_iter();
    // What the replay's clock will read at each request (it never moves back).
    let mut reads = clock.monotonic_ns();
    let mut next = |base: u64| {
        let chunk: Vec<Entry> = entries.by_ref().take(CHUNK).collect();
        (!chunk.is_empty()).then(|| {
            let times: Vec<u64> = chunk
                .iter()
                .map(|e| {
                    reads = reads.max(e.at_us.saturating_mul(1000));
                    reads
                })
                .collect();
            let chunk = Arc::new(chunk);
            let ahead = (jobs > 1).then(|| Ahead::start(node, &chunk, times, base, jobs - 1));
            (chunk, ahead)
        })
    };
    let mut base = 0u64;
    let mut current = next(base);
    while let Some((chunk, ahead)) = current.take() {
        if let Some(a) = &ahead {
            node.runtime.speculate(Some(a.turn.clone()));
        }
        let after = base + chunk.len() as u64;
        let mut following = None;
        for (k, e) in chunk.iter().enumerate() {
            if let Some(a) = &ahead {
                a.arrive(k);
                // Its threads have nothing left here: start them on the next chunk.
                if following.is_none() && a.memo.exhausted() {
                    following = Some(next(after));
                }
            }
            let t0 = Instant::now();
            let (d, bytes) = one(node, clock, e, base + k as u64 + 1).await;
            latencies.push(t0.elapsed().as_micros() as u64);
            if let Some(a) = &ahead {
                a.memo.clear(k);
            }
            report.add(&d, bytes);
            each(&d);
        }
        if let Some(a) = ahead {
            let (taken, ran, stale) = a.finish();
            report.guest_calls_taken += taken;
            report.guest_calls_run += ran;
            report.guest_calls_stale += stale;
        }
        base = after;
        current = following.unwrap_or_else(|| next(base));
    }
    report.seconds = started.elapsed().as_secs_f64();
    report.latency_us = percentiles(latencies);
    report
}

/// The most threads a replay through `node` uses: each thread ahead holds one
/// instance at a time (two while chunks hand over), and the replay's own calls
/// must always find one in the pool, with the idle instances of reused guests.
fn most_jobs(node: &Node) -> usize {
    let pool = *node.config.node.max_instances.get_ref() as usize;
    let idle =
        node.guests.values().filter(|g| g.limits.reuse > 1).count() * crate::runtime::MAX_IDLE;
    1 + pool.saturating_sub(1 + idle) / 2
}

/// Leaves the node's runtime as it was however the replay ends.
struct Unspeculate<'a>(&'a Node);

impl Drop for Unspeculate<'_> {
    fn drop(&mut self) {
        self.0.runtime.speculate(None);
    }
}

/// One request through `node` at its recorded time, with id `id`: its decision and
/// the bytes the client got.
async fn one(node: &Node, clock: &Clock, e: &Entry, id: u64) -> (Replayed, u64) {
    clock.set(e.at_us.saturating_mul(1000));
    let request = format!("{} {}", e.method, e.target());
    let mut decision = Decision::detailed();
    let mut body = None;
    let bytes = match request_of(e) {
        Ok(mut req) => {
            req.extensions_mut().insert(ReplayId(id));
            let resp = serve_decided(node, req, client_of(e), &mut decision).await;
            // A body a guest made is kept as the client got it, decoded.
            let coding = resp
                .headers()
                .get(http::header::CONTENT_ENCODING)
                .and_then(|v| crate::coding::Coding::from_content_encoding(v.as_bytes()));
            let mut stream = resp.into_body();
            if !decision.body_replaced {
                // Only counted: drained frame by frame, never gathered into one
                // buffer (the bodies of a day of traffic, copied, cost more than
                // deciding them).
                let mut n = 0u64;
                loop {
                    match stream.frame().await {
                        Some(Ok(f)) => n += f.data_ref().map_or(0, |d| d.len() as u64),
                        Some(Err(_)) => break 0,
                        None => break n,
                    }
                }
            } else {
                match stream.collect().await {
                    Ok(b) => {
                        let b = b.to_bytes();
                        body = Some(match coding {
                            Some(c) => {
                                crate::coding::decode(c, &b, 64 << 20).unwrap_or_else(|_| b.clone())
                            }
                            None => b.clone(),
                        });
                        b.len() as u64
                    }
                    Err(_) => 0,
                }
            }
        }
        Err(why) => {
            decision.answered_by = AnsweredBy::Error;
            decision.reason = Some(why);
            decision.status = 400;
            0
        }
    };
    let d = Replayed {
        seq: e.seq,
        request,
        decision,
        body,
    };
    (d, bytes)
}

/// Threads running the guests of a chunk's requests ahead of their turn.
struct Ahead {
    memo: Arc<Memo>,
    turn: Arc<Speculation>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Ahead {
    /// `n` threads over `chunk` (whose first request is number `base + 1`); the
    /// replay's runtime takes their traces once it is given `turn`.
    fn start(
        node: &Arc<Node>,
        chunk: &Arc<Vec<Entry>>,
        times: Vec<u64>,
        base: u64,
        n: usize,
    ) -> Ahead {
        let times = Arc::new(times);
        let memo = Arc::new(Memo::new(chunk.len()));
        let turn = Arc::new(Speculation {
            memo: memo.clone(),
            role: Role::Replay,
            at: AtomicUsize::new(0),
        });
        let threads = (0..n)
            .filter_map(|k| {
                let (node, chunk, memo) = (node.clone(), chunk.clone(), memo.clone());
                let times = times.clone();
                std::thread::Builder::new()
                    .name(format!("outpost-ahead-{k}"))
                    .spawn(move || run_ahead(&node, &chunk, &times, base, memo))
                    .ok()
            })
            .collect();
        Ahead {
            memo,
            turn,
            threads,
        }
    }

    /// The replay is at request `k` of the chunk.
    fn arrive(&self, k: usize) {
        self.turn.at.store(k, Ordering::Relaxed);
        self.memo.arrive(k);
    }

    /// The chunk is done and so are its threads: the guest calls taken from
    /// traces, those run in turn, and of those the ones whose trace no longer held.
    fn finish(self) -> (u64, u64, u64) {
        for t in self.threads {
            let _ = t.join();
        }
        (
            self.memo.taken.load(Ordering::Relaxed) as u64,
            self.memo.ran.load(Ordering::Relaxed) as u64,
            self.memo.stale.load(Ordering::Relaxed) as u64,
        )
    }
}

/// One thread ahead: claim requests of `chunk` past the replay's position and run
/// their guests on a runtime of its own, with a clock of its own.
fn run_ahead(node: &Arc<Node>, chunk: &[Entry], times: &[u64], base: u64, memo: Arc<Memo>) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    let clock = Clock::virtual_at(0);
    let part = Arc::new(Speculation {
        memo: memo.clone(),
        role: Role::Ahead,
        at: AtomicUsize::new(0),
    });
    let runtime = node.runtime.ahead(clock.clone(), part.clone());
    rt.block_on(async {
        while let Some(i) = memo.claim() {
            // Done however this ends (a panic too): the replay never waits on it.
            let _done = Claimed(&memo, i);
            let (Some(e), Some(t)) = (chunk.get(i), times.get(i)) else {
                continue;
            };
            clock.put(*t);
            part.at.store(i, Ordering::Relaxed);
            if let Ok(mut req) = request_of(e) {
                req.extensions_mut().insert(ReplayId(base + i as u64 + 1));
                crate::proxy::ahead(node, &runtime, req, client_of(e)).await;
            }
        }
    });
}

/// A claimed request: marked done when dropped.
struct Claimed<'a>(&'a Memo, usize);

impl Drop for Claimed<'_> {
    fn drop(&mut self) {
        self.0.done(self.1);
    }
}
