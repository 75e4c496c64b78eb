//! Overload: a model origin with a fixed capacity (its service time grows past a
//! knee, like a real server's), an open-loop load generator with a class mix, and
//! the figures the shedding issue asks for. Used by the CI-sized test and by the
//! `overload` benchmark binary.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// A model origin: each request takes `base` while at most `knee` are in service;
/// past the knee every request slows with the square of the excess, so throughput
/// falls as concurrency grows (collapse), like a real server thrashing.
pub struct ModelOrigin {
    pub addr: SocketAddr,
    pub in_flight: Arc<AtomicUsize>,
    pub max_in_flight: Arc<AtomicUsize>,
    pub served: Arc<AtomicU64>,
    knee: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ModelOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ModelOrigin {
    /// Capacity in requests per second: `knee / base`.
    pub fn capacity(base: Duration, knee: usize) -> f64 {
        knee as f64 / base.as_secs_f64()
    }

    pub async fn start(base: Duration, knee: usize) -> ModelOrigin {
        let in_flight = Arc::new(AtomicUsize::new(0));
        let max_in_flight = Arc::new(AtomicUsize::new(0));
        let served = Arc::new(AtomicU64::new(0));
        let knee = Arc::new(AtomicUsize::new(knee.max(1)));
        let (f, m, s, k) = (
            in_flight.clone(),
            max_in_flight.clone(),
            served.clone(),
            knee.clone(),
        );
        let (addr, task) = crate::serve_loopback(move |_req| {
            let (f, m, s, k) = (f.clone(), m.clone(), s.clone(), k.clone());
            async move {
                let n = f.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(n, Ordering::SeqCst);
                let knee = k.load(Ordering::SeqCst);
                let excess = (n as f64 / knee as f64).max(1.0);
                tokio::time::sleep(base.mul_f64(excess * excess)).await;
                f.fetch_sub(1, Ordering::SeqCst);
                s.fetch_add(1, Ordering::SeqCst);
                Response::new(Full::new(Bytes::from_static(b"segment\n")))
            }
        })
        .await;
        ModelOrigin {
            addr,
            in_flight,
            max_in_flight,
            served,
            knee,
            task,
        }
    }

    /// Change the knee (the origin's capacity) while it serves: a step change.
    pub fn set_knee(&self, knee: usize) {
        self.knee.store(knee.max(1), Ordering::SeqCst);
    }
}

/// The class mix of a live-video service, as the `shed` guest classifies it:
/// (class index, share, path, user agent). Live segments (critical) are a tenth of
/// requests, so even at 8× the origin's capacity they alone fit in it.
pub const VIDEO_MIX: [(usize, f64, &str, &str); 5] = [
    (
        0,
        0.10,
        "/live/event/720p/seg-1.ts",
        "Mozilla/5.0 (iPhone) Safari",
    ),
    (
        1,
        0.20,
        "/vod/movie/seg-9.ts",
        "Mozilla/5.0 (X11; Linux) Firefox",
    ),
    (
        2,
        0.35,
        "/thumbs/t1.jpg",
        "Mozilla/5.0 (X11; Linux) Firefox",
    ),
    (3, 0.25, "/beacon", "Mozilla/5.0 (X11; Linux) Firefox"),
    (
        4,
        0.10,
        "/vod/movie/seg-2.ts",
        "Googlebot/2.1 (+http://www.google.com/bot.html)",
    ),
];

/// One request's outcome.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    pub class: usize,
    pub status: u16,
    pub latency: Duration,
    /// When it was sent, from the start of the run.
    pub sent: Duration,
}

/// The generator's HTTP client: keeps up to 4096 idle connections.
pub fn load_client() -> LoadClient {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(4096)
        .build_http()
}

/// The generator's HTTP client type.
pub type LoadClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// Open-loop load: `rate` arrivals per second for `duration`, each of a class drawn
/// deterministically from `mix` (a fixed interleaving, no randomness), sent on
/// `client` (reusing its open connections) whether or not earlier ones were
/// answered. Requests time out after `timeout` (status 0).
pub async fn open_loop(
    client: &LoadClient,
    target: SocketAddr,
    rate: f64,
    duration: Duration,
    mix: &[(usize, f64, &str, &str)],
    timeout: Duration,
) -> Vec<Outcome> {
    let total = (rate * duration.as_secs_f64()).round() as usize;
    let interval = Duration::from_secs_f64(1.0 / rate);
    // Weighted round robin: each class gets its share of every arrival window.
    let mut credit: Vec<f64> = vec![0.0; mix.len()];
    let start = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        for (c, m) in credit.iter_mut().zip(mix) {
            *c += m.1;
        }
        let pick = credit
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(j, _)| j)
            .unwrap_or(0);
        credit[pick] -= 1.0;
        let (class, _, path, ua) = mix[pick];
        tokio::time::sleep_until(start + interval.mul_f64(i as f64)).await;
        let client = client.clone();
        let uri = format!("http://{target}{path}");
        let ua = ua.to_string();
        tasks.spawn(async move {
            let t0 = Instant::now();
            let sent = start.elapsed();
            let req = Request::get(uri)
                .header("user-agent", ua)
                .body(Full::new(Bytes::new()));
            let status = match req {
                Ok(req) => match tokio::time::timeout(timeout, async {
                    let resp = client.request(req).await.ok()?;
                    let status = resp.status();
                    resp.into_body().collect().await.ok()?;
                    Some(status)
                })
                .await
                {
                    Ok(Some(s)) => s.as_u16(),
                    _ => 0,
                },
                Err(_) => 0,
            };
            Outcome {
                class,
                status,
                latency: t0.elapsed(),
                sent,
            }
        });
    }
    let mut out = Vec::with_capacity(total);
    while let Some(r) = tasks.join_next().await {
        if let Ok(o) = r {
            out.push(o);
        }
    }
    out
}

/// Figures of one run.
#[derive(Debug, Clone)]
pub struct Figures {
    /// Successful responses within the latency objective per second.
    pub goodput: f64,
    /// Per class: (sent, success rate, p50, p99 of successful requests).
    pub classes: Vec<(usize, f64, Duration, Duration)>,
    /// Whether some class was shed while a lower class was admitted more often:
    /// the per-class success rates are not ordered.
    pub inverted: bool,
}

fn pct(v: &mut [Duration], q: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort_unstable();
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// Goodput and per-class figures over `duration`, with latency objective `slo`.
pub fn figures(outcomes: &[Outcome], duration: Duration, slo: Duration, classes: usize) -> Figures {
    let good = outcomes
        .iter()
        .filter(|o| o.status == 200 && o.latency <= slo)
        .count();
    let mut per = Vec::new();
    for c in 0..classes {
        let sent: Vec<&Outcome> = outcomes.iter().filter(|o| o.class == c).collect();
        let mut ok: Vec<Duration> = sent
            .iter()
            .filter(|o| o.status == 200)
            .map(|o| o.latency)
            .collect();
        let rate = if sent.is_empty() {
            1.0
        } else {
            ok.len() as f64 / sent.len() as f64
        };
        let p50 = pct(&mut ok, 0.5);
        let p99 = pct(&mut ok, 0.99);
        per.push((sent.len(), rate, p50, p99));
    }
    // A higher class may not do worse than a lower one (a 1-point tolerance for
    // the noise of small samples).
    let inverted = per
        .windows(2)
        .any(|w| w[0].0 > 0 && w[1].0 > 0 && w[0].1 + 0.01 < w[1].1);
    Figures {
        goodput: good as f64 / duration.as_secs_f64(),
        classes: per,
        inverted,
    }
}

/// The status of a request as the generator saw it.
pub fn is_ok(status: u16) -> bool {
    StatusCode::from_u16(status).is_ok_and(|s| s.is_success())
}

/// A node config in front of `origin` with the built-in `shed` guest as admit
/// guest; `shedding = false` turns the limiter off (everything is forwarded). The
/// generator's viewers all share one address, so the per-address allowance of
/// higher classes (`priority_rate`) is off here: it would cap them all as one viewer.
pub fn node_config(origin: SocketAddr, shedding: bool) -> String {
    format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\n\
         [origins.main]\naddress = \"{origin}\"\nfirst_byte_timeout = \"30s\"\npool_max_idle = 4096\n\
         [guests.shed]\nwasm = \"builtin:shed\"\ninstance_reuse = 1000\n\
         [limiter]\nenabled = {shedding}\ninitial_limit = 8\nmin_limit = 2\nmax_limit = 256\n\
         queue_size = 256\nqueue_timeout = \"100ms\"\npriority_rate = 0\n\
         [[routes]]\nname = \"all\"\norigin = \"main\"\nadmit = \"shed\"\n"
    )
}

/// Where the node under test runs.
///
/// `Shared`: on the caller's runtime, so the generator, the model origin and the node
/// take turns on the same threads (the CI-sized test). `Own`: on a runtime of its
/// own, pinned to `node_cpu`, while the caller's threads stay on the other CPUs, as
/// at a POP, where clients and origin are other machines. The benchmark pins the
/// caller with [`pin_runtime_threads`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    Shared,
    Own { node_cpu: usize },
}

impl Placement {
    /// `Own` on the first CPU this process may use, if it may use at least two;
    /// otherwise `Shared`. The CPUs left for the caller are returned as well.
    pub fn isolated() -> (Placement, Vec<usize>) {
        let cpus: Vec<usize> = core_affinity::get_core_ids()
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.id)
            .collect();
        match cpus.split_first() {
            Some((&node_cpu, rest)) if !rest.is_empty() => {
                (Placement::Own { node_cpu }, rest.to_vec())
            }
            _ => (Placement::Shared, cpus),
        }
    }
}

/// The benchmarks' runtime: where the node goes ([`Placement::isolated`], or
/// `Shared` with `ISOLATE=0`), and the generator's runtime pinned to the CPUs left.
pub fn bench_runtime() -> std::io::Result<(Placement, Vec<usize>, tokio::runtime::Runtime)> {
    let (placement, rest) = if std::env::var("ISOLATE").is_ok_and(|v| v == "0") {
        (Placement::Shared, Vec::new())
    } else {
        Placement::isolated()
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if placement != Placement::Shared {
        builder
            .worker_threads(rest.len())
            .on_thread_start(pin_runtime_threads(rest.clone()));
    }
    Ok((placement, rest, builder.build()?))
}

/// A tokio runtime builder hook: pin each worker thread to one of `cpus` (round
/// robin). Pinning is best effort: where the OS refuses, the thread runs anywhere.
pub fn pin_runtime_threads(cpus: Vec<usize>) -> impl Fn() + Send + Sync + 'static {
    let next = AtomicUsize::new(0);
    move || {
        if !cpus.is_empty() {
            let i = next.fetch_add(1, Ordering::Relaxed) % cpus.len();
            core_affinity::set_for_current(core_affinity::CoreId { id: cpus[i] });
        }
    }
}

/// A node started for an overload run, wherever [`Placement`] put it.
pub struct NodeUnderTest {
    pub addr: SocketAddr,
    pub limiter: Arc<outpost::limiter::OriginLimiter>,
    keep: Option<Keep>,
}

enum Keep {
    /// Held only to keep the node serving until the run ends.
    Shared { _node: Box<crate::TestNode> },
    Own(
        tokio::sync::oneshot::Sender<()>,
        std::thread::JoinHandle<()>,
    ),
}

impl NodeUnderTest {
    /// Start a node from config text where `placement` says.
    pub async fn start(toml: &str, placement: Placement) -> NodeUnderTest {
        let limiter_of = |n: &crate::TestNode| n.running.node().origins["main"].limiter.clone();
        match placement {
            Placement::Shared => {
                let node = crate::TestNode::new(toml).await;
                NodeUnderTest {
                    addr: node.addr,
                    limiter: limiter_of(&node),
                    keep: Some(Keep::Shared {
                        _node: Box::new(node),
                    }),
                }
            }
            Placement::Own { node_cpu } => {
                let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
                let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
                let toml = toml.to_string();
                let thread = std::thread::Builder::new()
                    .name("node-under-test".into())
                    .spawn(move || {
                        // Threads inherit the affinity of the thread that starts them:
                        // the runtime's workers, the epoch ticker, the blocking pool.
                        core_affinity::set_for_current(core_affinity::CoreId { id: node_cpu });
                        let rt = tokio::runtime::Builder::new_multi_thread()
                            .worker_threads(1)
                            .enable_all()
                            .build()
                            .expect("the node's runtime");
                        rt.block_on(async move {
                            let node = crate::TestNode::new(&toml).await;
                            let _ = ready_tx.send((node.addr, limiter_of(&node)));
                            let _ = stop_rx.await;
                            drop(node);
                        });
                    })
                    .expect("spawn the node's thread");
                let (addr, limiter) = ready_rx.await.expect("the node started");
                NodeUnderTest {
                    addr,
                    limiter,
                    keep: Some(Keep::Own(stop_tx, thread)),
                }
            }
        }
    }
}

impl Drop for NodeUnderTest {
    fn drop(&mut self) {
        if let Some(Keep::Own(stop, thread)) = self.keep.take() {
            let _ = stop.send(());
            let _ = thread.join();
        }
    }
}

/// One run: a fresh model origin and node, open-loop load at `factor` × capacity.
pub struct Run {
    /// The figures.
    pub figures: Figures,
    /// The origin's highest concurrency.
    pub max_concurrency: usize,
    /// The limiter every 200 ms: `limit/in flight/origin latency ms/min latency ms`.
    pub limits: Vec<String>,
    /// Every request's outcome.
    pub outcomes: Vec<Outcome>,
}

/// Connections the generator opens before a warmed-up run.
const PREOPEN_CONNECTIONS: usize = 256;

/// One overload run's set-up.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// The model origin's service time up to its knee.
    pub base: Duration,
    /// The model origin's knee (its capacity is `knee / base`).
    pub knee: usize,
    /// The node's limiter on (shedding) or off (everything forwarded).
    pub shedding: bool,
    /// Offered load as a multiple of the origin's capacity.
    pub factor: f64,
    /// How long the measured load runs.
    pub duration: Duration,
    /// The latency objective goodput counts against.
    pub slo: Duration,
    /// Where the node runs.
    pub placement: Placement,
    /// Before the measured load, this long at half the origin's capacity, not
    /// counted: the node has been serving ordinary traffic when the spike arrives,
    /// and the generator has connections open. Zero: the spike hits a node that just started.
    pub warmup: Duration,
}

/// Run `factor` × the model origin's capacity for `duration`, shedding on or off.
pub async fn run(spec: &Spec) -> Run {
    let origin = ModelOrigin::start(spec.base, spec.knee).await;
    let node = NodeUnderTest::start(&node_config(origin.addr, spec.shedding), spec.placement).await;
    let capacity = ModelOrigin::capacity(spec.base, spec.knee);
    let client = load_client();
    if !spec.warmup.is_zero() {
        // Open the generator's connections first, as load generators do (wrk, oha):
        // the spike then measures the node, not the generator opening sockets on the
        // CPU it shares with the model origin.
        let mut opening = tokio::task::JoinSet::new();
        for _ in 0..PREOPEN_CONNECTIONS {
            let (client, uri) = (client.clone(), format!("http://{}/beacon", node.addr));
            opening.spawn(async move {
                if let Ok(req) = Request::get(uri).body(Full::new(Bytes::new()))
                    && let Ok(resp) = client.request(req).await
                {
                    let _ = resp.into_body().collect().await;
                }
            });
        }
        while opening.join_next().await.is_some() {}
        let _ = open_loop(
            &client,
            node.addr,
            capacity * 0.5,
            spec.warmup,
            &VIDEO_MIX,
            Duration::from_secs(5),
        )
        .await;
        origin.max_in_flight.store(0, Ordering::SeqCst);
    }
    let limiter = node.limiter.clone();
    let ticks = (spec.duration.as_millis() / 200) as usize;
    let probe = tokio::spawn(async move {
        let mut v = Vec::with_capacity(ticks);
        for _ in 0..ticks {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let s = limiter.snapshot();
            v.push(format!(
                "{}/{}/{}/{}",
                s.limit,
                s.in_flight,
                s.origin_latency_us / 1000,
                s.origin_min_latency_us / 1000
            ));
        }
        v
    });
    let out = open_loop(
        &client,
        node.addr,
        capacity * spec.factor,
        spec.duration,
        &VIDEO_MIX,
        Duration::from_secs(5),
    )
    .await;
    Run {
        figures: figures(&out, spec.duration, spec.slo, VIDEO_MIX.len()),
        max_concurrency: origin.max_in_flight.load(Ordering::SeqCst),
        limits: probe.await.unwrap_or_default(),
        outcomes: out,
    }
}

/// How the limit followed a step change of the origin's capacity.
pub struct Settle {
    /// The limit every 100 ms from the start of the run.
    pub trace: Vec<u32>,
    /// The limit it settled at (the mean over the last second).
    pub settled: f64,
    /// From the step until the limit stayed within ±25% of `settled` (at least ±1.5).
    pub settle_time: Duration,
}

/// Open-loop load at `factor` × the capacity at `knee_from` for `2 × half`, the
/// knee switching to `knee_to` after `half`: how fast the limit settles.
pub async fn settle(
    base: Duration,
    knee_from: usize,
    knee_to: usize,
    factor: f64,
    half: Duration,
    placement: Placement,
) -> Settle {
    let origin = Arc::new(ModelOrigin::start(base, knee_from).await);
    let node = NodeUnderTest::start(&node_config(origin.addr, true), placement).await;
    let limiter = node.limiter.clone();
    let ticks = (half.as_millis() * 2 / 100) as usize;
    let step_tick = ticks / 2;
    let o = origin.clone();
    let probe = tokio::spawn(async move {
        let mut v = Vec::with_capacity(ticks);
        for i in 0..ticks {
            if i == step_tick {
                o.set_knee(knee_to);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            v.push(limiter.snapshot().limit);
        }
        v
    });
    let rate = ModelOrigin::capacity(base, knee_from) * factor;
    let _ = open_loop(
        &load_client(),
        node.addr,
        rate,
        half * 2,
        &VIDEO_MIX,
        Duration::from_secs(5),
    )
    .await;
    let trace = probe.await.unwrap_or_default();
    let tail = &trace[trace.len().saturating_sub(10)..];
    let settled = tail.iter().map(|&l| f64::from(l)).sum::<f64>() / tail.len().max(1) as f64;
    let band = (settled * 0.25).max(1.5);
    let last_out = trace
        .iter()
        .enumerate()
        .skip(step_tick)
        .filter(|(_, l)| (f64::from(**l) - settled).abs() > band)
        .map(|(i, _)| i + 1)
        .next_back()
        .unwrap_or(step_tick);
    Settle {
        settle_time: Duration::from_millis(100 * (last_out.saturating_sub(step_tick)) as u64),
        trace,
        settled,
    }
}

/// One client of [`hostile_run`]: how many requests it sent and how many were
/// served (200).
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientTally {
    pub sent: usize,
    pub served: usize,
}

/// [`hostile_run`]'s outcome.
#[derive(Debug, Clone)]
pub struct HostileRun {
    /// Ordinary viewers, each on its own address.
    pub viewers: Vec<ClientTally>,
    /// Says "starting up" (`CMCD-Request: su`) on every request.
    pub startup_liar: ClientTally,
    /// Sends four times a viewer's rate with a new `x-client-id` on every request.
    pub id_rotator: ClientTally,
}

impl HostileRun {
    /// The mean of the ordinary viewers' served requests.
    pub fn viewer_served(&self) -> f64 {
        let n = self.viewers.len().max(1) as f64;
        self.viewers.iter().map(|t| t.served as f64).sum::<f64>() / n
    }
}

/// A client whose connections come from `source` (another loopback address:
/// another client, as the node's fairness and allowances see it).
pub fn client_from(source: std::net::IpAddr) -> LoadClient {
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_local_address(Some(source));
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(256)
        .build(connector)
}

/// Open loop from one client: `rate`/s for `duration`, request `i` built by `head`,
/// sent at `(i + phase)` intervals from the start.
async fn client_loop(
    client: LoadClient,
    target: SocketAddr,
    rate: f64,
    duration: Duration,
    phase: f64,
    head: impl Fn(usize) -> (String, Vec<(String, String)>),
) -> ClientTally {
    let total = (rate * duration.as_secs_f64()).round() as usize;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        tokio::time::sleep_until(start + interval.mul_f64(i as f64 + phase)).await;
        let (path, headers) = head(i);
        let mut req = Request::get(format!("http://{target}{path}"));
        for (k, v) in &headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let Ok(req) = req.body(Full::new(Bytes::new())) else {
            continue;
        };
        let client = client.clone();
        tasks.spawn(async move {
            tokio::time::timeout(Duration::from_secs(5), async {
                let resp = client.request(req).await.ok()?;
                let ok = resp.status() == StatusCode::OK;
                resp.into_body().collect().await.ok()?;
                Some(ok)
            })
            .await
            .ok()
            .flatten()
            .unwrap_or(false)
        });
    }
    let mut tally = ClientTally {
        sent: total,
        served: 0,
    };
    while let Some(r) = tasks.join_next().await {
        tally.served += usize::from(r.unwrap_or(false));
    }
    tally
}

/// A node in front of `origin` with the `shed` guest and fairness on, each client
/// allowed `rate`/s at its class (its address once: `client_address_share = 1`) and
/// the default allowance of classes above normal. Without `protections`, as before
/// they existed: no allowance, and an address as large as any number of client ids.
pub fn hostile_config(origin: SocketAddr, rate: f64, protections: bool) -> String {
    let (share, allowance) = if protections {
        ("1", "")
    } else {
        ("1000000", "priority_rate = 0\n")
    };
    format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\n\
         [origins.main]\naddress = \"{origin}\"\nfirst_byte_timeout = \"30s\"\npool_max_idle = 4096\n\
         [guests.shed]\nwasm = \"builtin:shed\"\ninstance_reuse = 1000\n\
         [limiter]\ninitial_limit = 8\nmin_limit = 2\nmax_limit = 256\n\
         queue_size = 256\nqueue_timeout = \"100ms\"\n\
         client_rate = {rate}\nclient_burst = {rate}\nclient_address_share = {share}\n{allowance}\
         [[routes]]\nname = \"all\"\norigin = \"main\"\nadmit = \"shed\"\n"
    )
}

/// `viewers` ordinary VOD viewers (media segments: `high`), each on its own
/// loopback address at `rate`/s with its own stable `x-client-id`, and two
/// scripted clients, each on an address of its own: one that sends
/// `CMCD-Request: su` (asserting `critical`) on every request at a viewer's rate,
/// and one that sends 4× a viewer's rate with a new `x-client-id` each time. The
/// whole is `factor` × the model origin's capacity.
pub async fn hostile_run(
    base: Duration,
    knee: usize,
    viewers: usize,
    factor: f64,
    duration: Duration,
    protections: bool,
) -> HostileRun {
    let origin = ModelOrigin::start(base, knee).await;
    let capacity = ModelOrigin::capacity(base, knee);
    // viewers + 1 (liar) + 4 (rotator) viewer-rates make `factor` × capacity.
    let rate = capacity * factor / (viewers as f64 + 5.0);
    let node = NodeUnderTest::start(
        &hostile_config(origin.addr, rate, protections),
        Placement::Shared,
    )
    .await;
    let target = node.addr;
    let ip = |a: u8, b: u8| std::net::IpAddr::from([127, 0, a, b]);
    let mut runs = tokio::task::JoinSet::new();
    for v in 0..viewers {
        let client = client_from(ip(1, v as u8 + 1));
        runs.spawn(async move {
            // Each viewer at its own phase: real players are not locked to the same
            // microsecond, and a newest-first queue would otherwise favour whoever
            // is phased just after them.
            let phase = v as f64 / viewers as f64;
            let t = client_loop(client, target, rate, duration, phase, move |i| {
                (
                    format!("/vod/movie/seg-{i}.ts"),
                    vec![("x-client-id".into(), format!("viewer-{v}"))],
                )
            })
            .await;
            (v, t)
        });
    }
    let liar = client_from(ip(2, 1));
    runs.spawn(async move {
        let t = client_loop(liar, target, rate, duration, 0.5 / viewers as f64, |i| {
            (
                format!("/vod/movie/seg-{i}.ts"),
                vec![
                    ("cmcd-request".into(), "su".into()),
                    ("x-client-id".into(), "liar".into()),
                ],
            )
        })
        .await;
        (usize::MAX - 1, t)
    });
    let rotator = client_from(ip(2, 2));
    runs.spawn(async move {
        let t = client_loop(rotator, target, rate * 4.0, duration, 0.37, |i| {
            (
                format!("/vod/movie/seg-{i}.ts"),
                vec![("x-client-id".into(), format!("rotating-{i}"))],
            )
        })
        .await;
        (usize::MAX, t)
    });
    let mut out = HostileRun {
        viewers: vec![ClientTally::default(); viewers],
        startup_liar: ClientTally::default(),
        id_rotator: ClientTally::default(),
    };
    while let Some(r) = runs.join_next().await {
        match r {
            Ok((usize::MAX, t)) => out.id_rotator = t,
            Ok((i, t)) if i == usize::MAX - 1 => out.startup_liar = t,
            Ok((v, t)) => out.viewers[v] = t,
            Err(_) => {}
        }
    }
    out
}
