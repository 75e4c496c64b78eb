//! The one normalised view of a request's target that routing, every guest and the
//! origin see: a guard on `/private/` holds against every other spelling of the same
//! resource, because there is no other spelling past this point.
//!
//! Path (RFC 3986 §6.2.2, as Envoy's `normalize_path` + `merge_slashes`):
//! - percent-escapes of unreserved characters are decoded (`%70rivate` → `private`,
//!   `%2e%2e` → `..`), every other escape is kept with upper-case hex;
//! - duplicate slashes are merged, `.` and `..` segments removed (`..` never climbs
//!   above the root);
//! - a request whose path an origin could read as a different path is refused (400)
//!   rather than guessed at: an encoded `/` or `\` (`%2F`, `%5C`), a raw `\`, an
//!   escape of NUL or another control character, a malformed escape, or escapes that
//!   do not decode to valid UTF-8 (overlong forms such as `%C0%AF`).
//!
//! Host: lower case, the port dropped, trailing dots removed (`S1.Test.:80` →
//! `s1.test`); a host with characters no DNS name or IP literal has is refused.
//!
//! A raw `;` (path parameters) is refused too: origins such as Tomcat strip `;...`
//! from each segment, so `/public/..;/private/a` would be `/private/a` to them. An
//! encoded `%3B` is data to every origin and is kept.

use std::fmt;

/// Why a request target was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub &'static str);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// The normalised form of an origin-form path. Idempotent: a normalised path
/// normalises to itself.
pub fn path(raw: &str) -> Result<String, Refused> {
    let bytes = raw.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(Refused("the request target must be an absolute path"));
    }
    // Pass 1: escapes. `text` is the path with unreserved escapes decoded and the rest
    // in canonical form; `decoded` is every byte decoded, to check it is UTF-8.
    let mut text = String::with_capacity(raw.len());
    let mut decoded = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let (Some(h), Some(l)) = (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err(Refused("malformed percent-escape in the path"));
                };
                let v = h * 16 + l;
                match v {
                    b'/' | b'\\' => return Err(Refused("encoded slash in the path")),
                    0..=0x1f | 0x7f => {
                        return Err(Refused("encoded control character in the path"));
                    }
                    _ if unreserved(v) => text.push(v as char),
                    _ => {
                        text.push('%');
                        text.push(HEX[(v >> 4) as usize] as char);
                        text.push(HEX[(v & 15) as usize] as char);
                    }
                }
                decoded.push(v);
                i += 3;
            }
            b'\\' => return Err(Refused("backslash in the path")),
            // Path parameters: some origins (Tomcat, Jetty) strip `;...` from each
            // segment, so `/private;x/a` and `/public/..;/private/a` would be
            // `/private/a` to them. Refused rather than guessed at.
            b';' => return Err(Refused("path parameters (`;`) are not accepted")),
            0..=0x20 | 0x7f => return Err(Refused("control character in the path")),
            _ => {
                // Raw non-ASCII bytes: kept, but must be UTF-8 too.
                text.push(b as char);
                decoded.push(b);
                i += 1;
            }
        }
    }
    if std::str::from_utf8(&decoded).is_err() {
        return Err(Refused("the path does not decode to valid UTF-8"));
    }
    // Raw bytes ≥ 0x80 were pushed as Latin-1 chars above; rebuild them as bytes.
    let text = if raw.is_ascii() {
        text
    } else {
        let b: Vec<u8> = text.chars().map(|c| c as u32 as u8).collect();
        String::from_utf8(b).map_err(|_| Refused("the path is not valid UTF-8"))?
    };
    // Pass 2: segments.
    let mut out: Vec<&str> = Vec::new();
    let mut trailing = false;
    for seg in text.split('/').skip(1) {
        trailing = false;
        match seg {
            "" => trailing = true,
            "." => trailing = true,
            ".." => {
                out.pop();
                trailing = true;
            }
            s => out.push(s),
        }
    }
    let mut p = String::with_capacity(text.len());
    for s in &out {
        p.push('/');
        p.push_str(s);
    }
    if trailing || out.is_empty() {
        p.push('/');
    }
    Ok(p)
}

/// Split an authority into host and port text (the port without its `:`, empty
/// when absent), refusing userinfo and a malformed port or IPv6 literal.
fn split_authority(authority: &str) -> Result<(&str, &str), Refused> {
    if authority.contains('@') {
        return Err(Refused("userinfo in the authority"));
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let Some((h, after)) = rest.split_once(']') else {
            return Err(Refused("unterminated IPv6 literal in the authority"));
        };
        match after.strip_prefix(':') {
            Some(p) => (h, p),
            None if after.is_empty() => (h, ""),
            None => return Err(Refused("malformed authority")),
        }
    } else {
        authority.rsplit_once(':').unwrap_or((authority, ""))
    };
    if !port.is_empty()
        && (!port.bytes().all(|b| b.is_ascii_digit()) || port.parse::<u16>().is_err())
    {
        return Err(Refused("malformed port in the authority"));
    }
    Ok((host, port))
}

/// The longest host name accepted (RFC 1035: 253 characters without the final dot).
pub const MAX_HOST: usize = 253;

/// The normalised host of an authority (`host[:port]`, `[v6]:port`): lower case, no
/// port, no trailing dot, IPv6 literals in their canonical text. Empty input stays
/// empty (no authority); a non-empty authority with an empty host is refused.
pub fn host(authority: &str) -> Result<String, Refused> {
    let (host, _) = split_authority(authority)?;
    if authority.starts_with('[') {
        let ip: std::net::Ipv6Addr = host
            .parse()
            .map_err(|_| Refused("malformed IPv6 literal in the authority"))?;
        return Ok(format!("[{ip}]"));
    }
    let host = host.trim_end_matches('.');
    if host.is_empty() && !authority.is_empty() {
        return Err(Refused("empty host in the authority"));
    }
    // A DNS name has at most 253 characters (RFC 1035); longer is an attack on
    // whatever reads the host (routing looks up each of its suffixes).
    if host.len() > MAX_HOST {
        return Err(Refused("the host is longer than any host name"));
    }
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
    {
        return Err(Refused("the host has characters no host name has"));
    }
    Ok(host.to_ascii_lowercase())
}

/// The authority to forward: the normalised host with the port the client gave.
pub fn authority(authority: &str) -> Result<String, Refused> {
    host_and_authority(authority).map(|(_, a)| a)
}

/// [`host`] and [`authority`] of one authority, read once.
pub fn host_and_authority(authority: &str) -> Result<(String, String), Refused> {
    let h = host(authority)?;
    let (_, port) = split_authority(authority)?;
    // As a number: `0080` is `80`.
    let a = match port.parse::<u16>() {
        Ok(p) => format!("{h}:{p}"),
        Err(_) => h.clone(),
    };
    Ok((h, a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_longer_than_any_host_name_are_refused() {
        let longest = format!("{}.test", "a.".repeat(124));
        assert_eq!(longest.len(), MAX_HOST);
        assert!(host(&longest).is_ok());
        assert!(host(&format!("a{longest}")).is_err());
        assert!(host(&"a.".repeat(100_000)).is_err());
    }

    #[test]
    fn paths() {
        let ok = [
            ("/", "/"),
            ("/a/b", "/a/b"),
            ("/a/b/", "/a/b/"),
            ("//private/v.mp4", "/private/v.mp4"),
            ("/./private/v.mp4", "/private/v.mp4"),
            ("/public/../private/v.mp4", "/private/v.mp4"),
            ("/%70rivate/v.mp4", "/private/v.mp4"),
            ("/%2e%2E/private/v.mp4", "/private/v.mp4"),
            ("/a/%2e%2e/%2E/private/", "/private/"),
            ("/../../etc/passwd", "/etc/passwd"),
            ("/a/..", "/"),
            ("/a/.", "/a/"),
            ("/a%3bb/%c3%a9", "/a%3Bb/%C3%A9"),
            ("/%7euser", "/~user"),
        ];
        for (raw, want) in ok {
            let got = path(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(got, want, "{raw}");
            assert_eq!(path(&got).as_deref(), Ok(want), "idempotent: {raw}");
        }
        for raw in [
            "/private%2Fv.mp4",
            "/private%2fv.mp4",
            "/private%5Cv.mp4",
            "/private\\v.mp4",
            "/private;x/v.mp4",
            "/public/..;/private/v.mp4",
            "/a%00b",
            "/a%0a",
            "/a%",
            "/a%zz",
            "/%C0%AF",
            "/%E0%80%AF",
            "/%ff",
            "*",
            "",
        ] {
            assert!(path(raw).is_err(), "{raw} should be refused");
        }
    }

    #[test]
    fn hosts() {
        assert_eq!(host("S1.Test.:8080").as_deref(), Ok("s1.test"));
        assert_eq!(host("s1.test.").as_deref(), Ok("s1.test"));
        assert_eq!(host("[::1]:80").as_deref(), Ok("[::1]"));
        assert_eq!(host("").as_deref(), Ok(""));
        assert!(host("user@s1.test").is_err());
        assert!(host("s1.test:8x").is_err());
        assert!(host("s1%2etest").is_err());
        assert_eq!(authority("S1.TEST.:8080").as_deref(), Ok("s1.test:8080"));
        assert_eq!(authority("S1.TEST.").as_deref(), Ok("s1.test"));
        assert_eq!(host("[0:0::1]:80").as_deref(), Ok("[::1]"));
        assert_eq!(authority("[0:0::1]:80").as_deref(), Ok("[::1]:80"));
        assert_eq!(authority("s1.test:0080").as_deref(), Ok("s1.test:80"));
        for bad in [
            "[::1]:x",
            "[::1]:+1",
            "s1.test:+80",
            "s1.test:-1",
            "[::1]x",
            "s1.test:99999999999",
            "s1.test:70000",
            ".",
            ":80",
            "..:80",
            "[::1",
            "[zz]",
        ] {
            assert!(host(bad).is_err(), "{bad} should be refused");
        }
    }
}
