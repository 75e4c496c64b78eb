//! `rendition`: a response guest that drops the variants of an HLS multivariant
//! playlist whose `BANDWIDTH` exceeds a cap, tighter under load. See README.md.

use outpost_guest::{RequestHead, ResponseEdit, ResponseHead, ResponseHook, host};

/// The header added when the guest filtered a playlist.
pub const REPORT_HEADER: &str = "x-outpost-rendition";

const STREAM_INF: &[u8] = b"#EXT-X-STREAM-INF:";

/// Media types of HLS playlists (compared lower-case).
const PLAYLIST_TYPES: [&str; 4] = [
    "application/vnd.apple.mpegurl",
    "application/x-mpegurl",
    "audio/mpegurl",
    "audio/x-mpegurl",
];

/// The guest.
pub struct Rendition;

impl ResponseHook for Rendition {
    fn on_response(_req: &RequestHead, resp: &ResponseHead, body: Option<&[u8]>) -> ResponseEdit {
        let Some(body) = body else {
            return ResponseEdit::default();
        };
        if resp.status != 200 || !is_multivariant(resp, body) {
            return ResponseEdit::default();
        }
        let Some(cap) = Config::from_host().effective_cap() else {
            return ResponseEdit::default();
        };
        match filter_playlist(body, cap) {
            Some(f) if f.dropped > 0 => ResponseEdit::default()
                .set_header(
                    REPORT_HEADER,
                    &format!("kept={} dropped={} cap={cap}", f.kept, f.dropped),
                )
                // The body differs from the origin's: its validator no longer applies.
                .remove_header("etag")
                .body(f.body),
            _ => ResponseEdit::default(),
        }
    }
}

outpost_guest::export_response!(Rendition);

/// The guest's configuration.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    /// `max_bandwidth`: the cap in bits/s; `None` = no cap.
    pub max_bandwidth: Option<u64>,
    /// `brownout_utilization`: the load at which the brownout cap applies.
    pub brownout_utilization: Option<f32>,
    /// `brownout_max_bandwidth`: the cap in bits/s during a brownout.
    pub brownout_max_bandwidth: Option<u64>,
}

impl Config {
    /// Read the configuration; bad values are logged and ignored.
    pub fn from_host() -> Self {
        let brownout_utilization = host::config_parse::<f32>("brownout_utilization").filter(|u| {
            let ok = u.is_finite() && *u >= 0.0;
            if !ok {
                host::warn("config `brownout_utilization`: must be a number >= 0; ignored");
            }
            ok
        });
        let brownout_max_bandwidth = host::config_parse::<u64>("brownout_max_bandwidth");
        if brownout_utilization.is_some() && brownout_max_bandwidth.is_none() {
            host::warn(
                "config `brownout_utilization` is set without `brownout_max_bandwidth`; no brownout",
            );
        }
        Self {
            max_bandwidth: host::config_parse::<u64>("max_bandwidth"),
            brownout_utilization,
            brownout_max_bandwidth,
        }
    }

    /// The cap in force now: `max_bandwidth`, lowered to `brownout_max_bandwidth`
    /// when `load().utilization >= brownout_utilization`. Reads the load only when
    /// a brownout is configured.
    pub fn effective_cap(&self) -> Option<u64> {
        let brownout = match (self.brownout_utilization, self.brownout_max_bandwidth) {
            (Some(threshold), Some(cap)) if host::load().utilization >= threshold => Some(cap),
            _ => None,
        };
        match (self.max_bandwidth, brownout) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Is this response an HLS multivariant playlist? By content type, or by a body
/// that starts with `#EXTM3U` and has an `#EXT-X-STREAM-INF` tag.
pub fn is_multivariant(resp: &ResponseHead, body: &[u8]) -> bool {
    let typed = resp
        .content_type()
        .is_some_and(|t| PLAYLIST_TYPES.contains(&t.as_str()));
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    (typed || body.starts_with(b"#EXTM3U")) && contains(body, STREAM_INF)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The outcome of filtering a multivariant playlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filtered {
    /// The new playlist.
    pub body: Vec<u8>,
    /// Variants kept (including those whose `BANDWIDTH` could not be read).
    pub kept: usize,
    /// Variants dropped.
    pub dropped: usize,
}

/// A line without its terminator (`\n` or `\r\n`).
fn content(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn is_blank(line: &[u8]) -> bool {
    content(line).iter().all(u8::is_ascii_whitespace)
}

fn is_uri_line(line: &[u8]) -> bool {
    !is_blank(line) && !line.starts_with(b"#")
}

/// Drop the variants (an `#EXT-X-STREAM-INF` line and its URI line) whose
/// `BANDWIDTH` exceeds `cap`, always keeping the lowest-bandwidth variant(s).
/// Every other byte is kept as is. Variants with a missing or malformed
/// `BANDWIDTH`, or without a URI line, are kept untouched. `None` when `body`
/// has no well-formed variant.
pub fn filter_playlist(body: &[u8], cap: u64) -> Option<Filtered> {
    let lines: Vec<&[u8]> = body.split_inclusive(|&b| b == b'\n').collect();

    // Pair each STREAM-INF line with its URI line: the next line that is neither
    // blank nor a tag or comment. A STREAM-INF followed by another STREAM-INF
    // before any URI has no URI of its own and is left alone.
    let mut variants: Vec<(usize, usize, Option<u64>)> = Vec::new();
    let mut open: Option<usize> = None;
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with(STREAM_INF) {
            open = Some(i);
        } else if is_uri_line(line)
            && let Some(start) = open.take()
        {
            let attrs = &content(lines[start])[STREAM_INF.len()..];
            variants.push((start, i, bandwidth(attrs)));
        }
    }
    let lowest = variants.iter().filter_map(|v| v.2).min()?;

    let mut drop = vec![false; lines.len()];
    let mut dropped = 0;
    for &(start, uri, bw) in &variants {
        if let Some(bw) = bw
            && bw > cap
            && bw > lowest
        {
            drop[start] = true;
            drop[uri] = true;
            dropped += 1;
        }
    }
    let mut out = Vec::with_capacity(body.len());
    for (line, gone) in lines.iter().zip(&drop) {
        if !gone {
            out.extend_from_slice(line);
        }
    }
    Some(Filtered {
        body: out,
        kept: variants.len() - dropped,
        dropped,
    })
}

/// The `BANDWIDTH` of an attribute list (its first occurrence), when it is a
/// valid decimal-integer.
pub fn bandwidth(attrs: &[u8]) -> Option<u64> {
    let value = attribute(attrs, b"BANDWIDTH")?;
    if value.is_empty() || value.len() > 20 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// The raw value of attribute `name` in an HLS attribute list (RFC 8216 §4.2):
/// `NAME=VALUE` pairs separated by commas, where a quoted-string value may
/// itself contain commas. Quotes are kept in the returned value.
pub fn attribute<'a>(attrs: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let mut rest = attrs;
    loop {
        let eq = rest.iter().position(|&b| b == b'=' || b == b',')?;
        if rest[eq] == b',' {
            // A malformed piece without `=`: skip it.
            rest = &rest[eq + 1..];
            continue;
        }
        let key = rest[..eq].trim_ascii();
        let after = &rest[eq + 1..];
        let (value, next) = if after.first() == Some(&b'"') {
            match after[1..].iter().position(|&b| b == b'"') {
                Some(close) => {
                    let end = close + 2;
                    (&after[..end], &after[end..])
                }
                None => (after, &after[after.len()..]),
            }
        } else {
            match after.iter().position(|&b| b == b',') {
                Some(comma) => (&after[..comma], &after[comma..]),
                None => (after, &after[after.len()..]),
            }
        };
        if key == name {
            return Some(value.trim_ascii());
        }
        // Skip to just past the next comma.
        let comma = next.iter().position(|&b| b == b',')?;
        rest = &next[comma + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_guest::{HeaderOp, LoadSignals, LogLevel, testing};

    /// RFC 8216 §8.4: Master Playlist.
    const RFC_8_4: &str = "#EXTM3U
#EXT-X-STREAM-INF:BANDWIDTH=1280000,AVERAGE-BANDWIDTH=1000000
http://example.com/low.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=2560000,AVERAGE-BANDWIDTH=2000000
http://example.com/mid.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=7680000,AVERAGE-BANDWIDTH=6000000
http://example.com/hi.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=65000,CODECS=\"mp4a.40.5\"
http://example.com/audio-only.m3u8
";

    /// RFC 8216 §8.6: Master Playlist with alternative audio.
    const RFC_8_6: &str = "#EXTM3U
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

    /// A 4-rung ladder with I-frame playlists, an unknown tag, a comment and
    /// quoted CODECS containing commas.
    const LADDER: &str = "#EXTM3U
#EXT-X-VERSION:6
#EXT-X-INDEPENDENT-SEGMENTS
## generated by packager 1.2
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a1\",NAME=\"English\",LANGUAGE=\"en\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"audio/en.m3u8\"
#EXT-X-STREAM-INF:CODECS=\"avc1.640028,mp4a.40.2\",BANDWIDTH=6000000,AVERAGE-BANDWIDTH=5000000,RESOLUTION=1920x1080,FRAME-RATE=29.970,AUDIO=\"a1\"
v1080/index.m3u8
#EXT-X-STREAM-INF:CODECS=\"avc1.4d401f,mp4a.40.2\",BANDWIDTH=3000000,AVERAGE-BANDWIDTH=2500000,RESOLUTION=1280x720,FRAME-RATE=29.970,AUDIO=\"a1\"
v720/index.m3u8
#EXT-X-VENDOR-HINT:foo=bar
#EXT-X-STREAM-INF:CODECS=\"avc1.4d401e,mp4a.40.2\",BANDWIDTH=1500000,AVERAGE-BANDWIDTH=1200000,RESOLUTION=854x480,FRAME-RATE=29.970,AUDIO=\"a1\"
v480/index.m3u8
#EXT-X-STREAM-INF:CODECS=\"avc1.42c01e,mp4a.40.2\",BANDWIDTH=800000,AVERAGE-BANDWIDTH=600000,RESOLUTION=640x360,FRAME-RATE=29.970,AUDIO=\"a1\"
v360/index.m3u8
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=9000000,CODECS=\"avc1.640028\",RESOLUTION=1920x1080,URI=\"v1080/iframes.m3u8\"
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=300000,CODECS=\"avc1.42c01e\",RESOLUTION=640x360,URI=\"v360/iframes.m3u8\"
";

    const MEDIA: &str = "#EXTM3U
#EXT-X-TARGETDURATION:10
#EXT-X-VERSION:3
#EXTINF:9.009,
http://media.example.com/first.ts
#EXTINF:9.009,
http://media.example.com/second.ts
#EXT-X-ENDLIST
";

    fn hls() -> ResponseHead {
        ResponseHead::new(200).with_header("Content-Type", "application/vnd.apple.mpegurl")
    }

    fn run(body: &str) -> ResponseEdit {
        Rendition::on_response(
            &RequestHead::get("/master.m3u8"),
            &hls(),
            Some(body.as_bytes()),
        )
    }

    fn body_of(edit: &ResponseEdit) -> String {
        String::from_utf8(edit.body.clone().unwrap_or_default()).unwrap_or_default()
    }

    fn report(edit: &ResponseEdit) -> Option<String> {
        edit.headers.iter().find_map(|op| match op {
            HeaderOp::Set(h) if h.name == REPORT_HEADER => Some(h.value.clone()),
            _ => None,
        })
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
        // A quoted value that mentions BANDWIDTH= is not the attribute.
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
    }

    #[test]
    fn rfc_8_4_with_cap() {
        testing::set_config(&[("max_bandwidth", "3000000")]);
        let edit = run(RFC_8_4);
        assert_eq!(
            body_of(&edit),
            RFC_8_4.replace(
                "#EXT-X-STREAM-INF:BANDWIDTH=7680000,AVERAGE-BANDWIDTH=6000000\nhttp://example.com/hi.m3u8\n",
                ""
            )
        );
        assert_eq!(
            report(&edit).as_deref(),
            Some("kept=3 dropped=1 cap=3000000")
        );
        assert!(edit.headers.contains(&HeaderOp::Remove("etag".into())));
    }

    #[test]
    fn rfc_8_6_keeps_media_tags() {
        testing::set_config(&[("max_bandwidth", "1300000")]);
        let edit = run(RFC_8_6);
        let body = body_of(&edit);
        assert_eq!(body.matches("#EXT-X-MEDIA:").count(), 3);
        assert!(body.contains("low/video-only.m3u8"));
        assert!(body.contains("main/english-audio.m3u8"));
        assert!(!body.contains("mid/video-only.m3u8"));
        assert!(!body.contains("hi/video-only.m3u8"));
        assert_eq!(
            report(&edit).as_deref(),
            Some("kept=2 dropped=2 cap=1300000")
        );
    }

    #[test]
    fn ladder_keeps_order_and_other_lines() {
        testing::set_config(&[("max_bandwidth", "2000000")]);
        let edit = run(LADDER);
        let expected: String = LADDER
            .lines()
            .filter(|l| {
                !l.contains("BANDWIDTH=6000000,")
                    && !l.contains("BANDWIDTH=3000000,")
                    && *l != "v1080/index.m3u8"
                    && *l != "v720/index.m3u8"
            })
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(body_of(&edit), expected);
        assert!(body_of(&edit).contains("#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=9000000"));
        assert_eq!(
            report(&edit).as_deref(),
            Some("kept=2 dropped=2 cap=2000000")
        );
    }

    #[test]
    fn cap_below_every_variant_keeps_only_the_lowest() {
        testing::set_config(&[("max_bandwidth", "1")]);
        let edit = run(LADDER);
        let body = body_of(&edit);
        assert_eq!(body.matches("#EXT-X-STREAM-INF:").count(), 1);
        assert!(body.contains("BANDWIDTH=800000,"));
        assert!(body.contains("v360/index.m3u8\n"));
        assert_eq!(report(&edit).as_deref(), Some("kept=1 dropped=3 cap=1"));

        let edit = run(RFC_8_4);
        assert_eq!(
            body_of(&edit),
            "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=65000,CODECS=\"mp4a.40.5\"\nhttp://example.com/audio-only.m3u8\n"
        );
    }

    #[test]
    fn no_cap_passes_through_unchanged() {
        testing::reset();
        assert!(run(LADDER).is_empty());
        assert!(run(RFC_8_4).is_empty());
        // A cap above every variant changes nothing either.
        testing::set_config(&[("max_bandwidth", "100000000")]);
        assert!(run(LADDER).is_empty());
    }

    #[test]
    fn media_playlists_and_other_bodies_pass_through() {
        testing::set_config(&[("max_bandwidth", "1")]);
        assert!(run(MEDIA).is_empty());
        let json = ResponseHead::new(200).with_header("content-type", "application/json");
        let req = RequestHead::get("/x");
        assert!(Rendition::on_response(&req, &json, Some(b"{\"a\":1}")).is_empty());
        assert!(Rendition::on_response(&req, &hls(), None).is_empty());
        assert!(Rendition::on_response(&req, &json, Some(b"")).is_empty());
        // Not a 200: left alone.
        let partial = ResponseHead::new(206).with_header("content-type", "application/x-mpegURL");
        assert!(Rendition::on_response(&req, &partial, Some(LADDER.as_bytes())).is_empty());
    }

    #[test]
    fn sniffs_playlists_without_content_type() {
        testing::set_config(&[("max_bandwidth", "1000000")]);
        let octet = ResponseHead::new(200).with_header("content-type", "application/octet-stream");
        let req = RequestHead::get("/x");
        let edit = Rendition::on_response(&req, &octet, Some(LADDER.as_bytes()));
        assert_eq!(
            report(&edit).as_deref(),
            Some("kept=1 dropped=3 cap=1000000")
        );
        let bom = format!("\u{feff}{RFC_8_4}");
        let edit = Rendition::on_response(&req, &ResponseHead::new(200), Some(bom.as_bytes()));
        assert!(body_of(&edit).starts_with("\u{feff}#EXTM3U\n"));
        // `application/x-mpegURL` matches case-insensitively.
        let mixed = ResponseHead::new(200)
            .with_header("content-type", "application/x-mpegURL; charset=utf-8");
        assert!(is_multivariant(&mixed, LADDER.as_bytes()));
    }

    #[test]
    fn crlf_is_preserved() {
        testing::set_config(&[("max_bandwidth", "2000000")]);
        let crlf = LADDER.replace('\n', "\r\n");
        let edit = run(&crlf);
        let body = body_of(&edit);
        assert!(body.ends_with("\r\n"));
        assert!(!body.replace("\r\n", "").contains('\n'));
        assert_eq!(body.replace("\r\n", "\n"), body_of(&run(LADDER)));
        assert_eq!(
            report(&edit).as_deref(),
            Some("kept=2 dropped=2 cap=2000000")
        );
    }

    #[test]
    fn missing_final_newline_is_kept() {
        testing::set_config(&[("max_bandwidth", "1000")]);
        let body = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=2000\na.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=500\nb.m3u8";
        assert_eq!(
            body_of(&run(body)),
            "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=500\nb.m3u8"
        );
    }

    #[test]
    fn malformed_bandwidth_lines_are_kept_untouched() {
        testing::set_config(&[("max_bandwidth", "1000000")]);
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
        let edit = run(body);
        assert_eq!(
            body_of(&edit),
            body.replace("#EXT-X-STREAM-INF:BANDWIDTH=5000000\nhi.m3u8\n", "")
        );
        assert_eq!(
            report(&edit).as_deref(),
            Some("kept=3 dropped=1 cap=1000000")
        );
    }

    #[test]
    fn blank_lines_and_comments_between_tag_and_uri() {
        testing::set_config(&[("max_bandwidth", "1000")]);
        let body = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=5000\n\n# note\nhi.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=100\nlo.m3u8\n";
        assert_eq!(
            body_of(&run(body)),
            "#EXTM3U\n\n# note\n#EXT-X-STREAM-INF:BANDWIDTH=100\nlo.m3u8\n"
        );
    }

    #[test]
    fn ties_at_the_lowest_bandwidth_are_all_kept() {
        testing::set_config(&[("max_bandwidth", "1")]);
        let body = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=100,CODECS=\"hvc1\"\na.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=100,CODECS=\"avc1\"\nb.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=200\nc.m3u8\n";
        let edit = run(body);
        assert_eq!(report(&edit).as_deref(), Some("kept=2 dropped=1 cap=1"));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let pieces: [&[u8]; 12] = [
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
        ];
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
                let idx = usize::try_from(state >> 33).unwrap_or(0) % pieces.len();
                body.extend_from_slice(pieces[idx]);
            }
            if let Some(f) = filter_playlist(&body, 100) {
                assert!(f.body.len() <= body.len());
            }
            let _ = bandwidth(&body);
        }
    }

    #[test]
    fn brownout_applies_under_load() {
        let config = [
            ("max_bandwidth", "4000000"),
            ("brownout_utilization", "0.8"),
            ("brownout_max_bandwidth", "1000000"),
        ];
        testing::set_config(&config);
        testing::set_load(LoadSignals::with_utilization(0.5));
        assert_eq!(
            report(&run(LADDER)).as_deref(),
            Some("kept=3 dropped=1 cap=4000000")
        );
        testing::set_load(LoadSignals::with_utilization(0.8));
        assert_eq!(
            report(&run(LADDER)).as_deref(),
            Some("kept=1 dropped=3 cap=1000000")
        );

        // Brownout alone, without a normal cap.
        testing::set_config(&config[1..]);
        testing::set_load(LoadSignals::with_utilization(0.1));
        assert!(run(LADDER).is_empty());
        testing::set_load(LoadSignals::with_utilization(1.5));
        assert_eq!(
            report(&run(LADDER)).as_deref(),
            Some("kept=1 dropped=3 cap=1000000")
        );
    }

    #[test]
    fn bad_config_values_warn_and_are_ignored() {
        testing::reset();
        testing::set_config(&[
            ("max_bandwidth", "3 Mbps"),
            ("brownout_utilization", "high"),
            ("brownout_max_bandwidth", "-5"),
        ]);
        testing::set_load(LoadSignals::with_utilization(2.0));
        assert!(run(LADDER).is_empty());
        let warnings = testing::take_logs()
            .into_iter()
            .filter(|(l, _)| *l == LogLevel::Warn)
            .count();
        assert_eq!(warnings, 3);

        testing::set_config(&[
            ("brownout_utilization", "NaN"),
            ("brownout_max_bandwidth", "1"),
        ]);
        assert!(run(LADDER).is_empty());
    }
}
