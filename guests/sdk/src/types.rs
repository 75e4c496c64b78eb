//! Plain Rust mirrors of the WIT types (`outpost:edge/types`, `outpost:edge/host`).
//!
//! They do not depend on wit-bindgen, so a guest's logic can be unit-tested with
//! plain `cargo test` on the build machine. The export macros convert between these
//! and the generated bindings at the boundary.

use crate::url;

/// One header field. Names are lower-case ASCII; a name may appear more than once.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Header {
    /// Lower-case field name.
    pub name: String,
    /// Field value, as bytes: HTTP allows bytes that are not UTF-8 (Latin-1
    /// `obs-text`), and they travel unchanged. [`Header::value_str`] is the text view.
    pub value: Vec<u8>,
}

impl Header {
    /// A header field; the name is lower-cased.
    pub fn new(name: impl Into<String>, value: impl AsRef<[u8]>) -> Self {
        let mut name = name.into();
        name.make_ascii_lowercase();
        Self {
            name,
            value: value.as_ref().to_vec(),
        }
    }

    /// The value as text, when it is valid UTF-8 (almost always).
    pub fn value_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.value).ok()
    }

    /// The value as text for matching: the whole value when it is UTF-8, else the
    /// part before its first byte that is not. Never absent for a present field, so
    /// a byte that is not UTF-8 cannot hide a header from a rule (`User-Agent:
    /// scraper \xff` still starts with `scraper`).
    pub fn text(&self) -> &str {
        match std::str::from_utf8(&self.value) {
            Ok(s) => s,
            Err(e) => std::str::from_utf8(&self.value[..e.valid_up_to()]).unwrap_or_default(),
        }
    }
}

/// Facts about the client the host established.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientInfo {
    /// The client's IP address, textual.
    pub ip: String,
    /// ISO 3166-1 alpha-2 country code, when the host knows it.
    pub country: Option<String>,
}

/// The head of a request as the guest sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// `GET`, `POST`, ...
    pub method: String,
    /// `http` or `https`.
    pub scheme: String,
    /// Host (and port) the client addressed.
    pub authority: String,
    /// Percent-encoded path, starting with `/`.
    pub path: String,
    /// Query without the leading `?`; empty when there is none.
    pub query: String,
    /// Header fields in arrival order.
    pub headers: Vec<Header>,
    /// What the host knows about the client.
    pub client: ClientInfo,
    /// Name of the route that matched.
    pub route: String,
    /// The node's identifier for this request (unique on the node).
    pub id: String,
}

impl Default for RequestHead {
    fn default() -> Self {
        Self {
            method: "GET".into(),
            scheme: "https".into(),
            authority: "localhost".into(),
            path: "/".into(),
            query: String::new(),
            headers: Vec::new(),
            client: ClientInfo {
                ip: "192.0.2.1".into(),
                country: None,
            },
            route: "default".into(),
            id: "0000000000000001".into(),
        }
    }
}

impl RequestHead {
    /// A request head for `method` and `target` (`/path?query`), with the other
    /// fields defaulted. Handy in tests.
    pub fn new(method: &str, target: &str) -> Self {
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, q),
            None => (target, ""),
        };
        let path = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };
        Self {
            method: method.to_string(),
            path,
            query: query.to_string(),
            ..Self::default()
        }
    }

    /// `GET target`.
    pub fn get(target: &str) -> Self {
        Self::new("GET", target)
    }

    /// Builder: append a header.
    #[must_use]
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push(Header::new(name, value));
        self
    }

    /// Builder: set the client IP.
    #[must_use]
    pub fn with_client_ip(mut self, ip: &str) -> Self {
        self.client.ip = ip.to_string();
        self
    }

    /// Builder: set the client's country (ISO 3166-1 alpha-2, as the host gives
    /// it), for tests of country rules.
    #[must_use]
    pub fn with_country(mut self, country: &str) -> Self {
        self.client.country = Some(country.to_string());
        self
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// Every value of header `name` (case-insensitive), in order.
    pub fn headers_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        find_headers(&self.headers, name)
    }

    /// The method equals `m`, ignoring ASCII case.
    pub fn is_method(&self, m: &str) -> bool {
        self.method.eq_ignore_ascii_case(m)
    }

    /// The query's `name=value` pairs, percent-decoded (`+` is a space).
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        url::query_pairs(&self.query)
    }

    /// The first decoded value of query parameter `name`.
    pub fn query_param(&self, name: &str) -> Option<String> {
        url::query_pairs(&self.query)
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// The non-empty path segments, still percent-encoded.
    pub fn path_segments(&self) -> impl Iterator<Item = &str> {
        self.path.split('/').filter(|s| !s.is_empty())
    }

    /// The extension of the last path segment, without the dot (`m3u8`), if any.
    pub fn extension(&self) -> Option<&str> {
        url::extension(&self.path)
    }

    /// The path and query as one request target (`/a?b=c`).
    pub fn target(&self) -> String {
        if self.query.is_empty() {
            self.path.clone()
        } else {
            format!("{}?{}", self.path, self.query)
        }
    }
}

/// The head of a response from the origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// HTTP status code.
    pub status: u16,
    /// Header fields in the origin's order.
    pub headers: Vec<Header>,
}

impl ResponseHead {
    /// A response head with `status` and no headers.
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
        }
    }

    /// Builder: append a header.
    #[must_use]
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push(Header::new(name, value));
        self
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// Every value of header `name` (case-insensitive), in order.
    pub fn headers_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        find_headers(&self.headers, name)
    }

    /// The media type of `content-type`, lower-cased, without parameters.
    pub fn content_type(&self) -> Option<String> {
        self.header("content-type").map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
    }
}

/// A complete response produced at the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Header fields.
    pub headers: Vec<Header>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// An empty response with `status`.
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A redirect (`301`, `302`, `307`, `308` ...) to `location`.
    pub fn redirect(status: u16, location: &str) -> Self {
        Self::new(status).header("location", location)
    }

    /// A `text/plain` response.
    pub fn text(status: u16, body: &str) -> Self {
        Self::new(status)
            .header("content-type", "text/plain; charset=utf-8")
            .body(body)
    }

    /// Builder: append a header (the name is lower-cased).
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push(Header::new(name, value));
        self
    }

    /// Builder: set the body.
    #[must_use]
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The first value of header `name` (case-insensitive).
    pub fn get_header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// One change to a header list. Applied in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderOp {
    /// Replace every field of that name with this one (or add it).
    Set(Header),
    /// Add a field, keeping the existing ones of that name.
    Append(Header),
    /// Remove every field of that name.
    Remove(String),
}

/// Importance of a request, highest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PriorityClass {
    /// Must not fail: live playlists and segments, checkout.
    Critical,
    /// Important: VOD segments, product pages.
    High,
    /// Ordinary: thumbnails, API reads, browsing.
    Normal,
    /// Deferrable: beacons, analytics.
    Low,
    /// Shed first: bots, prefetch, bulk.
    Bulk,
}

impl PriorityClass {
    /// Every class, highest first (the WIT order).
    pub const ALL: [PriorityClass; outpost_common::class::CLASSES] = [
        PriorityClass::Critical,
        PriorityClass::High,
        PriorityClass::Normal,
        PriorityClass::Low,
        PriorityClass::Bulk,
    ];

    /// The WIT name (`critical`, `high`, ...), as the node spells it too
    /// (`outpost_common::class::CLASS_NAMES`).
    pub fn as_str(self) -> &'static str {
        outpost_common::class::CLASS_NAMES[self as usize]
    }

    /// Parse a WIT name, ignoring ASCII case and surrounding whitespace.
    pub fn parse(s: &str) -> Option<Self> {
        outpost_common::class::index_of(s).map(|i| Self::ALL[i])
    }
}

/// The details of an admitted request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// Priority class.
    pub class: PriorityClass,
    /// Weight against the limit (1 for an ordinary request).
    pub cost: u32,
    /// The client's name for per-client fairness.
    pub client_key: Option<String>,
}

impl Admission {
    /// Admission under `class` with cost 1 and no client key.
    pub fn new(class: PriorityClass) -> Self {
        Self {
            class,
            cost: 1,
            client_key: None,
        }
    }

    /// Builder: set the cost.
    #[must_use]
    pub fn cost(mut self, cost: u32) -> Self {
        self.cost = cost;
        self
    }

    /// Builder: set the client key.
    #[must_use]
    pub fn client_key(mut self, key: impl Into<String>) -> Self {
        self.client_key = Some(key.into());
        self
    }
}

/// The admit hook's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdmitDecision {
    /// Let the host's limiter admit the request.
    Admit(Admission),
    /// Answer now with this response; the origin never sees it.
    Reject(Response),
}

impl AdmitDecision {
    /// Admit under `class`, cost 1, no client key.
    pub fn admit(class: PriorityClass) -> Self {
        AdmitDecision::Admit(Admission::new(class))
    }

    /// Reject with `response`.
    pub fn reject(response: Response) -> Self {
        AdmitDecision::Reject(response)
    }
}

impl From<Admission> for AdmitDecision {
    fn from(a: Admission) -> Self {
        AdmitDecision::Admit(a)
    }
}

/// A request guest's changes to the request. `None`/empty fields change nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestEdit {
    /// A new method.
    pub method: Option<String>,
    /// A new path (must start with `/`).
    pub path: Option<String>,
    /// A new query (without `?`; empty removes it).
    pub query: Option<String>,
    /// Header changes, applied in order.
    pub headers: Vec<HeaderOp>,
    /// A configured origin to send the request to.
    pub origin: Option<String>,
}

impl RequestEdit {
    /// Builder: replace every `name` header with this value.
    #[must_use]
    pub fn set_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push(HeaderOp::Set(Header::new(name, value)));
        self
    }

    /// Builder: add a `name` header.
    #[must_use]
    pub fn append_header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push(HeaderOp::Append(Header::new(name, value)));
        self
    }

    /// Builder: remove every `name` header.
    #[must_use]
    pub fn remove_header(mut self, name: &str) -> Self {
        self.headers
            .push(HeaderOp::Remove(name.to_ascii_lowercase()));
        self
    }

    /// Builder: set a new method.
    #[must_use]
    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_string());
        self
    }

    /// Builder: set a new path.
    #[must_use]
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// Builder: set a new query (empty removes it).
    #[must_use]
    pub fn query(mut self, query: impl Into<String>) -> Self {
        self.query = Some(query.into());
        self
    }

    /// Builder: route to the configured origin `name`.
    #[must_use]
    pub fn origin(mut self, name: &str) -> Self {
        self.origin = Some(name.to_string());
        self
    }

    /// Builder: look the response up and store it in the edge cache under `key`
    /// instead of path and query (the host the client addressed stays part of the
    /// key). Only on a route that caches; the origin never sees it.
    #[must_use]
    pub fn cache_key(self, key: &str) -> Self {
        self.set_header(outpost_common::cache::KEY, key)
    }

    /// Builder: keep this request away from the edge cache (neither looked up
    /// nor stored).
    #[must_use]
    pub fn cache_bypass(self) -> Self {
        self.set_header(
            outpost_common::cache::CONTROL,
            outpost_common::cache::BYPASS,
        )
    }

    /// Builder: store the response for `seconds`, whatever its own
    /// `Cache-Control` says (0: do not store it).
    #[must_use]
    pub fn cache_ttl(self, seconds: u32) -> Self {
        self.set_header(outpost_common::cache::TTL, &seconds.to_string())
    }

    /// True when the edit changes nothing.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// The request hook's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestAction {
    /// Go on with these changes.
    Forward(RequestEdit),
    /// Answer at the edge.
    Respond(Response),
}

impl RequestAction {
    /// Forward unchanged.
    pub fn pass() -> Self {
        RequestAction::Forward(RequestEdit::default())
    }

    /// Forward with `edit`.
    pub fn forward(edit: RequestEdit) -> Self {
        RequestAction::Forward(edit)
    }

    /// Answer with `response`.
    pub fn respond(response: Response) -> Self {
        RequestAction::Respond(response)
    }
}

/// A response guest's changes to the response. `None`/empty fields change nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResponseEdit {
    /// A new status code.
    pub status: Option<u16>,
    /// Header changes, applied in order.
    pub headers: Vec<HeaderOp>,
    /// A replacement body (only honoured when the host handed the body over).
    pub body: Option<Vec<u8>>,
}

impl ResponseEdit {
    /// Builder: set a new status.
    #[must_use]
    pub fn status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// Builder: replace every `name` header with this value.
    #[must_use]
    pub fn set_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push(HeaderOp::Set(Header::new(name, value)));
        self
    }

    /// Builder: add a `name` header.
    #[must_use]
    pub fn append_header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push(HeaderOp::Append(Header::new(name, value)));
        self
    }

    /// Builder: remove every `name` header.
    #[must_use]
    pub fn remove_header(mut self, name: &str) -> Self {
        self.headers
            .push(HeaderOp::Remove(name.to_ascii_lowercase()));
        self
    }

    /// Builder: replace the body.
    #[must_use]
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Builder: store this response from the origin in the edge cache for
    /// `seconds` instead of what it says (0: do not store it). On a hit, nothing:
    /// what is stored is already stored.
    #[must_use]
    pub fn cache_ttl(self, seconds: u32) -> Self {
        self.set_header(outpost_common::cache::TTL, &seconds.to_string())
    }

    /// Builder: do not store this response from the origin in the edge cache.
    #[must_use]
    pub fn uncacheable(self) -> Self {
        self.set_header(
            outpost_common::cache::CONTROL,
            outpost_common::cache::NO_STORE,
        )
    }

    /// True when the edit changes nothing.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// Finest detail.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something is off (a bad config value ...).
    Warn,
    /// Something failed.
    Error,
}

/// The node's load, as the host's limiter sees it now.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LoadSignals {
    /// Requests currently at the origin of this route.
    pub in_flight: u32,
    /// The current concurrency limit for that origin.
    pub limit: u32,
    /// Requests waiting in the admission queue.
    pub queued: u32,
    /// Recent queueing delay of admitted requests, microseconds.
    pub queue_delay_us: u64,
    /// Fraction of recent requests shed, 0.0 to 1.0.
    pub shed_rate: f32,
    /// Fraction shed per priority class, critical first.
    pub shed_rate_by_class: Vec<f32>,
    /// Recent origin latency (smoothed), microseconds.
    pub origin_latency_us: u64,
    /// Minimum origin latency recently observed, microseconds.
    pub origin_min_latency_us: u64,
    /// Limit pressure: 0.0 idle, 1.0 at the limit, above when queueing.
    pub utilization: f32,
}

impl LoadSignals {
    /// Signals with only `utilization` set. Handy in tests.
    pub fn with_utilization(utilization: f32) -> Self {
        Self {
            utilization,
            ..Self::default()
        }
    }
}

fn find_header<'a>(headers: &'a [Header], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(Header::text)
}

fn find_headers<'a>(headers: &'a [Header], name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .map(Header::text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_that_is_not_utf8_is_matched_up_to_its_first_bad_byte() {
        let req = RequestHead {
            headers: vec![Header::new("user-agent", b"scraper \xff x")],
            ..Default::default()
        };
        assert_eq!(req.header("user-agent"), Some("scraper "));
        assert_eq!(req.headers[0].value_str(), None);
        assert_eq!(req.headers[0].value, b"scraper \xff x");
    }

    #[test]
    fn header_lookup_is_case_insensitive() {
        let req = RequestHead::get("/")
            .with_header("Accept", "text/html")
            .with_header("x-multi", "1")
            .with_header("X-Multi", "2");
        assert_eq!(req.headers[0].name, "accept");
        assert_eq!(req.header("ACCEPT"), Some("text/html"));
        assert_eq!(req.header("accept"), Some("text/html"));
        assert_eq!(req.header("missing"), None);
        assert_eq!(
            req.headers_all("X-MULTI").collect::<Vec<_>>(),
            vec!["1", "2"]
        );
        let resp =
            ResponseHead::new(200).with_header("Content-Type", "Application/JSON; charset=utf-8");
        assert_eq!(
            resp.header("content-type"),
            Some("Application/JSON; charset=utf-8")
        );
        assert_eq!(resp.content_type().as_deref(), Some("application/json"));
    }

    #[test]
    fn request_helpers() {
        let req = RequestHead::get("/a//b/c.M3U8?x=1&y=a%20b&x=2");
        assert_eq!(req.path, "/a//b/c.M3U8");
        assert_eq!(req.query, "x=1&y=a%20b&x=2");
        assert_eq!(req.query_param("y").as_deref(), Some("a b"));
        assert_eq!(req.query_param("x").as_deref(), Some("1"));
        assert_eq!(req.query_param("z"), None);
        assert_eq!(req.query_pairs().len(), 3);
        assert_eq!(
            req.path_segments().collect::<Vec<_>>(),
            vec!["a", "b", "c.M3U8"]
        );
        assert_eq!(req.extension(), Some("M3U8"));
        assert_eq!(req.target(), "/a//b/c.M3U8?x=1&y=a%20b&x=2");
        assert!(RequestHead::new("post", "x").is_method("POST"));
        assert_eq!(RequestHead::new("GET", "x").path, "/x");
    }

    #[test]
    fn request_edit_builder() {
        let edit = RequestEdit::default()
            .set_header("X-A", "1")
            .append_header("x-b", "2")
            .remove_header("Cookie")
            .path("/new")
            .query("")
            .method("HEAD")
            .origin("backup");
        assert_eq!(
            edit.headers,
            vec![
                HeaderOp::Set(Header::new("x-a", "1")),
                HeaderOp::Append(Header::new("x-b", "2")),
                HeaderOp::Remove("cookie".into()),
            ]
        );
        assert_eq!(edit.path.as_deref(), Some("/new"));
        assert_eq!(edit.query.as_deref(), Some(""));
        assert_eq!(edit.method.as_deref(), Some("HEAD"));
        assert_eq!(edit.origin.as_deref(), Some("backup"));
        assert!(!edit.is_empty());
        assert!(RequestEdit::default().is_empty());
        assert_eq!(
            RequestAction::pass(),
            RequestAction::Forward(RequestEdit::default())
        );
    }

    #[test]
    fn response_builders() {
        let r = Response::new(403).header("X-Why", "geo").body("no");
        assert_eq!(r.status, 403);
        assert_eq!(r.get_header("x-why"), Some("geo"));
        assert_eq!(r.body, b"no");
        let r = Response::redirect(301, "https://example.com/");
        assert_eq!(r.get_header("Location"), Some("https://example.com/"));
        assert!(r.body.is_empty());
        let t = Response::text(503, "busy");
        assert!(
            t.get_header("content-type")
                .is_some_and(|v| v.starts_with("text/plain"))
        );
        let e = ResponseEdit::default()
            .status(404)
            .set_header("A", "b")
            .body(vec![1, 2]);
        assert_eq!(e.status, Some(404));
        assert_eq!(e.body.as_deref(), Some(&[1u8, 2][..]));
        assert!(ResponseEdit::default().is_empty());
    }

    #[test]
    fn priority_classes_and_admission() {
        assert_eq!(PriorityClass::parse(" LOW "), Some(PriorityClass::Low));
        assert_eq!(PriorityClass::parse("urgent"), None);
        assert!(PriorityClass::Critical < PriorityClass::Bulk);
        for c in PriorityClass::ALL {
            assert_eq!(PriorityClass::parse(c.as_str()), Some(c));
        }
        let a = Admission::new(PriorityClass::High).cost(3).client_key("k");
        assert_eq!(
            AdmitDecision::from(a),
            AdmitDecision::Admit(Admission {
                class: PriorityClass::High,
                cost: 3,
                client_key: Some("k".into())
            })
        );
    }
}

/// What a guest may check its configuration against (`config-check`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckContext {
    /// The names of the origins the operator configured.
    pub origins: Vec<String>,
}

/// One problem in a guest's configuration, reported when the node loads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The configuration key at fault.
    pub key: String,
    /// For a list value (a TOML array), the 0-based item at fault.
    pub item: Option<u32>,
    /// What is wrong and what was expected.
    pub message: String,
}

impl ConfigProblem {
    /// A problem with the value of `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            item: None,
            message: message.into(),
        }
    }

    /// A problem with item `item` of the list value of `key`.
    pub fn item(key: impl Into<String>, item: usize, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            item: Some(u32::try_from(item).unwrap_or(u32::MAX)),
            message: message.into(),
        }
    }
}
