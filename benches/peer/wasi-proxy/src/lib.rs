//! The `wasmtime serve` peer of the peer benchmark: a wasi:http proxy component that
//! applies the benchmark's rewrite (what `lua.nginx.conf` does in Lua and the
//! Outpost chain's rewrite guest does from its rules) and forwards the request to the
//! origin named by the `PEER_ORIGIN` environment variable (`host:port`; run.sh passes
//! it with `wasmtime serve -Scli --env`), streaming both bodies.
//!
//! A benchmark peer, not an Outpost guest: it makes `wasmtime serve` do the same work
//! per request as the other systems.

use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, IncomingRequest, IncomingResponse, OutgoingBody, OutgoingRequest,
    OutgoingResponse, ResponseOutparam, Scheme,
};
use wasi::io::streams::{InputStream, OutputStream, StreamError};

struct Proxy;

wasi::http::proxy::export!(Proxy);

/// Hop-by-hop headers: never forwarded, either way.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Headers the rewrite sets or removes: the client's copies are not forwarded.
const REWRITTEN: &[&str] = &["x-client-class", "x-edge", "x-forwarded-proto", "x-debug"];

impl wasi::exports::http::incoming_handler::Guest for Proxy {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        match send(request) {
            Ok(resp) => relay(resp, out),
            Err(e) => {
                eprintln!("proxy: {e:?}");
                let resp = OutgoingResponse::new(Fields::new());
                let _ = resp.set_status_code(502);
                ResponseOutparam::set(out, Ok(resp));
            }
        }
    }
}

fn internal(what: &str) -> ErrorCode {
    ErrorCode::InternalError(Some(what.to_string()))
}

/// Rewrite the request, send it to the origin with its body, wait for the head.
fn send(request: IncomingRequest) -> Result<IncomingResponse, ErrorCode> {
    let origin = std::env::var("PEER_ORIGIN").unwrap_or_else(|_| "127.0.0.1:8081".into());
    let target = request.path_with_query().unwrap_or_else(|| "/".into());
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (target.as_str(), ""),
    };
    let path = rewrite_path(path);
    let query = strip_query(query);
    let path_with_query = if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    };

    let headers = Fields::new();
    let mut mobile = false;
    let mut has_request_id = false;
    for (name, value) in request.headers().entries() {
        if HOP_BY_HOP.contains(&name.as_str()) || REWRITTEN.contains(&name.as_str()) {
            continue;
        }
        if name == "user-agent" {
            let ua = String::from_utf8_lossy(&value);
            mobile = ["Mobi", "iPhone", "Android"].iter().any(|m| ua.contains(m));
        }
        if name == "x-request-id" {
            if value.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            has_request_id = true;
        }
        headers
            .append(&name, &value)
            .map_err(|_| internal("bad header"))?;
    }
    let class = if mobile { "mobile" } else { "desktop" };
    let set = |name: &str, value: String| {
        headers
            .set(name, &[value.into_bytes()])
            .map_err(|_| internal("bad header"))
    };
    set("x-client-class", class.into())?;
    if !has_request_id {
        set(
            "x-request-id",
            format!("{:016x}", wasi::random::random::get_random_u64()),
        )?;
    }
    set("x-edge", "outpost".into())?;
    set("x-forwarded-proto", "http".into())?;

    let out = OutgoingRequest::new(headers);
    out.set_method(&request.method())
        .map_err(|()| internal("method"))?;
    out.set_scheme(Some(&Scheme::Http))
        .map_err(|()| internal("scheme"))?;
    out.set_authority(Some(origin.as_str()))
        .map_err(|()| internal("authority"))?;
    out.set_path_with_query(Some(path_with_query.as_str()))
        .map_err(|()| internal("path"))?;
    let out_body = out.body().map_err(|()| internal("request body"))?;
    let pending = outgoing_handler::handle(out, None)?;
    // The streams end before their bodies do (a child resource outliving its
    // parent traps): `to` and `from` drop at the end of this block.
    if let Ok(in_body) = request.consume()
        && let (Ok(from), Ok(to)) = (in_body.stream(), out_body.write())
    {
        copy(&from, &to)?;
    }
    OutgoingBody::finish(out_body, None)?;
    pending.subscribe().block();
    match pending.get() {
        Some(Ok(Ok(resp))) => Ok(resp),
        Some(Ok(Err(e))) => Err(e),
        Some(Err(())) | None => Err(internal("no response")),
    }
}

/// The response: status, end-to-end headers, body streamed.
fn relay(resp: IncomingResponse, out: ResponseOutparam) {
    let headers = Fields::new();
    for (name, value) in resp.headers().entries() {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            let _ = headers.append(&name, &value);
        }
    }
    let outgoing = OutgoingResponse::new(headers);
    let _ = outgoing.set_status_code(resp.status());
    let Ok(out_body) = outgoing.body() else {
        return;
    };
    ResponseOutparam::set(out, Ok(outgoing));
    if let Ok(in_body) = resp.consume()
        && let (Ok(from), Ok(to)) = (in_body.stream(), out_body.write())
    {
        let _ = copy(&from, &to);
    }
    let _ = OutgoingBody::finish(out_body, None);
}

/// Copy a stream to its end (writes of at most 4 KiB, as wasi:io asks).
fn copy(from: &InputStream, to: &OutputStream) -> Result<(), ErrorCode> {
    loop {
        match from.blocking_read(64 << 10) {
            Ok(chunk) => {
                for piece in chunk.chunks(4096) {
                    to.blocking_write_and_flush(piece)
                        .map_err(|_| internal("write"))?;
                }
            }
            Err(StreamError::Closed) => return Ok(()),
            Err(StreamError::LastOperationFailed(_)) => return Err(internal("read")),
        }
    }
}

/// Collapse duplicate slashes, drop `/./` segments, map `/legacy/` to `/live/`.
fn rewrite_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for segment in path.split('/').filter(|s| !s.is_empty() && *s != ".") {
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() || path.ends_with('/') || path.ends_with("/.") {
        out.push('/');
    }
    match out.strip_prefix("/legacy/") {
        Some(rest) => format!("/live/{rest}"),
        None => out,
    }
}

/// Drop `utm_*`, `fbclid` and `gclid` parameters (names compared case-insensitively).
fn strip_query(query: &str) -> String {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| {
            let name = p.split('=').next().unwrap_or_default().to_ascii_lowercase();
            !(name.starts_with("utm_") || name == "fbclid" || name == "gclid")
        })
        .collect::<Vec<_>>()
        .join("&")
}
