//! The load-time check: every bad value is a problem at its key (and item).

use super::*;

fn problems(pairs: &[(&str, &str)]) -> Vec<ConfigProblem> {
    testing::reset();
    testing::set_config(pairs);
    Shed::check_config(&CheckContext::default())
}

/// Exactly one problem, at `key` / `item`, whose message contains `needle`.
fn one(pairs: &[(&str, &str)], key: &str, item: Option<u32>, needle: &str) {
    let got = problems(pairs);
    assert_eq!(got.len(), 1, "{pairs:?}: {got:?}");
    assert_eq!(got[0].key, key, "{got:?}");
    assert_eq!(got[0].item, item, "{got:?}");
    assert!(got[0].message.contains(needle), "{got:?} lacks {needle:?}");
}

#[test]
fn good_configs_pass() {
    assert!(problems(&[]).is_empty());
    let full = [
        ("profile", "commerce"),
        ("class.critical", "/live/\nPOST /api/quote"),
        ("class.high", "/p/, /search"),
        ("class.bulk", "/export/"),
        ("cost.critical", "1"),
        ("cost.bulk", "1000"),
        ("cost.high", " 3 "),
        ("bulk_user_agents", "bot\ncurl"),
        ("reject_methods", "TRACE,CONNECT"),
        ("trust_priority_header", "yes"),
        ("drop_expired", "off"),
        ("deadline_header", "X-Deadline"),
        ("client_key", "header:x-user\ncmcd:sid\nip"),
    ];
    assert!(problems(&full).is_empty(), "{:?}", problems(&full));
    assert!(
        problems(&[
            ("deadline_header", ""),
            ("client_key", ""),
            ("bulk_user_agents", "")
        ])
        .is_empty()
    );
}

#[test]
fn each_bad_value_is_a_problem() {
    one(&[("profile", "shop")], "profile", None, "unknown profile");
    one(
        &[("class.urgent", "/x")],
        "class.urgent",
        None,
        "unknown class",
    );
    one(&[("class.High", "/x")], "class.High", None, "unknown class");
    one(
        &[("cost.urgent", "2")],
        "cost.urgent",
        None,
        "unknown class",
    );
    one(&[("class.high", "/ok,nope")], "class.high", None, "`nope`");
    one(
        &[("class.high", "/ok\nnope\n/also-ok")],
        "class.high",
        Some(1),
        "must start with `/`",
    );
    one(
        &[("class.low", "/a\nGET\t/b c")],
        "class.low",
        Some(1),
        "expected `/prefix`",
    );
    one(
        &[("class.low", "/a\nGE(T /b")],
        "class.low",
        Some(1),
        "not an HTTP method",
    );
    one(
        &[("trust_priority_header", "sure")],
        "trust_priority_header",
        None,
        "not a boolean",
    );
    one(
        &[("drop_expired", "maybe")],
        "drop_expired",
        None,
        "not a boolean",
    );
    for bad in ["0", "-1", "1001", "two", "1.5", ""] {
        one(&[("cost.high", bad)], "cost.high", None, "not a cost");
    }
    one(&[("color", "blue")], "color", None, "unknown key");
    one(&[("class", "/x")], "class", None, "unknown key");
    one(
        &[("deadline_header", "x deadline")],
        "deadline_header",
        None,
        "not a header name",
    );
    one(
        &[("reject_methods", "TRACE\nGE T")],
        "reject_methods",
        Some(1),
        "not an HTTP method",
    );
    one(
        &[("client_key", "header:x-client-id\ncookie:sid\nip")],
        "client_key",
        Some(1),
        "unknown client key source",
    );
    one(
        &[("client_key", "header:,ip")],
        "client_key",
        None,
        "not a header name",
    );
    one(
        &[("client_key", "ip\ncmcd:s id")],
        "client_key",
        Some(1),
        "not a CMCD key",
    );
    one(
        &[("client_key", "ipv6")],
        "client_key",
        None,
        "unknown client key source",
    );
}

#[test]
fn problems_are_all_reported() {
    let got = problems(&[
        ("profile", "news"),
        ("class.high", "a\nb\n/c"),
        ("cost.low", "0"),
        ("unknown", "1"),
    ]);
    let at: Vec<(&str, Option<u32>)> = got.iter().map(|p| (p.key.as_str(), p.item)).collect();
    assert_eq!(
        at,
        // In key order (the host sorts the config).
        vec![
            ("class.high", Some(0)),
            ("class.high", Some(1)),
            ("cost.low", None),
            ("profile", None),
            ("unknown", None),
        ]
    );
}
