//! Phase: request. The request guests, in order: each forwards the request (with an
//! edit) or answers it at the edge. An edit is validated whole before any of it
//! applies; a guest that picks another origin has the request admitted by that
//! origin's limiter (at the origin phase, after the cache).

use std::sync::Arc;

use http::{Method, Response};

use super::Phase;
use super::fail::on_failure;
use crate::body::Body;
use crate::contract::convert::edge_response;
use crate::contract::edit::{apply_header_ops, invalid};
use crate::contract::types::{self, RequestAction, RequestHead};
use crate::decision::{AnsweredBy, Decision};
use crate::error::{EdgeError, GuestError};
use crate::limiter::LoadSource;
use crate::node::{GuestRef, Node, OriginEntry, RouteEntry};

/// What a request holds on its way to an origin: the origin, the load signals
/// the response guests read, and the class and cost it is admitted with.
pub(super) struct Ticket<'n> {
    /// Where it goes.
    pub origin: &'n Arc<OriginEntry>,
    /// That origin's load signals.
    pub load: LoadSource,
    /// Its class.
    pub class: usize,
    /// Its cost.
    pub cost: u32,
}

/// What the request chain decided.
pub(super) enum Chained<'n> {
    /// Forward, with this ticket.
    Forward(Ticket<'n>),
    /// A guest answered at the edge.
    Answer(Response<Body>),
}

/// Run the request guests over `head`.
pub(super) async fn chain<'n>(
    node: &'n Node,
    route: &RouteEntry,
    head: &mut RequestHead,
    mut ticket: Ticket<'n>,
    d: &mut Decision,
) -> Result<Chained<'n>, EdgeError> {
    for g in &route.request {
        let out = g
            .guest
            .request(&node.runtime, ticket.load.clone(), head)
            .await;
        d.step(|| format!("request:{}={}", g.guest.name, step(&out)));
        let failed = match out {
            Ok(RequestAction::Forward(edit)) => {
                apply_request_edit(head, edit, node, &mut ticket.origin, &g.guest.name).err()
            }
            Ok(RequestAction::Respond(r)) => match edge_response(r, &g.guest.name) {
                Ok(resp) => {
                    d.answered(|| AnsweredBy::Request(g.guest.name.clone()));
                    route.metrics.edge_answers.inc();
                    return Ok(Chained::Answer(resp));
                }
                Err(e) => Some(e),
            },
            Err(e) => {
                skip_or_fail(g, e, false)?;
                None
            }
        };
        if let Some(e) = failed {
            skip_or_fail(g, e, true)?;
        }
    }
    Ok(Chained::Forward(reroute(route, ticket)))
}

/// A guest's failure: skipped under `fail = "open"`, the request's error under
/// `"closed"`. An invalid result is counted here; a failed call was counted by the
/// runtime.
fn skip_or_fail(g: &GuestRef, e: GuestError, count: bool) -> Result<(), EdgeError> {
    if count {
        g.guest.metrics.record_failure(&e);
    }
    on_failure(Phase::Request, g, e).map_or(Ok(()), Err)
}

fn step(out: &Result<RequestAction, GuestError>) -> String {
    match out {
        Ok(RequestAction::Forward(_)) => "forward".to_string(),
        Ok(RequestAction::Respond(r)) => format!("respond {}", r.status),
        Err(e) => format!("failed {}", e.kind()),
    }
}

/// A request guest chose another origin: the response guests read that origin's
/// load, and its limiter admits the request.
fn reroute<'n>(route: &RouteEntry, t: Ticket<'n>) -> Ticket<'n> {
    if Arc::ptr_eq(t.origin, &route.origin) {
        return t;
    }
    Ticket {
        load: LoadSource::new(t.origin.limiter.clone()),
        ..t
    }
}

/// Apply a request guest's edit. Everything is validated before anything changes, so
/// a failing guest under `fail = "open"` leaves the request exactly as it was.
pub(super) fn apply_request_edit<'n>(
    head: &mut RequestHead,
    edit: types::RequestEdit,
    node: &'n Node,
    origin: &mut &'n Arc<OriginEntry>,
    guest: &str,
) -> Result<(), GuestError> {
    if let Some(m) = &edit.method {
        Method::from_bytes(m.as_bytes())
            .map_err(|_| invalid(guest, format!("bad method {m:?}")))?;
    }
    let edited_path = match &edit.path {
        Some(p) => Some(edited_path(node, head, p, guest)?),
        None => None,
    };
    let path = edited_path.as_deref().unwrap_or(&head.path);
    let query = edit.query.as_deref().unwrap_or(&head.query);
    format!("{path}?{query}")
        .parse::<http::uri::PathAndQuery>()
        .map_err(|e| invalid(guest, format!("path or query do not form a valid URI: {e}")))?;
    let chosen = match &edit.origin {
        Some(o) => Some(node.origins.get(o).ok_or_else(|| {
            invalid(
                guest,
                format!("chose origin `{o}`, which is not configured"),
            )
        })?),
        None => None,
    };
    apply_header_ops(&mut head.headers, edit.headers, guest)?;
    if let Some(m) = edit.method {
        head.method = m;
    }
    if let Some(p) = edited_path {
        head.path = p;
    }
    if let Some(q) = edit.query {
        head.query = q;
    }
    if let Some(o) = chosen {
        *origin = o;
    }
    Ok(())
}

/// A path a guest writes is held to what a client's is: normalised (or refused),
/// and it may not move the request under another route, whose guards it has not
/// passed (`/PRIVATE/x` lower-cased on a catch-all must not reach `/private/`).
fn edited_path(
    node: &Node,
    head: &RequestHead,
    p: &str,
    guest: &str,
) -> Result<String, GuestError> {
    let normal =
        crate::canon::path(p).map_err(|r| invalid(guest, format!("path {p:?} refused: {r}")))?;
    let host = crate::canon::host(&head.authority).unwrap_or_default();
    match (node.route(&host, &head.path), node.route(&host, &normal)) {
        (Some(a), Some(b)) if std::ptr::eq(a, b) => Ok(normal),
        (_, b) => Err(invalid(
            guest,
            format!(
                "path {normal:?} would be served by route `{}`, not the route the request passed (`{}`)",
                b.map_or("(none)", |r| &*r.name),
                head.route
            ),
        )),
    }
}

/// The verdict of a chain that forwards `after` (from `before`) to `origin`.
pub(super) fn verdict_forward(
    before: &RequestHead,
    after: &RequestHead,
    origin: &OriginEntry,
) -> crate::decision::Verdict {
    let mut d = Decision::detailed();
    note_forwarded(&mut d, origin, after, &before.headers);
    crate::decision::Verdict {
        action: "forward".into(),
        forwarded: d.forwarded,
        origin: d.origin,
        headers_set: d.headers_set,
        headers_removed: d.headers_removed,
        ..Default::default()
    }
}

/// Run `guests` over a copy of `before` as the request chain would, deciding
/// nothing (a shadow): their verdict, and whether any of them failed. A failing
/// guest is skipped, or under `fail = "closed"` ends the chain as a failure, as
/// live.
pub(super) async fn shadow_chain(
    node: &Node,
    route: &RouteEntry,
    guests: &[GuestRef],
    before: &RequestHead,
) -> (crate::decision::Verdict, bool) {
    let mut head = before.clone();
    let mut origin = &route.origin;
    let load = LoadSource::new(route.origin.limiter.clone());
    let mut any_failed = false;
    let failed = |e: &GuestError| crate::decision::Verdict {
        action: format!("failed {}", e.kind()),
        ..Default::default()
    };
    for g in guests {
        let runtime = &node.shadow_runtime;
        let err = match g.guest.request(runtime, load.clone(), &head).await {
            Ok(RequestAction::Forward(edit)) => {
                match apply_request_edit(&mut head, edit, node, &mut origin, &g.guest.name) {
                    Ok(()) => continue,
                    Err(e) => {
                        g.guest.metrics.on(runtime).record_failure(&e);
                        e
                    }
                }
            }
            Ok(RequestAction::Respond(r)) => {
                let v = crate::decision::Verdict {
                    action: format!("respond {}", r.status),
                    ..Default::default()
                };
                return (v, any_failed);
            }
            Err(e) => e,
        };
        any_failed = true;
        let metrics = g.guest.metrics.on(runtime);
        if g.fail == edge_config::FailMode::Closed {
            metrics.closed.inc();
            return (failed(&err), true);
        }
        metrics.skipped.inc();
    }
    (verdict_forward(before, &head, origin), any_failed)
}

/// Record where the request went and what the guests changed in its headers.
pub(super) fn note_forwarded(
    d: &mut Decision,
    origin: &OriginEntry,
    head: &RequestHead,
    incoming: &[types::Header],
) {
    d.origin = Some(origin.client.name.clone());
    d.forwarded = Some(if head.query.is_empty() {
        format!("{} {}", head.method, head.path)
    } else {
        format!("{} {}?{}", head.method, head.path, head.query)
    });
    header_changes(incoming, &head.headers, d);
}

/// Record which headers the request guests set, changed or removed.
pub(super) fn header_changes(before: &[types::Header], after: &[types::Header], d: &mut Decision) {
    let values = |hs: &[types::Header], name: &str| -> Vec<String> {
        hs.iter()
            .filter(|h| h.name == name)
            .map(|h| String::from_utf8_lossy(&h.value).into_owned())
            .collect()
    };
    let mut names: Vec<&str> = before
        .iter()
        .chain(after.iter())
        .map(|h| h.name.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        let (b, a) = (values(before, name), values(after, name));
        if b == a {
            continue;
        }
        if a.is_empty() {
            d.headers_removed.push(name.to_string());
        } else {
            d.headers_set.push(format!("{name}: {}", a.join(", ")));
        }
    }
}
