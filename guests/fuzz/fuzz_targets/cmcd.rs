//! `outpost_guest::cmcd` on arbitrary text: `Cmcd::parse`, `parse_into` across
//! lines, and `Cmcd::from_request` with the lines as the four CMCD headers and the
//! last as the `CMCD` query parameter. The module promises it never panics and
//! keeps at most `MAX_KEYS` keys.
#![no_main]

use libfuzzer_sys::fuzz_target;
use outpost_guest::RequestHead;
use outpost_guest::cmcd::{Cmcd, HEADERS, MAX_KEYS};

/// Every accessor, so none of them panics on what the parser kept.
fn exercise(c: &Cmcd) {
    assert!(c.entries.len() <= MAX_KEYS, "{} keys kept", c.entries.len());
    let _ = (
        c.is_empty(),
        c.br(),
        c.bl(),
        c.mtp(),
        c.tb(),
        c.sid(),
        c.cid(),
    );
    let _ = (
        c.ot(),
        c.sf(),
        c.st(),
        c.dl(),
        c.su(),
        c.bs(),
        c.rtp(),
        c.nor(),
    );
    let _ = c.is_playing_session();
    for key in c.entries.keys() {
        let _ = (c.get(key), c.uint(key), c.has(key), c.number(key));
        let _ = (c.scalar_text(key), c.text(key), c.flag(key));
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    exercise(&Cmcd::parse(&text));

    let lines: Vec<&str> = text.split('\n').collect();
    let mut merged = Cmcd::default();
    for line in &lines {
        merged.parse_into(line);
    }
    exercise(&merged);

    let mut req = RequestHead::new("GET", "/live/seg.m4s");
    for (name, value) in HEADERS.iter().zip(&lines) {
        req.headers.push(outpost_guest::Header::new(*name, *value));
    }
    if let Some(q) = lines.get(HEADERS.len()) {
        req.query = format!("CMCD={q}");
    }
    exercise(&Cmcd::from_request(&req));
});
