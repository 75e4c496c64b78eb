//! Overload: a model origin with a fixed capacity (its service time grows past a
//! knee, like a real server's), an open-loop load generator with a class mix, and
//! the figures the shedding issue asks for. Used by the CI-sized test and by the
//! `overload` benchmark binary.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

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
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
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
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (f, m, s, k) = (f.clone(), m.clone(), s.clone(), k.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |_req: Request<hyper::body::Incoming>| {
                        let (f, m, s, k) = (f.clone(), m.clone(), s.clone(), k.clone());
                        async move {
                            let n = f.fetch_add(1, Ordering::SeqCst) + 1;
                            m.fetch_max(n, Ordering::SeqCst);
                            let knee = k.load(Ordering::SeqCst);
                            let excess = (n as f64 / knee as f64).max(1.0);
                            tokio::time::sleep(base.mul_f64(excess * excess)).await;
                            f.fetch_sub(1, Ordering::SeqCst);
                            s.fetch_add(1, Ordering::SeqCst);
                            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                                b"segment\n",
                            ))))
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
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
}

/// Open-loop load: `rate` arrivals per second for `duration`, each of a class drawn
/// deterministically from `mix` (a fixed interleaving, no randomness), sent whether
/// or not earlier ones were answered. Requests time out after `timeout` (status 0).
pub async fn open_loop(
    target: SocketAddr,
    rate: f64,
    duration: Duration,
    mix: &[(usize, f64, &str, &str)],
    timeout: Duration,
) -> Vec<Outcome> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(4096)
        .build_http();
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
/// guest; `shedding = false` turns the limiter off (everything is forwarded).
pub fn node_config(origin: SocketAddr, shedding: bool) -> String {
    format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\n\
         [origins.main]\naddress = \"{origin}\"\nfirst_byte_timeout = \"30s\"\npool_max_idle = 4096\n\
         [guests.shed]\nwasm = \"builtin:shed\"\ninstance_reuse = 1000\n\
         [limiter]\nenabled = {shedding}\ninitial_limit = 8\nmin_limit = 2\nmax_limit = 256\n\
         queue_size = 256\nqueue_timeout = \"100ms\"\nqueue_timeout_congested = \"20ms\"\n\
         [[routes]]\nname = \"all\"\norigin = \"main\"\nadmit = \"shed\"\n"
    )
}

/// One run: a fresh model origin and node, open-loop load at `factor` × capacity.
pub struct Run {
    /// The figures.
    pub figures: Figures,
    /// The origin's highest concurrency.
    pub max_concurrency: usize,
    /// The limiter every 200 ms: `limit/in flight/origin latency ms/min latency ms`.
    pub limits: Vec<String>,
}

/// Run `factor` × the model origin's capacity for `duration`, shedding on or off.
pub async fn run(
    base: Duration,
    knee: usize,
    shedding: bool,
    factor: f64,
    duration: Duration,
    slo: Duration,
) -> Run {
    let origin = ModelOrigin::start(base, knee).await;
    let node = crate::TestNode::new(&node_config(origin.addr, shedding)).await;
    let limiter = node.running.node().origins["main"].limiter.clone();
    let ticks = (duration.as_millis() / 200) as usize;
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
    let capacity = ModelOrigin::capacity(base, knee);
    let out = open_loop(
        node.addr,
        capacity * factor,
        duration,
        &VIDEO_MIX,
        Duration::from_secs(5),
    )
    .await;
    Run {
        figures: figures(&out, duration, slo, VIDEO_MIX.len()),
        max_concurrency: origin.max_in_flight.load(Ordering::SeqCst),
        limits: probe.await.unwrap_or_default(),
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
) -> Settle {
    let origin = Arc::new(ModelOrigin::start(base, knee_from).await);
    let node = crate::TestNode::new(&node_config(origin.addr, true)).await;
    let limiter = node.running.node().origins["main"].limiter.clone();
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
