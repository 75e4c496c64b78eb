//! The decision: what the node did with one request, as plain values. The proxy
//! fills it, the recorder stores it, replay compares it. One name for one concept:
//! "decision" everywhere.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What happened to one request: every decision taken. Only a detailed decision
/// ([`Decision::detailed`], for a recorded or replayed request) records them; for
/// every other request the proxy keeps the status alone and formats nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The route that matched (none: no route).
    pub route: Option<String>,
    /// The class the admit phase gave (`critical` ... `bulk`).
    pub class: Option<String>,
    /// Each guest's action, in order: `admit:shed=normal`, `request:rw=forward`,
    /// `request:rw=respond 403`, `response:rendition=edit`, `request:rw=failed trap` ...
    pub guests: Vec<String>,
    /// The request as sent to the origin (method, path, query), if it was.
    pub forwarded: Option<String>,
    /// Headers the request guests set or changed (`name: value`), sorted.
    pub headers_set: Vec<String>,
    /// Headers the request guests removed, sorted.
    pub headers_removed: Vec<String>,
    /// The origin it went to.
    pub origin: Option<String>,
    /// Who answered.
    pub answered_by: AnsweredBy,
    /// Why it was shed or failed, when it was.
    pub reason: Option<String>,
    /// The status the client got.
    pub status: u16,
    /// Whether a response guest replaced the body.
    pub body_replaced: bool,
    /// A digest of the body the response guests made (FNV-1a, 64 bits, hex), when
    /// they replaced it and the decision is detailed: two runs that made different
    /// bodies differ here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_digest: Option<String>,
    /// What the edge cache did: `hit`, `collapsed` (a hit after waiting for
    /// another request's fetch), `stale`, `miss`, `collapsed-miss`, `pass ...`;
    /// none on a route that does not cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<String>,
    /// Whether the decisions are recorded at all (recording, replay). Off, the
    /// proxy keeps only `status` and `body_replaced`, so serving an ordinary
    /// request formats and copies nothing for it.
    #[serde(skip)]
    pub detail: bool,
    /// Facts of this one request for the access log (id, client, origin time):
    /// never serialised, never compared.
    #[serde(skip)]
    pub aside: Aside,
}

/// The digest [`Decision::body_digest`] holds: FNV-1a over the bytes, 16 hex digits.
pub fn digest(bytes: &[u8]) -> String {
    let h = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{h:016x}")
}

/// Facts of one request that are not part of what was decided: a recording does
/// not keep them and two decisions are equal whatever they hold.
#[derive(Debug, Clone, Default)]
pub struct Aside {
    /// The request id guests saw.
    pub request_id: Option<String>,
    /// The client's address (after trusted proxies).
    pub client: Option<String>,
    /// The origin's latency at the socket (request sent to first answer byte).
    pub upstream_ns: Option<u64>,
    /// The origin's response headers as the response guests saw them (kept only
    /// when the decision is detailed, for a recording).
    pub seen_headers: Option<Vec<(String, String)>>,
    /// The body the response guests read (decoded), for a recording.
    pub seen_body: Option<bytes::Bytes>,
    /// A request in its route's shadow sample: what the candidates run on, and
    /// what the live guests decided (taken by the finish phase).
    pub shadowed: Option<Box<Shadowed>>,
}

/// What a shadow run needs from the live request: the head the first request guest
/// saw, and the live guests' verdict on it.
#[derive(Debug, Clone)]
pub struct Shadowed {
    /// The route's index in the node's routes.
    pub route: usize,
    /// The request as the live request guests got it.
    pub before: crate::contract::types::RequestHead,
    /// What they decided.
    pub live: Verdict,
    /// The client, as the live request had it.
    pub client: std::net::SocketAddr,
    /// The origin's answer as the live response guests got it, and their verdict
    /// (when the shadow has response candidates and the response guests ran).
    pub response: Option<ShadowedResponse>,
}

/// What response candidates run on, and the live response guests' verdict.
#[derive(Debug, Clone)]
pub struct ShadowedResponse {
    /// The request head the response guests got.
    pub req: crate::contract::types::RequestHead,
    /// The origin's response head.
    pub head: crate::contract::types::ResponseHead,
    /// The body, when the route transforms its type (decoded).
    pub body: Option<bytes::Bytes>,
    /// What the live response guests made of it.
    pub live: Verdict,
}

/// What a chain of request guests decided, in the fields a shadow compares.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// `forward`, `respond STATUS`, or `failed KIND` (a guest under `fail = closed`).
    pub action: String,
    /// The request as it would go to the origin (`METHOD /path?query`), when forwarded.
    pub forwarded: Option<String>,
    /// The origin it would go to, when forwarded.
    pub origin: Option<String>,
    /// Headers set or changed (`name: value`), sorted.
    pub headers_set: Vec<String>,
    /// Headers removed, sorted.
    pub headers_removed: Vec<String>,
    /// The status (response guests).
    pub status: Option<u16>,
    /// A digest of the body they made, when they replaced it (response guests).
    pub body_digest: Option<String>,
}

impl Verdict {
    /// The fields in which two verdicts differ.
    pub fn differences(&self, other: &Verdict) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.action != other.action {
            out.push("action");
        }
        if self.forwarded != other.forwarded {
            out.push("forwarded");
        }
        if self.origin != other.origin {
            out.push("origin");
        }
        if self.headers_set != other.headers_set || self.headers_removed != other.headers_removed {
            out.push("headers");
        }
        if self.status != other.status {
            out.push("status");
        }
        if self.body_digest != other.body_digest {
            out.push("body");
        }
        out
    }
}

impl PartialEq for Aside {
    fn eq(&self, _: &Aside) -> bool {
        true
    }
}

impl Eq for Aside {}

impl Decision {
    /// A decision that records every step.
    pub fn detailed() -> Decision {
        Decision {
            detail: true,
            ..Decision::default()
        }
    }

    /// Record a guest's action, built only when the decision is detailed.
    pub fn step(&mut self, action: impl FnOnce() -> String) {
        if self.detail {
            self.guests.push(action());
        }
    }

    /// Record what the cache did, when the decision is detailed.
    pub fn cache(&mut self, what: impl FnOnce() -> String) {
        if self.detail {
            self.cache = Some(what());
        }
    }

    /// Record who answered, when the decision is detailed.
    pub fn answered(&mut self, by: impl FnOnce() -> AnsweredBy) {
        if self.detail {
            self.answered_by = by();
        }
    }
}

/// Who answered a request. Written as `origin`, `admit:<guest>`, `request:<guest>`,
/// `limiter`, `error`, `network` (a network replay, which sees only the status), or
/// the empty string (not yet answered).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AnsweredBy {
    /// Nobody yet.
    #[default]
    Nobody,
    /// The origin.
    Origin,
    /// The edge cache (a stored copy, fresh or standing in for a failure).
    Cache,
    /// The admit guest of that name rejected it.
    Admit(Arc<str>),
    /// The request guest of that name answered at the edge.
    Request(Arc<str>),
    /// The limiter shed it.
    Limiter,
    /// An error (client, origin, guest failing closed).
    Error,
    /// A network replay's request (who answered is not visible from outside).
    Network,
}

impl AnsweredBy {
    /// A guest (admit or request) answered at the edge.
    pub fn is_edge(&self) -> bool {
        matches!(self, AnsweredBy::Admit(_) | AnsweredBy::Request(_))
    }
}

impl fmt::Display for AnsweredBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnsweredBy::Nobody => Ok(()),
            AnsweredBy::Origin => f.write_str("origin"),
            AnsweredBy::Cache => f.write_str("cache"),
            AnsweredBy::Admit(g) => write!(f, "admit:{g}"),
            AnsweredBy::Request(g) => write!(f, "request:{g}"),
            AnsweredBy::Limiter => f.write_str("limiter"),
            AnsweredBy::Error => f.write_str("error"),
            AnsweredBy::Network => f.write_str("network"),
        }
    }
}

impl std::str::FromStr for AnsweredBy {
    type Err = String;

    fn from_str(s: &str) -> Result<AnsweredBy, String> {
        Ok(match s {
            "" => AnsweredBy::Nobody,
            "origin" => AnsweredBy::Origin,
            "cache" => AnsweredBy::Cache,
            "limiter" => AnsweredBy::Limiter,
            "error" => AnsweredBy::Error,
            "network" => AnsweredBy::Network,
            _ => match s.split_once(':') {
                Some(("admit", g)) => AnsweredBy::Admit(g.into()),
                Some(("request", g)) => AnsweredBy::Request(g.into()),
                _ => return Err(format!("not who answered a request: {s:?}")),
            },
        })
    }
}

impl Serialize for AnsweredBy {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AnsweredBy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<AnsweredBy, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_answered_round_trips_through_its_text() {
        for a in [
            AnsweredBy::Nobody,
            AnsweredBy::Origin,
            AnsweredBy::Admit("shed".into()),
            AnsweredBy::Request("rw".into()),
            AnsweredBy::Limiter,
            AnsweredBy::Error,
            AnsweredBy::Network,
        ] {
            let json = serde_json::to_string(&a).expect("serialises");
            let back: AnsweredBy = serde_json::from_str(&json).expect("parses");
            assert_eq!(back, a, "{json}");
        }
        assert_eq!(AnsweredBy::Admit("shed".into()).to_string(), "admit:shed");
        assert!("someone".parse::<AnsweredBy>().is_err());
    }

    #[test]
    fn a_decision_serialises_in_its_field_order() {
        let d = Decision {
            route: Some("live".into()),
            answered_by: AnsweredBy::Origin,
            status: 200,
            ..Decision::detailed()
        };
        assert_eq!(
            serde_json::to_string(&d).expect("serialises"),
            r#"{"route":"live","class":null,"guests":[],"forwarded":null,"headers_set":[],"headers_removed":[],"origin":null,"answered_by":"origin","reason":null,"status":200,"body_replaced":false}"#
        );
    }
}
