//! Common Log Format and Combined Log Format:
//! `host ident authuser [01/Aug/1995:00:00:01 -0400] "GET /path HTTP/1.0" 200 1839 ["referer" "user-agent"]`.

use std::io::BufRead;
use std::net::IpAddr;

use crate::lines::{Line, Lines};
use crate::{Entry, InputError, Options, Position, time, url};

/// Streams CLF lines as entries. Timestamps are whole seconds (see
/// [`crate::Spread`], which [`crate::Reader`] applies on top).
pub struct ClfReader<R> {
    lines: Lines<R>,
    authority: String,
    scheme: String,
    seq: u64,
}

impl<R: BufRead> ClfReader<R> {
    /// Reads `input`, named `source` in errors; uses the authority, scheme and line
    /// cap from `options`.
    pub fn new(source: &str, input: R, options: &Options) -> Self {
        ClfReader {
            lines: Lines::new(source, input, options.max_line_bytes),
            authority: options.authority.clone(),
            scheme: options.scheme.clone(),
            seq: 0,
        }
    }
}

impl<R: BufRead> Iterator for ClfReader<R> {
    type Item = Result<Entry, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        let line = match self.lines.next()? {
            Ok(line) => line,
            Err(e) => return Some(Err(e)),
        };
        let seq = self.seq;
        self.seq += 1;
        let source = self.lines.source();
        Some(match line {
            Line::TooLong(n) => Err(InputError::new(source, Position::Line(n), "line too long")),
            Line::Text(n, text) => parse_clf_line(&text, &self.authority, &self.scheme)
                .map(|mut entry| {
                    entry.seq = seq;
                    entry
                })
                .map_err(|message| InputError::new(source, Position::Line(n), message)),
        })
    }
}

/// A short printable rendering of some input bytes, for error messages.
fn snippet(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    let mut out: String = s.chars().take(60).collect();
    if s.chars().count() > 60 {
        out.push('…');
    }
    format!("{out:?}")
}

/// Splits off the next space-delimited token.
fn token(b: &[u8]) -> (&[u8], &[u8]) {
    let b = trim(b);
    match b.iter().position(|&c| c == b' ') {
        Some(i) => (&b[..i], &b[i..]),
        None => (b, &[]),
    }
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    &b[start..]
}

/// Reads a `"…"` string with Apache's escapes (`\"`, `\\`, `\xHH`); returns the
/// unescaped bytes and the rest.
fn quoted(b: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    let b = trim(b).strip_prefix(b"\"")?;
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => return Some((out, &b[i + 1..])),
            b'\\' if i + 1 < b.len() => {
                match b[i + 1] {
                    b'x' if i + 3 < b.len() => {
                        let hex = std::str::from_utf8(&b[i + 2..i + 4])
                            .ok()
                            .and_then(|h| u8::from_str_radix(h, 16).ok());
                        match hex {
                            Some(v) => {
                                out.push(v);
                                i += 4;
                                continue;
                            }
                            None => out.push(b'\\'),
                        }
                    }
                    b'n' => out.push(b'\n'),
                    b't' => out.push(b'\t'),
                    other => out.push(other),
                }
                i += 2;
                continue;
            }
            c => out.push(c),
        }
        i += 1;
    }
    None
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Parses one CLF/Combined line into an [`Entry`] (`seq` 0, `at_us` the line's second).
///
/// The host field becomes `client_ip` when it is an IP address; a host name is kept
/// as header `x-log-host` instead. `ident` and `authuser` are ignored. A byte count
/// of `-` is 0; a status of `-` is `None`. Referer and User-Agent (Combined) become
/// `referer` and `user-agent` headers unless `-`. An absolute-form request target
/// (`GET http://host/path HTTP/1.0`) gives its own scheme and authority; otherwise
/// `authority` and `scheme` are used.
pub fn parse_clf_line(line: &[u8], authority: &str, scheme: &str) -> Result<Entry, String> {
    let (host, rest) = token(line);
    let Some(open) = rest.iter().position(|&c| c == b'[') else {
        return Err(format!("expected [date] after host in {}", snippet(line)));
    };
    let rest = &rest[open + 1..];
    let Some(close) = rest.iter().position(|&c| c == b']') else {
        return Err(format!("unterminated [date] in {}", snippet(line)));
    };
    let date = std::str::from_utf8(&rest[..close])
        .map_err(|_| format!("invalid date {}", snippet(&rest[..close])))?;
    let at_us = time::parse_clf(date)?;
    let rest = &rest[close + 1..];
    let Some((request, rest)) = quoted(rest) else {
        return Err(format!(
            "expected quoted request line after date, found {}",
            snippet(trim(rest))
        ));
    };
    let (status_text, rest) = token(rest);
    let (bytes_text, rest) = token(rest);

    let bad_request = || format!("malformed request line {}", snippet(&request));
    let parts: Vec<&[u8]> = request
        .split(|&c| c == b' ')
        .filter(|p| !p.is_empty())
        .collect();
    let (method, target) = match parts.as_slice() {
        [method, target_parts @ ..] if !target_parts.is_empty() => {
            let target_parts = match target_parts.split_last() {
                Some((last, init)) if last.starts_with(b"HTTP/") && !init.is_empty() => init,
                _ => target_parts,
            };
            (*method, target_parts.join(&b' '))
        }
        _ => return Err(bad_request()),
    };
    if method.is_empty() || method.len() > 32 || !method.iter().all(|&c| is_tchar(c)) {
        return Err(bad_request());
    }
    let method = String::from_utf8_lossy(method).into_owned();
    let (scheme, authority, path, query) = if target.starts_with(b"/") {
        let (path, query) = url::split_target(&target);
        (scheme.to_string(), authority.to_string(), path, query)
    } else {
        let lower = target.to_ascii_lowercase();
        if !(lower.starts_with(b"http://") || lower.starts_with(b"https://")) {
            return Err(bad_request());
        }
        let u =
            url::parse_absolute(&String::from_utf8_lossy(&target)).map_err(|_| bad_request())?;
        (u.scheme, u.authority, u.path, u.query)
    };

    let status = match status_text {
        b"-" => None,
        t if t.len() == 3 && t.iter().all(u8::is_ascii_digit) => {
            let s = std::str::from_utf8(t)
                .ok()
                .and_then(|t| t.parse::<u16>().ok());
            match s {
                Some(s) if s >= 100 => Some(s),
                _ => return Err(format!("invalid status {}", snippet(t))),
            }
        }
        t => return Err(format!("invalid status {}", snippet(t))),
    };
    let response_bytes = match bytes_text {
        b"-" => 0,
        t => std::str::from_utf8(t)
            .ok()
            .filter(|t| !t.is_empty() && t.bytes().all(|c| c.is_ascii_digit()))
            .and_then(|t| t.parse::<u64>().ok())
            .ok_or_else(|| format!("invalid byte count {}", snippet(t)))?,
    };

    let mut headers = Vec::new();
    if let Some((referer, rest)) = quoted(rest) {
        if referer != b"-" && !referer.is_empty() {
            headers.push((
                "referer".to_string(),
                String::from_utf8_lossy(&referer).into_owned(),
            ));
        }
        if let Some((agent, _)) = quoted(rest)
            && agent != b"-"
            && !agent.is_empty()
        {
            headers.push((
                "user-agent".to_string(),
                String::from_utf8_lossy(&agent).into_owned(),
            ));
        }
    }
    let host = String::from_utf8_lossy(host).into_owned();
    let client_ip = match host.parse::<IpAddr>() {
        Ok(ip) => Some(ip.to_string()),
        Err(_) => {
            if host != "-" && !host.is_empty() {
                headers.push(("x-log-host".to_string(), host));
            }
            None
        }
    };

    Ok(Entry {
        seq: 0,
        at_us,
        method,
        scheme,
        authority,
        path,
        query,
        headers,
        client_ip,
        status,
        response_bytes: Some(response_bytes),
        duration_us: None,
        response_headers: Vec::new(),
        decision: None,
        body: None,
        request_id: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Entry, String> {
        parse_clf_line(line.as_bytes(), "localhost", "http")
    }

    #[test]
    fn common_line() {
        let e = parse(
            "in24.inetnebr.com - - [01/Aug/1995:00:00:01 -0400] \"GET /shuttle/missions/sts-68/news/sts-68-mcc-05.txt HTTP/1.0\" 200 1839",
        );
        let e = e.unwrap();
        assert_eq!(e.at_us, 807_249_601_000_000);
        assert_eq!(e.method, "GET");
        assert_eq!(e.scheme, "http");
        assert_eq!(e.authority, "localhost");
        assert_eq!(e.path, "/shuttle/missions/sts-68/news/sts-68-mcc-05.txt");
        assert_eq!(e.query, "");
        assert_eq!(e.client_ip, None);
        assert_eq!(
            e.headers,
            [("x-log-host".to_string(), "in24.inetnebr.com".to_string())]
        );
        assert_eq!(e.status, Some(200));
        assert_eq!(e.response_bytes, Some(1839));
    }

    #[test]
    fn combined_line() {
        let e = parse(
            r#"2001:db8::1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif?a=1&b=\"x\" HTTP/1.1" 304 - "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)""#,
        )
        .unwrap();
        assert_eq!(e.client_ip.as_deref(), Some("2001:db8::1"));
        assert_eq!(e.path, "/apache_pb.gif");
        assert_eq!(e.query, "a=1&b=%22x%22");
        assert_eq!(e.status, Some(304));
        assert_eq!(e.response_bytes, Some(0));
        assert_eq!(
            e.header("referer"),
            Some("http://www.example.com/start.html")
        );
        assert_eq!(
            e.header("user-agent"),
            Some("Mozilla/4.08 [en] (Win98; I ;Nav)")
        );
        assert_eq!(e.headers.len(), 2);
    }

    #[test]
    fn odd_but_accepted_lines() {
        // HTTP/0.9 request without a protocol.
        let e = parse(r#"1.2.3.4 - - [01/Aug/1995:00:00:01 -0400] "GET /history/apollo/" 200 -"#)
            .unwrap();
        assert_eq!(
            (e.path.as_str(), e.response_bytes),
            ("/history/apollo/", Some(0))
        );
        // Spaces in the target.
        let e = parse(r#"1.2.3.4 - - [01/Aug/1995:00:00:01 -0400] "GET /a b.html HTTP/1.0" 404 -"#)
            .unwrap();
        assert_eq!(e.path, "/a%20b.html");
        // Absolute-form target, `-` status.
        let e = parse(
            r#"1.2.3.4 - - [01/Aug/1995:00:00:01 -0400] "GET https://Example.org:8443/x?y HTTP/1.1" - 12"#,
        )
        .unwrap();
        assert_eq!(
            (
                e.scheme.as_str(),
                e.authority.as_str(),
                e.path.as_str(),
                e.query.as_str()
            ),
            ("https", "example.org:8443", "/x", "y")
        );
        assert_eq!(e.status, None);
        // Non-UTF-8 bytes and \x escapes are percent-encoded.
        let e = parse_clf_line(
            b"- - - [01/Aug/1995:00:00:01 -0400] \"GET /caf\xe9\\x20x HTTP/1.0\" 200 1",
            "h",
            "http",
        )
        .unwrap();
        assert_eq!(e.path, "/caf%E9%20x");
        assert!(e.headers.is_empty());
    }

    #[test]
    fn malformed_lines() {
        for (line, want) in [
            ("garbage", "expected [date]"),
            (
                r#"h - - [01/Aug/1995:00:00:01 -0400 "GET / HTTP/1.0" 200 1"#,
                "unterminated [date]",
            ),
            (
                r#"h - - [01/Aug/1995:00:00:61 -0400] "GET / HTTP/1.0" 200 1"#,
                "invalid date",
            ),
            (
                r#"h - - [31/Sep/1995:00:00:01 -0400] "GET / HTTP/1.0" 200 1"#,
                "invalid date",
            ),
            (
                r#"h - - [01/Aug/1995:00:00:01 -0400] "\x16\x03\x01" 400 0"#,
                "malformed request line",
            ),
            (
                r#"h - - [01/Aug/1995:00:00:01 -0400] "-" 408 0"#,
                "malformed request line",
            ),
            (
                r#"h - - [01/Aug/1995:00:00:01 -0400] "GET" 400 0"#,
                "malformed request line",
            ),
            (
                r#"h - - [01/Aug/1995:00:00:01 -0400] "GET index.html HTTP/1.0" 400 0"#,
                "malformed request line",
            ),
            (
                r#"h - - [01/Aug/1995:00:00:01 -0400] "GET / HTTP/1.0 200 1"#,
                "expected quoted request",
            ),
            (
                r#"h - - [01/Aug/1995:00:00:01 -0400] GET / HTTP/1.0 200 1"#,
                "expected quoted request",
            ),
            (
                r#"h - - [01/Aug/1995:00:00:01 -0400] "GET / HTTP/1.0" 2000 1"#,
                "invalid status",
            ),
            (
                r#"h - - [01/Aug/1995:00:00:01 -0400] "GET / HTTP/1.0" 200 1k"#,
                "invalid byte count",
            ),
            (
                r#"h - - [01/Aug/1995:00:00:01 -0400] "GET / HTTP/1.0" 200"#,
                "invalid byte count",
            ),
        ] {
            match parse(line) {
                Ok(e) => panic!("{line:?} accepted: {e:?}"),
                Err(msg) => assert!(msg.contains(want), "{line:?}: {msg:?} lacks {want:?}"),
            }
        }
    }
}
