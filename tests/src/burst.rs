//! Bursts: many viewers asking at once, as at every live segment boundary. Used by
//! the burst tests (`tests/tests/burst.rs`) and the `burst` benchmark binary.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};

use crate::overload::LoadClient;

/// What a set of requests got.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Answered 2xx.
    pub ok: usize,
    /// Answered 503 (shed).
    pub shed: usize,
    /// Anything else, failures and timeouts included (status 0).
    pub other: Vec<u16>,
    /// Latencies of the 2xx answers.
    pub latencies: Vec<Duration>,
}

impl Tally {
    fn add(&mut self, status: u16, latency: Duration) {
        match status {
            200..=299 => {
                self.ok += 1;
                self.latencies.push(latency);
            }
            503 => self.shed += 1,
            s => self.other.push(s),
        }
    }

    /// Merge `other` into this one.
    pub fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        self.shed += other.shed;
        self.other.extend(other.other);
        self.latencies.extend(other.latencies);
    }

    /// The `q` quantile of the 2xx latencies.
    pub fn quantile(&self, q: f64) -> Duration {
        let mut v = self.latencies.clone();
        if v.is_empty() {
            return Duration::ZERO;
        }
        v.sort_unstable();
        v[((v.len() - 1) as f64 * q).round() as usize]
    }

    /// Requests sent.
    pub fn sent(&self) -> usize {
        self.ok + self.shed + self.other.len()
    }
}

/// One GET on `client`, body read: (status, latency); status 0 on failure or after
/// `timeout`.
pub async fn get(client: &LoadClient, uri: &str, timeout: Duration) -> (u16, Duration) {
    let t0 = Instant::now();
    let Ok(req) = Request::get(uri)
        // What a browser's player sends.
        .header(
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36",
        )
        .header("accept", "*/*")
        .header("accept-encoding", "gzip, deflate, br")
        .header("accept-language", "en-US,en;q=0.9")
        .body(Full::new(Bytes::new()))
    else {
        return (0, t0.elapsed());
    };
    let status = tokio::time::timeout(timeout, async {
        let resp = client.request(req).await.ok()?;
        let status = resp.status().as_u16();
        resp.into_body().collect().await.ok()?;
        Some(status)
    })
    .await
    .ok()
    .flatten()
    .unwrap_or(0);
    (status, t0.elapsed())
}

/// `n` requests for `path` all at once (each on its own connection, opened or
/// reused by `client`), waiting for every answer.
pub async fn burst(client: &LoadClient, target: SocketAddr, path: &str, n: usize) -> Tally {
    let uri: Arc<str> = format!("http://{target}{path}").into();
    let start = Arc::new(tokio::sync::Barrier::new(n));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (client, uri, start) = (client.clone(), uri.clone(), start.clone());
        tasks.spawn(async move {
            start.wait().await;
            get(&client, &uri, Duration::from_secs(30)).await
        });
    }
    let mut t = Tally::default();
    while let Some(r) = tasks.join_next().await {
        let (status, latency) = r.unwrap_or((0, Duration::ZERO));
        t.add(status, latency);
    }
    t
}

/// The live segment-boundary pattern: `viewers` viewers each ask for the new segment
/// at a moment spread evenly over `window` after every boundary, `boundaries` times,
/// `period` apart (each viewer on its own connection, kept between segments, as a
/// player does). Returns the tally of each boundary.
pub async fn segment_boundaries(
    client: &LoadClient,
    target: SocketAddr,
    viewers: usize,
    boundaries: usize,
    window: Duration,
    period: Duration,
) -> Vec<Tally> {
    let begin = tokio::time::Instant::now();
    let mut out = Vec::with_capacity(boundaries);
    for b in 0..boundaries {
        let at = begin + period * b as u32;
        let mut tasks = tokio::task::JoinSet::new();
        for v in 0..viewers {
            let client = client.clone();
            let uri = format!("http://{target}/live/seg-{b}.ts?viewer={v}");
            let offset = window.mul_f64(v as f64 / viewers as f64);
            tasks.spawn(async move {
                tokio::time::sleep_until(at + offset).await;
                get(&client, &uri, Duration::from_secs(30)).await
            });
        }
        let mut t = Tally::default();
        while let Some(r) = tasks.join_next().await {
            let (status, latency) = r.unwrap_or((0, Duration::ZERO));
            t.add(status, latency);
        }
        out.push(t);
    }
    out
}

/// Closed-loop load, as `wrk -c CONNECTIONS`: each connection sends its next request
/// when its last is answered, for `duration`.
pub async fn closed_loop(
    client: &LoadClient,
    target: SocketAddr,
    path: &str,
    connections: usize,
    duration: Duration,
) -> Tally {
    let uri: Arc<str> = format!("http://{target}{path}").into();
    let end = Instant::now() + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let (client, uri) = (client.clone(), uri.clone());
        tasks.spawn(async move {
            let mut t = Tally::default();
            while Instant::now() < end {
                let (status, latency) = get(&client, &uri, Duration::from_secs(30)).await;
                t.add(status, latency);
            }
            t
        });
    }
    let mut t = Tally::default();
    while let Some(r) = tasks.join_next().await {
        t.merge(r.unwrap_or_default());
    }
    t
}
