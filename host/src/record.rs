//! Sampled recording of production traffic: request heads plus the decisions the
//! node took, written by a background thread to rotating, size-capped JSONL files
//! that `outpost replay` reads back.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};

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
    seen: AtomicU64,
    counts: RecorderFamilies,
    tx: SyncSender<Entry>,
}

impl Recorder {
    /// Start a recorder writing to `dir` (created if missing).
    pub fn start(
        dir: PathBuf,
        sample: f64,
        max_file_bytes: u64,
        max_total_bytes: u64,
        counts: RecorderFamilies,
    ) -> std::io::Result<Recorder> {
        std::fs::create_dir_all(&dir)?;
        let mut writer = RotatingWriter::new(&dir, "outpost", max_file_bytes, max_total_bytes)?;
        let (tx, rx) = sync_channel::<Entry>(QUEUE);
        std::thread::Builder::new()
            .name("outpost-recorder".into())
            .spawn(move || {
                use std::sync::mpsc::RecvTimeoutError;
                loop {
                    match rx.recv_timeout(std::time::Duration::from_millis(100)) {
                        Ok(e) => {
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
        match self.tx.try_send(entry) {
            Ok(()) => self.counts.recorded.inc(),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => self.counts.dropped.inc(),
        };
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
