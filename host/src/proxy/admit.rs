//! Phase: admit. The admit guest classifies the request (or rejects it at the
//! edge); per-client fairness and the per-address allowance of higher classes
//! adjust the class the limiter will see.

use std::net::IpAddr;

use http::Response;

use super::Phase;
use super::fail::on_failure;
use crate::body::Body;
use crate::contract::convert::{NORMAL, class_index, edge_response};
use crate::contract::types::{AdmitDecision, PriorityClass, RequestHead};
use crate::decision::{AnsweredBy, Decision};
use crate::error::EdgeError;
use crate::limiter::{CLASS_NAMES, CLASSES, LoadSource};
use crate::node::{Node, RouteEntry};

/// What the admit phase decided.
pub(super) enum Admitted {
    /// Go on to the limiter in this class, at this cost.
    Class {
        /// Priority class, 0 (critical) to 4 (bulk).
        class: usize,
        /// Limiter slots it takes.
        cost: u32,
    },
    /// The admit guest answered at the edge.
    Answer(Response<Body>),
}

/// Run the admit phase for a request from `ip`.
pub(super) async fn admit(
    node: &Node,
    route: &RouteEntry,
    load: &LoadSource,
    head: &RequestHead,
    ip: IpAddr,
    d: &mut Decision,
) -> Result<Admitted, EdgeError> {
    let (class, cost, key) = match classify(node, route, load, head).await? {
        Classified::Class(c, cost, key) => (c, cost, key),
        Classified::Answer(resp) => {
            if let Some(g) = &route.admit {
                d.answered(|| AnsweredBy::Admit(g.guest.name.clone()));
                d.step(|| format!("admit:{}=reject {}", g.guest.name, resp.status().as_u16()));
            }
            route.metrics.edge_answers.inc();
            return Ok(Admitted::Answer(resp));
        }
    };
    if let Some(g) = &route.admit {
        d.step(|| format!("admit:{}={}", g.guest.name, CLASS_NAMES[class.min(4)]));
    }
    let class = adjust(node, ip, class, key.as_deref(), d);
    if d.detail {
        d.class = CLASS_NAMES.get(class).map(|n| n.to_string());
    }
    Ok(Admitted::Class { class, cost })
}

/// Per-client fairness: a client past its bucket is demoted to bulk. The address
/// the node established is the client (an IPv6 one by its /64); a guest's key
/// subdivides it. A class above normal rests on what the client asserts (CMCD,
/// headers): each address has an allowance of those; past it, normal.
fn adjust(node: &Node, ip: IpAddr, mut class: usize, key: Option<&str>, d: &mut Decision) -> usize {
    let address = if node.fairness.is_some() || node.priority.is_some() {
        crate::client::address_key(ip).to_string()
    } else {
        String::new()
    };
    if let Some(buckets) = &node.fairness
        && !buckets.take(&address, key, node.clock.monotonic_ns())
    {
        class = CLASSES - 1;
        d.step(|| "fairness=demoted".into());
    }
    if class < NORMAL
        && let Some(allowance) = &node.priority
        && !allowance.take(&address, node.clock.monotonic_ns())
    {
        class = NORMAL;
        d.step(|| "priority=capped".into());
    }
    class
}

/// What the admit guest said.
enum Classified {
    Class(usize, u32, Option<String>),
    Answer(Response<Body>),
}

async fn classify(
    node: &Node,
    route: &RouteEntry,
    load: &LoadSource,
    head: &RequestHead,
) -> Result<Classified, EdgeError> {
    let Some(g) = &route.admit else {
        return Ok(Classified::Class(
            class_index(PriorityClass::Normal),
            1,
            None,
        ));
    };
    let normal = Classified::Class(NORMAL, 1, None);
    match g.guest.admit(&node.runtime, load.clone(), head).await {
        Ok(AdmitDecision::Admit(a)) => Ok(Classified::Class(
            class_index(a.class),
            a.cost.max(1),
            a.client_key,
        )),
        Ok(AdmitDecision::Reject(r)) => match edge_response(r, &g.guest.name) {
            Ok(resp) => Ok(Classified::Answer(resp)),
            Err(e) => {
                g.guest.metrics.record_failure(&e);
                on_failure(Phase::Admit, g, e).map_or(Ok(normal), Err)
            }
        },
        Err(e) => on_failure(Phase::Admit, g, e).map_or(Ok(normal), Err),
    }
}
