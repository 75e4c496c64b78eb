//! Property tests over generated multivariant playlists.

use crate::hls::{content_of, filter};
use crate::select::Caps;
use proptest::prelude::*;

/// Lines that are not variants.
const OTHER: [&str; 10] = [
    "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"English, main\",URI=\"a/en.m3u8\"",
    "#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=90000,URI=\"i.m3u8\"",
    "#EXT-X-SESSION-DATA:DATA-ID=\"com.example.x\",VALUE=\"1,2\"",
    "#EXT-X-CONTENT-STEERING:SERVER-URI=\"/steer\"",
    "#EXT-X-INDEPENDENT-SEGMENTS",
    "#EXT-X-UNKNOWN-TAG:FOO=BAR",
    "# a comment",
    "",
    "#EXT-X-VERSION:7",
    "#EXT-X-DEFINE:NAME=\"k\",VALUE=\"v\"",
];

const CODECS: [&str; 4] = [
    "avc1.640028",
    "hvc1.2.4.L123.B0",
    "av01.0.08M.08",
    "avc1.4d401f",
];

#[derive(Debug, Clone)]
enum Item {
    Variant {
        bw: u64,
        height: u64,
        fps: u8,
        codec: usize,
    },
    Other(usize),
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        (
            1u64..10_000_000,
            100u64..2200,
            15u8..61,
            0usize..CODECS.len()
        )
            .prop_map(|(bw, height, fps, codec)| Item::Variant {
                bw,
                height,
                fps,
                codec
            }),
        (0usize..OTHER.len()).prop_map(Item::Other),
    ]
}

fn caps() -> impl Strategy<Value = Caps> {
    (
        proptest::option::of(1u64..10_000_000),
        proptest::option::of(100u64..2200),
        proptest::option::of(15u32..61),
        proptest::option::of(0usize..CODECS.len()),
    )
        .prop_map(|(bw, height, fps, deny)| Caps {
            max_bandwidth: bw,
            max_height: height,
            max_frame_rate: fps.map(f64::from),
            deny_codecs: deny
                .map(|i| vec![CODECS[i][..4].to_string()])
                .unwrap_or_default(),
            ..Caps::default()
        })
}

/// The playlist text and the (tag, uri) line pairs of its variants.
fn render(items: &[Item], crlf: bool) -> (String, Vec<(String, String)>) {
    let eol = if crlf { "\r\n" } else { "\n" };
    let mut s = format!("#EXTM3U{eol}");
    let mut variants = Vec::new();
    for (i, it) in items.iter().enumerate() {
        match it {
            Item::Variant {
                bw,
                height,
                fps,
                codec,
            } => {
                let tag = format!(
                    "#EXT-X-STREAM-INF:BANDWIDTH={bw},CODECS=\"{},mp4a.40.2\",RESOLUTION={}x{height},FRAME-RATE={fps}.000",
                    CODECS[*codec],
                    height * 16 / 9
                );
                let uri = format!("v{i}/index.m3u8");
                s.push_str(&format!("{tag}{eol}{uri}{eol}"));
                variants.push((tag, uri));
            }
            Item::Other(o) => s.push_str(&format!("{}{eol}", OTHER[*o])),
        }
    }
    (s, variants)
}

fn lines(s: &str) -> Vec<String> {
    s.split_inclusive('\n')
        .map(|l| String::from_utf8_lossy(content_of(l.as_bytes())).into_owned())
        .collect()
}

fn is_variant_line(l: &str) -> bool {
    l.starts_with("#EXT-X-STREAM-INF:") || (l.starts_with('v') && l.ends_with("index.m3u8"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn filtering_invariants(items in proptest::collection::vec(item(), 0..24), caps in caps(), crlf in any::<bool>()) {
        let (input, variants) = render(&items, crlf);
        let out = match filter(input.as_bytes(), &caps, false) {
            Some(f) => String::from_utf8(f.body).unwrap(),
            None => {
                prop_assert!(variants.is_empty());
                return Ok(());
            }
        };
        let (in_lines, out_lines) = (lines(&input), lines(&out));
        // Line endings are kept.
        prop_assert_eq!(out.contains("\r\n"), crlf);
        // Non-variant lines identical and in order.
        let rest = |ls: &[String]| ls.iter().filter(|l| !is_variant_line(l)).cloned().collect::<Vec<_>>();
        prop_assert_eq!(rest(&in_lines), rest(&out_lines));
        // Output variants: a subsequence of the input variants, same lines, paired.
        let kept: Vec<(String, String)> = out_lines
            .windows(2)
            .filter(|w| w[0].starts_with("#EXT-X-STREAM-INF:"))
            .map(|w| (w[0].clone(), w[1].clone()))
            .collect();
        let mut it = variants.iter();
        for k in &kept {
            prop_assert!(it.any(|v| v == k), "not an input variant in order: {:?}", k);
        }
        // The lowest is kept; two are kept when there were two.
        let bw = |tag: &str| crate::hls::bandwidth(tag.trim_start_matches("#EXT-X-STREAM-INF:").as_bytes());
        let lowest = variants.iter().filter_map(|(t, _)| bw(t)).min();
        prop_assert_eq!(kept.iter().filter_map(|(t, _)| bw(t)).min(), lowest);
        prop_assert!(kept.len() >= variants.len().min(2));
        // Idempotent.
        if let Some(again) = filter(out.as_bytes(), &caps, false) {
            prop_assert_eq!(again.dropped, 0);
            prop_assert_eq!(String::from_utf8(again.body).unwrap(), out);
        }
    }

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,200}", bw in 0u64..1000) {
        let caps = Caps { max_bandwidth: Some(bw), ..Caps::default() };
        let body = format!("#EXTM3U\n{s}");
        if let Some(f) = filter(body.as_bytes(), &caps, true) {
            prop_assert!(f.body.len() <= body.len());
        }
        let _ = crate::dash::filter(s.as_bytes(), &caps, false);
        let _ = crate::cmcd::Cmcd::parse(&s);
    }
}
