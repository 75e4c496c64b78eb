//! The admin API: `/metrics` (Prometheus text), `/healthz`, `/config`, `/guests`.

use std::convert::Infallible;

use http::{Response, StatusCode, header};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::body::{Body, full};
use crate::limiter::CLASS_NAMES;
use crate::metrics::{Exposition, get};
use crate::node::{Node, NodeSlot};

/// Render every metric of the node.
pub fn metrics_text(node: &Node) -> String {
    let mut x = Exposition::default();
    x.family(
        "outpost_responses_total",
        "counter",
        "Responses by route and status class.",
    );
    for r in &node.routes {
        for (i, c) in r.metrics.responses.iter().enumerate() {
            let class = format!("{}xx", i + 1);
            x.sample(
                "outpost_responses_total",
                &[("route", &r.name), ("status", &class)],
                get(c),
            );
        }
    }
    x.family(
        "outpost_request_duration_seconds",
        "histogram",
        "Time from request to response head, per route.",
    );
    for r in &node.routes {
        r.metrics.duration.expose(
            &mut x,
            "outpost_request_duration_seconds",
            &[("route", &r.name)],
        );
    }
    x.family(
        "outpost_guest_duration_seconds",
        "histogram",
        "Time per guest invocation: instantiate, call, tear down.",
    );
    for (name, g) in &node.guests {
        g.metrics
            .duration
            .expose(&mut x, "outpost_guest_duration_seconds", &[("guest", name)]);
    }
    x.family(
        "outpost_edge_answers_total",
        "counter",
        "Requests answered by a guest at the edge.",
    );
    for r in &node.routes {
        x.sample(
            "outpost_edge_answers_total",
            &[("route", &r.name)],
            get(&r.metrics.edge_answers),
        );
    }
    x.family(
        "outpost_transformed_total",
        "counter",
        "Response bodies transformed by a guest.",
    );
    for r in &node.routes {
        x.sample(
            "outpost_transformed_total",
            &[("route", &r.name)],
            get(&r.metrics.transformed),
        );
    }
    x.family(
        "outpost_errors_total",
        "counter",
        "Error responses by source.",
    );
    let m = &node.metrics;
    for (src, c) in [
        ("client", &m.errors_client),
        ("origin", &m.errors_origin),
        ("limiter", &m.errors_limiter),
        ("guest", &m.errors_guest),
    ] {
        x.sample("outpost_errors_total", &[("source", src)], get(c));
    }
    x.family(
        "outpost_connections_total",
        "counter",
        "Client connections accepted.",
    );
    x.sample("outpost_connections_total", &[], get(&m.connections));
    x.family(
        "outpost_connections_refused_total",
        "counter",
        "Client connections closed at accept because a connection cap was reached.",
    );
    x.sample(
        "outpost_connections_refused_total",
        &[],
        get(&m.connections_refused),
    );
    x.family(
        "outpost_guest_invocations_total",
        "counter",
        "Guest hook invocations.",
    );
    for (name, g) in &node.guests {
        x.sample(
            "outpost_guest_invocations_total",
            &[("guest", name)],
            get(&g.metrics.invocations),
        );
    }
    x.family(
        "outpost_guest_failures_total",
        "counter",
        "Guest failures by kind.",
    );
    for (name, g) in &node.guests {
        let gm = &g.metrics;
        for (kind, c) in [
            ("trap", &gm.traps),
            ("deadline", &gm.deadlines),
            ("memory", &gm.memory),
            ("invalid", &gm.invalid),
        ] {
            x.sample(
                "outpost_guest_failures_total",
                &[("guest", name), ("kind", kind)],
                get(c),
            );
        }
    }
    x.family(
        "outpost_guest_fail_actions_total",
        "counter",
        "Failures skipped (open) or answered 503 (closed).",
    );
    for (name, g) in &node.guests {
        x.sample(
            "outpost_guest_fail_actions_total",
            &[("guest", name), ("action", "skipped")],
            get(&g.metrics.skipped),
        );
        x.sample(
            "outpost_guest_fail_actions_total",
            &[("guest", name), ("action", "closed")],
            get(&g.metrics.closed),
        );
    }
    let mut origins: Vec<_> = node.origins.iter().collect();
    origins.sort_by(|a, b| a.0.cmp(b.0));
    // One snapshot per origin, so the three gauges agree with each other.
    let snapshots: Vec<_> = origins.iter().map(|(_, o)| o.limiter.snapshot()).collect();
    for (family, help, value) in [
        (
            "outpost_limiter_limit",
            "Current concurrency limit per origin.",
            (|s: &crate::limiter::LoadSnapshot| s.limit) as fn(&_) -> u32,
        ),
        (
            "outpost_limiter_in_flight",
            "Requests in flight per origin.",
            |s| s.in_flight,
        ),
        (
            "outpost_limiter_queued",
            "Requests waiting for admission per origin.",
            |s| s.queued,
        ),
    ] {
        x.family(family, "gauge", help);
        for ((name, _), snap) in origins.iter().zip(&snapshots) {
            x.sample(family, &[("origin", name)], value(snap));
        }
    }
    for (family, help) in [
        (
            "outpost_admitted_total",
            "Requests admitted per origin and class (a request a guest re-routes is admitted by its route's origin, then by the one it goes to).",
        ),
        (
            "outpost_queued_total",
            "Requests admitted after queueing per origin and class.",
        ),
        ("outpost_shed_total", "Requests shed per origin and class."),
    ] {
        x.family(family, "counter", help);
        for (name, o) in &origins {
            let c = &o.limiter.counters;
            let arr = match family {
                "outpost_admitted_total" => &c.admitted,
                "outpost_queued_total" => &c.queued,
                _ => &c.shed,
            };
            for (i, class) in CLASS_NAMES.iter().enumerate() {
                x.sample(family, &[("origin", name), ("class", class)], get(&arr[i]));
            }
        }
    }
    if let Some(b) = &node.priority {
        x.family(
            "outpost_priority_capped_total",
            "counter",
            "Requests capped at normal because their address used its allowance of higher classes.",
        );
        x.sample("outpost_priority_capped_total", &[], get(&b.demoted));
    }
    if let Some(r) = &node.recorder {
        x.family(
            "outpost_recorded_total",
            "counter",
            "Requests written to the recording ([record]).",
        );
        x.sample("outpost_recorded_total", &[], get(&r.recorded));
        x.family(
            "outpost_record_dropped_total",
            "counter",
            "Sampled requests not recorded because the writer fell behind.",
        );
        x.sample("outpost_record_dropped_total", &[], get(&r.dropped));
    }
    if let Some(b) = &node.fairness {
        x.family(
            "outpost_client_demoted_total",
            "counter",
            "Requests demoted to bulk because their client exceeded its bucket.",
        );
        x.sample("outpost_client_demoted_total", &[], get(&b.demoted));
        x.family("outpost_clients_tracked", "gauge", "Clients with a bucket.");
        x.sample("outpost_clients_tracked", &[], b.len() as u64);
    }
    x.finish()
}

fn text(status: StatusCode, ctype: &'static str, body: String) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, http::HeaderValue::from_static(ctype));
    r
}

/// Answer one admin request.
pub fn handle(node: &Node, path: &str) -> Response<Body> {
    match path {
        "/metrics" => text(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            metrics_text(node),
        ),
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
pub async fn serve(slot: NodeSlot, listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let slot = slot.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let node = slot.current();
                async move { Ok::<_, Infallible>(handle(&node, req.uri().path())) }
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
