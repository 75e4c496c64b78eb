//! Outpost's operator configuration: the TOML schema, its validation with precise
//! errors (file, line, column, what was expected), and the embedded default.
//!
//! Parsing happens in two passes, as in Spin's manifest crate: serde with
//! `deny_unknown_fields` and validated newtypes, so a bad value is reported by the
//! TOML parser at its position; then [`Config::validate`] checks cross-references
//! (a route naming a guest that does not exist) and reports every problem found.

#![deny(missing_docs)]

mod schema;
mod values;

use std::fmt;
use std::path::{Path, PathBuf};

pub use schema::{
    AccessLogSettings, Balance, CacheSettings, Certificate, Client, Compression, Config,
    ConfigValue, FailMode, ForwardedHeader, Guest, GuestSource, HealthCheck, Http2Settings,
    Limiter, Listener, ListenerTls, Node, Origin, OriginKind, OriginTls, Record, Route, RouteCache,
    Scalar, Shadow,
};
pub use toml::Spanned;
pub use values::{Addr, Cidr, Millis, Name};

/// The configuration the node runs with when it is given none: a demo origin serving a
/// synthetic live HLS stream, and the shipped guests in front of it.
pub const EMBEDDED_DEFAULT: &str = include_str!("default.toml");

/// The file name reported for the embedded default.
pub const EMBEDDED_NAME: &str = "<embedded default>";

/// One problem found in a configuration, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file the problem is in.
    pub file: String,
    /// 1-based line, when known.
    pub line: usize,
    /// 1-based column (in characters), when known.
    pub column: usize,
    /// What is wrong and what was expected.
    pub message: String,
    /// The line it is on (shown under the message with a caret at the column);
    /// empty when there is no line to show.
    pub snippet: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )?;
        if !self.snippet.trim().is_empty() {
            let gutter = self.line.to_string();
            let pad = " ".repeat(gutter.len());
            // The caret under the column, tabs kept so it lines up.
            let lead: String = self
                .snippet
                .chars()
                .take(self.column.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            write!(
                f,
                "\n {pad} |\n {gutter} | {}\n {pad} | {lead}^",
                self.snippet
            )?;
        }
        Ok(())
    }
}

/// A configuration that could not be used: every problem found, in file order.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError {
    /// The problems, at least one.
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "error: {d}")?;
        }
        Ok(())
    }
}

/// The text of a configuration and where it came from, for positions in errors.
#[derive(Debug, Clone)]
pub struct Source {
    /// Shown in errors: the path as given, or [`EMBEDDED_NAME`].
    pub name: String,
    /// The directory relative wasm paths resolve against.
    pub base_dir: PathBuf,
    /// The full text.
    pub text: String,
}

impl Source {
    /// Line and column (1-based, column in characters) of a byte offset.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..floor_char_boundary(&self.text, offset)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }

    /// A diagnostic at a byte span of this source.
    pub fn diagnostic(
        &self,
        span: std::ops::Range<usize>,
        message: impl Into<String>,
    ) -> Diagnostic {
        let (line, column) = self.position(span.start);
        // Only a real position gets a snippet (0..0 is "no position").
        let snippet = if span.end > 0 {
            self.text
                .lines()
                .nth(line - 1)
                .unwrap_or("")
                .trim_end()
                .to_string()
        } else {
            String::new()
        };
        Diagnostic {
            file: self.name.clone(),
            line,
            column,
            message: message.into(),
            snippet,
        }
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// serde's `invalid type: X, expected Y` in an operator's words: what was
/// expected first, TOML's names for it, and the fix when it is plain (a single
/// name where a list is expected).
fn plain_words(message: &str) -> String {
    let Some(rest) = message.strip_prefix("invalid type: ") else {
        return message.to_string();
    };
    let Some((found, expected)) = rest.rsplit_once(", expected ") else {
        return message.to_string();
    };
    let toml_name = |s: &str| match s {
        "a sequence" => "a list (`[...]`)".to_string(),
        "a map" => "a table (`{ ... }` or a `[section]`)".to_string(),
        "a boolean" => "`true` or `false`".to_string(),
        other => other.to_string(),
    };
    let found_words = found
        .replace("string ", "the string ")
        .replace("integer `", "the number `")
        .replace("floating point `", "the number `")
        .replace("boolean `", "`")
        .replace("sequence", "a list")
        .replace("map", "a table");
    let mut out = format!("expected {}, found {found_words}", toml_name(expected));
    if expected == "a sequence"
        && let Some(s) = found.strip_prefix("string ")
    {
        out.push_str(&format!(": write `[{s}]`"));
    }
    out
}

/// Schema errors reported at most, per file.
const MAX_ERRORS: usize = 50;

/// Blank out (with spaces, newlines kept) the entry of `text` at byte `at`: its
/// `key = value` line and the lines its value continues on, or a `[table]` header
/// with the entries under it. False when there is nothing left to blank there.
fn blank_entry(text: &mut String, at: usize) -> bool {
    let at = floor_char_boundary(text, at.min(text.len()));
    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line_end = |from: usize| text[from..].find('\n').map_or(text.len(), |i| from + i);
    let first = text[start..line_end(start)].trim_start();
    if first.is_empty() || first.starts_with('#') {
        return false;
    }
    let mut end = line_end(start);
    if first.starts_with('[') {
        // A table header: it and its entries, up to the next header.
        while end < text.len() {
            let next = end + 1;
            let line = text[next..line_end(next)].trim_start();
            if line.starts_with('[') {
                break;
            }
            end = line_end(next);
        }
    } else {
        // A value may go on over lines: until its brackets and braces close.
        let mut depth = bracket_depth(&text[start..end]);
        while depth > 0 && end < text.len() {
            let next = end + 1;
            end = line_end(next);
            depth += bracket_depth(&text[next..end]);
        }
    }
    let blank: String = text[start..end]
        .chars()
        .map(|c| if c == '\n' { '\n' } else { ' ' })
        .collect();
    text.replace_range(start..end, &blank);
    true
}

/// Opening minus closing brackets and braces on a line, outside strings and
/// comments (a rough count: enough to find where a multi-line value ends).
fn bracket_depth(line: &str) -> i32 {
    let mut depth = 0;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in line.chars() {
        match (quote, c) {
            (Some('"'), '\\') if !escaped => {
                escaped = true;
                continue;
            }
            (Some(q), c) if c == q && !escaped => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '#') => break,
            (None, '[' | '{') => depth += 1,
            (None, ']' | '}') => depth -= 1,
            (None, _) => {}
        }
        escaped = false;
    }
    depth
}

/// An origin address must end in a port.
fn check_port(src: &Source, name: &Name, a: &Spanned<String>, out: &mut Vec<Diagnostic>) {
    let text = a.get_ref();
    let port = if text.starts_with('[') {
        text.rsplit_once("]:").map(|(_, p)| p)
    } else {
        text.rsplit_once(':').map(|(_, p)| p)
    };
    match port.map(str::parse::<u16>) {
        Some(Ok(p)) if p > 0 => {}
        _ => out.push(src.diagnostic(
            a.span(),
            format!("origin `{name}`: address `{text}` needs a port; expected `HOST:PORT`"),
        )),
    }
}

/// The largest configuration file read.
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// Read a file the configuration names (a guest, a table, a database), refusing one
/// larger than `cap` bytes with a clear error instead of reading it whole: a path
/// such as `/dev/zero` must not grow the node without bound.
pub fn read_capped(path: &Path, cap: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let file = std::fs::File::open(path)?;
    let mut buf = Vec::new();
    file.take(cap + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > cap {
        return Err(std::io::Error::other(format!(
            "larger than the {} MiB this file may have",
            cap >> 20
        )));
    }
    Ok(buf)
}

/// `name` if it is a valid HTTP field name (RFC 9110 token).
fn http_token(name: &str) -> Option<&str> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    ok.then_some(name)
}

impl Config {
    /// Read and validate a configuration file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let name = path.display().to_string();
        let at = |line, column, message: String| ConfigError {
            diagnostics: vec![Diagnostic {
                file: name.clone(),
                line,
                column,
                message,
                snippet: String::new(),
            }],
        };
        let bytes = read_capped(path, MAX_CONFIG_BYTES)
            .map_err(|e| at(1, 1, format!("cannot read the file: {e}")))?;
        let text = match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                let good = e.utf8_error().valid_up_to();
                let bytes = e.as_bytes();
                let line = 1 + bytes[..good].iter().filter(|&&b| b == b'\n').count();
                let line_start = bytes[..good]
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |i| i + 1);
                let column = 1 + String::from_utf8_lossy(&bytes[line_start..good])
                    .chars()
                    .count();
                return Err(at(
                    line,
                    column,
                    "the file is not valid UTF-8 (TOML must be)".into(),
                ));
            }
        };
        let base_dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Config::from_source(Source {
            name,
            base_dir,
            text,
        })
    }

    /// The embedded default configuration, validated.
    pub fn embedded() -> Result<Config, ConfigError> {
        Config::from_source(Source {
            name: EMBEDDED_NAME.to_string(),
            base_dir: PathBuf::from("."),
            text: EMBEDDED_DEFAULT.to_string(),
        })
    }

    /// Parse and validate configuration text, reporting every error found in one
    /// pass, in file order.
    ///
    /// A syntax error is fatal (nothing after it can be trusted). A schema error
    /// (unknown key, wrong type, bad value) is recorded, its entry blanked out of a
    /// copy of the text (offsets kept), and the copy parsed again, so every such
    /// error is found; once the schema holds, validation adds its own. A missing
    /// key that only a blanked entry could have supplied ends the search rather
    /// than reporting a consequence as an error.
    pub fn from_source(source: Source) -> Result<Config, ConfigError> {
        let fail = |diagnostics: Vec<Diagnostic>| Err(ConfigError { diagnostics });
        if let Err(e) = source.text.parse::<toml::Table>() {
            let span = e.span().unwrap_or(0..0);
            return fail(vec![source.diagnostic(span, e.message().trim_end())]);
        }
        let mut text = source.text.clone();
        let mut errors = Vec::new();
        let parsed = loop {
            let e = match toml::from_str::<Config>(&text) {
                Ok(c) => break Some(c),
                Err(e) => e,
            };
            let span = e.span().unwrap_or(0..0);
            let message = plain_words(e.message().trim_end());
            let missing = message.starts_with("missing field");
            if !errors.is_empty() && missing {
                break None;
            }
            errors.push(source.diagnostic(span.clone(), message));
            // A missing field blanks nothing (its span is the whole table); a
            // blank that leaves the text unparsable would report our edit.
            if missing
                || errors.len() >= MAX_ERRORS
                || !blank_entry(&mut text, span.start)
                || text.parse::<toml::Table>().is_err()
            {
                break None;
            }
        };
        if let Some(mut config) = parsed {
            config.source = source.clone();
            errors.extend(config.validate());
            if errors.is_empty() {
                return Ok(config);
            }
        }
        errors.sort_by_key(|d| (d.line, d.column));
        errors.dedup();
        fail(errors)
    }

    /// The cache's sizes, and each route's cache rules.
    fn validate_cache(&self, out: &mut Vec<Diagnostic>) {
        let src = &self.source;
        let c = &self.cache;
        let memory = *c.memory_mib.get_ref();
        if !(1..=1 << 20).contains(&memory) {
            out.push(src.diagnostic(
                c.memory_mib.span(),
                format!("cache.memory_mib = {memory} is out of range; expected 1 to 1048576"),
            ));
        }
        let object = *c.max_object_mib.get_ref();
        if object == 0 || object > memory {
            out.push(src.diagnostic(
                c.max_object_mib.span(),
                format!(
                    "cache.max_object_mib = {object} is out of range; expected 1 to cache.memory_mib ({memory})"
                ),
            ));
        }
        if c.disk_dir.is_some() && *c.disk_mib.get_ref() == 0 {
            out.push(src.diagnostic(
                c.disk_mib.span(),
                "cache.disk_mib must be at least 1 when cache.disk_dir is set",
            ));
        }
        if c.collapse_timeout.get_ref().0 == 0 {
            out.push(src.diagnostic(
                c.collapse_timeout.span(),
                "cache.collapse_timeout must be at least 1ms",
            ));
        }
        for route in &self.routes {
            let Some(rc) = &route.cache else { continue };
            let rname = route.name.get_ref().as_str();
            for h in &rc.key_headers {
                if http_token(h.get_ref()).is_none() {
                    out.push(src.diagnostic(
                        h.span(),
                        format!(
                            "route `{rname}`: cache.key_headers: `{}` is not a header name",
                            h.get_ref()
                        ),
                    ));
                }
            }
        }
    }

    /// Cross-reference checks over a parsed configuration; every problem found.
    pub fn validate(&self) -> Vec<Diagnostic> {
        let src = &self.source;
        let mut out = Vec::new();
        if self.listeners.is_empty() {
            out.push(src.diagnostic(0..0, "expected at least one `[[listeners]]` entry"));
        }
        for (i, l) in self.listeners.iter().enumerate() {
            for other in &self.listeners[..i] {
                if other.address.get_ref() == l.address.get_ref() && l.address.get_ref().port() != 0
                {
                    out.push(src.diagnostic(
                        l.address.span(),
                        format!("listener address {} is used twice", l.address.get_ref().0),
                    ));
                }
            }
        }
        for l in &self.listeners {
            if let Some(tls) = &l.tls
                && tls.get_ref().certificates.is_empty()
            {
                out.push(src.diagnostic(
                    tls.span(),
                    "listeners.tls needs at least one certificate \
                     (`certificates = [{ cert = \"chain.pem\", key = \"key.pem\" }]`)",
                ));
            }
            for (key, value) in [
                ("header_timeout", &l.header_timeout),
                ("idle_timeout", &l.idle_timeout),
                ("body_timeout", &l.body_timeout),
                ("send_timeout", &l.send_timeout),
            ] {
                if value.get_ref().0 == 0 {
                    out.push(src.diagnostic(
                        value.span(),
                        format!("listeners.{key} must be at least 1ms"),
                    ));
                }
            }
            let h2 = &l.http2;
            // RFC 9113: a window is at most 2^31 - 1; a stream window below 64 KiB
            // or no stream at all would stall every client.
            if h2.max_concurrent_streams == 0
                || h2.initial_stream_window < 65_535
                || h2.initial_connection_window < 65_535
                || h2.initial_stream_window > i32::MAX as u32
                || h2.initial_connection_window > i32::MAX as u32
                || h2.max_header_list_size < 1024
            {
                out.push(src.diagnostic(
                    l.address.span(),
                    "listeners.http2: max_concurrent_streams must be at least 1, windows \
                     between 65535 and 2147483647, max_header_list_size at least 1024",
                ));
            }
            for (key, value) in [
                ("max_connections", &l.max_connections),
                ("max_connections_per_ip", &l.max_connections_per_ip),
            ] {
                if *value.get_ref() == 0 {
                    out.push(
                        src.diagnostic(value.span(), format!("listeners.{key} must be at least 1")),
                    );
                }
            }
        }
        if let Some(a) = &self.access_log
            && !(0.0..=1.0).contains(a.sample.get_ref())
        {
            out.push(src.diagnostic(a.sample.span(), "access_log.sample must be between 0 and 1"));
        }
        let tick = self.node.epoch_tick.get_ref().0;
        if tick == 0 {
            out.push(src.diagnostic(
                self.node.epoch_tick.span(),
                "node.epoch_tick must be at least 1ms",
            ));
        }
        if !(16..=1 << 20).contains(self.node.cache_max_mib.get_ref()) {
            out.push(src.diagnostic(
                self.node.cache_max_mib.span(),
                format!(
                    "node.cache_max_mib = {} is out of range; expected 16 to 1048576 \
                     (a compiled guest takes a few MiB)",
                    self.node.cache_max_mib.get_ref()
                ),
            ));
        }
        if !(1..=100_000).contains(self.node.max_instances.get_ref()) {
            out.push(src.diagnostic(
                self.node.max_instances.span(),
                format!(
                    "node.max_instances = {} is out of range; expected 1 to 100000",
                    self.node.max_instances.get_ref()
                ),
            ));
        }
        for (name, o) in &self.origins {
            for (key, value) in [
                ("connect_timeout", &o.connect_timeout),
                ("first_byte_timeout", &o.first_byte_timeout),
                ("total_timeout", &o.total_timeout),
            ] {
                if value.get_ref().0 == 0 {
                    out.push(src.diagnostic(
                        value.span(),
                        format!("origin `{name}`: {key} must be at least 1ms"),
                    ));
                }
            }
            if o.kind == OriginKind::Http {
                for a in o.address.iter().chain(&o.addresses) {
                    check_port(src, name, a, &mut out);
                }
                if o.address.is_none() && !o.addresses.is_empty() {
                    out.push(src.diagnostic(
                        o.addresses[0].span(),
                        format!("origin `{name}`: `addresses` adds to `address`, which is missing"),
                    ));
                }
            }
            if !(0.0..=1.0).contains(o.max_ejected.get_ref()) {
                out.push(src.diagnostic(
                    o.max_ejected.span(),
                    format!("origin `{name}`: max_ejected must be between 0 and 1"),
                ));
            }
            if let Some(b) = &o.backup {
                match self.origins.get(b.get_ref()) {
                    _ if b.get_ref() == name => out.push(src.diagnostic(
                        b.span(),
                        format!("origin `{name}` cannot be its own backup"),
                    )),
                    None => out.push(src.diagnostic(
                        b.span(),
                        format!(
                            "origin `{name}`: backup `{}` is not a configured origin",
                            b.get_ref()
                        ),
                    )),
                    Some(_) => {}
                }
            }
            if let Some(h) = &o.health_check {
                let c = h.get_ref();
                let problem = if !c.path.starts_with('/') {
                    Some("health_check.path must start with `/`")
                } else if c.interval.0 < 100 {
                    Some("health_check.interval must be at least 100ms")
                } else if c.timeout.0 == 0 || c.timeout.0 > c.interval.0 {
                    Some("health_check.timeout must be at least 1ms and at most its interval")
                } else {
                    None
                };
                if let Some(p) = problem {
                    out.push(src.diagnostic(h.span(), format!("origin `{name}`: {p}")));
                }
            }
        }
        if self.routes.is_empty() {
            out.push(src.diagnostic(0..0, "expected at least one `[[routes]]` entry"));
        }
        let guest_names = || {
            self.guests
                .keys()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let origin_names = || {
            self.origins
                .keys()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut route_names: Vec<&str> = Vec::new();
        for route in &self.routes {
            let rname = route.name.get_ref().as_str();
            if route_names.contains(&rname) {
                out.push(src.diagnostic(
                    route.name.span(),
                    format!("route name `{rname}` is used twice; route names must be unique"),
                ));
            }
            route_names.push(rname);
            if !route.path_prefix.get_ref().starts_with('/') {
                out.push(src.diagnostic(
                    route.path_prefix.span(),
                    format!(
                        "path_prefix `{}` must start with `/`",
                        route.path_prefix.get_ref()
                    ),
                ));
            }
            if !self.origins.contains_key(route.origin.get_ref()) {
                out.push(src.diagnostic(
                    route.origin.span(),
                    format!(
                        "route `{rname}` names origin `{}`, which is not defined; expected one of: {}",
                        route.origin.get_ref(),
                        origin_names()
                    ),
                ));
            }
            let hooks = route
                .admit
                .iter()
                .map(|g| (g, "admit"))
                .chain(route.request.iter().map(|g| (g, "request")))
                .chain(route.response.iter().map(|g| (g, "response")))
                .chain(
                    route
                        .shadow
                        .iter()
                        .flat_map(|s| s.request.iter().map(|g| (g, "shadow request"))),
                )
                .chain(
                    route
                        .shadow
                        .iter()
                        .flat_map(|s| s.response.iter().map(|g| (g, "shadow response"))),
                );
            for (g, phase) in hooks {
                if !self.guests.contains_key(g.get_ref()) {
                    out.push(src.diagnostic(
                        g.span(),
                        format!(
                            "route `{rname}` names {phase} guest `{}`, which is not defined; expected one of: {}",
                            g.get_ref(),
                            guest_names()
                        ),
                    ));
                }
            }
            if !route.transform.is_empty() && route.response.is_empty() {
                out.push(src.diagnostic(
                    route.name.span(),
                    format!(
                        "route `{rname}` declares `transform` content types but has no `response` guests to transform them"
                    ),
                ));
            }
        }
        for r in &self.routes {
            let Some(s) = &r.shadow else { continue };
            if s.request.is_empty() && s.response.is_empty() {
                out.push(src.diagnostic(
                    s.sample.span(),
                    format!("route `{}`: shadow names no candidate guest; expected `request = [...]` or `response = [...]`", r.name.get_ref()),
                ));
            }
            if !s.response.is_empty() && r.response.is_empty() {
                out.push(src.diagnostic(
                    s.response[0].span(),
                    format!("route `{}`: shadow response guests need the route's own `response` guests to compare with", r.name.get_ref()),
                ));
            }
            let rate = *s.sample.get_ref();
            if !(0.0..=1.0).contains(&rate) {
                out.push(src.diagnostic(
                    s.sample.span(),
                    format!("shadow.sample = {rate} is out of range; expected 0 to 1"),
                ));
            }
        }
        self.validate_cache(&mut out);
        if let Some(r) = &self.record {
            let rate = *r.sample.get_ref();
            if !(0.0..=1.0).contains(&rate) {
                out.push(src.diagnostic(
                    r.sample.span(),
                    format!("record.sample = {rate} is out of range; expected 0 to 1"),
                ));
            }
        }
        for (net, cc) in &self.client.countries {
            let c = cc.get_ref();
            if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
                out.push(src.diagnostic(
                    cc.span(),
                    format!(
                        "client.countries: `{net}` maps to `{c}`; expected an ISO 3166-1 alpha-2 code such as `US`"
                    ),
                ));
            }
        }
        for (name, guest) in &self.guests {
            if !(1..=4096).contains(guest.memory_mib.get_ref()) {
                out.push(src.diagnostic(
                    guest.memory_mib.span(),
                    format!(
                        "guest `{name}`: memory_mib = {} is out of range; expected 1 to 4096",
                        guest.memory_mib.get_ref()
                    ),
                ));
            }
            let cpu = guest.cpu.get_ref().0;
            if cpu == 0 {
                out.push(src.diagnostic(
                    guest.cpu.span(),
                    format!("guest `{name}`: cpu must be at least 1ms"),
                ));
            } else if tick > 0 && tick.saturating_mul(10) > cpu && tick > 1 {
                // The deadline is enforced once a tick: a tick as long as the deadline
                // lets a spinning guest run up to a whole tick past it.
                out.push(src.diagnostic(
                    guest.cpu.span(),
                    format!(
                        "guest `{name}`: cpu = {cpu}ms is under 10 × node.epoch_tick ({tick}ms), so the deadline could not be enforced; raise cpu or lower epoch_tick"
                    ),
                ));
            }
            if let GuestSource::Builtin(b) = guest.source()
                && !schema::BUILTIN_GUESTS.contains(&b.as_str())
            {
                {
                    out.push(src.diagnostic(
                        guest.wasm.span(),
                        format!(
                            "guest `{name}`: unknown built-in guest `builtin:{b}`; expected one of: {}",
                            schema::BUILTIN_GUESTS
                                .iter()
                                .map(|b| format!("`builtin:{b}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
            }
        }
        let c = &self.compression;
        for (key, value, range) in [
            ("gzip_level", &c.gzip_level, 1..=9),
            ("brotli_level", &c.brotli_level, 0..=11),
            ("zstd_level", &c.zstd_level, 1..=19),
        ] {
            if !range.contains(value.get_ref()) {
                out.push(src.diagnostic(
                    value.span(),
                    format!(
                        "compression.{key} ({}) must be within {}..={}",
                        value.get_ref(),
                        range.start(),
                        range.end()
                    ),
                ));
            }
        }
        let l = &self.limiter;
        for (key, value, range) in [
            ("tolerance", &l.tolerance, 1.0..=2.0),
            ("headroom", &l.headroom, 0.0..=0.5),
        ] {
            if !range.contains(value.get_ref()) {
                out.push(src.diagnostic(
                    value.span(),
                    format!(
                        "limiter.{key} ({}) must be within {}..={}",
                        value.get_ref(),
                        range.start(),
                        range.end()
                    ),
                ));
            }
        }
        for (key, value) in [
            ("initial_limit", &l.initial_limit),
            ("min_limit", &l.min_limit),
            ("max_limit", &l.max_limit),
        ] {
            if *value.get_ref() == 0 {
                out.push(src.diagnostic(value.span(), format!("limiter.{key} must be at least 1")));
            }
        }
        if *l.queue_size.get_ref() > 1_000_000 {
            out.push(src.diagnostic(
                l.queue_size.span(),
                "limiter.queue_size must be at most 1000000",
            ));
        }
        for (key, value) in [
            ("queue_timeout", &l.queue_timeout),
            ("queue_timeout_congested", &l.queue_timeout_congested),
            ("queue_target", &l.queue_target),
            ("queue_interval", &l.queue_interval),
        ] {
            if value.get_ref().0 == 0 && *l.queue_size.get_ref() > 0 {
                out.push(src.diagnostic(
                    value.span(),
                    format!("limiter.{key} must be at least 1ms (set queue_size = 0 for no queue)"),
                ));
            }
        }
        for (key, value) in [
            ("client_rate", &l.client_rate),
            ("client_burst", &l.client_burst),
            ("client_address_share", &l.client_address_share),
            ("priority_rate", &l.priority_rate),
            ("priority_burst", &l.priority_burst),
        ] {
            let v = *value.get_ref();
            if !v.is_finite() || v < 0.0 {
                out.push(src.diagnostic(
                    value.span(),
                    format!("limiter.{key} ({v}) must be a finite number, 0 or more"),
                ));
            }
        }
        if *l.client_rate.get_ref() > 0.0 && *l.client_burst.get_ref() < 1.0 {
            out.push(src.diagnostic(
                l.client_burst.span(),
                "limiter.client_burst must be at least 1 when client_rate is set",
            ));
        }
        if l.min_limit.get_ref() > l.max_limit.get_ref() {
            out.push(src.diagnostic(
                l.min_limit.span(),
                format!(
                    "limiter.min_limit ({}) must not exceed limiter.max_limit ({})",
                    l.min_limit.get_ref(),
                    l.max_limit.get_ref()
                ),
            ));
        }
        out.sort_by_key(|d| (d.line, d.column));
        out
    }

    /// The source this configuration was read from.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// Resolve a path written in the config against the config file's directory.
    pub fn resolve_path(&self, path: &str) -> PathBuf {
        self.source.base_dir.join(path)
    }

    /// Resolve a guest's wasm location (relative paths against the config's directory).
    pub fn guest_source(&self, guest: &Guest) -> GuestSource<PathBuf> {
        match guest.source() {
            GuestSource::Builtin(b) => GuestSource::Builtin(b.to_string()),
            GuestSource::File(p) => GuestSource::File(self.source.base_dir.join(p)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_source(Source {
            name: "test.toml".into(),
            base_dir: ".".into(),
            text: text.into(),
        })
    }

    #[test]
    fn embedded_default_is_valid() {
        let c = Config::embedded().expect("embedded default must validate");
        assert!(!c.routes.is_empty());
        assert!(c.origins.values().any(|o| o.kind == OriginKind::Demo));
    }

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let s = Source {
            name: "x".into(),
            base_dir: ".".into(),
            text: "ab\nçd = 1\n".into(),
        };
        assert_eq!(s.position(0), (1, 1));
        assert_eq!(s.position(3), (2, 1));
        // 'ç' is two bytes; 'd' is the second character.
        assert_eq!(s.position(5), (2, 2));
    }

    #[test]
    fn a_compile_cache_bound_out_of_range_is_reported_at_its_line_and_column() {
        let err = parse("[node]\ncache_max_mib = 2\n").unwrap_err();
        let d = err
            .diagnostics
            .iter()
            .find(|d| d.message.contains("node.cache_max_mib = 2 is out of range"))
            .expect("the bound is checked");
        assert_eq!((d.line, d.column), (2, 17), "{err}");
        let ok = parse(
            "[node]\ncache_max_mib = 64\n[[listeners]]\naddress = \"127.0.0.1:0\"\n\
             [origins.o]\naddress = \"127.0.0.1:1\"\n[[routes]]\nname = \"r\"\norigin = \"o\"\n",
        )
        .expect("in range");
        assert_eq!(*ok.node.cache_max_mib.get_ref(), 64);
    }

    #[test]
    fn unknown_field_is_reported_at_its_line() {
        let err = parse(
            r#"
[[listeners]]
address = "127.0.0.1:0"
adress = "oops"
"#,
        )
        .unwrap_err();
        let d = err
            .diagnostics
            .iter()
            .find(|d| d.message.contains("unknown field `adress`"))
            .expect("the unknown field is reported");
        assert_eq!(d.line, 4, "{err}");
        // The rest of the file is still checked: it has no routes.
        assert!(
            err.diagnostics
                .iter()
                .any(|d| d.message.contains("at least one `[[routes]]`")),
            "{err}"
        );
    }

    #[test]
    fn all_cross_reference_errors_are_reported() {
        let err = parse(
            r#"
[[listeners]]
address = "127.0.0.1:0"

[origins.o]
address = "127.0.0.1:9"

[[routes]]
name = "a"
origin = "nope"
request = ["ghost"]
"#,
        )
        .unwrap_err();
        assert_eq!(err.diagnostics.len(), 2, "{err}");
        assert_eq!(err.diagnostics[0].line, 10);
        assert!(err.diagnostics[0].message.contains("expected one of: `o`"));
        assert_eq!(err.diagnostics[1].line, 11);
    }
}
