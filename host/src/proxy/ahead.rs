//! The guests of a request run ahead of a replay's turn (`runtime::speculate`):
//! the target and head as [`target`](super::target) builds them, the admit guest,
//! then the request guests over the head each edit leaves, on a runtime that traces
//! and applies nothing. Whatever this gets wrong (a guest that rerouted, an edge
//! answer) only means the replay finds no matching trace and runs the guest itself.

use std::net::SocketAddr;

use http::Request;

use super::request::apply_request_edit;
use crate::body::Body;
use crate::contract::types::{AdmitDecision, RequestAction};
use crate::decision::Decision;
use crate::limiter::LoadSource;
use crate::node::Node;
use crate::runtime::Runtime;

/// Run `req`'s admit and request guests on `runtime` (a runtime from
/// [`Runtime::ahead`]), as the request path would.
pub async fn ahead(node: &Node, runtime: &Runtime, req: Request<Body>, client: SocketAddr) {
    let (mut parts, _) = req.into_parts();
    let mut d = Decision::default();
    let Ok((route, mut head)) = super::target::route(node, &mut parts, client, &mut d) else {
        return;
    };
    let load = LoadSource::new(route.origin.limiter.clone());
    if let Some(g) = &route.admit {
        match g.guest.admit(runtime, load.clone(), &head).await {
            Ok(AdmitDecision::Admit(_)) => {}
            Ok(AdmitDecision::Reject(_)) => return,
            Err(_) if g.fail == edge_config::FailMode::Closed => return,
            Err(_) => {}
        }
    }
    let mut origin = &route.origin;
    for g in &route.request {
        match g.guest.request(runtime, load.clone(), &head).await {
            Ok(RequestAction::Forward(edit)) => {
                if apply_request_edit(&mut head, edit, node, &mut origin, &g.guest.name).is_err()
                    && g.fail == edge_config::FailMode::Closed
                {
                    return;
                }
            }
            Ok(RequestAction::Respond(_)) => return,
            Err(_) if g.fail == edge_config::FailMode::Closed => return,
            Err(_) => {}
        }
    }
}
