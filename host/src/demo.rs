//! The built-in demo origin: a synthetic live HLS stream on loopback, so the node
//! serves something real with nothing else installed.
//!
//! `/live/master.m3u8` is a multivariant playlist of four renditions; each media
//! playlist (`/live/<rendition>/index.m3u8`) is a sliding live window whose media
//! sequence advances every target duration; segments are MPEG-TS null packets sized
//! to their rendition's bitrate.

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
}

/// The demo ladder, lowest first.
pub const LADDER: [Rendition; 4] = [
    Rendition {
        name: "360p",
        bandwidth: 800_000,
        resolution: (640, 360),
    },
    Rendition {
        name: "540p",
        bandwidth: 1_500_000,
        resolution: (960, 540),
    },
    Rendition {
        name: "720p",
        bandwidth: 3_000_000,
        resolution: (1280, 720),
    },
    Rendition {
        name: "1080p",
        bandwidth: 6_000_000,
        resolution: (1920, 1080),
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
            "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},RESOLUTION={}x{},FRAME-RATE=30.000,CODECS=\"avc1.64001f,mp4a.40.2\"\n{}/index.m3u8\n",
            r.bandwidth,
            r.bandwidth * 9 / 10,
            r.resolution.0,
            r.resolution.1,
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

/// A segment of `rendition`: bitrate × duration bytes of MPEG-TS null packets.
pub fn segment(r: &Rendition) -> Bytes {
    const PACKET: usize = 188;
    let size = (r.bandwidth * TARGET_DURATION / 8) as usize;
    let packets = size / PACKET;
    let mut out = Vec::with_capacity(packets * PACKET);
    for _ in 0..packets {
        out.extend_from_slice(&[0x47, 0x1F, 0xFF, 0x10]);
        out.resize(out.len() + PACKET - 4, 0xFF);
    }
    Bytes::from(out)
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
        if file
            .strip_prefix("seg-")
            .and_then(|f| f.strip_suffix(".ts"))
            .is_some_and(|n| n.parse::<u64>().is_ok())
        {
            let resp = respond(StatusCode::OK, "video/mp2t", segment(r));
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
    fn ladder_has_four_renditions_and_segments_match_bitrate() {
        let m = master_playlist();
        assert_eq!(m.matches("#EXT-X-STREAM-INF").count(), 4);
        for r in LADDER {
            let s = segment(&r);
            let expected = r.bandwidth * TARGET_DURATION / 8;
            assert!(s.len() as u64 <= expected && s.len() as u64 > expected - 188);
            assert_eq!(s[0], 0x47);
        }
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
