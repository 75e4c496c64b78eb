//! In-process replay: the node built with model origins (each request answered
//! from its recording) and a virtual clock moved to each request's recorded
//! arrival; requests one at a time, so the same input gives byte-identical
//! decisions.

use std::net::SocketAddr;
use std::time::Instant;

use http::{HeaderName, HeaderValue, Method, Request};
use http_body_util::BodyExt;
use outpost_traffic::Entry;

use super::{Replayed, Report, percentiles};
use crate::clock::Clock;
use crate::decision::{AnsweredBy, Decision};
use crate::node::{BuildOptions, Node};
use crate::proxy::serve_decided;
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
) -> Result<(Node, Clock), Vec<edge_config::Diagnostic>> {
    replay_node_with(config, cache_dir, Vec::new()).await
}

/// [`replay_node`], its model origins adding `model_headers` to every answer that
/// lacks them.
pub async fn replay_node_with(
    config: edge_config::Config,
    cache_dir: Option<std::path::PathBuf>,
    model_headers: Vec<(String, String)>,
) -> Result<(Node, Clock), Vec<edge_config::Diagnostic>> {
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
    Ok((node, clock))
}

/// Replay `entries` in-process through `node` (from [`replay_node`]), one at a
/// time. Each decision is passed to `each`; the report is returned.
pub async fn in_process(
    node: &Node,
    clock: &Clock,
    entries: impl IntoIterator<Item = Entry>,
    mut each: impl FnMut(&Replayed),
) -> Report {
    let mut report = Report::default();
    let mut latencies = Vec::new();
    let started = Instant::now();
    for e in entries {
        clock.set(e.at_us.saturating_mul(1000));
        let request = format!("{} {}", e.method, e.target());
        let mut decision = Decision::detailed();
        let t0 = Instant::now();
        let mut body = None;
        let bytes = match request_of(&e) {
            Ok(req) => {
                let resp = serve_decided(node, req, client_of(&e), &mut decision).await;
                // A body a guest made is kept as the client got it, decoded.
                let coding = resp
                    .headers()
                    .get(http::header::CONTENT_ENCODING)
                    .and_then(|v| crate::coding::Coding::from_content_encoding(v.as_bytes()));
                match resp.into_body().collect().await {
                    Ok(b) => {
                        let b = b.to_bytes();
                        if decision.body_replaced {
                            body = Some(match coding {
                                Some(c) => crate::coding::decode(c, &b, 64 << 20)
                                    .unwrap_or_else(|_| b.clone()),
                                None => b.clone(),
                            });
                        }
                        b.len() as u64
                    }
                    Err(_) => 0,
                }
            }
            Err(why) => {
                decision.answered_by = AnsweredBy::Error;
                decision.reason = Some(why);
                decision.status = 400;
                0
            }
        };
        latencies.push(t0.elapsed().as_micros() as u64);
        let d = Replayed {
            seq: e.seq,
            request,
            decision,
            body,
        };
        report.add(&d, bytes);
        each(&d);
    }
    report.seconds = started.elapsed().as_secs_f64();
    report.latency_us = percentiles(latencies);
    report
}
