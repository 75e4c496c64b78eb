//! `rendition::hls::filter` on arbitrary bytes, caps from the first bytes (see
//! `split_caps`). Never panics; when it produces a body:
//! - an input starting with `#EXTM3U` (after an optional BOM) still does;
//! - variants kept + dropped = variants found, and at least min(found, 2) are kept;
//! - only whole lines are removed: the output is UTF-8 and no longer than the input;
//! - nothing dropped (always so with unbounded caps) means the input unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use outpost_guests_fuzz::split_caps;
use rendition::hls;

fn header(body: &[u8]) -> Option<&'static [u8]> {
    if body.starts_with(b"\xEF\xBB\xBF#EXTM3U") {
        Some(b"\xEF\xBB\xBF#EXTM3U")
    } else if body.starts_with(b"#EXTM3U") {
        Some(b"#EXTM3U")
    } else {
        None
    }
}

fuzz_target!(|data: &[u8]| {
    let (caps, use_average, body) = split_caps(data);
    let _ = hls::is_playlist(body);
    let Some(out) = hls::filter(body, &caps, use_average) else {
        return;
    };
    if let Some(h) = header(body) {
        assert!(
            out.body.starts_with(h),
            "the output lost its {:?} header",
            String::from_utf8_lossy(h)
        );
    }
    let lines: Vec<&[u8]> = body.split_inclusive(|&b| b == b'\n').collect();
    let found = hls::variants(&lines).len();
    assert_eq!(out.kept + out.dropped, found, "kept + dropped != variants");
    assert!(out.kept >= found.min(2), "kept {} of {found}", out.kept);
    assert!(
        std::str::from_utf8(&out.body).is_ok(),
        "output is not UTF-8"
    );
    assert!(out.body.len() <= body.len(), "output grew");
    if caps.is_unbounded() {
        assert_eq!(out.dropped, 0, "unbounded caps dropped a variant");
    }
    if out.dropped == 0 {
        assert_eq!(out.body, body, "nothing dropped, yet the body changed");
    } else {
        assert!(out.body.len() < body.len(), "dropped variants, same length");
    }
});
