//! The JSON the page sends, and the heads the guests get from it: built as the node
//! builds a request's head for its guests (`host/src/proxy/target.rs` `route`).

use outpost_guest::{ClientInfo, Header, LoadSignals, RequestHead, ResponseHead};
use serde::Deserialize;

use crate::node;

/// A request, as the page describes it. Every field may be left out (or `null`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RequestJson {
    /// `GET` by default.
    pub method: Option<String>,
    /// `http` (default) or `https`.
    pub scheme: Option<String>,
    /// `host[:port]` the client addressed; default: the `host` header, else
    /// `localhost`.
    pub authority: Option<String>,
    /// The path, `/` by default; may carry `?query` when `query` is not given.
    pub path: Option<String>,
    /// The query, without `?`.
    pub query: Option<String>,
    /// `[name, value]` pairs in arrival order.
    pub headers: Option<Vec<(String, String)>>,
    /// The client's address (`192.0.2.1` by default).
    pub client_ip: Option<String>,
    /// The client's country (ISO 3166-1 alpha-2), as the node's geo table says.
    pub country: Option<String>,
    /// The name of the route that matched (`default` by default).
    pub route: Option<String>,
    /// The node's request id (`0000000000000001` by default).
    pub id: Option<String>,
    /// The origins configured on the node (for the config check and for an edit
    /// that picks an origin); none by default.
    pub origins: Option<Vec<String>>,
    /// The wall clock the guest reads, seconds since the epoch (default: now).
    pub unix_time: Option<u64>,
}

/// A response from the origin, as the page describes it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResponseJson {
    /// `200` by default.
    pub status: Option<u16>,
    /// `[name, value]` pairs.
    pub headers: Option<Vec<(String, String)>>,
    /// The request as sent to the origin (default: `GET /` with defaults).
    pub request: Option<RequestJson>,
    /// Whether the route hands the body to the response guests (its content type
    /// is in the route's `transform`); `true` by default.
    pub transform: Option<bool>,
}

/// The load signals the guest reads (`LoadSignals`); every field optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoadJson {
    in_flight: Option<u32>,
    limit: Option<u32>,
    queued: Option<u32>,
    queue_delay_us: Option<u64>,
    shed_rate: Option<f32>,
    shed_rate_by_class: Option<Vec<f32>>,
    origin_latency_us: Option<u64>,
    origin_min_latency_us: Option<u64>,
    utilization: Option<f32>,
}

/// Parse a JSON object argument; the message names the argument.
pub fn parse<T: for<'de> Deserialize<'de>>(what: &str, json: &str) -> Result<T, String> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("{what}: {e}"))?;
    object(what, value)
}

/// A JSON value that must be an object (serde would also read a struct from an
/// array) as `T`.
pub fn object<T: for<'de> Deserialize<'de>>(
    what: &str,
    value: serde_json::Value,
) -> Result<T, String> {
    if !value.is_object() {
        return Err(format!("{what}: expected a JSON object"));
    }
    serde_json::from_value(value).map_err(|e| format!("{what}: {e}"))
}

/// The load signals of a `load` argument: empty (or `null`) is the defaults.
pub fn load(json: &str) -> Result<LoadSignals, String> {
    let t = json.trim();
    if t.is_empty() {
        return Ok(LoadSignals::default());
    }
    let value: serde_json::Value = serde_json::from_str(t).map_err(|e| format!("load: {e}"))?;
    let j: LoadJson = if value.is_null() {
        LoadJson::default()
    } else {
        object("load", value)?
    };
    Ok(LoadSignals {
        in_flight: j.in_flight.unwrap_or(0),
        limit: j.limit.unwrap_or(0),
        queued: j.queued.unwrap_or(0),
        queue_delay_us: j.queue_delay_us.unwrap_or(0),
        shed_rate: j.shed_rate.unwrap_or(0.0),
        shed_rate_by_class: j.shed_rate_by_class.unwrap_or_default(),
        origin_latency_us: j.origin_latency_us.unwrap_or(0),
        origin_min_latency_us: j.origin_min_latency_us.unwrap_or(0),
        utilization: j.utilization.unwrap_or(0.0),
    })
}

/// Why a request does not reach the guests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unfit {
    /// The input is not a request at all (bad JSON, a header no HTTP parser
    /// accepts): the call answers `{"error": ...}`.
    Bad(String),
    /// The node refuses it with `400` before any guest runs (`canon`).
    Refused(String),
}

/// Header pairs as the SDK's list: names lower-cased; a name or value no HTTP
/// parser would accept is an error.
pub fn headers(what: &str, pairs: Vec<(String, String)>) -> Result<Vec<Header>, String> {
    pairs
        .into_iter()
        .map(|(name, value)| {
            if !node::valid_header_name(&name) {
                return Err(format!("{what}: bad header name {name:?}"));
            }
            if !node::valid_header_value(value.as_bytes()) {
                return Err(format!("{what}: bad value for header {name:?}"));
            }
            Ok(Header::new(name, value))
        })
        .collect()
}

/// The head the node builds for its guests from a client's request.
pub fn request(j: RequestJson) -> Result<RequestHead, Unfit> {
    let bad = |m: String| Unfit::Bad(m);
    let refused = |m: &str| Unfit::Refused(m.to_string());
    let method = j.method.unwrap_or_else(|| "GET".into());
    if !node::valid_method(&method) {
        return Err(bad(format!("request: bad method {method:?}")));
    }
    let scheme = j.scheme.unwrap_or_else(|| "http".into());
    if scheme != "http" && scheme != "https" {
        return Err(bad(format!(
            "request: scheme {scheme:?}: expected \"http\" or \"https\""
        )));
    }
    let raw_path = j.path.unwrap_or_else(|| "/".into());
    let (path, query) = match (raw_path.split_once('?'), j.query) {
        (Some(_), Some(_)) => {
            return Err(bad(
                "request: the path has a `?query` and `query` is given too: give it once".into(),
            ));
        }
        (Some((p, q)), None) => (p.to_string(), q.to_string()),
        (None, q) => (raw_path, q.unwrap_or_default()),
    };
    let headers = headers("request", j.headers.unwrap_or_default()).map_err(Unfit::Bad)?;
    // The request line as a client sends it: what the HTTP parser does not accept
    // is a 400 before anything else; a fragment is cut off.
    let target = if query.is_empty() {
        path.clone()
    } else {
        format!("{path}?{query}")
    };
    let kept =
        node::scan_target(&target).map_err(|e| refused(&format!("bad request target: {e}")))?;
    let target = &target[..kept];
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (target, ""),
    };
    let hosts: Vec<String> = headers
        .iter()
        .filter(|h| h.name == "host")
        .map(|h| h.text().to_string())
        .collect();
    if hosts.len() > 1 {
        return Err(refused("more than one Host header"));
    }
    let raw_authority = j
        .authority
        .or_else(|| hosts.into_iter().next())
        .unwrap_or_else(|| "localhost".into());
    let (_, authority) = node::canon_host_and_authority(&raw_authority).map_err(refused)?;
    let path = node::canon_path(path).map_err(refused)?;
    // In the node's order: the fields as a header map, hop-by-hop and cache fields
    // out, `host` replaced by the authority routed on.
    let mut map = node::HeaderMap::from_fields(headers);
    node::strip_hop_by_hop(&mut map);
    node::strip_guest_cache_fields(&mut map);
    map.remove("host");
    if !authority.is_empty() {
        map.insert("host", authority.as_bytes());
    }
    let headers = map.into_fields();
    Ok(RequestHead {
        method,
        scheme,
        authority,
        path,
        query: query.to_string(),
        headers,
        client: ClientInfo {
            ip: j.client_ip.unwrap_or_else(|| "192.0.2.1".into()),
            country: j.country,
        },
        route: j.route.unwrap_or_else(|| "default".into()),
        id: j.id.unwrap_or_else(|| "0000000000000001".into()),
    })
}

/// A response head: status (default 200) and headers, names lower-cased.
pub fn response_head(
    status: Option<u16>,
    pairs: Vec<(String, String)>,
) -> Result<ResponseHead, String> {
    let status = status.unwrap_or(200);
    if !node::valid_status(status) {
        return Err(format!("response: bad status {status}"));
    }
    Ok(ResponseHead {
        status,
        headers: headers("response", pairs)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(json: &str) -> Result<RequestHead, Unfit> {
        request(parse("request", json).map_err(Unfit::Bad)?)
    }

    #[test]
    fn the_head_is_built_as_the_node_builds_it() {
        let r = req(
            r#"{"method":"GET","authority":"Example.COM.:0080","path":"/a//./b?x=1",
            "headers":[["Accept","*/*"],["Connection","x-drop"],["x-drop","1"],
            ["outpost-cache","bypass"],["Host","other"]]}"#,
        )
        .expect("a request");
        let h = r;
        assert_eq!(h.authority, "example.com:80");
        assert_eq!(h.path, "/a/b");
        assert_eq!(h.query, "x=1");
        assert_eq!(
            node::pairs(&h.headers),
            vec![
                ("accept".into(), "*/*".into()),
                ("host".into(), "example.com:80".into())
            ]
        );
        assert_eq!(h.scheme, "http");
        assert_eq!(h.client.ip, "192.0.2.1");
    }

    #[test]
    fn what_the_node_refuses_and_what_is_no_request() {
        assert!(matches!(
            req(r#"{"path":"/a%2Fb"}"#),
            Err(Unfit::Refused(_))
        ));
        assert!(matches!(
            req(r#"{"headers":[["host","a"],["host","b"]]}"#),
            Err(Unfit::Refused(_))
        ));
        assert!(matches!(req(r#"{"path":"/a b"}"#), Err(Unfit::Refused(_))));
        assert!(matches!(req(r#"{"method":"G T"}"#), Err(Unfit::Bad(_))));
        assert!(matches!(req(r#"{"pth":"/"}"#), Err(Unfit::Bad(_))));
        assert!(matches!(
            req(r#"{"path":"/?a","query":"b"}"#),
            Err(Unfit::Bad(_))
        ));
        assert!(matches!(
            req(r#"{"headers":[["bad name","x"]]}"#),
            Err(Unfit::Bad(_))
        ));
    }

    #[test]
    fn load_defaults() {
        assert_eq!(load(""), Ok(LoadSignals::default()));
        assert_eq!(load("null"), Ok(LoadSignals::default()));
        assert_eq!(
            load(r#"{"utilization":0.5}"#),
            Ok(LoadSignals::with_utilization(0.5))
        );
        assert!(load(r#"{"utilisation":0.5}"#).is_err());
    }
}
