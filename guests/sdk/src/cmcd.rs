//! CMCD, Common Media Client Data (CTA-5004, and the v2 syntax): what the player
//! tells the edge about itself, from the `CMCD-Request`, `CMCD-Object`,
//! `CMCD-Status` and `CMCD-Session` headers and the `CMCD` query parameter.
//!
//! Parsing is lenient: a malformed member is skipped, the rest is kept, and at most
//! [`MAX_KEYS`] keys are kept. Nothing here fails or panics on any input. Shared by
//! the `rendition` guest (player buffer, throughput, session) and the `shed` guest
//! (object type, deadline, startup).

use crate::types::RequestHead;
use std::collections::BTreeMap;

/// Keys kept at most: a hostile payload cannot grow the map without bound.
pub const MAX_KEYS: usize = 64;

/// The CMCD headers, in the order they are read.
pub const HEADERS: [&str; 4] = ["cmcd-request", "cmcd-object", "cmcd-status", "cmcd-session"];

/// One CMCD value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A key without a value (`bs`), or `?1` / `?0`.
    Bool(bool),
    /// An integer (`br=3200`).
    Int(i64),
    /// A decimal (`pr=1.08`).
    Dec(f64),
    /// A quoted string (`sid="6e2f..."`), unescaped.
    Str(String),
    /// A token (`ot=v`, `sf=h`).
    Token(String),
    /// A v2 inner list (`br=(3200 1600)`).
    List(Vec<Value>),
}

/// The CMCD data of a request: key → value, the last occurrence winning.
/// Unknown keys are kept.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Cmcd {
    /// Every well-formed member.
    pub entries: BTreeMap<String, Value>,
}

impl Cmcd {
    /// Everything the request carries: the four headers, then the `CMCD` query
    /// parameter (percent-decoded).
    pub fn from_request(req: &RequestHead) -> Self {
        let mut c = Self::default();
        for name in HEADERS {
            for value in req.headers_all(name) {
                c.parse_into(value);
            }
        }
        if let Some(q) = req.query_param("CMCD") {
            c.parse_into(&q);
        }
        c
    }

    /// Parse one header value or query value.
    pub fn parse(s: &str) -> Self {
        let mut c = Self::default();
        c.parse_into(s);
        c
    }

    /// Add the members of `s`.
    pub fn parse_into(&mut self, s: &str) {
        for member in split_top_level(s) {
            if let Some((k, v)) = parse_member(member)
                && (self.entries.len() < MAX_KEYS || self.entries.contains_key(&k))
            {
                self.entries.insert(k, v);
            }
        }
    }

    /// True when nothing was parsed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.get(key)
    }

    /// A non-negative integer `key`; for an inner list, its first integer.
    pub fn uint(&self, key: &str) -> Option<u64> {
        let v = match self.get(key)? {
            Value::List(items) => items.iter().find(|i| matches!(i, Value::Int(_)))?,
            v => v,
        };
        match v {
            Value::Int(i) => u64::try_from(*i).ok(),
            _ => None,
        }
    }

    /// `key` is present, with any value.
    pub fn has(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// A non-negative number `key`: an integer, or a decimal truncated.
    pub fn number(&self, key: &str) -> Option<u64> {
        match self.get(key)? {
            Value::Dec(d) if d.is_finite() && (0.0..1.8e19).contains(d) => {
                // In range and non-negative: the cast truncates as intended.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                Some(*d as u64)
            }
            _ => self.uint(key),
        }
    }

    /// A scalar `key` as text: a string or token as is, a number in decimal
    /// (e.g. a `cid` or `sid` used as a client key).
    pub fn scalar_text(&self, key: &str) -> Option<String> {
        match self.get(key)? {
            Value::Str(s) | Value::Token(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Dec(d) => Some(d.to_string()),
            Value::Bool(_) | Value::List(_) => None,
        }
    }

    /// A string or token `key`.
    pub fn text(&self, key: &str) -> Option<&str> {
        match self.get(key)? {
            Value::Str(s) | Value::Token(s) => Some(s),
            _ => None,
        }
    }

    /// A boolean `key` (absent = false).
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some(Value::Bool(true)))
    }

    /// `br`: encoded bitrate of the requested object, kbps.
    pub fn br(&self) -> Option<u64> {
        self.uint("br")
    }
    /// `bl`: buffer length, ms.
    pub fn bl(&self) -> Option<u64> {
        self.uint("bl")
    }
    /// `mtp`: measured throughput, kbps.
    pub fn mtp(&self) -> Option<u64> {
        self.uint("mtp")
    }
    /// `tb`: top bitrate the player can play, kbps.
    pub fn tb(&self) -> Option<u64> {
        self.uint("tb")
    }
    /// `sid`: session id.
    pub fn sid(&self) -> Option<&str> {
        self.text("sid")
    }
    /// `cid`: content id.
    pub fn cid(&self) -> Option<&str> {
        self.text("cid")
    }
    /// `ot`: object type (`m` manifest, `v` video, `a` audio ...).
    pub fn ot(&self) -> Option<&str> {
        self.text("ot")
    }
    /// `sf`: streaming format (`h` HLS, `d` DASH ...).
    pub fn sf(&self) -> Option<&str> {
        self.text("sf")
    }
    /// `st`: stream type (`v` VOD, `l` live).
    pub fn st(&self) -> Option<&str> {
        self.text("st")
    }
    /// `dl`: deadline, ms.
    pub fn dl(&self) -> Option<u64> {
        self.uint("dl")
    }
    /// `su`: startup.
    pub fn su(&self) -> bool {
        self.flag("su")
    }
    /// `bs`: buffer starvation.
    pub fn bs(&self) -> bool {
        self.flag("bs")
    }
    /// `rtp`: requested maximum throughput, kbps.
    pub fn rtp(&self) -> Option<u64> {
        self.uint("rtp")
    }
    /// `nor`: next object request (relative URL).
    pub fn nor(&self) -> Option<&str> {
        match self.get("nor")? {
            Value::Str(s) => Some(s),
            Value::List(items) => items.iter().find_map(|i| match i {
                Value::Str(s) => Some(s.as_str()),
                _ => None,
            }),
            _ => None,
        }
    }

    /// A playing session: `sid` together with `bl` or `mtp`.
    pub fn is_playing_session(&self) -> bool {
        self.sid().is_some() && (self.bl().is_some() || self.mtp().is_some())
    }
}

/// Where a scan stands relative to quoted strings (`"…"`, `\` escapes inside).
#[derive(Default)]
struct Quotes {
    open: bool,
    escaped: bool,
}

impl Quotes {
    /// Feed the next character: true when it belongs to a quoted string (its
    /// quotes included), so the caller's own separators do not apply to it.
    fn inside(&mut self, c: char) -> bool {
        if self.open {
            if self.escaped {
                self.escaped = false;
            } else if c == '\\' {
                self.escaped = true;
            } else if c == '"' {
                self.open = false;
            }
            true
        } else {
            self.open = c == '"';
            self.open
        }
    }
}

/// Split at commas outside quoted strings and inner lists.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut quotes = Quotes::default();
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        if quotes.inside(c) {
            continue;
        }
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(s.get(start..i).unwrap_or_default());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(s.get(start..).unwrap_or_default());
    out
}

fn valid_key(k: &str) -> bool {
    let mut chars = k.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '*')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-.*".contains(c))
}

fn parse_member(member: &str) -> Option<(String, Value)> {
    let member = member.trim_matches([' ', '\t']);
    let (key, value) = match member.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (member, None),
    };
    if !valid_key(key) {
        return None;
    }
    let value = match value {
        None => Value::Bool(true),
        Some(v) => {
            if let Some(inner) = v.strip_prefix('(') {
                let inner = inner.strip_suffix(')')?;
                Value::List(
                    split_inner(inner)?
                        .into_iter()
                        .map(parse_item)
                        .collect::<Option<_>>()?,
                )
            } else {
                parse_item(v)?
            }
        }
    };
    Some((key.to_string(), value))
}

/// Split an inner list at spaces outside quoted strings.
fn split_inner(s: &str) -> Option<Vec<&str>> {
    let mut out = Vec::new();
    let mut start = None;
    let mut quotes = Quotes::default();
    for (i, c) in s.char_indices() {
        if quotes.inside(c) {
            // A quoted string is (part of) an item: it starts one if none is open.
            start.get_or_insert(i);
            continue;
        }
        match c {
            ' ' => {
                if let Some(st) = start.take() {
                    out.push(s.get(st..i)?);
                }
            }
            '(' | ')' => return None,
            _ => {
                start.get_or_insert(i);
            }
        }
    }
    if quotes.open {
        return None;
    }
    if let Some(st) = start {
        out.push(s.get(st..)?);
    }
    Some(out)
}

fn parse_item(v: &str) -> Option<Value> {
    if let Some(rest) = v.strip_prefix('"') {
        return parse_quoted(rest).map(Value::Str);
    }
    match v {
        "?1" => return Some(Value::Bool(true)),
        "?0" => return Some(Value::Bool(false)),
        _ => {}
    }
    let first = v.chars().next()?;
    if first == '-' || first.is_ascii_digit() {
        let digits = v.strip_prefix('-').unwrap_or(v);
        if digits.is_empty() || digits.len() > 20 {
            return None;
        }
        if digits.bytes().all(|b| b.is_ascii_digit()) {
            return v.parse().ok().map(Value::Int);
        }
        let (int, frac) = digits.split_once('.')?;
        let ok = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        if !ok(int) || !ok(frac) {
            return None;
        }
        return v
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Value::Dec);
    }
    let token_char = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~:/".contains(c);
    if (first.is_ascii_alphabetic() || first == '*') && v.chars().all(token_char) {
        return Some(Value::Token(v.to_string()));
    }
    None
}

/// The rest of a quoted string after its opening quote: unescape `\"` and
/// `\\`; it must close at the very end.
fn parse_quoted(rest: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next()? {
                e @ ('"' | '\\') => out.push(e),
                _ => return None,
            },
            '"' => return chars.next().is_none().then_some(out),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => return None,
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_cta_5004_example() {
        let c = Cmcd::parse(
            r#"bl=21300,br=3200,bs,cid="faec5fc2-ac30-11eabb37-0242ac130002",d=4004,dl=18500,mtp=48100,nor="..%2F300kbps%2Ftrack.m4v",ot=v,rtp=12000,sf=d,sid="6e2fb550-c457-11e9-bb97-0800200c9a66",st=v,su,tb=6000"#,
        );
        assert_eq!(c.bl(), Some(21300));
        assert_eq!(c.br(), Some(3200));
        assert!(c.bs());
        assert!(c.su());
        assert_eq!(c.cid(), Some("faec5fc2-ac30-11eabb37-0242ac130002"));
        assert_eq!(c.uint("d"), Some(4004));
        assert_eq!(c.dl(), Some(18500));
        assert_eq!(c.mtp(), Some(48100));
        assert_eq!(c.nor(), Some("..%2F300kbps%2Ftrack.m4v"));
        assert_eq!(c.ot(), Some("v"));
        assert_eq!(c.rtp(), Some(12000));
        assert_eq!(c.sf(), Some("d"));
        assert_eq!(c.sid(), Some("6e2fb550-c457-11e9-bb97-0800200c9a66"));
        assert_eq!(c.st(), Some("v"));
        assert_eq!(c.tb(), Some(6000));
        assert!(c.is_playing_session());
    }

    #[test]
    fn table() {
        // (input, key, expected value)
        let cases: &[(&str, &str, Option<Value>)] = &[
            ("br=3200", "br", Some(Value::Int(3200))),
            ("bs", "bs", Some(Value::Bool(true))),
            ("bs=?0", "bs", Some(Value::Bool(false))),
            ("pr=1.25", "pr", Some(Value::Dec(1.25))),
            (
                r#"sid="a\"b\\c""#,
                "sid",
                Some(Value::Str("a\"b\\c".into())),
            ),
            (r#"sid="with,comma",br=5"#, "br", Some(Value::Int(5))),
            (
                r#"sid="with,comma",br=5"#,
                "sid",
                Some(Value::Str("with,comma".into())),
            ),
            ("ot=v", "ot", Some(Value::Token("v".into()))),
            (
                "com.example-foo=\"x\"",
                "com.example-foo",
                Some(Value::Str("x".into())),
            ),
            (
                "br=(3200 1600)",
                "br",
                Some(Value::List(vec![Value::Int(3200), Value::Int(1600)])),
            ),
            (
                r#"nor=("a b" "c")"#,
                "nor",
                Some(Value::List(vec![
                    Value::Str("a b".into()),
                    Value::Str("c".into()),
                ])),
            ),
            (" br=1 , bl=2 ", "bl", Some(Value::Int(2))),
            ("br=1,br=2", "br", Some(Value::Int(2))),
            // Malformed members are skipped; the others survive.
            ("br=12x,bl=3", "br", None),
            ("br=12x,bl=3", "bl", Some(Value::Int(3))),
            ("BR=1", "BR", None),
            (r#"sid="unterminated,br=4"#, "br", None),
            (r#"sid="bad\escape""#, "sid", None),
            (r#"sid="x"y"#, "sid", None),
            ("br=", "br", None),
            ("br=-", "br", None),
            ("br=1.", "br", None),
            ("br=(1 (2))", "br", None),
            ("br=(1 2", "br", None),
            ("=5", "", None),
            ("br=99999999999999999999999", "br", None),
            ("", "br", None),
        ];
        for (input, key, want) in cases {
            assert_eq!(Cmcd::parse(input).get(key), want.as_ref(), "{input}");
        }
        assert_eq!(Cmcd::parse("br=-5").br(), None);
        assert_eq!(Cmcd::parse("br=(3200 1600)").br(), Some(3200));
        assert!(!Cmcd::parse("sid=\"s\"").is_playing_session());
        assert!(Cmcd::parse("sid=\"s\",mtp=100").is_playing_session());
    }

    #[test]
    fn reads_headers_and_query() {
        let req = RequestHead::get("/m.m3u8?x=1&CMCD=mtp%3D5000%2Csid%3D%22abc%22")
            .with_header("CMCD-Request", "bl=1000")
            .with_header("CMCD-Object", "tb=6000,ot=m")
            .with_header("CMCD-Status", "bs")
            .with_header("CMCD-Session", "sf=h,st=l");
        let c = Cmcd::from_request(&req);
        assert_eq!(c.bl(), Some(1000));
        assert_eq!(c.tb(), Some(6000));
        assert_eq!(c.mtp(), Some(5000));
        assert_eq!(c.sid(), Some("abc"));
        assert_eq!(c.sf(), Some("h"));
        assert_eq!(c.st(), Some("l"));
        assert!(c.bs());
        assert!(Cmcd::from_request(&RequestHead::get("/")).is_empty());
    }

    #[test]
    fn random_bytes_never_panic() {
        let alphabet: &[u8] = b"br=,\"\\()? 0123456789.-sid=mtp;tb\xff\xc3\xa9a";
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 40) as usize;
            let mut bytes = Vec::with_capacity(len);
            let mut s = state;
            for _ in 0..len {
                s = s
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1442695040888963407);
                let idx = usize::try_from(s >> 40).unwrap_or(0) % alphabet.len();
                bytes.push(alphabet[idx]);
            }
            let text = String::from_utf8_lossy(&bytes);
            let c = Cmcd::parse(&text);
            let _ = (c.br(), c.sid(), c.nor(), c.is_playing_session());
            // Fully random bytes too.
            let raw: Vec<u8> = (0..len).map(|i| (state >> (i % 8 * 8)) as u8).collect();
            let _ = Cmcd::parse(&String::from_utf8_lossy(&raw));
        }
    }
}
