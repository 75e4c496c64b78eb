//! The guest's configuration: parsing shared by the request path (lenient:
//! bad values are logged and replaced by defaults) and the load-time check
//! (strict: every bad value is a [`ConfigProblem`]).

use outpost_guest::url::split_list;
use outpost_guest::{ConfigProblem, PriorityClass, host};

/// User-Agent substrings classed `bulk` when `bulk_user_agents` is not set.
pub const DEFAULT_BULK_USER_AGENTS: &str = "bot,crawler,spider";

/// The default absolute-deadline header (`<unix ms>`).
pub const DEFAULT_DEADLINE_HEADER: &str = "x-request-deadline";

/// The default client key sources.
pub const DEFAULT_CLIENT_KEY: &str = "header:x-client-id,cmcd:sid,ip";

/// The largest `cost.<class>`.
pub const MAX_COST: u32 = 1000;

/// The configuration keys this guest knows.
pub const KNOWN_KEYS: &[&str] = &[
    "profile",
    "class.<class>",
    "cost.<class>",
    "bulk_user_agents",
    "reject_methods",
    "trust_priority_header",
    "drop_expired",
    "deadline_header",
    "client_key",
];

/// The built-in rule set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Profile {
    /// Live and on-demand video (the default).
    #[default]
    Video,
    /// An online shop.
    Commerce,
}

impl Profile {
    /// `video` or `commerce`, any case.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "video" => Some(Profile::Video),
            "commerce" => Some(Profile::Commerce),
            _ => None,
        }
    }
}

/// One `class.<name>` item: a path prefix, optionally only for one method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixRule {
    /// Upper-case method (`POST`), or any method.
    pub method: Option<String>,
    /// Plain string prefix of the path, starting with `/`.
    pub prefix: String,
}

impl PrefixRule {
    /// `/prefix` or `METHOD /prefix`.
    pub fn parse(item: &str) -> Result<Self, String> {
        let mut words = item.split_whitespace();
        let (method, prefix) = match (words.next(), words.next(), words.next()) {
            (Some(p), None, None) => (None, p),
            (Some(m), Some(p), None) => {
                if !is_token(m) {
                    return Err(format!("`{item}`: `{m}` is not an HTTP method"));
                }
                (Some(m.to_ascii_uppercase()), p)
            }
            _ => return Err(format!("`{item}`: expected `/prefix` or `METHOD /prefix`")),
        };
        if !prefix.starts_with('/') {
            return Err(format!("`{item}`: a path prefix must start with `/`"));
        }
        Ok(Self {
            method,
            prefix: prefix.to_string(),
        })
    }

    /// The rule matches this method and path.
    pub fn matches(&self, method: &str, path: &str) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && path.starts_with(self.prefix.as_str())
    }
}

/// Where the client key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `header:<name>`: that request header.
    Header(String),
    /// `cmcd:<key>`: that CMCD key (usually `sid`, the playback session id).
    Cmcd(String),
    /// `ip`: the client IP the host established.
    Ip,
}

impl KeySource {
    /// `header:<name>`, `cmcd:<key>` or `ip`.
    pub fn parse(item: &str) -> Result<Self, String> {
        let item = item.trim();
        if item.eq_ignore_ascii_case("ip") {
            return Ok(KeySource::Ip);
        }
        match item.split_once(':') {
            Some((kind, name)) if kind.trim().eq_ignore_ascii_case("header") => {
                let name = name.trim();
                if is_token(name) {
                    Ok(KeySource::Header(name.to_ascii_lowercase()))
                } else {
                    Err(format!("`{item}`: `{name}` is not a header name"))
                }
            }
            Some((kind, key)) if kind.trim().eq_ignore_ascii_case("cmcd") => {
                let key = key.trim();
                if !key.is_empty()
                    && key
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
                {
                    Ok(KeySource::Cmcd(key.to_ascii_lowercase()))
                } else {
                    Err(format!("`{item}`: `{key}` is not a CMCD key"))
                }
            }
            _ => Err(format!(
                "`{item}`: unknown client key source; use `header:<name>`, `cmcd:<key>` or `ip`"
            )),
        }
    }
}

/// The guest's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `profile`: the built-in rules.
    pub profile: Profile,
    /// `class.<name>`: prefix rules per class, highest class first.
    pub class_prefixes: Vec<(PriorityClass, Vec<PrefixRule>)>,
    /// `bulk_user_agents`: lower-cased User-Agent substrings classed `bulk`.
    pub bulk_user_agents: Vec<String>,
    /// `reject_methods`: upper-cased methods answered with 405.
    pub reject_methods: Vec<String>,
    /// `trust_priority_header`: honour `x-outpost-priority`.
    pub trust_priority_header: bool,
    /// `drop_expired`: reject requests whose deadline has passed.
    pub drop_expired: bool,
    /// `deadline_header`: the absolute-deadline header (lower case), if any.
    pub deadline_header: Option<String>,
    /// `cost.<class>`, indexed like [`PriorityClass::ALL`].
    pub costs: [u32; 5],
    /// `client_key`: the sources, first usable wins.
    pub client_key: Vec<KeySource>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            profile: Profile::Video,
            class_prefixes: Vec::new(),
            bulk_user_agents: split_list(DEFAULT_BULK_USER_AGENTS),
            reject_methods: Vec::new(),
            trust_priority_header: false,
            drop_expired: true,
            deadline_header: Some(DEFAULT_DEADLINE_HEADER.to_string()),
            costs: [1; 5],
            client_key: default_client_key(),
        }
    }
}

fn default_client_key() -> Vec<KeySource> {
    split_list(DEFAULT_CLIENT_KEY)
        .iter()
        .filter_map(|s| KeySource::parse(s).ok())
        .collect()
}

/// The items of a list value: a TOML array arrives one item per line (each
/// with its index, for [`ConfigProblem::item`]); a plain string is
/// comma-separated (no index). Blank items are dropped.
pub fn list_items(value: &str) -> Vec<(Option<usize>, String)> {
    if value.contains('\n') {
        value
            .lines()
            .enumerate()
            .map(|(i, l)| (Some(i), l.trim().to_string()))
            .filter(|(_, l)| !l.is_empty())
            .collect()
    } else {
        split_list(value).into_iter().map(|s| (None, s)).collect()
    }
}

fn problem(key: &str, item: Option<usize>, message: String) -> ConfigProblem {
    match item {
        Some(i) => ConfigProblem::item(key, i, message),
        None => ConfigProblem::new(key, message),
    }
}

/// `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`, any case.
pub fn parse_bool(raw: &str) -> Option<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// An RFC 9110 token (header names, methods).
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// An exact class name (lower case, as in the WIT).
fn class_named(name: &str) -> Option<PriorityClass> {
    PriorityClass::parse(name).filter(|c| c.as_str() == name)
}

fn class_index(class: PriorityClass) -> usize {
    PriorityClass::ALL
        .iter()
        .position(|c| *c == class)
        .unwrap_or(2)
}

impl Config {
    /// Read the configuration; every problem is logged at `warn` and the bad
    /// value is replaced by its default (the load-time check rejects them).
    pub fn from_host() -> Self {
        let (config, problems) = Self::parse(&host::config_all());
        for p in problems {
            let at = p.item.map(|i| format!(" item {i}")).unwrap_or_default();
            host::warn(&format!(
                "config `{}`{at}: {}; using the default",
                p.key, p.message
            ));
        }
        config
    }

    /// The configuration of these `(key, value)` pairs, and every problem in them.
    pub fn parse(pairs: &[(String, String)]) -> (Self, Vec<ConfigProblem>) {
        let mut c = Config::default();
        let mut problems = Vec::new();
        let mut prefixes: Vec<(PriorityClass, Vec<PrefixRule>)> = Vec::new();
        for (key, value) in pairs {
            let k = key.as_str();
            match k {
                "profile" => match Profile::parse(value) {
                    Some(p) => c.profile = p,
                    None => problems.push(ConfigProblem::new(
                        k,
                        format!("unknown profile {value:?}; use `video` or `commerce`"),
                    )),
                },
                "trust_priority_header" | "drop_expired" => match parse_bool(value) {
                    Some(b) if k == "drop_expired" => c.drop_expired = b,
                    Some(b) => c.trust_priority_header = b,
                    None => problems.push(ConfigProblem::new(
                        k,
                        format!("{value:?} is not a boolean: expected true or false"),
                    )),
                },
                "bulk_user_agents" => {
                    c.bulk_user_agents = list_items(value)
                        .into_iter()
                        .map(|(_, s)| s.to_lowercase())
                        .collect();
                }
                "reject_methods" => {
                    c.reject_methods.clear();
                    for (i, m) in list_items(value) {
                        if is_token(&m) {
                            c.reject_methods.push(m.to_ascii_uppercase());
                        } else {
                            problems.push(problem(k, i, format!("`{m}` is not an HTTP method")));
                        }
                    }
                }
                "deadline_header" => {
                    let name = value.trim();
                    if name.is_empty() {
                        c.deadline_header = None;
                    } else if is_token(name) {
                        c.deadline_header = Some(name.to_ascii_lowercase());
                    } else {
                        problems.push(ConfigProblem::new(
                            k,
                            format!("{value:?} is not a header name (\"\" disables)"),
                        ));
                    }
                }
                "client_key" => {
                    let mut sources = Vec::new();
                    let mut bad = false;
                    for (i, item) in list_items(value) {
                        match KeySource::parse(&item) {
                            Ok(s) => sources.push(s),
                            Err(e) => {
                                bad = true;
                                problems.push(problem(k, i, e));
                            }
                        }
                    }
                    if !bad {
                        c.client_key = sources;
                    }
                }
                _ => {
                    if let Some(name) = k.strip_prefix("class.") {
                        let Some(class) = class_named(name) else {
                            problems.push(ConfigProblem::new(
                                k,
                                format!(
                                    "unknown class `{name}` (use critical, high, normal, low, bulk)"
                                ),
                            ));
                            continue;
                        };
                        let mut rules = Vec::new();
                        for (i, item) in list_items(value) {
                            match PrefixRule::parse(&item) {
                                Ok(r) => rules.push(r),
                                Err(e) => problems.push(problem(k, i, e)),
                            }
                        }
                        prefixes.push((class, rules));
                    } else if let Some(name) = k.strip_prefix("cost.") {
                        let Some(class) = class_named(name) else {
                            problems.push(ConfigProblem::new(
                                k,
                                format!(
                                    "unknown class `{name}` (use critical, high, normal, low, bulk)"
                                ),
                            ));
                            continue;
                        };
                        match value.trim().parse::<u32>() {
                            Ok(n) if (1..=MAX_COST).contains(&n) => {
                                c.costs[class_index(class)] = n;
                            }
                            _ => problems.push(ConfigProblem::new(
                                k,
                                format!(
                                    "{value:?} is not a cost: expected an integer 1 to {MAX_COST}"
                                ),
                            )),
                        }
                    } else {
                        problems.push(ConfigProblem::new(
                            k,
                            format!("unknown key; known keys: {}", KNOWN_KEYS.join(", ")),
                        ));
                    }
                }
            }
        }
        prefixes.sort_by_key(|(class, _)| *class);
        c.class_prefixes = prefixes
            .into_iter()
            .filter(|(_, r)| !r.is_empty())
            .collect();
        (c, problems)
    }

    /// The configured cost of `class` (default 1).
    pub fn cost(&self, class: PriorityClass) -> u32 {
        self.costs[class_index(class)]
    }
}

/// Every problem of the host's configuration of this guest.
pub fn check() -> Vec<ConfigProblem> {
    Config::parse(&host::config_all()).1
}
