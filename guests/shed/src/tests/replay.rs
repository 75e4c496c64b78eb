//! Replay every request line of the NASA KSC log (1 August 1995) through the
//! guest: nothing panics, and the class distribution is plausible.

use super::*;
use std::collections::BTreeMap;

/// The NASA log's requests, read by the node's own reader (`outpost-traffic`), as
/// `(method, target, client host)`; malformed lines are skipped.
fn nasa() -> Vec<(String, String, String)> {
    let path = format!(
        "{}/../../tests/fixtures/traffic/nasa-ksc-1995-08-01.log",
        env!("CARGO_MANIFEST_DIR")
    );
    let reader = outpost_traffic::read_file(&path, &outpost_traffic::Options::default())
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    reader
        .flatten()
        .map(|e| {
            let host = e
                .client_ip
                .clone()
                .or_else(|| e.header("x-log-host").map(str::to_string))
                .unwrap_or_default();
            (e.method.clone(), e.target(), host)
        })
        .collect()
}

/// Every request of the log as `(request, class)` under the current config.
fn replay() -> Vec<(RequestHead, PriorityClass)> {
    let mut out = Vec::new();
    for (i, (method, target, host)) in nasa().into_iter().enumerate() {
        let line = format!("{method} {target}");
        let mut req = RequestHead::new(&method, &target);
        req.client.ip = host;
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
        for (m, t, _) in nasa() {
            let req = RequestHead::new(&m, &t);
            let a = admission(&req);
            assert_eq!(a.cost, config::Config::from_host().cost(a.class), "{m} {t}");
            rows.push((req, a.class));
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
