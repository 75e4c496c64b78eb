//! The built-in demo origin: a synthetic live HLS stream on loopback, so the node
//! serves something real with nothing else installed.
//!
//! `/live/master.m3u8` is a multivariant playlist of four renditions; each media
//! playlist (`/live/<rendition>/index.m3u8`) is a sliding live window whose media
//! sequence advances every target duration. Segments are real video: per rendition,
//! three 2 s clips (H.264 High + AAC-LC in MPEG-TS, the rendition's name drawn on a
//! test pattern; made once by `host/demo/make.sh` and embedded) looped, each loop's
//! timestamps (PTS, DTS, PCR) moved on by the loop's start ([`retime`]), so the
//! stream runs on without a discontinuity and `ffplay` or any HLS player plays it. The clips are encoded well below their rung's nominal `BANDWIDTH` to
//! keep the binary small; the playlists keep the nominal ladder, which is what the
//! rendition guest caps.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::body::{Body, full};

/// A rendition of the demo ladder.
#[derive(Debug, Clone, Copy)]
pub struct Rendition {
    /// Path component.
    pub name: &'static str,
    /// Peak bits per second.
    pub bandwidth: u64,
    /// Width x height.
    pub resolution: (u32, u32),
    /// The RFC 6381 codecs of its clips.
    pub codecs: &'static str,
    /// Its clips, in loop order.
    pub clips: [&'static [u8]; CLIPS],
}

/// Clips per rendition.
pub const CLIPS: usize = 3;

macro_rules! clips {
    ($r:literal) => {
        [
            include_bytes!(concat!("../demo/", $r, "/seg0.ts")),
            include_bytes!(concat!("../demo/", $r, "/seg1.ts")),
            include_bytes!(concat!("../demo/", $r, "/seg2.ts")),
        ]
    };
}

/// The demo ladder, lowest first.
pub const LADDER: [Rendition; 4] = [
    Rendition {
        name: "360p",
        bandwidth: 800_000,
        resolution: (640, 360),
        codecs: "avc1.64001f,mp4a.40.2",
        clips: clips!("360p"),
    },
    Rendition {
        name: "540p",
        bandwidth: 1_500_000,
        resolution: (960, 540),
        codecs: "avc1.64001f,mp4a.40.2",
        clips: clips!("540p"),
    },
    Rendition {
        name: "720p",
        bandwidth: 3_000_000,
        resolution: (1280, 720),
        codecs: "avc1.64001f,mp4a.40.2",
        clips: clips!("720p"),
    },
    Rendition {
        name: "1080p",
        bandwidth: 6_000_000,
        resolution: (1920, 1080),
        codecs: "avc1.640028,mp4a.40.2",
        clips: clips!("1080p"),
    },
];

/// Seconds per segment.
pub const TARGET_DURATION: u64 = 2;
/// Segments in the live window.
pub const WINDOW: u64 = 6;

/// The multivariant playlist.
pub fn master_playlist() -> String {
    let mut s = String::from("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    for r in LADDER {
        s.push_str(&format!(
            "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},RESOLUTION={}x{},FRAME-RATE=30.000,CODECS=\"{}\"\n{}/index.m3u8\n",
            r.bandwidth,
            r.bandwidth * 9 / 10,
            r.resolution.0,
            r.resolution.1,
            r.codecs,
            r.name
        ));
    }
    s
}

/// A media playlist at `now` (seconds since the Unix epoch): the last `WINDOW`
/// segments, the media sequence advancing every `TARGET_DURATION`.
pub fn media_playlist(now_secs: u64) -> String {
    let newest = now_secs / TARGET_DURATION;
    let first = newest.saturating_sub(WINDOW - 1);
    let mut s = format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{TARGET_DURATION}\n#EXT-X-MEDIA-SEQUENCE:{first}\n"
    );
    for n in first..=newest {
        s.push_str(&format!("#EXTINF:{TARGET_DURATION}.000,\nseg-{n}.ts\n"));
    }
    s
}

/// Segment `n` of `rendition`: its clip `n % CLIPS`, retimed to its loop, its
/// continuity counters carried on from the loop before.
pub fn segment(r: &Rendition, n: u64) -> Bytes {
    let clip = r.clips[(n % CLIPS as u64) as usize];
    let lap = n / CLIPS as u64;
    // Modulo the wrap first: a segment number from the URL may be any u64.
    let loop_ticks = CLIPS as u64 * TARGET_DURATION * 90_000;
    let offset = ((u128::from(lap) * u128::from(loop_ticks)) % u128::from(WRAP)) as u64;
    let mut out = retime(clip, offset);
    let steps = loop_steps_of(r);
    for p in out.chunks_exact_mut(188) {
        let pid = usize::from(p[1] & 0x1f) << 8 | usize::from(p[2]);
        let step = u64::from(steps.get(&pid).copied().unwrap_or(0));
        p[3] = (p[3] & 0xf0) | (((u64::from(p[3] & 0x0f) + (lap % 16) * step) % 16) as u8);
    }
    Bytes::from(out)
}

/// [`loop_steps`] of `r`, worked out once per rendition of the ladder.
fn loop_steps_of(r: &Rendition) -> &'static std::collections::HashMap<usize, u8> {
    static STEPS: std::sync::OnceLock<Vec<std::collections::HashMap<usize, u8>>> =
        std::sync::OnceLock::new();
    let all = STEPS.get_or_init(|| LADDER.iter().map(loop_steps).collect());
    let i = LADDER.iter().position(|l| l.name == r.name).unwrap_or(0);
    &all[i]
}

/// Per PID, how far one loop moves its continuity counter: what makes the first
/// clip's first counter follow the last clip's last one (only packets with a
/// payload count).
fn loop_steps(r: &Rendition) -> std::collections::HashMap<usize, u8> {
    let counters = |ts: &[u8]| {
        ts.chunks_exact(188)
            .filter(|p| p[0] == 0x47 && p[3] & 0x10 != 0)
            .map(|p| {
                (
                    usize::from(p[1] & 0x1f) << 8 | usize::from(p[2]),
                    p[3] & 0x0f,
                )
            })
            .collect::<Vec<_>>()
    };
    let mut last = std::collections::HashMap::new();
    for (pid, cc) in counters(r.clips[CLIPS - 1]) {
        last.insert(pid, cc);
    }
    let mut steps = std::collections::HashMap::new();
    for (pid, cc) in counters(r.clips[0]) {
        if let Some(end) = last.get(&pid) {
            steps.entry(pid).or_insert((end + 1).wrapping_sub(cc) % 16);
        }
    }
    steps
}

/// MPEG-TS timestamps wrap at 2^33 ticks of 90 kHz (about 26.5 hours).
const WRAP: u64 = 1 << 33;

/// `ts` with every PCR, PTS and DTS moved on by `offset` ticks of 90 kHz (modulo
/// 2^33, as the fields wrap). Packets are 188 bytes with the sync byte; anything
/// that is not a well-formed field is left as it is.
pub fn retime(ts: &[u8], offset: u64) -> Vec<u8> {
    let mut out = ts.to_vec();
    for p in out.chunks_exact_mut(188) {
        if p[0] != 0x47 {
            continue;
        }
        let unit_start = p[1] & 0x40 != 0;
        let control = (p[3] >> 4) & 0x3;
        let mut at = 4;
        if control & 0x2 != 0 {
            let len = usize::from(p[4]);
            // The PCR: 33 bits of 90 kHz base, 6 reserved, 9 bits of extension.
            if len >= 7 && p[5] & 0x10 != 0 {
                let b = &mut p[6..12];
                let base = (u64::from(b[0]) << 25)
                    | (u64::from(b[1]) << 17)
                    | (u64::from(b[2]) << 9)
                    | (u64::from(b[3]) << 1)
                    | (u64::from(b[4]) >> 7);
                let base = (base + offset) % WRAP;
                b[0] = (base >> 25) as u8;
                b[1] = (base >> 17) as u8;
                b[2] = (base >> 9) as u8;
                b[3] = (base >> 1) as u8;
                b[4] = (b[4] & 0x7f) | (((base & 1) as u8) << 7);
            }
            at = 5 + len;
        }
        if !unit_start || control & 0x1 == 0 || at + 9 > 188 {
            continue;
        }
        let pes = &mut p[at..];
        let stream = pes[3];
        let media = (0xC0..=0xEF).contains(&stream);
        if pes[..3] != [0, 0, 1] || !media {
            continue;
        }
        let flags = pes[7] >> 6;
        // The header holds a PTS (5 bytes from 9) and maybe a DTS (5 more).
        let needs = if flags == 0x3 { 19 } else { 14 };
        if pes.len() < needs {
            continue;
        }
        if flags & 0x2 != 0 {
            shift_timestamp(&mut pes[9..14], offset);
        }
        if flags == 0x3 {
            shift_timestamp(&mut pes[14..19], offset);
        }
    }
    out
}

/// A PES timestamp (5 bytes: 4-bit prefix, 33 bits with marker bits) moved on by
/// `offset`, its prefix and markers kept.
fn shift_timestamp(b: &mut [u8], offset: u64) {
    let t = ((u64::from(b[0]) >> 1 & 0x7) << 30)
        | (u64::from(b[1]) << 22)
        | ((u64::from(b[2]) >> 1) << 15)
        | (u64::from(b[3]) << 7)
        | (u64::from(b[4]) >> 1);
    let t = (t + offset) % WRAP;
    b[0] = (b[0] & 0xf1) | (((t >> 30) as u8 & 0x7) << 1);
    b[1] = (t >> 22) as u8;
    b[2] = ((((t >> 15) & 0x7f) as u8) << 1) | 1;
    b[3] = (t >> 7) as u8;
    b[4] = (((t & 0x7f) as u8) << 1) | 1;
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn respond(status: StatusCode, ctype: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    if let Ok(v) = ctype.parse() {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

/// Answer one request to the demo origin.
pub fn handle(path: &str) -> Response<Body> {
    const M3U8: &str = "application/vnd.apple.mpegurl";
    if path == "/live/master.m3u8" {
        let resp = respond(StatusCode::OK, M3U8, master_playlist());
        return cache_control(resp, "public, max-age=300");
    }
    if let Some((name, file)) = path.strip_prefix("/live/").and_then(|r| r.split_once('/'))
        && let Some(r) = LADDER.iter().find(|r| r.name == name)
    {
        if file == "index.m3u8" {
            // Live: fresh for half a segment, as live packagers send it.
            let resp = respond(StatusCode::OK, M3U8, media_playlist(now_secs()));
            return cache_control(resp, "public, max-age=1");
        }
        if let Some(n) = file
            .strip_prefix("seg-")
            .and_then(|f| f.strip_suffix(".ts"))
            .and_then(|n| n.parse::<u64>().ok())
        {
            let resp = respond(StatusCode::OK, "video/mp2t", segment(r, n));
            return cache_control(resp, "public, max-age=86400, immutable");
        }
    }
    if path == "/" {
        return respond(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            "Outpost demo origin: a synthetic live HLS stream at /live/master.m3u8\n",
        );
    }
    let resp = respond(
        StatusCode::NOT_FOUND,
        "text/plain; charset=utf-8",
        "not found\n",
    );
    cache_control(resp, "max-age=5")
}

/// `resp` with `Cache-Control: cc`.
fn cache_control(mut resp: Response<Body>, cc: &'static str) -> Response<Body> {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, http::HeaderValue::from_static(cc));
    resp
}

/// Start the demo origin on `addr` (use port 0), returning where it listens.
pub async fn spawn(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let svc = service_fn(|req: Request<Incoming>| async move {
                    Ok::<_, Infallible>(handle(req.uri().path()))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(local)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ladder_has_four_renditions_of_transport_stream_clips() {
        let m = master_playlist();
        assert_eq!(m.matches("#EXT-X-STREAM-INF").count(), 4);
        for r in LADDER {
            for n in 0..CLIPS as u64 * 2 {
                let s = segment(&r, n);
                assert!(
                    s.len() > 10_000 && s.len().is_multiple_of(188),
                    "{} {n}",
                    r.name
                );
                // Every packet starts with the sync byte.
                assert!(s.chunks(188).all(|p| p[0] == 0x47), "{} {n}", r.name);
            }
            // The same clip a loop later: same size, other timestamps.
            let (a, b) = (segment(&r, 1), segment(&r, 1 + CLIPS as u64));
            assert!(a.len() == b.len() && a != b, "{}", r.name);
        }
    }

    /// Every PES timestamp and PCR of a transport stream, in order.
    fn timestamps(ts: &[u8]) -> (Vec<u64>, Vec<u64>) {
        let mut pts = Vec::new();
        let mut pcr = Vec::new();
        for p in ts.chunks_exact(188) {
            let control = (p[3] >> 4) & 0x3;
            let mut at = 4;
            if control & 0x2 != 0 {
                let len = usize::from(p[4]);
                if len >= 7 && p[5] & 0x10 != 0 {
                    let b = &p[6..12];
                    pcr.push(
                        (u64::from(b[0]) << 25)
                            | (u64::from(b[1]) << 17)
                            | (u64::from(b[2]) << 9)
                            | (u64::from(b[3]) << 1)
                            | (u64::from(b[4]) >> 7),
                    );
                }
                at = 5 + len;
            }
            if p[1] & 0x40 != 0 && control & 0x1 != 0 && at + 14 <= 188 {
                let e = &p[at..];
                if e[..3] == [0, 0, 1] && e[7] >> 6 & 0x2 != 0 {
                    let b = &e[9..14];
                    pts.push(
                        ((u64::from(b[0]) >> 1 & 0x7) << 30)
                            | (u64::from(b[1]) << 22)
                            | ((u64::from(b[2]) >> 1) << 15)
                            | (u64::from(b[3]) << 7)
                            | (u64::from(b[4]) >> 1),
                    );
                }
            }
        }
        (pts, pcr)
    }

    #[test]
    fn looped_segments_carry_timestamps_that_run_on() {
        for r in LADDER {
            let (first, first_pcr) = timestamps(&segment(&r, 0));
            assert!(!first.is_empty() && !first_pcr.is_empty(), "{}", r.name);
            // A loop later, the same clip plays 6 s (540,000 ticks) further on.
            let (later, later_pcr) = timestamps(&segment(&r, CLIPS as u64));
            let shift = CLIPS as u64 * TARGET_DURATION * 90_000;
            assert_eq!(later, first.iter().map(|t| t + shift).collect::<Vec<_>>());
            assert_eq!(
                later_pcr,
                first_pcr.iter().map(|t| t + shift).collect::<Vec<_>>()
            );
            // The last clip of a loop ends before the next loop's first begins.
            let (end, _) = timestamps(&segment(&r, CLIPS as u64 - 1));
            let next_start = later.iter().min().copied().unwrap_or(0);
            assert!(end.iter().all(|t| *t < next_start + 90_000), "{}", r.name);
        }
        // Continuity counters run on across the loop: the next loop's first packet
        // of each PID follows the last loop's last.
        for r in LADDER {
            let counters = |ts: &[u8]| {
                ts.chunks_exact(188)
                    .filter(|p| p[3] & 0x10 != 0)
                    .map(|p| {
                        (
                            usize::from(p[1] & 0x1f) << 8 | usize::from(p[2]),
                            p[3] & 0x0f,
                        )
                    })
                    .collect::<Vec<_>>()
            };
            let mut last = std::collections::HashMap::new();
            for n in 0..3 * CLIPS as u64 {
                for (pid, cc) in counters(&segment(&r, n)) {
                    if let Some(prev) = last.insert(pid, cc) {
                        assert_eq!(cc, (prev + 1) % 16, "{} segment {n} pid {pid}", r.name);
                    }
                }
            }
        }
        // Any segment number from a URL is served, however large.
        let far = segment(&LADDER[0], u64::MAX);
        assert!(!far.is_empty());
        // The fields wrap at 2^33, markers intact.
        let mut b = [0x21, 0x00, 0x01, 0x00, 0x01];
        shift_timestamp(&mut b, WRAP - 1);
        assert_eq!(b, [0x2f, 0xff, 0xff, 0xff, 0xff]);
        shift_timestamp(&mut b, 1);
        assert_eq!(b, [0x21, 0x00, 0x01, 0x00, 0x01]);
    }

    #[test]
    fn media_sequence_advances_every_target_duration() {
        let a = media_playlist(1000);
        let b = media_playlist(1000 + TARGET_DURATION);
        let seq = |p: &str| -> u64 {
            p.lines()
                .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        assert_eq!(seq(&b), seq(&a) + 1);
        assert_eq!(a.matches("#EXTINF").count() as u64, WINDOW);
    }
}
