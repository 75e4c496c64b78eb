//! Failures: a guest's under its fail mode, and the response for an error. The
//! status and the metric follow from the error's source tag.

use std::net::SocketAddr;

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use super::Phase;
use crate::body::{self, Body};
use crate::decision::{AnsweredBy, Decision};
use crate::error::{EdgeError, GuestError};
use crate::node::{GuestRef, Node};
use crate::runtime::GuestMetrics;
use edge_config::FailMode;

/// Fail open: count and skip (None). Fail closed: the error to answer with.
pub(super) fn on_failure(phase: Phase, g: &GuestRef, e: GuestError) -> Option<EdgeError> {
    on_failure_in(&g.guest.metrics, phase, g, e)
}

/// [`on_failure`], counted in `metrics` (a shadow run's: `GuestMetrics::on`).
pub(super) fn on_failure_in(
    metrics: &GuestMetrics,
    phase: Phase,
    g: &GuestRef,
    e: GuestError,
) -> Option<EdgeError> {
    match g.fail {
        FailMode::Open => {
            metrics.skipped.inc();
            tracing::debug!(?phase, kind = e.kind(), "skipping failed guest: {e}");
            None
        }
        FailMode::Closed => {
            metrics.closed.inc();
            tracing::warn!(?phase, kind = e.kind(), "{e}");
            Some(EdgeError::GuestClosed(e))
        }
    }
}

/// Count, log and record the error; the response that answers it.
pub(super) fn answer(
    node: &Node,
    e: &EdgeError,
    client: SocketAddr,
    d: &mut Decision,
) -> Response<Body> {
    node.metrics.record_error(e.source_label());
    match e {
        EdgeError::OriginDown { .. } => tracing::warn!(phase = ?Phase::Origin, "{e}"),
        EdgeError::ClientBody(_) => tracing::debug!(%client, "{e}"),
        _ => {}
    }
    if d.detail {
        if d.answered_by == AnsweredBy::Nobody {
            d.answered_by = match e {
                EdgeError::Shed { .. } => AnsweredBy::Limiter,
                _ => AnsweredBy::Error,
            };
        }
        d.reason = Some(e.to_string());
    }
    error_response(e)
}

/// The response for an error.
pub fn error_response(e: &EdgeError) -> Response<Body> {
    let status = e.status();
    // The body says what kind of failure it was, never internal detail (addresses,
    // parser messages): that goes to the log and the recorded decision.
    let text = match e {
        EdgeError::OriginDown { .. } => "the origin is unreachable\n".to_string(),
        EdgeError::OriginTimeout { .. } => "the origin did not answer in time\n".to_string(),
        _ => format!("{e}\n"),
    };
    let mut resp = Response::new(body::full(text));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    h.insert(
        "x-outpost-error",
        HeaderValue::from_static(e.source_label()),
    );
    resp
}
