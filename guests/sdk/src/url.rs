//! Small URL helpers: percent-decoding, query parsing, path extensions.

/// The value of an ASCII hex digit.
pub fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decode `s` into bytes. A `%` not followed by two hex digits is kept
/// as is. When `plus_as_space`, `+` decodes to a space (form encoding).
pub fn percent_decode_bytes(s: &str, plus_as_space: bool) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%'
            && let (Some(hi), Some(lo)) = (
                b.get(i + 1).copied().and_then(hex_value),
                b.get(i + 2).copied().and_then(hex_value),
            )
        {
            out.push(hi << 4 | lo);
            i += 3;
            continue;
        }
        out.push(if plus_as_space && c == b'+' { b' ' } else { c });
        i += 1;
    }
    out
}

/// Percent-decode `s` (`+` stays `+`); invalid UTF-8 is replaced by U+FFFD.
pub fn percent_decode(s: &str) -> String {
    String::from_utf8_lossy(&percent_decode_bytes(s, false)).into_owned()
}

/// Decode one query component (`+` is a space, as browsers encode forms).
pub fn decode_query_component(s: &str) -> String {
    String::from_utf8_lossy(&percent_decode_bytes(s, true)).into_owned()
}

/// Split a query (without `?`) into raw, still-encoded `(name, value)` pairs.
/// Empty pieces (`a=1&&b=2`) are skipped; a piece without `=` has value `""`.
pub fn raw_query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
}

/// The query's `(name, value)` pairs, decoded (`+` is a space).
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    raw_query_pairs(query)
        .map(|(k, v)| (decode_query_component(k), decode_query_component(v)))
        .collect()
}

/// The extension of the last segment of `path`, without the dot, if any
/// (`/a/b.m3u8` → `m3u8`; `/a.b/c` → none; `/.hidden` → none).
pub fn extension(path: &str) -> Option<&str> {
    let last = path.rsplit('/').next().unwrap_or(path);
    match last.rfind('.') {
        Some(0) | None => None,
        Some(i) if i + 1 < last.len() => Some(&last[i + 1..]),
        Some(_) => None,
    }
}

/// Split a comma-separated list, trimming whitespace and dropping empty items.
pub fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_percent_and_plus() {
        assert_eq!(percent_decode("a%20b%2Fc"), "a b/c");
        assert_eq!(percent_decode("a+b"), "a+b");
        assert_eq!(decode_query_component("a+b%2B"), "a b+");
        assert_eq!(percent_decode("%e2%82%ac"), "€");
    }

    #[test]
    fn keeps_malformed_escapes() {
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
        assert_eq!(percent_decode("%%41"), "%A");
        assert_eq!(percent_decode("%ff"), "\u{fffd}");
    }

    #[test]
    fn parses_queries() {
        assert_eq!(
            query_pairs("a=1&b=x%20y&&c&d=e=f&q=a+b"),
            vec![
                ("a".to_string(), "1".to_string()),
                ("b".to_string(), "x y".to_string()),
                ("c".to_string(), String::new()),
                ("d".to_string(), "e=f".to_string()),
                ("q".to_string(), "a b".to_string()),
            ]
        );
        assert!(query_pairs("").is_empty());
        assert_eq!(
            raw_query_pairs("k%20=v%20").collect::<Vec<_>>(),
            vec![("k%20", "v%20")]
        );
    }

    #[test]
    fn extensions() {
        assert_eq!(extension("/live/x/index.m3u8"), Some("m3u8"));
        assert_eq!(extension("/a.b/c"), None);
        assert_eq!(extension("/.hidden"), None);
        assert_eq!(extension("/trailing."), None);
        assert_eq!(extension("/"), None);
        assert_eq!(extension("/x.tar.gz"), Some("gz"));
    }

    #[test]
    fn lists() {
        assert_eq!(split_list(" a, b ,,c "), vec!["a", "b", "c"]);
        assert!(split_list("").is_empty());
    }
}
