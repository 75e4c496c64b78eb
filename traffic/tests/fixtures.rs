//! The real recorded traffic in `tests/fixtures/traffic/` parses.
#![allow(clippy::unwrap_used)] // test helpers: a failure is a test failure

use std::path::PathBuf;

use outpost_traffic::{Entry, Format, InputError, Options, Spread, read_file};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/traffic")
        .join(name)
}

fn read_all(name: &str, options: &Options) -> (Format, Vec<Entry>, Vec<InputError>) {
    let reader = read_file(fixture(name), options).unwrap();
    let format = reader.format();
    let (mut ok, mut bad) = (Vec::new(), Vec::new());
    for item in reader {
        match item {
            Ok(e) => ok.push(e),
            Err(e) => bad.push(e),
        }
    }
    (format, ok, bad)
}

#[test]
fn har_files_parse_with_expected_counts() {
    for (name, count) in [
        ("har/chrome_github.com_home.har", 20),
        ("har/www.bbc.com.har", 120),
        ("har/chrome_h2_www.nghttp2.org.har", 11),
        ("har/capture-har_cnn.har", 2),
    ] {
        let (format, entries, errors) = read_all(name, &Options::default());
        assert_eq!(format, Format::Har, "{name}");
        assert!(errors.is_empty(), "{name}: {errors:?}");
        assert_eq!(entries.len(), count, "{name}");
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(e.seq, i as u64, "{name}");
            assert!(e.path.starts_with('/'), "{name}: {e:?}");
            assert!(e.scheme == "http" || e.scheme == "https", "{name}: {e:?}");
            assert!(!e.authority.is_empty(), "{name}: {e:?}");
            assert!(
                e.headers
                    .iter()
                    .chain(&e.response_headers)
                    .all(|(n, _)| !n.starts_with(':') && *n == n.to_ascii_lowercase()),
                "{name}: {e:?}"
            );
            assert!(e.client_ip.is_none() && e.decision.is_none());
            // All four files are from 2015–2017.
            assert!((1_420_070_400_000_000..1_514_764_800_000_000).contains(&e.at_us));
        }
    }
}

#[test]
fn har_http2_pseudo_headers() {
    let (_, entries, _) = read_all("har/chrome_h2_www.nghttp2.org.har", &Options::default());
    let first = &entries[0];
    assert_eq!(first.at_us, 1_498_640_948_406_000);
    assert_eq!(first.method, "GET");
    assert_eq!(first.scheme, "https");
    assert_eq!(first.authority, "www.nghttp2.org");
    assert_eq!((first.path.as_str(), first.query.as_str()), ("/", ""));
    // 9 recorded headers, 4 of them pseudo-headers.
    assert_eq!(first.headers.len(), 5);
    assert_eq!(
        first.header("accept-encoding"),
        Some("gzip, deflate, sdch, br")
    );
    assert_eq!(first.status, Some(200));
    assert_eq!(first.duration_us, Some(307_506));

    let fonts = &entries[5];
    assert_eq!(fonts.authority, "fonts.googleapis.com");
    assert_eq!(fonts.path, "/css");
    assert_eq!(
        fonts.query,
        "family=PT+Serif:regular,italic,bold,bolditalic"
    );
    let image = &entries[7];
    assert_eq!(
        (image.path.as_str(), image.query.as_str()),
        ("/images/line-tile.png", "1413623488")
    );

    // Blocked by the client: status 0, no outcome.
    let blocked = &entries[9];
    assert_eq!(blocked.authority, "platform.twitter.com");
    assert_eq!(blocked.path, "/widgets.js");
    assert_eq!(
        (blocked.status, blocked.response_bytes, blocked.duration_us),
        (None, None, None)
    );
    assert_eq!(blocked.header("referer"), Some("https://www.nghttp2.org/"));
}

#[test]
fn har_chrome_and_capture_har_details() {
    let (_, github, _) = read_all("har/chrome_github.com_home.har", &Options::default());
    let home = &github[0];
    assert_eq!(home.at_us, 1_486_805_782_868_000);
    assert_eq!(home.authority, "github.com");
    // Header names are recorded capitalized (`Host`, `User-Agent`) and lower-cased.
    assert_eq!(home.header("host"), Some("github.com"));
    assert!(home.headers.iter().any(|(n, _)| n == "user-agent"));
    assert_eq!(home.status, Some(200));
    assert_eq!(home.response_bytes, Some(8280));
    assert_eq!(home.duration_us, Some(816_810));
    // This file is not in time order; the reader keeps file order.
    assert!(github.windows(2).any(|w| w[0].at_us > w[1].at_us));

    let (_, cnn, _) = read_all("har/capture-har_cnn.har", &Options::default());
    assert_eq!(cnn[0].status, Some(301));
    assert_eq!(cnn[0].authority, "cnn.com");
    assert_eq!(cnn[0].duration_us, Some(6_292));
    // bodySize -1: the content size is used.
    assert_eq!(cnn[1].response_bytes, Some(129_461));
    assert_eq!(cnn[1].authority, "www.cnn.com");

    // `-1` timings (dns, connect, ssl) in the BBC file.
    let (_, bbc, _) = read_all("har/www.bbc.com.har", &Options::default());
    assert_eq!(bbc[0].duration_us, Some(1_770));
}

#[test]
fn nasa_log_streams_every_line() {
    let (format, entries, errors) = read_all("nasa-ksc-1995-08-01.log", &Options::default());
    assert_eq!(format, Format::Clf);
    let report: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert!(report.is_empty(), "{report:#?}");
    assert_eq!(entries.len(), 33_996);
    let first = &entries[0];
    // 01/Aug/1995:00:00:01 -0400
    assert_eq!(first.at_us, 807_249_601_000_000);
    assert_eq!(
        first.path,
        "/shuttle/missions/sts-68/news/sts-68-mcc-05.txt"
    );
    assert_eq!(first.authority, "localhost");
    assert_eq!(first.header("x-log-host"), Some("in24.inetnebr.com"));
    assert_eq!(
        (first.status, first.response_bytes),
        (Some(200), Some(1839))
    );
    let last = &entries[33_995];
    // 01/Aug/1995:14:52:01 -0400
    assert_eq!(last.at_us, 807_303_121_000_000);
    assert_eq!(last.seq, 33_995);
    assert_eq!(last.client_ip.as_deref(), Some("192.94.94.33"));
    assert_eq!(last.path, "/shuttle/countdown/video/livevideo.jpeg");

    // Spread: strictly increasing within the file's (in-order) seconds, each within
    // its recorded second.
    let (_, same, _) = read_all(
        "nasa-ksc-1995-08-01.log",
        &Options {
            spread: Spread::Same,
            ..Options::default()
        },
    );
    assert_eq!(same.len(), entries.len());
    for (spread, same) in entries.iter().zip(&same) {
        assert_eq!(spread.seq, same.seq);
        assert_eq!(same.at_us % 1_000_000, 0);
        assert_eq!(spread.at_us / 1_000_000, same.at_us / 1_000_000);
    }
    assert!(entries.windows(2).all(|w| w[0].at_us < w[1].at_us));
    // 00:00:08 holds lines 3–5 (three requests).
    assert_eq!(
        [entries[2].at_us, entries[3].at_us, entries[4].at_us],
        [
            807_249_608_000_000,
            807_249_608_333_333,
            807_249_608_666_666
        ]
    );
}
