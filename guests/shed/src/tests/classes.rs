//! Table-driven classification for both profiles, with realistic URLs.

use super::*;
use PriorityClass::{Bulk, Critical, High, Low, Normal};

/// `(method, target, headers, class)`.
type Row = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    PriorityClass,
);

fn run_table(rows: &[Row]) {
    for (method, target, headers, want) in rows {
        let mut req = RequestHead::new(method, target);
        for (n, v) in *headers {
            req = req.with_header(n, v);
        }
        assert_eq!(class_of(&req), *want, "{method} {target} {headers:?}");
    }
}

const CHROME: (&str, &str) = (
    "user-agent",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
);

#[rustfmt::skip]
const VIDEO: &[Row] = &[
    // Player startup: master / multivariant playlists and DASH manifests.
    ("GET", "/vod/bbb/master.m3u8", &[CHROME], Critical),
    ("GET", "/vod/movie/manifest.MPD", &[], Critical),
    ("GET", "/vod/bbb/stream.mpd?token=abc", &[], Critical),
    ("GET", "/hls/tears/master.m3u8", &[("cmcd-request", "mtp=25400"), ("cmcd-object", "ot=m")], Critical),
    // Media playlists (refreshed every target duration while live).
    ("GET", "/vod/bbb/1080p/index.m3u8", &[], Critical),
    ("GET", "/live/channel1/index.m3u8?token=abc", &[], Critical),
    ("GET", "/api/manifest", &[("cmcd-object", "ot=m")], Critical),
    // Live: everything under /live/, media with CMCD st=l.
    ("GET", "/live/channel1/seg_1001.ts", &[], Critical),
    ("GET", "/live/channel1/init.mp4", &[], Critical),
    ("GET", "/live/channel1/thumb.jpg", &[], Critical),
    ("GET", "/events/final/1080p/seg-88.m4s", &[("cmcd-request", "bl=12000"), ("cmcd-object", "ot=v"), ("cmcd-session", "st=l,sid=\"abc\"")], Critical),
    ("GET", "/events/final/1080p/seg-88.m4s?CMCD=bl%3D12000%2Cot%3Dv%2Cst%3Dl", &[], Critical),
    ("GET", "/events/final/poster.jpg", &[("cmcd-session", "st=l")], Normal),
    // Startup: CMCD su, init segments, keys, media without bl or with bl=0.
    ("GET", "/vod/bbb/1080p/seg-1.m4s", &[("cmcd-request", "bl=0"), ("cmcd-object", "ot=v,br=3200")], Critical),
    ("GET", "/vod/bbb/1080p/seg-1.m4s", &[("cmcd-object", "ot=v,br=3200,d=4004"), ("cmcd-session", "sid=\"s1\"")], Critical),
    ("GET", "/vod/bbb/1080p/seg-2.m4s", &[("cmcd-request", "bl=4000,su"), ("cmcd-object", "ot=v")], Critical),
    ("GET", "/vod/bbb/audio/seg-1.m4s?CMCD=ot%3Da%2Csu", &[], Critical),
    ("GET", "/vod/bbb/1080p/init.mp4", &[], Critical),
    ("GET", "/vod/bbb/1080p/init-v1.m4s", &[], Critical),
    ("GET", "/vod/bbb/video_init.mp4", &[], Critical),
    ("GET", "/vod/bbb/1080p/IS.mp4", &[("cmcd-object", "ot=i")], Critical),
    ("GET", "/drm/key/123", &[("cmcd-object", "ot=k")], Critical),
    // VOD media: high.
    ("GET", "/vod/a/seg1.ts", &[], High),
    ("GET", "/vod/a/chunk-3.m4s", &[], High),
    ("GET", "/vod/a/full.mp4", &[CHROME], High),
    ("GET", "/vod/a/audio.aac", &[], High),
    ("GET", "/vod/a/subs/en/seg-3.vtt", &[], High),
    ("GET", "/livestream/seg.ts", &[], High),
    ("GET", "/initial/seg.ts", &[], High),
    ("GET", "/vod/bbb/1080p/seg-7.m4s", &[("cmcd-request", "bl=21300,mtp=48100"), ("cmcd-object", "br=3200,d=4004,ot=v,tb=6000"), ("cmcd-session", "cid=\"bbb\",sf=h,sid=\"6e2f\",st=v")], High),
    ("GET", "/vod/bbb/1080p/seg-7.m4s?CMCD=bl%3D21300%2Cbr%3D3200%2Cot%3Dv%2Csid%3D%226e2f%22", &[], High),
    ("GET", "/seg", &[("cmcd-request", "bl=5000"), ("cmcd-object", "ot=av")], High),
    ("GET", "/vod/bbb/1080p/seg-7.m4s", &[("cmcd-session", "sid=\"6e2f\"")], High),
    // Thumbnails, images, API reads, pages.
    ("GET", "/thumbs/123.jpg", &[], Normal),
    ("GET", "/vod/bbb/thumbs/sprite-001.webp", &[("cmcd-object", "ot=o")], Normal),
    ("GET", "/img/poster.webp", &[], Normal),
    ("GET", "/api/v1/catalog?genre=drama", &[CHROME], Normal),
    ("GET", "/", &[], Normal),
    ("GET", "/collections/drama", &[], Normal),
    ("GET", "/checkout", &[], Normal),
    // Beacons and analytics: low.
    ("GET", "/beacon", &[], Low),
    ("GET", "/beacon.gif?e=play", &[], Low),
    ("GET", "/analytics/events", &[], Low),
    ("POST", "/collect", &[], Low),
    ("POST", "/Beacon/v2", &[], Low),
    // Bots and prefetch: bulk.
    ("GET", "/vod/bbb/master.m3u8", &[("user-agent", "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)")], Bulk),
    ("GET", "/vod/bbb/thumbs/1.jpg", &[CHROME, ("sec-purpose", "prefetch")], Bulk),
];

#[rustfmt::skip]
const COMMERCE: &[Row] = &[
    // Checkout, cart, payment, login: critical.
    ("GET", "/checkout", &[CHROME], Critical),
    ("POST", "/checkout/shipping", &[], Critical),
    ("GET", "/cart", &[], Critical),
    ("POST", "/cart/add.js", &[], Critical),
    ("POST", "/payment/authorize", &[], Critical),
    ("GET", "/account/login?return_url=%2Fcart", &[], Critical),
    ("POST", "/api/checkout/sessions", &[], Critical),
    ("POST", "/api/orders", &[], Critical),
    ("POST", "/api/order/submit", &[], Critical),
    // Product pages and search: high.
    ("GET", "/product/acme-anvil-42", &[CHROME], High),
    ("GET", "/products/red-shoes?variant=123", &[], High),
    ("GET", "/p/B07XJ8C8F5", &[], High),
    ("GET", "/search?q=anvil", &[], High),
    ("GET", "/api/product/42/price", &[], High),
    ("GET", "/api/products?ids=1,2", &[], High),
    // Reading an order is browsing, not checkout.
    ("GET", "/api/order/9001", &[], Normal),
    // Browsing and static assets: normal.
    ("GET", "/", &[], Normal),
    ("GET", "/collections/summer", &[], Normal),
    ("GET", "/static/css/main.3f2a.css", &[], Normal),
    ("GET", "/images/hero.jpg", &[], Normal),
    ("GET", "/account/orders", &[], Normal),
    ("GET", "/vod/a/seg1.ts", &[], Normal),
    ("GET", "/live/a/index.m3u8", &[], Normal),
    // Recommendations, reviews, beacons: low.
    ("GET", "/recommendations?for=42", &[], Low),
    ("GET", "/api/reco/home", &[], Low),
    ("GET", "/api/recommendations/similar/42", &[], Low),
    ("GET", "/reviews/acme-anvil-42?page=2", &[], Low),
    ("POST", "/collect?v=2&tid=G-1", &[], Low),
    // Bots and prefetch: bulk.
    ("GET", "/product/acme-anvil-42", &[("user-agent", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)")], Bulk),
    ("GET", "/p/B07XJ8C8F5", &[CHROME, ("sec-purpose", "prefetch")], Bulk),
    ("GET", "/search?q=anvil", &[("purpose", "prefetch")], Bulk),
    ("GET", "/cart", &[("x-moz", "prefetch")], Bulk),
];

#[test]
fn video_profile_table() {
    configure(&[]);
    run_table(VIDEO);
    configure(&[("profile", "video")]);
    run_table(VIDEO);
    configure(&[("profile", " Video ")]);
    run_table(VIDEO);
}

#[test]
fn commerce_profile_table() {
    configure(&[("profile", "commerce")]);
    run_table(COMMERCE);
}

#[test]
fn commerce_overrides() {
    configure(&[
        ("profile", "commerce"),
        ("class.normal", "/cartoons"),
        ("class.critical", "POST /api/quote"),
    ]);
    assert_eq!(get("/cartoons/1"), Normal);
    assert_eq!(get("/cart"), Critical);
    assert_eq!(class_of(&RequestHead::new("POST", "/api/quote")), Critical);
    assert_eq!(get("/api/quote"), Normal);
}

/// The shed guest reads CMCD through the SDK's parser (`outpost_guest::cmcd`, whose
/// own tests cover the syntax); these are the reads it relies on.
#[test]
fn cmcd_parsing() {
    let c = Cmcd::parse(
        r#"bl=21300,br=3200,bs,cid="faec5fc2-ac30-11ea-bb37-0242ac130002",d=4004,dl=18500,mtp=48100,nor="..%2F300kbps%2Ftrack.m4v",nrr="12323-48763",ot=v,pr=1.08,rtp=12000,sf=d,sid="6e2fb550-c457-11e9-bb97-0800200c9a66",st=v,su,tb=6000"#,
    );
    assert_eq!(c.number("bl"), Some(21300));
    assert_eq!(c.number("dl"), Some(18500));
    assert_eq!(
        c.scalar_text("sid").as_deref(),
        Some("6e2fb550-c457-11e9-bb97-0800200c9a66")
    );
    assert_eq!(c.text("ot"), Some("v"));
    assert!(c.has("su") && c.has("bs"));
    assert_eq!(c.scalar_text("su"), None);
    assert_eq!(c.number("pr"), Some(1));
    assert_eq!(c.number("sid"), None);
    assert_eq!(c.scalar_text("d").as_deref(), Some("4004"));
    // Commas inside quotes, escaped quotes, junk: the bad members are skipped.
    let c = Cmcd::parse(r#"sid="a,b\"c",,=x,bl=7,dl=-5"#);
    assert_eq!(c.scalar_text("sid").as_deref(), Some("a,b\"c"));
    assert_eq!(c.number("bl"), Some(7));
    assert_eq!(c.number("dl"), None);
    assert!(Cmcd::parse("").is_empty());
    assert!(Cmcd::parse(" , ,").is_empty());
    // Headers first, then the query; the last occurrence wins.
    let req = RequestHead::get("/s.m4s?CMCD=bl%3D1%2Csid%3D%22q%22&x=1")
        .with_header("CMCD-Request", "bl=2")
        .with_header("cmcd-request", "dl=300");
    let c = Cmcd::from_request(&req);
    assert_eq!(c.number("bl"), Some(1));
    assert_eq!(c.number("dl"), Some(300));
    assert_eq!(c.scalar_text("sid").as_deref(), Some("q"));
    // Many keys: capped, no panic.
    let many: Vec<String> = (0..500).map(|i| format!("k{i}={i}")).collect();
    assert!(!Cmcd::parse(&many.join(",")).has("k499"));
}

#[test]
fn odd_requests_do_not_panic() {
    for profile in ["video", "commerce"] {
        configure(&[("profile", profile)]);
        for target in [
            "/",
            "//",
            "/.",
            "/..",
            "/a.",
            "/.m3u8",
            "/%ff%fe.ts",
            "/é/ü.mpd",
            "/init",
            "/init.",
            "/?CMCD=",
            "/?CMCD=%22",
            "/x?CMCD=ot%3D%22",
            "/x.m4s?CMCD=bl%3D99999999999999999999999",
        ] {
            let req = RequestHead::get(target)
                .with_header("cmcd-request", "\"unterminated,bl=,dl=1e400")
                .with_header("x-request-deadline", "99999999999999999999999")
                .with_header("sec-purpose", ";;,");
            let _ = admit(&req);
        }
    }
}
