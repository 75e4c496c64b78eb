//! The embedded default: the demo stream served through the shipped guests.

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Empty};
use outpost::{BuildOptions, Config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_default_serves_a_filtered_live_stream() {
    let cache = tempfile::tempdir().expect("tempdir");
    let opts = BuildOptions {
        cache_dir: Some(cache.path().to_path_buf()),
        ..Default::default()
    };
    let running = outpost::start(
        Config::embedded().expect("valid"),
        &opts,
        Some("127.0.0.1:0".parse().expect("addr")),
        Some(None),
    )
    .await
    .expect("starts");
    let base = format!("http://{}", running.listeners[0]);
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<Bytes>>();
    let get = |path: String| {
        let client = client.clone();
        async move {
            let resp = client
                .get(path.parse().expect("uri"))
                .await
                .expect("answer");
            let status = resp.status();
            let body = resp.into_body().collect().await.expect("body").to_bytes();
            (status, body)
        }
    };
    let (status, master) = get(format!("{base}/live/master.m3u8")).await;
    assert_eq!(status, StatusCode::OK);
    let master = String::from_utf8_lossy(&master).into_owned();
    // The default rendition cap (4 Mb/s) withholds the 6 Mb/s top rendition.
    assert_eq!(master.matches("#EXT-X-STREAM-INF").count(), 3, "{master}");
    assert!(!master.contains("1080p/index.m3u8"));
    let media_uri = master
        .lines()
        .find(|l| !l.starts_with('#') && !l.is_empty())
        .expect("a variant");
    let (status, media) = get(format!("{base}/live/{media_uri}")).await;
    assert_eq!(status, StatusCode::OK);
    let media = String::from_utf8_lossy(&media).into_owned();
    let seg = media
        .lines()
        .find(|l| l.ends_with(".ts"))
        .expect("a segment");
    let dir = media_uri.rsplit_once('/').map_or("", |(d, _)| d);
    let (status, bytes) = get(format!("{base}/live/{dir}/{seg}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bytes[0], 0x47, "MPEG-TS sync byte");
    // Real video: ffprobe decodes it, H.264 and AAC, two seconds.
    let file = cache.path().join("segment.ts");
    std::fs::write(&file, &bytes).expect("write segment");
    let probe = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-show_entries"])
        .arg("stream=codec_name,width,nb_read_frames:format=duration")
        .args(["-of", "json"])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run ffprobe ({e}): install Debian's ffmpeg (.ci/run does)")
        });
    assert!(
        probe.status.success(),
        "{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&probe.stdout).expect("ffprobe json");
    let codecs: Vec<&str> = info["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .filter_map(|s| s["codec_name"].as_str())
        .collect();
    assert_eq!(codecs, ["h264", "aac"], "{info}");
    let frames: u64 = info["streams"][0]["nb_read_frames"]
        .as_str()
        .and_then(|f| f.parse().ok())
        .expect("frames decoded");
    assert!(
        frames >= 55,
        "{frames} video frames decoded of a 2 s segment at 30 fps"
    );
    let seconds: f64 = info["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .expect("duration");
    assert!((1.8..2.3).contains(&seconds), "{seconds} s");
    // The compile cache was written: a restart does not recompile.
    assert!(std::fs::read_dir(cache.path()).expect("cache dir").count() >= 3);
}
