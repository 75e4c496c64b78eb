//! The rule engine: parse the lines of `rules` and apply them to a request.

use std::collections::BTreeMap;
use std::fmt;

use outpost_guest::url::{percent_decode, raw_query_pairs};
use outpost_guest::{Header, HeaderOp, RequestEdit, RequestHead, Response, host};

use crate::ip::{Cidr, in_any, parse_ip, parse_list};
use crate::template::{Pattern, Template, Vars};
use crate::{is_field_value, is_token, matches_any, normalize_path, sign, split};
use outpost_guest::ua::{CLASSES, client_class};

/// The rule verbs, in the order the README documents them.
pub const VERBS: &[&str] = &[
    "rewrite",
    "prefix",
    "redirect",
    "https",
    "canonical-host",
    "header",
    "request-id",
    "client-class",
    "route",
    "split",
    "sign",
    "allow-ip",
    "deny-ip",
];

/// A signing key. `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

/// One parsed rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// `rewrite <pattern> <template>`
    Rewrite {
        /// The path pattern.
        pattern: Pattern,
        /// The new path.
        template: Template,
    },
    /// `prefix <from> <to>`
    Prefix {
        /// The prefix to replace.
        from: String,
        /// Its replacement.
        to: String,
    },
    /// `redirect <status> <pattern> <template>`
    Redirect {
        /// 301, 302, 307 or 308.
        status: u16,
        /// The path pattern.
        pattern: Pattern,
        /// The location.
        template: Template,
    },
    /// `https <status>`
    Https {
        /// The redirect status.
        status: u16,
    },
    /// `canonical-host <host> <status>`
    CanonicalHost {
        /// The canonical host, lower-case.
        host: String,
        /// The redirect status.
        status: u16,
    },
    /// `header set|append|remove|copy ...`
    Header(HeaderRule),
    /// `request-id <header> [force]`
    RequestId {
        /// The header to carry the id.
        header: String,
        /// Overwrite a value the request already carries.
        force: bool,
    },
    /// `client-class <header>`
    ClientClass {
        /// The header to carry the class.
        header: String,
    },
    /// `route <origin> [when <cond>...]`
    Route {
        /// The origin to choose.
        origin: String,
        /// Conditions that must all hold.
        conds: Vec<Cond>,
    },
    /// `split <name> by <key> <origin>:<weight>...`
    Split {
        /// The experiment name.
        name: String,
        /// The stickiness key.
        key: SplitKey,
        /// `(origin, weight)` arms.
        arms: Vec<(String, u64)>,
    },
    /// `sign <prefix> key=<name> ...`
    Sign(SignRule),
    /// `allow-ip <cidr,...>`
    AllowIp(Vec<Cidr>),
    /// `deny-ip <cidr,...>`
    DenyIp(Vec<Cidr>),
}

/// The `header` rules.
#[derive(Debug, Clone, PartialEq)]
pub enum HeaderRule {
    /// Replace every value of the header with the rendered value.
    Set(String, Template),
    /// Add a value.
    Append(String, Template),
    /// Remove every value.
    Remove(String),
    /// Make `to` carry every value of `from` (nothing when `from` is absent).
    Copy(String, String),
}

/// A `route` condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    /// `host=a.com,*.b.com`
    Host(Vec<HostPat>),
    /// `path=/prefix`
    Path(String),
    /// `method=GET,HEAD` (upper-case)
    Method(Vec<String>),
    /// `header.<name>[=<value>]`
    Header(String, Option<String>),
    /// `cookie.<name>[=<value>]`
    Cookie(String, Option<String>),
    /// `country=US,CA` (upper-case)
    Country(Vec<String>),
    /// `class=mobile,tv`
    Class(Vec<&'static str>),
}

/// A `host=` item.
#[derive(Debug, Clone, PartialEq)]
pub enum HostPat {
    /// The host, lower-case.
    Exact(String),
    /// `*.example.com`, held as `.example.com`.
    Suffix(String),
}

/// What a split is sticky on.
#[derive(Debug, Clone, PartialEq)]
pub enum SplitKey {
    /// A cookie's value.
    Cookie(String),
    /// A header's value.
    Header(String),
    /// The client ip.
    Ip,
}

/// A `sign` rule.
#[derive(Debug, Clone, PartialEq)]
pub struct SignRule {
    /// Paths starting with this are protected.
    pub prefix: String,
    /// The key name (`secret.<key>`).
    pub key: String,
    /// The key, when configured (a rule without one answers 403).
    pub secret: Option<Secret>,
    /// The token parameter.
    pub param: String,
    /// The expiry parameter.
    pub expires: String,
    /// Seconds of grace after expiry.
    pub skew: u64,
    /// Remove both parameters before forwarding.
    pub strip: bool,
}

fn status(s: &str) -> Result<u16, String> {
    match s {
        "301" => Ok(301),
        "302" => Ok(302),
        "307" => Ok(307),
        "308" => Ok(308),
        _ => Err(format!(
            "bad redirect status `{s}`: expected 301, 302, 307 or 308"
        )),
    }
}

fn header_name(s: &str) -> Result<String, String> {
    if is_token(s) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(format!("`{s}` is not a valid header name"))
    }
}

/// `line` without its first `n` whitespace-separated tokens, trimmed.
fn rest_after(line: &str, n: usize) -> &str {
    let mut rest = line.trim_start();
    for _ in 0..n {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        rest = rest[end..].trim_start();
    }
    rest.trim_end()
}

fn arity(verb: &str, args: &[&str], n: usize, usage: &str) -> Result<(), String> {
    if args.len() == n {
        Ok(())
    } else {
        Err(format!(
            "`{verb}` takes {n} argument{}, got {}: usage `{usage}`",
            if n == 1 { "" } else { "s" },
            args.len()
        ))
    }
}

fn path_arg(what: &str, s: &str) -> Result<String, String> {
    if s.starts_with('/') && !s.contains(['{', '}']) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{what} `{s}` must be a path starting with `/` (no captures)"
        ))
    }
}

fn valid_host(h: &str) -> bool {
    let h = h.trim_end_matches('.');
    if let Some(inner) = h.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !h.is_empty()
        && h.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn list(s: &str) -> Vec<&str> {
    s.split(',')
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .collect()
}

fn parse_cond(tok: &str) -> Result<Cond, String> {
    let (k, v) = match tok.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (tok, None),
    };
    if let Some(name) = k.strip_prefix("header.") {
        return Ok(Cond::Header(header_name(name)?, v.map(str::to_string)));
    }
    if let Some(name) = k.strip_prefix("cookie.") {
        if name.is_empty() || name.contains([';', ',']) {
            return Err(format!("bad cookie name in condition `{tok}`"));
        }
        return Ok(Cond::Cookie(name.to_string(), v.map(str::to_string)));
    }
    let items = v.map(list).unwrap_or_default();
    if items.is_empty() && matches!(k, "host" | "path" | "method" | "country" | "class") {
        return Err(format!("condition `{tok}` needs a value: `{k}=...`"));
    }
    match k {
        "host" => items
            .iter()
            .map(|h| match h.strip_prefix("*.") {
                Some(s) if valid_host(s) => Ok(HostPat::Suffix(format!(
                    ".{}",
                    s.trim_end_matches('.').to_ascii_lowercase()
                ))),
                None if valid_host(h) => {
                    Ok(HostPat::Exact(h.trim_end_matches('.').to_ascii_lowercase()))
                }
                _ => Err(format!(
                    "bad host `{h}` in `{tok}`: expected `example.com` or `*.example.com`"
                )),
            })
            .collect::<Result<_, _>>()
            .map(Cond::Host),
        "path" => Ok(Cond::Path(path_arg("path condition", v.unwrap_or(""))?)),
        "method" => items
            .iter()
            .map(|m| {
                if is_token(m) {
                    Ok(m.to_ascii_uppercase())
                } else {
                    Err(format!("bad method `{m}` in `{tok}`"))
                }
            })
            .collect::<Result<_, _>>()
            .map(Cond::Method),
        "country" => items
            .iter()
            .map(|c| {
                if c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()) {
                    Ok(c.to_ascii_uppercase())
                } else {
                    Err(format!(
                        "bad country `{c}` in `{tok}`: expected ISO 3166-1 alpha-2 codes like `US`"
                    ))
                }
            })
            .collect::<Result<_, _>>()
            .map(Cond::Country),
        "class" => items
            .iter()
            .map(|c| {
                CLASSES
                    .iter()
                    .copied()
                    .find(|k| k.eq_ignore_ascii_case(c))
                    .ok_or_else(|| {
                        format!(
                            "unknown client class `{c}` in `{tok}`: expected {}",
                            CLASSES.join(", ")
                        )
                    })
            })
            .collect::<Result<_, _>>()
            .map(Cond::Class),
        _ => Err(format!(
            "unknown condition `{tok}`: expected host=, path=, method=, header.<name>[=], cookie.<name>[=], country= or class="
        )),
    }
}

fn parse_split(args: &[&str]) -> Result<Rule, String> {
    const USAGE: &str =
        "split <name> by <cookie.NAME|header.NAME|ip> <origin>:<weight> <origin>:<weight>...";
    let (Some(name), Some(&"by"), Some(key)) = (args.first(), args.get(1), args.get(2)) else {
        return Err(format!("usage `{USAGE}`"));
    };
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        || name.is_empty()
    {
        return Err(format!(
            "bad split name `{name}`: letters, digits, `-` and `_` (it names the header x-split-<name>)"
        ));
    }
    let key = if let Some(c) = key.strip_prefix("cookie.").filter(|c| !c.is_empty()) {
        SplitKey::Cookie(c.to_string())
    } else if let Some(h) = key.strip_prefix("header.") {
        SplitKey::Header(header_name(h)?)
    } else if *key == "ip" {
        SplitKey::Ip
    } else {
        return Err(format!(
            "bad split key `{key}`: expected cookie.<name>, header.<name> or ip"
        ));
    };
    let arms_raw = args.get(3..).unwrap_or_default();
    if arms_raw.len() < 2 {
        return Err(format!("a split needs at least two arms: usage `{USAGE}`"));
    }
    let mut arms: Vec<(String, u64)> = Vec::with_capacity(arms_raw.len());
    for arm in arms_raw {
        let Some((origin, weight)) = arm.rsplit_once(':') else {
            return Err(format!("bad arm `{arm}`: expected <origin>:<weight>"));
        };
        let weight = match weight.parse::<u64>() {
            Ok(w) if w <= 1_000_000 && weight.bytes().all(|b| b.is_ascii_digit()) => w,
            _ => {
                return Err(format!(
                    "bad weight `{weight}` in arm `{arm}`: expected a whole number 0 to 1000000"
                ));
            }
        };
        if origin.is_empty() {
            return Err(format!("bad arm `{arm}`: missing origin"));
        }
        if arms.iter().any(|(o, _)| o == origin) {
            return Err(format!("origin `{origin}` appears twice in the split"));
        }
        arms.push((origin.to_string(), weight));
    }
    if arms.iter().all(|(_, w)| *w == 0) {
        return Err("bad weights: they sum to 0".into());
    }
    Ok(Rule::Split {
        name: name.to_ascii_lowercase(),
        key,
        arms,
    })
}

fn parse_sign(args: &[&str], secrets: &BTreeMap<String, Secret>) -> Result<Rule, String> {
    const USAGE: &str =
        "sign <path-prefix> key=<name> [param=token] [expires=expires] [skew=30] [strip=true]";
    let Some(prefix) = args.first() else {
        return Err(format!("usage `{USAGE}`"));
    };
    let mut rule = SignRule {
        prefix: path_arg("sign prefix", prefix)?,
        key: String::new(),
        secret: None,
        param: "token".into(),
        expires: "expires".into(),
        skew: 30,
        strip: true,
    };
    let param_ok = |v: &str| !v.is_empty() && !v.contains(['&', '=', '#', '?']);
    for opt in args.get(1..).unwrap_or_default() {
        let Some((k, v)) = opt.split_once('=') else {
            return Err(format!("bad option `{opt}`: usage `{USAGE}`"));
        };
        match k {
            "key" if !v.is_empty() => rule.key = v.to_string(),
            "param" if param_ok(v) => rule.param = v.to_string(),
            "expires" if param_ok(v) => rule.expires = v.to_string(),
            "skew" => {
                rule.skew = v
                    .parse()
                    .ok()
                    .filter(|_| v.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| format!("bad skew `{v}`: expected seconds"))?;
            }
            "strip" => {
                rule.strip = crate::parse_bool(v)
                    .ok_or_else(|| format!("bad strip `{v}`: expected true or false"))?;
            }
            "key" | "param" | "expires" => return Err(format!("bad value in `{opt}`")),
            _ => {
                return Err(format!(
                    "unknown sign option `{k}`: expected key, param, expires, skew or strip"
                ));
            }
        }
    }
    if rule.key.is_empty() {
        return Err(format!("sign needs `key=<name>`: usage `{USAGE}`"));
    }
    if rule.param == rule.expires {
        return Err("`param` and `expires` must name different parameters".into());
    }
    rule.secret = secrets.get(&rule.key).cloned();
    Ok(Rule::Sign(rule))
}

/// Parse one rule line. `secrets` are the configured `secret.<name>` keys; a
/// missing one is not an error here (see [`Rule::problems`]).
pub fn parse(line: &str, secrets: &BTreeMap<String, Secret>) -> Result<Rule, String> {
    let toks: Vec<&str> = line.split_whitespace().collect();
    let Some((verb, args)) = toks.split_first() else {
        return Err("empty rule".into());
    };
    match *verb {
        "rewrite" => {
            arity(verb, args, 2, "rewrite <pattern> <template>")?;
            let pattern = Pattern::parse(args[0])?;
            let template = Template::parse(args[1], &pattern.names())?;
            if !(template.literal_prefix().starts_with('/') || template.starts_with_var("path"))
                || template.has_query()
            {
                return Err(format!(
                    "rewrite template `{}` must be a path starting with `/` (no `?`)",
                    args[1]
                ));
            }
            Ok(Rule::Rewrite { pattern, template })
        }
        "prefix" => {
            arity(verb, args, 2, "prefix <from> <to>")?;
            Ok(Rule::Prefix {
                from: path_arg("prefix", args[0])?,
                to: path_arg("replacement", args[1])?,
            })
        }
        "redirect" => {
            arity(
                verb,
                args,
                3,
                "redirect <301|302|307|308> <pattern> <template>",
            )?;
            let status = status(args[0])?;
            let pattern = Pattern::parse(args[1])?;
            let template = Template::parse(args[2], &pattern.names())?;
            let lit = template.literal_prefix();
            let ok = lit.starts_with('/')
                || lit.starts_with("http://")
                || lit.starts_with("https://")
                || template.starts_with_var("scheme")
                || template.starts_with_var("path");
            if !ok {
                return Err(format!(
                    "redirect target `{}` must start with `/`, `http://`, `https://` or `{{scheme}}://`",
                    args[2]
                ));
            }
            Ok(Rule::Redirect {
                status,
                pattern,
                template,
            })
        }
        "https" => {
            arity(verb, args, 1, "https <status>")?;
            Ok(Rule::Https {
                status: status(args[0])?,
            })
        }
        "canonical-host" => {
            arity(verb, args, 2, "canonical-host <host> <status>")?;
            if !valid_host(args[0]) {
                return Err(format!(
                    "bad host `{}`: expected a host name without port",
                    args[0]
                ));
            }
            Ok(Rule::CanonicalHost {
                host: args[0].trim_end_matches('.').to_ascii_lowercase(),
                status: status(args[1])?,
            })
        }
        "header" => {
            let usage = "header set|append <name> <value...> | header remove <name> | header copy <from> <to>";
            match args.first().copied() {
                Some(op @ ("set" | "append")) => {
                    let Some(name) = args.get(1) else {
                        return Err(format!("usage `{usage}`"));
                    };
                    let name = header_name(name)?;
                    let raw = rest_after(line, 3);
                    if raw.is_empty() {
                        return Err(format!("`header {op} {name}` needs a value"));
                    }
                    if !is_field_value(raw) {
                        return Err(format!("header value `{raw}` has control characters"));
                    }
                    let value = Template::parse(raw, &[])?;
                    Ok(Rule::Header(if op == "set" {
                        HeaderRule::Set(name, value)
                    } else {
                        HeaderRule::Append(name, value)
                    }))
                }
                Some("remove") => {
                    arity("header remove", &args[1..], 1, usage)?;
                    Ok(Rule::Header(HeaderRule::Remove(header_name(args[1])?)))
                }
                Some("copy") => {
                    arity("header copy", &args[1..], 2, usage)?;
                    Ok(Rule::Header(HeaderRule::Copy(
                        header_name(args[1])?,
                        header_name(args[2])?,
                    )))
                }
                Some(other) => Err(format!(
                    "unknown header operation `{other}`: expected set, append, remove or copy"
                )),
                None => Err(format!("usage `{usage}`")),
            }
        }
        "request-id" => {
            let force = match args.get(1) {
                None => false,
                Some(&"force") if args.len() == 2 => true,
                _ => return Err("usage `request-id <header> [force]`".into()),
            };
            let Some(h) = args.first() else {
                return Err("usage `request-id <header> [force]`".into());
            };
            Ok(Rule::RequestId {
                header: header_name(h)?,
                force,
            })
        }
        "client-class" => {
            arity(verb, args, 1, "client-class <header>")?;
            Ok(Rule::ClientClass {
                header: header_name(args[0])?,
            })
        }
        "route" => {
            let Some(origin) = args.first() else {
                return Err("usage `route <origin> [when <cond>...]`".into());
            };
            let conds = match args.get(1) {
                None => Vec::new(),
                Some(&"when") if args.len() > 2 => args[2..]
                    .iter()
                    .map(|c| parse_cond(c))
                    .collect::<Result<_, _>>()?,
                Some(&"when") => return Err("`when` needs at least one condition".into()),
                Some(other) => {
                    return Err(format!(
                        "expected `when` after the origin, got `{other}`: usage `route <origin> [when <cond>...]`"
                    ));
                }
            };
            Ok(Rule::Route {
                origin: (*origin).to_string(),
                conds,
            })
        }
        "split" => parse_split(args),
        "sign" => parse_sign(args, secrets),
        "allow-ip" | "deny-ip" => {
            if args.is_empty() {
                return Err(format!("usage `{verb} <cidr,cidr...>`"));
            }
            let nets = parse_list(&args.join(","))?;
            Ok(if *verb == "allow-ip" {
                Rule::AllowIp(nets)
            } else {
                Rule::DenyIp(nets)
            })
        }
        other => Err(format!(
            "unknown rule `{other}`: expected one of {}",
            VERBS.join(", ")
        )),
    }
}

impl Rule {
    /// What is wrong with a parsed rule in this configuration: unknown
    /// origins, a missing signing key, sign parameters the query settings
    /// remove before the rule runs.
    pub fn problems(
        &self,
        origins: &[String],
        strip: &[String],
        keep: Option<&[String]>,
    ) -> Vec<String> {
        let known = |o: &str| origins.iter().any(|k| k == o);
        let unknown = |o: &str| {
            format!(
                "unknown origin `{o}` (configured origins: {})",
                if origins.is_empty() {
                    "none".to_string()
                } else {
                    origins.join(", ")
                }
            )
        };
        let mut out = Vec::new();
        match self {
            Rule::Route { origin, .. } if !known(origin) => out.push(unknown(origin)),
            Rule::Split { arms, .. } => {
                for (o, _) in arms {
                    if !known(o) {
                        out.push(unknown(o));
                    }
                }
            }
            Rule::Sign(s) => {
                if s.secret.is_none() {
                    out.push(format!(
                        "signing key `{}` is not configured: add `secret.{}`",
                        s.key, s.key
                    ));
                }
                for p in [&s.param, &s.expires] {
                    if matches_any(p, strip) {
                        out.push(format!(
                            "parameter `{p}` is removed by strip_query before this rule runs"
                        ));
                    } else if keep.is_some_and(|k| !matches_any(p, k)) {
                        out.push(format!(
                            "parameter `{p}` is not in keep_query, so it is removed before this rule runs"
                        ));
                    }
                }
            }
            _ => {}
        }
        out
    }

    /// Apply the rule; `Some` is a response that ends processing.
    pub fn apply(&self, st: &mut State<'_>) -> Option<Response> {
        match self {
            Rule::Rewrite { pattern, template } => {
                let new = {
                    let caps = pattern.matches(&st.path)?;
                    template.render(&caps, &st.vars())
                };
                st.set_path(new);
                None
            }
            Rule::Prefix { from, to } => {
                let rest = st.path.strip_prefix(from.as_str())?;
                let new = format!("{to}{rest}");
                st.set_path(new);
                None
            }
            Rule::Redirect {
                status,
                pattern,
                template,
            } => {
                let mut loc = {
                    let caps = pattern.matches(&st.path)?;
                    template.render(&caps, &st.vars())
                };
                if !template.has_query() && !st.query.is_empty() {
                    loc.push('?');
                    loc.push_str(&st.query);
                }
                redirect(*status, loc)
            }
            Rule::Https { status } => {
                if !st.req.scheme.eq_ignore_ascii_case("http") {
                    return None;
                }
                let a = st.req.authority.as_str();
                let host = match a.rsplit_once(':') {
                    Some((h, "80")) if host_part(a) == h => h,
                    _ => a,
                };
                redirect(*status, st.with_query(format!("https://{host}{}", st.path)))
            }
            Rule::CanonicalHost { host, status } => {
                let current = host_part(&st.req.authority).trim_end_matches('.');
                if current.eq_ignore_ascii_case(host) {
                    return None;
                }
                let scheme = st.req.scheme.to_ascii_lowercase();
                redirect(
                    *status,
                    st.with_query(format!("{scheme}://{host}{}", st.path)),
                )
            }
            Rule::Header(h) => {
                match h {
                    HeaderRule::Set(name, t) => {
                        let v = t.render(&[], &st.vars());
                        if is_field_value(&v) {
                            st.set_header(name, &v);
                        }
                    }
                    HeaderRule::Append(name, t) => {
                        let v = t.render(&[], &st.vars());
                        if is_field_value(&v) {
                            st.append_header(name, &v);
                        }
                    }
                    HeaderRule::Remove(name) => st.remove_header(name),
                    HeaderRule::Copy(from, to) => {
                        let values: Vec<String> =
                            st.values(from).into_iter().map(str::to_string).collect();
                        if !values.is_empty() && from != to {
                            st.remove_header(to);
                            for v in &values {
                                st.append_header(to, v);
                            }
                        }
                    }
                }
                None
            }
            Rule::RequestId { header, force } => {
                let present = st.header(header).is_some_and(|v| !v.trim().is_empty());
                if (*force || !present) && !st.req.id.is_empty() && is_field_value(&st.req.id) {
                    let id = st.req.id.clone();
                    st.set_header(header, &id);
                }
                None
            }
            Rule::ClientClass { header } => {
                let class = client_class(st.header("user-agent"));
                st.set_header(header, class);
                None
            }
            Rule::Route { origin, conds } => {
                if st.origin.is_none() && conds.iter().all(|c| c.holds(st)) {
                    st.origin = Some(origin.clone());
                }
                None
            }
            Rule::Split { name, key, arms } => {
                if st.origin.is_some() {
                    return None;
                }
                let value = match key {
                    SplitKey::Cookie(c) => cookie(&st.headers, c).map(str::to_string),
                    SplitKey::Header(h) => st.header(h).map(|v| v.trim().to_string()),
                    SplitKey::Ip => None,
                }
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| st.req.client.ip.clone());
                let weights: Vec<u64> = arms.iter().map(|(_, w)| *w).collect();
                let (origin, _) = arms.get(split::pick(name, &value, &weights)?)?;
                st.origin = Some(origin.clone());
                st.set_header(&format!("x-split-{name}"), origin);
                None
            }
            Rule::Sign(s) => s.apply(st),
            Rule::AllowIp(nets) => {
                (!in_any(nets, parse_ip(&st.req.client.ip))).then(|| forbidden("forbidden"))
            }
            Rule::DenyIp(nets) => {
                in_any(nets, parse_ip(&st.req.client.ip)).then(|| forbidden("forbidden"))
            }
        }
    }
}

impl SignRule {
    fn apply(&self, st: &mut State<'_>) -> Option<Response> {
        if !st.path.starts_with(self.prefix.as_str()) {
            return None;
        }
        let Some(secret) = &self.secret else {
            host::warn(&format!(
                "sign: key `{}` is not configured; refusing {}",
                self.key, st.path
            ));
            return Some(forbidden("signing key not configured"));
        };
        let mut token = None;
        let mut expires = None;
        for (name, value) in raw_query_pairs(&st.query) {
            let name = percent_decode(name);
            if token.is_none() && name == self.param {
                token = Some(percent_decode(value));
            } else if expires.is_none() && name == self.expires {
                expires = Some(percent_decode(value));
            }
        }
        let (Some(token), Some(expires)) = (token, expires) else {
            return Some(forbidden("missing token"));
        };
        let expires = match expires.parse::<u64>() {
            Ok(e) if expires.bytes().all(|b| b.is_ascii_digit()) => e,
            _ => return Some(forbidden("bad token")),
        };
        if !sign::verify(&secret.0, &st.path, expires, &token) {
            return Some(forbidden("bad token"));
        }
        if host::unix_time() > expires.saturating_add(self.skew) {
            return Some(forbidden("expired token"));
        }
        if self.strip {
            let kept: Vec<&str> = st
                .query
                .split('&')
                .filter(|piece| {
                    let name = piece.split_once('=').map_or(*piece, |(n, _)| n);
                    let name = percent_decode(name);
                    !piece.is_empty() && name != self.param && name != self.expires
                })
                .collect();
            st.query = kept.join("&");
        }
        None
    }
}

impl Cond {
    fn holds(&self, st: &State<'_>) -> bool {
        match self {
            Cond::Host(pats) => {
                let h = host_part(&st.req.authority)
                    .trim_end_matches('.')
                    .to_ascii_lowercase();
                pats.iter().any(|p| match p {
                    HostPat::Exact(e) => *e == h,
                    HostPat::Suffix(s) => h.len() > s.len() && h.ends_with(s.as_str()),
                })
            }
            Cond::Path(p) => st.path.starts_with(p.as_str()),
            Cond::Method(ms) => ms.iter().any(|m| st.req.method.eq_ignore_ascii_case(m)),
            Cond::Header(name, want) => match want {
                None => st.header(name).is_some(),
                Some(w) => st.values(name).iter().any(|v| v.trim() == w),
            },
            Cond::Cookie(name, want) => match (cookie(&st.headers, name), want) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(v), Some(w)) => v == w,
            },
            Cond::Country(cs) => st
                .req
                .client
                .country
                .as_deref()
                .is_some_and(|c| cs.iter().any(|k| k.eq_ignore_ascii_case(c.trim()))),
            Cond::Class(cs) => cs.contains(&client_class(st.header("user-agent"))),
        }
    }
}

fn redirect(status: u16, location: String) -> Option<Response> {
    if is_field_value(&location) {
        Some(Response::redirect(status, &location).header("cache-control", "no-store"))
    } else {
        host::warn("redirect: the location has control characters; rule skipped");
        None
    }
}

fn forbidden(reason: &str) -> Response {
    Response::new(403)
        .header("content-type", "text/plain")
        .header("cache-control", "no-store")
        .body(format!("{reason}\n"))
}

/// The host part of an authority: the port dropped, IPv6 brackets kept.
pub fn host_part(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority.find(']').map_or(authority, |i| &authority[..=i]);
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    }
}

/// The value of cookie `name` in the `cookie` headers (quotes removed).
pub fn cookie<'a>(headers: &'a [Header], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("cookie"))
        .map(|h| h.text())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            let (k, v) = c.trim().split_once('=')?;
            (k.trim() == name).then(|| v.trim().trim_matches('"'))
        })
}

fn values_of<'a>(headers: &'a [Header], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.text())
        .collect()
}

/// The request as the rules have changed it so far.
#[derive(Debug)]
pub struct State<'a> {
    /// The request as received.
    pub req: &'a RequestHead,
    /// The current path.
    pub path: String,
    /// The current query.
    pub query: String,
    /// The current header list.
    pub headers: Vec<Header>,
    /// Header names touched, in order of first touch.
    touched: Vec<String>,
    /// The chosen origin.
    pub origin: Option<String>,
    /// `Some(lowercase)` when rewritten paths are normalised.
    renormalize: Option<bool>,
}

impl<'a> State<'a> {
    /// The state of an untouched `req`; `renormalize` is `Some(lowercase)` when
    /// paths the rules produce are normalised.
    pub fn new(req: &'a RequestHead, renormalize: Option<bool>) -> Self {
        State {
            req,
            path: req.path.clone(),
            query: req.query.clone(),
            headers: req.headers.clone(),
            touched: Vec::new(),
            origin: None,
            renormalize,
        }
    }

    fn vars(&self) -> Vars<'_> {
        Vars {
            scheme: &self.req.scheme,
            host: &self.req.authority,
            path: &self.path,
            query: &self.query,
            method: &self.req.method,
            id: &self.req.id,
            ip: &self.req.client.ip,
            country: self.req.client.country.as_deref().unwrap_or(""),
        }
    }

    fn set_path(&mut self, p: String) {
        self.path = match self.renormalize {
            Some(lower) => normalize_path(&p, lower),
            None if p.starts_with('/') => p,
            None => format!("/{p}"),
        };
    }

    fn with_query(&self, mut loc: String) -> String {
        if !self.query.is_empty() {
            loc.push('?');
            loc.push_str(&self.query);
        }
        loc
    }

    /// The first current value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.text())
    }

    fn values(&self, name: &str) -> Vec<&str> {
        values_of(&self.headers, name)
    }

    fn touch(&mut self, name: &str) {
        if !self.touched.iter().any(|t| t.eq_ignore_ascii_case(name)) {
            self.touched.push(name.to_ascii_lowercase());
        }
    }

    /// Replace every `name` header with `value`.
    pub fn set_header(&mut self, name: &str, value: &str) {
        self.remove_header(name);
        self.headers.push(Header::new(name, value));
    }

    /// Add a `name` header.
    pub fn append_header(&mut self, name: &str, value: &str) {
        self.touch(name);
        self.headers.push(Header::new(name, value));
    }

    /// Remove every `name` header.
    pub fn remove_header(&mut self, name: &str) {
        self.touch(name);
        self.headers.retain(|h| !h.name.eq_ignore_ascii_case(name));
    }

    /// The header operations that turn the request's headers into the current
    /// ones, per touched name: nothing for a name whose values did not change.
    pub fn header_ops(&self) -> Vec<HeaderOp> {
        let mut ops = Vec::new();
        for name in &self.touched {
            let before = values_of(&self.req.headers, name);
            let after = self.values(name);
            if before == after {
                continue;
            }
            match after.split_first() {
                None => ops.push(HeaderOp::Remove(name.clone())),
                Some(_) if !before.is_empty() && after.starts_with(&before) => {
                    for v in &after[before.len()..] {
                        ops.push(HeaderOp::Append(Header::new(name.as_str(), *v)));
                    }
                }
                Some((first, rest)) => {
                    ops.push(HeaderOp::Set(Header::new(name.as_str(), *first)));
                    for v in rest {
                        ops.push(HeaderOp::Append(Header::new(name.as_str(), *v)));
                    }
                }
            }
        }
        ops
    }

    /// The edit holding only what changed.
    pub fn into_edit(self) -> RequestEdit {
        RequestEdit {
            method: None,
            path: (self.path != self.req.path).then(|| self.path.clone()),
            query: (self.query != self.req.query).then(|| self.query.clone()),
            headers: self.header_ops(),
            origin: self.origin,
        }
    }
}
