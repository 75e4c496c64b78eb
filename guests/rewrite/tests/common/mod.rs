//! Helpers shared by the integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use outpost_guest::{Header, HeaderOp, RequestEdit, RequestHead, testing};
use rewrite::{Config, Outcome, rewrite};

/// The origins every test configuration may name.
pub const ORIGINS: &[&str] = &[
    "main",
    "beta",
    "archive",
    "media",
    "mobile-origin",
    "eu",
    "a",
    "b",
    "c",
    "cams",
];

/// The origin names as the check context has them.
pub fn origins() -> Vec<String> {
    ORIGINS.iter().map(|s| (*s).to_string()).collect()
}

/// Set the mock config to `extra` plus `rules` (one item per line) and assert
/// the load-time check accepts it.
pub fn configure(extra: &[(&str, &str)], rules: &[&str]) {
    let joined = rules.join("\n");
    let mut pairs: Vec<(&str, &str)> = extra.to_vec();
    if !rules.is_empty() {
        pairs.push(("rules", &joined));
    }
    testing::set_config(&pairs);
    let problems = rewrite::check(&origins());
    assert!(problems.is_empty(), "config {pairs:?}: {problems:?}");
}

/// Run the guest with the current mock config.
pub fn run(req: &RequestHead) -> Outcome {
    rewrite(req, &Config::from_host())
}

/// `req` with `edit` applied, as the host would forward it.
pub fn apply(req: &RequestHead, edit: &RequestEdit) -> RequestHead {
    let mut out = req.clone();
    if let Some(p) = &edit.path {
        out.path = p.clone();
    }
    if let Some(q) = &edit.query {
        out.query = q.clone();
    }
    for op in &edit.headers {
        match op {
            HeaderOp::Set(h) => {
                out.headers.retain(|x| x.name != h.name);
                out.headers.push(h.clone());
            }
            HeaderOp::Append(h) => out.headers.push(h.clone()),
            HeaderOp::Remove(n) => out.headers.retain(|x| &x.name != n),
        }
    }
    out
}

/// A request with scheme, authority and headers.
pub fn req(scheme: &str, authority: &str, target: &str, headers: &[(&str, &str)]) -> RequestHead {
    let mut r = RequestHead::get(target);
    r.scheme = scheme.into();
    r.authority = authority.into();
    r.headers = headers.iter().map(|(n, v)| Header::new(*n, *v)).collect();
    r
}

/// The fixture file `name` under tests/fixtures/traffic.
pub fn fixture_path(name: &str) -> String {
    format!(
        "{}/../../tests/fixtures/traffic/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// The entries of fixture `name` (HAR, CLF), read by the node's own reader
/// (`outpost-traffic`), and how many were malformed.
pub fn entries(name: &str) -> (Vec<outpost_traffic::Entry>, usize) {
    let path = fixture_path(name);
    let reader = outpost_traffic::read_file(&path, &outpost_traffic::Options::default())
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let (mut ok, mut malformed) = (Vec::new(), 0);
    for item in reader {
        match item {
            Ok(e) => ok.push(e),
            Err(_) => malformed += 1,
        }
    }
    (ok, malformed)
}

/// Every request's `user-agent` in a HAR file.
pub fn har_user_agents(name: &str) -> Vec<String> {
    entries(&format!("har/{name}"))
        .0
        .iter()
        .filter_map(|e| e.header("user-agent").map(str::to_string))
        .collect()
}

/// Every request URL of a HAR file, as `(scheme, authority, target)`.
pub fn har_urls(name: &str) -> Vec<(String, String, String)> {
    entries(&format!("har/{name}"))
        .0
        .into_iter()
        .map(|e| (e.scheme.clone(), e.authority.clone(), e.target()))
        .collect()
}
