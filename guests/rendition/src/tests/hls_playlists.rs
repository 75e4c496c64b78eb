//! HLS multivariant playlists: RFC 8216 samples, a 10-rung ladder, edge cases.

use super::*;
use crate::hls::{attribute, bandwidth, filter};
use crate::select::Caps;
use outpost_guest::testing;

/// RFC 8216 §8.4: Master Playlist.
pub const RFC_8_4: &str = "#EXTM3U
#EXT-X-STREAM-INF:BANDWIDTH=1280000,AVERAGE-BANDWIDTH=1000000
http://example.com/low.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=2560000,AVERAGE-BANDWIDTH=2000000
http://example.com/mid.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=7680000,AVERAGE-BANDWIDTH=6000000
http://example.com/hi.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=65000,CODECS=\"mp4a.40.5\"
http://example.com/audio-only.m3u8
";

/// RFC 8216 §8.5: Master Playlist with I-Frames.
pub const RFC_8_5: &str = "#EXTM3U
#EXT-X-STREAM-INF:BANDWIDTH=1280000
low/audio-video.m3u8
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=86000,URI=\"low/iframe.m3u8\"
#EXT-X-STREAM-INF:BANDWIDTH=2560000
mid/audio-video.m3u8
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=150000,URI=\"mid/iframe.m3u8\"
#EXT-X-STREAM-INF:BANDWIDTH=7680000
hi/audio-video.m3u8
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=550000,URI=\"hi/iframe.m3u8\"
#EXT-X-STREAM-INF:BANDWIDTH=65000,CODECS=\"mp4a.40.5\"
audio-only.m3u8
";

/// RFC 8216 §8.6: Master Playlist with Alternative Audio.
pub const RFC_8_6: &str = "#EXTM3U
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aac\",LANGUAGE=\"en\",NAME=\"English\",DEFAULT=YES,AUTOSELECT=YES,URI=\"main/english-audio.m3u8\"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aac\",LANGUAGE=\"de\",NAME=\"Deutsch\",DEFAULT=NO,AUTOSELECT=YES,URI=\"main/german-audio.m3u8\"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aac\",LANGUAGE=\"en\",NAME=\"Commentary\",DEFAULT=NO,AUTOSELECT=NO,URI=\"commentary/audio-only.m3u8\"
#EXT-X-STREAM-INF:BANDWIDTH=1280000,CODECS=\"...\",AUDIO=\"aac\"
low/video-only.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=2560000,CODECS=\"...\",AUDIO=\"aac\"
mid/video-only.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=7680000,CODECS=\"...\",AUDIO=\"aac\"
hi/video-only.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=65000,CODECS=\"mp4a.40.5\",AUDIO=\"aac\"
main/english-audio.m3u8
";

/// RFC 8216 §8.7: Master Playlist with Alternative Video.
pub const RFC_8_7: &str = "#EXTM3U
#EXT-X-MEDIA:TYPE=VIDEO,GROUP-ID=\"low\",NAME=\"Main\",DEFAULT=YES,URI=\"low/main/audio-video.m3u8\"
#EXT-X-MEDIA:TYPE=VIDEO,GROUP-ID=\"low\",NAME=\"Centerfield\",DEFAULT=NO,URI=\"low/centerfield/audio-video.m3u8\"
#EXT-X-MEDIA:TYPE=VIDEO,GROUP-ID=\"low\",NAME=\"Dugout\",DEFAULT=NO,URI=\"low/dugout/audio-video.m3u8\"
#EXT-X-STREAM-INF:BANDWIDTH=1280000,CODECS=\"...\",VIDEO=\"low\"
low/main/audio-video.m3u8
#EXT-X-MEDIA:TYPE=VIDEO,GROUP-ID=\"mid\",NAME=\"Main\",DEFAULT=YES,URI=\"mid/main/audio-video.m3u8\"
#EXT-X-MEDIA:TYPE=VIDEO,GROUP-ID=\"mid\",NAME=\"Centerfield\",DEFAULT=NO,URI=\"mid/centerfield/audio-video.m3u8\"
#EXT-X-MEDIA:TYPE=VIDEO,GROUP-ID=\"mid\",NAME=\"Dugout\",DEFAULT=NO,URI=\"mid/dugout/audio-video.m3u8\"
#EXT-X-STREAM-INF:BANDWIDTH=2560000,CODECS=\"...\",VIDEO=\"mid\"
mid/main/audio-video.m3u8
#EXT-X-MEDIA:TYPE=VIDEO,GROUP-ID=\"hi\",NAME=\"Main\",DEFAULT=YES,URI=\"hi/main/audio-video.m3u8\"
#EXT-X-MEDIA:TYPE=VIDEO,GROUP-ID=\"hi\",NAME=\"Centerfield\",DEFAULT=NO,URI=\"hi/centerfield/audio-video.m3u8\"
#EXT-X-MEDIA:TYPE=VIDEO,GROUP-ID=\"hi\",NAME=\"Dugout\",DEFAULT=NO,URI=\"hi/dugout/audio-video.m3u8\"
#EXT-X-STREAM-INF:BANDWIDTH=7680000,CODECS=\"...\",VIDEO=\"hi\"
hi/main/audio-video.m3u8
";

/// RFC 8216 §8.1: a media playlist.
pub const MEDIA: &str = "#EXTM3U
#EXT-X-TARGETDURATION:10
#EXT-X-VERSION:3
#EXTINF:9.009,
http://media.example.com/first.ts
#EXTINF:9.009,
http://media.example.com/second.ts
#EXTINF:3.003,
http://media.example.com/third.ts
#EXT-X-ENDLIST
";

/// The rungs of [`ladder`]: (BANDWIDTH, AVERAGE-BANDWIDTH, RESOLUTION, FRAME-RATE, video codec).
pub const RUNGS: [(u64, u64, &str, &str, &str); 10] = [
    (6_000_000, 5_000_000, "1920x1080", "30.000", "avc1.640028"),
    (
        4_500_000,
        3_800_000,
        "1920x1080",
        "30.000",
        "hvc1.2.4.L123.B0",
    ),
    (3_000_000, 2_600_000, "1280x720", "60.000", "avc1.4d401f"),
    (2_000_000, 1_700_000, "1280x720", "30.000", "avc1.4d401f"),
    (1_200_000, 1_000_000, "960x540", "29.970", "avc1.4d401f"),
    (900_000, 800_000, "960x540", "29.970", "av01.0.04M.08"),
    (600_000, 500_000, "640x360", "29.970", "avc1.42c01e"),
    (
        12_000_000,
        9_000_000,
        "3840x2160",
        "59.940",
        "hvc1.2.4.L153.B0",
    ),
    (400_000, 350_000, "480x270", "29.970", "avc1.42c015"),
    (200_000, 150_000, "416x234", "15.000", "avc1.42c00d"),
];

/// The `EXT-X-STREAM-INF` + URI lines of rung `i`.
pub fn rung(i: usize) -> String {
    let (bw, avg, res, fps, codec) = RUNGS[i];
    format!(
        "#EXT-X-STREAM-INF:BANDWIDTH={bw},AVERAGE-BANDWIDTH={avg},CODECS=\"{codec},mp4a.40.2\",RESOLUTION={res},FRAME-RATE={fps},AUDIO=\"aud\",SUBTITLES=\"subs\",CLOSED-CAPTIONS=NONE,PATHWAY-ID=\"cdn-a\"\nv{i}/index.m3u8\n"
    )
}

/// A 10-rung ladder with audio groups, subtitles, I-frame playlists,
/// SESSION-DATA, CONTENT-STEERING, LL-HLS and unknown tags, comments, blanks.
pub fn ladder() -> String {
    let mut s = String::from(
        "#EXTM3U
#EXT-X-VERSION:9
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-CONTENT-STEERING:SERVER-URI=\"https://steer.example.com/v1?video=42\",PATHWAY-ID=\"cdn-a\"
#EXT-X-SESSION-DATA:DATA-ID=\"com.example.title\",VALUE=\"Big, \\\"Buck\\\" Bunny\"
#EXT-X-SESSION-KEY:METHOD=SAMPLE-AES,URI=\"skd://key42\",KEYFORMAT=\"com.apple.streamingkeydelivery\"
#EXT-X-DEFINE:NAME=\"token\",VALUE=\"abc\"
#EXT-X-START:TIME-OFFSET=-12.0,PRECISE=YES
## packager: shaka 3.0, ladder v7

#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"English\",LANGUAGE=\"en\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"audio/en/index.m3u8\"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"Deutsch, Stereo\",LANGUAGE=\"de\",DEFAULT=NO,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"audio/de/index.m3u8\"
#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"subs\",NAME=\"English\",LANGUAGE=\"en\",DEFAULT=NO,AUTOSELECT=YES,URI=\"subs/en/index.m3u8\"
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.0
#EXT-X-PART-INF:PART-TARGET=0.33334
",
    );
    for i in 0..RUNGS.len() {
        s.push_str(&rung(i));
        if i == 4 {
            s.push_str("#EXT-X-VENDOR-HINT:foo=bar\n\n");
        }
    }
    s.push_str(
        "#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=9000000,CODECS=\"avc1.640028\",RESOLUTION=1920x1080,URI=\"v0/iframes.m3u8\"
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=300000,CODECS=\"avc1.42c01e\",RESOLUTION=640x360,URI=\"v6/iframes.m3u8\"
#EXT-X-IMAGE-STREAM-INF:BANDWIDTH=20000,RESOLUTION=320x180,CODECS=\"jpeg\",URI=\"thumbs/index.m3u8\"
",
    );
    s
}

/// The ladder with only rungs `kept` (the other lines all kept).
fn ladder_keeping(kept: &[usize]) -> String {
    let dropped: Vec<String> = (0..RUNGS.len())
        .filter(|i| !kept.contains(i))
        .map(rung)
        .collect();
    let refs: Vec<&str> = dropped.iter().map(String::as_str).collect();
    without(&ladder(), &refs)
}

#[test]
fn parses_attribute_lists() {
    let a = br#"CODECS="avc1.4d401f,mp4a.40.2",BANDWIDTH=3000000,RESOLUTION=1280x720"#;
    assert_eq!(attribute(a, b"BANDWIDTH"), Some(&b"3000000"[..]));
    assert_eq!(
        attribute(a, b"CODECS"),
        Some(&br#""avc1.4d401f,mp4a.40.2""#[..])
    );
    assert_eq!(attribute(a, b"RESOLUTION"), Some(&b"1280x720"[..]));
    assert_eq!(attribute(a, b"AUDIO"), None);
    let tricky = br#"NAME="x,BANDWIDTH=1",BANDWIDTH=42"#;
    assert_eq!(bandwidth(tricky), Some(42));
    assert_eq!(bandwidth(b"AVERAGE-BANDWIDTH=5,BANDWIDTH=7"), Some(7));
    assert_eq!(bandwidth(b"AVERAGE-BANDWIDTH=5"), None);
    assert_eq!(bandwidth(b"BANDWIDTH=12x"), None);
    assert_eq!(bandwidth(b"BANDWIDTH=-1"), None);
    assert_eq!(bandwidth(b"BANDWIDTH="), None);
    assert_eq!(bandwidth(b"BANDWIDTH=99999999999999999999999"), None);
    assert_eq!(bandwidth(br#"CODECS="unterminated,BANDWIDTH=5"#), None);
    assert_eq!(bandwidth(b"junk,BANDWIDTH=5"), Some(5));
    let v = crate::hls::parse_variant(
        br#"BANDWIDTH=5,AVERAGE-BANDWIDTH=4,CODECS="hvc1.1,mp4a.40.2",RESOLUTION=1280x720,FRAME-RATE=59.940"#,
    );
    assert_eq!(v.average_bandwidth, Some(4));
    assert_eq!(v.codecs, vec!["hvc1.1", "mp4a.40.2"]);
    assert_eq!((v.width, v.height), (Some(1280), Some(720)));
    assert_eq!(v.frame_rate, Some(59.94));
}

#[test]
fn rfc_8_4_bandwidth_cap() {
    let edit = run_with(&[("max_bandwidth", "3000000")], &hls_head(), RFC_8_4);
    assert_eq!(
        body_of(&edit),
        without(
            RFC_8_4,
            &[
                "#EXT-X-STREAM-INF:BANDWIDTH=7680000,AVERAGE-BANDWIDTH=6000000\nhttp://example.com/hi.m3u8\n"
            ]
        )
    );
    assert_eq!(
        report(&edit).as_deref(),
        Some("kept=3 dropped=1 cap=3000000")
    );
    assert!(edit.headers.contains(&HeaderOp::Remove("etag".into())));
}

#[test]
fn rfc_8_4_average_bandwidth() {
    // 2560000 peak / 2000000 average: dropped by peak, kept by average.
    let pairs = [("max_bandwidth", "2100000")];
    let edit = run_with(&pairs, &hls_head(), RFC_8_4);
    assert!(!body_of(&edit).contains("mid.m3u8"));
    let edit = run_with(
        &[pairs[0], ("use_average_bandwidth", "true")],
        &hls_head(),
        RFC_8_4,
    );
    assert!(body_of(&edit).contains("mid.m3u8"));
    assert!(!body_of(&edit).contains("hi.m3u8"));
}

#[test]
fn cap_below_everything_keeps_the_lowest_two() {
    let edit = run_with(&[("max_bandwidth", "1")], &hls_head(), RFC_8_4);
    assert_eq!(
        body_of(&edit),
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1280000,AVERAGE-BANDWIDTH=1000000\nhttp://example.com/low.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=65000,CODECS=\"mp4a.40.5\"\nhttp://example.com/audio-only.m3u8\n"
    );
    assert_eq!(report(&edit).as_deref(), Some("kept=2 dropped=2 cap=1"));
}

#[test]
fn rfc_8_5_keeps_i_frame_playlists() {
    let edit = run_with(&[("max_bandwidth", "2000000")], &hls_head(), RFC_8_5);
    assert_eq!(
        body_of(&edit),
        without(
            RFC_8_5,
            &[
                "#EXT-X-STREAM-INF:BANDWIDTH=2560000\nmid/audio-video.m3u8\n",
                "#EXT-X-STREAM-INF:BANDWIDTH=7680000\nhi/audio-video.m3u8\n"
            ]
        )
    );
    assert_eq!(
        body_of(&edit).matches("#EXT-X-I-FRAME-STREAM-INF").count(),
        3
    );
}

#[test]
fn rfc_8_6_and_8_7_keep_media_tags() {
    let edit = run_with(&[("max_bandwidth", "1300000")], &hls_head(), RFC_8_6);
    let body = body_of(&edit);
    assert_eq!(body.matches("#EXT-X-MEDIA:").count(), 3);
    assert!(body.contains("low/video-only.m3u8"));
    assert!(body.contains("main/english-audio.m3u8"));
    assert!(!body.contains("mid/video-only.m3u8"));
    let edit = run_with(&[("max_bandwidth", "3000000")], &hls_head(), RFC_8_7);
    assert_eq!(
        body_of(&edit),
        without(
            RFC_8_7,
            &[
                "#EXT-X-STREAM-INF:BANDWIDTH=7680000,CODECS=\"...\",VIDEO=\"hi\"\nhi/main/audio-video.m3u8\n"
            ]
        )
    );
}

#[test]
fn ladder_criteria() {
    let cases: &[Case] = &[
        (&[("max_height", "720")], &[2, 3, 4, 5, 6, 8, 9]),
        (&[("max_width", "960")], &[4, 5, 6, 8, 9]),
        (&[("deny_codecs", "hvc1,hev1")], &[0, 2, 3, 4, 5, 6, 8, 9]),
        (&[("deny_codecs", "AV01")], &[0, 1, 2, 3, 4, 6, 7, 8, 9]),
        (&[("allow_codecs", "avc1,mp4a")], &[0, 2, 3, 4, 6, 8, 9]),
        (&[("allow_codecs", "avc1")], &[8, 9]),
        (&[("max_frame_rate", "30")], &[0, 1, 3, 4, 5, 6, 8, 9]),
        (&[("max_frame_rate", "30000/1001")], &[4, 5, 6, 8, 9]),
        (&[("max_bandwidth", "1500000")], &[4, 5, 6, 8, 9]),
        (
            &[
                ("max_bandwidth", "1500000"),
                ("use_average_bandwidth", "yes"),
            ],
            &[4, 5, 6, 8, 9],
        ),
        (
            &[
                ("max_bandwidth", "1000000"),
                ("use_average_bandwidth", "yes"),
            ],
            &[4, 5, 6, 8, 9],
        ),
        (
            &[
                ("max_height", "720"),
                ("max_frame_rate", "30"),
                ("deny_codecs", "av01"),
            ],
            &[3, 4, 6, 8, 9],
        ),
        (&[("max_height", "100")], &[8, 9]),
    ];
    for (pairs, kept) in cases {
        let edit = run_with(pairs, &hls_head(), &ladder());
        assert_eq!(body_of(&edit), ladder_keeping(kept), "{pairs:?}");
        let want = format!("kept={} dropped={}", kept.len(), RUNGS.len() - kept.len());
        assert!(
            report(&edit).is_some_and(|r| r.starts_with(&want)),
            "{pairs:?}"
        );
    }
}

#[test]
fn crlf_is_preserved() {
    let crlf = ladder().replace('\n', "\r\n");
    let pairs = [("max_height", "720")];
    let edit = run_with(&pairs, &hls_head(), &crlf);
    let body = body_of(&edit);
    assert!(!body.replace("\r\n", "").contains('\n'));
    assert_eq!(
        body,
        ladder_keeping(&[2, 3, 4, 5, 6, 8, 9]).replace('\n', "\r\n")
    );
}

#[test]
fn nothing_to_drop_is_an_empty_edit() {
    assert!(run_with(&[], &hls_head(), &ladder()).is_empty());
    assert!(run_with(&[("max_bandwidth", "100000000")], &hls_head(), &ladder()).is_empty());
    assert!(run_with(&[("max_bandwidth", "1")], &hls_head(), MEDIA).is_empty());
}

#[test]
fn other_bodies_pass_through() {
    let pairs = [("max_bandwidth", "1")];
    let json = ResponseHead::new(200).with_header("content-type", "application/json");
    assert!(run_with(&pairs, &json, "{\"a\":1}").is_empty());
    assert!(run_with(&pairs, &hls_head(), "").is_empty());
    // Typed as HLS but not `#EXTM3U` first.
    let late = format!("\n{RFC_8_4}");
    assert!(run_with(&pairs, &hls_head(), &late).is_empty());
    // Not UTF-8.
    let mut bad = RFC_8_4.as_bytes().to_vec();
    bad.extend_from_slice(b"#X:\xff\xfe\n");
    let edit = respond(
        &config(&pairs),
        &LoadSignals::default(),
        &RequestHead::get("/m.m3u8"),
        &hls_head(),
        Some(&bad),
    );
    assert!(edit.is_empty());
    // Not a 200.
    let partial = ResponseHead::new(206).with_header("content-type", "application/x-mpegURL");
    assert!(run_with(&pairs, &partial, RFC_8_4).is_empty());
    let missing = ResponseHead::new(404);
    assert!(run_with(&pairs, &missing, RFC_8_4).is_empty());
    // No body handed over.
    let edit = respond(
        &config(&pairs),
        &LoadSignals::default(),
        &RequestHead::get("/m.m3u8"),
        &hls_head(),
        None,
    );
    assert!(edit.is_empty());
}

#[test]
fn sniffs_and_keeps_a_bom() {
    let octet = ResponseHead::new(200).with_header("content-type", "application/octet-stream");
    let edit = run_with(&[("max_bandwidth", "1000000")], &octet, &ladder());
    assert!(report(&edit).is_some_and(|r| r.starts_with("kept=4 dropped=6")));
    let bom = format!("\u{feff}{RFC_8_4}");
    let edit = run_with(&[("max_bandwidth", "1")], &ResponseHead::new(200), &bom);
    assert!(body_of(&edit).starts_with("\u{feff}#EXTM3U\n"));
}

#[test]
fn missing_final_newline_is_kept() {
    let body = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=2000\na.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=500\nb.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=600\nc.m3u8";
    assert_eq!(
        body_of(&run_with(&[("max_bandwidth", "1000")], &hls_head(), body)),
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=500\nb.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=600\nc.m3u8"
    );
}

#[test]
fn unjudgeable_variants_are_kept_untouched() {
    let body = "#EXTM3U
#EXT-X-STREAM-INF:BANDWIDTH=abc,RESOLUTION=1920x1080
weird.m3u8
#EXT-X-STREAM-INF:RESOLUTION=1280x720
nobw.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=5000000
hi.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=700000
lo.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=9000000
";
    let edit = run_with(&[("max_bandwidth", "1000000")], &hls_head(), body);
    assert_eq!(
        body_of(&edit),
        without(body, &["#EXT-X-STREAM-INF:BANDWIDTH=5000000\nhi.m3u8\n"])
    );
    assert_eq!(
        report(&edit).as_deref(),
        Some("kept=3 dropped=1 cap=1000000")
    );
}

#[test]
fn blank_lines_and_comments_between_tag_and_uri() {
    let body = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=5000\n\n# note\nhi.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=100\nlo.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=200\nmid.m3u8\n";
    assert_eq!(
        body_of(&run_with(&[("max_bandwidth", "1000")], &hls_head(), body)),
        "#EXTM3U\n\n# note\n#EXT-X-STREAM-INF:BANDWIDTH=100\nlo.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=200\nmid.m3u8\n"
    );
}

#[test]
fn ties_at_the_lowest_bandwidth_are_all_kept() {
    let body = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=100,CODECS=\"hvc1\"\na.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=100,CODECS=\"avc1\"\nb.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=200\nc.m3u8\n";
    let edit = run_with(&[("max_bandwidth", "1")], &hls_head(), body);
    assert_eq!(report(&edit).as_deref(), Some("kept=2 dropped=1 cap=1"));
    // The lowest survives a deny-list that matches it.
    let edit = run_with(&[("deny_codecs", "hvc1,avc1")], &hls_head(), body);
    assert!(edit.is_empty());
}

#[test]
fn arbitrary_bytes_never_panic() {
    let pieces: [&[u8]; 14] = [
        b"#EXTM3U\n",
        b"#EXT-X-STREAM-INF:",
        b"BANDWIDTH=",
        b"123",
        b",",
        b"\"",
        b"=",
        b"\r\n",
        b"\n",
        b"x.m3u8",
        b"\xff\xfe",
        b"CODECS=\"a,b\"",
        b"RESOLUTION=1x",
        b"FRAME-RATE=1/0",
    ];
    let caps = Caps {
        max_bandwidth: Some(100),
        max_height: Some(1),
        max_frame_rate: Some(1.0),
        deny_codecs: vec!["a".into()],
        ..Caps::default()
    };
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    for _ in 0..3000 {
        let mut body = Vec::new();
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        for _ in 0..(state >> 60) * 3 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            body.extend_from_slice(pieces[(state >> 33) as usize % pieces.len()]);
        }
        if let Some(f) = filter(&body, &caps, false) {
            assert!(f.body.len() <= body.len());
        }
        let _ = bandwidth(&body);
    }
}

#[test]
fn the_hook_reads_the_host_config() {
    testing::reset();
    testing::set_config(&[("max_height", "720")]);
    let edit = run_hook(&RequestHead::get("/m.m3u8"), &hls_head(), &ladder());
    assert_eq!(body_of(&edit), ladder_keeping(&[2, 3, 4, 5, 6, 8, 9]));
    // A bad value is ignored at runtime (the check refuses it at load).
    testing::set_config(&[("max_height", "tall"), ("max_bandwidth", "1500000")]);
    let edit = run_hook(&RequestHead::get("/m.m3u8"), &hls_head(), &ladder());
    assert_eq!(body_of(&edit), ladder_keeping(&[4, 5, 6, 8, 9]));
}
