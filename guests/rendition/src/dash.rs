//! DASH MPDs: filter the video `Representation`s of each `AdaptationSet` by a
//! text-level scan. The document is never re-serialized: a dropped
//! Representation's bytes (and, when it sits alone on its lines, its
//! indentation and line break) are cut out; every other byte stays.

use crate::hls::Filtered;
use crate::select::{Caps, Variant, parse_decimal, parse_frame_rate, select, split_codecs};

/// Is `body` an MPD (valid UTF-8 with an `<MPD` element)?
pub fn is_mpd(body: &[u8]) -> bool {
    std::str::from_utf8(body).is_ok_and(|s| tags(s).iter().any(|t| t.name == "MPD"))
}

/// A cheap sniff: does the start of `body` mention `<MPD`?
pub fn looks_like_mpd(body: &[u8]) -> bool {
    let head = body.get(..body.len().min(4096)).unwrap_or(body);
    head.windows(4).any(|w| w == b"<MPD")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Open,
    Close,
    Empty,
}

/// One tag: its local name, byte range and raw attribute text.
#[derive(Debug, Clone, Copy)]
struct Tag<'a> {
    name: &'a str,
    kind: Kind,
    start: usize,
    end: usize,
    attrs: &'a str,
}

fn find(doc: &str, from: usize, pat: &str) -> Option<usize> {
    doc.get(from..)?.find(pat).map(|p| p + from)
}

/// Every element tag of `doc`, skipping comments, CDATA, processing
/// instructions and declarations. Stops at the first unterminated construct.
fn tags(doc: &str) -> Vec<Tag<'_>> {
    let bytes = doc.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(lt) = find(doc, i, "<") {
        let rest = doc.get(lt..).unwrap_or_default();
        let skip_to = |close: &str, from: usize| find(doc, from, close).map(|p| p + close.len());
        let next = if rest.starts_with("<!--") {
            skip_to("-->", lt + 4)
        } else if rest.starts_with("<![CDATA[") {
            skip_to("]]>", lt + 9)
        } else if rest.starts_with("<?") {
            skip_to("?>", lt + 2)
        } else if rest.starts_with("<!") {
            skip_to(">", lt + 2)
        } else {
            let close = rest.starts_with("</");
            let name_start = lt + if close { 2 } else { 1 };
            let mut j = name_start;
            while j < bytes.len() && !matches!(bytes[j], b' ' | b'\t' | b'\r' | b'\n' | b'/' | b'>')
            {
                j += 1;
            }
            let name_end = j;
            // Find the unquoted `>`.
            let mut quote: Option<u8> = None;
            let mut gt = None;
            while j < bytes.len() {
                let b = bytes[j];
                match quote {
                    Some(q) if b == q => quote = None,
                    Some(_) => {}
                    None if b == b'"' || b == b'\'' => quote = Some(b),
                    None if b == b'>' => {
                        gt = Some(j);
                        break;
                    }
                    None if b == b'<' => break,
                    None => {}
                }
                j += 1;
            }
            match gt {
                Some(gt) => {
                    let qname = doc.get(name_start..name_end).unwrap_or_default();
                    let name = qname.rsplit(':').next().unwrap_or(qname);
                    let empty = !close && gt > name_end && bytes.get(gt - 1) == Some(&b'/');
                    let attrs_end = if empty { gt - 1 } else { gt };
                    if !name.is_empty() {
                        out.push(Tag {
                            name,
                            kind: if close {
                                Kind::Close
                            } else if empty {
                                Kind::Empty
                            } else {
                                Kind::Open
                            },
                            start: lt,
                            end: gt + 1,
                            attrs: doc.get(name_end..attrs_end).unwrap_or_default(),
                        });
                    }
                    Some(gt + 1)
                }
                // A `<` inside a tag: not a tag, move on.
                None if j < bytes.len() => Some(j),
                None => None,
            }
        };
        match next {
            Some(n) => i = n,
            None => break,
        }
    }
    out
}

/// The value of attribute `name` (exact, case-sensitive) in a tag's attribute
/// text. Character references are not decoded (the attributes read here never
/// need them).
fn attr<'a>(attrs: &'a str, name: &str) -> Option<&'a str> {
    let mut rest = attrs;
    loop {
        rest = rest.trim_start();
        let eq = rest.find('=')?;
        let key = rest.get(..eq)?.trim();
        let after = rest.get(eq + 1..)?.trim_start();
        let q = after.chars().next()?;
        if q != '"' && q != '\'' {
            return None;
        }
        let body = after.get(1..)?;
        let close = body.find(q)?;
        let value = body.get(..close)?;
        if key == name {
            return Some(value);
        }
        rest = body.get(close + 1..)?;
    }
}

/// What an `AdaptationSet` passes down to its Representations.
#[derive(Debug, Default)]
struct SetCtx {
    /// `Some(true)` video, `Some(false)` another type, `None` unknown.
    video: Option<bool>,
    width: Option<u64>,
    height: Option<u64>,
    frame_rate: Option<f64>,
    codecs: Vec<String>,
    reps: Vec<Rep>,
}

#[derive(Debug)]
struct Rep {
    start: usize,
    end: usize,
    variant: Variant,
    looks_video: bool,
}

fn media_kind(attrs: &str) -> Option<bool> {
    let content = attr(attrs, "contentType").map(str::trim);
    let mime = attr(attrs, "mimeType").map(str::trim);
    match (content, mime) {
        (Some(c), _) if !c.is_empty() => Some(c.eq_ignore_ascii_case("video")),
        (_, Some(m)) if !m.is_empty() => Some(m.to_ascii_lowercase().starts_with("video/")),
        _ => None,
    }
}

impl SetCtx {
    fn open(attrs: &str) -> Self {
        Self {
            video: media_kind(attrs),
            width: attr(attrs, "width").and_then(parse_decimal),
            height: attr(attrs, "height").and_then(parse_decimal),
            frame_rate: attr(attrs, "frameRate").and_then(parse_frame_rate),
            codecs: attr(attrs, "codecs").map(split_codecs).unwrap_or_default(),
            reps: Vec::new(),
        }
    }

    fn rep(&self, attrs: &str, start: usize) -> Rep {
        let width = attr(attrs, "width").and_then(parse_decimal);
        let height = attr(attrs, "height").and_then(parse_decimal);
        let variant = Variant {
            bandwidth: attr(attrs, "bandwidth").and_then(parse_decimal),
            average_bandwidth: None,
            width: width.or(self.width),
            height: height.or(self.height),
            frame_rate: attr(attrs, "frameRate")
                .and_then(parse_frame_rate)
                .or(self.frame_rate),
            codecs: attr(attrs, "codecs")
                .map(split_codecs)
                .unwrap_or_else(|| self.codecs.clone()),
        };
        let looks_video = media_kind(attrs) == Some(true)
            || (media_kind(attrs).is_none() && (width.is_some() || height.is_some()));
        Rep {
            start,
            end: start,
            variant,
            looks_video,
        }
    }

    /// The byte ranges of the Representations to drop.
    fn close(
        self,
        caps: &Caps,
        use_average: bool,
        cut: &mut Vec<(usize, usize)>,
    ) -> (usize, usize) {
        let video = match self.video {
            Some(v) => v,
            None => self.reps.iter().any(|r| r.looks_video),
        };
        if !video || self.reps.is_empty() {
            return (self.reps.len(), 0);
        }
        let list: Vec<Variant> = self.reps.iter().map(|r| r.variant.clone()).collect();
        let keep = select(&list, caps, use_average);
        let mut dropped = 0;
        for (r, k) in self.reps.iter().zip(&keep) {
            if !k {
                cut.push((r.start, r.end));
                dropped += 1;
            }
        }
        (self.reps.len() - dropped, dropped)
    }
}

/// Widen `(start, end)` to whole lines when the element is alone on them.
fn widen(doc: &[u8], start: usize, end: usize) -> (usize, usize) {
    let mut s = start;
    while s > 0 && matches!(doc.get(s - 1), Some(b' ' | b'\t')) {
        s -= 1;
    }
    let line_start = s == 0 || doc.get(s - 1) == Some(&b'\n');
    let mut e = end;
    while matches!(doc.get(e), Some(b' ' | b'\t' | b'\r')) {
        e += 1;
    }
    let line_end = doc.get(e) == Some(&b'\n');
    if line_start && line_end {
        (s, e + 1)
    } else {
        (start, end)
    }
}

/// Filter the video Representations of an MPD, per AdaptationSet. `None` when
/// the body is not UTF-8 or has no Representation in an AdaptationSet.
/// (`use_average` has no DASH counterpart: `@bandwidth` is used.)
pub fn filter(body: &[u8], caps: &Caps, use_average: bool) -> Option<Filtered> {
    let doc = std::str::from_utf8(body).ok()?;
    let mut set: Option<SetCtx> = None;
    let mut open_rep: Option<Rep> = None;
    let mut cut: Vec<(usize, usize)> = Vec::new();
    let (mut kept, mut dropped, mut seen) = (0, 0, 0);
    for t in tags(doc) {
        match (t.name, t.kind) {
            ("AdaptationSet", Kind::Open) => {
                set = Some(SetCtx::open(t.attrs));
                open_rep = None;
            }
            ("AdaptationSet", Kind::Close) => {
                if let Some(ctx) = set.take() {
                    seen += ctx.reps.len();
                    let (k, d) = ctx.close(caps, use_average, &mut cut);
                    kept += k;
                    dropped += d;
                }
                open_rep = None;
            }
            ("Representation", Kind::Empty) => {
                if let Some(ctx) = set.as_mut() {
                    let mut r = ctx.rep(t.attrs, t.start);
                    r.end = t.end;
                    ctx.reps.push(r);
                }
            }
            ("Representation", Kind::Open) => {
                open_rep = set.as_ref().map(|ctx| ctx.rep(t.attrs, t.start));
            }
            ("Representation", Kind::Close) => {
                if let (Some(mut r), Some(ctx)) = (open_rep.take(), set.as_mut()) {
                    r.end = t.end;
                    ctx.reps.push(r);
                }
            }
            _ => {}
        }
    }
    if seen == 0 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len());
    let mut at = 0;
    cut.sort_unstable();
    for (s, e) in cut {
        let (s, e) = widen(body, s, e);
        if s < at {
            continue;
        }
        out.extend_from_slice(body.get(at..s).unwrap_or_default());
        at = e;
    }
    out.extend_from_slice(body.get(at..).unwrap_or_default());
    Some(Filtered {
        body: out,
        kept,
        dropped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_tags() {
        let doc = r#"<?xml version="1.0"?><!-- <Representation id="x"/> --><MPD a='1>2'><x:Representation id="1"/><Representation id="2"></Representation><![CDATA[<Representation/>]]></MPD>"#;
        let names: Vec<(&str, Kind)> = tags(doc).iter().map(|t| (t.name, t.kind)).collect();
        assert_eq!(
            names,
            vec![
                ("MPD", Kind::Open),
                ("Representation", Kind::Empty),
                ("Representation", Kind::Open),
                ("Representation", Kind::Close),
                ("MPD", Kind::Close),
            ]
        );
        let t = tags(doc);
        assert_eq!(attr(t[0].attrs, "a"), Some("1>2"));
        assert_eq!(
            attr(r#" id="1" bandwidth = '200' "#, "bandwidth"),
            Some("200")
        );
        assert_eq!(attr(r#" id="1" "#, "bandwidth"), None);
        assert_eq!(attr(r#" broken=1 bandwidth="2""#, "bandwidth"), None);
    }

    #[test]
    fn never_panics_on_fragments() {
        let pieces = [
            "<",
            ">",
            "/",
            "\"",
            "'",
            "<!--",
            "-->",
            "<AdaptationSet mimeType=\"video/mp4\">",
            "</AdaptationSet>",
            "<Representation bandwidth=\"5\" width=\"9\"",
            "/>",
            "</Representation>",
            "<![CDATA[",
            "]]>",
            "\n",
            "<?",
            "é",
        ];
        let mut state: u64 = 7;
        for _ in 0..5000 {
            let mut doc = String::new();
            for _ in 0..12 {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                doc.push_str(pieces[(state >> 33) as usize % pieces.len()]);
            }
            let caps = Caps {
                max_bandwidth: Some(1),
                ..Caps::default()
            };
            if let Some(f) = filter(doc.as_bytes(), &caps, false) {
                assert!(f.body.len() <= doc.len());
                assert!(std::str::from_utf8(&f.body).is_ok());
            }
        }
    }
}
