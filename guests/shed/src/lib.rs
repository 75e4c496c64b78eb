//! `shed`: an admit guest that sorts requests into priority classes (for a
//! video service or a shop), drops requests whose deadline has passed, and
//! names the client and the cost for the host's limiter. See README.md for the
//! operator reference.

use outpost_guest::{
    Admission, AdmitDecision, AdmitHook, CheckContext, ConfigCheck, ConfigProblem, LoadSignals,
    PriorityClass, RequestHead, Response, host,
};

pub mod config;
pub mod profile;

pub use config::{Config, KeySource, PrefixRule, Profile, check};
pub use outpost_guest::cmcd::Cmcd;

/// The header a trusted client (or proxy) may set to choose the class.
pub const PRIORITY_HEADER: &str = "x-outpost-priority";

/// The header a deadline rejection carries: why the request was dropped.
pub const SHED_HEADER: &str = "x-outpost-shed";

/// The status of a deadline rejection.
pub const DEADLINE_STATUS: u16 = 504;

/// Client keys longer than this are skipped (the next source is tried).
pub const MAX_CLIENT_KEY: usize = 128;

/// Absolute deadlines below this (ms since the epoch, 2001-09-09) are not
/// milliseconds (seconds, most likely) and are ignored.
pub const MIN_DEADLINE_MS: u64 = 1_000_000_000_000;

/// Prefetch headers: a value with a `prefetch` item makes the request `bulk`.
pub const PREFETCH_HEADERS: [&str; 3] = ["purpose", "sec-purpose", "x-moz"];

/// The guest.
pub struct Shed;

impl AdmitHook for Shed {
    fn on_admit(req: &RequestHead) -> AdmitDecision {
        with_config(|c| decide(req, c))
    }
}

/// At load: the configuration is parsed once, and every fresh instance starts
/// with it.
impl outpost_guest::Init for Shed {
    fn init() {
        with_config(|_| ());
    }
}

outpost_guest::export_init!(Shed);

/// Run `f` with the configuration, parsed once per instance (see
/// `host::with_config`), or once at load when the node pre-initializes.
fn with_config<R>(f: impl FnOnce(&Config) -> R) -> R {
    static CONFIG: std::sync::OnceLock<Config> = std::sync::OnceLock::new();
    outpost_guest::host::with_config(&CONFIG, Config::from_host, f)
}

impl ConfigCheck for Shed {
    fn check_config(_: &CheckContext) -> Vec<ConfigProblem> {
        check()
    }
}

outpost_guest::export_admit!(Shed, check: Shed);

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
    let cmcd = Cmcd::from_request(req);
    if config.drop_expired
        && let Some(reason) = expired(req, &cmcd, config)
    {
        host::debug(&format!("dropping {} {}: {reason}", req.method, req.path));
        return AdmitDecision::reject(deadline_response(reason));
    }
    let class = classify_with(req, &cmcd, config);
    let mut admission = Admission::new(class).cost(config.cost(class));
    if let Some(key) = client_key(req, &cmcd, config) {
        admission = admission.client_key(key);
    }
    AdmitDecision::Admit(admission)
}

/// Why a request was dropped for its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// CMCD `dl` (ms) is shorter than the expected queueing delay (ms).
    CmcdDeadline {
        /// The CMCD deadline, ms after the request.
        dl_ms: u64,
        /// The expected queueing delay, µs.
        queue_us: u64,
    },
    /// The absolute deadline header (unix ms) is before now plus the queueing.
    Header {
        /// The deadline, ms since the epoch.
        deadline_ms: u64,
        /// The host's clock (second resolution) plus the queueing, ms.
        earliest_ms: u64,
    },
}

impl Expired {
    /// The `x-outpost-shed` value: `cmcd-dl` or `deadline`.
    pub fn tag(&self) -> &'static str {
        match self {
            Expired::CmcdDeadline { .. } => "cmcd-dl",
            Expired::Header { .. } => "deadline",
        }
    }
}

impl std::fmt::Display for Expired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expired::CmcdDeadline { dl_ms, queue_us } => write!(
                f,
                "CMCD deadline {dl_ms} ms is shorter than the expected queueing {} ms",
                queue_us / 1000
            ),
            Expired::Header {
                deadline_ms,
                earliest_ms,
            } => write!(
                f,
                "deadline {deadline_ms} (unix ms) is before the earliest start {earliest_ms}"
            ),
        }
    }
}

/// The answer to a request whose deadline has passed: `504`, not cacheable,
/// tagged with the reason; no `retry-after` (a retry cannot meet the deadline).
pub fn deadline_response(reason: Expired) -> Response {
    Response::text(DEADLINE_STATUS, "deadline exceeded\n")
        .header("cache-control", "no-store")
        .header(SHED_HEADER, reason.tag())
}

/// The queueing delay a request admitted now should expect, µs: none when the
/// origin has a free slot and nobody is queued, else the host's recent delay.
pub fn expected_queue_us(load: &LoadSignals) -> u64 {
    if load.limit > 0 && load.in_flight < load.limit && load.queued == 0 {
        0
    } else {
        load.queue_delay_us
    }
}

/// Whether `req` cannot meet its deadline: CMCD `dl` against the expected
/// queueing, or the absolute deadline header against the host clock plus the
/// expected queueing. Reads the host's load and clock only when needed.
pub fn expired(req: &RequestHead, cmcd: &Cmcd, config: &Config) -> Option<Expired> {
    let dl_ms = cmcd.number("dl");
    let deadline_ms = config
        .deadline_header
        .as_deref()
        .and_then(|h| req.header(h))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|ms| *ms >= MIN_DEADLINE_MS);
    if dl_ms.is_none() && deadline_ms.is_none() {
        return None;
    }
    let queue_us = expected_queue_us(&host::load());
    if let Some(dl_ms) = dl_ms
        && queue_us > dl_ms.saturating_mul(1000)
    {
        return Some(Expired::CmcdDeadline { dl_ms, queue_us });
    }
    if let Some(deadline_ms) = deadline_ms {
        let earliest_ms = host::unix_time()
            .saturating_mul(1000)
            .saturating_add(queue_us / 1000);
        if deadline_ms < earliest_ms {
            return Some(Expired::Header {
                deadline_ms,
                earliest_ms,
            });
        }
    }
    None
}

/// The client key: the first usable `client_key` source (a trimmed,
/// non-empty value of at most 128 bytes), or none.
pub fn client_key(req: &RequestHead, cmcd: &Cmcd, config: &Config) -> Option<String> {
    let usable = |v: &str| {
        let v = v.trim();
        (!v.is_empty() && v.len() <= MAX_CLIENT_KEY).then(|| v.to_string())
    };
    config.client_key.iter().find_map(|source| match source {
        KeySource::Header(name) => req.header(name).and_then(usable),
        KeySource::Cmcd(key) => cmcd.scalar_text(key).as_deref().and_then(usable),
        KeySource::Ip => usable(&req.client.ip),
    })
}

/// The priority class of `req` (see [`classify_with`]).
pub fn classify(req: &RequestHead, config: &Config) -> PriorityClass {
    classify_with(req, &Cmcd::from_request(req), config)
}

/// The priority class of `req`, first match wins:
///
/// 1. `x-outpost-priority`, when `trust_priority_header` is on and it names a class;
/// 2. a User-Agent containing a `bulk_user_agents` substring → bulk;
/// 3. a prefetch (`purpose`, `sec-purpose` or `x-moz: prefetch`) → bulk;
/// 4. the `class.<name>` prefix rules, highest class first;
/// 5. the profile's rules ([`profile::video`], [`profile::commerce`]).
pub fn classify_with(req: &RequestHead, cmcd: &Cmcd, config: &Config) -> PriorityClass {
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
        if outpost_guest::text::contains_any(&ua, &config.bulk_user_agents) {
            return PriorityClass::Bulk;
        }
    }
    if is_prefetch(req) {
        return PriorityClass::Bulk;
    }
    for (class, rules) in &config.class_prefixes {
        if rules.iter().any(|r| r.matches(&req.method, &req.path)) {
            return *class;
        }
    }
    match config.profile {
        Profile::Video => profile::video(req, cmcd),
        Profile::Commerce => profile::commerce(req),
    }
}

/// A speculative request: a [`PREFETCH_HEADERS`] field with a `prefetch` item
/// (`Sec-Purpose: prefetch;prerender`, `Purpose: prefetch`, `X-Moz: prefetch`).
pub fn is_prefetch(req: &RequestHead) -> bool {
    PREFETCH_HEADERS.iter().any(|name| {
        req.headers_all(name).any(|v| {
            v.split([';', ','])
                .any(|item| item.trim().eq_ignore_ascii_case("prefetch"))
        })
    })
}

#[cfg(test)]
mod tests;
