//! The configuration, its check, and the per-request decision: which caps apply
//! to this request (global, client class, route, brownout, CMCD).

use crate::cmcd::Cmcd;
use crate::select::{Caps, parse_decimal, parse_frame_rate};
use outpost_guest::{ConfigProblem, LoadSignals, RequestHead};
use std::collections::BTreeMap;

/// Default request header carrying the client class.
pub const DEFAULT_CLASS_HEADER: &str = "x-client-class";
/// The response header advertising the brownout level in force.
pub const LEVEL_HEADER: &str = "x-outpost-brownout-level";

/// The key in the guest's shared store (per route) holding the engaged brownout
/// level, so hysteresis spans requests though each runs in a fresh instance.
pub fn level_key(route: &str) -> String {
    format!("brownout_level/{route}")
}
/// Default `brownout_hysteresis`.
pub const DEFAULT_HYSTERESIS: f32 = 0.1;
/// Default `cmcd_throughput_factor`.
pub const DEFAULT_THROUGHPUT_FACTOR: f64 = 0.8;

/// A client class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ClientClass {
    /// Phones.
    Mobile,
    /// Tablets.
    Tablet,
    /// TVs, set-top boxes, streaming sticks.
    Tv,
    /// Desktop browsers.
    Desktop,
    /// Crawlers and other robots.
    Bot,
}

impl ClientClass {
    /// Every class.
    pub const ALL: [ClientClass; 5] = [
        ClientClass::Mobile,
        ClientClass::Tablet,
        ClientClass::Tv,
        ClientClass::Desktop,
        ClientClass::Bot,
    ];

    /// The config / header name.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientClass::Mobile => "mobile",
            ClientClass::Tablet => "tablet",
            ClientClass::Tv => "tv",
            ClientClass::Desktop => "desktop",
            ClientClass::Bot => "bot",
        }
    }

    /// Parse a name, ignoring ASCII case and surrounding whitespace.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        Self::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s))
    }

    /// Classify a `User-Agent` with the SDK's table ([`outpost_guest::ua`], the one
    /// the rewrite guest's `client-class` rule uses). A blank one has no class.
    pub fn from_user_agent(ua: &str) -> Option<Self> {
        let ua = ua.trim();
        if ua.is_empty() {
            return None;
        }
        Self::parse(outpost_guest::ua::client_class(Some(ua)))
    }
}

/// One brownout step: at `threshold` utilization, cap at `cap` bits/s.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// Utilization at which the step engages.
    pub threshold: f32,
    /// Bandwidth cap, bits/s.
    pub cap: u64,
}

/// The engaged brownout level (0 = none, `k` = the first `k` steps, lowest
/// threshold first) for `utilization`, given the level in force before.
///
/// A step engages when `utilization >= threshold`; an engaged step (one at or
/// below `previous`) stays engaged until `utilization < threshold - hysteresis`.
/// `steps` must be sorted by threshold. A non-finite utilization counts as 0.
pub fn brownout_level(utilization: f32, previous: usize, steps: &[Step], hysteresis: f32) -> usize {
    let u = if utilization.is_finite() {
        utilization
    } else {
        0.0
    };
    let h = if hysteresis.is_finite() {
        hysteresis.max(0.0)
    } else {
        0.0
    };
    let engage = steps.iter().take_while(|s| u >= s.threshold).count();
    let hold = steps.iter().take_while(|s| u >= s.threshold - h).count();
    engage.max(previous.min(hold))
}

/// The caps a layer (`class.<c>.*`, `route.<r>.*`, global) may set.
const CAP_KEYS: [&str; 6] = [
    "max_bandwidth",
    "max_width",
    "max_height",
    "max_frame_rate",
    "deny_codecs",
    "allow_codecs",
];

/// The guest's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Caps for every request.
    pub global: Caps,
    /// `use_average_bandwidth`.
    pub use_average_bandwidth: bool,
    /// `class_header`.
    pub class_header: String,
    /// `class.<class>.*`.
    pub classes: BTreeMap<ClientClass, Caps>,
    /// `route.<route>.*`.
    pub routes: BTreeMap<String, Caps>,
    /// `brownout` (or the legacy one-step keys), sorted by threshold.
    pub brownout: Vec<Step>,
    /// `brownout_hysteresis`.
    pub hysteresis: f32,
    /// `cmcd_use_throughput`.
    pub cmcd_use_throughput: bool,
    /// `cmcd_throughput_factor`.
    pub cmcd_throughput_factor: f64,
    /// `cmsd`.
    pub cmsd: bool,
    /// `cmsd_etp_kbps`.
    pub cmsd_etp_kbps: Option<u64>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            global: Caps::default(),
            use_average_bandwidth: false,
            class_header: DEFAULT_CLASS_HEADER.into(),
            classes: BTreeMap::new(),
            routes: BTreeMap::new(),
            brownout: Vec::new(),
            hysteresis: DEFAULT_HYSTERESIS,
            cmcd_use_throughput: false,
            cmcd_throughput_factor: DEFAULT_THROUGHPUT_FACTOR,
            cmsd: true,
            cmsd_etp_kbps: None,
        }
    }
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("{s:?} is not a boolean (true/false)")),
    }
}

fn parse_uint(s: &str) -> Result<u64, String> {
    parse_decimal(s).ok_or_else(|| format!("{s:?} is not a non-negative integer"))
}

fn parse_fraction(s: &str, what: &str) -> Result<f64, String> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|f| f.is_finite() && *f >= 0.0)
        .ok_or_else(|| format!("{s:?} is not {what}"))
}

fn parse_codecs(s: &str) -> Result<Vec<String>, String> {
    let items: Vec<String> = s
        .split(',')
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty())
        .collect();
    if items.is_empty() {
        return Err("an empty codec list (write e.g. \"hvc1,hev1\")".into());
    }
    if let Some(bad) = items.iter().find(|c| {
        !c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    }) {
        return Err(format!(
            "{bad:?} is not a codec prefix (letters, digits, `.`, `-`)"
        ));
    }
    Ok(items)
}

/// Set cap `key` of `caps` from `value`.
fn set_cap(caps: &mut Caps, key: &str, value: &str) -> Result<(), String> {
    match key {
        "max_bandwidth" => caps.max_bandwidth = Some(parse_uint(value)?),
        "max_width" => caps.max_width = Some(parse_uint(value)?),
        "max_height" => caps.max_height = Some(parse_uint(value)?),
        "max_frame_rate" => {
            caps.max_frame_rate = Some(parse_frame_rate(value).ok_or_else(|| {
                format!("{value:?} is not a frame rate > 0 (30, 29.97, 30000/1001)")
            })?);
        }
        "deny_codecs" => caps.deny_codecs = parse_codecs(value)?,
        "allow_codecs" => caps.allow_codecs = vec![parse_codecs(value)?],
        _ => {
            return Err(format!(
                "unknown cap `{key}` (expected one of {})",
                CAP_KEYS.join(", ")
            ));
        }
    }
    Ok(())
}

fn parse_step(line: &str) -> Result<Step, String> {
    let mut parts = line.split_whitespace();
    let (Some(t), Some(c), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!(
            "{line:?} is not a step `\"<utilization> <max_bandwidth>\"` (e.g. \"0.8 3000000\")"
        ));
    };
    let threshold = t
        .parse::<f32>()
        .ok()
        .filter(|f| f.is_finite() && *f >= 0.0)
        .ok_or_else(|| format!("threshold {t:?} is not a number >= 0"))?;
    let cap = parse_uint(c).map_err(|e| format!("cap: {e}"))?;
    Ok(Step { threshold, cap })
}

impl Config {
    /// Read the configuration from the host. Bad values are left out of the
    /// config and reported as problems (the check returns them; a request
    /// ignores them).
    pub fn from_host() -> (Self, Vec<ConfigProblem>) {
        let pairs = outpost_guest::host::config_all();
        Self::from_pairs(&pairs)
    }

    /// Read the configuration from key/value pairs.
    pub fn from_pairs(pairs: &[(String, String)]) -> (Self, Vec<ConfigProblem>) {
        let mut cfg = Config::default();
        let mut problems = Vec::new();
        let mut legacy_threshold: Option<f32> = None;
        let mut legacy_cap: Option<u64> = None;
        let mut has_ladder = false;
        for (key, value) in pairs {
            let k = key.as_str();
            let mut report = |r: Result<(), String>| {
                if let Err(m) = r {
                    problems.push(ConfigProblem::new(k, m));
                }
            };
            match k {
                _ if CAP_KEYS.contains(&k) => report(set_cap(&mut cfg.global, k, value)),
                "use_average_bandwidth" => {
                    report(parse_bool(value).map(|b| cfg.use_average_bandwidth = b));
                }
                "class_header" => {
                    let v = value.trim().to_ascii_lowercase();
                    let ok = !v.is_empty()
                        && v.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
                    report(if ok {
                        cfg.class_header = v;
                        Ok(())
                    } else {
                        Err(format!("{value:?} is not a header name"))
                    });
                }
                "brownout" => {
                    has_ladder = true;
                    let lines: Vec<&str> = value.lines().map(str::trim).collect();
                    let mut prev: Option<Step> = None;
                    for (i, line) in lines.iter().enumerate() {
                        match parse_step(line) {
                            Ok(step) => {
                                if let Some(p) = prev {
                                    if step.threshold <= p.threshold {
                                        problems.push(ConfigProblem::item(
                                            k,
                                            i,
                                            "thresholds must increase from one step to the next",
                                        ));
                                    } else if step.cap > p.cap {
                                        problems.push(ConfigProblem::item(
                                            k,
                                            i,
                                            "a higher threshold must not have a higher cap",
                                        ));
                                    }
                                }
                                prev = Some(step);
                                cfg.brownout.push(step);
                            }
                            Err(m) => problems.push(ConfigProblem::item(k, i, m)),
                        }
                    }
                    if lines.is_empty() {
                        problems.push(ConfigProblem::new(k, "an empty brownout ladder"));
                    }
                }
                "brownout_utilization" => {
                    report(parse_fraction(value, "a number >= 0").map(|f| {
                        legacy_threshold = Some(f as f32);
                    }));
                }
                "brownout_max_bandwidth" => report(parse_uint(value).map(|c| legacy_cap = Some(c))),
                "brownout_hysteresis" => {
                    report(
                        parse_fraction(value, "a number between 0 and 1")
                            .and_then(|f| {
                                if f <= 1.0 {
                                    Ok(f)
                                } else {
                                    Err(format!("{value:?} is not a number between 0 and 1"))
                                }
                            })
                            .map(|f| cfg.hysteresis = f as f32),
                    );
                }
                "cmcd_use_throughput" => {
                    report(parse_bool(value).map(|b| cfg.cmcd_use_throughput = b))
                }
                "cmcd_throughput_factor" => {
                    report(
                        parse_fraction(value, "a number in (0, 1]")
                            .and_then(|f| {
                                if f > 0.0 && f <= 1.0 {
                                    Ok(f)
                                } else {
                                    Err(format!("{value:?} is not a number in (0, 1]"))
                                }
                            })
                            .map(|f| cfg.cmcd_throughput_factor = f),
                    );
                }
                "cmsd" => report(parse_bool(value).map(|b| cfg.cmsd = b)),
                "cmsd_etp_kbps" => report(parse_uint(value).map(|v| cfg.cmsd_etp_kbps = Some(v))),
                _ => {
                    if let Some(rest) = k.strip_prefix("class.") {
                        report(match rest.split_once('.') {
                            Some((class, cap)) => match ClientClass::parse(class) {
                                Some(c) if class == c.as_str() => {
                                    set_cap(cfg.classes.entry(c).or_default(), cap, value)
                                }
                                _ => Err(format!(
                                    "unknown client class {class:?} (expected mobile, tablet, tv, desktop or bot)"
                                )),
                            },
                            None => Err("expected `class.<class>.<cap>`".into()),
                        });
                    } else if let Some(rest) = k.strip_prefix("route.") {
                        report(match rest.rsplit_once('.') {
                            Some((route, cap)) if !route.is_empty() => set_cap(
                                cfg.routes.entry(route.to_string()).or_default(),
                                cap,
                                value,
                            ),
                            _ => Err("expected `route.<route>.<cap>`".into()),
                        });
                    } else {
                        problems.push(ConfigProblem::new(k, "unknown key"));
                    }
                }
            }
        }
        let present = |key: &str| pairs.iter().any(|(k, _)| k == key);
        let (has_u, has_cap) = (
            present("brownout_utilization"),
            present("brownout_max_bandwidth"),
        );
        match (legacy_threshold, legacy_cap) {
            (Some(_), Some(_)) if has_ladder => problems.push(ConfigProblem::new(
                "brownout_utilization",
                "set either `brownout` or `brownout_utilization`/`brownout_max_bandwidth`, not both",
            )),
            (Some(threshold), Some(cap)) => cfg.brownout.push(Step { threshold, cap }),
            (Some(_), None) if !has_cap => problems.push(ConfigProblem::new(
                "brownout_utilization",
                "set without `brownout_max_bandwidth`",
            )),
            (None, Some(_)) if !has_u => problems.push(ConfigProblem::new(
                "brownout_max_bandwidth",
                "set without `brownout_utilization`",
            )),
            _ => {}
        }
        // Leniency at runtime: a ladder written out of order still works.
        cfg.brownout
            .sort_by(|a, b| a.threshold.total_cmp(&b.threshold));
        (cfg, problems)
    }

    /// The client class of `req`: the class header, else the `User-Agent`.
    pub fn client_class(&self, req: &RequestHead) -> Option<ClientClass> {
        req.header(&self.class_header)
            .and_then(ClientClass::parse)
            .or_else(|| {
                req.header("user-agent")
                    .and_then(ClientClass::from_user_agent)
            })
    }
}

/// What applies to one request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Decision {
    /// The combined caps.
    pub caps: Caps,
    /// The client class, when known.
    pub class: Option<ClientClass>,
    /// The brownout level engaged on the node (advertised back).
    pub engaged: usize,
    /// The brownout level applied to this request (one less for a playing
    /// session).
    pub applied: usize,
    /// The request's CMCD.
    pub cmcd: Cmcd,
    /// Edge throughput estimate, kbps, for CMSD `etp`.
    pub etp_kbps: Option<u64>,
}

impl Decision {
    /// CMSD `mb` (kbps): the bandwidth cap in force when a brownout step applies.
    pub fn mb_kbps(&self) -> Option<u64> {
        if self.applied == 0 {
            return None;
        }
        self.caps.max_bandwidth.map(|b| (b / 1000).max(1))
    }
}

/// Decide the caps for `req` under `load`.
pub fn decide(cfg: &Config, req: &RequestHead, load: &LoadSignals) -> Decision {
    let mut caps = cfg.global.clone();
    let class = cfg.client_class(req);
    if let Some(c) = class.and_then(|c| cfg.classes.get(&c)) {
        caps.merge(c);
    }
    if let Some(r) = cfg.routes.get(&req.route) {
        caps.merge(r);
    }
    let cmcd = Cmcd::from_request(req);
    // The level engaged before this request, from the node's shared store (never
    // from the request: a client must not steer the ladder).
    let previous = outpost_guest::host::shared_get(&level_key(&req.route))
        .as_deref()
        .and_then(parse_decimal)
        .map_or(0, |p| usize::try_from(p).unwrap_or(usize::MAX));
    let engaged = if cfg.brownout.is_empty() {
        0
    } else {
        brownout_level(load.utilization, previous, &cfg.brownout, cfg.hysteresis)
    };
    let applied = if cmcd.is_playing_session() {
        engaged.saturating_sub(1)
    } else {
        engaged
    };
    if let Some(step) = applied.checked_sub(1).and_then(|i| cfg.brownout.get(i)) {
        caps.cap_bandwidth(step.cap);
    }
    if cfg.cmcd_use_throughput {
        if let Some(tb) = cmcd.tb() {
            caps.cap_bandwidth(tb.saturating_mul(1000));
        }
        if let Some(mtp) = cmcd.mtp() {
            let bps = (mtp as f64) * 1000.0 * cfg.cmcd_throughput_factor;
            caps.cap_bandwidth(bps as u64);
        }
    }
    let etp_kbps = cmcd.mtp().or(cfg.cmsd_etp_kbps).map(|base| {
        let u = load.utilization;
        if u.is_finite() && u > 1.0 {
            ((base as f64) / f64::from(u)) as u64
        } else {
            base
        }
    });
    Decision {
        caps,
        class,
        engaged,
        applied,
        cmcd,
        etp_kbps,
    }
}
