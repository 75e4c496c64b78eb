//! Native tests of the whole guest.

mod dash_mpd;
mod hls_playlists;
mod policies;
mod properties;

use crate::policy::Config;
use crate::{REPORT_HEADER, Rendition, respond};
use outpost_guest::{HeaderOp, LoadSignals, RequestHead, ResponseEdit, ResponseHead, ResponseHook};

/// A config from pairs that must have no problems.
pub fn config(pairs: &[(&str, &str)]) -> Config {
    let owned: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect();
    let (cfg, problems) = Config::from_pairs(&owned);
    assert!(problems.is_empty(), "{problems:?}");
    cfg
}

pub fn hls_head() -> ResponseHead {
    ResponseHead::new(200).with_header("Content-Type", "application/vnd.apple.mpegurl")
}

pub fn dash_head() -> ResponseHead {
    ResponseHead::new(200).with_header("Content-Type", "application/dash+xml")
}

/// Run the pure decision with `pairs`, idle load, a plain GET.
pub fn run_with(pairs: &[(&str, &str)], head: &ResponseHead, body: &str) -> ResponseEdit {
    respond(
        &config(pairs),
        &LoadSignals::default(),
        &RequestHead::get("/master.m3u8"),
        head,
        Some(body.as_bytes()),
    )
}

/// Run through the exported hook with the mock host's config.
pub fn run_hook(req: &RequestHead, head: &ResponseHead, body: &str) -> ResponseEdit {
    Rendition::on_response(req, head, Some(body.as_bytes()))
}

pub fn body_of(edit: &ResponseEdit) -> String {
    String::from_utf8(edit.body.clone().unwrap_or_default()).unwrap()
}

pub fn header(edit: &ResponseEdit, name: &str) -> Option<String> {
    edit.headers.iter().find_map(|op| match op {
        HeaderOp::Set(h) | HeaderOp::Append(h) if h.name == name => {
            h.value_str().map(str::to_string)
        }
        _ => None,
    })
}

pub fn report(edit: &ResponseEdit) -> Option<String> {
    header(edit, REPORT_HEADER)
}

/// Remove exact `pieces` (each must occur once) from `doc`.
pub fn without(doc: &str, pieces: &[&str]) -> String {
    let mut out = doc.to_string();
    for p in pieces {
        assert_eq!(out.matches(p).count(), 1, "piece not unique: {p}");
        out = out.replacen(p, "", 1);
    }
    out
}

/// A table row: config pairs and the indexes expected (kept or dropped).
pub type Case = (&'static [(&'static str, &'static str)], &'static [usize]);
