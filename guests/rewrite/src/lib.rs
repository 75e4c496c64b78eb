//! `rewrite`: a request guest that normalises the path, filters query
//! parameters, applies header rules and runs a configured rule engine
//! (rewrites, redirects, routing, A/B splits, signed URLs, IP lists). See
//! README.md for the operator reference.

use std::collections::BTreeMap;
use std::ops::Deref;

use outpost_guest::url::{hex_value, percent_decode, split_list};
use outpost_guest::{
    CheckContext, ConfigCheck, ConfigProblem, RequestAction, RequestEdit, RequestHead, RequestHook,
    Response, host,
};

mod ip;
pub mod rules;
mod sign;
mod split;
pub mod template;

pub use ip::{Cidr, parse_ip};
pub use outpost_guest::ua::{CLASSES, client_class};
pub use rules::{Rule, Secret};
pub use sign::{sign_path, verify as verify_token};
pub use split::{pick as split_pick, stable_hash};

/// Tracking parameters stripped when `strip_query` is not configured.
pub const DEFAULT_STRIP_QUERY: &str = "utm_*,fbclid,gclid,mc_eid,_ga";

/// The configuration keys this guest knows (`set_header.` and `secret.` are
/// prefixes).
pub const KNOWN_KEYS: &[&str] = &[
    "normalize_path",
    "lowercase_path",
    "strip_query",
    "keep_query",
    "sort_query",
    "set_header.<name>",
    "remove_header",
    "rules",
    "secret.<name>",
];

/// The guest.
pub struct Rewrite;

impl RequestHook for Rewrite {
    fn on_request(req: &RequestHead) -> RequestAction {
        with_config(|config| rewrite(req, config).into_action())
    }
}

impl ConfigCheck for Rewrite {
    fn check_config(ctx: &CheckContext) -> Vec<ConfigProblem> {
        check(&ctx.origins)
    }
}

/// At load: the configuration is parsed (rules compiled) once, and every fresh
/// instance starts with it.
impl outpost_guest::Init for Rewrite {
    fn init() {
        with_config(|_| ());
    }
}

outpost_guest::export_request!(Rewrite, check: Rewrite);
outpost_guest::export_init!(Rewrite);

/// Run `f` with the configuration. In the component (`wasm32-wasip2`) it is parsed
/// once per instance (the config of an instance never changes); elsewhere (native
/// tests, the browser playground) it is read every time, as the mock config changes.
fn with_config<R>(f: impl FnOnce(&Config) -> R) -> R {
    static CONFIG: std::sync::OnceLock<Config> = std::sync::OnceLock::new();
    host::with_config(&CONFIG, Config::from_host, f)
}

/// The guest's configuration, read from the host.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Normalise the path (default true).
    pub normalize_path: bool,
    /// Lower-case the path's letters (default false).
    pub lowercase_path: bool,
    /// Query parameter patterns to drop; a trailing `*` is a prefix glob.
    pub strip_query: Vec<String>,
    /// When set, only parameters matching these patterns survive (after strip).
    pub keep_query: Option<Vec<String>>,
    /// Sort the remaining query parameters by name (default false).
    pub sort_query: bool,
    /// `(name, value)` headers to set, in key order.
    pub set_headers: Vec<(String, String)>,
    /// Header names to remove.
    pub remove_headers: Vec<String>,
    /// The rules, in order (the ones that parsed).
    pub rules: Vec<Rule>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            normalize_path: true,
            lowercase_path: false,
            strip_query: split_list(DEFAULT_STRIP_QUERY),
            keep_query: None,
            sort_query: false,
            set_headers: Vec::new(),
            remove_headers: Vec::new(),
            rules: Vec::new(),
        }
    }
}

/// `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`, any case.
pub(crate) fn parse_bool(raw: &str) -> Option<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// A `secret.<name>` value: the UTF-8 bytes, or `hex:<hex digits>`.
pub fn parse_secret(raw: &str) -> Result<Secret, String> {
    let bytes = match raw.strip_prefix("hex:") {
        Some(h) => {
            let b = h.trim().as_bytes();
            if b.len() % 2 != 0 {
                return Err("`hex:` secret has an odd number of digits".into());
            }
            b.chunks(2)
                .map(|pair| match (hex_value(pair[0]), hex_value(pair[1])) {
                    (Some(hi), Some(lo)) => Ok(hi << 4 | lo),
                    _ => Err("`hex:` secret has a non-hex digit".to_string()),
                })
                .collect::<Result<Vec<u8>, String>>()?
        }
        None => raw.as_bytes().to_vec(),
    };
    if bytes.is_empty() {
        return Err("empty secret".into());
    }
    Ok(Secret(bytes))
}

/// The rule lines of a `rules` value: `(item index, line)`, without blank
/// items and `#` comments.
fn rule_lines(value: &str) -> impl Iterator<Item = (usize, &str)> {
    value
        .lines()
        .map(str::trim)
        .enumerate()
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
}

fn secrets_of(pairs: &[(String, String)]) -> BTreeMap<String, Secret> {
    pairs
        .iter()
        .filter_map(|(k, v)| {
            let name = k.strip_prefix("secret.")?;
            Some((name.to_string(), parse_secret(v).ok()?))
        })
        .collect()
}

impl Config {
    /// Read the configuration; bad values are logged and replaced by defaults,
    /// rules that do not parse are logged and skipped (the load-time [`check`]
    /// rejects both).
    pub fn from_host() -> Self {
        Self::from_pairs(&host::config_all())
    }

    /// The configuration of these `(key, value)` pairs (see [`Config::from_host`]).
    pub fn from_pairs(pairs: &[(String, String)]) -> Self {
        let mut c = Config::default();
        let secrets = secrets_of(pairs);
        for (key, value) in pairs {
            let flag = match key.as_str() {
                "normalize_path" => Some(&mut c.normalize_path),
                "lowercase_path" => Some(&mut c.lowercase_path),
                "sort_query" => Some(&mut c.sort_query),
                _ => None,
            };
            if let Some(flag) = flag {
                match parse_bool(value) {
                    Some(b) => *flag = b,
                    None => host::warn(&format!(
                        "config `{key}`: {value:?} is not a boolean; using {flag}"
                    )),
                }
                continue;
            }
            match key.as_str() {
                "strip_query" => c.strip_query = split_list(value),
                "keep_query" => c.keep_query = Some(split_list(value)),
                "remove_header" => {
                    for name in split_list(value) {
                        if is_token(&name) {
                            c.remove_headers.push(name.to_ascii_lowercase());
                        } else {
                            host::warn(&format!(
                                "config `remove_header`: invalid header name {name:?}; ignored"
                            ));
                        }
                    }
                }
                "rules" => {
                    for (i, line) in rule_lines(value) {
                        match rules::parse(line, &secrets) {
                            Ok(rule) => c.rules.push(rule),
                            Err(e) => {
                                host::warn(&format!("config `rules` item {i}: {e}; rule skipped"))
                            }
                        }
                    }
                }
                _ => {
                    if let Some(name) = key.strip_prefix("set_header.") {
                        if !is_token(name) {
                            host::warn(&format!("config `{key}`: invalid header name; ignored"));
                        } else if !is_field_value(value) {
                            host::warn(&format!("config `{key}`: invalid header value; ignored"));
                        } else {
                            c.set_headers
                                .push((name.to_ascii_lowercase(), value.clone()));
                        }
                    }
                }
            }
        }
        c
    }
}

/// Every problem of the host's configuration of this guest; `origins` are the
/// origins the operator configured.
pub fn check(origins: &[String]) -> Vec<ConfigProblem> {
    check_pairs(&host::config_all(), origins)
}

fn check_query_list(key: &str, value: &str, problems: &mut Vec<ConfigProblem>) {
    for item in split_list(value) {
        let body = item.strip_suffix('*').unwrap_or(&item);
        if body.contains('*') {
            problems.push(ConfigProblem::new(
                key,
                format!("`{item}`: `*` is only allowed at the end (a prefix glob)"),
            ));
        } else if body.contains(['&', '=', '#', '?']) || body.chars().any(char::is_whitespace) {
            problems.push(ConfigProblem::new(
                key,
                format!("`{item}` is not a query parameter name"),
            ));
        }
    }
}

/// [`check`] on explicit `(key, value)` pairs.
pub fn check_pairs(pairs: &[(String, String)], origins: &[String]) -> Vec<ConfigProblem> {
    let mut problems = Vec::new();
    let mut rules_value = None;
    for (key, value) in pairs {
        let k = key.as_str();
        match k {
            "normalize_path" | "lowercase_path" | "sort_query" => {
                if parse_bool(value).is_none() {
                    problems.push(ConfigProblem::new(
                        k,
                        format!("{value:?} is not a boolean: expected true or false"),
                    ));
                }
            }
            "strip_query" | "keep_query" => check_query_list(k, value, &mut problems),
            "remove_header" => {
                for name in split_list(value) {
                    if !is_token(&name) {
                        problems.push(ConfigProblem::new(
                            k,
                            format!("`{name}` is not a valid header name"),
                        ));
                    }
                }
            }
            "rules" => rules_value = Some(value),
            _ => {
                if let Some(name) = k.strip_prefix("set_header.") {
                    if !is_token(name) {
                        problems.push(ConfigProblem::new(
                            k,
                            format!("`{name}` is not a valid header name"),
                        ));
                    } else if !is_field_value(value) {
                        problems.push(ConfigProblem::new(
                            k,
                            "the value has control characters (line breaks?)",
                        ));
                    }
                } else if let Some(name) = k.strip_prefix("secret.") {
                    if name.is_empty() {
                        problems.push(ConfigProblem::new(
                            k,
                            "a secret needs a name: `secret.<name>`",
                        ));
                    }
                    if let Err(e) = parse_secret(value) {
                        problems.push(ConfigProblem::new(k, e));
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
    if let Some(value) = rules_value {
        let config = Config::from_pairs_quiet(pairs);
        let secrets = secrets_of(pairs);
        for (i, line) in rule_lines(value) {
            match rules::parse(line, &secrets) {
                Ok(rule) => {
                    for msg in
                        rule.problems(origins, &config.strip_query, config.keep_query.as_deref())
                    {
                        problems.push(ConfigProblem::item("rules", i, msg));
                    }
                }
                Err(msg) => problems.push(ConfigProblem::item("rules", i, msg)),
            }
        }
    }
    problems
}

impl Config {
    /// The query settings of `pairs`, without logging (for the check).
    fn from_pairs_quiet(pairs: &[(String, String)]) -> Self {
        let mut c = Config::default();
        for (key, value) in pairs {
            match key.as_str() {
                "strip_query" => c.strip_query = split_list(value),
                "keep_query" => c.keep_query = Some(split_list(value)),
                _ => {}
            }
        }
        c
    }
}

/// What the guest does with a request: forward it with `edit`, or answer with
/// `response`. Derefs to the edit, so `rewrite(..).path` reads the new path.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    /// The changes to forward with (empty when `response` is set).
    pub edit: RequestEdit,
    /// The response a rule answered with, which ends processing.
    pub response: Option<Response>,
}

impl Outcome {
    /// The hook's verdict.
    pub fn into_action(self) -> RequestAction {
        match self.response {
            Some(r) => RequestAction::Respond(r),
            None => RequestAction::Forward(self.edit),
        }
    }
}

impl Deref for Outcome {
    type Target = RequestEdit;
    fn deref(&self) -> &RequestEdit {
        &self.edit
    }
}

/// Apply `config` to `req`: normalisation, query filtering, the header keys,
/// then the rules in order. The edit holds only what changes.
pub fn rewrite(req: &RequestHead, config: &Config) -> Outcome {
    let mut st = rules::State::new(req, config.normalize_path.then_some(config.lowercase_path));
    if config.normalize_path {
        st.path = normalize_path(&req.path, config.lowercase_path);
    } else if config.lowercase_path {
        st.path = lowercase_outside_escapes(&req.path);
    }
    st.query = filter_query(
        &req.query,
        &config.strip_query,
        config.keep_query.as_deref(),
        config.sort_query,
    );
    for name in &config.remove_headers {
        st.remove_header(name);
    }
    for (name, value) in &config.set_headers {
        st.set_header(name, value);
    }
    for rule in &config.rules {
        if let Some(response) = rule.apply(&mut st) {
            return Outcome {
                edit: RequestEdit::default(),
                response: Some(response),
            };
        }
    }
    Outcome {
        edit: st.into_edit(),
        response: None,
    }
}

/// RFC 3986 unreserved characters.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Characters allowed unencoded in a path: pchar and `/`.
fn is_path_char(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'!' | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
                | b'/'
        )
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn push_escaped(out: &mut String, b: u8) {
    out.push('%');
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 0xF)]));
}

/// Normalise percent-encoding: decode escapes of unreserved characters,
/// upper-case the hex of the others, escape a `%` that starts no valid escape
/// (as `%25`) and every byte not allowed in a path. With `lowercase`, letters
/// outside escapes are lower-cased.
pub fn normalize_encoding(path: &str, lowercase: bool) -> String {
    let b = path.as_bytes();
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%' {
            if let (Some(hi), Some(lo)) = (
                b.get(i + 1).copied().and_then(hex_value),
                b.get(i + 2).copied().and_then(hex_value),
            ) {
                let v = hi << 4 | lo;
                if is_unreserved(v) {
                    out.push(char::from(if lowercase {
                        v.to_ascii_lowercase()
                    } else {
                        v
                    }));
                } else {
                    push_escaped(&mut out, v);
                }
                i += 3;
            } else {
                push_escaped(&mut out, b'%');
                i += 1;
            }
        } else if is_path_char(c) {
            out.push(char::from(if lowercase {
                c.to_ascii_lowercase()
            } else {
                c
            }));
            i += 1;
        } else {
            push_escaped(&mut out, c);
            i += 1;
        }
    }
    out
}

/// Collapse duplicate slashes and remove `.` and `..` segments (RFC 3986
/// §5.2.4). Slashes are collapsed first, as nginx's `merge_slashes` does, so
/// `/a//../b` is `/b`. A trailing slash is kept; `..` never climbs above `/`.
pub fn remove_dot_segments(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut out: Vec<&str> = Vec::with_capacity(segments.len());
    let mut trailing = path.ends_with('/');
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *seg {
            "." => trailing |= last,
            ".." => {
                out.pop();
                trailing |= last;
            }
            s => out.push(s),
        }
    }
    let mut result = String::with_capacity(path.len());
    for seg in &out {
        result.push('/');
        result.push_str(seg);
    }
    if out.is_empty() || trailing {
        result.push('/');
    }
    result
}

/// The normalised path: encoding first (so `%2E%2E` is a `..` segment), then
/// slashes and dot-segments. Idempotent. An encoded slash (`%2F`) stays encoded.
pub fn normalize_path(path: &str, lowercase: bool) -> String {
    remove_dot_segments(&normalize_encoding(path, lowercase))
}

fn lowercase_outside_escapes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut escape = 0;
    for ch in path.chars() {
        if escape > 0 {
            escape -= 1;
            out.push(ch);
        } else if ch == '%' {
            escape = 2;
            out.push(ch);
        } else {
            out.push(ch.to_ascii_lowercase());
        }
    }
    out
}

/// Does query parameter `name` (decoded) match one of `patterns`? Case-insensitive;
/// a trailing `*` matches any suffix.
pub fn matches_any(name: &str, patterns: &[String]) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => name
            .get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix)),
        None => name.eq_ignore_ascii_case(p),
    })
}

/// Drop the parameters matching `strip` (and empty pieces), optionally sort the
/// rest by name (stable, so repeated names keep their order). Kept parameters
/// are copied byte for byte.
pub fn rewrite_query(query: &str, strip: &[String], sort: bool) -> String {
    filter_query(query, strip, None, sort)
}

/// [`rewrite_query`] with an allow-list: when `keep` is set, only parameters
/// matching it survive (applied after `strip`).
pub fn filter_query(query: &str, strip: &[String], keep: Option<&[String]>, sort: bool) -> String {
    let mut kept: Vec<(&str, &str)> = query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| (piece.split_once('=').map_or(piece, |(name, _)| name), piece))
        .filter(|(name, _)| {
            let decoded = percent_decode(name);
            !matches_any(&decoded, strip) && keep.is_none_or(|k| matches_any(&decoded, k))
        })
        .collect();
    if sort {
        kept.sort_by(|a, b| a.0.cmp(b.0));
    }
    let mut out = String::with_capacity(query.len());
    for (i, (_, piece)) in kept.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(piece);
    }
    out
}

/// An HTTP token (RFC 9110 §5.6.2), as header names must be.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// A header value without control characters (tab allowed).
pub(crate) fn is_field_value(s: &str) -> bool {
    s.bytes().all(|b| b == b'\t' || !b.is_ascii_control())
}

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_guest::{HeaderOp, LogLevel, testing};

    fn norm(p: &str) -> String {
        normalize_path(p, false)
    }

    #[test]
    fn removes_dot_segments() {
        assert_eq!(norm("/a/b/c/./../../g"), "/a/g");
        assert_eq!(norm("/mid/content=5/../6"), "/mid/6");
        assert_eq!(norm("/../x"), "/x");
        assert_eq!(norm("/.."), "/");
        assert_eq!(norm("/a/.."), "/");
        assert_eq!(norm("/a/b/.."), "/a/");
        assert_eq!(norm("/a/."), "/a/");
        assert_eq!(norm("/a/..."), "/a/...");
        assert_eq!(norm("/a/.b/..c"), "/a/.b/..c");
        assert_eq!(norm("/"), "/");
        assert_eq!(norm(""), "/");
    }

    #[test]
    fn collapses_slashes_and_keeps_trailing_slash() {
        assert_eq!(norm("//a///b//"), "/a/b/");
        assert_eq!(norm("/a//../b"), "/b");
        assert_eq!(norm("/a/b/"), "/a/b/");
    }

    #[test]
    fn normalises_percent_encoding() {
        assert_eq!(norm("/a/./b/../c//d%7e%41"), "/a/c/d~A");
        assert_eq!(norm("/%2F"), "/%2F");
        assert_eq!(norm("/%2f%3a"), "/%2F%3A");
        assert_eq!(norm("/%2e%2E/x"), "/x");
        assert_eq!(norm("/a/%2e/b"), "/a/b");
        assert_eq!(norm("/100%"), "/100%25");
        assert_eq!(norm("/%zz"), "/%25zz");
        assert_eq!(norm("/a b"), "/a%20b");
        assert_eq!(norm("/caf\u{e9}"), "/caf%C3%A9");
        assert_eq!(norm("/%c3%a9"), "/%C3%A9");
        assert_eq!(norm("/a\\b"), "/a%5Cb");
    }

    #[test]
    fn lowercases_outside_escapes() {
        assert_eq!(normalize_path("/Foo/%2f/%4A", true), "/foo/%2F/j");
        assert_eq!(lowercase_outside_escapes("/Foo/%2F"), "/foo/%2F");
    }

    #[test]
    fn normalisation_is_idempotent_on_messy_inputs() {
        let messy = [
            "/a/./b/../c//d%7e%41",
            "/../x",
            "/%2F",
            "/",
            "//",
            "/%%341",
            "/%%4141",
            "/%",
            "/%2",
            "/%2e%2e/%2E./.%2e/",
            "/./.././../a/",
            "/A/%7E/%7e/~",
            "/x/..%2F../y",
            "/a b/%20/\u{e9}",
        ];
        for p in messy {
            for lower in [false, true] {
                let once = normalize_path(p, lower);
                assert_eq!(normalize_path(&once, lower), once, "input {p:?}");
                assert!(once.starts_with('/'));
            }
        }
    }

    #[test]
    fn normalisation_is_idempotent_on_generated_inputs() {
        // A small deterministic generator over a nasty alphabet.
        let alphabet: Vec<char> = "/./%2eEfF7A4a1z ~é?".chars().collect();
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..5000 {
            let mut p = String::from("/");
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            let len = (state >> 59) as usize + 1;
            for _ in 0..len {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                let idx = usize::try_from(state >> 33).unwrap_or(0) % alphabet.len();
                p.push(alphabet[idx]);
            }
            let once = norm(&p);
            assert_eq!(norm(&once), once, "input {p:?}");
            assert!(!once.contains("//"), "input {p:?} -> {once:?}");
            assert!(
                !once.split('/').any(|s| s == "." || s == ".."),
                "input {p:?} -> {once:?}"
            );
        }
    }

    #[test]
    fn strips_tracking_parameters() {
        let strip = split_list(DEFAULT_STRIP_QUERY);
        assert_eq!(
            rewrite_query(
                "id=7&utm_source=x&UTM_Medium=y&fbclid=1&gclid=2&mc_eid=3&_ga=4&b=2",
                &strip,
                false
            ),
            "id=7&b=2"
        );
        assert_eq!(
            rewrite_query("utm%5Fsource=x&a=%20", &strip, false),
            "a=%20"
        );
        assert_eq!(rewrite_query("utm_source=x", &strip, false), "");
        assert_eq!(rewrite_query("a=1&&b", &strip, false), "a=1&b");
        assert_eq!(rewrite_query("", &strip, false), "");
        // `_ga` is exact: `_gat` stays.
        assert_eq!(rewrite_query("_gat=1", &strip, false), "_gat=1");
    }

    #[test]
    fn sorts_query_stably() {
        assert_eq!(rewrite_query("b=1&a=2&b=0&c", &[], true), "a=2&b=1&b=0&c");
        let once = rewrite_query("z=1&utm_x=2&a=3", &split_list("utm_*"), true);
        assert_eq!(once, "a=3&z=1");
        assert_eq!(rewrite_query(&once, &split_list("utm_*"), true), once);
    }

    #[test]
    fn unchanged_request_gives_empty_edit() {
        testing::reset();
        let req = RequestHead::get("/a/b.m3u8?id=1");
        assert!(rewrite(&req, &Config::from_host()).is_empty());
        let req = RequestHead::get("/?");
        assert!(rewrite(&req, &Config::from_host()).is_empty());
    }

    #[test]
    fn edit_sets_only_what_changed() {
        testing::reset();
        let req = RequestHead::get("/a//b/../c?utm_source=x&id=1");
        let edit = rewrite(&req, &Config::from_host());
        assert_eq!(edit.path.as_deref(), Some("/a/c"));
        assert_eq!(edit.query.as_deref(), Some("id=1"));
        assert!(edit.headers.is_empty());
        assert_eq!(edit.method, None);

        let req = RequestHead::get("/clean?utm_source=x");
        let edit = rewrite(&req, &Config::from_host());
        assert_eq!(edit.path, None);
        assert_eq!(edit.query.as_deref(), Some(""));
    }

    #[test]
    fn config_controls_query_and_case() {
        testing::set_config(&[
            ("strip_query", "session*, ref"),
            ("sort_query", "true"),
            ("lowercase_path", "yes"),
        ]);
        let req = RequestHead::get("/Video/X.M3U8?utm_source=a&sessionid=1&ref=2&b=1&a=2");
        let edit = rewrite(&req, &Config::from_host());
        assert_eq!(edit.path.as_deref(), Some("/video/x.m3u8"));
        assert_eq!(edit.query.as_deref(), Some("a=2&b=1&utm_source=a"));

        testing::set_config(&[("strip_query", "")]);
        let req = RequestHead::get("/a?utm_source=a");
        assert!(rewrite(&req, &Config::from_host()).is_empty());

        testing::set_config(&[("normalize_path", "false")]);
        let req = RequestHead::get("/a/../b");
        assert_eq!(rewrite(&req, &Config::from_host()).path, None);
    }

    #[test]
    fn header_rules() {
        testing::set_config(&[
            ("set_header.X-Edge", "outpost"),
            ("set_header.x-same", "1"),
            ("remove_header", "cookie, X-Debug, absent"),
        ]);
        let req = RequestHead::get("/")
            .with_header("cookie", "a=b")
            .with_header("x-debug", "1")
            .with_header("x-same", "1");
        let edit = rewrite(&req, &Config::from_host());
        assert_eq!(
            edit.headers,
            vec![
                HeaderOp::Remove("cookie".into()),
                HeaderOp::Remove("x-debug".into()),
                HeaderOp::Set(outpost_guest::Header::new("x-edge", "outpost")),
            ]
        );
    }

    #[test]
    fn bad_config_values_warn_and_use_defaults() {
        testing::reset();
        testing::set_config(&[
            ("sort_query", "maybe"),
            ("set_header.bad name", "x"),
            ("set_header.x-ok", "line\r\nbreak"),
            ("remove_header", "ok,no good"),
        ]);
        let c = Config::from_host();
        assert!(!c.sort_query);
        assert!(c.set_headers.is_empty());
        assert_eq!(c.remove_headers, vec!["ok".to_string()]);
        let warnings = testing::take_logs()
            .into_iter()
            .filter(|(l, _)| *l == LogLevel::Warn)
            .count();
        assert_eq!(warnings, 4);
    }

    #[test]
    fn hook_forwards() {
        testing::reset();
        let action = Rewrite::on_request(&RequestHead::get("/x/./y"));
        assert_eq!(
            action,
            RequestAction::Forward(RequestEdit::default().path("/x/y"))
        );
    }
}
