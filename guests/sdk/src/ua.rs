//! Client class from the User-Agent: `mobile`, `tablet`, `tv`, `desktop`, `bot`.
//! One table for every guest (the rewrite guest's `client-class` rule, the
//! rendition guest's per-class caps), so they never disagree about a client.

use crate::text::Prepared;

/// The classes [`client_class`] returns.
pub const CLASSES: &[&str] = &["mobile", "tablet", "tv", "desktop", "bot"];

/// Lower-case substrings that mark automated clients.
const BOT: &[&str] = &[
    "bot", // first: `is_bot` treats it apart
    "crawl",
    "spider",
    "slurp",
    "curl/",
    "wget/",
    "python-requests",
    "python-urllib",
    "aiohttp",
    "go-http-client",
    "headlesschrome",
    "phantomjs",
    "scrapy",
    "libwww-perl",
    "apache-httpclient",
    "java/",
    "node-fetch",
    "axios/",
    "postmanruntime",
    "facebookexternalhit",
    "bingpreview",
    "mediapartners-google",
    "lighthouse",
    "pingdom",
    "uptimerobot",
    "httpie/",
    "okhttp/", // bare okhttp: scripts; apps add their own product token first
];

/// Lower-case substrings that look like a bot marker but are devices.
const NOT_BOT: &[&str] = &["cubot"];

/// Lower-case substrings of TVs, set-top boxes, streaming sticks and consoles.
const TV: &[&str] = &[
    "smarttv",
    "smart-tv",
    "smart tv",
    "tizen",
    "web0s",
    "webos",
    "netcast",
    "appletv",
    "apple tv",
    "tvos",
    "roku",
    "crkey",
    "bravia",
    "hbbtv",
    "android tv",
    "googletv",
    "google tv",
    "viera",
    "philipstv",
    "aquos",
    "xbox",
    "playstation 4",
    "playstation 5",
];

/// Lower-case substrings of tablets (checked after bots and TVs).
const TABLET: &[&str] = &["ipad", "kindle", "silk/", "playbook"];

/// Lower-case substrings of phones (checked after tablets).
const MOBILE: &[&str] = &[
    "mobi",
    "iphone",
    "ipod",
    "windows phone",
    "blackberry",
    "bb10",
    "opera mini",
    "iemobile",
];

/// Is there an Amazon Fire TV model token (` AFTB`, `;AFTMM` ...) in `ua`?
fn has_fire_tv_model(ua: &str) -> bool {
    let b = ua.as_bytes();
    ua.match_indices("AFT").any(|(i, _)| {
        let before = i.checked_sub(1).and_then(|j| b.get(j)).copied();
        let after = b.get(i + 3).copied();
        matches!(before, Some(b' ' | b';' | b'(')) && after.is_some_and(|c| c.is_ascii_uppercase())
    })
}

// Bits of `TABLES.find`'s answer, in the order of the tables in [`TABLES`].
const BOT_WORD: u64 = 1; // `bot`
const BOT_OTHER: u64 = 1 << 1; // every other bot marker
const IS_TV: u64 = 1 << 2;
const IS_TABLET: u64 = 1 << 3;
const IS_MOBILE: u64 = 1 << 4;
const ANDROID: u64 = 1 << 5;
const MOBILE_WORD: u64 = 1 << 6;
const TABLET_WORD: u64 = 1 << 7;
const TABLET_PC: u64 = 1 << 8;

/// Every table [`client_class`] consults, indexed at compile time and matched in
/// one pass over the User-Agent.
static TABLES: Prepared<{ BOT.len() + TV.len() + TABLET.len() + MOBILE.len() + 4 }> =
    Prepared::new(&[
        BOT.split_at(1).0,
        BOT.split_at(1).1,
        TV,
        TABLET,
        MOBILE,
        &["android"],
        &["mobile"],
        &["tablet"],
        &["tablet pc"],
    ]);

/// A bot marker in `lower` (whose tables are `found`); `bot` inside a device name
/// (CUBOT) does not count.
fn is_bot(lower: &str, found: u64) -> bool {
    // Only `bot` can be a device name's part; any other marker decides.
    if found & BOT_OTHER != 0 {
        return true;
    }
    if found & BOT_WORD == 0 {
        return false;
    }
    let devices: usize = NOT_BOT.iter().map(|d| lower.matches(d).count()).sum();
    lower.matches("bot").count() > devices
}

/// The class of a client from its User-Agent: `bot`, `tv`, `tablet`, `mobile`
/// or `desktop`, checked in that order with the tables above. An absent or
/// blank User-Agent is `bot` (every browser sends one).
pub fn client_class(ua: Option<&str>) -> &'static str {
    let Some(ua) = ua.map(str::trim).filter(|u| !u.is_empty()) else {
        return "bot";
    };
    let lower = ua.to_ascii_lowercase();
    let found = TABLES.find(&lower);
    let has = |bits: u64| found & bits != 0;
    if is_bot(&lower, found) {
        return "bot";
    }
    if has(IS_TV) || has_fire_tv_model(ua) {
        return "tv";
    }
    let android = has(ANDROID);
    let mobile_token = has(MOBILE_WORD);
    if has(IS_TABLET) || (android && !mobile_token) || (has(TABLET_WORD) && !has(TABLET_PC)) {
        return "tablet";
    }
    if has(IS_MOBILE) || (android && mobile_token) {
        return "mobile";
    }
    "desktop"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies() {
        let cases = [
            (None, "bot"),
            (Some(""), "bot"),
            (Some("curl/8.5.0"), "bot"),
            (
                Some(
                    "Mozilla/5.0 (Linux; Android 9; CUBOT X19) AppleWebKit/537.36 Mobile Safari/537.36",
                ),
                "mobile",
            ),
            (
                Some("Mozilla/5.0 (Linux; Android 9; CUBOT X19) Googlebot/2.1"),
                "bot",
            ),
            (
                Some("Mozilla/5.0 (Linux; Android 7.1.2; AFTMM Build/NS6264) AppleWebKit/537.36"),
                "tv",
            ),
            (
                Some(
                    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36 Edg/120.0",
                ),
                "desktop",
            ),
        ];
        for (ua, want) in cases {
            assert_eq!(client_class(ua), want, "{ua:?}");
        }
    }
}
