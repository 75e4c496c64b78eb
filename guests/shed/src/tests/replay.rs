//! Replay every request line of the NASA KSC log (1 August 1995) through the
//! guest: nothing panics, and the class distribution is plausible.

use super::*;
use std::collections::BTreeMap;

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/../../tests/fixtures/traffic/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Method and target of a Common Log Format line, or `None` when malformed.
fn parse_line(line: &str) -> Option<(String, String)> {
    let start = line.find('"')?;
    let end = line.rfind('"')?;
    if end <= start {
        return None;
    }
    let mut toks: Vec<&str> = line[start + 1..end].split_whitespace().collect();
    if toks.last().is_some_and(|t| t.starts_with("HTTP/")) {
        toks.pop();
    }
    let (method, target) = toks.split_first()?;
    if target.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return None;
    }
    Some(((*method).to_string(), target.join(" ")))
}

/// Every request of the log as `(request, class)` under the current config.
fn replay() -> Vec<(RequestHead, PriorityClass)> {
    let log = fixture("nasa-ksc-1995-08-01.log");
    let mut out = Vec::new();
    for (i, line) in log.lines().enumerate() {
        let Some((method, target)) = parse_line(line) else {
            continue;
        };
        let mut req = RequestHead::new(&method, &target);
        req.client.ip = line.split_whitespace().next().unwrap_or("").to_string();
        if i % 50 == 0 {
            req.headers
                .push(Header::new("user-agent", "ArchitextSpider"));
        }
        match admit(&req) {
            AdmitDecision::Admit(a) => {
                assert_eq!(a.cost, 1, "{line}");
                assert!(a.client_key.is_some(), "{line}");
                out.push((req, a.class));
            }
            AdmitDecision::Reject(r) => panic!("{line}: rejected with {}", r.status),
        }
    }
    out
}

fn histogram(rows: &[(RequestHead, PriorityClass)]) -> BTreeMap<PriorityClass, usize> {
    let mut h = BTreeMap::new();
    for (_, c) in rows {
        *h.entry(*c).or_insert(0) += 1;
    }
    h
}

fn class_of_path(
    rows: &[(RequestHead, PriorityClass)],
    pred: impl Fn(&RequestHead) -> bool,
) -> BTreeMap<PriorityClass, usize> {
    let hits: Vec<_> = rows.iter().filter(|(r, _)| pred(r)).cloned().collect();
    histogram(&hits)
}

fn is_bot(r: &RequestHead) -> bool {
    r.header("user-agent").is_some()
}

#[test]
fn replay_nasa_log_video_profile() {
    configure(&[]);
    let rows = replay();
    assert!(rows.len() > 33_900, "{}", rows.len());
    let h = histogram(&rows);
    let n = rows.len();
    // No playlists, segments or beacons on a 1995 web site: pages and images
    // are normal, the tagged crawler requests bulk.
    assert_eq!(h.get(&PriorityClass::Critical), None, "{h:?}");
    assert_eq!(h.get(&PriorityClass::High), None, "{h:?}");
    assert_eq!(h.get(&PriorityClass::Low), None, "{h:?}");
    let bulk = h.get(&PriorityClass::Bulk).copied().unwrap_or(0);
    assert_eq!(bulk, rows.iter().filter(|(r, _)| is_bot(r)).count());
    assert!(bulk * 40 < n && bulk * 60 > n, "{h:?}");
    let images = class_of_path(&rows, |r| r.path.starts_with("/images/") && !is_bot(r));
    assert_eq!(
        images.keys().collect::<Vec<_>>(),
        vec![&PriorityClass::Normal]
    );
    assert!(images[&PriorityClass::Normal] > 13_000, "{images:?}");
}

#[test]
fn replay_nasa_log_with_operator_rules() {
    // A launch-day configuration: the countdown pages (the "live" content of
    // 1995) critical, mission news high, the image-map and search CGIs low,
    // the software archive bulk.
    configure(&[
        ("class.critical", "/shuttle/countdown/"),
        ("class.high", "/shuttle/missions/"),
        ("class.low", "/cgi-bin/\n/htbin/"),
        ("class.bulk", "/software/"),
        ("cost.bulk", "5"),
        ("cost.low", "2"),
    ]);
    let log_rows = {
        let mut rows = Vec::new();
        let log = fixture("nasa-ksc-1995-08-01.log");
        for line in log.lines() {
            if let Some((m, t)) = parse_line(line) {
                let req = RequestHead::new(&m, &t);
                let a = admission(&req);
                assert_eq!(a.cost, config::Config::from_host().cost(a.class), "{line}");
                rows.push((req, a.class));
            }
        }
        rows
    };
    let h = histogram(&log_rows);
    let countdown = class_of_path(&log_rows, |r| r.path.starts_with("/shuttle/countdown/"));
    assert_eq!(
        countdown.keys().collect::<Vec<_>>(),
        vec![&PriorityClass::Critical]
    );
    assert!(countdown[&PriorityClass::Critical] > 1_000, "{countdown:?}");
    let images = class_of_path(&log_rows, |r| r.path.starts_with("/images/"));
    assert_eq!(
        images.keys().collect::<Vec<_>>(),
        vec![&PriorityClass::Normal]
    );
    let cgi = class_of_path(&log_rows, |r| {
        r.path.starts_with("/cgi-bin/") || r.path.starts_with("/htbin/")
    });
    assert_eq!(cgi.keys().collect::<Vec<_>>(), vec![&PriorityClass::Low]);
    // Every class is used; normal (images, pages) dominates.
    assert_eq!(h.len(), 5, "{h:?}");
    let normal = h[&PriorityClass::Normal];
    assert!(h.values().all(|v| *v <= normal), "{h:?}");
    assert!(h[&PriorityClass::High] > 2_000, "{h:?}");
}

#[test]
fn replay_nasa_log_commerce_profile() {
    configure(&[("profile", "commerce")]);
    let rows = replay();
    let h = histogram(&rows);
    // Nothing on the NASA site looks like a shop; `/search` is not there.
    assert_eq!(h.get(&PriorityClass::Critical), None, "{h:?}");
    assert!(
        h.get(&PriorityClass::High).copied().unwrap_or(0) < 50,
        "{h:?}"
    );
    assert!(h[&PriorityClass::Normal] > 32_000, "{h:?}");
}
