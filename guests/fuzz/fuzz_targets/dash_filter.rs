//! `rendition::dash::filter` on arbitrary bytes, caps from the first bytes (see
//! `split_caps`). Never panics; when it produces a body: only whole elements (and
//! their blank surroundings) are cut, so the output is UTF-8 and no longer than the
//! input; nothing dropped (always so with unbounded caps) means the input unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use outpost_guests_fuzz::split_caps;
use rendition::dash;

fuzz_target!(|data: &[u8]| {
    let (caps, use_average, body) = split_caps(data);
    let _ = dash::looks_like_mpd(body);
    let _ = dash::is_mpd(body);
    let Some(out) = dash::filter(body, &caps, use_average) else {
        return;
    };
    assert!(
        std::str::from_utf8(&out.body).is_ok(),
        "output is not UTF-8"
    );
    assert!(out.body.len() <= body.len(), "output grew");
    if caps.is_unbounded() {
        assert_eq!(out.dropped, 0, "unbounded caps dropped a Representation");
    }
    if out.dropped == 0 {
        assert_eq!(out.body, body, "nothing dropped, yet the body changed");
    }
});
