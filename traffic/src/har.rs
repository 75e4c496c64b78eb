//! HTTP Archive 1.2: `{"log": {"entries": [{startedDateTime, time, request, response,
//! timings, …}]}}` as browsers (Chrome, Firefox) and tools write it.

use std::cell::Cell;
use std::io::Read;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::{Entry, InputError, Position, RecordedBody, time, url};

/// Entries of a HAR file, streamed: a thread parses the document and hands over
/// one entry at a time through a bounded channel, so a large HAR costs about one
/// entry of memory per slot, never the whole document as a tree.
pub struct HarReader {
    source: String,
    rx: Receiver<Msg>,
    index: usize,
    /// Nothing more will come (the end, or the error that ended it, was seen).
    over: bool,
}

/// What the parsing thread sends.
enum Msg {
    Entry(Value),
    /// The document ended well.
    End,
    /// The document broke after `log.entries` began (truncated, invalid JSON).
    Broken(String),
}

/// Entries parsed ahead of the consumer at most.
const AHEAD: usize = 32;

impl HarReader {
    /// Parses a whole HAR document held in memory (see [`HarReader::from_reader`]).
    pub fn from_slice(source: &str, bytes: &[u8]) -> Result<HarReader, InputError> {
        HarReader::from_reader(source, std::io::Cursor::new(bytes.to_vec()))
    }

    /// Streams a HAR document. Fails (with [`Position::File`]) when it is not JSON
    /// or has no `log.entries` array; malformed entries are error items later, and
    /// so is a document that breaks off after its entries began.
    pub fn from_reader<R: Read + Send + 'static>(
        source: &str,
        input: R,
    ) -> Result<HarReader, InputError> {
        let file_err = |message: String| InputError::new(source, Position::File, message);
        let (tx, rx) = sync_channel(AHEAD);
        let (ready_tx, ready_rx) = sync_channel::<Result<(), String>>(1);
        std::thread::Builder::new()
            .name("har-reader".into())
            .spawn(move || parse(SkipBom::new(input), &tx, &ready_tx))
            .map_err(|e| file_err(format!("cannot start the HAR reader: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(HarReader {
                source: source.to_string(),
                rx,
                index: 0,
                over: false,
            }),
            Ok(Err(message)) => Err(file_err(message)),
            Err(_) => Err(file_err("not a HAR file: the reader stopped".into())),
        }
    }
}

/// Parse the document on the reader thread: tell `ready` once `log.entries` has
/// begun (or why it cannot), then send each entry.
fn parse<R: Read>(input: R, tx: &SyncSender<Msg>, ready: &SyncSender<Result<(), String>>) {
    let started = Cell::new(false);
    let stage = Cell::new(Stage::Top);
    let mut de = serde_json::Deserializer::from_reader(input);
    let result = Top {
        tx,
        ready,
        started: &started,
        stage: &stage,
    }
    .deserialize(&mut de)
    .and_then(|found| de.end().map(|()| found));
    match result {
        Ok(true) => {
            let _ = tx.send(Msg::End);
        }
        Ok(false) => {
            let _ = ready.send(Err(stage.get().missing().into()));
        }
        Err(e) if started.get() => {
            let _ = tx.send(Msg::Broken(format!("invalid JSON: {e}")));
        }
        Err(e) => {
            let message = match e.classify() {
                // Valid JSON of the wrong shape: say which part is missing.
                serde_json::error::Category::Data => stage.get().wrong().to_string(),
                _ => format!("not a HAR file: invalid JSON: {e}"),
            };
            let _ = ready.send(Err(message));
        }
    }
}

/// How far into the document the parser got.
#[derive(Debug, Clone, Copy)]
enum Stage {
    Top,
    Log,
    Entries,
}

impl Stage {
    /// The document ended without the next part.
    fn missing(self) -> &'static str {
        match self {
            Stage::Top => "not a HAR file: no log object",
            Stage::Log | Stage::Entries => "not a HAR file: no log.entries array",
        }
    }

    /// The part at this stage has the wrong type.
    fn wrong(self) -> &'static str {
        match self {
            Stage::Top => "not a HAR file: not a JSON object",
            Stage::Log => "not a HAR file: no log object",
            Stage::Entries => "not a HAR file: no log.entries array",
        }
    }
}

/// The top-level object: finds `log` and in it `entries`; other keys skipped.
struct Top<'a> {
    tx: &'a SyncSender<Msg>,
    ready: &'a SyncSender<Result<(), String>>,
    started: &'a Cell<bool>,
    stage: &'a Cell<Stage>,
}

impl<'de> DeserializeSeed<'de> for Top<'_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_map(TopVisitor(self, false))
    }
}

/// `.0`: the channels; `.1`: whether this is the `log` object (else the top).
struct TopVisitor<'a>(Top<'a>, bool);

impl<'de> Visitor<'de> for TopVisitor<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.1 {
            "a HAR log object"
        } else {
            "a JSON object"
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut found = false;
        let want = if self.1 { "entries" } else { "log" };
        while let Some(key) = map.next_key::<String>()? {
            if key == want && !found {
                found = if self.1 {
                    map.next_value_seed(Entries(&self.0))?
                } else {
                    map.next_value_seed(Log(&self.0))?
                };
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

struct Log<'a, 'b>(&'a Top<'b>);

impl<'de> DeserializeSeed<'de> for Log<'_, '_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        let t = self.0;
        t.stage.set(Stage::Log);
        d.deserialize_map(TopVisitor(
            Top {
                tx: t.tx,
                ready: t.ready,
                started: t.started,
                stage: t.stage,
            },
            true,
        ))
    }
}

struct Entries<'a, 'b>(&'a Top<'b>);

impl<'de> DeserializeSeed<'de> for Entries<'_, '_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        self.0.stage.set(Stage::Entries);
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Entries<'_, '_> {
    type Value = bool;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the log.entries array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        let t = self.0;
        t.started.set(true);
        if t.ready.send(Ok(())).is_err() {
            return Ok(true);
        }
        while let Some(v) = seq.next_element::<Value>()? {
            if t.tx.send(Msg::Entry(v)).is_err() {
                // The consumer is gone: stop reading.
                return Err(serde::de::Error::custom("the reader was dropped"));
            }
        }
        Ok(true)
    }
}

/// A reader that drops a leading UTF-8 byte order mark.
struct SkipBom<R> {
    inner: R,
    checked: bool,
    held: Vec<u8>,
}

impl<R: Read> SkipBom<R> {
    fn new(inner: R) -> Self {
        SkipBom {
            inner,
            checked: false,
            held: Vec::new(),
        }
    }
}

impl<R: Read> Read for SkipBom<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if !self.checked {
            self.checked = true;
            let mut head = [0u8; 3];
            let mut n = 0;
            while n < 3 {
                match self.inner.read(&mut head[n..])? {
                    0 => break,
                    k => n += k,
                }
            }
            if head[..n] != *b"\xEF\xBB\xBF" {
                self.held.extend_from_slice(&head[..n]);
            }
        }
        if !self.held.is_empty() {
            let k = self.held.len().min(buf.len());
            buf[..k].copy_from_slice(&self.held[..k]);
            self.held.drain(..k);
            return Ok(k);
        }
        self.inner.read(buf)
    }
}

impl HarReader {
    /// The error that ends the input, at the entry it broke off in.
    fn end_with(&mut self, message: String) -> InputError {
        self.over = true;
        let at = Position::Entry {
            index: self.index,
            path: String::new(),
        };
        InputError::new(&self.source, at, message)
    }
}

impl Iterator for HarReader {
    type Item = Result<Entry, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.over {
            return None;
        }
        let value = match self.rx.recv() {
            Ok(Msg::Entry(v)) => v,
            Ok(Msg::End) => {
                self.over = true;
                return None;
            }
            // The reader thread ended without saying so (it panicked): the input
            // was not read whole, and a replay must not look complete.
            Err(_) => {
                return Some(Err(self.end_with(
                    "the HAR reader stopped before the end of the input".into(),
                )));
            }
            Ok(Msg::Broken(message)) => return Some(Err(self.end_with(message))),
        };
        let index = self.index;
        self.index += 1;
        Some(
            parse_entry(&value)
                .map(|mut entry| {
                    entry.seq = index as u64;
                    entry
                })
                .map_err(|(path, message)| {
                    InputError::new(&self.source, Position::Entry { index, path }, message)
                }),
        )
    }
}

/// An error inside an entry: its JSON path, and the message.
type EntryError = (String, String);

fn missing(path: &str) -> EntryError {
    (path.to_string(), format!("missing {path}"))
}

fn invalid(path: &str, why: impl std::fmt::Display) -> EntryError {
    (path.to_string(), format!("invalid {path}: {why}"))
}

fn object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, EntryError> {
    v.as_object().ok_or_else(|| invalid(path, "not an object"))
}

fn string<'a>(obj: &'a Map<String, Value>, key: &str, path: &str) -> Result<&'a str, EntryError> {
    match obj.get(key) {
        None | Some(Value::Null) => Err(missing(path)),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(invalid(path, "not a string")),
    }
}

/// A HAR number that may be `-1` (or absent) for "not available".
fn non_negative(obj: &Map<String, Value>, key: &str) -> Option<f64> {
    obj.get(key)
        .and_then(Value::as_f64)
        .filter(|v| v.is_finite() && *v >= 0.0)
}

fn millis_to_micros(ms: f64) -> u64 {
    // `as` saturates; the value is finite and non-negative here.
    (ms * 1000.0).round() as u64
}

/// Reads `[{name, value}, …]`: names lower-cased, pseudo-headers (`:authority`, …)
/// returned separately.
#[allow(clippy::type_complexity)]
fn read_headers(
    obj: &Map<String, Value>,
    path: &str,
) -> Result<(Vec<(String, String)>, Vec<(String, String)>), EntryError> {
    let list = match obj.get("headers") {
        None | Some(Value::Null) => return Ok((Vec::new(), Vec::new())),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(invalid(path, "not an array")),
    };
    let mut regular = Vec::with_capacity(list.len());
    let mut pseudo = Vec::new();
    for (i, h) in list.iter().enumerate() {
        let hpath = format!("{path}[{i}]");
        let h = object(h, &hpath)?;
        let name = string(h, "name", &format!("{hpath}.name"))?.to_ascii_lowercase();
        let value = match h.get("value") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(invalid(&format!("{hpath}.value"), "not a string")),
        };
        if name.starts_with(':') {
            pseudo.push((name, value));
        } else {
            regular.push((name, value));
        }
    }
    Ok((regular, pseudo))
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn parse_entry(value: &Value) -> Result<Entry, EntryError> {
    let entry = value
        .as_object()
        .ok_or_else(|| (String::new(), "entry is not an object".to_string()))?;
    let started = string(entry, "startedDateTime", "startedDateTime")?;
    let at_us = time::parse_rfc3339(started).map_err(|e| ("startedDateTime".to_string(), e))?;

    let request = match entry.get("request") {
        None | Some(Value::Null) => return Err(missing("request")),
        Some(r) => object(r, "request")?,
    };
    let (headers, pseudo) = read_headers(request, "request.headers")?;
    let pseudo_value = |name: &str| {
        pseudo
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let method = match pseudo_value(":method") {
        Some(m) => m,
        None => string(request, "method", "request.method")?,
    };
    if !is_token(method) {
        return Err(invalid("request.method", format!("{method:?}")));
    }
    let u = url::parse_absolute(string(request, "url", "request.url")?)
        .map_err(|e| invalid("request.url", e))?;
    let scheme = match pseudo_value(":scheme") {
        Some(s) if s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https") => {
            s.to_ascii_lowercase()
        }
        Some(s) => return Err(invalid("request.headers", format!(":scheme {s:?}"))),
        None => u.scheme,
    };
    let authority = match pseudo_value(":authority") {
        Some(a) if !a.is_empty() => a.to_ascii_lowercase(),
        _ => u.authority,
    };
    let (path, query) = match pseudo_value(":path") {
        Some(p) if p.starts_with('/') => url::split_target(p.as_bytes()),
        Some(p) => return Err(invalid("request.headers", format!(":path {p:?}"))),
        None => (u.path, u.query),
    };

    let mut out = Entry {
        seq: 0,
        at_us,
        method: method.to_string(),
        scheme,
        authority,
        path,
        query,
        headers,
        client_ip: None,
        status: None,
        response_bytes: None,
        duration_us: None,
        response_headers: Vec::new(),
        decision: None,
        body: None,
        request_id: None,
    };

    let response = match entry.get("response") {
        None | Some(Value::Null) => return Ok(out),
        Some(r) => object(r, "response")?,
    };
    let status = match response.get("status") {
        None | Some(Value::Null) => 0,
        Some(s) => s
            .as_u64()
            .filter(|s| *s == 0 || (100..=999).contains(s))
            .ok_or_else(|| invalid("response.status", s))?,
    };
    if status == 0 {
        // No response (blocked, failed, aborted): no outcome at all.
        return Ok(out);
    }
    out.status = u16::try_from(status).ok();
    let (response_headers, _) = read_headers(response, "response.headers")?;
    out.response_headers = response_headers;
    // The body, when the capture kept it (`content.text`, base64 when
    // `content.encoding` says so).
    out.body = response
        .get("content")
        .and_then(Value::as_object)
        .and_then(|c| {
            let text = c.get("text")?.as_str()?;
            let encoding = match c.get("encoding").and_then(Value::as_str) {
                Some("base64") => "base64",
                _ => "text",
            };
            Some(RecordedBody {
                encoding: encoding.into(),
                data: text.to_string(),
                truncated: false,
            })
        });
    out.response_bytes = non_negative(response, "bodySize")
        .or_else(|| {
            response
                .get("content")
                .and_then(Value::as_object)
                .and_then(|c| non_negative(c, "size"))
        })
        // `as` saturates; the value is finite and non-negative here.
        .map(|b| b.round() as u64);
    out.duration_us = non_negative(entry, "time")
        .or_else(|| {
            let timings = entry.get("timings")?.as_object()?;
            let parts: Vec<f64> = timings
                .iter()
                // `ssl` is already included in `connect`.
                .filter(|(k, _)| k.as_str() != "ssl" && k.as_str() != "comment")
                .filter_map(|(_, v)| v.as_f64().filter(|v| v.is_finite() && *v >= 0.0))
                .collect();
            (!parts.is_empty()).then(|| parts.iter().sum())
        })
        .map(millis_to_micros);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(entry: Value) -> Result<Entry, InputError> {
        let doc = json!({"log": {"version": "1.2", "entries": [entry]}});
        let bytes = serde_json::to_vec(&doc).unwrap();
        HarReader::from_slice("t.har", &bytes)
            .unwrap()
            .next()
            .unwrap()
    }

    #[test]
    fn minimal_entry() {
        let e = one(json!({
            "startedDateTime": "2015-12-20T14:43:36.694+01:00",
            "request": {"method": "POST", "url": "https://Example.com/a?b=1#x",
                        "headers": [{"name": "Content-Type", "value": "text/plain"}]},
            "response": {"status": 201, "bodySize": -1, "content": {"size": 12},
                         "headers": [{"name": "Server", "value": "x"}]},
            "time": -1,
            "timings": {"blocked": -1, "dns": 1.5, "connect": 3, "ssl": 2, "send": 0.25,
                        "wait": 10, "receive": 0.25}
        }))
        .unwrap();
        assert_eq!(e.at_us, 1_450_619_016_694_000);
        assert_eq!(e.method, "POST");
        assert_eq!(e.scheme, "https");
        assert_eq!(e.authority, "example.com");
        assert_eq!((e.path.as_str(), e.query.as_str()), ("/a", "b=1"));
        assert_eq!(e.headers, [("content-type".into(), "text/plain".into())]);
        assert_eq!(e.status, Some(201));
        assert_eq!(e.response_bytes, Some(12));
        assert_eq!(e.duration_us, Some(15_000));
        assert_eq!(e.response_headers, [("server".into(), "x".into())]);
    }

    #[test]
    fn no_response() {
        let e = one(json!({
            "startedDateTime": "2015-12-20T14:43:36Z",
            "request": {"method": "GET", "url": "http://h/"}
        }))
        .unwrap();
        assert_eq!(
            (e.status, e.response_bytes, e.duration_us),
            (None, None, None)
        );
        let e = one(json!({
            "startedDateTime": "2015-12-20T14:43:36Z", "time": 0,
            "request": {"method": "GET", "url": "http://h/"},
            "response": {"status": 0, "bodySize": -1, "headers": []}
        }))
        .unwrap();
        assert_eq!(
            (e.status, e.response_bytes, e.duration_us),
            (None, None, None)
        );
    }

    #[test]
    fn malformed_entries() {
        let ok_req = json!({"method": "GET", "url": "http://h/"});
        for (entry, path, msg) in [
            (json!([]), "", "entry is not an object"),
            (
                json!({"request": ok_req}),
                "startedDateTime",
                "missing startedDateTime",
            ),
            (
                json!({"startedDateTime": "yesterday", "request": ok_req}),
                "startedDateTime",
                "invalid RFC 3339",
            ),
            (
                json!({"startedDateTime": "2015-12-20T14:43:36Z"}),
                "request",
                "missing request",
            ),
            (
                json!({"startedDateTime": "2015-12-20T14:43:36Z", "request": {"method": "GET"}}),
                "request.url",
                "missing request.url",
            ),
            (
                json!({"startedDateTime": "2015-12-20T14:43:36Z", "request": {"url": "http://h/"}}),
                "request.method",
                "missing request.method",
            ),
            (
                json!({"startedDateTime": "2015-12-20T14:43:36Z",
                       "request": {"method": "GET", "url": "data:text/plain,hi"}}),
                "request.url",
                "invalid request.url",
            ),
            (
                json!({"startedDateTime": "2015-12-20T14:43:36Z",
                       "request": {"method": "GET", "url": "http://h/", "headers": [{"value": "x"}]}}),
                "request.headers[0].name",
                "missing request.headers[0].name",
            ),
            (
                json!({"startedDateTime": "2015-12-20T14:43:36Z", "request": ok_req,
                       "response": {"status": "200"}}),
                "response.status",
                "invalid response.status",
            ),
        ] {
            let err = one(entry.clone()).unwrap_err();
            assert_eq!(
                err.position,
                Position::Entry {
                    index: 0,
                    path: path.into()
                },
                "{entry}"
            );
            assert!(
                err.message.contains(msg),
                "{entry}: {:?} lacks {msg:?}",
                err.message
            );
        }
    }

    #[test]
    fn streams_entries_then_reports_a_broken_tail() {
        let entry = r#"{"startedDateTime": "2015-12-20T14:43:36Z", "request": {"method": "GET", "url": "http://h/"}}"#;
        // Entries before `log.version`, a BOM, and a document cut off mid-entry.
        let doc = format!("\u{feff}{{\"log\": {{\"entries\": [{entry}, {entry}, {{\"startedDate");
        let items: Vec<_> = HarReader::from_slice("t.har", doc.as_bytes())
            .unwrap()
            .collect();
        assert_eq!(items.len(), 3, "{items:?}");
        assert!(items[0].is_ok() && items[1].is_ok());
        let err = items[2].as_ref().unwrap_err();
        assert!(err.message.contains("invalid JSON"), "{err}");
        // Far more entries than the reader holds ahead: all arrive, in order.
        let many = vec![entry; 1000].join(",");
        let doc = format!("{{\"log\": {{\"pages\": [], \"entries\": [{many}]}}}}");
        let seqs: Vec<u64> = HarReader::from_slice("t.har", doc.as_bytes())
            .unwrap()
            .map(|e| e.unwrap().seq)
            .collect();
        assert_eq!(seqs, (0..1000).collect::<Vec<u64>>());
    }

    #[test]
    fn not_har() {
        for (doc, msg) in [
            (&b"{\"log\": "[..], "invalid JSON"),
            (b"[]", "not a JSON object"),
            (b"{\"x\": 1}", "no log object"),
            (b"{\"log\": {\"entries\": {}}}", "no log.entries"),
        ] {
            let err = HarReader::from_slice("x.har", doc).err().unwrap();
            assert_eq!(err.position, Position::File);
            assert!(
                err.to_string().starts_with("x.har: not a HAR file"),
                "{err}"
            );
            assert!(err.message.contains(msg), "{err}");
        }
    }
}
