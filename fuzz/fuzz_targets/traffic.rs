//! The outpost-traffic readers on arbitrary bytes: `Reader::new` with format
//! detection, then with each format forced, iterating every item. Malformed input
//! is an error item or an `Err` from `Reader::new`; it must never panic.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use outpost_traffic::{Format, Options, Reader, Spread, detect};

/// Items read at most per reader: a CLF/JSONL input of N bytes has at most N + 1
/// lines, so this only bounds pathological readers.
const MAX_ITEMS: usize = 100_000;

fn read_all(data: &[u8], options: &Options) {
    let Ok(reader) = Reader::new("fuzz", Cursor::new(data.to_vec()), options) else {
        return;
    };
    if let Some(f) = options.format {
        assert_eq!(reader.format(), f);
    } else {
        assert_eq!(reader.format(), detect(data));
    }
    let mut last_seq = None;
    for (n, item) in reader.enumerate() {
        assert!(n < MAX_ITEMS, "reader does not end");
        match item {
            Ok(entry) => {
                // Entries come in input order.
                if let Some(prev) = last_seq {
                    assert!(entry.seq > prev, "seq {} after {prev}", entry.seq);
                }
                last_seq = Some(entry.seq);
                let _ = entry.target();
                let _ = entry.header("host");
                let _ = outpost_traffic::to_jsonl_line(&entry);
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    read_all(data, &Options::default());
    for format in [Format::Har, Format::Clf, Format::Jsonl] {
        read_all(
            data,
            &Options {
                format: Some(format),
                ..Options::default()
            },
        );
    }
    // CLF timestamps placed as recorded, and a tiny line limit.
    read_all(
        data,
        &Options {
            format: Some(Format::Clf),
            spread: Spread::Same,
            max_line_bytes: 16,
            ..Options::default()
        },
    );
    read_all(
        data,
        &Options {
            format: Some(Format::Jsonl),
            max_line_bytes: 16,
            ..Options::default()
        },
    );
});
