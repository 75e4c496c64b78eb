//! Native tests against the mock host.
#![allow(clippy::unwrap_used, clippy::panic)]

use super::*;
use outpost_guest::{Header, LogLevel, testing};

mod check;
mod classes;
mod deadline;
mod replay;

/// Run the guest with the current mock config.
fn admit(req: &RequestHead) -> AdmitDecision {
    Shed::on_admit(req)
}

fn admission(req: &RequestHead) -> Admission {
    match admit(req) {
        AdmitDecision::Admit(a) => a,
        AdmitDecision::Reject(r) => {
            panic!("{} {}: rejected with {}", req.method, req.path, r.status)
        }
    }
}

fn class_of(req: &RequestHead) -> PriorityClass {
    admission(req).class
}

fn get(target: &str) -> PriorityClass {
    class_of(&RequestHead::get(target))
}

/// Set the mock config and assert the load-time check accepts it.
fn configure(pairs: &[(&str, &str)]) {
    testing::reset();
    testing::set_config(pairs);
    let problems = check();
    assert!(problems.is_empty(), "{pairs:?}: {problems:?}");
}

#[test]
fn bulk_bots() {
    configure(&[]);
    let bot =
        |ua: &str| class_of(&RequestHead::get("/live/x/index.m3u8").with_header("User-Agent", ua));
    assert_eq!(
        bot("Mozilla/5.0 (compatible; Googlebot/2.1)"),
        PriorityClass::Bulk
    );
    assert_eq!(bot("SomeCrawler/1.0"), PriorityClass::Bulk);
    assert_eq!(bot("spider-man"), PriorityClass::Bulk);
    assert_eq!(
        bot("Mozilla/5.0 (iPhone) AppleWebKit"),
        PriorityClass::Critical
    );

    configure(&[("bulk_user_agents", "curl, Wget")]);
    assert_eq!(bot("curl/8.0"), PriorityClass::Bulk);
    assert_eq!(bot("wget/1.2"), PriorityClass::Bulk);
    assert_eq!(bot("Googlebot"), PriorityClass::Critical);

    configure(&[("bulk_user_agents", "python-requests\nGo-http-client")]);
    assert_eq!(bot("python-requests/2.31"), PriorityClass::Bulk);
    assert_eq!(bot("Go-http-client/1.1"), PriorityClass::Bulk);

    configure(&[("bulk_user_agents", "")]);
    assert_eq!(bot("Googlebot"), PriorityClass::Critical);
}

#[test]
fn prefetch_is_bulk() {
    for profile in ["video", "commerce"] {
        configure(&[("profile", profile)]);
        for (name, value) in [
            ("Sec-Purpose", "prefetch"),
            ("sec-purpose", "prefetch;prerender"),
            ("Sec-Purpose", "prefetch; anonymous-client-ip"),
            ("Purpose", "prefetch"),
            ("X-Moz", "prefetch"),
            ("x-moz", "Prefetch"),
        ] {
            for target in ["/checkout", "/live/a/index.m3u8", "/p/123"] {
                let req = RequestHead::get(target).with_header(name, value);
                assert_eq!(
                    class_of(&req),
                    PriorityClass::Bulk,
                    "{profile} {name}: {value} {target}"
                );
            }
        }
        for (name, value) in [
            ("Sec-Purpose", "prerender"),
            ("purpose", "preview"),
            ("x-moz", ""),
        ] {
            let req = RequestHead::get("/checkout").with_header(name, value);
            assert_ne!(class_of(&req), PriorityClass::Bulk, "{name}: {value}");
        }
    }
}

#[test]
fn class_overrides_come_first_highest_first() {
    configure(&[
        ("class.critical", "/checkout, /live/"),
        ("class.low", "/checkout/slow,/vod/"),
        ("class.bulk", "/prefetch/\nPOST /upload/"),
    ]);
    assert_eq!(get("/checkout/slow/x"), PriorityClass::Critical);
    assert_eq!(get("/vod/a/seg.ts"), PriorityClass::Low);
    assert_eq!(get("/vod/a/master.m3u8"), PriorityClass::Low);
    assert_eq!(get("/prefetch/a.jpg"), PriorityClass::Bulk);
    assert_eq!(get("/other/seg.ts"), PriorityClass::High);
    assert_eq!(
        class_of(&RequestHead::new("POST", "/upload/x")),
        PriorityClass::Bulk
    );
    assert_eq!(
        class_of(&RequestHead::new("post", "/upload/x")),
        PriorityClass::Bulk
    );
    assert_eq!(get("/upload/x"), PriorityClass::Normal);
}

#[test]
fn priority_header_only_when_trusted() {
    configure(&[]);
    let req = || RequestHead::get("/thumbs/1.jpg").with_header("X-Outpost-Priority", "critical");
    assert_eq!(class_of(&req()), PriorityClass::Normal);
    configure(&[("trust_priority_header", "true")]);
    assert_eq!(class_of(&req()), PriorityClass::Critical);
    let bogus = RequestHead::get("/thumbs/1.jpg").with_header("x-outpost-priority", "urgent!!");
    assert_eq!(class_of(&bogus), PriorityClass::Normal);
    let low = RequestHead::get("/live/a.ts").with_header("x-outpost-priority", " Bulk ");
    assert_eq!(class_of(&low), PriorityClass::Bulk);
}

#[test]
fn rejects_configured_methods() {
    configure(&[("reject_methods", "TRACE, connect")]);
    for m in ["TRACE", "CONNECT", "trace"] {
        match admit(&RequestHead::new(m, "/")) {
            AdmitDecision::Reject(r) => {
                assert_eq!(r.status, 405);
                assert!(r.get_header("allow").is_some());
            }
            other => panic!("{m}: {other:?}"),
        }
    }
    assert_eq!(
        class_of(&RequestHead::new("GET", "/")),
        PriorityClass::Normal
    );
    configure(&[]);
    assert_eq!(
        class_of(&RequestHead::new("TRACE", "/")),
        PriorityClass::Normal
    );
}

#[test]
fn cost_per_class() {
    configure(&[]);
    for target in [
        "/live/a/index.m3u8",
        "/vod/a/seg1.ts",
        "/thumbs/1.jpg",
        "/beacon",
    ] {
        assert_eq!(admission(&RequestHead::get(target)).cost, 1, "{target}");
    }
    configure(&[
        ("cost.high", "4"),
        ("cost.bulk", " 10 "),
        ("cost.critical", "1"),
    ]);
    let cost = |req: RequestHead| admission(&req).cost;
    assert_eq!(cost(RequestHead::get("/vod/a/seg1.ts")), 4);
    assert_eq!(cost(RequestHead::get("/live/a/seg1.ts")), 1);
    assert_eq!(cost(RequestHead::get("/thumbs/1.jpg")), 1);
    assert_eq!(
        cost(RequestHead::get("/vod/a/seg1.ts").with_header("user-agent", "Googlebot")),
        10
    );
    assert_eq!(
        cost(RequestHead::get("/a").with_header("sec-purpose", "prefetch")),
        10
    );

    configure(&[
        ("profile", "commerce"),
        ("cost.critical", "3"),
        ("cost.low", "2"),
    ]);
    assert_eq!(cost(RequestHead::new("POST", "/api/order")), 3);
    assert_eq!(cost(RequestHead::get("/reviews/123")), 2);

    // Bad values at runtime: logged, default 1.
    testing::set_config(&[("cost.high", "0"), ("cost.low", "many")]);
    assert_eq!(cost(RequestHead::get("/vod/a/seg1.ts")), 1);
    assert_eq!(cost(RequestHead::get("/beacon")), 1);
}

#[test]
fn client_key_order() {
    configure(&[]);
    let base = || RequestHead::get("/vod/a/seg1.m4s").with_client_ip("2001:db8::1");
    let key = |req: &RequestHead| admission(req).client_key;
    assert_eq!(key(&base()).as_deref(), Some("2001:db8::1"));
    let sid = base().with_header(
        "CMCD-Session",
        r#"cid="movie-1",sid="6e2fb550-c457-11e9-bb97-0800200c9a66""#,
    );
    assert_eq!(
        key(&sid).as_deref(),
        Some("6e2fb550-c457-11e9-bb97-0800200c9a66")
    );
    let sid_query = RequestHead::get("/vod/a/seg1.m4s?CMCD=bl%3D21300%2Csid%3D%22s-q%22")
        .with_client_ip("192.0.2.9");
    assert_eq!(key(&sid_query).as_deref(), Some("s-q"));
    let both = sid.clone().with_header("X-Client-Id", " user-42 ");
    assert_eq!(key(&both).as_deref(), Some("user-42"));
    // Unusable values fall through to the next source.
    let long = base().with_header("x-client-id", &"x".repeat(200));
    assert_eq!(key(&long).as_deref(), Some("2001:db8::1"));
    let blank = base()
        .with_header("x-client-id", "  ")
        .with_header("cmcd-session", r#"sid="""#);
    assert_eq!(key(&blank).as_deref(), Some("2001:db8::1"));
    assert_eq!(key(&RequestHead::get("/a").with_client_ip("")), None);

    configure(&[("client_key", "cmcd:sid, header:X-Account, ip")]);
    let req = both.clone().with_header("x-account", "acct-7");
    assert_eq!(
        key(&req).as_deref(),
        Some("6e2fb550-c457-11e9-bb97-0800200c9a66")
    );
    assert_eq!(
        key(&base().with_header("x-account", "acct-7")).as_deref(),
        Some("acct-7")
    );

    configure(&[("client_key", "header:x-client-id")]);
    assert_eq!(key(&base()), None);
    configure(&[("client_key", "")]);
    assert_eq!(key(&both), None);
}

#[test]
fn bad_config_values_warn_and_default() {
    testing::reset();
    testing::set_config(&[
        ("class.urgent", "/x"),
        ("class.high", "nope,/ok"),
        ("trust_priority_header", "sure"),
        ("profile", "shop"),
        ("client_key", "cookie:sid,ip"),
        ("color", "blue"),
    ]);
    let c = Config::from_host();
    assert_eq!(
        c.class_prefixes,
        vec![(PriorityClass::High, vec![PrefixRule::parse("/ok").unwrap()])]
    );
    assert!(!c.trust_priority_header);
    assert_eq!(c.profile, Profile::Video);
    assert_eq!(c.client_key, Config::default().client_key);
    let warnings = testing::take_logs()
        .into_iter()
        .filter(|(l, _)| *l == LogLevel::Warn)
        .count();
    assert_eq!(warnings, 6);
}
