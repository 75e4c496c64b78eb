//! `rendition`: a response guest that trims the bit-rate ladder of HLS
//! multivariant playlists and DASH MPDs by policy (global, client class, route,
//! load brownout, CMCD), and answers with CMSD. See README.md.

/// CMCD parsing lives in the guest SDK (shared with the `shed` guest).
pub use outpost_guest::cmcd;
pub mod cmsd;
pub mod dash;
pub mod hls;
pub mod policy;
pub mod select;

use outpost_guest::{
    CheckContext, ConfigCheck, ConfigProblem, LoadSignals, RequestHead, ResponseEdit, ResponseHead,
    ResponseHook, host,
};
use policy::{Config, Decision, LEVEL_HEADER, decide};

/// The header added when the guest filtered a manifest.
pub const REPORT_HEADER: &str = "x-outpost-rendition";

/// Media types of HLS playlists (compared lower-case).
const HLS_TYPES: [&str; 4] = [
    "application/vnd.apple.mpegurl",
    "application/x-mpegurl",
    "audio/mpegurl",
    "audio/x-mpegurl",
];

/// The media type of DASH MPDs.
const DASH_TYPE: &str = "application/dash+xml";

/// The guest.
pub struct Rendition;

impl ResponseHook for Rendition {
    fn on_response(req: &RequestHead, resp: &ResponseHead, body: Option<&[u8]>) -> ResponseEdit {
        with_config(|cfg| {
            // Read the load only when something depends on it.
            let load = if cfg.brownout.is_empty() {
                LoadSignals::default()
            } else {
                host::load()
            };
            respond(cfg, &load, req, resp, body)
        })
    }
}

/// At load: the configuration is parsed once, and every fresh instance starts
/// with it.
impl outpost_guest::Init for Rendition {
    fn init() {
        with_config(|_| ());
    }
}

outpost_guest::export_init!(Rendition);

/// Run `f` with the configuration, parsed once per instance (see
/// `host::with_config`), or once at load when the node pre-initializes.
fn with_config<R>(f: impl FnOnce(&Config) -> R) -> R {
    static CONFIG: std::sync::OnceLock<Config> = std::sync::OnceLock::new();
    host::with_config(&CONFIG, || Config::from_host().0, f)
}

impl ConfigCheck for Rendition {
    fn check_config(_: &CheckContext) -> Vec<ConfigProblem> {
        Config::from_host().1
    }
}

outpost_guest::export_response!(Rendition, check: Rendition);

/// Which manifest format a body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Manifest {
    /// An HLS playlist.
    Hls,
    /// A DASH MPD.
    Dash,
}

/// Classify a response body: by content, with the content type as a hint.
pub fn manifest_kind(resp: &ResponseHead, body: &[u8]) -> Option<Manifest> {
    if hls::is_playlist(body) {
        return Some(Manifest::Hls);
    }
    let ct = resp.content_type();
    let typed_dash = ct.as_deref() == Some(DASH_TYPE);
    let typed_hls = ct.as_deref().is_some_and(|t| HLS_TYPES.contains(&t));
    if !typed_hls
        && (typed_dash || ct.is_none() || dash::looks_like_mpd(body))
        && dash::is_mpd(body)
    {
        return Some(Manifest::Dash);
    }
    None
}

/// The whole decision, a pure function of its inputs.
pub fn respond(
    cfg: &Config,
    load: &LoadSignals,
    req: &RequestHead,
    resp: &ResponseHead,
    body: Option<&[u8]>,
) -> ResponseEdit {
    let mut edit = ResponseEdit::default();
    if !(200..300).contains(&resp.status) {
        return edit;
    }
    let d = decide(cfg, req, load);
    if resp.status == 200
        && let Some(body) = body
        && !d.caps.is_unbounded()
        && let Some(kind) = manifest_kind(resp, body)
    {
        let filtered = match kind {
            Manifest::Hls => hls::filter(body, &d.caps, cfg.use_average_bandwidth),
            Manifest::Dash => dash::filter(body, &d.caps, cfg.use_average_bandwidth),
        };
        if let Some(f) = filtered
            && f.dropped > 0
        {
            edit = edit
                .set_header(REPORT_HEADER, &report(&f, &d))
                // The body differs from the origin's: its validator no longer applies.
                .remove_header("etag")
                .body(f.body);
        }
    }
    if !cfg.brownout.is_empty() {
        let level = d.engaged.to_string();
        let key = policy::level_key(&req.route);
        if outpost_guest::host::shared_get(&key).as_deref() != Some(level.as_str()) {
            outpost_guest::host::shared_set(&key, &level);
        }
        edit = edit.set_header(LEVEL_HEADER, &level);
    }
    if cfg.cmsd
        && let Some(entry) = cmsd::dynamic_entry(cmsd::SERVER_ID, d.etp_kbps, d.mb_kbps())
    {
        // Appended: the origin's CMSD-Dynamic entries (and CMSD-Static) stay.
        edit = edit.append_header(cmsd::DYNAMIC, &entry);
    }
    edit
}

/// The `x-outpost-rendition` value: `kept=N dropped=M` and the limits in force.
fn report(f: &hls::Filtered, d: &Decision) -> String {
    let mut s = format!("kept={} dropped={}", f.kept, f.dropped);
    let c = &d.caps;
    if let Some(b) = c.max_bandwidth {
        s.push_str(&format!(" cap={b}"));
    }
    if let Some(h) = c.max_height {
        s.push_str(&format!(" height={h}"));
    }
    if let Some(w) = c.max_width {
        s.push_str(&format!(" width={w}"));
    }
    if let Some(r) = c.max_frame_rate {
        s.push_str(&format!(" fps={r}"));
    }
    if !c.deny_codecs.is_empty() {
        s.push_str(&format!(" deny={}", c.deny_codecs.join("+")));
    }
    if !c.allow_codecs.is_empty() {
        s.push_str(" allow=");
        let lists: Vec<String> = c.allow_codecs.iter().map(|l| l.join("+")).collect();
        s.push_str(&lists.join("/"));
    }
    if d.applied > 0 {
        s.push_str(&format!(" level={}", d.applied));
    }
    if let Some(class) = d.class {
        s.push_str(&format!(" class={}", class.as_str()));
    }
    s
}

#[cfg(test)]
mod tests;
