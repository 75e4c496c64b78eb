//! Common Media Client Data (CTA-5004): the `CMCD-Request`, `CMCD-Object`,
//! `CMCD-Status` and `CMCD-Session` headers, or the `CMCD` query parameter.

use outpost_guest::RequestHead;
use outpost_guest::url::{decode_query_component, raw_query_pairs};

/// The CMCD headers, in the order they are read.
pub const HEADERS: [&str; 4] = ["cmcd-request", "cmcd-object", "cmcd-status", "cmcd-session"];

/// At most this many keys are kept (the spec defines about twenty).
const MAX_KEYS: usize = 64;

/// The CMCD keys of one request. A key without a value (`su`, `bs`) is a
/// boolean `true`; string values have their quotes removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cmcd {
    pairs: Vec<(String, Option<String>)>,
}

impl Cmcd {
    /// The CMCD data of `req`: the four headers (every field), then the `CMCD`
    /// query parameter. When a key appears twice the first one counts.
    pub fn from_request(req: &RequestHead) -> Self {
        let mut cmcd = Cmcd::default();
        for name in HEADERS {
            for value in req.headers_all(name) {
                cmcd.extend(value);
            }
        }
        for (k, v) in raw_query_pairs(&req.query) {
            if k.eq_ignore_ascii_case("cmcd") {
                cmcd.extend(&decode_query_component(v));
            }
        }
        cmcd
    }

    /// The keys of one payload (`bl=21300,br=3200,ot=v,sid="6e2f...",su`).
    pub fn parse(payload: &str) -> Self {
        let mut cmcd = Cmcd::default();
        cmcd.extend(payload);
        cmcd
    }

    fn extend(&mut self, payload: &str) {
        for item in split_items(payload) {
            if self.pairs.len() >= MAX_KEYS {
                return;
            }
            let (key, value) = match item.split_once('=') {
                Some((k, v)) => (k.trim(), Some(unquote(v.trim()))),
                None => (item.trim(), None),
            };
            if key.is_empty() || self.has(key) {
                continue;
            }
            self.pairs.push((key.to_ascii_lowercase(), value));
        }
    }

    /// No CMCD key at all.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// `key` is present (with or without a value).
    pub fn has(&self, key: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k.eq_ignore_ascii_case(key))
    }

    /// The value of `key`; `None` when absent or a bare (boolean) key.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .and_then(|(_, v)| v.as_deref())
    }

    /// The value of `key` as a non-negative integer (a decimal fraction is
    /// truncated); `None` when absent or not a number.
    pub fn number(&self, key: &str) -> Option<u64> {
        let v = self.value(key)?;
        if let Ok(n) = v.parse::<u64>() {
            return Some(n);
        }
        let f = v.parse::<f64>().ok()?;
        if (0.0..1.8e19).contains(&f) {
            // In range and non-negative: the cast truncates as intended.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            return Some(f as u64);
        }
        None
    }
}

/// Split on commas outside double quotes.
fn split_items(payload: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in payload.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                items.push(&payload[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&payload[start..]);
    items.into_iter().filter(|s| !s.trim().is_empty()).collect()
}

/// `"a\"b"` → `a"b`; anything else unchanged.
fn unquote(v: &str) -> String {
    match v.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut escaped = false;
            for c in inner.chars() {
                if c == '\\' && !escaped {
                    escaped = true;
                } else {
                    out.push(c);
                    escaped = false;
                }
            }
            out
        }
        None => v.to_string(),
    }
}
