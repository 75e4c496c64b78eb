//! Shadow runs: a route's candidate request and response guests, run on a sample
//! of its live requests once their responses have gone, on what the live guests
//! got (the request head; the origin's answer, body included when the route
//! transforms it). They
//! decide nothing: their verdict is compared with the live guests', counted
//! (`outpost_shadow_total{result}`: `agree` or `disagree` per run, `dropped` when
//! the shadows are behind, and `failed` besides when a candidate failed;
//! `outpost_shadow_disagreements_total{kind}`), and a disagreement is recorded for
//! `outpost replay --diff`.
//!
//! Shadows run on one thread of their own, at the lowest CPU priority, from a
//! bounded queue: a candidate that spins costs the live requests neither a worker
//! thread nor more than the CPU they leave idle, and when shadows fall behind,
//! samples are dropped (and counted), never queued without bound.

use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, OnceLock};

use crate::decision::{Decision, Shadowed, Verdict};
use crate::metrics::labels2;
use crate::node::{Node, RouteEntry};

/// Shadow runs waiting at most; past it a sample is dropped. Deep enough to take a
/// burst and catch up after it.
const QUEUE: usize = 4096;

/// Bytes the waiting runs may hold at most (a request head, and with response
/// candidates the origin's body): past it a sample is dropped.
const QUEUE_BYTES: usize = 64 << 20;

/// Bytes held by the waiting runs.
static QUEUED_BYTES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// What a run holds while it waits, roughly.
fn weight(s: &Shadowed) -> usize {
    1024 + s
        .response
        .as_ref()
        .and_then(|r| r.body.as_ref())
        .map_or(0, bytes::Bytes::len)
}

type Job = (Arc<Node>, Box<Shadowed>);

/// The shadow thread's queue (started on first use; None if it could not start).
fn queue() -> Option<&'static SyncSender<Job>> {
    static QUEUE_TX: OnceLock<Option<SyncSender<Job>>> = OnceLock::new();
    QUEUE_TX
        .get_or_init(|| {
            let (tx, rx) = sync_channel::<Job>(QUEUE);
            let started = std::thread::Builder::new()
                .name("outpost-shadow".into())
                .spawn(move || {
                    lower_priority();
                    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    else {
                        return;
                    };
                    for (node, s) in rx {
                        let w = weight(&s);
                        rt.block_on(run(&node, *s));
                        QUEUED_BYTES.fetch_sub(w, std::sync::atomic::Ordering::Relaxed);
                    }
                });
            started.ok().map(|_| tx)
        })
        .as_ref()
}

/// This thread at the lowest CPU priority (Linux: nice is per thread).
#[allow(unsafe_code)]
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: `setpriority(PRIO_PROCESS, 0, 19)` changes the calling thread's nice
    // value; it reads and writes no memory of ours.
    unsafe {
        let _ = libc::setpriority(libc::PRIO_PROCESS, 0, 19);
    }
}

/// When the request is in its route's shadow sample: the head as the live request
/// guests get it, for the candidates.
pub(super) fn sampled(
    route: &RouteEntry,
    head: &crate::contract::types::RequestHead,
) -> Option<crate::contract::types::RequestHead> {
    route
        .shadow
        .as_ref()
        .filter(|s| s.sample())
        .map(|_| head.clone())
}

/// Queue a shadow run of `s` (a request of `node`'s); dropped and counted when the
/// shadows are behind.
pub(super) fn submit(node: Arc<Node>, s: Box<Shadowed>) {
    let Some(route) = node.routes.get(s.route) else {
        return;
    };
    let Some(shadow) = route.shadow.clone() else {
        return;
    };
    let name = route.name.clone();
    let w = weight(&s);
    let held = QUEUED_BYTES.fetch_add(w, std::sync::atomic::Ordering::Relaxed);
    let dropped = match queue().filter(|_| held + w <= QUEUE_BYTES) {
        Some(q) => match q.try_send((node, s)) {
            Ok(()) => false,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => true,
        },
        None => true,
    };
    if dropped {
        QUEUED_BYTES.fetch_sub(w, std::sync::atomic::Ordering::Relaxed);
    }
    if dropped {
        shadow
            .results
            .get_or_create_owned(&labels2("route", &name, "result", "dropped"))
            .inc();
    }
}

/// Run the candidates of `s`'s route and compare.
async fn run(node: &Node, s: Shadowed) {
    let Some(route) = node.routes.get(s.route) else {
        return;
    };
    let Some(shadow) = &route.shadow else {
        return;
    };
    let (candidate, mut failed) = if shadow.request.is_empty() {
        (s.live.clone(), false)
    } else {
        super::request::shadow_chain(node, route, &shadow.request, &s.before).await
    };
    let mut differ = s.live.differences(&candidate);
    if let (false, Some(r)) = (shadow.response.is_empty(), &s.response) {
        let (cr, f) = super::response::shadow_chain(node, route, &shadow.response, r).await;
        failed |= f;
        differ.extend(r.live.differences(&cr).into_iter().map(|k| match k {
            "headers" => "response_headers",
            "action" => "response_action",
            k => k,
        }));
    }
    let count = |result: &str| {
        shadow
            .results
            .get_or_create_owned(&labels2("route", &route.name, "result", result))
            .inc();
    };
    if failed {
        count("failed");
    }
    if differ.is_empty() {
        count("agree");
        return;
    }
    count("disagree");
    for k in &differ {
        shadow
            .kinds
            .get_or_create_owned(&labels2("route", &route.name, "kind", k))
            .inc();
    }
    if let Some(rec) = &shadow.recorder {
        record(rec, route, &s, &candidate, &differ);
    }
}

/// Record the request whose candidates disagreed: the head the live guests got,
/// with the live verdict as its decision and the candidates' in `reason`.
fn record(
    rec: &crate::record::Recorder,
    route: &RouteEntry,
    s: &Shadowed,
    candidate: &Verdict,
    differ: &[&str],
) {
    let h = &s.before;
    let entry = crate::record::Recorder::entry_of_head(h, s.client);
    let decision = Decision {
        route: Some(route.name.to_string()),
        forwarded: s.live.forwarded.clone(),
        origin: s.live.origin.clone(),
        headers_set: s.live.headers_set.clone(),
        headers_removed: s.live.headers_removed.clone(),
        reason: Some(format!(
            "shadow: {} differ; live {} {}, candidates {} {}",
            differ.join("+"),
            s.live.action,
            s.live.forwarded.as_deref().unwrap_or(""),
            candidate.action,
            candidate.forwarded.as_deref().unwrap_or("")
        )),
        ..Decision::detailed()
    };
    rec.finish(entry, &decision, 0, std::time::Duration::ZERO);
}
