//! The admin API: `/metrics` (Prometheus text, or OpenMetrics on request), `/healthz`
//! (503 while draining), `/config`, `/guests`, `/origins` (each address's health),
//! and the web console under `/console/` (`crate::console`). It serves what the modules registered; it counts nothing.

use std::convert::Infallible;
use std::sync::Arc;

use http::{Response, StatusCode, header};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::body::{Body, full};
use crate::metrics::{self, content_type};
use crate::node::{Node, NodeSlot, Telemetry};

fn text(status: StatusCode, ctype: &'static str, body: String) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, http::HeaderValue::from_static(ctype));
    r
}

/// Answer one admin request.
/// While `draining`, `/healthz` answers 503 so load balancers take the node out.
pub fn handle<B>(
    node: &Node,
    telemetry: &Telemetry,
    req: &hyper::Request<B>,
    draining: bool,
) -> Response<Body> {
    match req.uri().path() {
        "/metrics" => {
            let accept = req.headers().get(header::ACCEPT).map(|v| v.as_bytes());
            let om = metrics::wants_openmetrics(accept);
            let ctype = if om {
                content_type::OPENMETRICS
            } else {
                content_type::PROMETHEUS
            };
            text(StatusCode::OK, ctype, telemetry.text(node, om))
        }
        "/healthz" if draining => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "draining\n".into(),
        ),
        "/healthz" => text(StatusCode::OK, "text/plain", "ok\n".into()),
        "/cache" => cache_stats(node),
        "/origins" => {
            let mut names: Vec<_> = node.origins.keys().collect();
            names.sort();
            let all: serde_json::Map<String, serde_json::Value> = names
                .into_iter()
                .map(|n| {
                    let o = &node.origins[n.as_str()];
                    (n.clone(), serde_json::Value::from(o.client.addresses()))
                })
                .collect();
            text(
                StatusCode::OK,
                "application/json",
                serde_json::to_string_pretty(&all).unwrap_or_default(),
            )
        }
        "/cache/purge" => purge(node, req),
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

/// The cache's size and flights, as JSON.
fn cache_stats(node: &Node) -> Response<Body> {
    let body = match &node.cache {
        Some(c) => serde_json::json!({
            "enabled": true,
            "objects": c.len(),
            "bytes": c.weight(),
            "memory_bytes": c.config.memory_bytes,
            "max_object_bytes": c.config.max_object_bytes,
            "in_flight": c.flights.len(),
        }),
        None => serde_json::json!({ "enabled": false }),
    };
    text(StatusCode::OK, "application/json", body.to_string())
}

/// `POST /cache/purge?key=K` (exact: host, path and query as the key holds them,
/// `example.com/live/index.m3u8`), `?prefix=P`, or `?tag=T` (the origin's
/// `Surrogate-Key`). On an admin listener that is not on loopback, it needs
/// `Authorization: Bearer` with `node.admin_token`.
fn purge<B>(node: &Node, req: &hyper::Request<B>) -> Response<Body> {
    if req.method() != http::Method::POST {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "purge with POST\n".into(),
        );
    }
    if let Err(why) = authorised(node, req) {
        return text(StatusCode::FORBIDDEN, "text/plain", format!("{why}\n"));
    }
    let Some(cache) = &node.cache else {
        return text(
            StatusCode::NOT_FOUND,
            "text/plain",
            "no route caches\n".into(),
        );
    };
    let query = req.uri().query().unwrap_or("");
    let param = |name: &str| {
        query.split('&').find_map(|p| {
            let (k, v) = p.split_once('=')?;
            (k == name).then(|| crate::tail::query_decoded(v))
        })
    };
    let purged = if let Some(k) = param("key") {
        usize::from(cache.remove(&k))
    } else if let Some(p) = param("prefix") {
        cache.purge_prefix(&p)
    } else if let Some(t) = param("tag") {
        cache.purge_tag(&t)
    } else {
        return text(
            StatusCode::BAD_REQUEST,
            "text/plain",
            "expected one of ?key=, ?prefix=, ?tag=\n".into(),
        );
    };
    tracing::info!(query, purged, "cache purge");
    text(
        StatusCode::OK,
        "application/json",
        serde_json::json!({ "purged": purged }).to_string(),
    )
}

/// Whether a request may change state: always on a loopback admin listener, else
/// with the configured token.
fn authorised<B>(node: &Node, req: &hyper::Request<B>) -> Result<(), &'static str> {
    if crate::console::open_on_loopback(node, req) {
        return Ok(());
    }
    let Some(token) = node.config.node.admin_token.as_ref().map(|t| t.get_ref()) else {
        return Err("the admin listener is not on loopback: set node.admin_token to allow changes");
    };
    let sent = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let same = sent.is_some_and(|s| crate::console::same_token(s, token));
    if same {
        Ok(())
    } else {
        Err("a bearer token is required")
    }
}

/// Serve the admin API on `listener`.
pub async fn serve(
    slot: NodeSlot,
    listener: TcpListener,
    telemetry: Arc<Telemetry>,
    drain: crate::server::Drain,
) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let slot = slot.clone();
        let telemetry = telemetry.clone();
        let drain = drain.clone();
        tokio::spawn(async move {
            let local = stream.local_addr().ok();
            let svc = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                if let Some(l) = local {
                    req.extensions_mut().insert(crate::console::AdminLocal(l));
                }
                let slot = slot.clone();
                let telemetry = telemetry.clone();
                let draining = drain.is_draining();
                async move {
                    let path = req.uri().path();
                    let resp = if path == "/console" || path.starts_with("/console/") {
                        crate::console::handle(&slot, &telemetry, req, peer).await
                    } else {
                        handle(&slot.current(), &telemetry, &req, draining)
                    };
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// The config's text with the values of secret guest config keys replaced.
fn redacted_source(config: &edge_config::Config) -> String {
    let mut text = config.source().text.clone();
    let mut spans: Vec<std::ops::Range<usize>> = config
        .guests
        .values()
        .flat_map(|g| g.config.iter())
        .filter(|(k, _)| crate::console::is_secret_key(k))
        .map(|(_, v)| v.span())
        .chain(config.node.admin_token.as_ref().map(|t| t.span()))
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
