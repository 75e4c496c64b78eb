//! The console's decisions stream: requests that finished while someone watches
//! (`/console/api/events`), as JSON lines, at most [`TAIL_PER_SECOND`] a second.
//! Costs a request one atomic load while no one watches.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::broadcast;

use crate::decision::Decision;

/// Decisions passed to watchers per second at most; past it a request is not
/// tailed (a console cannot read faster, and tailing costs the request a copy).
pub const TAIL_PER_SECOND: u64 = 200;

/// The decisions stream: requests finished while a console watches, as JSON.
/// Process-wide (it outlives reloads); cloning shares it.
#[derive(Clone)]
pub struct Tail {
    tx: broadcast::Sender<Arc<str>>,
    /// Watchers now: read on every request, so an atomic (the channel's own count
    /// takes its lock).
    watchers: Arc<AtomicU64>,
    /// The current second (since the epoch of `Instant`-free wall time) and how
    /// many were passed on in it, packed: `second << 32 | count`.
    window: Arc<AtomicU64>,
}

impl Default for Tail {
    fn default() -> Tail {
        Tail {
            tx: broadcast::channel(1024).0,
            watchers: Arc::new(AtomicU64::new(0)),
            window: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl std::fmt::Debug for Tail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tail")
            .field("watchers", &self.watchers.load(Ordering::Relaxed))
            .finish()
    }
}

impl Tail {
    /// Whether the next request should be tailed: someone watches, and this
    /// second's allowance is not spent. One atomic load when no one watches.
    pub fn wants(&self) -> bool {
        if self.watchers.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let second = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            & 0xffff_ffff;
        let mut cur = self.window.load(Ordering::Relaxed);
        loop {
            let (s, n) = (cur >> 32, cur & 0xffff_ffff);
            let next = if s == second {
                if n >= TAIL_PER_SECOND {
                    return false;
                }
                cur + 1
            } else {
                (second << 32) | 1
            };
            match self
                .window
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => cur = now,
            }
        }
    }

    /// A new watcher.
    pub fn subscribe(&self) -> Watcher {
        self.watchers.fetch_add(1, Ordering::Relaxed);
        Watcher {
            rx: self.tx.subscribe(),
            watchers: self.watchers.clone(),
        }
    }

    /// Pass on a finished request.
    pub fn send(
        &self,
        started: &Tailed,
        decision: &Decision,
        sent: u64,
        took: std::time::Duration,
    ) {
        let line = serde_json::json!({
            "t": started.at_ms,
            "method": started.method,
            "path": started.path,
            "cmcd": started.cmcd,
            "cmsd": started.cmsd,
            "bytes": sent,
            "ms": took.as_secs_f64() * 1e3,
            "decision": decision,
        });
        let _ = self.tx.send(Arc::from(line.to_string()));
    }
}

/// One watcher of the tail: its decisions, counted while it lives.
pub struct Watcher {
    rx: broadcast::Receiver<Arc<str>>,
    watchers: Arc<AtomicU64>,
}

impl Watcher {
    /// The next decision (a lagging watcher is told how many it missed).
    pub async fn recv(&mut self) -> Result<Arc<str>, broadcast::error::RecvError> {
        self.rx.recv().await
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.watchers.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What the tail keeps of a request from its start (and of its response head).
#[derive(Debug, Clone)]
pub struct Tailed {
    at_ms: u64,
    method: String,
    path: String,
    cmcd: Vec<String>,
    cmsd: Vec<String>,
}

impl Tailed {
    /// The request as the client sent it, with the CMCD it carried (headers
    /// `CMCD-*` and the `CMCD=` query parameter).
    pub fn of(parts: &http::request::Parts) -> Tailed {
        let mut cmcd: Vec<String> = parts
            .headers
            .iter()
            .filter(|(k, _)| k.as_str().starts_with("cmcd-"))
            .filter_map(|(_, v)| v.to_str().ok().map(str::to_string))
            .collect();
        if let Some(q) = parts.uri.query() {
            cmcd.extend(
                q.split('&')
                    .filter_map(|p| p.strip_prefix("CMCD="))
                    .map(query_decoded),
            );
        }
        Tailed {
            at_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            method: parts.method.as_str().to_string(),
            path: parts
                .uri
                .path_and_query()
                .map_or_else(|| parts.uri.path().to_string(), |p| p.as_str().to_string()),
            cmcd,
            cmsd: Vec::new(),
        }
    }

    /// Keep the CMSD the response carries.
    pub fn response(&mut self, headers: &http::HeaderMap) {
        self.cmsd = ["cmsd-static", "cmsd-dynamic"]
            .iter()
            .flat_map(|n| headers.get_all(*n))
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect();
    }
}

/// `%XX` escapes and `+` decoded (a query parameter's value).
pub fn query_decoded(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmcd_is_taken_from_headers_and_the_query() {
        let req = http::Request::get("/v/1.ts?CMCD=br%3D800%2Cot%3Dv&x=1")
            .header("cmcd-session", "sid=\"a\"")
            .body(())
            .expect("request");
        let (parts, ()) = req.into_parts();
        let t = Tailed::of(&parts);
        assert_eq!(t.cmcd, vec!["sid=\"a\"", "br=800,ot=v"]);
        assert_eq!(t.path, "/v/1.ts?CMCD=br%3D800%2Cot%3Dv&x=1");
    }

    #[test]
    fn the_tail_passes_nothing_when_no_one_watches_and_at_most_its_allowance() {
        let tail = Tail::default();
        assert!(!tail.wants());
        let _rx = tail.subscribe();
        let passed = (0..1000).filter(|_| tail.wants()).count() as u64;
        // One second boundary may fall inside the loop.
        assert!(
            (TAIL_PER_SECOND..=2 * TAIL_PER_SECOND).contains(&passed),
            "{passed}"
        );
    }
}
