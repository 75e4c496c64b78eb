//! The access log: one JSON line per request, written when its response has gone
//! (so bytes and duration are the client's), to standard output or a file.
//!
//! Requests hand their line to a writer thread through a bounded queue and never
//! wait on the disk: when the queue is full the line is dropped and counted
//! (`outpost_access_log_dropped`). The thread appends whole lines, in batches of
//! one `write` each, so two nodes appending to one file across a reload never
//! interleave inside a line. A reload (SIGHUP) opens the file anew: logrotate
//! can move it away first. Or the node rotates it itself at `max_file_mib`
//! (`path` → `path.1` → `path.2` ..., `keep_files` kept), and logs only a
//! `sample` of requests (every n-th, for a share of 1/n).
//!
//! Fields: `time` (RFC 3339, UTC, ms), `id` (the request id guests saw),
//! `client` (after trusted proxies), `method`, `scheme`, `host`, `path`, `query`,
//! `proto`, `status`, `bytes` (body bytes sent), `duration_ms` (to the last byte),
//! `route`, `origin`, `upstream_ms` (the origin's latency at its socket), `class`,
//! `guests` (each guest's action), `cache`, `answered_by`, `reason`,
//! `user_agent`, `referer`; a field with no value is left out.

use std::io::Write;
use std::sync::mpsc::{RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, SystemTime};

use http::request::Parts;
use serde::Serialize;

use crate::decision::Decision;
use crate::metrics::Counter;

/// Lines waiting for the writer.
const QUEUE: usize = 16 * 1024;

/// A batch is written once it holds this much.
const BATCH_BYTES: usize = 64 * 1024;

/// An open access log.
pub struct AccessLog {
    tx: SyncSender<Vec<u8>>,
    dropped: Counter,
    /// The share of requests logged.
    sample: f64,
    seen: std::sync::atomic::AtomicU64,
}

/// Where the lines go, and when a file is rotated.
pub struct Target {
    /// `-` (standard output) or a file path.
    pub path: String,
    /// Rotate at this size (0: never).
    pub max_bytes: u64,
    /// Rotated files kept.
    pub keep: u32,
    /// The share of requests logged.
    pub sample: f64,
}

impl AccessLog {
    /// Open `target` (`-`: standard output; else a file, created or appended to)
    /// and start its writer.
    pub fn open(target: Target, dropped: Counter) -> std::io::Result<AccessLog> {
        let out = Out::open(&target)?;
        let (tx, rx) = sync_channel::<Vec<u8>>(QUEUE);
        std::thread::Builder::new()
            .name("outpost-access-log".into())
            .spawn(move || write_lines(out, &rx))?;
        Ok(AccessLog {
            tx,
            dropped,
            sample: target.sample.clamp(0.0, 1.0),
            seen: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Whether this request is logged: the n-th request is when the running
    /// count of logged ones, `floor(n × sample)`, goes up (exactly the share, the
    /// first request always).
    pub fn sample(&self) -> bool {
        if self.sample >= 1.0 {
            return true;
        }
        let n = self.seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed) as f64;
        ((n + 1.0) * self.sample).ceil() > (n * self.sample).ceil()
    }

    /// Log one finished request.
    pub fn log(&self, head: &Started, d: &Decision, sent: u64, took: Duration) {
        let line = Line {
            time: rfc3339(head.at),
            id: d.aside.request_id.as_deref(),
            client: d.aside.client.as_deref().unwrap_or(&head.peer),
            method: &head.method,
            scheme: head.scheme,
            host: &head.host,
            path: &head.path,
            query: head.query.as_deref(),
            proto: head.proto,
            status: d.status,
            bytes: sent,
            duration_ms: millis(took.as_nanos()),
            route: d.route.as_deref(),
            origin: d.origin.as_deref(),
            upstream_ms: d.aside.upstream_ns.map(|n| millis(u128::from(n))),
            class: d.class.as_deref(),
            guests: &d.guests,
            cache: d.cache.as_deref(),
            answered_by: d.answered_by.to_string(),
            reason: d.reason.as_deref(),
            user_agent: head.user_agent.as_deref(),
            referer: head.referer.as_deref(),
        };
        let Ok(mut bytes) = serde_json::to_vec(&line) else {
            return;
        };
        bytes.push(b'\n');
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.tx.try_send(bytes)
        {
            self.dropped.inc();
        }
    }
}

/// The log's output: standard output, or a file rotated by size.
enum Out {
    Stdout(std::io::Stdout),
    File {
        file: std::fs::File,
        path: std::path::PathBuf,
        written: u64,
        max_bytes: u64,
        keep: u32,
    },
}

impl Out {
    fn open(t: &Target) -> std::io::Result<Out> {
        if t.path == "-" {
            return Ok(Out::Stdout(std::io::stdout()));
        }
        let path = std::path::PathBuf::from(&t.path);
        let file = append(&path)?;
        let written = file.metadata().map_or(0, |m| m.len());
        Ok(Out::File {
            file,
            path,
            written,
            max_bytes: t.max_bytes,
            keep: t.keep,
        })
    }

    /// Write one batch of whole lines; rotate first if it would pass the size.
    fn write_batch(&mut self, batch: &[u8]) -> std::io::Result<()> {
        match self {
            Out::Stdout(s) => {
                s.write_all(batch)?;
                s.flush()
            }
            Out::File {
                file,
                path,
                written,
                max_bytes,
                keep,
            } => {
                if *max_bytes > 0 && *written > 0 && *written + batch.len() as u64 > *max_bytes {
                    // Reopened and counted from zero whatever the rotation did: a
                    // failed rename must not make every later batch rotate again.
                    let rotated = rotate(path, *keep);
                    *file = append(path)?;
                    *written = file.metadata().map_or(0, |m| m.len());
                    rotated?;
                }
                file.write_all(batch)?;
                *written += batch.len() as u64;
                Ok(())
            }
        }
    }
}

fn append(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

/// `path.(keep-1)` → `path.keep` ... `path` → `path.1`; the oldest is dropped.
/// When `path` is gone (moved away by someone else), nothing is shifted: the
/// caller reopens it.
fn rotate(path: &std::path::Path, keep: u32) -> std::io::Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let numbered = |n: u32| {
        let mut p = path.as_os_str().to_owned();
        p.push(format!(".{n}"));
        std::path::PathBuf::from(p)
    };
    if keep == 0 {
        return std::fs::remove_file(path);
    }
    let _ = std::fs::remove_file(numbered(keep));
    for n in (1..keep).rev() {
        let _ = std::fs::rename(numbered(n), numbered(n + 1));
    }
    std::fs::rename(path, numbered(1))
}

/// The writer thread: batches lines, writes each batch in one call, flushes when
/// the queue runs dry; ends when the log is dropped.
fn write_lines(mut out: Out, rx: &std::sync::mpsc::Receiver<Vec<u8>>) {
    let mut batch = Vec::with_capacity(BATCH_BYTES);
    let mut warned = false;
    loop {
        let next = rx.recv_timeout(Duration::from_millis(200));
        let done = matches!(next, Err(RecvTimeoutError::Disconnected));
        if let Ok(line) = next {
            batch.extend_from_slice(&line);
            while batch.len() < BATCH_BYTES
                && let Ok(more) = rx.try_recv()
            {
                batch.extend_from_slice(&more);
            }
        }
        if !batch.is_empty() {
            if let Err(e) = out.write_batch(&batch) {
                if !warned {
                    tracing::warn!("access log: cannot write: {e}");
                    warned = true;
                }
            } else {
                warned = false;
            }
            batch.clear();
        }
        if done {
            return;
        }
    }
}

/// What the access log needs of a request, taken as it arrives.
pub struct Started {
    at: SystemTime,
    peer: String,
    method: String,
    scheme: &'static str,
    host: String,
    path: String,
    query: Option<String>,
    proto: &'static str,
    user_agent: Option<String>,
    referer: Option<String>,
}

impl Started {
    /// The request's head, from `peer` (over TLS or not).
    pub fn of(parts: &Parts, peer: std::net::SocketAddr, tls: bool) -> Started {
        let header = |name: http::header::HeaderName| {
            parts
                .headers
                .get(name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        Started {
            at: SystemTime::now(),
            peer: peer.ip().to_string(),
            method: parts.method.as_str().to_string(),
            scheme: if tls { "https" } else { "http" },
            host: parts
                .uri
                .authority()
                .map(|a| a.as_str().to_string())
                .or_else(|| header(http::header::HOST))
                .unwrap_or_default(),
            path: parts.uri.path().to_string(),
            query: parts.uri.query().map(str::to_string),
            proto: match parts.version {
                http::Version::HTTP_09 => "HTTP/0.9",
                http::Version::HTTP_10 => "HTTP/1.0",
                http::Version::HTTP_2 => "HTTP/2",
                http::Version::HTTP_3 => "HTTP/3",
                _ => "HTTP/1.1",
            },
            user_agent: header(http::header::USER_AGENT),
            referer: header(http::header::REFERER),
        }
    }
}

/// One line, in field order.
#[derive(Serialize)]
struct Line<'a> {
    time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    client: &'a str,
    method: &'a str,
    scheme: &'a str,
    host: &'a str,
    path: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    query: Option<&'a str>,
    proto: &'a str,
    status: u16,
    bytes: u64,
    duration_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    route: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    origin: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    class: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    guests: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    cache: Option<&'a str>,
    #[serde(skip_serializing_if = "String::is_empty")]
    answered_by: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_agent: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    referer: Option<&'a str>,
}

/// Nanoseconds as milliseconds with three decimals.
fn millis(ns: u128) -> f64 {
    (ns / 1_000) as f64 / 1_000.0
}

/// `t` as RFC 3339 in UTC with milliseconds: `2026-12-03T12:00:00.123Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_rotates_at_its_size_keeping_whole_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("access.log");
        let mut out = Out::open(&Target {
            path: path.display().to_string(),
            max_bytes: 100,
            keep: 2,
            sample: 1.0,
        })
        .expect("open");
        let line = [b'x'; 39].iter().chain(b"\n").copied().collect::<Vec<u8>>();
        for _ in 0..10 {
            out.write_batch(&line).expect("write");
        }
        let read = |p: &std::path::Path| std::fs::read(p).unwrap_or_default();
        let numbered = |n: u32| dir.path().join(format!("access.log.{n}"));
        // 40-byte lines, 100 bytes a file: two lines each, whole.
        assert_eq!(read(&path).len(), 80);
        assert_eq!(read(&numbered(1)).len(), 80);
        assert_eq!(read(&numbered(2)).len(), 80);
        assert!(!numbered(3).exists(), "keep = 2");
        // The file moved away by someone else: nothing rotated is lost, and the
        // log goes on in a new file.
        std::fs::remove_file(&path).expect("remove");
        for _ in 0..3 {
            out.write_batch(&line).expect("write");
        }
        assert_eq!(read(&numbered(1)).len(), 80, "rotated files are kept");
        assert_eq!(read(&numbered(2)).len(), 80);
        assert!(!read(&path).is_empty());
    }

    #[test]
    fn a_sample_logs_exactly_its_share() {
        for share in [0.25, 0.6, 0.7, 0.75, 0.4, 0.01] {
            let log = AccessLog {
                tx: sync_channel(1).0,
                dropped: Counter::default(),
                sample: share,
                seen: std::sync::atomic::AtomicU64::new(0),
            };
            let logged = (0..1000).filter(|_| log.sample()).count();
            assert_eq!(logged, (1000.0 * share) as usize, "{share}");
        }
    }

    #[test]
    fn times_are_rfc3339_utc() {
        let at = |s: u64, ms: u64| {
            rfc3339(SystemTime::UNIX_EPOCH + Duration::from_millis(s * 1000 + ms))
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        // `date -u -d @951782400` → 2000-02-29 (a leap day of a century year).
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(at(1_796_300_000, 999), "2026-12-03T12:13:20.999Z");
        assert_eq!(at(4_102_444_799, 0), "2099-12-31T23:59:59.000Z");
    }
}
