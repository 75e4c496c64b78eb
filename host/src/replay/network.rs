//! Network replay: real HTTP against a running node, open-loop at the recorded
//! times (× speed, gaps clamped) or as fast as a concurrency cap allows.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::BodyExt;
use outpost_traffic::Entry;

use super::{Replayed, Report, percentiles, replayable};
use crate::decision::{AnsweredBy, Decision};

/// How a network replay paces its requests.
#[derive(Debug, Clone, Copy)]
pub enum Pacing {
    /// Open loop at the recorded times divided by `speed`, idle gaps clamped.
    Recorded {
        /// Speed factor (100: a hundred times faster).
        speed: f64,
        /// Longest idle gap, after scaling.
        max_gap: Option<Duration>,
    },
    /// As fast as possible with at most this many requests in flight.
    Flood,
}

/// Replay `entries` over real HTTP against the node at `target`. At most
/// `concurrency` requests are in flight in either pacing. Each request's status
/// and latency (as a [`Replayed`] with only `status` and `answered_by` = `network`)
/// goes to `each`.
pub async fn network(
    target: SocketAddr,
    entries: Vec<Entry>,
    pacing: Pacing,
    concurrency: usize,
    mut each: impl FnMut(&Replayed, u64),
) -> Report {
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let client: Client<_, http_body_util::Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let started = Instant::now();
    let start = tokio::time::Instant::now();
    let mut schedule = match pacing {
        Pacing::Recorded { speed, max_gap } => {
            outpost_traffic::Schedule::new(speed, max_gap).map(|s| s.clock())
        }
        Pacing::Flood => None,
    };
    let mut tasks = tokio::task::JoinSet::new();
    for e in entries {
        if let Some(clock) = schedule.as_mut() {
            tokio::time::sleep_until(start + clock.offset(e.at_us)).await;
        }
        let Ok(permit) = sem.clone().acquire_owned().await else {
            break;
        };
        let client = client.clone();
        tasks.spawn(async move {
            let _permit = permit;
            send_one(&client, target, e).await
        });
    }
    let mut report = Report::default();
    let mut latencies = Vec::new();
    let mut done = Vec::new();
    while let Some(r) = tasks.join_next().await {
        if let Ok(x) = r {
            done.push(x);
        }
    }
    done.sort_by_key(|(d, _, _)| d.seq);
    for (d, bytes, micros) in done {
        report.add(&d, bytes);
        latencies.push(micros);
        each(&d, micros);
    }
    report.seconds = started.elapsed().as_secs_f64();
    report.latency_us = percentiles(latencies);
    report
}

/// One request of a network replay: its decision (status only), body bytes and
/// latency, µs.
async fn send_one(
    client: &hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<Bytes>,
    >,
    target: SocketAddr,
    e: Entry,
) -> (Replayed, u64, u64) {
    let request = format!("{} {}", e.method, e.target());
    let t0 = Instant::now();
    let mut b = Request::builder()
        .method(e.method.as_str())
        .uri(format!("http://{target}{}", e.target()));
    for (k, v) in e.headers.iter().filter(|(k, _)| replayable(k)) {
        b = b.header(k.as_str(), v.as_str());
    }
    b = b.header("host", e.authority.as_str());
    let (status, bytes) = match b.body(http_body_util::Full::new(Bytes::new())) {
        Ok(req) => match client.request(req).await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let n = match resp.into_body().collect().await {
                    Ok(b) => b.to_bytes().len() as u64,
                    Err(_) => 0,
                };
                (status, n)
            }
            Err(_) => (0, 0),
        },
        Err(_) => (0, 0),
    };
    let micros = t0.elapsed().as_micros() as u64;
    let d = Replayed {
        seq: e.seq,
        request,
        decision: Decision {
            answered_by: if status == 0 {
                AnsweredBy::Error
            } else {
                AnsweredBy::Network
            },
            status,
            ..Decision::default()
        },
        body: None,
    };
    (d, bytes, micros)
}
