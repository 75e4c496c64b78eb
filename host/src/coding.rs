//! Content codings (RFC 9110 §8.4): decoding an origin's compressed body for the
//! response guests that read it, and encoding the result for the client by its
//! `Accept-Encoding`. Bodies here are the ones guests read, already capped
//! (`transform_max_bytes`), so the work is done on bytes in memory; the decoded size
//! is capped as well, so a decompression bomb stops at the cap instead of allocating.

use std::io::{Read, Write};

use bytes::Bytes;

/// A content coding the node decodes and produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// `gzip` (and `x-gzip`).
    Gzip,
    /// `deflate`: zlib-wrapped DEFLATE (raw DEFLATE, which some servers send, is
    /// accepted when decoding).
    Deflate,
    /// `br`: Brotli.
    Br,
    /// `zstd`: Zstandard.
    Zstd,
}

/// What the node prefers to send when a client accepts several at the same weight:
/// the smallest output for text first.
const PREFERENCE: [Coding; 4] = [Coding::Br, Coding::Zstd, Coding::Gzip, Coding::Deflate];

impl Coding {
    /// The coding named by a `Content-Encoding` value, if it is one coding the node
    /// knows (a list of several codings, or an unknown one, is None).
    pub fn from_content_encoding(value: &[u8]) -> Option<Coding> {
        let v = std::str::from_utf8(value).ok()?.trim();
        if v.contains(',') {
            return None;
        }
        Coding::from_token(v)
    }

    fn from_token(t: &str) -> Option<Coding> {
        match t.to_ascii_lowercase().as_str() {
            "gzip" | "x-gzip" => Some(Coding::Gzip),
            "deflate" => Some(Coding::Deflate),
            "br" => Some(Coding::Br),
            "zstd" => Some(Coding::Zstd),
            _ => None,
        }
    }

    /// Its `Content-Encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
            Coding::Br => "br",
            Coding::Zstd => "zstd",
        }
    }
}

/// Why a body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// It decodes to more than the cap.
    TooLarge,
    /// It is not valid in its coding.
    Corrupt(String),
}

/// Decode `data` (in `coding`) to at most `cap` bytes.
pub fn decode(coding: Coding, data: &[u8], cap: usize) -> Result<Bytes, DecodeError> {
    let limit = cap as u64 + 1;
    let mut out = Vec::new();
    let read = match coding {
        Coding::Gzip => flate2::read::MultiGzDecoder::new(data)
            .take(limit)
            .read_to_end(&mut out),
        Coding::Deflate => {
            let zlib = flate2::read::ZlibDecoder::new(data)
                .take(limit)
                .read_to_end(&mut out);
            if zlib.is_err() {
                out.clear();
                flate2::read::DeflateDecoder::new(data)
                    .take(limit)
                    .read_to_end(&mut out)
            } else {
                zlib
            }
        }
        Coding::Br => brotli::Decompressor::new(data, 4096)
            .take(limit)
            .read_to_end(&mut out),
        Coding::Zstd => match zstd::stream::read::Decoder::new(data) {
            Ok(d) => d.take(limit).read_to_end(&mut out),
            Err(e) => Err(e),
        },
    };
    match read {
        Ok(_) if out.len() > cap => Err(DecodeError::TooLarge),
        Ok(_) => Ok(Bytes::from(out)),
        Err(e) => Err(DecodeError::Corrupt(format!(
            "{} body: {e}",
            coding.token()
        ))),
    }
}

/// The levels to compress at (`[compression]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Levels {
    /// gzip and deflate, 1..=9.
    pub gzip: u32,
    /// Brotli, 0..=11.
    pub brotli: u32,
    /// zstd, 1..=19.
    pub zstd: u32,
}

impl Default for Levels {
    /// gzip and deflate 6, Brotli 4, zstd 3: fast enough per request on text.
    fn default() -> Levels {
        Levels::from(&edge_config::Compression::default())
    }
}

impl From<&edge_config::Compression> for Levels {
    fn from(c: &edge_config::Compression) -> Levels {
        Levels {
            gzip: *c.gzip_level.get_ref(),
            brotli: *c.brotli_level.get_ref(),
            zstd: *c.zstd_level.get_ref(),
        }
    }
}

/// Bodies up to this many bytes (a playlist, a small manifest) are encoded in
/// Brotli at quality 1 at most: at 2 and above its set-up (a hash table cleared on
/// every call) costs 17-24 µs on a 1 KiB playlist at quality 4 against 4-7 µs at
/// quality 1, for about 30 bytes saved; the setting holds for larger bodies.
const SMALL_BODY: usize = 4 << 10;

/// Encode `data` in `coding` at `levels`. None if the encoder failed (writing to
/// memory does not; the caller then sends identity).
pub fn encode(coding: Coding, data: &[u8], levels: Levels) -> Option<Bytes> {
    let out = match coding {
        Coding::Gzip => {
            let level = flate2::Compression::new(levels.gzip);
            let mut e = flate2::write::GzEncoder::new(Vec::new(), level);
            e.write_all(data).and_then(|()| e.finish())
        }
        Coding::Deflate => {
            let level = flate2::Compression::new(levels.gzip);
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), level);
            e.write_all(data).and_then(|()| e.finish())
        }
        Coding::Br => {
            let mut out = Vec::new();
            let quality = if data.len() <= SMALL_BODY {
                levels.brotli.min(1)
            } else {
                levels.brotli
            };
            let params = brotli::enc::BrotliEncoderParams {
                quality: quality as i32,
                lgwin: window_log(Some(data.len() as u64)) as i32,
                size_hint: data.len(),
                ..Default::default()
            };
            brotli::BrotliCompress(&mut &data[..], &mut out, &params).map(|_| out)
        }
        // The bulk API tells zstd the size, so it sizes its window to it.
        Coding::Zstd => zstd::bulk::compress(data, levels.zstd as i32),
    };
    out.ok().map(Bytes::from)
}

/// The window (log2 bytes) for a body of `len` bytes: no larger than the body (an
/// encoder's set-up cost grows with its window: Brotli's default 4 MiB window costs
/// about a millisecond per response), 64 KiB at least, 1 MiB when the length is not
/// known.
fn window_log(len: Option<u64>) -> u32 {
    match len {
        Some(n) => (64 - n.max(1).leading_zeros()).clamp(16, 22),
        None => 20,
    }
}

/// `body` (of `len` bytes, if known) encoded in `coding` at `levels` as it streams:
/// nothing is buffered beyond the encoder's window. An error of the body ends the
/// stream with that error.
pub fn encode_stream(
    coding: Coding,
    body: crate::body::Body,
    len: Option<u64>,
    levels: Levels,
) -> crate::body::Body {
    use async_compression::Level;
    use futures_util::TryStreamExt;
    use http_body_util::BodyExt;
    let data = http_body_util::BodyDataStream::new(body).map_err(std::io::Error::other);
    let reader = tokio_util::io::StreamReader::new(data);
    let encoded: std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>> = match coding {
        Coding::Gzip => Box::pin(
            async_compression::tokio::bufread::GzipEncoder::with_quality(
                reader,
                Level::Precise(levels.gzip as i32),
            ),
        ),
        Coding::Deflate => Box::pin(
            async_compression::tokio::bufread::ZlibEncoder::with_quality(
                reader,
                Level::Precise(levels.gzip as i32),
            ),
        ),
        Coding::Br => {
            let mut params = async_compression::brotli::EncoderParams::default()
                .quality(Level::Precise(levels.brotli as i32))
                .window_size(window_log(len) as i32);
            if let Some(n) = len {
                params = params.size_hint(n as usize);
            }
            Box::pin(async_compression::tokio::bufread::BrotliEncoder::with_params(reader, params))
        }
        Coding::Zstd => Box::pin(
            async_compression::tokio::bufread::ZstdEncoder::with_quality_and_params(
                reader,
                Level::Precise(levels.zstd as i32),
                &[async_compression::zstd::CParameter::window_log(window_log(
                    len,
                ))],
            ),
        ),
    };
    let frames = tokio_util::io::ReaderStream::new(encoded)
        .map_ok(http_body::Frame::data)
        .map_err(|e| -> crate::body::BoxError { Box::new(e) });
    http_body_util::StreamBody::new(frames).boxed_unsync()
}

/// The coding to send a client whose `Accept-Encoding` is `accept` (None: the header
/// is absent), among those the node produces: the acceptable one with the highest
/// weight, ties broken by the node's preference (Brotli, zstd, gzip, deflate). None:
/// identity (the client accepts none of them, or did not say).
pub fn negotiate(accept: Option<&[u8]>) -> Option<Coding> {
    negotiate_preferring(accept, None)
}

/// [`negotiate`], with `first` (the coding the body already has) first among equals:
/// no re-encoding when the client takes it as gladly as any other.
pub fn negotiate_preferring(accept: Option<&[u8]>, first: Option<Coding>) -> Option<Coding> {
    let weight = weights(std::str::from_utf8(accept?).ok()?);
    first
        .into_iter()
        .chain(PREFERENCE)
        .map(|c| (c, weight(c)))
        .filter(|(_, q)| *q > 0.0)
        // The first of the highest weight.
        .fold(None, |best: Option<(Coding, f32)>, (c, q)| match best {
            Some((_, bq)) if bq >= q => best,
            _ => Some((c, q)),
        })
        .map(|(c, _)| c)
}

/// `Accept-Encoding` reduced to what the node and an origin act on: the codings the
/// node knows that the client accepts (a weight above zero, by name or through
/// `*`), in one fixed order, as `gzip, deflate, br, zstd` (Firefox's spelling)
/// or a subset of it. Clients that accept the same codings then share one stored
/// variant of a response that varies on `Accept-Encoding`, however their browsers
/// spell the header (Varnish normalises it the same way). None: the client accepts
/// none of them (identity only), or the header is not text.
pub fn canonical_accept(accept: &[u8]) -> Option<String> {
    let weight = weights(std::str::from_utf8(accept).ok()?);
    let kept: Vec<&str> = [Coding::Gzip, Coding::Deflate, Coding::Br, Coding::Zstd]
        .into_iter()
        .filter(|&c| weight(c) > 0.0)
        .map(Coding::token)
        .collect();
    (!kept.is_empty()).then(|| kept.join(", "))
}

/// The weight an `Accept-Encoding` value gives each coding (0: not acceptable).
fn weights(accept: &str) -> impl Fn(Coding) -> f32 {
    let mut weights: Vec<(Coding, f32)> = Vec::new();
    let mut star: Option<f32> = None;
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let token = parts.next().unwrap_or("").trim();
        if token.is_empty() {
            continue;
        }
        let mut q = 1.0f32;
        for p in parts {
            if let Some((k, v)) = p.split_once('=')
                && k.trim().eq_ignore_ascii_case("q")
            {
                q = v.trim().parse::<f32>().unwrap_or(0.0).clamp(0.0, 1.0);
            }
        }
        if token == "*" {
            star = Some(q);
        } else if let Some(c) = Coding::from_token(token) {
            weights.push((c, q));
        }
    }
    move |c: Coding| {
        weights
            .iter()
            .find(|(w, _)| *w == c)
            .map(|(_, q)| *q)
            .or(star)
            .unwrap_or(0.0)
    }
}

/// The weak form of an entity tag (`W/"…"`): the bytes changed, so a strong
/// validator no longer holds.
pub fn weaken_etag(etag: &[u8]) -> Vec<u8> {
    if etag.starts_with(b"W/") {
        etag.to_vec()
    } else {
        [b"W/".as_slice(), etag].concat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_coding_round_trips() {
        let text = "#EXTM3U\n#EXT-X-VERSION:3\n".repeat(50);
        for c in PREFERENCE {
            let enc = encode(c, text.as_bytes(), Levels::default()).expect("encodes");
            assert!(enc.len() < text.len(), "{c:?} compresses");
            assert_eq!(decode(c, &enc, 1 << 20).as_deref(), Ok(text.as_bytes()));
        }
    }

    #[test]
    fn a_bomb_stops_at_the_cap() {
        let zeros = vec![0u8; 8 << 20];
        for c in PREFERENCE {
            let enc = encode(c, &zeros, Levels::default()).expect("encodes");
            assert!(enc.len() < 64 << 10, "{c:?}: {}", enc.len());
            assert_eq!(
                decode(c, &enc, 1 << 20),
                Err(DecodeError::TooLarge),
                "{c:?}"
            );
        }
    }

    #[test]
    fn corrupt_input_is_an_error() {
        assert!(matches!(
            decode(Coding::Gzip, b"not gzip", 1024),
            Err(DecodeError::Corrupt(_))
        ));
        assert!(matches!(
            decode(Coding::Br, &[0xff; 16], 1024),
            Err(DecodeError::Corrupt(_))
        ));
    }

    #[test]
    fn raw_deflate_is_accepted_as_deflate() {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(6));
        e.write_all(b"hello hello hello").expect("write");
        let raw = e.finish().expect("finish");
        assert_eq!(
            decode(Coding::Deflate, &raw, 1024).as_deref(),
            Ok(&b"hello hello hello"[..])
        );
    }

    #[test]
    fn negotiation_honours_weights_and_preference() {
        let n = |s: &str| negotiate(Some(s.as_bytes()));
        assert_eq!(n("gzip, deflate, br"), Some(Coding::Br));
        assert_eq!(n("gzip, deflate, br, zstd"), Some(Coding::Br));
        assert_eq!(n("gzip;q=1, br;q=0.5"), Some(Coding::Gzip));
        assert_eq!(n("br;q=0, gzip"), Some(Coding::Gzip));
        assert_eq!(n("identity"), None);
        assert_eq!(n("*;q=0.1, gzip;q=0"), Some(Coding::Br));
        assert_eq!(n("*;q=0"), None);
        assert_eq!(n("GZIP"), Some(Coding::Gzip));
        assert_eq!(n(""), None);
        assert_eq!(negotiate(None), None);
        assert_eq!(n("compress, x-unknown"), None);
        let p = |s: &str| negotiate_preferring(Some(s.as_bytes()), Some(Coding::Gzip));
        assert_eq!(p("gzip, deflate, br"), Some(Coding::Gzip), "no re-encoding");
        assert_eq!(p("gzip;q=0.5, br"), Some(Coding::Br), "weights first");
        assert_eq!(p("identity"), None);
    }

    #[test]
    fn accept_encoding_spellings_of_one_set_are_one_value() {
        let canon = |a: &str| canonical_accept(a.as_bytes());
        let all = Some("gzip, deflate, br, zstd".to_string());
        assert_eq!(canon("gzip, deflate, br, zstd"), all);
        assert_eq!(canon("zstd,br , GZIP;q=0.9, deflate"), all);
        assert_eq!(canon("*"), all);
        assert_eq!(canon("gzip, deflate, br"), Some("gzip, deflate, br".into()));
        assert_eq!(canon("x-gzip"), Some("gzip".into()));
        assert_eq!(canon("*;q=0.5, br;q=0"), Some("gzip, deflate, zstd".into()));
        assert_eq!(canon("identity"), None);
        assert_eq!(canon("gzip;q=0"), None);
        assert_eq!(canon(""), None);
        assert_eq!(canonical_accept(b"gzip\xff"), None);
    }

    #[test]
    fn content_encoding_names_one_known_coding() {
        assert_eq!(Coding::from_content_encoding(b"gzip"), Some(Coding::Gzip));
        assert_eq!(Coding::from_content_encoding(b" BR "), Some(Coding::Br));
        assert_eq!(Coding::from_content_encoding(b"gzip, br"), None);
        assert_eq!(Coding::from_content_encoding(b"compress"), None);
    }

    #[test]
    fn etags_weaken_once() {
        assert_eq!(weaken_etag(b"\"abc\""), b"W/\"abc\"".to_vec());
        assert_eq!(weaken_etag(b"W/\"abc\""), b"W/\"abc\"".to_vec());
    }
}
