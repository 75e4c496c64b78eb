//! A guest's config table, read as the node reads `[guests.NAME.config]` from
//! edge.toml (`edge-config/src/schema.rs`, `ConfigValue`): every value is handed to
//! the guest as text (a string as is; an integer, float or boolean through
//! `to_string`; an array as its items' texts joined with `\n`), and every problem
//! is positioned the way the node positions it (`host/src/node/build.rs`,
//! `check_guest_configs`): at the value, or at the list item a problem names.
//!
//! edge-config is a host-side crate (it is not built for the browser), so the few
//! lines that define the value's text are repeated here; they must stay in step with
//! `ConfigValue::to_text` / `Scalar::to_text`.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use outpost_guest::ConfigProblem;
use serde::Serialize;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use toml::Spanned;

/// One problem of a configuration: a TOML syntax error, a value the node does not
/// accept (a table, a date-time, a nested list), or a problem the guest's own
/// config check reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigError {
    /// 1-based line where the node points: the value, or the list item the problem
    /// names (for a syntax error, the parser's position). `None` when the node points
    /// outside the config table (a check problem about a key that is not set).
    pub line: Option<usize>,
    /// 1-based column (in characters) on that line.
    pub column: Option<usize>,
    /// The key at fault (`None` for a syntax error).
    pub key: Option<String>,
    /// For a list value, the 0-based item at fault.
    pub item: Option<u32>,
    /// 1-based line of the key itself, when the key is in the table.
    pub key_line: Option<usize>,
    /// 1-based column of the key itself.
    pub key_column: Option<usize>,
    /// What is wrong.
    pub message: String,
}

/// A string, number or boolean, as edge-config's `Scalar`.
#[derive(Debug, Clone, PartialEq)]
enum Scalar {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Scalar {
    /// The value as the guest sees it (edge-config's `Scalar::to_text`).
    fn to_text(&self) -> String {
        match self {
            Scalar::Text(s) => s.clone(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

/// A list item: a scalar, or what the node refuses (with its message).
#[derive(Debug, Clone, PartialEq)]
enum Item {
    Scalar(Scalar),
    Bad(String),
}

/// A value, read leniently: what the node refuses is kept as a message, so that
/// every bad entry is reported and the good ones still reach the guest.
#[derive(Debug, Clone, PartialEq)]
enum Raw {
    Scalar(Scalar),
    List(Vec<Spanned<Item>>),
    Bad(String),
}

/// The key toml uses to hand a date-time to serde as a one-entry map.
const DATETIME_FIELD: &str = "$__toml_private_datetime";

const EXPECTED_VALUE: &str = "a string, number, boolean or an array of them";
const EXPECTED_ITEM: &str = "a string, number or boolean";

/// Drain a map (a table or a date-time) and say which it was.
fn found_in_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<&'static str, A::Error> {
    let mut what = "a table";
    let mut first = true;
    while let Some(key) = map.next_key::<String>()? {
        if first && key == DATETIME_FIELD {
            what = "a date-time";
        }
        first = false;
        map.next_value::<IgnoredAny>()?;
    }
    Ok(what)
}

fn drain_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

fn out_of_range() -> String {
    "integer out of range".to_string()
}

struct ItemVisitor;

impl<'de> Visitor<'de> for ItemVisitor {
    type Value = Item;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTED_ITEM)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Item, E> {
        Ok(Item::Scalar(Scalar::Text(v.to_string())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Item, E> {
        Ok(Item::Scalar(Scalar::Text(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Item, E> {
        Ok(Item::Scalar(Scalar::Int(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Item, E> {
        Ok(i64::try_from(v).map_or_else(
            |_| Item::Bad(out_of_range()),
            |i| Item::Scalar(Scalar::Int(i)),
        ))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Item, E> {
        Ok(Item::Scalar(Scalar::Float(v)))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Item, E> {
        Ok(Item::Scalar(Scalar::Bool(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Item, A::Error> {
        drain_seq(seq)?;
        Ok(Item::Bad(format!("expected {EXPECTED_ITEM}, found a list")))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Item, A::Error> {
        let what = found_in_map(map)?;
        Ok(Item::Bad(format!("expected {EXPECTED_ITEM}, found {what}")))
    }
}

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Item, D::Error> {
        d.deserialize_any(ItemVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTED_VALUE)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw::Scalar(Scalar::Text(v.to_string())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Raw, E> {
        Ok(Raw::Scalar(Scalar::Text(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw::Scalar(Scalar::Int(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Raw, E> {
        Ok(i64::try_from(v).map_or_else(
            |_| Raw::Bad(out_of_range()),
            |i| Raw::Scalar(Scalar::Int(i)),
        ))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Raw, E> {
        Ok(Raw::Scalar(Scalar::Float(v)))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw::Scalar(Scalar::Bool(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Item>>()? {
            items.push(item);
        }
        Ok(Raw::List(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Raw, A::Error> {
        let what = found_in_map(map)?;
        Ok(Raw::Bad(format!("expected {EXPECTED_VALUE}, found {what}")))
    }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Raw, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

/// Where a key and its value are in the text.
#[derive(Debug, Clone)]
struct Place {
    key: Range<usize>,
    value: Range<usize>,
    /// The items' spans, for a list value.
    items: Vec<Range<usize>>,
}

/// A guest's config table, parsed.
#[derive(Debug, Clone)]
pub struct GuestConfig {
    text: String,
    /// The `(key, value text)` pairs the guest gets, sorted by key (the entries the
    /// node would refuse are left out).
    pub pairs: Vec<(String, String)>,
    /// Syntax errors and values the node does not accept.
    pub errors: Vec<ConfigError>,
    /// False on a syntax error: nothing of the table can be trusted, the guest
    /// does not run.
    pub runnable: bool,
    places: BTreeMap<String, Place>,
}

impl GuestConfig {
    /// Parse the TOML text of a `[guests.NAME.config]` table.
    pub fn parse(text: &str) -> GuestConfig {
        let mut config = GuestConfig {
            text: text.to_string(),
            pairs: Vec::new(),
            errors: Vec::new(),
            runnable: true,
            places: BTreeMap::new(),
        };
        // A syntax error first, as the node does: nothing after it can be trusted.
        if let Err(e) = text.parse::<toml::Table>() {
            config.fail(e);
            return config;
        }
        let table = match toml::from_str::<BTreeMap<Spanned<String>, Spanned<Raw>>>(text) {
            Ok(t) => t,
            Err(e) => {
                config.fail(e);
                return config;
            }
        };
        for (key, value) in table {
            let key_span = key.span();
            let key = key.into_inner();
            let value_span = value.span();
            let mut place = Place {
                key: key_span,
                value: value_span.clone(),
                items: Vec::new(),
            };
            match value.into_inner() {
                Raw::Scalar(s) => config.pairs.push((key.clone(), s.to_text())),
                Raw::Bad(message) => {
                    let hint = if message.ends_with("found a table") {
                        format!(
                            "{message} (a dotted key is a table in TOML: quote it, `\"{key}.…\" = …`)"
                        )
                    } else {
                        message
                    };
                    config.value_error(&key, &place, None, hint);
                }
                Raw::List(items) => {
                    place.items = items.iter().map(Spanned::span).collect();
                    let mut texts = Vec::with_capacity(items.len());
                    let mut bad = None;
                    for (i, item) in items.iter().enumerate() {
                        let message = match item.get_ref() {
                            Item::Scalar(Scalar::Text(t)) if t.contains(['\n', '\r']) => {
                                "an item of a list value may not contain a line break".to_string()
                            }
                            Item::Scalar(s) => {
                                texts.push(s.to_text());
                                continue;
                            }
                            Item::Bad(m) => m.clone(),
                        };
                        bad.get_or_insert((i, message));
                    }
                    match bad {
                        // The node refuses the whole value at its first bad item.
                        Some((i, message)) => config.value_error(&key, &place, Some(i), message),
                        None => config.pairs.push((key.clone(), texts.join("\n"))),
                    }
                }
            }
            config.places.insert(key, place);
        }
        config
    }

    fn fail(&mut self, e: toml::de::Error) {
        let (line, column) = match e.span() {
            Some(span) => {
                let (l, c) = position(&self.text, span.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        self.errors.push(ConfigError {
            line,
            column,
            key: None,
            item: None,
            key_line: None,
            key_column: None,
            message: e.message().trim_end().to_string(),
        });
        self.runnable = false;
    }

    fn value_error(&mut self, key: &str, place: &Place, item: Option<usize>, message: String) {
        let span = item
            .and_then(|i| place.items.get(i))
            .unwrap_or(&place.value);
        let (line, column) = position(&self.text, span.start);
        let (key_line, key_column) = position(&self.text, place.key.start);
        self.errors.push(ConfigError {
            line: Some(line),
            column: Some(column),
            key: Some(key.to_string()),
            item: item.map(|i| u32::try_from(i).unwrap_or(u32::MAX)),
            key_line: Some(key_line),
            key_column: Some(key_column),
            message,
        });
    }

    /// The `(key, value)` pairs as the SDK's mock takes them.
    pub fn pair_refs(&self) -> Vec<(&str, &str)> {
        self.pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    /// A problem the guest's config check reported, positioned as the node does:
    /// at the list item it names (for a list value), else at the value; nowhere in
    /// this table for a key that is not set (the node then points at the guest's
    /// `wasm` line).
    pub fn problem(&self, p: ConfigProblem) -> ConfigError {
        let place = self.places.get(&p.key);
        let span = place.map(|pl| {
            p.item
                .and_then(|i| pl.items.get(usize::try_from(i).ok()?))
                .unwrap_or(&pl.value)
        });
        let at = |s: Option<&Range<usize>>| match s {
            Some(s) => {
                let (l, c) = position(&self.text, s.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        let (line, column) = at(span);
        let (key_line, key_column) = at(place.map(|pl| &pl.key));
        ConfigError {
            line,
            column,
            key: Some(p.key),
            item: p.item,
            key_line,
            key_column,
            message: p.message,
        }
    }
}

/// Line and column (1-based, column in characters) of a byte offset, as
/// edge-config's `Source::position`.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while offset > 0 && !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_the_texts_the_node_hands_over() {
        let c = GuestConfig::parse(
            "a = \"x\"\nb = 3\nc = 1.5\nd = true\ne = [\"p\", 2, false]\nf = 1e6\n",
        );
        assert!(c.errors.is_empty(), "{:?}", c.errors);
        assert_eq!(
            c.pairs,
            vec![
                ("a".into(), "x".into()),
                ("b".into(), "3".into()),
                ("c".into(), "1.5".into()),
                ("d".into(), "true".into()),
                ("e".into(), "p\n2\nfalse".into()),
                ("f".into(), "1000000".into()),
            ]
        );
    }

    #[test]
    fn syntax_errors_stop_everything() {
        let c = GuestConfig::parse("a = 1\nb = \n");
        assert!(!c.runnable);
        assert_eq!(c.errors.len(), 1);
        assert_eq!(c.errors[0].line, Some(2));
        assert!(c.pairs.is_empty());
    }

    #[test]
    fn refused_values_are_reported_and_left_out() {
        let c = GuestConfig::parse(
            "ok = 1\nset_header.x = \"y\"\nwhen = 1979-05-27\nlist = [\"a\", [\"b\"]]\nnl = [\"a\\nb\"]\n",
        );
        assert!(c.runnable);
        assert_eq!(c.pairs, vec![("ok".into(), "1".into())]);
        let keys: Vec<_> = c.errors.iter().map(|e| e.key.as_deref()).collect();
        assert_eq!(
            keys,
            vec![Some("list"), Some("nl"), Some("set_header"), Some("when")]
        );
        let list = &c.errors[0];
        assert_eq!(
            (list.line, list.column, list.item),
            (Some(4), Some(14), Some(1))
        );
        assert_eq!((list.key_line, list.key_column), (Some(4), Some(1)));
        assert!(c.errors[2].message.contains("quote it"));
        assert!(c.errors[3].message.contains("date-time"));
    }

    #[test]
    fn problems_point_at_the_item_or_the_value() {
        let c = GuestConfig::parse("x = 1\nrules = [\n  \"a\",\n  \"b\",\n]\n");
        let e = c.problem(ConfigProblem::item("rules", 1, "bad"));
        assert_eq!((e.line, e.column), (Some(4), Some(3)));
        assert_eq!((e.key_line, e.key_column), (Some(2), Some(1)));
        let e = c.problem(ConfigProblem::new("x", "bad"));
        assert_eq!((e.line, e.column), (Some(1), Some(5)));
        let e = c.problem(ConfigProblem::new("absent", "missing"));
        assert_eq!((e.line, e.key_line), (None, None));
    }
}
