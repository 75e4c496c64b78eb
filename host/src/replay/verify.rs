//! `outpost replay --verify`: a node's own recording replayed through the config
//! it was recorded with, each replayed decision compared with the recorded one.
//! What may differ between two runs by design is named here ([`EXCLUDED`]) and
//! left out of the comparison, never silently.

use std::collections::BTreeMap;

use outpost_traffic::Entry;

use super::Replayed;
use super::diff::{changed_fields, changes};
use crate::decision::Decision;

/// What a verification leaves out, and why.
pub const EXCLUDED: [(&str, &str); 2] = [
    (
        "request ids",
        "values of headers a guest set to the request's id (`request-id` rules): a new id per run",
    ),
    (
        "timing",
        "durations, origin latency and arrival times: replay runs on a virtual clock",
    ),
];

/// The placeholder a request id becomes in both decisions.
const REQUEST_ID: &str = "<request-id>";

/// How a replay compared with its recording.
#[derive(Debug, Default)]
pub struct Verification {
    /// Entries with a recorded decision, compared.
    pub compared: u64,
    /// Of those, decided the same.
    pub reproduced: u64,
    /// Entries without a recorded decision (not Outpost's recording), skipped.
    pub unrecorded: u64,
    /// Entries whose body the recorder cut (`max_body_kib`): the guests cannot see
    /// again what they saw, so they are not compared.
    pub truncated: u64,
    /// Kinds of difference (`status+answered_by` ...), counted.
    pub kinds: BTreeMap<String, u64>,
    /// The first few differences: the request, then its changes, recorded → replayed.
    pub examples: Vec<(String, Vec<String>)>,
}

impl Verification {
    /// The share reproduced, percent (100 when nothing was compared).
    pub fn share(&self) -> f64 {
        if self.compared == 0 {
            100.0
        } else {
            100.0 * self.reproduced as f64 / self.compared as f64
        }
    }

    /// The report, in words.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "verified {} recorded decisions: {} reproduced ({:.1}%), {} differ\n",
            self.compared,
            self.reproduced,
            self.share(),
            self.compared - self.reproduced
        );
        if self.truncated > 0 {
            s.push_str(&format!(
                "{} entries kept only part of their body (record.max_body_kib): not compared\n",
                self.truncated
            ));
        }
        if self.unrecorded > 0 {
            s.push_str(&format!(
                "{} entries carry no recorded decision (not an Outpost recording): skipped\n",
                self.unrecorded
            ));
        }
        s.push_str("excluded from the comparison:\n");
        for (what, why) in EXCLUDED {
            s.push_str(&format!("  {what}: {why}\n"));
        }
        if !self.kinds.is_empty() {
            s.push_str("differences by kind:\n");
            let mut kinds: Vec<_> = self.kinds.iter().collect();
            kinds.sort_by_key(|(_, n)| std::cmp::Reverse(**n));
            for (k, n) in kinds {
                s.push_str(&format!("  {n:>8}  {k}\n"));
            }
            s.push_str("first differences (recorded → replayed):\n");
            for (req, ch) in &self.examples {
                s.push_str(&format!("  {req}\n"));
                for c in ch {
                    s.push_str(&format!("      {c}\n"));
                }
            }
        }
        s
    }
}

/// `d` with the values of headers set to `id` replaced by a placeholder.
fn masked(mut d: Decision, id: Option<&str>) -> Decision {
    if let Some(id) = id.filter(|i| !i.is_empty()) {
        for h in &mut d.headers_set {
            if let Some((name, value)) = h.split_once(": ")
                && value == id
            {
                *h = format!("{name}: {REQUEST_ID}");
            }
        }
    }
    d
}

/// Compare each replayed decision with the one `entries` recorded (same order).
pub fn verify(entries: &[Entry], replayed: &[Replayed]) -> Verification {
    let mut v = Verification::default();
    for (e, r) in entries.iter().zip(replayed) {
        let Some(recorded) = e
            .decision
            .as_ref()
            .and_then(|d| serde_json::from_value::<Decision>(d.clone()).ok())
        else {
            v.unrecorded += 1;
            continue;
        };
        if e.body.as_ref().is_some_and(|b| b.truncated) {
            v.truncated += 1;
            continue;
        }
        v.compared += 1;
        let recorded = masked(recorded, e.request_id.as_deref());
        let now = masked(r.decision.clone(), r.decision.aside.request_id.as_deref());
        let changed = changed_fields(&recorded, &now);
        if changed.is_empty() {
            v.reproduced += 1;
            continue;
        }
        *v.kinds.entry(changed.join("+")).or_default() += 1;
        if v.examples.len() < 5 {
            v.examples.push((
                format!("#{} {}", e.seq, r.request),
                changes(&recorded, &now),
            ));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, d: &Decision, id: &str) -> Entry {
        Entry {
            seq,
            at_us: 0,
            method: "GET".into(),
            scheme: "http".into(),
            authority: "a".into(),
            path: "/".into(),
            query: String::new(),
            headers: vec![],
            client_ip: None,
            status: Some(d.status),
            response_bytes: None,
            duration_us: None,
            response_headers: vec![],
            decision: serde_json::to_value(d).ok(),
            body: None,
            request_id: Some(id.into()),
        }
    }

    #[test]
    fn request_ids_are_named_and_left_out_and_other_changes_counted() {
        let rec = Decision {
            status: 200,
            headers_set: vec!["x-request-id: 00000000000000aa".into()],
            ..Decision::detailed()
        };
        let mut same = Decision {
            headers_set: vec!["x-request-id: 0000000000000001".into()],
            ..rec.clone()
        };
        same.aside.request_id = Some("0000000000000001".into());
        let mut other = Decision {
            status: 503,
            ..same.clone()
        };
        other.aside.request_id = Some("0000000000000002".into());
        let entries = [
            entry(0, &rec, "00000000000000aa"),
            entry(1, &rec, "00000000000000aa"),
        ];
        let replayed = [
            Replayed {
                seq: 0,
                request: "GET /".into(),
                decision: same,
                body: None,
            },
            Replayed {
                seq: 1,
                request: "GET /".into(),
                decision: other,
                body: None,
            },
        ];
        let v = verify(&entries, &replayed);
        assert_eq!((v.compared, v.reproduced), (2, 1));
        assert_eq!(v.kinds.get("headers+status"), Some(&1));
        let s = v.summary();
        assert!(s.contains("1 reproduced (50.0%)"), "{s}");
        assert!(s.contains("request ids"), "{s}");
        assert!(s.contains("status: 200 → 503"), "{s}");
    }
}
