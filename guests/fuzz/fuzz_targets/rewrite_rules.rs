//! `rewrite::rules::parse` on arbitrary lines (each line of the input is one rule),
//! with and without a configured signing key: never panics. A rule that parses is
//! also run through `Rule::problems` and `Rule::apply` on fixed requests.
//!
//! Then the guest's own pipeline on the same input: the lines as the `rules`
//! config value (`Config::from_pairs`, `check_pairs`), and `rewrite::rewrite` on the
//! fixed requests plus one per input line starting with `@` (`@/path?query`, the
//! path normalised first as the guest's default `normalize_path = true` does).
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use outpost_guest::{Header, RequestHead, testing};
use rewrite::rules::{self, Rule, State};
use rewrite::{Config, Secret};

/// Rule lines parsed one by one at most per input.
const MAX_LINES: usize = 32;
/// `@` requests at most per input.
const MAX_REQUESTS: usize = 4;

fn fixed_requests() -> Vec<RequestHead> {
    let mut a = RequestHead::new(
        "GET",
        "/u/alice/photos/2024/a.jpg?utm_source=x&sig=abc&exp=99",
    );
    a.authority = "www.cdn.example.com:8443".into();
    a.headers = vec![
        Header::new("cookie", "uid=42; beta=1"),
        Header::new("user-agent", "Mozilla/5.0 (SMART-TV; Linux; Tizen 6.0)"),
        Header::new("x-forwarded-for", "192.0.2.1"),
        Header::new("x-request-id", "abc"),
    ];
    a.client.ip = "198.51.100.7".into();
    a.client.country = Some("NL".into());
    a.id = "req-1".into();
    let mut b = RequestHead::new("HEAD", "/private/v.mp4");
    b.scheme = "http".into();
    b.client.ip = "2001:db8:bad::1".into();
    vec![a, b, RequestHead::new("POST", "/")]
}

fn apply(rule: &Rule, reqs: &[RequestHead]) {
    for req in reqs {
        for renormalize in [None, Some(false), Some(true)] {
            let mut st = State::new(req, renormalize);
            let _ = rule.apply(&mut st);
            let _ = st.into_edit();
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The native host mock is thread-local and keeps logs: start clean every run.
    testing::reset();
    testing::set_unix_time(1_700_000_000);
    testing::set_now_ns(1_700_000_000_000_000_000);

    let none = BTreeMap::new();
    let mut secrets = BTreeMap::new();
    secrets.insert("media".to_string(), Secret(b"0123456789abcdef".to_vec()));
    let origins = ["main".to_string(), "beta".to_string()];
    let strip = ["utm_*".to_string()];
    let keep = ["sig".to_string(), "exp".to_string()];
    let fixed = fixed_requests();

    let mut rule_text = String::new();
    let mut extra = Vec::new();
    for line in text.lines().take(MAX_LINES) {
        if let Some(target) = line.strip_prefix('@') {
            if extra.len() < MAX_REQUESTS {
                let mut req = RequestHead::new("GET", target);
                req.path = rewrite::normalize_path(&req.path, false);
                req.client.ip = "10.1.2.3".into();
                extra.push(req);
            }
            continue;
        }
        rule_text.push_str(line);
        rule_text.push('\n');
        let _ = rules::parse(line, &none);
        if let Ok(rule) = rules::parse(line, &secrets) {
            let _ = format!("{rule:?}");
            let _ = rule.problems(&origins, &strip, None);
            let _ = rule.problems(&[], &[], Some(&keep));
            apply(&rule, &fixed);
        }
    }

    let pairs: Vec<(String, String)> = [
        ("rules", rule_text.as_str()),
        ("secret.media", "0123456789abcdef"),
        ("strip_query", "utm_*,fbclid"),
        ("set_header.x-served-by", "outpost"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
    .collect();
    let _ = rewrite::check_pairs(&pairs, &origins);
    let config = Config::from_pairs(&pairs);
    let raw = Config {
        normalize_path: false,
        ..config.clone()
    };
    for req in &fixed {
        let _ = rewrite::rewrite(req, &config);
        let _ = rewrite::rewrite(req, &raw);
    }
    for req in &extra {
        let _ = rewrite::rewrite(req, &config);
        let _ = rewrite::rewrite(req, &raw);
    }
});
