//! Policies: client classes, routes, brownout with hysteresis, CMCD, CMSD,
//! and the config check.

use super::hls_playlists::{RFC_8_4, ladder};
use super::*;
use crate::cmsd;
use crate::policy::{ClientClass, LEVEL_HEADER, Step, brownout_level};
use outpost_guest::{CheckContext, ConfigCheck, ConfigProblem, testing};

const STEPS: [Step; 2] = [
    Step {
        threshold: 0.8,
        cap: 3_000_000,
    },
    Step {
        threshold: 1.0,
        cap: 1_500_000,
    },
];

/// Feed `utilizations` in order, each call seeing the previous level.
fn walk(utilizations: &[f32], hysteresis: f32) -> Vec<usize> {
    let mut level = 0;
    utilizations
        .iter()
        .map(|u| {
            level = brownout_level(*u, level, &STEPS, hysteresis);
            level
        })
        .collect()
}

#[test]
fn hysteresis_table() {
    // (utilization, previous, expected)
    let cases: &[(f32, usize, usize)] = &[
        (0.0, 0, 0),
        (0.79, 0, 0),
        (0.8, 0, 1),
        (0.99, 0, 1),
        (1.0, 0, 2),
        (5.0, 0, 2),
        (0.75, 1, 1),
        (0.71, 1, 1),
        (0.69, 1, 0),
        (0.95, 2, 2),
        (0.91, 2, 2),
        (0.89, 2, 1),
        (0.5, 2, 0),
        (0.85, 2, 1),
        (0.75, 2, 1),
        // A previous level beyond the ladder is clamped by what still holds.
        (1.5, 9, 2),
        (0.85, 9, 1),
        (f32::NAN, 2, 0),
        (f32::INFINITY, 0, 0),
        (-1.0, 1, 0),
    ];
    for (u, prev, want) in cases {
        assert_eq!(
            brownout_level(*u, *prev, &STEPS, 0.1),
            *want,
            "u={u} prev={prev}"
        );
    }
    assert_eq!(brownout_level(0.9, 1, &[], 0.1), 0);
    // No hysteresis: plain thresholds.
    assert_eq!(brownout_level(0.79, 1, &STEPS, 0.0), 0);
}

#[test]
fn hysteresis_sequences_do_not_flap() {
    let rising = [0.5, 0.7, 0.79, 0.8, 0.85, 0.95, 0.99, 1.0, 1.1];
    assert_eq!(walk(&rising, 0.1), vec![0, 0, 0, 1, 1, 1, 1, 2, 2]);
    let falling = [1.1, 1.0, 0.95, 0.92, 0.88, 0.8, 0.75, 0.72, 0.68, 0.5];
    assert_eq!(walk(&falling, 0.1), vec![2, 2, 2, 2, 1, 1, 1, 1, 0, 0]);
    // Noise around a threshold: engaged once, stays engaged.
    let noisy = [0.78, 0.81, 0.78, 0.82, 0.76, 0.8, 0.79, 0.77];
    assert_eq!(walk(&noisy, 0.1), vec![0, 1, 1, 1, 1, 1, 1, 1]);
    let noisy_top = [0.99, 1.01, 0.97, 1.0, 0.93, 0.98];
    assert_eq!(walk(&noisy_top, 0.1), vec![1, 2, 2, 2, 2, 2]);
    // Without hysteresis the same noise flaps.
    assert_eq!(walk(&noisy, 0.0), vec![0, 1, 0, 1, 0, 1, 0, 0]);
    // Level changes are monotone along a monotone sequence.
    let ramp: Vec<f32> = (0..=120).map(|i| i as f32 / 100.0).collect();
    let up = walk(&ramp, 0.1);
    assert!(up.windows(2).all(|w| w[0] <= w[1]));
    let down: Vec<f32> = ramp.iter().rev().copied().collect();
    let levels = walk(&down, 0.1);
    assert!(levels.windows(2).all(|w| w[0] >= w[1]));
}

fn req() -> RequestHead {
    RequestHead::get("/master.m3u8")
}

fn run_req(pairs: &[(&str, &str)], load: f32, req: &RequestHead) -> ResponseEdit {
    respond(
        &config(pairs),
        &LoadSignals::with_utilization(load),
        req,
        &hls_head(),
        Some(ladder().as_bytes()),
    )
}

fn variants_in(edit: &ResponseEdit) -> usize {
    body_of(edit).matches("#EXT-X-STREAM-INF:").count()
}

const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

#[test]
fn user_agent_table() {
    let cases = [
        (IPHONE, ClientClass::Mobile),
        (GOOGLEBOT, ClientClass::Bot),
        (
            "Mozilla/5.0 (iPad; CPU OS 16_0 like Mac OS X)",
            ClientClass::Tablet,
        ),
        (
            "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 Safari/537.36",
            ClientClass::Tablet,
        ),
        (
            "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 Mobile Safari/537.36",
            ClientClass::Mobile,
        ),
        ("Roku/DVP-12.0 (12.0.0.4182-88)", ClientClass::Tv),
        (
            "AppleCoreMedia/1.0.0.20L498 (Apple TV; U; CPU OS 16_4 like Mac OS X)",
            ClientClass::Tv,
        ),
        (
            "Mozilla/5.0 (SMART-TV; Linux; Tizen 6.0) AppleWebKit/537.36",
            ClientClass::Tv,
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120 Safari/537.36",
            ClientClass::Desktop,
        ),
    ];
    for (ua, want) in cases {
        assert_eq!(ClientClass::from_user_agent(ua), Some(want), "{ua}");
    }
    assert_eq!(ClientClass::from_user_agent("  "), None);
    assert_eq!(ClientClass::parse(" TV "), Some(ClientClass::Tv));
    assert_eq!(ClientClass::parse("watch"), None);
}

#[test]
fn class_caps() {
    let pairs = [
        ("class.mobile.max_height", "720"),
        ("class.bot.max_bandwidth", "800000"),
        ("class.tv.deny_codecs", "av01"),
    ];
    let mobile = req().with_header("x-client-class", "mobile");
    let edit = run_req(&pairs, 0.0, &mobile);
    assert_eq!(variants_in(&edit), 7);
    assert!(report(&edit).is_some_and(|r| r.ends_with("height=720 class=mobile")));
    // The User-Agent when the header is absent.
    let ua = req().with_header("user-agent", IPHONE);
    assert_eq!(body_of(&run_req(&pairs, 0.0, &ua)), body_of(&edit));
    let bot = req().with_header("user-agent", GOOGLEBOT);
    let edit = run_req(&pairs, 0.0, &bot);
    assert_eq!(variants_in(&edit), 3);
    // The header wins over the User-Agent.
    let tv = req()
        .with_header("user-agent", GOOGLEBOT)
        .with_header("X-Client-Class", "tv");
    assert_eq!(variants_in(&run_req(&pairs, 0.0, &tv)), 9);
    // Desktop has no caps here; an unknown header value falls back to the UA.
    let desk = req().with_header("x-client-class", "fridge");
    assert!(run_req(&pairs, 0.0, &desk).is_empty());
    // A custom class header.
    let custom = [("class_header", "X-Device"), pairs[0]];
    let dev = req().with_header("x-device", "mobile");
    assert_eq!(variants_in(&run_req(&custom, 0.0, &dev)), 7);
    // Class caps merge with global caps: the tighter wins.
    let both = [("max_height", "540"), pairs[0]];
    assert_eq!(variants_in(&run_req(&both, 0.0, &mobile)), 5);
}

#[test]
fn route_caps() {
    let pairs = [
        ("route.live.max_bandwidth", "1000000"),
        ("route.vod.max_height", "2160"),
    ];
    let mut live = req();
    live.route = "live".into();
    assert_eq!(variants_in(&run_req(&pairs, 0.0, &live)), 4);
    let mut vod = req();
    vod.route = "vod".into();
    assert!(run_req(&pairs, 0.0, &vod).is_empty());
    assert!(run_req(&pairs, 0.0, &req()).is_empty());
}

const LADDER_CFG: [(&str, &str); 1] = [("brownout", "0.8 3000000\n1.0 1500000")];

#[test]
fn brownout_ladder() {
    let edit = run_req(&LADDER_CFG, 0.5, &req());
    assert!(edit.body.is_none());
    assert_eq!(header(&edit, LEVEL_HEADER).as_deref(), Some("0"));
    assert_eq!(header(&edit, cmsd::DYNAMIC), None);
    let edit = run_req(&LADDER_CFG, 0.85, &req());
    assert_eq!(variants_in(&edit), 7);
    assert_eq!(header(&edit, LEVEL_HEADER).as_deref(), Some("1"));
    assert_eq!(
        header(&edit, cmsd::DYNAMIC).as_deref(),
        Some("\"outpost\";mb=3000")
    );
    assert!(report(&edit).is_some_and(|r| r == "kept=7 dropped=3 cap=3000000 level=1"));
    let edit = run_req(&LADDER_CFG, 1.2, &req());
    assert_eq!(variants_in(&edit), 5);
    assert_eq!(header(&edit, LEVEL_HEADER).as_deref(), Some("2"));
    assert_eq!(
        outpost_guest::testing::shared()
            .get(&crate::policy::level_key("default"))
            .map(String::as_str),
        Some("2"),
        "the engaged level is kept in the node's shared store"
    );
    // Hysteresis across requests: after level 2, 0.75 still holds level 1 ...
    assert_eq!(variants_in(&run_req(&LADDER_CFG, 0.75, &req())), 7);
    // ... until the load falls below 0.8 - 0.1; rising back to 0.75 does not re-engage.
    assert!(run_req(&LADDER_CFG, 0.65, &req()).body.is_none());
    assert!(run_req(&LADDER_CFG, 0.75, &req()).body.is_none());
    // A client cannot steer the ladder with the response header.
    let forged = req().with_header(LEVEL_HEADER, "2");
    assert!(run_req(&LADDER_CFG, 0.75, &forged).body.is_none());
}

#[test]
fn playing_sessions_lose_the_top_one_step_later() {
    let playing = req()
        .with_header("cmcd-session", "sid=\"s1\"")
        .with_header("cmcd-request", "bl=12000");
    // Level 1 engaged: new sessions are capped, playing ones not yet.
    assert_eq!(variants_in(&run_req(&LADDER_CFG, 0.85, &req())), 7);
    let edit = run_req(&LADDER_CFG, 0.85, &playing);
    assert!(edit.body.is_none());
    assert_eq!(header(&edit, LEVEL_HEADER).as_deref(), Some("1"));
    // Level 2: new sessions get step 2, playing ones step 1.
    assert_eq!(variants_in(&run_req(&LADDER_CFG, 1.1, &req())), 5);
    assert_eq!(variants_in(&run_req(&LADDER_CFG, 1.1, &playing)), 7);
    // `sid` alone (a startup) is a new session.
    let starting = req().with_header("cmcd-session", "sid=\"s2\"");
    assert_eq!(variants_in(&run_req(&LADDER_CFG, 0.85, &starting)), 7);
    // mtp via the query string counts as well.
    let q = RequestHead::get("/master.m3u8?CMCD=sid%3D%22s3%22%2Cmtp%3D9000");
    assert!(run_req(&LADDER_CFG, 0.85, &q).body.is_none());
}

#[test]
fn legacy_brownout_keys_are_a_one_step_ladder() {
    let pairs = [
        ("max_bandwidth", "4000000"),
        ("brownout_utilization", "0.8"),
        ("brownout_max_bandwidth", "1000000"),
    ];
    assert_eq!(variants_in(&run_req(&pairs, 0.5, &req())), 7);
    let edit = run_req(&pairs, 0.8, &req());
    assert_eq!(variants_in(&edit), 4);
    assert!(report(&edit).is_some_and(|r| r.starts_with("kept=4 dropped=6 cap=1000000")));
}

#[test]
fn cmcd_throughput_caps() {
    let pairs = [("cmcd_use_throughput", "true")];
    let mtp = req().with_header("cmcd-request", "mtp=2000");
    // 2000 kbps * 0.8 = 1.6 Mbps.
    let edit = run_req(&pairs, 0.0, &mtp);
    assert!(report(&edit).is_some_and(|r| r.starts_with("kept=5 dropped=5 cap=1600000")));
    let factor = [pairs[0], ("cmcd_throughput_factor", "1.0")];
    assert!(report(&run_req(&factor, 0.0, &mtp)).is_some_and(|r| r.contains("cap=2000000")));
    let tb = req().with_header("cmcd-object", "tb=1000");
    assert!(report(&run_req(&pairs, 0.0, &tb)).is_some_and(|r| r.contains("cap=1000000")));
    // Off by default; malformed CMCD is ignored.
    assert!(run_req(&[], 0.0, &tb).body.is_none());
    let bad = req().with_header("cmcd-request", "mtp=fast,,\"");
    assert!(run_req(&pairs, 0.0, &bad).is_empty());
}

#[test]
fn cmsd_on_segments_and_manifests() {
    let pairs = [("cmsd_etp_kbps", "20000"), ("brownout", "0.8 3000000")];
    let seg = ResponseHead::new(200)
        .with_header("content-type", "video/mp4")
        .with_header("cmsd-static", "ot=v,sf=h,st=v,\"d\"=4000");
    let r = RequestHead::get("/v3/seg42.m4s?token=1");
    let idle = respond(
        &config(&pairs),
        &LoadSignals::with_utilization(0.2),
        &r,
        &seg,
        None,
    );
    assert_eq!(
        idle.headers,
        vec![
            HeaderOp::Set(outpost_guest::Header::new(LEVEL_HEADER, "0")),
            HeaderOp::Append(outpost_guest::Header::new(
                "cmsd-dynamic",
                "\"outpost\";etp=20000"
            )),
        ]
    );
    assert_eq!((idle.status, idle.body.clone()), (None, None));
    // Overloaded: etp shrinks with utilization above 1, mb appears.
    let busy = respond(
        &config(&pairs),
        &LoadSignals::with_utilization(2.0),
        &r,
        &seg,
        None,
    );
    assert_eq!(
        header(&busy, "cmsd-dynamic").as_deref(),
        Some("\"outpost\";etp=10000;mb=3000")
    );
    // CMCD mtp is the throughput estimate when the player sends it.
    let with_mtp = r.clone().with_header("cmcd-request", "mtp=7000");
    let e = respond(
        &config(&pairs),
        &LoadSignals::with_utilization(0.2),
        &with_mtp,
        &seg,
        None,
    );
    assert_eq!(
        header(&e, "cmsd-dynamic").as_deref(),
        Some("\"outpost\";etp=7000")
    );
    // The origin's CMSD-Static is never removed.
    assert!(
        !busy
            .headers
            .iter()
            .any(|op| matches!(op, HeaderOp::Remove(n) if n.starts_with("cmsd")))
    );
    // `cmsd = false` turns it off; errors get nothing.
    let off = [pairs[0], ("cmsd", "false")];
    assert!(respond(&config(&off), &LoadSignals::default(), &r, &seg, None).is_empty());
    let err = ResponseHead::new(503);
    assert!(
        respond(
            &config(&pairs),
            &LoadSignals::with_utilization(2.0),
            &r,
            &err,
            None
        )
        .is_empty()
    );
    // A manifest: body edit plus CMSD.
    let m = respond(
        &config(&pairs),
        &LoadSignals::with_utilization(0.9),
        &req(),
        &hls_head(),
        Some(RFC_8_4.as_bytes()),
    );
    assert!(!body_of(&m).contains("hi.m3u8"));
    assert_eq!(
        header(&m, "cmsd-dynamic").as_deref(),
        Some("\"outpost\";etp=20000;mb=3000")
    );
}

fn check(pairs: &[(&str, &str)]) -> Vec<ConfigProblem> {
    testing::reset();
    testing::set_config(pairs);
    Rendition::check_config(&CheckContext::default())
}

#[test]
fn check_accepts_a_full_config() {
    let good = [
        ("max_bandwidth", "8000000"),
        ("max_width", "1920"),
        ("max_height", "1080"),
        ("max_frame_rate", "60"),
        ("deny_codecs", "hvc1, hev1"),
        ("allow_codecs", "avc1,mp4a,ec-3,av01"),
        ("use_average_bandwidth", "true"),
        ("class_header", "x-client-class"),
        ("class.mobile.max_height", "720"),
        ("class.bot.max_bandwidth", "800000"),
        ("class.tv.max_frame_rate", "30000/1001"),
        ("route.live-sports.max_bandwidth", "6000000"),
        ("route.vod.deny_codecs", "av01"),
        ("brownout", "0.8 3000000\n1.0 1500000\n1.5 800000"),
        ("brownout_hysteresis", "0.15"),
        ("cmcd_use_throughput", "on"),
        ("cmcd_throughput_factor", "0.7"),
        ("cmsd", "true"),
        ("cmsd_etp_kbps", "50000"),
    ];
    assert_eq!(check(&good), vec![]);
    assert_eq!(check(&[]), vec![]);
    assert_eq!(
        check(&[
            ("brownout_utilization", "0.8"),
            ("brownout_max_bandwidth", "1000000")
        ]),
        vec![]
    );
}

#[test]
fn check_reports_every_bad_value() {
    let bad = [
        ("max_bandwidth", "3 Mbps"),
        ("max_width", "-1"),
        ("max_height", "1080p"),
        ("max_frame_rate", "0"),
        ("deny_codecs", " , "),
        ("allow_codecs", "avc1;mp4a"),
        ("use_average_bandwidth", "maybe"),
        ("class_header", "x client"),
        ("class.phone.max_height", "720"),
        ("class.mobile.max_depth", "3"),
        ("class.mobile", "720"),
        ("route..max_bandwidth", "1"),
        ("route.live.max_bandwidth", "lots"),
        ("brownout_hysteresis", "2"),
        ("cmcd_use_throughput", "sure"),
        ("cmcd_throughput_factor", "0"),
        ("cmsd", "1.5"),
        ("cmsd_etp_kbps", "fast"),
        ("max_bandwith", "1"),
    ];
    let problems = check(&bad);
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    let mut want: Vec<&str> = bad.iter().map(|(k, _)| *k).collect();
    want.sort_unstable();
    assert_eq!(keys, want, "{problems:#?}");
    assert!(
        problems
            .iter()
            .all(|p| p.item.is_none() && !p.message.is_empty())
    );
}

#[test]
fn check_reports_brownout_items() {
    let problems = check(&[(
        "brownout",
        "0.8 3000000\nhigh 2000000\n0.7 1000000\n1.0 5000000\n1.2\n1.3 1 2",
    )]);
    let items: Vec<(Option<u32>, &str)> =
        problems.iter().map(|p| (p.item, p.key.as_str())).collect();
    assert_eq!(
        items,
        vec![
            (Some(1), "brownout"),
            (Some(2), "brownout"),
            (Some(3), "brownout"),
            (Some(4), "brownout"),
            (Some(5), "brownout"),
        ]
    );
    assert_eq!(
        check(&[
            ("brownout", "0.8 3000000"),
            ("brownout_utilization", "0.8"),
            ("brownout_max_bandwidth", "1")
        ])
        .len(),
        1
    );
    assert_eq!(check(&[("brownout_utilization", "0.8")]).len(), 1);
    assert_eq!(check(&[("brownout_max_bandwidth", "1")]).len(), 1);
    assert_eq!(
        check(&[
            ("brownout_utilization", "NaN"),
            ("brownout_max_bandwidth", "1")
        ])
        .len(),
        1
    );
    assert_eq!(check(&[("brownout", "")]).len(), 1);
}
