//! The little URL handling the readers need: split absolute URLs and request targets,
//! percent-encode what may not appear raw in a path or query.

/// Whether `b` may appear unencoded in a path or query (RFC 3986 `pchar`, `/`, `?`,
/// and `%` since input is taken as already encoded).
fn is_allowed(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
                | b'/'
                | b'?'
                | b'%'
        )
}

/// Percent-encodes bytes that may not appear raw (space, `"`, `#`, non-ASCII, …);
/// existing `%XX` escapes are kept.
pub(crate) fn encode(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len());
    for &b in raw {
        if is_allowed(b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Splits an origin-form request target (`/a/b?x=1`) into encoded path and query.
pub(crate) fn split_target(target: &[u8]) -> (String, String) {
    match target.iter().position(|&b| b == b'?') {
        Some(i) => (encode(&target[..i]), encode(&target[i + 1..])),
        None => (encode(target), String::new()),
    }
}

/// An absolute `http`/`https` URL split into its parts (fragment dropped).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Url {
    pub scheme: String,
    pub authority: String,
    pub path: String,
    pub query: String,
}

/// Parses `http://host[:port]/path?query#fragment`; user info is dropped, an empty
/// path becomes `/`.
pub(crate) fn parse_absolute(url: &str) -> Result<Url, String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!("not an absolute URL: {url:?}"));
    };
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(format!("unsupported URL scheme {scheme:?}"));
    }
    let rest = rest.split('#').next().unwrap_or_default();
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, target) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => host,
        None => authority,
    };
    if authority.is_empty() {
        return Err(format!("URL without a host: {url:?}"));
    }
    let (mut path, query) = split_target(target.as_bytes());
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    Ok(Url {
        scheme,
        authority: authority.to_ascii_lowercase(),
        path,
        query,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_urls() {
        assert_eq!(
            parse_absolute("https://User@WWW.Example.com:8443/a%20b/c d?x=1&y=é#frag"),
            Ok(Url {
                scheme: "https".into(),
                authority: "www.example.com:8443".into(),
                path: "/a%20b/c%20d".into(),
                query: "x=1&y=%C3%A9".into(),
            })
        );
        assert_eq!(
            parse_absolute("http://cnn.com"),
            Ok(Url {
                scheme: "http".into(),
                authority: "cnn.com".into(),
                path: "/".into(),
                query: String::new(),
            })
        );
        assert_eq!(
            parse_absolute("http://h?q").map(|u| (u.path, u.query)),
            Ok(("/".into(), "q".into()))
        );
        assert!(parse_absolute("data:image/png;base64,AAAA").is_err());
        assert!(parse_absolute("chrome-extension://abc/x.js").is_err());
        assert!(parse_absolute("http:///x").is_err());
    }

    #[test]
    fn targets() {
        assert_eq!(
            split_target(b"/htbin/wais.pl?earth+%2Bpictures"),
            ("/htbin/wais.pl".into(), "earth+%2Bpictures".into())
        );
        assert_eq!(
            split_target(b"/a\"b<c>#d?q?r"),
            ("/a%22b%3Cc%3E%23d".into(), "q?r".into())
        );
    }
}
