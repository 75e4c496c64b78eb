//! Two replays' decisions compared: the requests decided differently, grouped by
//! the fields that changed.

use std::collections::BTreeMap;

use serde::Serialize;

use super::Replayed;
use crate::decision::Decision;

/// The fields in which two decisions differ.
pub fn changed_fields(a: &Decision, b: &Decision) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut check = |name, same: bool| {
        if !same {
            out.push(name);
        }
    };
    check("route", a.route == b.route);
    check("class", a.class == b.class);
    check("guests", a.guests == b.guests);
    check("forwarded", a.forwarded == b.forwarded);
    check(
        "headers",
        a.headers_set == b.headers_set && a.headers_removed == b.headers_removed,
    );
    check("origin", a.origin == b.origin);
    check("answered_by", a.answered_by == b.answered_by);
    check("status", a.status == b.status);
    check("body", a.body_replaced == b.body_replaced);
    check("cache", a.cache == b.cache);
    out
}

/// One request whose decisions differ between two runs.
#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    /// The entry's position.
    pub seq: u64,
    /// The request as recorded.
    pub request: String,
    /// The kinds of change (`forwarded`, `status` ...).
    pub changed: Vec<&'static str>,
    /// Decisions under A.
    pub a: Decision,
    /// Decisions under B.
    pub b: Decision,
}

/// Compare two decision lists (same inputs, in the same order).
pub fn diff(a: &[Replayed], b: &[Replayed]) -> (Vec<Difference>, BTreeMap<String, u64>) {
    let mut out = Vec::new();
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    for (x, y) in a.iter().zip(b.iter()) {
        let changed = changed_fields(&x.decision, &y.decision);
        if changed.is_empty() {
            continue;
        }
        *kinds.entry(changed.join("+")).or_default() += 1;
        out.push(Difference {
            seq: x.seq,
            request: x.request.clone(),
            changed,
            a: x.decision.clone(),
            b: y.decision.clone(),
        });
    }
    (out, kinds)
}
