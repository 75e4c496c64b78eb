//! Recorded traffic for `outpost replay`: the input side and the pure pieces.
//!
//! - [`Entry`]: one request to replay, with the recorded outcome when the input has it.
//! - [`read_file`] / [`Reader`]: HAR 1.2, Common/Combined Log Format and Outpost's own
//!   JSONL recordings, detected from content ([`detect`]) or forced ([`Options::format`]).
//!   Each yields `Result<Entry, InputError>` in input order; a malformed record is an
//!   error item and reading goes on.
//! - [`Schedule`]: when to send each entry, from its arrival time, a speed factor and a
//!   clamp on idle gaps.
//! - [`JsonlWriter`] and [`RotatingWriter`]: write entries as JSONL, the latter into a
//!   directory of size-capped files that never grows past a total cap.
//!
//! The crate does not depend on the host; `README.md` describes the formats and the
//! JSONL schema.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

mod clf;
mod har;
mod jsonl;
mod lines;
mod schedule;
mod time;
mod url;

pub use clf::{ClfReader, parse_clf_line};
pub use har::HarReader;
pub use jsonl::{JsonlReader, JsonlWriter, RotatingWriter, recorded_files, to_jsonl_line};
pub use schedule::{Clock, Schedule};
pub use time::{parse_clf as parse_clf_date, parse_rfc3339};

/// One request to replay, and what happened to it when it was recorded.
///
/// Serialized (JSONL) in field order; `None` options and empty lists/strings are left
/// out, and read back as their defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// 0-based position of the record in its input, counting malformed records (so a
    /// skipped record leaves a gap). Readers set it; a `seq` in a JSONL line is ignored.
    #[serde(default)]
    pub seq: u64,
    /// Arrival time, microseconds since the Unix epoch (UTC).
    pub at_us: u64,
    /// Request method as recorded (`GET`, `POST`, …).
    pub method: String,
    /// `http` or `https`.
    pub scheme: String,
    /// Host, with `:port` when not the default.
    pub authority: String,
    /// Percent-encoded path, starts with `/`.
    pub path: String,
    /// Query string without the `?`; empty when none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub query: String,
    /// Request headers in recorded order, names lower-case, no HTTP/2 pseudo-headers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
    /// The client's address, when the input records one as an IP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    /// Recorded response status; `None` when the input has none (HAR status 0, or no
    /// response).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Recorded response body size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_bytes: Option<u64>,
    /// Recorded time to complete the request, microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_us: Option<u64>,
    /// Recorded response headers (HAR and JSONL only), names lower-case.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_headers: Vec<(String, String)>,
    /// Outpost's own decision for this request (Outpost's recordings only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<serde_json::Value>,
    /// The response body the origin sent, when the input keeps it: a HAR's
    /// `content.text`, or in Outpost's recordings the body response guests
    /// transformed (decoded, as they saw it). Replay's model origin serves it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<RecordedBody>,
    /// The request id the node gave the request (Outpost's recordings only): a
    /// verification names it, as a value that differs between runs by design.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// A response body kept in a recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedBody {
    /// How `data` holds the bytes: `text` (as is), `base64`, or `gzip+base64`
    /// (Outpost's recordings: gzip, then base64).
    pub encoding: String,
    /// The bytes, in `encoding`.
    pub data: String,
    /// Whether the body was cut at the recorder's cap (replay then serves what
    /// was kept, and says so).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

impl Entry {
    /// The request target: `path`, then `?query` when there is a query.
    pub fn target(&self) -> String {
        if self.query.is_empty() {
            self.path.clone()
        } else {
            format!("{}?{}", self.path, self.query)
        }
    }

    /// The first value of request header `name` (compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Where in an input a problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    /// 1-based line number (CLF, JSONL).
    Line(u64),
    /// 0-based index into HAR `log.entries`, and the JSON path inside that entry
    /// (`request.url`; empty for the entry as a whole).
    Entry {
        /// Index into `log.entries`.
        index: usize,
        /// JSON path inside the entry.
        path: String,
    },
    /// The input as a whole (not JSON, no `log.entries`, a read error).
    File,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Line(n) => write!(f, "line {n}"),
            Position::Entry { index, .. } => write!(f, "entry {index}"),
            Position::File => f.write_str("file"),
        }
    }
}

/// A malformed record, or a problem reading the input.
///
/// Displays as `file.har: entry 17: missing request.url` or
/// `access.log: line 3: malformed request line "\x16\x03"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    /// The input's name: the path as given to [`read_file`], or the name given to
    /// [`Reader::new`].
    pub source: String,
    /// Where in the input.
    pub position: Position,
    /// What is wrong; names the JSON path for HAR entries.
    pub message: String,
}

impl InputError {
    fn new(source: &str, position: Position, message: impl Into<String>) -> Self {
        InputError {
            source: source.to_string(),
            position,
            message: message.into(),
        }
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Position::File => write!(f, "{}: {}", self.source, self.message),
            _ => write!(f, "{}: {}: {}", self.source, self.position, self.message),
        }
    }
}

impl std::error::Error for InputError {}

/// Input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// HTTP Archive 1.2 (`{"log": {"entries": […]}}`).
    Har,
    /// Common Log Format, or Combined Log Format (with referer and user agent).
    Clf,
    /// One [`Entry`] per line (Outpost's recordings).
    Jsonl,
}

impl Format {
    /// The name accepted by [`Format::from_str`]: `har`, `clf` or `jsonl`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Har => "har",
            Format::Clf => "clf",
            Format::Jsonl => "jsonl",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = String;

    /// `har`, `clf` (also `common`, `combined`, `log`), `jsonl` (also `ndjson`),
    /// case-insensitive.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "har" => Ok(Format::Har),
            "clf" | "common" | "combined" | "log" => Ok(Format::Clf),
            "jsonl" | "ndjson" => Ok(Format::Jsonl),
            _ => Err(format!(
                "unknown traffic format {s:?} (expected har, clf or jsonl)"
            )),
        }
    }
}

/// Guesses the format from the first bytes of an input (a few KiB is plenty).
///
/// A JSON object whose first key is `"log"` is HAR; any other input whose first
/// non-blank character is `{` is JSONL; anything else is CLF. A UTF-8 byte order
/// mark and leading whitespace are skipped.
pub fn detect(first_bytes: &[u8]) -> Format {
    let b = first_bytes
        .strip_prefix(b"\xEF\xBB\xBF")
        .unwrap_or(first_bytes);
    let rest = trim_start(b);
    let Some(after_brace) = rest.strip_prefix(b"{") else {
        return Format::Clf;
    };
    if trim_start(after_brace).starts_with(b"\"log\"") {
        Format::Har
    } else {
        Format::Jsonl
    }
}

fn trim_start(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| c.is_ascii_whitespace()).count();
    &b[n..]
}

/// How to place CLF requests that share a one-second timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Spread {
    /// A run of consecutive requests with the same second is spread evenly across
    /// that second in file order: the k-th of n gets `second + k * 1s / n`.
    #[default]
    Even,
    /// Every request keeps its second, so they all arrive at the same instant.
    Same,
}

/// How to read an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Force a format instead of detecting it.
    pub format: Option<Format>,
    /// Authority for CLF requests, which record none (absolute-form request targets
    /// carry their own). Default `localhost`.
    pub authority: String,
    /// Scheme for CLF requests. Default `http`.
    pub scheme: String,
    /// CLF timestamps share seconds; see [`Spread`]. Default [`Spread::Even`].
    pub spread: Spread,
    /// Longest line (CLF, JSONL) read; a longer one is an error item and skipped.
    /// Default 1 MiB.
    pub max_line_bytes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            format: None,
            authority: "localhost".to_string(),
            scheme: "http".to_string(),
            spread: Spread::Even,
            max_line_bytes: 1 << 20,
        }
    }
}

/// Opens `path` and reads it as `options` say: detects the format unless forced.
///
/// Every format streams (HAR through a reader thread, an entry at a time). Errors name the file as given.
/// A HAR file that is not JSON or has no `log.entries` array is an error of kind
/// [`io::ErrorKind::InvalidData`] wrapping an [`InputError`].
pub fn read_file(path: impl AsRef<Path>, options: &Options) -> io::Result<Reader> {
    let path = path.as_ref();
    let file = File::open(path)?;
    Reader::new(
        path.display().to_string(),
        BufReader::with_capacity(64 * 1024, file),
        options,
    )
}

/// Items of one input, in order: entries, and malformed records as errors.
pub struct Reader {
    format: Format,
    inner: Inner,
}

enum Inner {
    Har(HarReader),
    Clf(Spreader<ClfReader<Box<dyn BufRead + Send>>>),
    Jsonl(JsonlReader<Box<dyn BufRead + Send>>),
}

impl Reader {
    /// Reads `input`, named `source` in errors (a file name, or `-` for stdin).
    pub fn new(
        source: impl Into<String>,
        mut input: impl BufRead + Send + 'static,
        options: &Options,
    ) -> io::Result<Reader> {
        let source = source.into();
        let format = match options.format {
            Some(f) => f,
            None => detect(input.fill_buf()?),
        };
        let inner = match format {
            Format::Har => {
                let reader = HarReader::from_reader(&source, input)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                Inner::Har(reader)
            }
            Format::Clf => {
                let input: Box<dyn BufRead + Send> = Box::new(input);
                let reader = ClfReader::new(&source, input, options);
                Inner::Clf(Spreader::new(reader, options.spread))
            }
            Format::Jsonl => {
                let input: Box<dyn BufRead + Send> = Box::new(input);
                Inner::Jsonl(JsonlReader::new(&source, input, options.max_line_bytes))
            }
        };
        Ok(Reader { format, inner })
    }

    /// The format being read.
    pub fn format(&self) -> Format {
        self.format
    }
}

impl Iterator for Reader {
    type Item = Result<Entry, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.inner {
            Inner::Har(r) => r.next(),
            Inner::Clf(r) => r.next(),
            Inner::Jsonl(r) => r.next(),
        }
    }
}

impl fmt::Debug for Reader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader")
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

/// Spreads runs of entries that share a one-second timestamp across that second.
struct Spreader<I> {
    inner: I,
    spread: Spread,
    /// Items of the current run (errors inside a run stay in place).
    run: Vec<Result<Entry, InputError>>,
    run_second: u64,
    ready: std::collections::VecDeque<Result<Entry, InputError>>,
    done: bool,
}

impl<I: Iterator<Item = Result<Entry, InputError>>> Spreader<I> {
    fn new(inner: I, spread: Spread) -> Self {
        Spreader {
            inner,
            spread,
            run: Vec::new(),
            run_second: 0,
            ready: Default::default(),
            done: false,
        }
    }

    fn flush(&mut self) {
        let n = self.run.iter().filter(|i| i.is_ok()).count() as u64;
        let mut k = 0u64;
        for mut item in self.run.drain(..) {
            if let Ok(entry) = &mut item {
                entry.at_us = self.run_second + k * 1_000_000 / n.max(1);
                k += 1;
            }
            self.ready.push_back(item);
        }
    }
}

impl<I: Iterator<Item = Result<Entry, InputError>>> Iterator for Spreader<I> {
    type Item = Result<Entry, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.spread == Spread::Same {
            return self.inner.next();
        }
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Some(item);
            }
            if self.done {
                return None;
            }
            match self.inner.next() {
                None => {
                    self.done = true;
                    self.flush();
                }
                Some(Err(e)) if self.run.is_empty() => return Some(Err(e)),
                Some(Err(e)) => self.run.push(Err(e)),
                Some(Ok(entry)) => {
                    let second = entry.at_us - entry.at_us % 1_000_000;
                    if !self.run.is_empty() && second != self.run_second {
                        self.flush();
                    }
                    self.run_second = second;
                    self.run.push(Ok(entry));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_formats() {
        assert_eq!(detect(b"{\n  \"log\": {\n    \"version\""), Format::Har);
        assert_eq!(detect(b"\xEF\xBB\xBF  {\"log\":{}}"), Format::Har);
        assert_eq!(detect(b"{\r\n\t\"log\""), Format::Har);
        assert_eq!(detect(b"{\"seq\":0,\"at_us\":1}\n"), Format::Jsonl);
        assert_eq!(detect(b"\n\n{\"at_us\":1}"), Format::Jsonl);
        assert_eq!(
            detect(b"in24.inetnebr.com - - [01/Aug/1995:00:00:01 -0400] \"GET / HTTP/1.0\" 200 1"),
            Format::Clf
        );
        assert_eq!(detect(b""), Format::Clf);
        assert_eq!("HAR".parse(), Ok(Format::Har));
        assert_eq!("combined".parse(), Ok(Format::Clf));
        assert_eq!("jsonl".parse(), Ok(Format::Jsonl));
        assert!("xml".parse::<Format>().is_err());
    }

    #[test]
    fn error_display() {
        let e = InputError::new(
            "file.har",
            Position::Entry {
                index: 17,
                path: "request.url".into(),
            },
            "missing request.url",
        );
        assert_eq!(e.to_string(), "file.har: entry 17: missing request.url");
        let e = InputError::new("a.log", Position::Line(3), "bad date");
        assert_eq!(e.to_string(), "a.log: line 3: bad date");
    }
}
