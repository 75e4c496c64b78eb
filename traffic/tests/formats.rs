//! Malformed input, detection, spreading, JSONL round trips and the rotating recorder.
#![allow(clippy::unwrap_used)] // test helpers: a failure is a test failure

use std::io::Cursor;
use std::path::PathBuf;

use outpost_traffic::{
    Entry, Format, InputError, JsonlWriter, Options, Position, Reader, RotatingWriter, Spread,
    read_file, recorded_files, to_jsonl_line,
};
use serde_json::json;

fn read(name: &str, text: &str, options: &Options) -> (Format, Vec<Result<Entry, InputError>>) {
    let reader = Reader::new(name, Cursor::new(text.as_bytes().to_vec()), options).unwrap();
    (reader.format(), reader.collect())
}

/// `Ok(path)` or `Err((position, message))` per item, to compare against.
fn summary(items: &[Result<Entry, InputError>]) -> Vec<Result<String, String>> {
    items
        .iter()
        .map(|i| match i {
            Ok(e) => Ok(format!("{} {}", e.seq, e.target())),
            Err(e) => Err(e.to_string()),
        })
        .collect()
}

const CLF: &str = r#"1.2.3.4 - - [01/Aug/1995:00:00:01 -0400] "GET /a HTTP/1.0" 200 10
this is not a log line

1.2.3.4 - - [01/Aug/1995:00:00:01 -0400] "GET /b HTTP/1.0" 200 -
1.2.3.4 - - [31/Aug/1995:00:00:01 -0400] "GET /c?x HTTP/1.0" 200 10
1.2.3.4 - - [01/Aug/1995:00:00:01 -0400] "GET /d HTTP/1.0" 200 10
1.2.3.4 - - [01/Aug/1995:00:00:02 -0400] "\x16\x03\x01" 400 0
1.2.3.4 - - [32/Aug/1995:00:00:02 -0400] "GET /e HTTP/1.0" 200 10
1.2.3.4 - - [01/Aug/1995:00:00:02 -0400] "GET /f" 200 10
"#;

#[test]
fn clf_errors_have_line_numbers_and_reading_goes_on() {
    let (format, items) = read("access.log", CLF, &Options::default());
    assert_eq!(format, Format::Clf);
    assert_eq!(
        summary(&items),
        [
            Ok("0 /a".to_string()),
            Err("access.log: line 2: expected [date] after host in \"this is not a log line\"".to_string()),
            Ok("2 /b".to_string()),
            Ok("3 /c?x".to_string()),
            Ok("4 /d".to_string()),
            Err(r#"access.log: line 7: malformed request line "\u{16}\u{3}\u{1}""#.to_string()),
            Err("access.log: line 8: invalid date [32/Aug/1995:00:00:02 -0400]: day 32 out of range".to_string()),
            Ok("7 /f".to_string()),
        ]
    );
    let Err(e) = &items[1] else { panic!() };
    assert_eq!(e.position, Position::Line(2));
    assert_eq!(e.source, "access.log");
}

#[test]
fn clf_spread_is_per_run_of_equal_seconds() {
    let at = |items: &[Result<Entry, InputError>]| -> Vec<u64> {
        items
            .iter()
            .filter_map(|i| i.as_ref().ok())
            .map(|e| e.at_us - 807_249_600_000_000)
            .collect()
    };
    let (_, even) = read("a.log", CLF, &Options::default());
    // /a and /b share 00:00:01 (an error line between them does not break the run);
    // /c is another day; /d is 00:00:01 again, a new run; /f is alone in 00:00:02.
    assert_eq!(
        at(&even),
        [
            1_000_000,
            1_500_000,
            2_592_001_000_000,
            1_000_000,
            2_000_000
        ]
    );
    let (_, same) = read(
        "a.log",
        CLF,
        &Options {
            spread: Spread::Same,
            ..Options::default()
        },
    );
    assert_eq!(
        at(&same),
        [
            1_000_000,
            1_000_000,
            2_592_001_000_000,
            1_000_000,
            2_000_000
        ]
    );
    assert_eq!(summary(&even), summary(&same));

    let three = "h - - [01/Aug/1995:00:00:01 -0400] \"GET / HTTP/1.0\" 200 1\n".repeat(3);
    let (_, items) = read("b.log", &three, &Options::default());
    assert_eq!(at(&items), [1_000_000, 1_333_333, 1_666_666]);
}

#[test]
fn clf_authority_and_scheme_options() {
    let options = Options {
        authority: "www.example.org".into(),
        scheme: "https".into(),
        ..Options::default()
    };
    let (_, items) = read("a.log", CLF, &options);
    let e = items[0].as_ref().unwrap();
    assert_eq!(
        (e.scheme.as_str(), e.authority.as_str()),
        ("https", "www.example.org")
    );
    assert_eq!(e.client_ip.as_deref(), Some("1.2.3.4"));
}

#[test]
fn jsonl_errors_and_unknown_fields() {
    let text = concat!(
        r#"{"seq":99,"at_us":5,"method":"GET","scheme":"http","authority":"a","path":"/","future":{"x":1}}"#,
        "\n\n",
        r#"{"at_us":6,"method":"GET","scheme":"http","authority":"a","path":"/t"#,
        "\n",
        r#"{"at_us":"soon","method":"GET","scheme":"http","authority":"a","path":"/"}"#,
        "\n",
        r#"{"at_us":7,"method":"POST","scheme":"https","authority":"a","path":"/p","query":"q=1","status":204}"#,
        "\n",
        r#"{"at_us":8,"method":"GET","scheme":"ftp","authority":"a","path":"/"}"#,
        "\n",
        r#"{"at_us":8,"method":"GET","scheme":"http","authority":"a","path":"x"}"#,
        "\n",
    );
    let (format, items) = read("rec.jsonl", text, &Options::default());
    assert_eq!(format, Format::Jsonl);
    let s = summary(&items);
    assert_eq!(s[0], Ok("0 /".to_string()));
    // Truncated line: line 3 (the blank line 2 is skipped but counted).
    let Err(e) = &items[1] else { panic!("{s:?}") };
    assert_eq!(e.position, Position::Line(3));
    assert!(
        e.to_string()
            .starts_with("rec.jsonl: line 3: invalid entry: EOF while parsing"),
        "{e}"
    );
    let Err(e) = &items[2] else { panic!("{s:?}") };
    assert_eq!(e.position, Position::Line(4));
    assert_eq!(s[3], Ok("3 /p?q=1".to_string()));
    assert_eq!(items[3].as_ref().unwrap().status, Some(204));
    assert_eq!(
        s[4..],
        [
            Err(
                r#"rec.jsonl: line 6: invalid entry: scheme "ftp" is not http or https"#
                    .to_string()
            ),
            Err(r#"rec.jsonl: line 7: invalid entry: path "x" does not start with /"#.to_string()),
        ]
    );
    assert_eq!(items.len(), 6);
}

#[test]
fn long_lines_are_errors() {
    let text = format!(
        "{}\n{}\n",
        "x".repeat(100),
        r#"{"at_us":7,"method":"GET","scheme":"http","authority":"a","path":"/"}"#
    );
    let options = Options {
        max_line_bytes: 80,
        format: Some(Format::Jsonl),
        ..Options::default()
    };
    let (_, items) = read("big.jsonl", &text, &options);
    assert_eq!(
        summary(&items),
        [
            Err("big.jsonl: line 1: line too long".to_string()),
            Ok("1 /".to_string())
        ]
    );
}

#[test]
fn har_entry_errors_have_entry_index_and_path() {
    let har = json!({"log": {"version": "1.2", "entries": [
        {"startedDateTime": "2017-02-11T09:36:22.868Z", "request": {"method": "GET", "url": "https://h/a"}},
        {"startedDateTime": "2017-02-11T09:36:22.868Z", "request": {"method": "GET"}},
        {"startedDateTime": "2017-02-11 09:36", "request": {"method": "GET", "url": "https://h/c"}},
        {"startedDateTime": "2017-02-11T10:36:22+01:00", "request": {"method": "GET", "url": "https://h/d"},
         "response": {"status": 404, "bodySize": 3}, "time": 1.25}
    ]}})
    .to_string();
    let (format, items) = read("file.har", &har, &Options::default());
    assert_eq!(format, Format::Har);
    let s = summary(&items);
    assert_eq!(s[0], Ok("0 /a".to_string()));
    assert_eq!(
        s[1],
        Err("file.har: entry 1: missing request.url".to_string())
    );
    let Err(e) = &items[1] else { panic!() };
    assert_eq!(
        e.position,
        Position::Entry {
            index: 1,
            path: "request.url".into()
        }
    );
    let Err(e) = &items[2] else { panic!() };
    assert_eq!(
        e.position,
        Position::Entry {
            index: 2,
            path: "startedDateTime".into()
        }
    );
    assert!(e.message.contains("invalid RFC 3339"), "{e}");
    let d = items[3].as_ref().unwrap();
    assert_eq!((d.seq, d.at_us), (3, 1_486_805_782_000_000));
    assert_eq!(
        (d.status, d.response_bytes, d.duration_us),
        (Some(404), Some(3), Some(1_250))
    );
}

#[test]
fn not_a_har_is_an_open_error() {
    let err = Reader::new(
        "x.har",
        Cursor::new(b"{\"log\": {\"entries\": ".to_vec()),
        &Options::default(),
    )
    .err()
    .unwrap();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    assert!(
        err.to_string()
            .starts_with("x.har: not a HAR file: invalid JSON"),
        "{err}"
    );
    let inner = err.into_inner().unwrap().downcast::<InputError>().unwrap();
    assert_eq!(inner.position, Position::File);
}

#[test]
fn forced_format_wins_over_detection() {
    // A JSON line read as CLF is a malformed CLF line, not an entry.
    let line = r#"{"at_us":7,"method":"GET","scheme":"http","authority":"a","path":"/"}"#;
    let (format, items) = read(
        "x",
        line,
        &Options {
            format: Some(Format::Clf),
            ..Options::default()
        },
    );
    assert_eq!(format, Format::Clf);
    assert!(items[0].is_err());
    let (format, items) = read("x", line, &Options::default());
    assert_eq!(format, Format::Jsonl);
    assert!(items[0].is_ok());
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/traffic")
        .join(name)
}

/// Entries from every fixture, plus one with a decision and every optional field.
fn sample_entries() -> Vec<Entry> {
    let mut all = Vec::new();
    for name in [
        "har/chrome_github.com_home.har",
        "har/chrome_h2_www.nghttp2.org.har",
        "har/capture-har_cnn.har",
    ] {
        all.extend(
            read_file(fixture(name), &Options::default())
                .unwrap()
                .map(Result::unwrap),
        );
    }
    all.extend(
        read_file(fixture("nasa-ksc-1995-08-01.log"), &Options::default())
            .unwrap()
            .take(500)
            .map(Result::unwrap),
    );
    all.push(Entry {
        seq: 0,
        at_us: 1,
        method: "PUT".into(),
        scheme: "https".into(),
        authority: "[::1]:8443".into(),
        path: "/caf%C3%A9".into(),
        query: "a=1&b=%22".into(),
        headers: vec![("x-é".into(), "\"quoted\"\n\u{7f}".into())],
        client_ip: Some("::1".into()),
        status: Some(599),
        response_bytes: Some(u64::MAX),
        duration_us: Some(0),
        response_headers: vec![("set-cookie".into(), "a=b".into())],
        decision: Some(json!({"z": [1, 2.5, null], "a": {"rule": "deny", "score": 0.1}})),
        body: None,
        request_id: None,
    });
    for (i, e) in all.iter_mut().enumerate() {
        e.seq = i as u64;
    }
    all
}

#[test]
fn jsonl_round_trip_is_byte_identical() {
    let entries = sample_entries();
    let mut writer = JsonlWriter::new(Vec::new());
    for e in &entries {
        writer.write(e).unwrap();
    }
    let first = writer.into_inner();

    let reader = Reader::new("rt.jsonl", Cursor::new(first.clone()), &Options::default()).unwrap();
    assert_eq!(reader.format(), Format::Jsonl);
    let back: Vec<Entry> = reader.map(Result::unwrap).collect();
    assert_eq!(back, entries);

    let second: Vec<u8> = back
        .iter()
        .flat_map(|e| to_jsonl_line(e).into_bytes())
        .collect();
    assert_eq!(first, second);

    // Field order is the declaration order; empty/None fields are left out.
    let text = String::from_utf8(first).unwrap();
    let nasa_line = text
        .lines()
        .find(|l| l.contains("sts-68-mcc-05.txt"))
        .unwrap();
    assert!(
        nasa_line.starts_with(r#"{"seq":"#)
            && nasa_line.contains(r#","at_us":807249601000000,"method":"GET","scheme":"http","authority":"localhost","path":"/shuttle/missions/sts-68/news/sts-68-mcc-05.txt","headers":[["x-log-host","in24.inetnebr.com"]],"status":200,"response_bytes":1839}"#),
        "{nasa_line}"
    );
}

fn file_sizes(files: &[PathBuf]) -> Vec<u64> {
    files
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .collect()
}

#[test]
fn rotating_writer_respects_caps() {
    let dir = tempfile::tempdir().unwrap();
    // Without the HAR bodies: one long line would leave too few lines for three files.
    let entries: Vec<Entry> = sample_entries()
        .into_iter()
        .map(|mut e| {
            e.body = None;
            e
        })
        .collect();
    let max_line = entries
        .iter()
        .map(|e| to_jsonl_line(e).len() as u64)
        .max()
        .unwrap();
    let (file_cap, total_cap) = (4 * max_line, 10 * max_line);

    let mut w = RotatingWriter::new(dir.path(), "rec", file_cap, total_cap).unwrap();
    for e in &entries {
        w.write(e).unwrap();
        assert!(w.total_bytes() <= total_cap);
    }
    w.flush().unwrap();
    let files = recorded_files(dir.path(), "rec").unwrap();
    assert_eq!(files, w.files());
    assert!(files.len() >= 3, "{files:?}");
    let sizes = file_sizes(&files);
    assert!(sizes.iter().all(|&s| s > 0 && s <= file_cap), "{sizes:?}");
    assert!(sizes.iter().sum::<u64>() <= total_cap);
    assert_eq!(sizes.iter().sum::<u64>(), w.total_bytes());
    // The oldest files were deleted: numbering does not start at 0 any more.
    assert!(!files[0].ends_with("rec-0000000000.jsonl"), "{files:?}");

    // What is left is whole lines, the newest entries, in order.
    let kept: Vec<Entry> = files
        .iter()
        .flat_map(|f| read_file(f, &Options::default()).unwrap())
        .map(Result::unwrap)
        .collect();
    let tail = &entries[entries.len() - kept.len()..];
    assert_eq!(
        kept.iter().map(|e| e.at_us).collect::<Vec<_>>(),
        tail.iter().map(|e| e.at_us).collect::<Vec<_>>()
    );
    drop(w);

    // A new writer continues the numbering and counts existing files in the total.
    let mut w = RotatingWriter::new(dir.path(), "rec", file_cap, total_cap).unwrap();
    w.write(&entries[0]).unwrap();
    w.flush().unwrap();
    let again = recorded_files(dir.path(), "rec").unwrap();
    assert!(again.last() > files.last());
    assert!(file_sizes(&again).iter().sum::<u64>() <= total_cap);

    // Other files in the directory are left alone.
    std::fs::write(dir.path().join("notes.txt"), "keep").unwrap();
    let mut w = RotatingWriter::new(dir.path(), "rec", file_cap, file_cap).unwrap();
    for e in &entries {
        w.write(e).unwrap();
    }
    drop(w);
    assert!(dir.path().join("notes.txt").exists());
    assert!(
        file_sizes(&recorded_files(dir.path(), "rec").unwrap())
            .iter()
            .sum::<u64>()
            <= file_cap
    );
}

#[test]
fn rotating_writer_refuses_bad_caps_and_huge_entries() {
    let dir = tempfile::tempdir().unwrap();
    assert!(RotatingWriter::new(dir.path(), "rec", 0, 10).is_err());
    assert!(RotatingWriter::new(dir.path(), "rec", 11, 10).is_err());
    assert!(RotatingWriter::new(dir.path(), "", 10, 10).is_err());
    assert!(RotatingWriter::new(dir.path(), "a/b", 10, 10).is_err());
    let mut w = RotatingWriter::new(dir.path(), "rec", 50, 100).unwrap();
    let e = &sample_entries()[0];
    let err = w.write(e).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert_eq!(w.total_bytes(), 0);
    assert!(recorded_files(dir.path(), "rec").unwrap().is_empty());
}

/// A recorded body and request id survive a JSONL round trip.
#[test]
fn recorded_bodies_and_request_ids_round_trip() {
    let mut e = sample_entries().remove(0);
    e.body = Some(outpost_traffic::RecordedBody {
        encoding: "gzip+base64".into(),
        data: "H4sIAAAAAAAAA8tIzcnJBwCGphA2BQAAAA==".into(),
        truncated: true,
    });
    e.request_id = Some("00000000000000ff".into());
    let line = to_jsonl_line(&e);
    assert!(line.contains(r#""truncated":true"#), "{line}");
    let back: Entry = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(back.body, e.body);
    assert_eq!(back.request_id, e.request_id);
}
