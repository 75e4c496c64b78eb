//! Table-driven tests of each rule kind, with real-world URLs and User-Agents.
#![allow(clippy::unwrap_used)]

mod common;

use common::{apply, configure, har_urls, har_user_agents, req, run};
use outpost_guest::{Header, HeaderOp, RequestAction, RequestHead, testing};
use rewrite::{Rewrite, client_class, sign_path};

fn get(target: &str) -> RequestHead {
    req("https", "example.com", target, &[])
}

/// The path the request is forwarded with.
fn forwarded_path(r: &RequestHead, rules: &[&str]) -> String {
    configure(&[], rules);
    let out = run(r);
    assert!(out.response.is_none(), "{rules:?} {r:?} answered");
    out.path.clone().unwrap_or_else(|| r.path.clone())
}

#[test]
fn rewrite_rules() {
    let cases: &[(&str, &str, &str)] = &[
        ("rewrite /old/{id} /new/{id}", "/old/42", "/new/42"),
        ("rewrite /old/{id} /new/{id}", "/old/42/x", "/old/42/x"),
        ("rewrite /old/{id} /new/{id}", "/old/", "/old/"),
        ("rewrite /old/{id} /new/{id}", "/old//42", "/new/42"),
        ("rewrite /old/{id} /new/{id}", "/old/%34%32", "/new/42"),
        ("rewrite /old/{id} /new/{id}", "/old/./x/../7", "/new/7"),
        (
            "rewrite /shop/items/{sku} /catalog/{sku}",
            "/shop/./items/../items/Widget%2dPro",
            "/catalog/Widget-Pro",
        ),
        (
            "rewrite /u/{user}/photos/{*rest} /media/{user}/{rest}",
            "/u/ana/photos/2024/07/beach.jpg",
            "/media/ana/2024/07/beach.jpg",
        ),
        (
            "rewrite /u/{user}/photos/{*rest} /media/{user}/{rest}",
            "/u/ana/photos",
            "/media/ana/",
        ),
        ("rewrite /x/{*r} /mirror{path}", "/x/a", "/mirror/x/a"),
        // A capture hides the built-in `{id}` (the request id).
        (
            "rewrite /v/{id} /video/{id}.m3u8",
            "/v/abc",
            "/video/abc.m3u8",
        ),
        // Captured `..` escapes cannot climb: the result is normalised again.
        ("rewrite /a/{*r} /b/{r}", "/a/%2e%2e/%2e%2e/etc", "/etc"),
        ("rewrite / /index.html", "/", "/index.html"),
        ("rewrite / /index.html", "/?x=1", "/index.html"),
    ];
    for (rule, target, want) in cases {
        assert_eq!(
            forwarded_path(&get(target), &[rule]),
            *want,
            "{rule} {target}"
        );
    }
}

#[test]
fn rewrites_chain_in_order() {
    let rules = [
        "rewrite /old/{*rest} /mid/{rest}",
        "rewrite /mid/{*rest} /new/{rest}",
        "prefix /new/legacy/ /archive/",
    ];
    assert_eq!(forwarded_path(&get("/old/legacy/x"), &rules), "/archive/x");
}

#[test]
fn prefix_rules() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "prefix /static/ /assets/v2/",
            "/static/css/a.css",
            "/assets/v2/css/a.css",
        ),
        ("prefix /static/ /assets/v2/", "/staticx/a", "/staticx/a"),
        ("prefix /static/ /assets/v2/", "/static", "/static"),
        (
            "prefix /api /backend/api",
            "/api/users",
            "/backend/api/users",
        ),
        // A plain string prefix: no segment boundary.
        ("prefix /api /backend/api", "/apix", "/backend/apix"),
        (
            "prefix /images/ /img/",
            "//images//logo.gif",
            "/img/logo.gif",
        ),
        ("prefix / /site/", "/a", "/site/a"),
    ];
    for (rule, target, want) in cases {
        assert_eq!(
            forwarded_path(&get(target), &[rule]),
            *want,
            "{rule} {target}"
        );
    }
}

/// `(rules, scheme, authority, target, expected (status, location) or None)`.
type RedirectCase<'a> = (
    &'a [&'a str],
    &'a str,
    &'a str,
    &'a str,
    Option<(u16, &'a str)>,
);

#[test]
fn redirect_https_and_canonical_host() {
    let cases: &[RedirectCase<'_>] = &[
        (
            &["redirect 301 /old/{*rest} https://{host}/new/{rest}"],
            "https",
            "example.com",
            "/old/a/b?x=1",
            Some((301, "https://example.com/new/a/b?x=1")),
        ),
        (
            &["redirect 301 /old/{*rest} https://{host}/new/{rest}"],
            "https",
            "example.com",
            "/old/a?utm_source=news&id=3",
            Some((301, "https://example.com/new/a?id=3")),
        ),
        (
            &["redirect 302 /search /find?from=search&{query}"],
            "https",
            "example.com",
            "/search?q=rust",
            Some((302, "/find?from=search&q=rust")),
        ),
        (
            &["redirect 308 /docs/{page} {scheme}://docs.example.com/{page}"],
            "http",
            "example.com",
            "/docs/intro",
            Some((308, "http://docs.example.com/intro")),
        ),
        (
            &["redirect 307 /p/{id} /products/{id}"],
            "https",
            "example.com",
            "/p/7/",
            None,
        ),
        (
            &["https 301"],
            "http",
            "example.com",
            "/a?b=1",
            Some((301, "https://example.com/a?b=1")),
        ),
        (
            &["https 308"],
            "http",
            "example.com:80",
            "/",
            Some((308, "https://example.com/")),
        ),
        (
            &["https 301"],
            "http",
            "example.com:8080",
            "/x",
            Some((301, "https://example.com:8080/x")),
        ),
        (&["https 301"], "https", "example.com", "/a", None),
        (
            &["canonical-host example.com 301"],
            "https",
            "Example.COM:443",
            "/",
            None,
        ),
        (
            &["canonical-host example.com 301"],
            "https",
            "example.com.",
            "/",
            None,
        ),
        (
            &["canonical-host example.com 301"],
            "https",
            "www.example.com",
            "/p?q=1",
            Some((301, "https://example.com/p?q=1")),
        ),
        (
            &["canonical-host example.com 302"],
            "http",
            "[::1]:8080",
            "/a/../b",
            Some((302, "http://example.com/b")),
        ),
        // The first responding rule ends processing.
        (
            &["https 301", "canonical-host example.com 301"],
            "http",
            "www.example.com",
            "/",
            Some((301, "https://www.example.com/")),
        ),
    ];
    for (rules, scheme, authority, target, want) in cases {
        configure(&[], rules);
        let out = run(&req(scheme, authority, target, &[]));
        let got = out
            .response
            .as_ref()
            .map(|r| (r.status, r.get_header("location").unwrap_or("").to_string()));
        let want = want.map(|(s, l)| (s, l.to_string()));
        assert_eq!(got, want, "{rules:?} {scheme}://{authority}{target}");
        if out.response.is_some() {
            assert!(out.edit.is_empty());
        }
    }
}

#[test]
fn har_urls_redirect_to_https_and_canonical_host() {
    // The recorded sites: http pages go to https, assets on other hosts go to
    // the canonical one, with the path and query kept.
    configure(
        &[("strip_query", "")],
        &["https 301", "canonical-host www.bbc.com 301"],
    );
    let mut redirected = 0;
    for file in [
        "www.bbc.com.har",
        "capture-har_cnn.har",
        "chrome_github.com_home.har",
    ] {
        for (scheme, authority, target) in har_urls(file) {
            let r = req(&scheme, &authority, &target, &[]);
            let out = run(&r);
            let loc = out
                .response
                .as_ref()
                .and_then(|r| r.get_header("location"))
                .map(str::to_string);
            let host_ok = authority.eq_ignore_ascii_case("www.bbc.com");
            match loc {
                Some(l) => {
                    redirected += 1;
                    assert!(l.starts_with("https://"), "{l}");
                    // The location carries the normalised path.
                    let path = rewrite::normalize_path(&r.path, false);
                    assert!(l.contains(&path), "{l} lacks {path}");
                    let l_path = l[8..].split('?').next().unwrap_or("");
                    assert!(!l_path.contains("//"), "{l}");
                }
                None => assert!(
                    scheme == "https" && host_ok,
                    "{scheme}://{authority}{target}"
                ),
            }
        }
    }
    assert!(redirected > 100, "{redirected}");
}

#[test]
fn header_rules() {
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], Vec<HeaderOp>);
    let set = |n: &str, v: &str| HeaderOp::Set(Header::new(n, v));
    let append = |n: &str, v: &str| HeaderOp::Append(Header::new(n, v));
    let cases: Vec<Case<'_>> = vec![
        (
            &["header set x-forwarded-host {host}"],
            &[],
            vec![set("x-forwarded-host", "example.com")],
        ),
        (
            &["header set X-Edge outpost  edge  1"],
            &[],
            vec![set("x-edge", "outpost  edge  1")],
        ),
        (
            &["header set x-edge outpost"],
            &[("x-edge", "outpost")],
            vec![],
        ),
        (
            &["header set x-edge outpost"],
            &[("x-edge", "a"), ("x-edge", "b")],
            vec![set("x-edge", "outpost")],
        ),
        (
            &["header append via 1.1 outpost"],
            &[("via", "1.0 squid")],
            vec![append("via", "1.1 outpost")],
        ),
        (
            &["header append via 1.1 outpost"],
            &[],
            vec![set("via", "1.1 outpost")],
        ),
        (
            &["header remove cookie"],
            &[("Cookie", "a=1")],
            vec![HeaderOp::Remove("cookie".into())],
        ),
        (&["header remove cookie"], &[], vec![]),
        (
            &["header copy x-forwarded-for x-real-ip"],
            &[
                ("x-forwarded-for", "203.0.113.7"),
                ("x-forwarded-for", "10.0.0.1"),
            ],
            vec![
                set("x-real-ip", "203.0.113.7"),
                append("x-real-ip", "10.0.0.1"),
            ],
        ),
        (
            &["header copy x-forwarded-for x-real-ip"],
            &[("x-real-ip", "1.2.3.4")],
            vec![],
        ),
        (&["header set x-a 1", "header remove x-a"], &[], vec![]),
        (
            &["header set x-path {path}?{query} via {scheme}"],
            &[],
            vec![set("x-path", "/a/b?id=1 via https")],
        ),
        (
            &["header set x-b {{literal}}"],
            &[],
            vec![set("x-b", "{literal}")],
        ),
    ];
    for (rules, headers, want) in cases {
        configure(&[], rules);
        let out = run(&req(
            "https",
            "example.com",
            "/a//b?id=1&utm_source=x",
            headers,
        ));
        assert_eq!(out.headers, want, "{rules:?} {headers:?}");
    }
}

/// `(rule, request headers, expected header value)`.
type RequestIdCase<'a> = (&'a str, &'a [(&'a str, &'a str)], Option<&'a str>);

#[test]
fn request_id_rules() {
    let cases: &[RequestIdCase<'_>] = &[
        ("request-id x-request-id", &[], Some("0000000000000001")),
        (
            "request-id x-request-id",
            &[("x-request-id", "from-client")],
            None,
        ),
        (
            "request-id x-request-id",
            &[("x-request-id", " ")],
            Some("0000000000000001"),
        ),
        (
            "request-id x-request-id force",
            &[("x-request-id", "from-client")],
            Some("0000000000000001"),
        ),
        ("request-id X-Correlation-Id", &[], Some("0000000000000001")),
    ];
    for (rule, headers, want) in cases {
        configure(&[], &[rule]);
        let out = run(&req("https", "example.com", "/", headers));
        let got: Vec<HeaderOp> = want
            .map(|v| {
                let name = rule.split_whitespace().nth(1).unwrap();
                vec![HeaderOp::Set(Header::new(name, v))]
            })
            .unwrap_or_default();
        assert_eq!(out.headers, got, "{rule} {headers:?}");
    }
}

const USER_AGENTS: &[(&str, &str)] = &[
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
        "mobile",
    ),
    (
        "Mozilla/5.0 (iPod touch; CPU iPhone OS 12_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/12.1 Mobile/15E148 Safari/604.1",
        "mobile",
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
        "mobile",
    ),
    (
        "Mozilla/5.0 (compatible; MSIE 10.0; Windows Phone 8.0; Trident/6.0; IEMobile/10.0; ARM; Touch; NOKIA; Lumia 920)",
        "mobile",
    ),
    (
        "Opera/9.80 (J2ME/MIDP; Opera Mini/9.80 (S60; SymbOS; Opera Mobi/23.348; U; en) Presto/2.5.25 Version/10.54",
        "mobile",
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 16_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/420.0.0.32.107;]",
        "mobile",
    ),
    (
        "Mozilla/5.0 (Linux; Android 9; CUBOT X19) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/116.0 Mobile Safari/537.36",
        "mobile",
    ),
    (
        "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
        "tablet",
    ),
    (
        "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        "tablet",
    ),
    (
        "Mozilla/5.0 (Linux; Android 9; KFMAWI) AppleWebKit/537.36 (KHTML, like Gecko) Silk/118.3.1 like Chrome/118.0.5993.144 Safari/537.36",
        "tablet",
    ),
    (
        "Mozilla/5.0 (X11; U; Linux armv7l like Android; en-us) AppleWebKit/531.2+ (KHTML, like Gecko) Version/5.0 Safari/533.2+ Kindle/3.0+",
        "tablet",
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; Tablet; rv:120.0) Gecko/20100101 Firefox/120.0",
        "tablet",
    ),
    (
        "Mozilla/5.0 (SMART-TV; LINUX; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) 76.0.3809.146/6.0 TV Safari/537.36",
        "tv",
    ),
    (
        "Mozilla/5.0 (Web0S; Linux/SmartTV) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/79.0.3945.79 Safari/537.36 WebAppManager",
        "tv",
    ),
    ("Roku/DVP-9.10 (519.10E04111A)", "tv"),
    (
        "Mozilla/5.0 (X11; Linux armv7l) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/91.0.4472.225 Safari/537.36 CrKey/1.56.500000",
        "tv",
    ),
    ("AppleTV11,1/11.1", "tv"),
    (
        "Mozilla/5.0 (Linux; Android 9; AFTKA Build/PS7633.3445N; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/120.0 Mobile Safari/537.36",
        "tv",
    ),
    (
        "Mozilla/5.0 (Linux; Android 10; BRAVIA 4K VH2 Build/QTG3.200305.006.S292; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/108.0 Safari/537.36",
        "tv",
    ),
    (
        "HbbTV/1.4.1 (+DRM;Samsung;SmartTV2019;T-HKMFDEUC-1270.3;;) Tizen/5.0 (+TVPLUS+SmartHubLink) Chrome/56",
        "tv",
    ),
    (
        "Mozilla/5.0 (Linux; Android 12; Android TV) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/110.0 Safari/537.36",
        "tv",
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; Xbox; Xbox One) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/70.0 Safari/537.36 Edge/18.19041",
        "tv",
    ),
    (
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "bot",
    ),
    (
        "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "bot",
    ),
    (
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        "bot",
    ),
    ("curl/7.88.1", "bot"),
    ("Wget/1.21.3", "bot"),
    ("python-requests/2.31.0", "bot"),
    ("Go-http-client/1.1", "bot"),
    (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.6099.109 Safari/537.36",
        "bot",
    ),
    (
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        "bot",
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        "desktop",
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
        "desktop",
    ),
    (
        "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
        "desktop",
    ),
    (
        "Mozilla/5.0 (compatible; MSIE 9.0; Windows NT 6.1; Trident/5.0; Tablet PC 2.0)",
        "desktop",
    ),
    ("NCSA_Mosaic/2.0 (Windows 3.1)", "desktop"),
    (
        "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17029; Pro)",
        "desktop",
    ),
];

#[test]
fn client_class_table() {
    for (ua, want) in USER_AGENTS {
        assert_eq!(client_class(Some(ua)), *want, "{ua}");
    }
    assert_eq!(client_class(None), "bot");
    assert_eq!(client_class(Some("  ")), "bot");
}

#[test]
fn client_class_of_recorded_har_user_agents() {
    let mut seen = 0;
    for (file, want) in [
        ("chrome_github.com_home.har", "desktop"),
        ("www.bbc.com.har", "desktop"),
        ("chrome_h2_www.nghttp2.org.har", "desktop"),
        ("capture-har_cnn.har", "bot"),
    ] {
        for ua in har_user_agents(file) {
            seen += 1;
            assert_eq!(client_class(Some(&ua)), want, "{file}: {ua}");
        }
    }
    assert!(seen >= 150, "{seen}");
}

#[test]
fn client_class_rule_sets_header_and_overrides_forgery() {
    configure(&[], &["client-class x-client-class"]);
    for (ua, want) in USER_AGENTS {
        let out = run(&req(
            "https",
            "e.com",
            "/",
            &[("user-agent", ua), ("x-client-class", "forged")],
        ));
        assert_eq!(
            out.headers,
            vec![HeaderOp::Set(Header::new("x-client-class", *want))],
            "{ua}"
        );
    }
    let out = run(&req("https", "e.com", "/", &[("x-client-class", "bot")]));
    assert!(out.headers.is_empty());
}

#[test]
fn route_rules() {
    let iphone = USER_AGENTS[0].0;
    let roku = "Roku/DVP-9.10 (519.10E04111A)";
    type Case<'a> = (&'a [&'a str], RequestHead, Option<&'a str>);
    let mut eu = req("https", "example.com", "/", &[]);
    eu.client.country = Some("de".into());
    let mut post = req("https", "example.com", "/api/x", &[]);
    post.method = "POST".into();
    let cases: Vec<Case<'_>> = vec![
        (
            &["route archive when path=/history/"],
            get("/history/apollo/a.html"),
            Some("archive"),
        ),
        (
            &["route archive when path=/history/"],
            get("/historyx"),
            None,
        ),
        (
            &["route archive when path=/history/"],
            get("//history//x"),
            Some("archive"),
        ),
        (
            &["route beta when host=beta.example.com"],
            req("https", "BETA.example.com:443", "/", &[]),
            Some("beta"),
        ),
        (
            &["route beta when host=*.example.com"],
            req("https", "a.b.example.com", "/", &[]),
            Some("beta"),
        ),
        (
            &["route beta when host=*.example.com"],
            req("https", "example.com", "/", &[]),
            None,
        ),
        (
            &["route beta when host=*.example.com"],
            req("https", "badexample.com", "/", &[]),
            None,
        ),
        (&["route main when method=GET,HEAD"], post.clone(), None),
        (
            &["route main when method=POST path=/api/"],
            post.clone(),
            Some("main"),
        ),
        (
            &["route beta when header.x-beta"],
            req("https", "e", "/", &[("X-Beta", "")]),
            Some("beta"),
        ),
        (
            &["route beta when header.x-beta=1"],
            req("https", "e", "/", &[("x-beta", "0"), ("x-beta", "1")]),
            Some("beta"),
        ),
        (
            &["route beta when header.x-beta=1"],
            req("https", "e", "/", &[("x-beta", "0")]),
            None,
        ),
        (
            &["route beta when cookie.beta=yes"],
            req("https", "e", "/", &[("cookie", "a=1; beta=yes; c=\"3\"")]),
            Some("beta"),
        ),
        (
            &["route beta when cookie.beta=yes"],
            req(
                "https",
                "e",
                "/",
                &[("cookie", "a=1"), ("cookie", "beta=no")],
            ),
            None,
        ),
        (
            &["route beta when cookie.c=3"],
            req("https", "e", "/", &[("cookie", "a=1; c=\"3\"")]),
            Some("beta"),
        ),
        (
            &["route beta when cookie.session"],
            req("https", "e", "/", &[("cookie", "session=abc")]),
            Some("beta"),
        ),
        (
            &["route beta when cookie.session"],
            req("https", "e", "/", &[("cookie", "sessionx=abc")]),
            None,
        ),
        (&["route eu when country=DE,FR"], eu.clone(), Some("eu")),
        (&["route eu when country=DE,FR"], get("/"), None),
        (
            &["route mobile-origin when class=mobile,tablet"],
            req("https", "e", "/", &[("user-agent", iphone)]),
            Some("mobile-origin"),
        ),
        (
            &["route media when class=tv path=/live/"],
            req("https", "e", "/live/a.m3u8", &[("user-agent", roku)]),
            Some("media"),
        ),
        (
            &["route media when class=tv path=/live/"],
            req("https", "e", "/vod/a.m3u8", &[("user-agent", roku)]),
            None,
        ),
        (&["route main"], get("/"), Some("main")),
        // First matching route wins; a later split does not change it.
        (
            &[
                "route archive when path=/a",
                "route beta",
                "split ab by ip a:1 b:1",
            ],
            get("/a"),
            Some("archive"),
        ),
        (
            &["route archive when path=/a", "route beta"],
            get("/b"),
            Some("beta"),
        ),
        // Routes see the path as earlier rules left it.
        (
            &[
                "prefix /old/ /history/",
                "route archive when path=/history/",
            ],
            get("/old/x"),
            Some("archive"),
        ),
    ];
    for (rules, r, want) in cases {
        configure(&[], rules);
        let out = run(&r);
        assert_eq!(out.origin.as_deref(), want, "{rules:?} {r:?}");
        if rules.iter().any(|r| r.starts_with("split")) {
            assert!(
                out.headers.is_empty(),
                "a split after a route sets no header"
            );
        }
    }
}

fn split_origin(r: &RequestHead) -> String {
    run(r).origin.clone().unwrap()
}

#[test]
fn split_is_sticky_and_keyed() {
    configure(&[], &["split checkout by cookie.uid a:50 b:50"]);
    let with = |uid: &str, ip: &str| {
        req("https", "e", "/", &[("cookie", &format!("x=1; uid={uid}"))]).with_client_ip(ip)
    };
    for i in 0..200 {
        let uid = format!("user-{i}");
        // The same id gets the same arm every time, whatever its ip.
        let first = split_origin(&with(&uid, "192.0.2.1"));
        assert_eq!(split_origin(&with(&uid, "198.51.100.9")), first);
        assert_eq!(split_origin(&with(&uid, "192.0.2.1")), first);
        let out = run(&with(&uid, "192.0.2.1"));
        assert_eq!(
            out.headers,
            vec![HeaderOp::Set(Header::new("x-split-checkout", &first))]
        );
    }
    // Without the cookie the client ip is the key.
    let a = split_origin(&get("/").with_client_ip("203.0.113.5"));
    for _ in 0..5 {
        assert_eq!(split_origin(&get("/").with_client_ip("203.0.113.5")), a);
    }
    // A pinned value: the hash is part of the contract (other nodes agree).
    assert_eq!(rewrite::stable_hash(b""), rewrite::stable_hash(b""));
    assert_ne!(rewrite::stable_hash(b"a:1"), rewrite::stable_hash(b"a:2"));
    // The header key, and an already-set arm header is not re-emitted.
    configure(&[], &["split exp by header.x-user-id a:1 b:1"]);
    let r = req("https", "e", "/", &[("x-user-id", "42")]);
    let out = run(&r);
    let again = run(&apply(&r, &out.edit));
    assert!(again.headers.is_empty());
    assert_eq!(again.origin, out.origin);
}

fn distribution(rule: &str, arms: &[&str]) -> Vec<f64> {
    configure(&[], &[rule]);
    let n = 10_000;
    let mut counts = vec![0usize; arms.len()];
    for i in 0..n {
        let r = req("https", "e", "/", &[("x-user-id", &format!("{i:08}"))]);
        let o = split_origin(&r);
        let idx = arms.iter().position(|a| *a == o).unwrap();
        counts[idx] += 1;
    }
    counts.iter().map(|c| *c as f64 / f64::from(n)).collect()
}

#[test]
fn split_weights_hold_within_one_percent() {
    let got = distribution(
        "split exp by header.x-user-id main:90 beta:10",
        &["main", "beta"],
    );
    assert!(
        (got[0] - 0.9).abs() < 0.01 && (got[1] - 0.1).abs() < 0.01,
        "{got:?}"
    );
    let got = distribution(
        "split exp by header.x-user-id a:50 b:30 c:20",
        &["a", "b", "c"],
    );
    for (g, w) in got.iter().zip([0.5, 0.3, 0.2]) {
        assert!((g - w).abs() < 0.01, "{got:?}");
    }
    // A zero-weight arm gets nothing.
    let got = distribution("split exp by header.x-user-id a:1 b:0", &["a", "b"]);
    assert_eq!(got, vec![1.0, 0.0]);
}

const SECRET: &str = "s3cr3t-key-for-tests";

fn signed(path: &str, expires: u64) -> String {
    format!(
        "{path}?expires={expires}&token={}",
        sign_path(SECRET.as_bytes(), path, expires)
    )
}

#[test]
fn sign_rules() {
    let now = 1_700_000_000u64;
    let good = signed("/private/video/a.mp4", now + 60);
    let tampered_path = good.replace("/a.mp4", "/b.mp4");
    let token = sign_path(SECRET.as_bytes(), "/private/video/a.mp4", now + 60);
    let mut flipped = token.clone().into_bytes();
    flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
    let tampered_token = good.replace(&token, std::str::from_utf8(&flipped).unwrap());
    let tampered_expiry = good.replace(
        &format!("expires={}", now + 60),
        &format!("expires={}", now + 6000),
    );
    // (target, expected: Ok(forwarded target) or Err(body))
    let cases: Vec<(String, Result<String, &str>)> = vec![
        (good.clone(), Ok("/private/video/a.mp4".into())),
        (
            format!("{good}&quality=hd"),
            Ok("/private/video/a.mp4?quality=hd".into()),
        ),
        // Normalised before checking: the signature covers the clean path.
        (
            good.replace("/private/video/", "/private//video/./"),
            Ok("/private/video/a.mp4".into()),
        ),
        (tampered_path, Err("bad token")),
        (tampered_token, Err("bad token")),
        (tampered_expiry, Err("bad token")),
        (
            good.replace(&token, &token.to_ascii_uppercase()),
            Ok("/private/video/a.mp4".into()),
        ),
        (good.replace(&token, &token[..40]), Err("bad token")),
        (
            good.replace(&format!("{}", now + 60), "soon"),
            Err("bad token"),
        ),
        (signed("/private/x", now - 10), Ok("/private/x".into())),
        (signed("/private/x", now - 30), Ok("/private/x".into())),
        (signed("/private/x", now - 31), Err("expired token")),
        (signed("/private/x", now - 86_400), Err("expired token")),
        ("/private/x".into(), Err("missing token")),
        (
            format!("/private/x?expires={}", now + 5),
            Err("missing token"),
        ),
        ("/private/x?token=abc".into(), Err("missing token")),
        (
            "/public/x?token=abc".into(),
            Ok("/public/x?token=abc".into()),
        ),
    ];
    configure(&[("secret.media", SECRET)], &["sign /private/ key=media"]);
    testing::set_unix_time(now);
    for (target, want) in cases {
        let r = get(&target);
        let out = run(&r);
        match (want, &out.response) {
            (Ok(fwd), None) => assert_eq!(apply(&r, &out.edit).target(), fwd, "{target}"),
            (Err(body), Some(resp)) => {
                assert_eq!(resp.status, 403, "{target}");
                assert_eq!(String::from_utf8_lossy(&resp.body).trim(), body, "{target}");
                assert_eq!(resp.get_header("content-type"), Some("text/plain"));
            }
            (want, got) => panic!("{target}: want {want:?}, got {got:?}"),
        }
    }
}

#[test]
fn sign_options() {
    let now = 1_700_000_000u64;
    configure(
        &[("secret.k", "hex:00ff10"), ("sort_query", "true")],
        &["sign /dl/ key=k param=sig expires=exp skew=0 strip=false"],
    );
    testing::set_unix_time(now);
    let sig = sign_path(&[0x00, 0xff, 0x10], "/dl/f.zip", now);
    let r = get(&format!("/dl/f.zip?sig={sig}&exp={now}"));
    let out = run(&r);
    assert!(out.response.is_none());
    // strip=false keeps the parameters (sorted by sort_query).
    assert_eq!(
        out.query.as_deref(),
        Some(format!("exp={now}&sig={sig}").as_str())
    );
    testing::set_unix_time(now + 1);
    assert!(
        run(&r).response.is_some(),
        "skew=0: one second late is expired"
    );
}

#[test]
fn ip_rules() {
    let cases: &[(&str, &str, bool)] = &[
        ("allow-ip 10.0.0.0/8,192.168.0.0/16", "10.1.2.3", true),
        ("allow-ip 10.0.0.0/8,192.168.0.0/16", "192.168.5.5", true),
        ("allow-ip 10.0.0.0/8, 192.168.0.0/16", "172.16.0.1", false),
        ("allow-ip 10.0.0.0/8", "::ffff:10.0.0.1", true),
        ("allow-ip 10.0.0.0/8", "2001:db8::1", false),
        ("allow-ip 10.0.0.0/8", "not-an-ip", false),
        ("allow-ip 2001:db8::/32", "2001:db8:1::5", true),
        ("allow-ip 2001:db8::/32", "2001:db9::5", false),
        ("allow-ip 203.0.113.9", "203.0.113.9", true),
        ("allow-ip 203.0.113.9", "203.0.113.10", false),
        ("deny-ip 198.51.100.0/24", "198.51.100.77", false),
        ("deny-ip 198.51.100.0/24", "198.51.101.1", true),
        ("deny-ip 198.51.100.0/24", "::ffff:198.51.100.1", false),
        ("deny-ip ::1", "::1", false),
        ("deny-ip ::1", "not-an-ip", true),
    ];
    for (rule, ip, forwarded) in cases {
        configure(&[], &[rule]);
        let out = run(&get("/").with_client_ip(ip));
        assert_eq!(out.response.is_none(), *forwarded, "{rule} {ip}");
        if let Some(r) = &out.response {
            assert_eq!(r.status, 403);
        }
    }
}

/// `(config, query, expected query)`.
type KeepCase<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);

#[test]
fn keep_query_allow_list() {
    let cases: &[KeepCase<'_>] = &[
        (
            &[("keep_query", "id,page")],
            "id=1&x=2&page=3&utm_source=a",
            "id=1&page=3",
        ),
        (
            &[("keep_query", "v*")],
            "v=1&version=2&x=3",
            "v=1&version=2",
        ),
        (&[("keep_query", "ID")], "id=1&Id=2", "id=1&Id=2"),
        // Applied after strip: a stripped name stays stripped.
        (&[("keep_query", "utm_*,id")], "utm_source=a&id=1", "id=1"),
        (
            &[("keep_query", "utm_*,id"), ("strip_query", "")],
            "utm_source=a&id=1",
            "utm_source=a&id=1",
        ),
        (&[("keep_query", "")], "a=1&b=2", ""),
        (
            &[("keep_query", "q"), ("sort_query", "true")],
            "q=b&z=1&q=a",
            "q=b&q=a",
        ),
    ];
    for (config, query, want) in cases {
        configure(config, &[]);
        let r = get(&format!("/s?{query}"));
        let out = run(&r);
        assert_eq!(apply(&r, &out.edit).query, *want, "{config:?} {query}");
    }
}

#[test]
fn hook_responds_and_forwards() {
    configure(&[], &["redirect 301 /old /new", "route main"]);
    assert!(matches!(
        Rewrite::on_request_for_test(&get("/old")),
        RequestAction::Respond(r) if r.status == 301
    ));
    assert!(matches!(
        Rewrite::on_request_for_test(&get("/x")),
        RequestAction::Forward(e) if e.origin.as_deref() == Some("main")
    ));
}

/// Calls the exported hook.
trait HookForTest {
    fn on_request_for_test(req: &RequestHead) -> RequestAction;
}

impl HookForTest for Rewrite {
    fn on_request_for_test(req: &RequestHead) -> RequestAction {
        <Rewrite as outpost_guest::RequestHook>::on_request(req)
    }
}

#[test]
fn bad_rules_are_skipped_at_runtime_with_a_warning() {
    testing::reset();
    testing::set_config(&[(
        "rules",
        "bogus rule\nprefix /a/ /b/\nroute nowhere when path=/",
    )]);
    let out = run(&get("/a/x"));
    assert_eq!(out.path.as_deref(), Some("/b/x"));
    // Unknown origins cannot be seen at runtime (the check rejects them).
    assert_eq!(out.origin.as_deref(), Some("nowhere"));
    let logs = testing::take_logs();
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert!(logs[0].1.contains("item 0"), "{logs:?}");
}
