//! DASH MPDs: filter video `Representation`s by a text-level scan.

use crate::hls::Filtered;
use crate::select::Caps;

/// Is `body` an MPD (valid UTF-8 with an `<MPD` element)?
pub fn is_mpd(body: &[u8]) -> bool {
    std::str::from_utf8(body).is_ok_and(|s| s.contains("<MPD"))
}

/// Filter the video Representations of an MPD. `None` when there are none.
pub fn filter(_body: &[u8], _caps: &Caps, _use_average: bool) -> Option<Filtered> {
    None
}

/// A cheap sniff: does the start of `body` look like XML with an MPD?
pub fn looks_like_mpd(body: &[u8]) -> bool {
    let head = body.get(..body.len().min(4096)).unwrap_or(body);
    head.windows(4).any(|w| w == b"<MPD")
}
