//! The admin API: `/metrics` (Prometheus text, or OpenMetrics on request), `/healthz`,
//! `/config`, `/guests`. It serves what the modules registered; it counts nothing.

use std::convert::Infallible;
use std::sync::Arc;

use http::{Response, StatusCode, header};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::body::{Body, full};
use crate::metrics::{self, content_type};
use crate::node::{Node, NodeSlot, Telemetry};

/// Render every metric: the gauges read off the node serving now, then the
/// process's registry, in OpenMetrics when the scraper asks for it.
pub fn metrics_text(node: &Node, telemetry: &Telemetry, openmetrics: bool) -> String {
    let mut origins: Vec<_> = node.origins.iter().collect();
    origins.sort_by(|a, b| a.0.cmp(b.0));
    telemetry.families.set_gauges(
        origins
            .iter()
            .map(|(name, o)| (name.as_str(), o.limiter.snapshot())),
        node.fairness.as_ref().map_or(0, |f| f.len()),
    );
    metrics::encode(&telemetry.registry, openmetrics)
}

fn text(status: StatusCode, ctype: &'static str, body: String) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, http::HeaderValue::from_static(ctype));
    r
}

/// Answer one admin request.
pub fn handle<B>(node: &Node, telemetry: &Telemetry, req: &hyper::Request<B>) -> Response<Body> {
    match req.uri().path() {
        "/metrics" => {
            let accept = req.headers().get(header::ACCEPT).map(|v| v.as_bytes());
            let om = metrics::wants_openmetrics(accept);
            let ctype = if om {
                content_type::OPENMETRICS
            } else {
                content_type::PROMETHEUS
            };
            text(StatusCode::OK, ctype, metrics_text(node, telemetry, om))
        }
        "/healthz" => text(StatusCode::OK, "text/plain", "ok\n".into()),
        "/config" => text(
            StatusCode::OK,
            "application/toml",
            redacted_source(&node.config),
        ),
        "/guests" => {
            let list: Vec<serde_json::Value> = node
                .guests
                .iter()
                .map(|(n, g)| {
                    serde_json::json!({
                        "name": n,
                        "hooks": g.hooks.to_string(),
                        "memory_bytes": g.limits.memory_bytes,
                        "cpu_ms": g.limits.cpu.as_millis() as u64,
                    })
                })
                .collect();
            text(
                StatusCode::OK,
                "application/json",
                serde_json::to_string_pretty(&list).unwrap_or_default(),
            )
        }
        _ => text(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    }
}

/// Serve the admin API on `listener`.
pub async fn serve(slot: NodeSlot, listener: TcpListener, telemetry: Arc<Telemetry>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let slot = slot.clone();
        let telemetry = telemetry.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let node = slot.current();
                let resp = handle(&node, &telemetry, &req);
                async move { Ok::<_, Infallible>(resp) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// Whether a guest config key holds a secret (its value is never shown).
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["secret", "password", "token", "credential", "private"]
        .iter()
        .any(|w| k.contains(w))
}

/// The config's text with the values of secret guest config keys replaced.
fn redacted_source(config: &edge_config::Config) -> String {
    let mut text = config.source().text.clone();
    let mut spans: Vec<std::ops::Range<usize>> = config
        .guests
        .values()
        .flat_map(|g| g.config.iter())
        .filter(|(k, _)| is_secret_key(k))
        .map(|(_, v)| v.span())
        .filter(|s| s.end <= text.len() && s.start < s.end)
        .collect();
    spans.sort_by_key(|s| std::cmp::Reverse(s.start));
    for s in spans {
        if text.is_char_boundary(s.start) && text.is_char_boundary(s.end) {
            text.replace_range(s, "\"<redacted>\"");
        }
    }
    text
}
