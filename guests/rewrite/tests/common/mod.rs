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
pub fn fixture(name: &str) -> String {
    let path = format!(
        "{}/../../tests/fixtures/traffic/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every `user-agent` request header value in a HAR file (the value is on the
/// line after the name in these pretty-printed files).
pub fn har_user_agents(name: &str) -> Vec<String> {
    let text = fixture(&format!("har/{name}"));
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if l.trim().eq_ignore_ascii_case("\"name\": \"user-agent\",")
            && let Some(v) = lines.get(i + 1).and_then(|n| json_string(n, "value"))
        {
            out.push(v);
        }
    }
    out
}

/// Every request URL of a HAR file, as `(scheme, authority, target)`.
pub fn har_urls(name: &str) -> Vec<(String, String, String)> {
    fixture(&format!("har/{name}"))
        .lines()
        .filter_map(|l| json_string(l, "url"))
        .filter_map(|u| {
            let (scheme, rest) = u.split_once("://")?;
            let (auth, target) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, "/"),
            };
            Some((scheme.to_string(), auth.to_string(), target.to_string()))
        })
        .collect()
}

/// `"key": "value"` on one line → value (with `\"` and `\\` unescaped).
fn json_string(line: &str, key: &str) -> Option<String> {
    let rest = line.trim().strip_prefix(&format!("\"{key}\": \""))?;
    let body = rest
        .strip_suffix("\",")
        .or_else(|| rest.strip_suffix('"'))?;
    Some(
        body.replace("\\\"", "\"")
            .replace("\\/", "/")
            .replace("\\\\", "\\"),
    )
}
