//! The built-in rules of each profile (README.md has them as tables).

use outpost_guest::cmcd::Cmcd;
use outpost_guest::url::extension;
use outpost_guest::{PriorityClass, RequestHead};

/// Playlist / manifest extensions.
pub const PLAYLIST_EXTENSIONS: [&str; 2] = ["m3u8", "mpd"];
/// Media segment extensions (including subtitle segments).
pub const SEGMENT_EXTENSIONS: [&str; 9] = [
    "ts", "m4s", "mp4", "aac", "m4a", "m4v", "cmfv", "cmfa", "vtt",
];
/// First path segments of beacons (both profiles).
pub const BEACON_SEGMENTS: [&str; 3] = ["beacon", "analytics", "collect"];
/// CMCD object types of media the player buffers (`bl` applies to these).
const CMCD_MEDIA: [&str; 3] = ["a", "v", "av"];
/// CMCD object types of other playback objects: captions, timed text.
const CMCD_TEXT: [&str; 2] = ["c", "tt"];

/// Commerce: path prefixes classed `critical`.
pub const COMMERCE_CRITICAL: [&str; 5] = [
    "/checkout",
    "/cart",
    "/payment",
    "/account/login",
    "/api/checkout",
];
/// Commerce: `POST` to these prefixes is `critical` (placing the order).
pub const COMMERCE_CRITICAL_POST: [&str; 1] = ["/api/order"];
/// Commerce: path prefixes classed `high`.
pub const COMMERCE_HIGH: [&str; 4] = ["/product", "/p/", "/search", "/api/product"];
/// Commerce: path prefixes classed `low` (besides beacons).
pub const COMMERCE_LOW: [&str; 3] = ["/recommendations", "/api/reco", "/reviews"];

/// The video profile, first match wins:
///
/// 1. playlists and manifests (`.m3u8`, `.mpd`, CMCD `ot=m`) → critical;
/// 2. live: anything under `/live/`, or media with CMCD `st=l` → critical;
/// 3. player startup: CMCD `su`, an init segment (CMCD `ot=i` or an `init`
///    file name), a DRM key (CMCD `ot=k`), or media with CMCD `ot=a|v|av` and
///    no `bl` or `bl=0` (nothing buffered) → critical;
/// 4. beacons → low;
/// 5. media segments (by extension or CMCD `ot`) → high;
/// 6. everything else → normal.
pub fn video(req: &RequestHead, cmcd: &Cmcd) -> PriorityClass {
    let ext = extension(&req.path)
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let ot = cmcd.text("ot").map(str::to_ascii_lowercase);
    let ot = ot.as_deref().unwrap_or("");
    if PLAYLIST_EXTENSIONS.contains(&ext.as_str()) || ot == "m" {
        return PriorityClass::Critical;
    }
    let cmcd_media = CMCD_MEDIA.contains(&ot);
    let media = SEGMENT_EXTENSIONS.contains(&ext.as_str())
        || cmcd_media
        || CMCD_TEXT.contains(&ot)
        || ot == "i";
    let live = cmcd
        .text("st")
        .is_some_and(|st| st.eq_ignore_ascii_case("l"));
    if req.path.starts_with("/live/") || (media && live) {
        return PriorityClass::Critical;
    }
    let no_buffer = cmcd_media && cmcd.number("bl").is_none_or(|bl| bl == 0);
    if cmcd.has("su")
        || ot == "i"
        || ot == "k"
        || no_buffer
        || (SEGMENT_EXTENSIONS.contains(&ext.as_str()) && is_init(&req.path))
    {
        return PriorityClass::Critical;
    }
    if is_beacon(&req.path) {
        return PriorityClass::Low;
    }
    if media {
        return PriorityClass::High;
    }
    // Thumbnails, images, API reads, pages.
    PriorityClass::Normal
}

/// The commerce profile, first match wins: checkout, cart, payment, login and
/// `POST /api/order` → critical; product pages and search → high;
/// recommendations, reviews and beacons → low; everything else → normal.
pub fn commerce(req: &RequestHead) -> PriorityClass {
    let path = req.path.as_str();
    let any = |prefixes: &[&str]| prefixes.iter().any(|p| path.starts_with(p));
    if any(&COMMERCE_CRITICAL) || (req.is_method("POST") && any(&COMMERCE_CRITICAL_POST)) {
        return PriorityClass::Critical;
    }
    if any(&COMMERCE_HIGH) {
        return PriorityClass::High;
    }
    if any(&COMMERCE_LOW) || is_beacon(path) {
        return PriorityClass::Low;
    }
    PriorityClass::Normal
}

/// The file name (without extension) is `init` or has an `init` word
/// (`init.mp4`, `init-v1.m4s`, `video_init.mp4`, `IS.init.mp4`).
fn is_init(path: &str) -> bool {
    let last = path.rsplit('/').next().unwrap_or("");
    let stem = last.rsplit_once('.').map_or(last, |(s, _)| s);
    stem.split(['_', '-', '.'])
        .any(|w| w.eq_ignore_ascii_case("init"))
}

/// The first path segment is `beacon`, `analytics` or `collect`, maybe with an
/// extension (`/beacon.gif`, `/analytics/events`), but not a longer word
/// (`/collections/...`).
pub fn is_beacon(path: &str) -> bool {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    let stem = first.split('.').next().unwrap_or("");
    BEACON_SEGMENTS.iter().any(|b| stem.eq_ignore_ascii_case(b))
}
