//! `shed`: an admit guest that sorts requests into priority classes for a
//! live-video service, so the host sheds bots and beacons before playback.
//! See README.md for the contract.

use outpost_guest::url::{extension, split_list};
use outpost_guest::{
    Admission, AdmitDecision, AdmitHook, PriorityClass, RequestHead, Response, host,
};

/// User-Agent substrings classed `bulk` when `bulk_user_agents` is not set.
pub const DEFAULT_BULK_USER_AGENTS: &str = "bot,crawler,spider";

/// The header a trusted client (or proxy) may set to choose the class.
pub const PRIORITY_HEADER: &str = "x-outpost-priority";

/// The header naming the client for per-client fairness.
pub const CLIENT_ID_HEADER: &str = "x-client-id";

/// Client keys longer than this are ignored (the IP is used instead).
const MAX_CLIENT_ID: usize = 128;

const PLAYLIST_EXTENSIONS: [&str; 2] = ["m3u8", "mpd"];
const SEGMENT_EXTENSIONS: [&str; 8] = ["ts", "m4s", "mp4", "aac", "m4a", "m4v", "cmfv", "cmfa"];
const BEACON_SEGMENTS: [&str; 3] = ["beacon", "analytics", "collect"];

/// The guest.
pub struct Shed;

impl AdmitHook for Shed {
    fn on_admit(req: &RequestHead) -> AdmitDecision {
        decide(req, &Config::from_host())
    }
}

outpost_guest::export_admit!(Shed);

/// The guest's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `class.<name>`: path prefixes per class, highest class first.
    pub class_prefixes: Vec<(PriorityClass, Vec<String>)>,
    /// `bulk_user_agents`: lower-cased User-Agent substrings classed `bulk`.
    pub bulk_user_agents: Vec<String>,
    /// `reject_methods`: upper-cased methods answered with 405.
    pub reject_methods: Vec<String>,
    /// `trust_priority_header`: honour `x-outpost-priority`.
    pub trust_priority_header: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            class_prefixes: Vec::new(),
            bulk_user_agents: split_list(DEFAULT_BULK_USER_AGENTS),
            reject_methods: Vec::new(),
            trust_priority_header: false,
        }
    }
}

impl Config {
    /// Read the configuration; bad values are logged and replaced by defaults.
    pub fn from_host() -> Self {
        let mut class_prefixes = Vec::new();
        for class in PriorityClass::ALL {
            let key = format!("class.{}", class.as_str());
            if let Some(prefixes) = host::config_list(&key) {
                let (good, bad): (Vec<String>, Vec<String>) =
                    prefixes.into_iter().partition(|p| p.starts_with('/'));
                for p in bad {
                    host::warn(&format!(
                        "config `{key}`: prefix {p:?} does not start with `/`; ignored"
                    ));
                }
                if !good.is_empty() {
                    class_prefixes.push((class, good));
                }
            }
        }
        for (key, _) in host::config_all() {
            if let Some(name) = key.strip_prefix("class.")
                && PriorityClass::parse(name).is_none_or(|c| c.as_str() != name)
            {
                host::warn(&format!(
                    "config `{key}`: unknown class (use critical, high, normal, low, bulk); ignored"
                ));
            }
        }
        Self {
            class_prefixes,
            bulk_user_agents: host::config_list("bulk_user_agents")
                .unwrap_or_else(|| split_list(DEFAULT_BULK_USER_AGENTS))
                .into_iter()
                .map(|s| s.to_lowercase())
                .collect(),
            reject_methods: host::config_list("reject_methods")
                .unwrap_or_default()
                .into_iter()
                .map(|s| s.to_ascii_uppercase())
                .collect(),
            trust_priority_header: host::config_bool("trust_priority_header", false),
        }
    }
}

/// The verdict for `req` under `config`.
pub fn decide(req: &RequestHead, config: &Config) -> AdmitDecision {
    if config
        .reject_methods
        .iter()
        .any(|m| m.eq_ignore_ascii_case(&req.method))
    {
        let allow = "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH";
        return AdmitDecision::reject(
            Response::text(405, "method not allowed\n").header("allow", allow),
        );
    }
    let mut admission = Admission::new(classify(req, config));
    if let Some(key) = client_key(req) {
        admission = admission.client_key(key);
    }
    AdmitDecision::Admit(admission)
}

/// The client key: a usable `x-client-id` header, else the client IP.
pub fn client_key(req: &RequestHead) -> Option<String> {
    let header = req
        .header(CLIENT_ID_HEADER)
        .map(str::trim)
        .filter(|id| !id.is_empty() && id.len() <= MAX_CLIENT_ID);
    match header {
        Some(id) => Some(id.to_string()),
        None if !req.client.ip.is_empty() => Some(req.client.ip.clone()),
        None => None,
    }
}

/// The priority class of `req`, first match wins:
///
/// 1. `x-outpost-priority`, when `trust_priority_header` is on and it names a class;
/// 2. a User-Agent containing a `bulk_user_agents` substring → bulk;
/// 3. the `class.<name>` path prefixes, highest class first;
/// 4. the defaults: playlists (`.m3u8`, `.mpd`) and `/live/` → critical; beacons
///    (`/beacon`, `/analytics`, `/collect`) → low; media segments → high;
///    everything else (images, API reads ...) → normal.
pub fn classify(req: &RequestHead, config: &Config) -> PriorityClass {
    if config.trust_priority_header
        && let Some(value) = req.header(PRIORITY_HEADER)
    {
        match PriorityClass::parse(value) {
            Some(class) => return class,
            None => host::debug(&format!("ignoring {PRIORITY_HEADER}: {value:?}")),
        }
    }
    if let Some(ua) = req.header("user-agent") {
        let ua = ua.to_lowercase();
        if config
            .bulk_user_agents
            .iter()
            .any(|needle| ua.contains(needle.as_str()))
        {
            return PriorityClass::Bulk;
        }
    }
    for (class, prefixes) in &config.class_prefixes {
        if prefixes.iter().any(|p| req.path.starts_with(p.as_str())) {
            return *class;
        }
    }
    default_class(req)
}

/// The built-in classes for a live-video service.
pub fn default_class(req: &RequestHead) -> PriorityClass {
    let ext = extension(&req.path).map(str::to_ascii_lowercase);
    let ext = ext.as_deref().unwrap_or("");
    if PLAYLIST_EXTENSIONS.contains(&ext) || req.path.starts_with("/live/") {
        return PriorityClass::Critical;
    }
    if is_beacon(&req.path) {
        return PriorityClass::Low;
    }
    if SEGMENT_EXTENSIONS.contains(&ext) {
        return PriorityClass::High;
    }
    // Images, thumbnails, API reads and everything else.
    PriorityClass::Normal
}

/// The first path segment is `beacon`, `analytics` or `collect`, maybe with an
/// extension (`/beacon.gif`, `/collect?v=1`, `/analytics/events`), but not a
/// longer word (`/collections/...`).
fn is_beacon(path: &str) -> bool {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    let stem = first.split('.').next().unwrap_or("");
    BEACON_SEGMENTS.iter().any(|b| stem.eq_ignore_ascii_case(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_guest::{LogLevel, testing};

    fn class_of(req: RequestHead) -> PriorityClass {
        match Shed::on_admit(&req) {
            AdmitDecision::Admit(a) => a.class,
            AdmitDecision::Reject(r) => panic!("rejected with {}", r.status),
        }
    }

    fn get(path: &str) -> PriorityClass {
        class_of(RequestHead::get(path))
    }

    #[test]
    fn critical_playlists_and_live() {
        testing::reset();
        assert_eq!(get("/vod/movie/master.m3u8"), PriorityClass::Critical);
        assert_eq!(get("/vod/movie/manifest.MPD"), PriorityClass::Critical);
        assert_eq!(get("/live/channel1/seg_1001.ts"), PriorityClass::Critical);
        assert_eq!(get("/live/channel1/init.mp4"), PriorityClass::Critical);
        assert_eq!(
            get("/live/channel1/index.m3u8?token=abc"),
            PriorityClass::Critical
        );
    }

    #[test]
    fn high_vod_segments() {
        testing::reset();
        for p in [
            "/vod/a/seg1.ts",
            "/vod/a/chunk-3.m4s",
            "/vod/a/full.mp4",
            "/vod/a/audio.aac",
        ] {
            assert_eq!(get(p), PriorityClass::High, "{p}");
        }
        // `/livestream/` is not `/live/`.
        assert_eq!(get("/livestream/seg.ts"), PriorityClass::High);
    }

    #[test]
    fn normal_images_and_api() {
        testing::reset();
        assert_eq!(get("/thumbs/123.jpg"), PriorityClass::Normal);
        assert_eq!(get("/img/poster.webp"), PriorityClass::Normal);
        assert_eq!(get("/api/v1/catalog"), PriorityClass::Normal);
        assert_eq!(get("/"), PriorityClass::Normal);
        assert_eq!(get("/collections/drama"), PriorityClass::Normal);
    }

    #[test]
    fn low_beacons() {
        testing::reset();
        assert_eq!(get("/beacon"), PriorityClass::Low);
        assert_eq!(get("/beacon.gif?e=play"), PriorityClass::Low);
        assert_eq!(get("/analytics/events"), PriorityClass::Low);
        assert_eq!(
            class_of(RequestHead::new("POST", "/collect")),
            PriorityClass::Low
        );
        assert_eq!(
            class_of(RequestHead::new("POST", "/Beacon/v2")),
            PriorityClass::Low
        );
    }

    #[test]
    fn bulk_bots() {
        testing::reset();
        let bot = |ua: &str| {
            class_of(RequestHead::get("/live/x/index.m3u8").with_header("User-Agent", ua))
        };
        assert_eq!(
            bot("Mozilla/5.0 (compatible; Googlebot/2.1)"),
            PriorityClass::Bulk
        );
        assert_eq!(bot("SomeCrawler/1.0"), PriorityClass::Bulk);
        assert_eq!(bot("spider-man"), PriorityClass::Bulk);
        assert_eq!(
            bot("Mozilla/5.0 (iPhone) AppleWebKit"),
            PriorityClass::Critical
        );

        testing::set_config(&[("bulk_user_agents", "curl, Wget")]);
        assert_eq!(bot("curl/8.0"), PriorityClass::Bulk);
        assert_eq!(bot("wget/1.2"), PriorityClass::Bulk);
        assert_eq!(bot("Googlebot"), PriorityClass::Critical);

        testing::set_config(&[("bulk_user_agents", "")]);
        assert_eq!(bot("Googlebot"), PriorityClass::Critical);
    }

    #[test]
    fn class_overrides_come_first_highest_first() {
        testing::set_config(&[
            ("class.critical", "/checkout, /live/"),
            ("class.low", "/checkout/slow,/vod/"),
            ("class.bulk", "/prefetch/"),
        ]);
        assert_eq!(get("/checkout/slow/x"), PriorityClass::Critical);
        assert_eq!(get("/vod/a/seg.ts"), PriorityClass::Low);
        assert_eq!(get("/vod/a/master.m3u8"), PriorityClass::Low);
        assert_eq!(get("/prefetch/a.jpg"), PriorityClass::Bulk);
        assert_eq!(get("/other/seg.ts"), PriorityClass::High);
    }

    #[test]
    fn priority_header_only_when_trusted() {
        testing::reset();
        let req =
            || RequestHead::get("/thumbs/1.jpg").with_header("X-Outpost-Priority", "critical");
        assert_eq!(class_of(req()), PriorityClass::Normal);
        testing::set_config(&[("trust_priority_header", "true")]);
        assert_eq!(class_of(req()), PriorityClass::Critical);
        let bogus = RequestHead::get("/thumbs/1.jpg").with_header("x-outpost-priority", "urgent!!");
        assert_eq!(class_of(bogus), PriorityClass::Normal);
        let low = RequestHead::get("/live/a.ts").with_header("x-outpost-priority", " Bulk ");
        assert_eq!(class_of(low), PriorityClass::Bulk);
    }

    #[test]
    fn rejects_configured_methods() {
        testing::set_config(&[("reject_methods", "TRACE, connect")]);
        for m in ["TRACE", "CONNECT", "trace"] {
            match Shed::on_admit(&RequestHead::new(m, "/")) {
                AdmitDecision::Reject(r) => {
                    assert_eq!(r.status, 405);
                    assert!(r.get_header("allow").is_some());
                }
                other => panic!("{m}: {other:?}"),
            }
        }
        assert_eq!(
            class_of(RequestHead::new("GET", "/")),
            PriorityClass::Normal
        );
        testing::reset();
        assert_eq!(
            class_of(RequestHead::new("TRACE", "/")),
            PriorityClass::Normal
        );
    }

    #[test]
    fn admission_details() {
        testing::reset();
        let req = RequestHead::get("/a").with_client_ip("2001:db8::1");
        assert_eq!(
            Shed::on_admit(&req),
            AdmitDecision::Admit(Admission::new(PriorityClass::Normal).client_key("2001:db8::1"))
        );
        let req = req.with_header("X-Client-Id", " user-42 ");
        let AdmitDecision::Admit(a) = Shed::on_admit(&req) else {
            panic!("rejected");
        };
        assert_eq!(a.cost, 1);
        assert_eq!(a.client_key.as_deref(), Some("user-42"));

        let long = "x".repeat(200);
        let req = RequestHead::get("/a")
            .with_client_ip("192.0.2.7")
            .with_header("x-client-id", &long);
        assert_eq!(client_key(&req).as_deref(), Some("192.0.2.7"));
        let anon = RequestHead::get("/a").with_client_ip("");
        assert_eq!(client_key(&anon), None);
    }

    #[test]
    fn bad_config_values_warn() {
        testing::reset();
        testing::set_config(&[
            ("class.urgent", "/x"),
            ("class.high", "nope,/ok"),
            ("trust_priority_header", "sure"),
        ]);
        let c = Config::from_host();
        assert_eq!(
            c.class_prefixes,
            vec![(PriorityClass::High, vec!["/ok".to_string()])]
        );
        assert!(!c.trust_priority_header);
        let warnings = testing::take_logs()
            .into_iter()
            .filter(|(l, _)| *l == LogLevel::Warn)
            .count();
        assert_eq!(warnings, 3);
    }
}
