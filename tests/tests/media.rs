//! Real media through the real node with the `rendition` guest (issue "Stream
//! renditions at the edge", Tests): ffmpeg encodes a four-rendition HLS ladder and a
//! DASH MPD into a tempdir, a static-file origin serves them over real HTTP, and
//!
//! * the trimmed master playlist re-parses with `m3u8-rs`, holds only the allowed
//!   variants, keeps the lowest and every other line byte for byte;
//! * the trimmed MPD re-parses with `dash-mpd-core` and holds only the allowed
//!   video Representations, everything else byte for byte;
//! * media playlists and segments pass through byte-identical;
//! * hls.js in headless Chromium plays the ladder through the node with a cap in
//!   force and never requests a rendition above it, while its CMCD reaches the
//!   origin.
//!
//! Tools: `ffmpeg` and `chromium` (Debian packages of those names) and hls.js
//! (`npm ci --prefix tests/media`). A missing tool fails the test with what to
//! install; `.ci/run` installs them.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http::StatusCode;
use m3u8_rs::{MasterPlaylist, Playlist};
use outpost_tests::{Seen, StaticOrigin, TestNode, config, media_content_type};

/// The route hands both manifest types to the response guest.
const ROUTE: &str = "response = [\"rend\"]\n\
transform = [\"application/vnd.apple.mpegurl\", \"application/dash+xml\"]";

/// The ladder ffmpeg encodes: name, width, height, video bitrate.
const LADDER: [(&str, u32, u32, &str); 4] = [
    ("360p", 640, 360, "800k"),
    ("540p", 960, 540, "1500k"),
    ("720p", 1280, 720, "3000k"),
    ("1080p", 1920, 1080, "6000k"),
];

/// Seconds of media, one-second segments.
const SECONDS: u32 = 4;

async fn rendition_node(origin: &StaticOrigin, guest_config: &str) -> TestNode {
    TestNode::new(&config(
        origin.addr,
        &[(
            "rend",
            "rendition",
            &format!("[guests.rend.config]\n{guest_config}"),
        )],
        ROUTE,
    ))
    .await
}

/// Fails (never skips) when `bin` cannot run, naming the package to install.
fn require_tool(bin: &str, version_arg: &str, package: &str) {
    let out = Command::new(bin)
        .arg(version_arg)
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "`{bin} {version_arg}` failed ({}): {}\n\
             this test needs the Debian package `{package}`: \
             apt-get install -y --no-install-recommends {package} (.ci/run does)",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!(
            "`{bin}` is not installed ({e}); this test needs the Debian package `{package}`: \
             apt-get install -y --no-install-recommends {package} (.ci/run does)"
        ),
    }
}

/// Encodes the ladder (testsrc2 + sine, libx264 ultrafast, one keyframe a second)
/// into `dir` with the muxer arguments `tail`; `audio_copies` audio streams are
/// mapped (one per HLS variant, or one DASH audio AdaptationSet).
fn ffmpeg_ladder(dir: &Path, audio_copies: usize, tail: &[&str]) {
    require_tool("ffmpeg", "-version", "ffmpeg");
    let mut args = ladder_args(&LADDER, audio_copies, SECONDS, false);
    args.extend(tail.iter().map(|s| s.to_string()));
    let started = Instant::now();
    let out = Command::new("ffmpeg")
        .args(&args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("ffmpeg encoded the ladder in {:?}", started.elapsed());
}

/// ffmpeg's arguments up to the muxer's: `seconds` of testsrc2 and a sine tone,
/// scaled to each rung of `ladder` (libx264 ultrafast, a keyframe a second), with
/// `audio_copies` audio streams mapped; read at the source's own pace when
/// `realtime` (a live encoder).
fn ladder_args(
    ladder: &[(&str, u32, u32, &str)],
    audio_copies: usize,
    seconds: u32,
    realtime: bool,
) -> Vec<String> {
    let split: String = (0..ladder.len()).map(|i| format!("[s{i}]")).collect();
    let mut graph = format!("[0:v]split={}{split}", ladder.len());
    for (i, (_, w, h, _)) in ladder.iter().enumerate() {
        graph.push_str(&format!(";[s{i}]scale={w}:{h}[v{i}]"));
    }
    let (top_w, top_h) = ladder
        .iter()
        .map(|(_, w, h, _)| (*w, *h))
        .max()
        .unwrap_or((640, 360));
    let mut args: Vec<String> = ["-hide_banner", "-loglevel", "error", "-y"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for input in [
        format!("testsrc2=size={top_w}x{top_h}:rate=30:duration={seconds}"),
        format!("sine=frequency=440:duration={seconds}:sample_rate=48000"),
    ] {
        if realtime {
            args.push("-re".into());
        }
        args.extend(["-f".into(), "lavfi".into(), "-i".into(), input]);
    }
    args.extend(["-filter_complex".into(), graph]);
    for i in 0..ladder.len() {
        args.extend(["-map".into(), format!("[v{i}]")]);
    }
    for _ in 0..audio_copies {
        args.extend(["-map".into(), "1:a".into()]);
    }
    for a in [
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-g",
        "30",
        "-keyint_min",
        "30",
        "-sc_threshold",
        "0",
        "-c:a",
        "aac",
        "-b:a",
        "64k",
    ] {
        args.push(a.into());
    }
    for (i, (_, _, _, rate)) in ladder.iter().enumerate() {
        args.extend([format!("-b:v:{i}"), rate.to_string()]);
    }
    args
}

/// The HLS muxer's arguments for `ladder`: `master.m3u8`, `<name>/index.m3u8`,
/// `<name>/seg_N.ts`, one-second segments; `playlist` is `vod`, or a live window
/// of that many segments.
fn hls_args(ladder: &[(&str, u32, u32, &str)], live_window: Option<u32>) -> Vec<String> {
    let map: Vec<String> = ladder
        .iter()
        .enumerate()
        .map(|(i, (name, ..))| format!("v:{i},a:{i},name:{name}"))
        .collect();
    let mut args: Vec<String> = ["-f", "hls", "-hls_time", "1"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    match live_window {
        // Segments are written under a temporary name and renamed when complete,
        // so the origin never serves half a segment.
        Some(n) => args.extend([
            "-hls_list_size".into(),
            n.to_string(),
            "-hls_flags".into(),
            "independent_segments+temp_file".into(),
        ]),
        None => args.extend([
            "-hls_playlist_type".into(),
            "vod".into(),
            "-hls_flags".into(),
            "independent_segments".into(),
        ]),
    }
    for a in [
        "-hls_segment_filename",
        "%v/seg_%d.ts",
        "-master_pl_name",
        "master.m3u8",
        "-var_stream_map",
        &map.join(" "),
        "%v/index.m3u8",
    ] {
        args.push(a.into());
    }
    args
}

/// The HLS ladder: `master.m3u8`, `<name>/index.m3u8`, `<name>/seg_N.ts`.
fn hls_ladder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let tail = hls_args(&LADDER, None);
    let tail: Vec<&str> = tail.iter().map(String::as_str).collect();
    ffmpeg_ladder(dir.path(), LADDER.len(), &tail);
    dir
}

/// The DASH presentation: `manifest.mpd`, `init-<id>.mp4`, `chunk-<id>-NNNNN.m4s`;
/// one video AdaptationSet (the ladder, ids 0..=3) and one audio (id 4).
fn dash_ladder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    ffmpeg_ladder(
        dir.path(),
        1,
        &[
            "-f",
            "dash",
            "-seg_duration",
            "1",
            "-init_seg_name",
            "init-$RepresentationID$.mp4",
            "-media_seg_name",
            "chunk-$RepresentationID$-$Number%05d$.m4s",
            "-adaptation_sets",
            "id=0,streams=v id=1,streams=a",
            "manifest.mpd",
        ],
    );
    dir
}

/// Every file under `dir`, as `/`-separated paths relative to it, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).expect("under root");
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn parse_master(bytes: &[u8]) -> MasterPlaylist {
    match m3u8_rs::parse_playlist_res(bytes) {
        Ok(Playlist::MasterPlaylist(m)) => m,
        Ok(Playlist::MediaPlaylist(_)) => panic!(
            "a media playlist where a master was expected:\n{}",
            String::from_utf8_lossy(bytes)
        ),
        Err(e) => panic!(
            "m3u8-rs cannot parse it ({e:?}):\n{}",
            String::from_utf8_lossy(bytes)
        ),
    }
}

/// `text` without the lines of the variants whose URI is in `dropped`: each
/// `#EXT-X-STREAM-INF` line and the URI line after it. Everything else stays.
fn without_variants(text: &str, dropped: &[&str]) -> String {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut out = String::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].starts_with("#EXT-X-STREAM-INF:")
            && lines
                .get(i + 1)
                .is_some_and(|u| dropped.contains(&u.trim_end()))
        {
            i += 2;
            continue;
        }
        out.push_str(lines[i]);
        i += 1;
    }
    out
}

/// `text` without the `<Representation id="ID" ...>...</Representation>` blocks of
/// `ids`, whole lines (ffmpeg writes each element on its own lines).
fn without_representations(text: &str, ids: &[&str]) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        if !skipping
            && ids
                .iter()
                .any(|id| t.starts_with(&format!("<Representation id=\"{id}\"")))
        {
            skipping = !t.trim_end().ends_with("/>");
            continue;
        }
        if skipping {
            if t.starts_with("</Representation>") {
                skipping = false;
            }
            continue;
        }
        out.push_str(line);
    }
    out
}

/// Fetches `rel` through the node and asserts it is exactly the origin's file,
/// with the origin's content type.
async fn assert_passes_through(node: &TestNode, origin: &StaticOrigin, rel: &str) {
    let r = node.get(&format!("/{rel}")).await;
    assert_eq!(r.status, StatusCode::OK, "/{rel}: {}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some(media_content_type(rel)),
        "/{rel}"
    );
    let want = origin.file(rel);
    assert!(
        r.body == want,
        "/{rel}: {} bytes through the node, {} at the origin, not identical",
        r.body.len(),
        want.len()
    );
    assert!(
        r.header("x-outpost-rendition").is_none(),
        "/{rel} was edited"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hls_master_from_ffmpeg_is_capped_and_the_rest_passes_through() {
    let dir = hls_ladder();
    let origin = StaticOrigin::start(dir.path()).await;
    let original = origin.file("master.m3u8");
    let original_text = String::from_utf8(original.to_vec()).expect("utf-8 master");
    let ladder = parse_master(&original);
    let uris: Vec<&str> = ladder.variants.iter().map(|v| v.uri.as_str()).collect();
    assert_eq!(
        uris,
        LADDER
            .iter()
            .map(|(n, ..)| format!("{n}/index.m3u8"))
            .collect::<Vec<_>>(),
        "ffmpeg's master:\n{original_text}"
    );
    let bw: Vec<u64> = ladder.variants.iter().map(|v| v.bandwidth).collect();
    assert!(
        bw.windows(2).all(|w| w[0] < w[1]),
        "ladder bandwidths {bw:?}"
    );

    // (guest config, the URIs that must remain, what the header says)
    let cap = (bw[1] + bw[2]) / 2;
    let cases = [
        (
            format!("max_bandwidth = {cap}"),
            vec!["360p/index.m3u8", "540p/index.m3u8"],
            format!("kept=2 dropped=2 cap={cap}"),
        ),
        (
            "max_height = 720".to_string(),
            vec!["360p/index.m3u8", "540p/index.m3u8", "720p/index.m3u8"],
            "kept=3 dropped=1".to_string(),
        ),
        (
            // Caps nothing is above, and a class cap that does not apply (the test
            // client sends no User-Agent and no class header): nothing dropped.
            "max_height = 1080\n\"class.mobile.max_height\" = 360".to_string(),
            uris.clone(),
            String::new(),
        ),
    ];
    for (guest_config, allowed, header) in cases {
        let node = rendition_node(&origin, &guest_config).await;
        let r = node.get("/master.m3u8").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(
            r.header("content-type"),
            Some("application/vnd.apple.mpegurl")
        );
        let trimmed = parse_master(&r.body);
        let got: Vec<&str> = trimmed.variants.iter().map(|v| v.uri.as_str()).collect();
        assert_eq!(got, allowed, "[{guest_config}]\n{}", r.text());
        // Each remaining variant is the origin's, unmodified, and the lowest stays.
        for v in &trimmed.variants {
            let orig = ladder
                .variants
                .iter()
                .find(|o| o.uri == v.uri)
                .expect("not invented");
            assert_eq!(v, orig);
        }
        assert!(got.contains(&"360p/index.m3u8"), "the lowest is kept");
        let dropped: Vec<&str> = uris
            .iter()
            .copied()
            .filter(|u| !allowed.contains(u))
            .collect();
        assert_eq!(
            r.text(),
            without_variants(&original_text, &dropped),
            "[{guest_config}]: every other line is kept byte for byte"
        );
        if header.is_empty() {
            assert!(r.body == original, "nothing dropped, body untouched");
            assert!(r.header("x-outpost-rendition").is_none());
        } else {
            let h = r.header("x-outpost-rendition").unwrap_or_default();
            assert!(h.starts_with(&header), "x-outpost-rendition: {h}");
        }
    }

    // Media playlists (of every rendition: a direct request is not refused) and
    // segments pass through byte-identical, with their content types.
    let node = rendition_node(&origin, &format!("max_bandwidth = {cap}")).await;
    let files = files_under(dir.path());
    assert_eq!(
        files.iter().filter(|f| f.ends_with(".ts")).count(),
        LADDER.len() * SECONDS as usize,
        "{files:?}"
    );
    for rel in files.iter().filter(|f| *f != "master.m3u8") {
        assert_passes_through(&node, &origin, rel).await;
        if rel.ends_with(".m3u8") {
            let bytes = origin.file(rel);
            let media = m3u8_rs::parse_playlist_res(&bytes);
            assert!(
                matches!(media, Ok(Playlist::MediaPlaylist(ref m)) if m.segments.len() == SECONDS as usize),
                "{rel}: {media:?}"
            );
        }
    }
    let seen = origin.requests();
    assert!(seen.iter().all(|s| s.status == 200), "{seen:?}");
}

/// GET `path` from `node` with `accept` as `Accept-Encoding` (a browser's, by default).
async fn get_encoded(node: &TestNode, path: &str, accept: &str) -> outpost_tests::Reply {
    node.send(
        http::Request::get(path)
            .header("accept-encoding", accept)
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .expect("request"),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_manifests_are_shaped_and_encoded_for_the_client() {
    use outpost_tests::decode_as;
    let hls = hls_ladder();
    let dash = dash_ladder();
    let plain = StaticOrigin::start(hls.path()).await;
    let bw: Vec<u64> = parse_master(&plain.file("master.m3u8"))
        .variants
        .iter()
        .map(|v| v.bandwidth)
        .collect();
    let cap = (bw[1] + bw[2]) / 2;
    let browser = "gzip, deflate, br, zstd";
    // (the origin's coding, what the client accepts, the coding it must get)
    for (origin_coding, accept, expected) in [
        ("gzip", "gzip, deflate, br", Some("gzip")),
        ("gzip", browser, Some("gzip")),
        ("br", browser, Some("br")),
        ("zstd", browser, Some("zstd")),
        // The client weighs Brotli above gzip: the node re-encodes.
        ("gzip", "gzip;q=0.5, br", Some("br")),
    ] {
        let what = format!("origin {origin_coding}, client `{accept}`");
        let origin = StaticOrigin::start_compressing(hls.path(), Some(origin_coding)).await;
        let node = rendition_node(&origin, &format!("max_bandwidth = {cap}")).await;
        let r = get_encoded(&node, "/master.m3u8", accept).await;
        assert_eq!(r.status, StatusCode::OK, "{what}: {}", r.text());
        let seen = origin.requests();
        assert_eq!(
            seen.last()
                .and_then(|s| s.headers.get("accept-encoding"))
                .map(String::as_str),
            Some(accept),
            "{what}: the origin sees the client's Accept-Encoding"
        );
        assert_eq!(r.header("content-encoding"), expected, "{what}");
        assert_eq!(
            r.header("content-length")
                .and_then(|v| v.parse::<usize>().ok()),
            Some(r.body.len()),
            "{what}"
        );
        assert!(
            r.header("vary")
                .is_some_and(|v| v.to_ascii_lowercase().contains("accept-encoding")),
            "{what}: {:?}",
            r.header("vary")
        );
        let body = decode_as(r.header("content-encoding"), &r.body);
        let got: Vec<String> = parse_master(&body)
            .variants
            .iter()
            .map(|v| v.uri.clone())
            .collect();
        assert_eq!(got, ["360p/index.m3u8", "540p/index.m3u8"], "{what}");
        let report = r.header("x-outpost-rendition").unwrap_or_default();
        assert!(report.starts_with("kept=2 dropped=2"), "{what}: {report}");
    }

    // The DASH MPD likewise.
    let origin = StaticOrigin::start_compressing(dash.path(), Some("gzip")).await;
    let node = rendition_node(&origin, &format!("max_bandwidth = {cap}")).await;
    let r = get_encoded(&node, "/manifest.mpd", browser).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    let xml = String::from_utf8(decode_as(Some("gzip"), &r.body)).expect("utf-8");
    let mpd = dash_mpd_core::parse(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    let video = mpd.periods[0]
        .adaptations
        .iter()
        .find(|a| a.contentType.as_deref() == Some("video"))
        .expect("video set");
    assert_eq!(video.representations.len(), 2, "{xml}");

    // A client that accepts no coding gets identity, shaped (the origin, asked for
    // none, sends none).
    let r = get_encoded(&node, "/manifest.mpd", "identity").await;
    assert_eq!(r.header("content-encoding"), None);
    assert!(r.text().contains("<MPD"), "{}", r.text());

    // Segments are never decoded or re-encoded: byte-identical.
    let seg = files_under(hls.path())
        .into_iter()
        .find(|f| f.ends_with(".ts"))
        .expect("a segment");
    let origin = StaticOrigin::start_compressing(hls.path(), Some("gzip")).await;
    let node = rendition_node(&origin, &format!("max_bandwidth = {cap}")).await;
    let r = get_encoded(&node, &format!("/{seg}"), browser).await;
    assert_eq!(r.header("content-encoding"), None);
    assert!(r.body == origin.file(&seg), "{seg} byte-identical");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dash_mpd_from_ffmpeg_keeps_only_allowed_representations() {
    use dash_mpd_core::{AdaptationSet, MPD};
    let dir = dash_ladder();
    let origin = StaticOrigin::start(dir.path()).await;
    let original = String::from_utf8(origin.file("manifest.mpd").to_vec()).expect("utf-8");
    let parse = |xml: &str| -> MPD {
        dash_mpd_core::parse(xml).unwrap_or_else(|e| panic!("dash-mpd-core: {e}\n{xml}"))
    };
    let sets = |mpd: &MPD| -> (AdaptationSet, AdaptationSet) {
        assert_eq!(mpd.periods.len(), 1);
        let sets = &mpd.periods[0].adaptations;
        let pick = |kind: &str| {
            sets.iter()
                .find(|a| a.contentType.as_deref() == Some(kind))
                .unwrap_or_else(|| panic!("no {kind} AdaptationSet"))
                .clone()
        };
        (pick("video"), pick("audio"))
    };
    let mpd = parse(&original);
    let (video, audio) = sets(&mpd);
    let heights: Vec<Option<u64>> = video.representations.iter().map(|r| r.height).collect();
    assert_eq!(
        heights,
        LADDER
            .iter()
            .map(|(_, _, h, _)| Some(u64::from(*h)))
            .collect::<Vec<_>>(),
        "ffmpeg's MPD:\n{original}"
    );
    let bw: Vec<u64> = video
        .representations
        .iter()
        .map(|r| r.bandwidth.expect("@bandwidth"))
        .collect();
    let ids: Vec<String> = video
        .representations
        .iter()
        .map(|r| r.id.clone().expect("@id"))
        .collect();

    let cap = (bw[1] + bw[2]) / 2;
    let cases = [
        ("max_height = 720".to_string(), 3usize),
        (format!("max_bandwidth = {cap}"), 2),
        (
            // The audio bandwidth (64 kb/s) is below any cap: audio is never judged.
            format!("max_bandwidth = {}\ndeny_codecs = \"hvc1,av01\"", bw[0]),
            2,
        ),
    ];
    for (guest_config, keep) in cases {
        let node = rendition_node(&origin, &guest_config).await;
        let r = node.get("/manifest.mpd").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(r.header("content-type"), Some("application/dash+xml"));
        let trimmed = parse(&r.text());
        let (v, a) = sets(&trimmed);
        assert_eq!(
            v.representations,
            video.representations[..keep].to_vec(),
            "[{guest_config}] the lowest {keep} Representations, unmodified:\n{}",
            r.text()
        );
        assert_eq!(a, audio, "audio untouched");
        let dropped: Vec<&str> = ids[keep..].iter().map(String::as_str).collect();
        assert_eq!(
            r.text(),
            without_representations(&original, &dropped),
            "[{guest_config}]: everything else byte for byte"
        );
        let h = r.header("x-outpost-rendition").unwrap_or_default();
        assert!(
            h.starts_with(&format!(
                "kept={} dropped={}",
                keep + 1,
                LADDER.len() - keep
            )),
            "x-outpost-rendition: {h}"
        );
    }

    let node = rendition_node(&origin, "max_height = 720").await;
    let files = files_under(dir.path());
    assert!(files.iter().any(|f| f.ends_with(".mp4")), "{files:?}");
    assert!(
        files.iter().filter(|f| f.ends_with(".m4s")).count() >= LADDER.len() * SECONDS as usize,
        "{files:?}"
    );
    for rel in files.iter().filter(|f| *f != "manifest.mpd") {
        assert_passes_through(&node, &origin, rel).await;
    }
}

/// Headless Chromium in its own process group, killed (group and all) on drop.
struct Browser {
    child: Child,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromium_binary() -> String {
    std::env::var("OUTPOST_CHROMIUM").unwrap_or_else(|_| "chromium".into())
}

/// Percent-decodes a query component (`+` is a space).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = s
            .get(i + 1..i + 3)
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
                continue;
            }
            (b'+', _) => out.push(b' '),
            (c, _) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_map(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// The CMCD members of a request (query parameter `CMCD`), `key → value` (`""`
/// for a bare boolean key).
fn cmcd(seen: &Seen) -> BTreeMap<String, String> {
    let q = query_map(&seen.query);
    q.get("CMCD")
        .map(|c| {
            c.split(',')
                .filter(|m| !m.is_empty())
                .map(|m| {
                    let (k, v) = m.split_once('=').unwrap_or((m, ""));
                    (k.to_string(), v.to_string())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// hls.js from `tests/media/node_modules`, installed from the pinned lock file when
/// missing (the README's test command needs no step run by hand).
fn hls_js() -> std::path::PathBuf {
    let hls_js =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("media/node_modules/hls.js/dist/hls.min.js");
    if !hls_js.is_file() {
        let media = Path::new(env!("CARGO_MANIFEST_DIR")).join("media");
        let status = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--prefix"])
            .arg(&media)
            .stdin(std::process::Stdio::null())
            .status();
        assert!(
            status.as_ref().is_ok_and(|s| s.success()) && hls_js.is_file(),
            "{} is missing and `npm ci --prefix tests/media` failed ({status:?})",
            hls_js.display()
        );
    }
    hls_js
}

/// The player page, hls.js and the report target, put beside the media in `dir`.
fn player_files(dir: &Path) {
    std::fs::copy(hls_js(), dir.join("hls.min.js")).expect("copy hls.js");
    std::fs::write(dir.join("index.html"), include_str!("../media/player.html")).expect("page");
    // The page's reports (`GET /report?event=...`) are answered 200 and logged.
    std::fs::write(dir.join("report"), b"").expect("report");
}

/// Headless Chromium playing `url`, with its profile and log.
struct Player {
    browser: Browser,
    _profile: tempfile::TempDir,
    log_path: std::path::PathBuf,
    started: Instant,
}

impl Player {
    fn open(url: &str) -> Player {
        let chromium = chromium_binary();
        let profile = tempfile::tempdir().expect("profile dir");
        let log_path = profile.path().join("chromium.log");
        let log = std::fs::File::create(&log_path).expect("log");
        // `--headless=new` with a URL and nothing to dump keeps running and playing
        // in real time until killed; the test watches the origin's log and kills it.
        let child = Command::new(&chromium)
            .args(outpost_tests::cdp::HEADLESS)
            .args([
                format!("--user-data-dir={}", profile.path().display()).as_str(),
                url,
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {chromium}: {e}"));
        Player {
            browser: Browser { child },
            _profile: profile,
            log_path,
            started: Instant::now(),
        }
    }

    /// Watch the page's reports at the origin until the video ends, hls.js fails,
    /// or `deadline` passes; the outcome and how long it played.
    async fn watch(
        &mut self,
        origin: &StaticOrigin,
        deadline: Duration,
    ) -> (&'static str, Duration) {
        let outcome = loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let reps = reports(&origin.requests());
            if reps.iter().any(|r| event(r, "ended")) {
                break "ended";
            }
            if reps
                .iter()
                .any(|r| event(r, "error") && r.get("fatal").map(String::as_str) == Some("true"))
            {
                break "fatal hls.js error";
            }
            if let Ok(Some(status)) = self.browser.child.try_wait() {
                panic!(
                    "chromium exited early ({status}):\n{}",
                    std::fs::read_to_string(&self.log_path).unwrap_or_default()
                );
            }
            if self.started.elapsed() > deadline {
                break "timeout";
            }
        };
        (outcome, self.started.elapsed())
    }
}

/// The page's reports, in order.
fn reports(seen: &[Seen]) -> Vec<BTreeMap<String, String>> {
    seen.iter()
        .filter(|s| s.path == "/report")
        .map(|s| query_map(&s.query))
        .collect()
}

fn event(r: &BTreeMap<String, String>, e: &str) -> bool {
    r.get("event").map(String::as_str) == Some(e)
}

/// What the origin served and what the player reported, for failure messages.
fn play_context(seen: &[Seen], outcome: &str, played_for: Duration) -> String {
    let trace: Vec<String> = seen
        .iter()
        .filter(|s| s.path != "/report")
        .map(|s| format!("{} {}?{}", s.status, s.path, s.query))
        .collect();
    let events: Vec<String> = reports(seen)
        .iter()
        .filter(|r| !event(r, "tick"))
        .map(|r| format!("{r:?}"))
        .collect();
    format!(
        "outcome: {outcome} after {played_for:?}\nrequests:\n  {}\nplayer events:\n  {}",
        trace.join("\n  "),
        events.join("\n  ")
    )
}

/// A node caching in front of `origin`, its rendition guest capping the ladder of
/// `master.m3u8` between the second and third rungs; and the cap.
async fn capped_cached_node(origin: &StaticOrigin) -> (TestNode, u64) {
    let ladder = parse_master(&origin.file("master.m3u8"));
    let bw: Vec<u64> = ladder.variants.iter().map(|v| v.bandwidth).collect();
    let cap = (bw[1] + bw[2]) / 2;
    // Played through the edge cache: every file is stored as it streams.
    let node = TestNode::new(&config(
        origin.addr,
        &[(
            "rend",
            "rendition",
            &format!("[guests.rend.config]\nmax_bandwidth = {cap}"),
        )],
        &format!("{ROUTE}\n[routes.cache]"),
    ))
    .await;
    (node, cap)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hls_js_in_chromium_never_fetches_a_capped_rendition() {
    require_tool(&chromium_binary(), "--version", "chromium");
    let dir = hls_ladder();
    player_files(dir.path());
    // The origin compresses playlists for a client that accepts gzip, as nginx with
    // `gzip on` does; Chromium always does.
    let origin = StaticOrigin::start_compressing(dir.path(), Some("gzip")).await;
    let (node, cap) = capped_cached_node(&origin).await;
    let (allowed, capped) = LADDER.split_at(2);

    let mut player = Player::open(&format!("http://{}/index.html", node.addr));
    let (outcome, played_for) = player.watch(&origin, Duration::from_secs(60)).await;
    drop(player);

    let seen = origin.requests();
    let reps = reports(&seen);
    let context = play_context(&seen, outcome, played_for);
    eprintln!("{context}");
    // The page and hls.js came through the node, and hls.js started.
    for p in ["/index.html", "/hls.min.js", "/master.m3u8"] {
        assert!(
            seen.iter().any(|s| s.path == p),
            "{p} never requested\n{context}"
        );
    }
    // Chromium asked for gzip, so the origin sent the master compressed: the trimmed
    // ladder below is the node decoding it for the guest.
    assert!(
        seen.iter().filter(|s| s.path == "/master.m3u8").all(|s| s
            .headers
            .get("accept-encoding")
            .is_some_and(|a| a.contains("gzip"))),
        "{context}"
    );
    let start = reps
        .iter()
        .find(|r| event(r, "start"))
        .unwrap_or_else(|| panic!("the page never reported\n{context}"));
    assert_eq!(
        start.get("supported").map(String::as_str),
        Some("true"),
        "{context}"
    );
    let avc = start.get("avc").map(String::as_str) == Some("true");

    // hls.js saw the trimmed ladder only.
    let manifest = reps
        .iter()
        .find(|r| event(r, "manifest"))
        .unwrap_or_else(|| panic!("hls.js never parsed the master\n{context}"));
    let heights: Vec<String> = allowed.iter().map(|(_, _, h, _)| h.to_string()).collect();
    assert_eq!(
        manifest.get("heights"),
        Some(&heights.join(",")),
        "{context}"
    );

    // Not one request (playlist or segment) for a capped rendition.
    for (name, ..) in capped {
        let prefix = format!("/{name}/");
        assert!(
            !seen.iter().any(|s| s.path.starts_with(&prefix)),
            "{name} was requested although capped\n{context}"
        );
    }
    let segments: Vec<&Seen> = seen.iter().filter(|s| s.path.ends_with(".ts")).collect();
    for s in &segments {
        assert!(
            allowed
                .iter()
                .any(|(n, ..)| s.path.starts_with(&format!("/{n}/"))),
            "unexpected segment {}\n{context}",
            s.path
        );
        assert_eq!(s.status, 200, "{context}");
    }
    if avc {
        // Real playback: to the end of the presentation, every segment fetched,
        // and with ABR free and an optimistic estimate, from the top allowed rung.
        assert_eq!(outcome, "ended", "{context}");
        assert!(
            segments.len() >= SECONDS as usize,
            "{} segments fetched\n{context}",
            segments.len()
        );
        let top = format!("/{}/", allowed[allowed.len() - 1].0);
        assert!(
            segments.iter().any(|s| s.path.starts_with(&top)),
            "ABR never reached {top}\n{context}"
        );
    } else {
        // Chromium without H.264 in MSE: hls.js still loads the master, a media
        // playlist and the first segment before MSE refuses the codec.
        eprintln!("note: this chromium cannot decode H.264 in MSE; asserting requests only");
        assert!(!segments.is_empty(), "no segment fetched\n{context}");
    }

    // CMCD arrived at the origin (what the origin sees, the guest saw) on every
    // media request: the session id, the object type, and on segments the encoded
    // bitrate, never above the cap, and the buffer length.
    let media: Vec<&Seen> = seen
        .iter()
        .filter(|s| {
            s.path.ends_with(".ts") || s.path.ends_with(".m3u8") && s.path != "/master.m3u8"
        })
        .collect();
    for s in &media {
        let c = cmcd(s);
        assert_eq!(
            c.get("sid").map(String::as_str),
            Some("\"test-session\""),
            "{} CMCD {c:?}",
            s.path
        );
        assert!(c.contains_key("ot"), "{} CMCD {c:?}", s.path);
        if s.path.ends_with(".ts") {
            let br: u64 = c
                .get("br")
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{} CMCD without br: {c:?}", s.path));
            assert!(
                br * 1000 <= cap,
                "{} CMCD br={br} kb/s above the cap",
                s.path
            );
            assert!(c.contains_key("bl"), "{} CMCD {c:?}", s.path);
            // `tb`, the top bitrate the player knows of, is the top allowed rung.
            if let Some(tb) = c.get("tb").and_then(|v| v.parse::<u64>().ok()) {
                assert!(
                    tb * 1000 <= cap,
                    "{} CMCD tb={tb} kb/s above the cap",
                    s.path
                );
            }
            assert!(
                matches!(c.get("ot").map(String::as_str), Some("av" | "v")),
                "{} CMCD {c:?}",
                s.path
            );
        }
    }
    // It played through the edge cache: what it fetched was stored as it streamed.
    let metrics = node.metrics().await;
    let stored = metrics
        .lines()
        .find_map(|l| l.strip_prefix("outpost_cache_stored_total "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    assert!(
        stored >= segments.len() as u64,
        "{stored} stored for {} segments\n{context}",
        segments.len()
    );
}

/// An origin whose `/hold/<gate>` requests stay open until the test opens that gate:
/// real in-flight requests at the origin, the load the limiter measures. Anything
/// else is the 4-rendition [`outpost_tests::MASTER`] playlist.
struct HoldOrigin {
    addr: std::net::SocketAddr,
    held: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    gates: tokio::sync::watch::Sender<u32>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HoldOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HoldOrigin {
    async fn start() -> HoldOrigin {
        use std::sync::atomic::Ordering;
        let held = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        // The gates opened so far, one bit each.
        let (gates, opened) = tokio::sync::watch::channel(0u32);
        let task_held = held.clone();
        let (addr, task) = outpost_tests::serve_loopback(move |req: http::Request<_>| {
            let (held, mut opened) = (task_held.clone(), opened.clone());
            async move {
                let path = req.uri().path().to_string();
                let (ctype, body) = if let Some(g) = path.strip_prefix("/hold/") {
                    let gate: u32 = g.parse().unwrap_or(0);
                    held.fetch_add(1, Ordering::SeqCst);
                    let _ = opened.wait_for(|o| o & (1 << gate.min(31)) != 0).await;
                    held.fetch_sub(1, Ordering::SeqCst);
                    ("text/plain", "released\n".to_string())
                } else {
                    (
                        "application/vnd.apple.mpegurl",
                        outpost_tests::MASTER.to_string(),
                    )
                };
                let mut resp =
                    http::Response::new(http_body_util::Full::new(bytes::Bytes::from(body)));
                resp.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static(ctype),
                );
                resp
            }
        })
        .await;
        HoldOrigin {
            addr,
            held,
            gates,
            task,
        }
    }

    fn held(&self) -> usize {
        self.held.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits (up to 20 s) until the origin holds exactly `total` requests.
    async fn wait_held(&self, total: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.held() != total {
            assert!(
                Instant::now() < deadline,
                "origin holds {} requests, want {total}",
                self.held()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Opens `gate` (0..32): the requests held behind it complete.
    fn open(&self, gate: u32) {
        self.gates.send_modify(|open| *open |= 1 << gate);
    }
}

/// Bandwidths of the variants a manifest response offers, and its brownout level.
fn offered(reply: &outpost_tests::Reply) -> (Vec<u64>, String) {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let bw = parse_master(&reply.body)
        .variants
        .iter()
        .map(|v| v.bandwidth)
        .collect();
    let level = reply
        .header("x-outpost-brownout-level")
        .unwrap_or("none")
        .to_string();
    (bw, level)
}

/// Issue "Stream renditions at the edge", Tests: load brownout end to end. Real
/// requests held open at the origin raise the route's utilization (in flight /
/// limit, the limit pinned at 10; the manifest request counts itself); new sessions lose the top rendition at the first
/// step and the top two at the second, playing sessions (CMCD `sid` + `bl`) one step
/// later; hysteresis holds the second step while load eases a little, and the whole
/// ladder comes back when the load is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brownout_withdraws_top_renditions_as_load_rises_and_restores_them() {
    let origin = HoldOrigin::start().await;
    let guest = outpost_tests::guest_wasm("rendition");
    let node = TestNode::new(&format!(
        r#"[[listeners]]
address = "127.0.0.1:0"

[origins.main]
address = "{addr}"
first_byte_timeout = "30s"

[limiter]
initial_limit = 10
min_limit = 10
max_limit = 10
queue_size = 64

[guests.rend]
wasm = "{wasm}"
[guests.rend.config]
brownout = ["0.5 3000000", "0.8 1500000"]
brownout_hysteresis = 0.25

[[routes]]
name = "live"
origin = "main"
{ROUTE}
"#,
        addr = origin.addr,
        wasm = guest.display(),
    ))
    .await;
    let node = std::sync::Arc::new(node);
    let full = vec![800_000, 1_500_000, 3_000_000, 6_000_000];
    let new_session = || async {
        offered(
            &node
                .send(
                    http::Request::get("/live/master.m3u8")
                        .header("cmcd-session", "sid=\"new-viewer\"")
                        .body(http_body_util::Full::new(bytes::Bytes::new()))
                        .expect("request"),
                )
                .await,
        )
    };
    let playing_session = || async {
        offered(
            &node
                .send(
                    http::Request::get("/live/master.m3u8")
                        .header("cmcd-session", "sid=\"watching\"")
                        .header("cmcd-request", "bl=12000")
                        .body(http_body_util::Full::new(bytes::Bytes::new()))
                        .expect("request"),
                )
                .await,
        )
    };
    // Holds `n` more requests behind `gate` and waits until the origin has `total`.
    let hold = |gate: u32, n: usize, total: usize| {
        for _ in 0..n {
            let node = node.clone();
            tokio::spawn(async move { node.get(&format!("/hold/{gate}")).await });
        }
        origin.wait_held(total)
    };
    let drained = |total: usize| {
        let origin = &origin;
        async move {
            origin.wait_held(total).await;
            // The node drops its permit once the response body has gone out.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };

    // Idle: the whole ladder, level 0, for everyone.
    assert_eq!(new_session().await, (full.clone(), "0".into()));
    assert_eq!(playing_session().await, (full.clone(), "0".into()));

    // 6 of 10 in flight (≥ 0.5): step 1 for new sessions, playing ones keep the top.
    hold(1, 6, 6).await;
    assert_eq!(new_session().await, (full[..3].to_vec(), "1".into()));
    assert_eq!(playing_session().await, (full.clone(), "1".into()));

    // 9 of 10 (≥ 0.8): step 2; playing sessions get step 1's cap.
    hold(2, 3, 9).await;
    let stepped = node.get("/live/master.m3u8").await;
    let cmsd = stepped.header("cmsd-dynamic").unwrap_or("").to_string();
    assert!(cmsd.contains("mb=1500"), "CMSD under load: {cmsd:?}");
    assert_eq!(offered(&stepped), (full[..2].to_vec(), "2".into()));
    assert_eq!(new_session().await, (full[..2].to_vec(), "2".into()));
    assert_eq!(playing_session().await, (full[..3].to_vec(), "2".into()));

    // Back to 6 of 10: 0.6 is below step 2's threshold but above 0.8 − 0.25, so
    // hysteresis keeps step 2 engaged (no flapping at the edge of a step).
    origin.open(2);
    drained(6).await;
    assert_eq!(new_session().await, (full[..2].to_vec(), "2".into()));

    // Load gone: the whole ladder returns.
    origin.open(1);
    drained(0).await;
    assert_eq!(new_session().await, (full.clone(), "0".into()));
    assert_eq!(playing_session().await, (full.clone(), "0".into()));

    // Fresh climb to 4 of 10 (3 held plus the manifest request itself: 0.4, under
    // step 1's 0.5 but above 0.5 − 0.25): hysteresis only holds a step that was
    // engaged, so nothing is withdrawn.
    hold(3, 3, 3).await;
    assert_eq!(new_session().await, (full.clone(), "0".into()));
    origin.open(3);
    drained(0).await;
}

/// The live encoder's ladder: smaller than the VOD one, since it must keep up with
/// the clock on two cores beside Chromium.
const LIVE_LADDER: [(&str, u32, u32, &str); 4] = [
    ("180p", 320, 180, "300k"),
    ("270p", 480, 270, "600k"),
    ("360p", 640, 360, "1000k"),
    ("540p", 960, 540, "2000k"),
];

/// Seconds the live encoder runs.
const LIVE_SECONDS: u32 = 20;

/// ffmpeg encoding a live ladder at the clock's pace, killed when dropped.
struct LiveEncoder {
    child: Child,
}

impl Drop for LiveEncoder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl LiveEncoder {
    /// Start encoding into `dir`; returns once every rendition's live playlist
    /// lists three segments.
    async fn start(dir: &Path) -> LiveEncoder {
        require_tool("ffmpeg", "-version", "ffmpeg");
        let mut args = ladder_args(&LIVE_LADDER, LIVE_LADDER.len(), LIVE_SECONDS, true);
        args.extend(hls_args(&LIVE_LADDER, Some(6)));
        let mut enc = LiveEncoder {
            child: Command::new("ffmpeg")
                .args(&args)
                .current_dir(dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("run ffmpeg"),
        };
        let started = Instant::now();
        loop {
            let listed = |name: &str| {
                std::fs::read_to_string(dir.join(name).join("index.m3u8"))
                    .map(|p| p.matches("#EXTINF").count())
                    .unwrap_or(0)
            };
            if dir.join("master.m3u8").is_file() && LIVE_LADDER.iter().all(|(n, ..)| listed(n) >= 3)
            {
                return enc;
            }
            if let Ok(Some(status)) = enc.child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = enc.child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                panic!("ffmpeg {args:?} exited ({status}): {err}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the live encoder has not written three segments in 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The media sequence number of a media playlist, and whether it has ended.
fn live_window(playlist: &str) -> (Option<u64>, bool) {
    let seq = playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .and_then(|v| v.trim().parse().ok());
    (seq, playlist.contains("#EXT-X-ENDLIST"))
}

/// A viewer that is not a browser: polls `playlist` through the node five times a
/// second, spelling `Accept-Encoding` unlike Chromium but for the same codings, and
/// fetches every segment it lists, until `done`. Returns the playlists it read and
/// the segments it fetched.
async fn poll_live(
    node: &TestNode,
    playlist: &str,
    done: &std::sync::atomic::AtomicBool,
) -> (Vec<String>, Vec<String>) {
    let dir = playlist.rsplit_once('/').map_or("", |(d, _)| d);
    let (mut read, mut fetched) = (Vec::new(), Vec::<String>::new());
    while !done.load(std::sync::atomic::Ordering::Relaxed) {
        let req = http::Request::get(playlist)
            .header("accept-encoding", "zstd, br;q=1.0, gzip, deflate")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .expect("request");
        let r = node.send(req).await;
        assert_eq!(r.status, StatusCode::OK, "{playlist}");
        let text = String::from_utf8(outpost_tests::decode_as(
            r.header("content-encoding"),
            &r.body,
        ))
        .expect("a playlist is text");
        for seg in text.lines().filter(|l| l.ends_with(".ts")) {
            let path = format!("{dir}/{seg}");
            if !fetched.contains(&path) {
                let s = node.get(&path).await;
                assert_eq!(s.status, StatusCode::OK, "{path}");
                fetched.push(path);
            }
        }
        read.push(text);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    (read, fetched)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hls_js_plays_a_live_ladder_through_the_cache() {
    require_tool(&chromium_binary(), "--version", "chromium");
    let dir = tempfile::tempdir().expect("tempdir");
    player_files(dir.path());
    let encoder = LiveEncoder::start(dir.path()).await;
    // Live media playlists are fresh for a second, segments and the master for a
    // minute; playlists are gzipped for a client that takes it, with `Vary`.
    let origin = StaticOrigin::start_compressing(dir.path(), Some("gzip")).await;
    let (node, _) = capped_cached_node(&origin).await;
    let (allowed, capped) = LIVE_LADDER.split_at(2);
    let polled = format!("/{}/index.m3u8", allowed[1].0);

    let done = std::sync::atomic::AtomicBool::new(false);
    let mut player = Player::open(&format!("http://{}/index.html", node.addr));
    let deadline = Duration::from_secs(u64::from(LIVE_SECONDS) + 30);
    let play = async {
        let watched = player.watch(&origin, deadline).await;
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        watched
    };
    let ((outcome, played_for), (read, fetched)) =
        tokio::join!(play, poll_live(&node, &polled, &done));
    drop(player);
    drop(encoder);

    let seen = origin.requests();
    let reps = reports(&seen);
    let context = play_context(&seen, outcome, played_for);
    eprintln!("{context}");

    // It was live: the window slid under the viewers, without an end at first.
    let windows: Vec<(Option<u64>, bool)> = read.iter().map(|p| live_window(p)).collect();
    let mut sequences: Vec<u64> = windows.iter().filter_map(|w| w.0).collect();
    sequences.dedup();
    assert!(
        !windows[0].1,
        "the first playlist read had ended\n{context}"
    );
    assert!(
        sequences.len() >= 8,
        "the live window slid only through {sequences:?}\n{context}"
    );

    // hls.js was offered the allowed renditions only, and fetched nothing capped.
    let manifest = reps
        .iter()
        .find(|r| event(r, "manifest"))
        .unwrap_or_else(|| panic!("hls.js never parsed the master\n{context}"));
    let heights: Vec<String> = allowed.iter().map(|(_, _, h, _)| h.to_string()).collect();
    assert_eq!(
        manifest.get("heights"),
        Some(&heights.join(",")),
        "{context}"
    );
    for (name, ..) in capped {
        let prefix = format!("/{name}/");
        assert!(
            !seen.iter().any(|s| s.path.starts_with(&prefix)),
            "{name} was requested although capped\n{context}"
        );
    }
    assert!(
        !reps
            .iter()
            .any(|r| event(r, "error") && r.get("fatal").map(String::as_str) == Some("true")),
        "{context}"
    );
    let avc = reps
        .iter()
        .find(|r| event(r, "start"))
        .is_some_and(|r| r.get("avc").map(String::as_str) == Some("true"));
    let frags: std::collections::BTreeSet<u64> = reps
        .iter()
        .filter(|r| event(r, "frag"))
        .filter_map(|r| r.get("sn")?.parse().ok())
        .collect();
    if avc {
        // It played the live stream for real, through the window's slide, to the
        // end the encoder wrote.
        let played = reps
            .iter()
            .filter(|r| event(r, "tick"))
            .filter_map(|r| r.get("t")?.parse::<f64>().ok())
            .fold(0.0, f64::max);
        assert!(played >= 8.0, "played {played} s\n{context}");
        assert!(frags.len() >= 8, "fragments {frags:?}\n{context}");
        assert_eq!(outcome, "ended", "{context}");
    } else {
        eprintln!("note: this chromium cannot decode H.264 in MSE; asserting requests only");
        assert!(!frags.is_empty(), "no fragment loaded\n{context}");
    }

    // Two viewers, one origin fetch per segment: what the player and the poller
    // both fetched reached the origin once.
    let mut per_segment: BTreeMap<&str, usize> = BTreeMap::new();
    for s in seen.iter().filter(|s| s.path.ends_with(".ts")) {
        *per_segment.entry(&s.path).or_default() += 1;
    }
    assert!(
        per_segment.values().all(|&n| n == 1),
        "segments fetched from the origin more than once: {per_segment:?}\n{context}"
    );
    assert!(
        fetched.iter().all(|p| per_segment.contains_key(p.as_str())),
        "{fetched:?}"
    );
    // The polled playlist: about once per second of its one-second lifetime, for
    // both viewers' spellings of Accept-Encoding (one stored variant), though they
    // asked for it many times more.
    let origin_polls = seen.iter().filter(|s| s.path == polled).count();
    let window = played_for.as_secs_f64().ceil() as usize;
    assert!(
        origin_polls <= window + 2 && read.len() >= 2 * origin_polls,
        "{polled}: {origin_polls} origin fetches in {played_for:?} for {} reads\n{context}",
        read.len()
    );
    assert!(
        seen.iter().filter(|s| s.path.ends_with(".m3u8")).all(|s| s
            .headers
            .get("accept-encoding")
            .map(String::as_str)
            == Some("gzip, deflate, br, zstd")),
        "the origin saw other spellings of Accept-Encoding\n{context}"
    );
}

/// hls.js in headless Chromium plays the built-in demo stream through a node on
/// the embedded default config (plus one route for the player page): real H.264
/// clips looped live, across the discontinuity where the loop starts over, with
/// the default cap holding back the 1080p rung.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hls_js_plays_the_demo_stream_through_the_default_node() {
    require_tool(&chromium_binary(), "--version", "chromium");
    let page = tempfile::tempdir().expect("tempdir");
    let player_dir = page.path().join("player");
    std::fs::create_dir_all(&player_dir).expect("player dir");
    player_files(&player_dir);
    let origin = StaticOrigin::start(page.path()).await;
    let toml = edge_config::EMBEDDED_DEFAULT.replacen(
        "[[routes]]",
        &format!(
            "[origins.page]\naddress = \"{}\"\n\n[[routes]]\nname = \"player\"\n\
             path_prefix = \"/player/\"\norigin = \"page\"\n\n[[routes]]",
            origin.addr
        ),
        1,
    );
    let node = TestNode::new(&toml).await;
    let player = Player::open(&format!(
        "http://{}/player/index.html?src=/live/master.m3u8",
        node.addr
    ));
    // Live: it never ends. Watch until it has played past two loops of the clips
    // (6 s each), or fails.
    let page_reports = |seen: &[Seen]| -> Vec<BTreeMap<String, String>> {
        seen.iter()
            .filter(|s| s.path == "/player/report")
            .map(|s| query_map(&s.query))
            .collect()
    };
    let start = Instant::now();
    let (outcome, played) = loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let reps = page_reports(&origin.requests());
        // A live stream starts near its live edge, not at 0: how far playback got
        // is the span of the positions reported once it started moving.
        let positions: Vec<f64> = reps
            .iter()
            .filter(|r| event(r, "tick"))
            .filter_map(|r| r.get("t")?.parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .collect();
        let played = positions.iter().copied().fold(0.0f64, f64::max)
            - positions.iter().copied().fold(f64::INFINITY, f64::min);
        if reps
            .iter()
            .any(|r| event(r, "error") && r.get("fatal").map(String::as_str) == Some("true"))
        {
            break ("fatal hls.js error", played);
        }
        if played >= 13.0 {
            break ("played", played);
        }
        if start.elapsed() > Duration::from_secs(60) {
            break ("timeout", played);
        }
    };
    drop(player);
    let reps = page_reports(&origin.requests());
    let events: Vec<String> = reps
        .iter()
        .filter(|r| !event(r, "tick"))
        .map(|r| format!("{r:?}"))
        .collect();
    let context = format!("{outcome}: played {played} s\n{}", events.join("\n"));
    eprintln!("{context}");
    assert_eq!(outcome, "played", "{context}");
    let manifest = reps
        .iter()
        .find(|r| event(r, "manifest"))
        .expect("hls.js parsed the master");
    assert_eq!(
        manifest.get("heights").map(String::as_str),
        Some("360,540,720"),
        "{context}"
    );
    assert!(
        reps.iter().filter(|r| event(r, "frag")).count() >= 6,
        "{context}"
    );
}
