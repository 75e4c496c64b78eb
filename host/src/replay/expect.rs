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
    /// The share's percentage, for a share.
    fn percent(s: &str) -> Result<f64, String> {
        s.trim()
            .strip_suffix('%')
            .and_then(|p| p.trim().parse::<f64>().ok())
            .filter(|p| (0.0..=100.0).contains(p))
            .ok_or_else(|| format!("bad share {s:?}: expected a percentage such as \"1.5%\""))
    }

    /// Whether `n` of `of` is within the bound, and the verdict in words:
    /// `0.40% (5 of 1234) > 0.1% allowed`.
    fn judge(&self, n: u64, of: u64) -> Result<(bool, String), String> {
        match self {
            Bound::Count(c) => {
                let ok = n <= *c;
                let cmp = if ok { "≤" } else { ">" };
                Ok((ok, format!("{n} of {of} {cmp} {c} allowed")))
            }
            Bound::Share(s) => {
                let pct = Bound::percent(s)?;
                let ok = n as f64 <= pct / 100.0 * of as f64;
                let got = if of == 0 {
                    0.0
                } else {
                    n as f64 * 100.0 / of as f64
                };
                let cmp = if ok { "≤" } else { ">" };
                Ok((
                    ok,
                    format!("{got:.2}% ({n} of {of}) {cmp} {} allowed", s.trim()),
                ))
            }
        }
    }
}

impl Expectations {
    /// Read and validate the expectations at `path`, before any replay runs: a
    /// file that does not parse, an assertion without a bound or a share that is
    /// not a percentage is an error naming it.
    pub fn load(path: &std::path::Path) -> Result<Expectations, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        let x: Expectations =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if x.expect.is_empty() {
            return Err(format!("{}: no `[[expect]]` assertion", path.display()));
        }
        for e in &x.expect {
            let bounds = [
                &e.max_shed,
                &e.max_origin_requests,
                &e.max_edge_answers,
                &e.max_status_4xx,
                &e.max_status_5xx,
            ];
            if bounds.iter().all(|b| b.is_none()) {
                return Err(format!(
                    "{}: assertion `{}` sets no bound (max_shed, max_origin_requests, \
                     max_edge_answers, max_status_4xx, max_status_5xx)",
                    path.display(),
                    e.name
                ));
            }
            for b in bounds.into_iter().flatten() {
                if let Bound::Share(s) = b {
                    Bound::percent(s)
                        .map_err(|why| format!("{}: `{}`: {why}", path.display(), e.name))?;
                }
            }
        }
        Ok(x)
    }

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
                    "status 4xx",
                    &e.max_status_4xx,
                    count(&|t| (400..500).contains(&t.status)),
                ),
                (
                    "status 5xx",
                    &e.max_status_5xx,
                    count(&|t| (500..600).contains(&t.status)),
                ),
            ];
            for (what, bound, n) in checks {
                let Some(bound) = bound else { continue };
                match bound.judge(n, of) {
                    Ok((held, words)) => {
                        ok &= held;
                        let verdict = if held { "ok    " } else { "FAILED" };
                        lines.push(format!("{verdict}  {}: {what}: {words}", e.name));
                    }
                    Err(why) => {
                        ok = false;
                        lines.push(format!("FAILED  {}: {why}", e.name));
                    }
                }
            }
        }
        (lines, ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_are_in_words() {
        let share = Bound::Share("0.1%".into());
        assert_eq!(
            share.judge(5, 1234),
            Ok((false, "0.41% (5 of 1234) > 0.1% allowed".to_string()))
        );
        assert_eq!(
            Bound::Count(10).judge(3, 50),
            Ok((true, "3 of 50 ≤ 10 allowed".to_string()))
        );
        assert!(Bound::Share("lots".into()).judge(1, 2).is_err());
    }

    #[test]
    fn expectations_are_validated_when_loaded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let write = |text: &str| {
            let p = dir.path().join("expect.toml");
            std::fs::write(&p, text).expect("write");
            Expectations::load(&p)
        };
        let err = |text: &str| write(text).err().unwrap_or_default();
        assert!(err("[[expect]]\nname = \"x\"\n").contains("sets no bound"));
        assert!(err("[[expect]]\nname = \"x\"\nmax_shed = \"a lot\"\n").contains("bad share"));
        assert!(err("[[expect]]\nname = \"x\"\nmax_shedd = 1\n").contains("unknown field"));
        assert!(err("").contains("missing field") || err("").contains("no `[[expect]]`"));
        assert!(write("[[expect]]\nname = \"x\"\nmax_status_5xx = \"0.1%\"\n").is_ok());
    }
}
