//! # outpost-playground: the shipped guests in a web browser
//!
//! The node's web console lets an operator try a configuration before deploying
//! it. What the page shows must be what the node does, so this crate does not
//! re-implement any guest: it links the guests' own crates (`rewrite`,
//! `rendition`, `shed`) and calls their hooks and config checks, on the SDK's mock
//! host (`outpost_guest::testing`), which is what `outpost_guest::host` reads off
//! the component target. Built for `wasm32-unknown-unknown` and bound to
//! JavaScript with wasm-bindgen; natively it is plain Rust (the tests).
//!
//! Every function takes and returns JSON text and never panics on bad input: what
//! cannot be read answers `{"error": "..."}`. See README.md for the shapes.
//!
//! What the node does around a guest (building the head, validating and applying
//! an edit, the decision record) is host code that is not built for the browser;
//! the pieces that matter are repeated in `node`, each naming its original.
//!
//! On the component target (`wasm32-wasip2`) the crate is empty: the guests'
//! component exports would clash there, and nothing runs it.
#![cfg(not(target_os = "wasi"))]

mod clock;
mod config;
mod input;
mod node;
mod run;

use serde::Serialize;
use wasm_bindgen::prelude::wasm_bindgen;

pub use config::{ConfigError, GuestConfig};
pub use node::CacheAsk;
pub use run::{AdmitOut, ClassifyResult, CmcdResult, EdgeResponse, RenditionResult, RewriteResult};

/// The WIT contract the guests are built against.
const WIT: &str = include_str!("../../sdk/wit/outpost.wit");

/// `{"error": message}`.
fn error(message: &str) -> String {
    serde_json::json!({ "error": message }).to_string()
}

/// The JSON of `r`, or of its error.
fn answer<T: Serialize>(r: Result<T, String>) -> String {
    match r {
        Ok(v) => serde_json::to_string(&v).unwrap_or_else(|e| error(&e.to_string())),
        Err(e) => error(&e),
    }
}

/// The contract package and version (`outpost:edge`, `0.1.0`) of the WIT file.
fn contract() -> (String, String) {
    WIT.lines()
        .find_map(|l| {
            let rest = l.trim().strip_prefix("package ")?.strip_suffix(';')?;
            let (package, version) = rest.split_once('@')?;
            Some((package.to_string(), version.to_string()))
        })
        .unwrap_or_default()
}

/// The versions: `{"contract": "0.1.0", "package": "outpost:edge", "playground":
/// "0.1.0"}` (the WIT contract the guests speak, and this crate's version).
#[wasm_bindgen]
pub fn version() -> String {
    let (package, contract) = contract();
    serde_json::json!({
        "contract": contract,
        "package": package,
        "playground": env!("CARGO_PKG_VERSION"),
    })
    .to_string()
}

/// The rewrite (request) guest: `config` is the TOML of its config table,
/// `request` a request object. Answers a [`RewriteResult`].
#[wasm_bindgen]
pub fn rewrite(config: &str, request: &str) -> String {
    let config = GuestConfig::parse(config);
    answer(input::parse("request", request).and_then(|r| run::rewrite(&config, r)))
}

/// [`rewrite`] for each request of the JSON array `requests`, the config parsed
/// once: a JSON array of what `rewrite` answers for each (an item that is not a
/// request answers `{"error": ...}` in its place).
#[wasm_bindgen]
pub fn rewrite_batch(config: &str, requests: &str) -> String {
    let items: Vec<serde_json::Value> = match serde_json::from_str(requests) {
        Ok(v) => v,
        Err(e) => return error(&format!("requests: expected a JSON array of requests: {e}")),
    };
    let config = GuestConfig::parse(config);
    let answers: Vec<String> = items
        .into_iter()
        .map(|item| {
            let request = input::object("request", item);
            answer(request.and_then(|r| run::rewrite(&config, r)))
        })
        .collect();
    format!("[{}]", answers.join(","))
}

/// The rendition (response) guest: `config` the TOML of its config table,
/// `response` a response object, `body` the body (the manifest), `load` the load
/// signals (empty: defaults). Answers a [`RenditionResult`].
#[wasm_bindgen]
pub fn rendition(config: &str, response: &str, body: &str, load: &str) -> String {
    let config = GuestConfig::parse(config);
    let run = || {
        let response = input::parse("response", response)?;
        let load = input::load(load)?;
        run::rendition(&config, response, body, load)
    };
    answer(run())
}

/// The shed (admit) guest: `config` the TOML of its config table, `request` a
/// request object, `load` the load signals (empty: defaults). Answers a
/// [`ClassifyResult`].
#[wasm_bindgen]
pub fn classify(config: &str, request: &str, load: &str) -> String {
    let config = GuestConfig::parse(config);
    let run = || {
        let request = input::parse("request", request)?;
        let load = input::load(load)?;
        run::classify(&config, request, load)
    };
    answer(run())
}

/// The CMCD the SDK reads from a request object (its CMCD headers, then the `CMCD`
/// query parameter). Answers a [`CmcdResult`].
#[wasm_bindgen]
pub fn cmcd(request: &str) -> String {
    answer(input::parse("request", request).and_then(run::cmcd))
}

#[cfg(test)]
mod tests;
