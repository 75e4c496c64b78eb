//! HLS multivariant playlists (RFC 8216 / 8216bis): find the variants and drop
//! some, keeping every other byte.

use crate::select::{Caps, Variant, parse_decimal, parse_frame_rate, select, split_codecs};

const STREAM_INF: &[u8] = b"#EXT-X-STREAM-INF:";

/// The outcome of filtering a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filtered {
    /// The new manifest.
    pub body: Vec<u8>,
    /// Variants kept (including those that could not be judged).
    pub kept: usize,
    /// Variants dropped.
    pub dropped: usize,
}

/// Is `body` an HLS playlist (`#EXTM3U` first, a UTF-8 BOM allowed, valid UTF-8)?
pub fn is_playlist(body: &[u8]) -> bool {
    let b = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    b.starts_with(b"#EXTM3U") && std::str::from_utf8(body).is_ok()
}

/// A line without its terminator (`\n` or `\r\n`).
pub fn content_of(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn is_uri_line(line: &[u8]) -> bool {
    let c = content_of(line);
    !c.iter().all(u8::is_ascii_whitespace) && !c.starts_with(b"#")
}

/// One variant: the line index of its `EXT-X-STREAM-INF` tag and of its URI.
#[derive(Debug, Clone, PartialEq)]
pub struct VariantLines {
    /// Index of the tag line.
    pub tag: usize,
    /// Index of the URI line.
    pub uri: usize,
    /// What the tag says.
    pub variant: Variant,
}

/// The variants of a playlist split into lines (`split_inclusive('\n')`).
/// A `STREAM-INF` tag followed by another `STREAM-INF` before any URI line has
/// no URI and is not a variant (it is left alone).
pub fn variants(lines: &[&[u8]]) -> Vec<VariantLines> {
    let mut out = Vec::new();
    let mut open: Option<usize> = None;
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with(STREAM_INF) {
            open = Some(i);
        } else if is_uri_line(line)
            && let Some(tag) = open.take()
        {
            let attrs = lines
                .get(tag)
                .map(|l| content_of(l))
                .and_then(|l| l.get(STREAM_INF.len()..))
                .unwrap_or_default();
            out.push(VariantLines {
                tag,
                uri: i,
                variant: parse_variant(attrs),
            });
        }
    }
    out
}

/// Read the attributes the filter uses from a `STREAM-INF` attribute list.
pub fn parse_variant(attrs: &[u8]) -> Variant {
    let text = |name: &[u8]| attribute(attrs, name).and_then(|v| std::str::from_utf8(v).ok());
    let (width, height) = text(b"RESOLUTION")
        .and_then(|r| r.split_once(['x', 'X']))
        .map_or((None, None), |(w, h)| (parse_decimal(w), parse_decimal(h)));
    Variant {
        bandwidth: text(b"BANDWIDTH").and_then(parse_bandwidth),
        average_bandwidth: text(b"AVERAGE-BANDWIDTH").and_then(parse_bandwidth),
        width,
        height,
        frame_rate: text(b"FRAME-RATE").and_then(parse_frame_rate),
        codecs: text(b"CODECS")
            .map(|c| split_codecs(c.trim_matches('"')))
            .unwrap_or_default(),
    }
}

fn parse_bandwidth(s: &str) -> Option<u64> {
    if s.len() > 20 {
        return None;
    }
    parse_decimal(s)
}

/// Filter the variants of a multivariant playlist by `caps`. `None` when `body`
/// has no variant (a media playlist) or is not UTF-8.
pub fn filter(body: &[u8], caps: &Caps, use_average: bool) -> Option<Filtered> {
    std::str::from_utf8(body).ok()?;
    let lines: Vec<&[u8]> = body.split_inclusive(|&b| b == b'\n').collect();
    let found = variants(&lines);
    if found.is_empty() {
        return None;
    }
    let list: Vec<Variant> = found.iter().map(|v| v.variant.clone()).collect();
    let keep = select(&list, caps, use_average);
    let mut drop = vec![false; lines.len()];
    let mut dropped = 0;
    for (v, k) in found.iter().zip(&keep) {
        if !k {
            for i in [v.tag, v.uri] {
                if let Some(d) = drop.get_mut(i) {
                    *d = true;
                }
            }
            dropped += 1;
        }
    }
    let mut out = Vec::with_capacity(body.len());
    for (line, gone) in lines.iter().zip(&drop) {
        if !gone {
            out.extend_from_slice(line);
        }
    }
    Some(Filtered {
        body: out,
        kept: found.len() - dropped,
        dropped,
    })
}

/// The `BANDWIDTH` of an attribute list, when it is a valid decimal-integer.
pub fn bandwidth(attrs: &[u8]) -> Option<u64> {
    parse_variant(attrs).bandwidth
}

/// The raw value of attribute `name` in an HLS attribute list (RFC 8216 §4.2):
/// `NAME=VALUE` pairs separated by commas, where a quoted-string value may
/// itself contain commas. Quotes are kept in the returned value.
pub fn attribute<'a>(attrs: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let mut rest = attrs;
    loop {
        let eq = rest.iter().position(|&b| b == b'=' || b == b',')?;
        if rest.get(eq) == Some(&b',') {
            // A malformed piece without `=`: skip it.
            rest = rest.get(eq + 1..)?;
            continue;
        }
        let key = rest.get(..eq)?.trim_ascii();
        let after = rest.get(eq + 1..)?;
        let (value, next) = if after.first() == Some(&b'"') {
            match after.iter().skip(1).position(|&b| b == b'"') {
                Some(close) => after.split_at(close + 2),
                None => (after, &after[after.len()..]),
            }
        } else {
            match after.iter().position(|&b| b == b',') {
                Some(comma) => after.split_at(comma),
                None => (after, &after[after.len()..]),
            }
        };
        if key == name {
            return Some(value.trim_ascii());
        }
        let comma = next.iter().position(|&b| b == b',')?;
        rest = next.get(comma + 1..)?;
    }
}
