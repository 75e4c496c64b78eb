//! Sampled recording of production traffic: request heads plus the decisions the
//! node took, written by a background thread to rotating, size-capped JSONL files
//! that `outpost replay` reads back.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};

use bytes::Bytes;
use http::request::Parts;
use outpost_traffic::{Entry, RotatingWriter};

use crate::decision::Decision;
use crate::metrics::{Counter, Registry};

/// Entries waiting for the writer thread at most; past it a sample is dropped
/// (and counted) rather than slowing requests.
const QUEUE: usize = 4096;

/// A node's recorder.
pub struct Recorder {
    every: u64,
    max_body: usize,
    seen: AtomicU64,
    counts: RecorderFamilies,
    tx: SyncSender<(Entry, Option<Bytes>)>,
}

impl Recorder {
    /// Start a recorder writing to `dir` (created if missing), in files named
    /// `PREFIX-NNNNNNNNNN.jsonl`.
    pub fn start(
        dir: PathBuf,
        prefix: &str,
        sample: f64,
        max_file_bytes: u64,
        max_total_bytes: u64,
        max_body: usize,
        counts: RecorderFamilies,
    ) -> std::io::Result<Recorder> {
        std::fs::create_dir_all(&dir)?;
        let mut writer = RotatingWriter::new(&dir, prefix, max_file_bytes, max_total_bytes)?;
        let (tx, rx) = sync_channel::<(Entry, Option<Bytes>)>(QUEUE);
        std::thread::Builder::new()
            .name("outpost-recorder".into())
            .spawn(move || {
                use std::sync::mpsc::RecvTimeoutError;
                // Each line's number, in the order written: unique and increasing
                // across the files of one recorder.
                let mut seq = 0u64;
                loop {
                    match rx.recv_timeout(std::time::Duration::from_millis(100)) {
                        Ok((mut e, body)) => {
                            e.seq = seq;
                            seq += 1;
                            // Compressed here, off the request path.
                            e.body = body
                                .filter(|_| max_body > 0)
                                .map(|b| kept_body(&b, max_body));
                            if let Err(err) = writer.write(&e) {
                                tracing::warn!("recording: {err}");
                            }
                        }
                        // Idle: make what was written complete on disk.
                        Err(RecvTimeoutError::Timeout) => {
                            let _ = writer.flush();
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                let _ = writer.flush();
            })?;
        let every = if sample <= 0.0 {
            0
        } else {
            (1.0 / sample).round().max(1.0) as u64
        };
        Ok(Recorder {
            every,
            max_body,
            seen: AtomicU64::new(0),
            counts,
            tx,
        })
    }

    /// Whether the next request is in the sample (every `1/sample`-th request).
    pub fn sample(&self) -> bool {
        self.every > 0
            && self
                .seen
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(self.every)
    }

    /// The entry for a request about to be served (its outcome filled in later).
    pub fn entry(parts: &Parts, peer: SocketAddr) -> Entry {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        let authority = authority_of(parts);
        Entry {
            seq: 0,
            at_us: now,
            method: parts.method.as_str().to_string(),
            scheme: "http".into(),
            authority,
            path: parts.uri.path().to_string(),
            query: parts.uri.query().unwrap_or("").to_string(),
            headers: parts
                .headers
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
                .collect(),
            client_ip: Some(peer.ip().to_string()),
            status: None,
            response_bytes: None,
            duration_us: None,
            response_headers: Vec::new(),
            decision: None,
            body: None,
            request_id: None,
        }
    }

    /// The entry for a request known by the head guests got (a shadow's record).
    pub fn entry_of_head(h: &crate::contract::types::RequestHead, peer: SocketAddr) -> Entry {
        Entry {
            seq: 0,
            at_us: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_micros() as u64)
                .unwrap_or(0),
            method: h.method.clone(),
            scheme: h.scheme.clone(),
            authority: h.authority.clone(),
            path: h.path.clone(),
            query: h.query.clone(),
            headers: h
                .headers
                .iter()
                .map(|x| {
                    (
                        x.name.clone(),
                        String::from_utf8_lossy(&x.value).into_owned(),
                    )
                })
                .collect(),
            client_ip: Some(peer.ip().to_string()),
            status: None,
            response_bytes: None,
            duration_us: None,
            response_headers: Vec::new(),
            decision: None,
            body: None,
            request_id: Some(h.id.clone()),
        }
    }

    /// Queue `entry` with its outcome: the decision, the body bytes sent to the
    /// client and the whole duration (to the body's end).
    pub fn finish(
        &self,
        mut entry: Entry,
        decision: &Decision,
        sent: u64,
        duration: std::time::Duration,
    ) {
        entry.status = Some(decision.status);
        entry.response_bytes = Some(sent);
        entry.duration_us = Some(duration.as_micros() as u64);
        entry.decision = serde_json::to_value(decision).ok();
        if decision.aside.request_id.is_some() {
            entry.request_id.clone_from(&decision.aside.request_id);
        }
        // What the response guests saw, when they ran: replay serves them the same.
        if let Some(h) = &decision.aside.seen_headers {
            entry.response_headers.clone_from(h);
        }
        // Only what will be kept is queued (a copy: a slice would hold the whole).
        let body = decision
            .aside
            .seen_body
            .as_ref()
            .filter(|_| self.max_body > 0)
            .map(|b| Bytes::copy_from_slice(&b[..b.len().min(self.max_body + 1)]));
        match self.tx.try_send((entry, body)) {
            Ok(()) => self.counts.recorded.inc(),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => self.counts.dropped.inc(),
        };
    }
}

/// The client's response headers a recording keeps (when no response guest saw
/// the origin's): what replay's model origin answers with. Framing and the edge's
/// own per-response fields are left out.
pub fn kept_headers(headers: &http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "content-length"
                    | "transfer-encoding"
                    | "content-encoding"
                    | "connection"
                    | "keep-alive"
                    | "age"
                    | "cache-status"
                    | "date"
            )
        })
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect()
}

/// `body` as a recording keeps it: at most `max` bytes, gzip, base64.
fn kept_body(body: &[u8], max: usize) -> outpost_traffic::RecordedBody {
    use base64::Engine as _;
    use std::io::Write as _;
    let kept = &body[..body.len().min(max)];
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    let zipped = gz
        .write_all(kept)
        .and_then(|()| gz.finish())
        .unwrap_or_default();
    outpost_traffic::RecordedBody {
        encoding: "gzip+base64".into(),
        data: base64::engine::general_purpose::STANDARD.encode(zipped),
        truncated: kept.len() < body.len(),
    }
}

/// The bytes of a recorded body (`text`, `base64` or `gzip+base64`), at most `cap`
/// once decoded.
pub fn body_bytes(b: &outpost_traffic::RecordedBody, cap: usize) -> Result<Bytes, String> {
    use base64::Engine as _;
    use std::io::Read as _;
    let b64 = || {
        base64::engine::general_purpose::STANDARD
            .decode(b.data.trim())
            .map_err(|e| format!("recorded body: not base64: {e}"))
    };
    match b.encoding.as_str() {
        "text" => Ok(Bytes::from(b.data.clone())),
        "base64" => b64().map(Bytes::from),
        "gzip+base64" => {
            let zipped = b64()?;
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(zipped.as_slice())
                .take(cap as u64)
                .read_to_end(&mut out)
                .map_err(|e| format!("recorded body: not gzip: {e}"))?;
            Ok(Bytes::from(out))
        }
        other => Err(format!("recorded body: unknown encoding {other:?}")),
    }
}

/// The authority a request addressed, as the client sent it: its URI's (HTTP/2,
/// absolute form), else its `Host` header; empty when it has neither. Not
/// normalised: what a recording stores.
fn authority_of(parts: &http::request::Parts) -> String {
    parts
        .uri
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| {
            parts
                .headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_default()
}

/// The recorder's counts, registered once per process.
#[derive(Debug, Clone, Default)]
pub struct RecorderFamilies {
    /// Entries written (queued to the writer).
    pub recorded: Counter,
    /// Samples dropped because the writer fell behind.
    pub dropped: Counter,
}

impl RecorderFamilies {
    /// Register the counters in `reg`.
    pub fn register(reg: &mut Registry) -> RecorderFamilies {
        let f = RecorderFamilies::default();
        reg.register(
            "outpost_recorded",
            "Requests written to the recording ([record])",
            f.recorded.clone(),
        );
        reg.register(
            "outpost_record_dropped",
            "Sampled requests not recorded because the writer fell behind",
            f.dropped.clone(),
        );
        f
    }
}
