//! Expectations: assertions over a replay's decisions (`outpost replay --expect`).

use serde::Deserialize;

use super::Replayed;
use crate::decision::{AnsweredBy, Decision};

/// Assertions over a replay, from a small TOML file:
///
/// ```toml
/// [[expect]]
/// name = "the countdown is never shed"
/// under = "/shuttle/countdown/"   # only requests whose recorded path starts so
/// max_shed = 0                     # answered by the limiter
/// max_status_5xx = "0.1%"          # a count, or a share of the matching requests
/// max_origin_requests = 40000
/// max_edge_answers = 0             # answered by a guest
/// max_status_4xx = 10
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectations {
    /// The assertions.
    pub expect: Vec<Expect>,
}

/// One assertion.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Its name, in the verdict.
    pub name: String,
    /// Only requests whose recorded path starts with this.
    #[serde(default)]
    pub under: Option<String>,
    /// Bounds, each a count or a percentage string.
    #[serde(default)]
    pub max_shed: Option<Bound>,
    /// Bound on origin requests.
    #[serde(default)]
    pub max_origin_requests: Option<Bound>,
    /// Bound on answers by a guest.
    #[serde(default)]
    pub max_edge_answers: Option<Bound>,
    /// Bound on 4xx statuses.
    #[serde(default)]
    pub max_status_4xx: Option<Bound>,
    /// Bound on 5xx statuses.
    #[serde(default)]
    pub max_status_5xx: Option<Bound>,
}

/// A count (`10`) or a share (`"1.5%"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Bound {
    /// At most this many.
    Count(u64),
    /// At most this share, written `"N%"`.
    Share(String),
}

impl Bound {
    fn allows(&self, n: u64, of: u64) -> Result<bool, String> {
        match self {
            Bound::Count(c) => Ok(n <= *c),
            Bound::Share(s) => {
                let pct: f64 = s
                    .trim()
                    .strip_suffix('%')
                    .and_then(|p| p.trim().parse().ok())
                    .ok_or_else(|| format!("bad share {s:?}: expected e.g. \"1.5%\""))?;
                Ok(n as f64 <= pct / 100.0 * of as f64)
            }
        }
    }
}

impl Expectations {
    /// Check every assertion; the lines of the verdict and whether all held.
    pub fn check(&self, decisions: &[Replayed]) -> (Vec<String>, bool) {
        let mut lines = Vec::new();
        let mut ok = true;
        for e in &self.expect {
            let matching: Vec<&Replayed> = decisions
                .iter()
                .filter(|d| match &e.under {
                    None => true,
                    Some(p) => d
                        .request
                        .split_once(' ')
                        .is_some_and(|(_, path)| path.starts_with(p.as_str())),
                })
                .collect();
            let of = matching.len() as u64;
            let count = |f: &dyn Fn(&Decision) -> bool| -> u64 {
                matching.iter().filter(|d| f(&d.decision)).count() as u64
            };
            let checks: [(&str, &Option<Bound>, u64); 5] = [
                (
                    "shed",
                    &e.max_shed,
                    count(&|t| t.answered_by == AnsweredBy::Limiter),
                ),
                (
                    "origin requests",
                    &e.max_origin_requests,
                    count(&|t| t.answered_by == AnsweredBy::Origin),
                ),
                (
                    "edge answers",
                    &e.max_edge_answers,
                    count(&|t| t.answered_by.is_edge()),
                ),
                (
                    "4xx",
                    &e.max_status_4xx,
                    count(&|t| (400..500).contains(&t.status)),
                ),
                (
                    "5xx",
                    &e.max_status_5xx,
                    count(&|t| (500..600).contains(&t.status)),
                ),
            ];
            for (what, bound, n) in checks {
                let Some(bound) = bound else { continue };
                let verdict = match bound.allows(n, of) {
                    Ok(true) => "ok",
                    Ok(false) => {
                        ok = false;
                        "FAILED"
                    }
                    Err(why) => {
                        ok = false;
                        lines.push(format!("{}: {why}", e.name));
                        continue;
                    }
                };
                lines.push(format!(
                    "{verdict}  {}: {what} {n} of {of} (bound {bound:?})",
                    e.name
                ));
            }
        }
        (lines, ok)
    }
}
