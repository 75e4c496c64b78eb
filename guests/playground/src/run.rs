//! Each call: the guest's config check and hook, run on the SDK's thread-local mock
//! host with the page's config, load and clock, and what the node would do with the
//! answer.

use std::collections::BTreeMap;

use outpost_guest::cmcd::{Cmcd, Value};
use outpost_guest::{
    AdmitDecision, AdmitHook, CheckContext, ConfigCheck, ConfigProblem, LoadSignals, LogLevel,
    RequestAction, RequestEdit, RequestHead, RequestHook, Response, ResponseHook, testing,
};
use rendition::Rendition;
use rewrite::Rewrite;
use serde::Serialize;
use shed::Shed;

use crate::config::{ConfigError, GuestConfig};
use crate::input::{self, RequestJson, ResponseJson, Unfit};
use crate::node::{self, CacheAsk};

/// A log line: `[level, message]`, level `trace` ... `error`.
type Log = (&'static str, String);

/// A response answered at the edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EdgeResponse {
    /// Its status.
    pub status: u16,
    /// Its headers, `[name, value]`.
    pub headers: Vec<(String, String)>,
    /// Its body (bytes that are not UTF-8 lossily).
    pub body: String,
}

impl EdgeResponse {
    fn of(r: &Response) -> EdgeResponse {
        // The node drops a guest's `content-length` (it sets its own).
        let headers: Vec<_> = r
            .headers
            .iter()
            .filter(|h| !h.name.eq_ignore_ascii_case("content-length"))
            .cloned()
            .collect();
        EdgeResponse {
            status: r.status,
            headers: node::pairs(&headers),
            body: String::from_utf8_lossy(&r.body).into_owned(),
        }
    }
}

/// What `rewrite` answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RewriteResult {
    /// Syntax errors, refused values and the guest's check problems.
    pub config_errors: Vec<ConfigError>,
    /// `forward`, `respond`, `refused` (the node answers 400 before any guest), or
    /// `null` (a config syntax error: the guest did not run).
    pub action: Option<&'static str>,
    /// The node's decision step after `request:<guest>=`: `forward`, `respond 403`.
    pub step: Option<String>,
    /// The request as sent to the origin (`Decision::forwarded`): `GET /a?b=1`.
    pub forwarded: Option<String>,
    /// Headers set or changed, `name: value`, sorted (`Decision::headers_set`).
    pub headers_set: Vec<String>,
    /// Headers removed, sorted (`Decision::headers_removed`).
    pub headers_removed: Vec<String>,
    /// Every header of the forwarded request, `[name, value]`.
    pub headers: Vec<(String, String)>,
    /// The origin the guest chose (`null`: the route's).
    pub origin: Option<String>,
    /// What the guest asked of the edge cache (`null`: nothing).
    pub cache: Option<CacheAsk>,
    /// The response the guest answered with.
    pub response: Option<EdgeResponse>,
    /// The status the client gets when the node answers without the origin
    /// (`respond`, `refused`); `null` when forwarded.
    pub status: Option<u16>,
    /// Why the guest's answer is invalid (the node then fails the guest: under
    /// `fail = "open"` the request goes on unchanged, as shown).
    pub invalid: Option<String>,
    /// Why the node refuses the request (`action` `refused`).
    pub refused: Option<String>,
    /// What the guest logged.
    pub logs: Vec<Log>,
}

/// What `rendition` answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RenditionResult {
    /// Syntax errors, refused values and the guest's check problems.
    pub config_errors: Vec<ConfigError>,
    /// `pass` (nothing changed), `edit` (status or headers), `edit+body`, or
    /// `null` (a config syntax error: the guest did not run).
    pub action: Option<&'static str>,
    /// The node's decision step after `response:<guest>=`: `edit` or `edit+body`.
    pub step: Option<&'static str>,
    /// The status after the edit.
    pub status: u16,
    /// Every header after the edit, `[name, value]`.
    pub headers: Vec<(String, String)>,
    /// Headers set or changed, `name: value`, sorted.
    pub headers_set: Vec<String>,
    /// Headers removed, sorted.
    pub headers_removed: Vec<String>,
    /// The new body, or `null` when the guest did not replace it.
    pub body: Option<String>,
    /// Whether the guest replaced the body (`Decision::body_replaced`).
    pub body_replaced: bool,
    /// Why the guest's edit is invalid (the node then fails the guest: under
    /// `fail = "open"` the response goes on unchanged, as shown).
    pub invalid: Option<String>,
    /// What the guest logged.
    pub logs: Vec<Log>,
}

/// The admit guest's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum AdmitOut {
    /// Admitted to the limiter.
    Admit {
        /// `critical`, `high`, `normal`, `low` or `bulk`.
        class: &'static str,
        /// The cost (the limiter takes at least 1).
        cost: u32,
        /// The client key for per-client fairness.
        client_key: Option<String>,
    },
    /// Answered at the edge (shed).
    Reject {
        /// The status.
        status: u16,
        /// The headers, `[name, value]`.
        headers: Vec<(String, String)>,
        /// The body.
        body: String,
    },
}

/// What `classify` answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClassifyResult {
    /// Syntax errors, refused values and the guest's check problems.
    pub config_errors: Vec<ConfigError>,
    /// The verdict; `null` when the guest did not run (config syntax error, or the
    /// node refuses the request).
    pub decision: Option<AdmitOut>,
    /// The node's decision step after `admit:<guest>=`: the class, or `reject 504`.
    pub step: Option<String>,
    /// The status of a reject, or 400 when the node refuses the request.
    pub status: Option<u16>,
    /// Why the guest's reject is invalid (the node then fails the guest: under
    /// `fail = "open"` the request is admitted as `normal`, cost 1).
    pub invalid: Option<String>,
    /// Why the node refuses the request.
    pub refused: Option<String>,
    /// What the guest logged.
    pub logs: Vec<Log>,
}

/// What `cmcd` answers.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CmcdResult {
    /// Key → value: a boolean, a number, a string (quoted string or token), or an
    /// array of those (a v2 inner list).
    pub entries: BTreeMap<String, serde_json::Value>,
    /// Key → `bool`, `int`, `dec`, `str`, `token` or `list`.
    pub types: BTreeMap<String, &'static str>,
}

fn level(l: LogLevel) -> &'static str {
    match l {
        LogLevel::Trace => "trace",
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    }
}

fn take_logs() -> Vec<Log> {
    testing::take_logs()
        .into_iter()
        .map(|(l, m)| (level(l), m))
        .collect()
}

/// Reset the mock host and give it this config, load and clock.
fn prepare(config: &GuestConfig, load: LoadSignals, unix_time: Option<u64>) {
    testing::reset();
    testing::set_config(&config.pair_refs());
    testing::set_load(load);
    let now = unix_time.unwrap_or_else(crate::clock::unix_time);
    testing::set_unix_time(now);
    testing::set_now_ns(now.saturating_mul(1_000_000_000));
}

/// Run the check `C` (the type the guest's export macro names after `check:`, so
/// the function its `config-check` export calls) and position its problems. Its
/// logs are dropped: the node logs them at load, not per request.
/// Not run after a syntax error (nor is the hook): the node stops there.
fn check<C: ConfigCheck>(config: &GuestConfig, origins: &[String]) -> Vec<ConfigError> {
    let mut errors = config.errors.clone();
    if !config.runnable {
        return errors;
    }
    let problems: Vec<ConfigProblem> = C::check_config(&CheckContext {
        origins: origins.to_vec(),
    });
    testing::take_logs();
    errors.extend(problems.into_iter().map(|p| config.problem(p)));
    errors
}

/// `rewrite`: one request through the rewrite guest, as the node runs it.
pub fn rewrite(config: &GuestConfig, request: RequestJson) -> Result<RewriteResult, String> {
    let origins = request.origins.clone().unwrap_or_default();
    let unix_time = request.unix_time;
    prepare(config, LoadSignals::default(), unix_time);
    let config_errors = check::<Rewrite>(config, &origins);
    let mut out = RewriteResult {
        config_errors,
        ..RewriteResult::default()
    };
    let req = match input::request(request) {
        Ok(r) => r,
        Err(Unfit::Bad(m)) => return Err(m),
        Err(Unfit::Refused(reason)) => {
            out.action = Some("refused");
            out.status = Some(400);
            out.refused = Some(reason);
            return Ok(out);
        }
    };
    if !config.runnable {
        return Ok(out);
    }
    let incoming = req.headers.clone();
    let mut head = req;
    let action = Rewrite::on_request(&head);
    out.logs = take_logs();
    match action {
        RequestAction::Forward(edit) => {
            out.step = Some("forward".into());
            out.action = Some("forward");
            match apply_request_edit(&mut head, edit, &origins) {
                Ok(origin) => out.origin = origin,
                Err(e) => out.invalid = Some(e),
            }
        }
        RequestAction::Respond(r) => {
            out.step = Some(format!("respond {}", r.status));
            match node::check_edge_response(&r) {
                Ok(()) => {
                    out.action = Some("respond");
                    out.status = Some(r.status);
                    out.response = Some(EdgeResponse::of(&r));
                    return Ok(out);
                }
                Err(e) => {
                    out.action = Some("forward");
                    out.invalid = Some(e);
                }
            }
        }
    }
    out.cache = node::take_cache_fields(&mut head);
    out.forwarded = Some(node::forwarded(&head));
    let (set, removed) = node::header_changes(&incoming, &head.headers);
    out.headers_set = set;
    out.headers_removed = removed;
    out.headers = node::pairs(&head.headers);
    Ok(out)
}

/// Apply a request guest's edit, everything validated before anything changes
/// (`host/src/proxy/request.rs` `apply_request_edit`). The origin it chose, if
/// any. Not checked here: that an edited path stays on the route the request
/// passed (the playground has no routes).
fn apply_request_edit(
    head: &mut RequestHead,
    edit: RequestEdit,
    origins: &[String],
) -> Result<Option<String>, String> {
    if let Some(m) = &edit.method
        && !node::valid_method(m)
    {
        return Err(format!("bad method {m:?}"));
    }
    let edited_path = match &edit.path {
        Some(p) => Some(node::canon_path(p).map_err(|r| format!("path {p:?} refused: {r}"))?),
        None => None,
    };
    let path = edited_path.as_deref().unwrap_or(&head.path);
    let query = edit.query.as_deref().unwrap_or(&head.query);
    node::scan_target(&format!("{path}?{query}"))
        .map_err(|e| format!("path or query do not form a valid URI: {e}"))?;
    if let Some(o) = &edit.origin
        && !origins.contains(o)
    {
        return Err(format!("chose origin `{o}`, which is not configured"));
    }
    node::apply_header_ops(&mut head.headers, edit.headers)?;
    if let Some(m) = edit.method {
        head.method = m;
    }
    if let Some(p) = edited_path {
        head.path = p;
    }
    if let Some(q) = edit.query {
        head.query = q;
    }
    Ok(edit.origin)
}

/// `rendition`: one response through the rendition guest, as the node runs it.
pub fn rendition(
    config: &GuestConfig,
    response: ResponseJson,
    body: &str,
    load: LoadSignals,
) -> Result<RenditionResult, String> {
    let request = response.request.unwrap_or_default();
    let origins = request.origins.clone().unwrap_or_default();
    let unix_time = request.unix_time;
    let req = match input::request(request) {
        Ok(r) => r,
        Err(Unfit::Bad(m)) => return Err(m),
        Err(Unfit::Refused(r)) => return Err(format!("request: the node refuses it (400): {r}")),
    };
    let mut head = input::response_head(response.status, response.headers.unwrap_or_default())?;
    prepare(config, load, unix_time);
    let config_errors = check::<Rendition>(config, &origins);
    let before = head.headers.clone();
    let mut out = RenditionResult {
        config_errors,
        status: head.status,
        headers: node::pairs(&head.headers),
        ..RenditionResult::default()
    };
    if !config.runnable {
        return Ok(out);
    }
    let handed = response.transform.unwrap_or(true);
    let body_in = handed.then_some(body.as_bytes());
    let edit = Rendition::on_response(&req, &head, body_in);
    out.logs = take_logs();
    out.step = Some(if edit.body.is_some() {
        "edit+body"
    } else {
        "edit"
    });
    let empty = edit.is_empty();
    // `host/src/proxy/response.rs` `apply`: the status first, then the header
    // operations (validated whole); the body only when it was handed over.
    let applied = match edit.status {
        Some(s) if !node::valid_status(s) => Err(format!("bad status {s}")),
        status => node::apply_header_ops(&mut head.headers, edit.headers)
            .map(|()| head.status = status.unwrap_or(head.status)),
    };
    match applied {
        Ok(()) => {
            if let (Some(b), true) = (edit.body, handed) {
                out.body = Some(String::from_utf8_lossy(&b).into_owned());
                out.body_replaced = true;
            }
            out.action = Some(if empty {
                "pass"
            } else if out.body_replaced {
                "edit+body"
            } else {
                "edit"
            });
        }
        Err(e) => {
            out.invalid = Some(e);
            out.action = Some("pass");
        }
    }
    out.status = head.status;
    out.headers = node::pairs(&head.headers);
    let (set, removed) = node::header_changes(&before, &head.headers);
    out.headers_set = set;
    out.headers_removed = removed;
    Ok(out)
}

/// `classify`: one request through the shed (admit) guest.
pub fn classify(
    config: &GuestConfig,
    request: RequestJson,
    load: LoadSignals,
) -> Result<ClassifyResult, String> {
    let origins = request.origins.clone().unwrap_or_default();
    let unix_time = request.unix_time;
    prepare(config, load, unix_time);
    let config_errors = check::<Shed>(config, &origins);
    let mut out = ClassifyResult {
        config_errors,
        ..ClassifyResult::default()
    };
    let req = match input::request(request) {
        Ok(r) => r,
        Err(Unfit::Bad(m)) => return Err(m),
        Err(Unfit::Refused(reason)) => {
            out.status = Some(400);
            out.refused = Some(reason);
            return Ok(out);
        }
    };
    if !config.runnable {
        return Ok(out);
    }
    let decision = Shed::on_admit(&req);
    out.logs = take_logs();
    match decision {
        AdmitDecision::Admit(a) => {
            out.step = Some(a.class.as_str().to_string());
            out.decision = Some(AdmitOut::Admit {
                class: a.class.as_str(),
                cost: a.cost,
                client_key: a.client_key,
            });
        }
        AdmitDecision::Reject(r) => {
            match node::check_edge_response(&r) {
                Ok(()) => {
                    out.step = Some(format!("reject {}", r.status));
                    out.status = Some(r.status);
                }
                Err(e) => {
                    out.step = Some("normal".into());
                    out.invalid = Some(e);
                }
            }
            let e = EdgeResponse::of(&r);
            out.decision = Some(AdmitOut::Reject {
                status: e.status,
                headers: e.headers,
                body: e.body,
            });
        }
    }
    Ok(out)
}

fn cmcd_value(v: &Value) -> (serde_json::Value, &'static str) {
    use serde_json::Value as J;
    match v {
        Value::Bool(b) => (J::Bool(*b), "bool"),
        Value::Int(i) => (J::from(*i), "int"),
        Value::Dec(d) => (J::from(*d), "dec"),
        Value::Str(s) => (J::String(s.clone()), "str"),
        Value::Token(t) => (J::String(t.clone()), "token"),
        Value::List(items) => (
            J::Array(items.iter().map(|i| cmcd_value(i).0).collect()),
            "list",
        ),
    }
}

/// `cmcd`: the CMCD the SDK reads from a request (headers, then the `CMCD` query
/// parameter), from the head the node builds.
pub fn cmcd(request: RequestJson) -> Result<CmcdResult, String> {
    let req = match input::request(request) {
        Ok(r) => r,
        Err(Unfit::Bad(m)) => return Err(m),
        Err(Unfit::Refused(r)) => return Err(format!("request: the node refuses it (400): {r}")),
    };
    let c = Cmcd::from_request(&req);
    let mut out = CmcdResult::default();
    for (k, v) in &c.entries {
        let (value, kind) = cmcd_value(v);
        out.entries.insert(k.clone(), value);
        out.types.insert(k.clone(), kind);
    }
    Ok(out)
}
