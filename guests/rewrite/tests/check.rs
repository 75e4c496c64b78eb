//! The load-time check: every bad value is a problem at its key and item.
#![allow(clippy::unwrap_used)]

mod common;

use common::origins;
use outpost_guest::{CheckContext, ConfigCheck, ConfigProblem, testing};
use rewrite::Rewrite;

fn problems(pairs: &[(&str, &str)]) -> Vec<ConfigProblem> {
    testing::set_config(pairs);
    Rewrite::check_config(&CheckContext { origins: origins() })
}

/// `(kind, rules, item index, message fragment)`: each configuration has one
/// bad rule, after good ones, a comment and a blank item.
const BAD_RULES: &[(&str, &str, usize, &str)] = &[
    (
        "bad status",
        "redirect 200 /a /b",
        3,
        "bad redirect status `200`",
    ),
    (
        "bad https status",
        "https 404",
        3,
        "bad redirect status `404`",
    ),
    (
        "bad canonical status",
        "canonical-host example.com 200",
        3,
        "bad redirect status",
    ),
    (
        "unknown verb",
        "rewritee /a /b",
        3,
        "unknown rule `rewritee`",
    ),
    (
        "bad CIDR prefix",
        "allow-ip 10.0.0.0/33",
        3,
        "prefix length must be 0 to 32",
    ),
    (
        "bad CIDR address",
        "deny-ip 10.0.0/8,::1",
        3,
        "`10.0.0/8` is not an IP address",
    ),
    ("bad v6 CIDR", "deny-ip 2001:db8::/129", 3, "0 to 128"),
    ("empty ip list", "allow-ip", 3, "usage"),
    (
        "unknown route origin",
        "route nowhere when path=/x",
        3,
        "unknown origin `nowhere`",
    ),
    (
        "unknown split origin",
        "split ab by ip main:50 ghost:50",
        3,
        "unknown origin `ghost`",
    ),
    (
        "unknown capture",
        "rewrite /a/{id} /b/{ide}",
        3,
        "unknown variable `{ide}`",
    ),
    (
        "unknown redirect var",
        "redirect 301 /a https://{hots}/a",
        3,
        "unknown variable `{hots}`",
    ),
    (
        "unknown header var",
        "header set x-a {nope}",
        3,
        "unknown variable `{nope}`",
    ),
    (
        "rest not last",
        "rewrite /{*r}/x /y",
        3,
        "must be the last segment",
    ),
    (
        "partial capture",
        "rewrite /img-{id} /i/{id}",
        3,
        "whole segment",
    ),
    (
        "relative template",
        "rewrite /a new",
        3,
        "must be a path starting with `/`",
    ),
    ("query in rewrite", "rewrite /a /b?x=1", 3, "no `?`"),
    (
        "bad redirect target",
        "redirect 301 /a example.com/b",
        3,
        "must start with",
    ),
    (
        "missing secret",
        "sign /p/ key=k9",
        3,
        "signing key `k9` is not configured: add `secret.k9`",
    ),
    ("sign without key", "sign /p/", 3, "needs `key=<name>`"),
    (
        "sign unknown option",
        "sign /p/ key=k1 ttl=5",
        3,
        "unknown sign option `ttl`",
    ),
    ("sign bad skew", "sign /p/ key=k1 skew=-1", 3, "bad skew"),
    (
        "sign bad strip",
        "sign /p/ key=k1 strip=maybe",
        3,
        "bad strip",
    ),
    (
        "sign same params",
        "sign /p/ key=k1 param=t expires=t",
        3,
        "different",
    ),
    (
        "bad weight",
        "split ab by ip main:90 beta:ten",
        3,
        "bad weight `ten`",
    ),
    (
        "negative weight",
        "split ab by ip main:90 beta:-1",
        3,
        "bad weight `-1`",
    ),
    (
        "zero weights",
        "split ab by ip main:0 beta:0",
        3,
        "sum to 0",
    ),
    ("one arm", "split ab by ip main:1", 3, "at least two arms"),
    (
        "arm without weight",
        "split ab by ip main beta:1",
        3,
        "expected <origin>:<weight>",
    ),
    (
        "duplicate arm",
        "split ab by ip main:1 main:2",
        3,
        "appears twice",
    ),
    (
        "bad split key",
        "split ab by user main:1 beta:1",
        3,
        "bad split key `user`",
    ),
    ("missing by", "split ab main:1 beta:1", 3, "usage"),
    (
        "bad condition",
        "route main when port=80",
        3,
        "unknown condition `port=80`",
    ),
    (
        "empty condition",
        "route main when host=",
        3,
        "needs a value",
    ),
    (
        "bad class",
        "route main when class=phone",
        3,
        "unknown client class `phone`",
    ),
    (
        "bad country",
        "route main when country=USA",
        3,
        "bad country `USA`",
    ),
    (
        "route without when",
        "route main if path=/",
        3,
        "expected `when`",
    ),
    (
        "when without conditions",
        "route main when",
        3,
        "at least one condition",
    ),
    (
        "bad header op",
        "header rename a b",
        3,
        "unknown header operation `rename`",
    ),
    (
        "bad header name",
        "header set bad:name v",
        3,
        "not a valid header name",
    ),
    ("header without value", "header set x-a", 3, "needs a value"),
    ("request-id extra", "request-id x-id always", 3, "usage"),
    ("prefix arity", "prefix /a", 3, "takes 2 arguments, got 1"),
    ("prefix capture", "prefix /a/{x} /b", 3, "no captures"),
    (
        "canonical port",
        "canonical-host example.com:8080 301",
        3,
        "bad host",
    ),
];

#[test]
fn each_kind_of_bad_rule_is_reported_at_its_item() {
    for (kind, bad, index, fragment) in BAD_RULES {
        let rules = ["https 301", "# a comment", "", bad, "route main"].join("\n");
        let got = problems(&[("rules", &rules), ("secret.k1", "key-one")]);
        assert_eq!(got.len(), 1, "{kind}: {got:?}");
        let p = &got[0];
        assert_eq!(p.key, "rules", "{kind}");
        assert_eq!(p.item, Some(u32::try_from(*index).unwrap()), "{kind}");
        assert!(p.message.contains(fragment), "{kind}: {:?}", p.message);
    }
}

#[test]
fn every_bad_item_is_reported() {
    let rules =
        "rewrite /a/{x} /b/{y}\nhttps 200\nroute main\nroute ghost\nsplit s by ip a:1 ghost:1";
    let got = problems(&[("rules", rules)]);
    let items: Vec<Option<u32>> = got.iter().map(|p| p.item).collect();
    assert_eq!(items, vec![Some(0), Some(1), Some(3), Some(4)], "{got:?}");
}

#[test]
fn bad_keys_and_values() {
    let cases: &[(&str, &str, &str)] = &[
        ("sort_query", "maybe", "not a boolean"),
        ("normalize_path", "", "not a boolean"),
        ("lowercase_path", "2", "not a boolean"),
        ("strip_query", "utm_*,a*b", "only allowed at the end"),
        ("keep_query", "id,a=b", "not a query parameter name"),
        (
            "remove_header",
            "ok,no good",
            "`no good` is not a valid header name",
        ),
        ("set_header.bad name", "x", "not a valid header name"),
        ("set_header.x-ok", "line\r\nbreak", "control characters"),
        ("secret.k", "", "empty secret"),
        ("secret.k", "hex:abc", "odd number"),
        ("secret.k", "hex:zz", "non-hex"),
        ("secret.", "x", "needs a name"),
        ("rewrite_rules", "x", "unknown key"),
        ("rule", "https 301", "unknown key"),
        ("set_headers", "x", "unknown key"),
    ];
    for (key, value, fragment) in cases {
        let got = problems(&[(key, value)]);
        assert_eq!(got.len(), 1, "{key}={value:?}: {got:?}");
        assert_eq!(got[0].key, *key);
        assert_eq!(got[0].item, None);
        assert!(
            got[0].message.contains(fragment),
            "{key}: {:?}",
            got[0].message
        );
    }
}

#[test]
fn sign_parameters_removed_by_query_settings_are_problems() {
    let got = problems(&[
        ("secret.k", "x"),
        ("keep_query", "id"),
        ("rules", "sign /p/ key=k"),
    ]);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[0].message.contains("`token` is not in keep_query"));
    let got = problems(&[
        ("secret.k", "x"),
        ("strip_query", "tok*"),
        ("rules", "sign /p/ key=k param=token"),
    ]);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].message.contains("removed by strip_query"));
    let got = problems(&[
        ("secret.k", "x"),
        ("keep_query", "id,token,expires"),
        ("rules", "sign /p/ key=k"),
    ]);
    assert!(got.is_empty(), "{got:?}");
}

#[test]
fn a_full_good_config_passes() {
    let rules = [
        "deny-ip 198.51.100.0/24, 2001:db8:bad::/48",
        "https 308",
        "canonical-host www.example.com 301",
        "redirect 301 /old/{*rest} https://{host}/new/{rest}",
        "rewrite /u/{user}/p/{*rest} /users/{user}/{rest}",
        "prefix /static/ /assets/",
        "sign /private/ key=media param=sig expires=exp skew=60 strip=true",
        "allow-ip 0.0.0.0/0,::/0",
        "header set x-forwarded-proto {scheme}",
        "header append via 1.1 outpost",
        "header remove x-debug",
        "header copy x-forwarded-for x-real-ip",
        "request-id x-request-id",
        "client-class x-client-class",
        "route media when host=*.cdn.example.com path=/live/ method=GET,HEAD",
        "route beta when cookie.beta=1 header.x-tester",
        "route eu when country=DE,FR,NL class=mobile,tablet,tv,desktop,bot",
        "split checkout by cookie.uid main:90 beta:10",
        "split exp by header.x-user-id a:50 b:30 c:20",
        "split net by ip a:1 b:1",
    ]
    .join("\n");
    let got = problems(&[
        ("normalize_path", "true"),
        ("lowercase_path", "no"),
        ("strip_query", "utm_*,fbclid"),
        ("keep_query", "id,page,sig,exp,q*"),
        ("sort_query", "on"),
        ("set_header.x-edge", "outpost"),
        ("remove_header", "x-powered-by"),
        ("secret.media", "hex:00112233445566778899aabbccddeeff"),
        ("rules", &rules),
    ]);
    assert!(got.is_empty(), "{got:?}");
    testing::set_config(&[]);
    assert!(Rewrite::check_config(&CheckContext::default()).is_empty());
}
