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
    check(
        "body",
        a.body_replaced == b.body_replaced && a.body_digest == b.body_digest,
    );
    check("cache", a.cache == b.cache);
    out
}

/// What changed, field by field, in words: `status: 200 → 503`.
pub fn changes(a: &Decision, b: &Decision) -> Vec<String> {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".into());
    let list = |v: &[String]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    let headers = |d: &Decision| {
        format!(
            "set [{}] removed [{}]",
            d.headers_set.join(", "),
            d.headers_removed.join(", ")
        )
    };
    let mut out = Vec::new();
    let mut field = |name: &str, x: String, y: String| {
        if x != y {
            out.push(format!("{name}: {x} → {y}"));
        }
    };
    field("route", opt(&a.route), opt(&b.route));
    field("class", opt(&a.class), opt(&b.class));
    field("guests", list(&a.guests), list(&b.guests));
    field("forwarded", opt(&a.forwarded), opt(&b.forwarded));
    field("headers", headers(a), headers(b));
    field("origin", opt(&a.origin), opt(&b.origin));
    field(
        "answered_by",
        a.answered_by.to_string(),
        b.answered_by.to_string(),
    );
    field("status", a.status.to_string(), b.status.to_string());
    field(
        "body_replaced",
        a.body_replaced.to_string(),
        b.body_replaced.to_string(),
    );
    field("body", opt(&a.body_digest), opt(&b.body_digest));
    field("cache", opt(&a.cache), opt(&b.cache));
    out
}

/// Fields whose values are the request's own (a path, header values): a group
/// names them changed, and shows their values on its example.
const PER_REQUEST: [&str; 3] = ["forwarded", "headers", "body"];

/// Differences with the same changes, counted, with the first as an example.
#[derive(Debug, Clone)]
pub struct Group<'a> {
    /// The changes, in words (`status: 200 → 503`; `forwarded: changed` for the
    /// fields whose values are each request's own).
    pub changes: Vec<String>,
    /// The example's changes to those fields, before → after.
    pub example_changes: Vec<String>,
    /// How many requests changed so.
    pub count: u64,
    /// The first of them.
    pub example: &'a Difference,
}

/// `diffs` grouped by their changes, the largest group first.
pub fn grouped(diffs: &[Difference]) -> Vec<Group<'_>> {
    let mut groups: Vec<Group<'_>> = Vec::new();
    let mut index: BTreeMap<Vec<String>, usize> = BTreeMap::new();
    for d in diffs {
        let all = changes(&d.a, &d.b);
        let own = |c: &String| PER_REQUEST.iter().any(|f| c.starts_with(&format!("{f}: ")));
        let key: Vec<String> = all
            .iter()
            .map(|c| {
                match PER_REQUEST
                    .iter()
                    .find(|f| c.starts_with(&format!("{f}: ")))
                {
                    Some(f) => format!("{f}: changed"),
                    None => c.clone(),
                }
            })
            .collect();
        match index.get(&key) {
            Some(&i) => groups[i].count += 1,
            None => {
                index.insert(key.clone(), groups.len());
                groups.push(Group {
                    changes: key,
                    example_changes: all.into_iter().filter(|c| own(c)).collect(),
                    count: 1,
                    example: d,
                });
            }
        }
    }
    groups.sort_by_key(|g| std::cmp::Reverse(g.count));
    groups
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
    /// When both runs made a body and the bodies differ: the lines only A's body
    /// has, and those only B's has (a trimmed manifest's variants).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_lines: Option<(Vec<String>, Vec<String>)>,
}

/// The lines only in `a`, and those only in `b` (in their order).
pub fn line_changes(a: &[u8], b: &[u8]) -> (Vec<String>, Vec<String>) {
    let lines = |x: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(x)
            .lines()
            .map(str::to_string)
            .collect()
    };
    let (la, lb) = (lines(a), lines(b));
    let only = |x: &[String], y: &[String]| -> Vec<String> {
        let set: std::collections::BTreeSet<&String> = y.iter().collect();
        x.iter().filter(|l| !set.contains(l)).cloned().collect()
    };
    (only(&la, &lb), only(&lb, &la))
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
        let body_lines = match (&x.body, &y.body) {
            (Some(p), Some(q)) if p != q => Some(line_changes(p, q)),
            _ => None,
        };
        out.push(Difference {
            seq: x.seq,
            request: x.request.clone(),
            changed,
            a: x.decision.clone(),
            b: y.decision.clone(),
            body_lines,
        });
    }
    (out, kinds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::AnsweredBy;

    fn decision(status: u16, by: AnsweredBy) -> Decision {
        Decision {
            status,
            answered_by: by,
            ..Decision::detailed()
        }
    }

    #[test]
    fn differences_are_grouped_by_what_changed_before_and_after() {
        let d = |seq, b: Decision| Difference {
            seq,
            request: format!("GET /{seq}"),
            changed: vec![],
            a: decision(200, AnsweredBy::Origin),
            b,
            body_lines: None,
        };
        let diffs = vec![
            d(1, decision(503, AnsweredBy::Limiter)),
            d(2, decision(404, AnsweredBy::Origin)),
            d(3, decision(503, AnsweredBy::Limiter)),
        ];
        let groups = grouped(&diffs);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].count, 2);
        assert_eq!(
            groups[0].changes,
            ["answered_by: origin → limiter", "status: 200 → 503"]
        );
        assert_eq!(groups[0].example.seq, 1);
        assert_eq!(groups[1].changes, ["status: 200 → 404"]);
        // Per-request values group together and show on the example.
        let fwd = |seq, path: &str| Difference {
            seq,
            request: format!("GET {path}"),
            changed: vec![],
            a: Decision {
                forwarded: Some(format!("GET {path}")),
                ..decision(200, AnsweredBy::Origin)
            },
            b: Decision {
                forwarded: Some(format!("GET /img{path}")),
                ..decision(200, AnsweredBy::Origin)
            },
            body_lines: None,
        };
        let diffs = [fwd(1, "/a.gif"), fwd(2, "/b.gif")];
        let groups = grouped(&diffs);
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].changes, ["forwarded: changed"]);
        assert_eq!(
            groups[0].example_changes,
            ["forwarded: GET /a.gif → GET /img/a.gif"]
        );
    }
}
