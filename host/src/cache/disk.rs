//! The disk tier: stored objects that outlive the process. Beneath the memory
//! tier: every object stored in memory is written here too (off the request path),
//! a memory miss looks here before the origin, and a restarted node serves what
//! its predecessor stored.
//!
//! One file per key, named by the SHA-256 of the key: a length-prefixed JSON head
//! (the key, status, headers, the caching policy, tags, lifetimes) and the body.
//! Files are written to a temporary name and renamed, so a crash leaves a whole
//! file or none; a file that does not parse is deleted when the directory is
//! opened. An index in memory (file → key, tags, size, last use) sizes the tier
//! and serves purges; past its byte budget the least recently used files go.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use http_cache_semantics::CachePolicy;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::stored::Stored;

/// Longest head a file may have (a corrupt length is not an allocation).
const MAX_HEAD: usize = 1 << 20;

/// The disk tier.
pub struct Disk {
    dir: PathBuf,
    budget: u64,
    index: Mutex<Index>,
    /// Counts removals: a write queued before a removal of its key (or a purge
    /// by prefix or tag) is not committed after it, so nothing purged comes back.
    epoch: std::sync::atomic::AtomicU64,
    /// The epoch of each file's last removal, and of the last purge by pattern.
    removed: Mutex<Removed>,
}

#[derive(Default)]
struct Removed {
    files: HashMap<String, u64>,
    any: u64,
}

#[derive(Default)]
struct Index {
    files: HashMap<String, Meta>,
    bytes: u64,
    ticks: u64,
}

struct Meta {
    key: Arc<str>,
    tags: Vec<String>,
    size: u64,
    used: u64,
}

/// A file's head.
#[derive(Serialize, Deserialize)]
struct Head {
    key: String,
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    policy: CachePolicy,
    vary_key: String,
    tags: Vec<String>,
    lifetime_ms: u64,
    stored_at: std::time::SystemTime,
    stale_while_revalidate_ms: u64,
    stale_if_error_ms: u64,
}

impl std::fmt::Debug for Disk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Disk")
            .field("dir", &self.dir)
            .field("budget", &self.budget)
            .finish()
    }
}

fn file_name(key: &str) -> String {
    let d = Sha256::digest(key.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Disk {
    /// Open (or create) the tier at `dir`, indexing what is there; unreadable
    /// files are removed.
    pub fn open(dir: &Path, budget: u64) -> std::io::Result<Disk> {
        std::fs::create_dir_all(dir)?;
        let mut index = Index::default();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_string)
            else {
                continue;
            };
            if name.ends_with(".tmp") {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            match read_head(&path) {
                Ok((head, size)) if file_name(&head.key) == name => {
                    index.ticks += 1;
                    index.bytes += size;
                    index.files.insert(
                        name,
                        Meta {
                            key: head.key.into(),
                            tags: head.tags,
                            size,
                            used: index.ticks,
                        },
                    );
                }
                _ => {
                    tracing::warn!(file = %path.display(), "cache: removing an unreadable file");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let disk = Disk {
            dir: dir.to_path_buf(),
            budget,
            index: Mutex::new(index),
            epoch: std::sync::atomic::AtomicU64::new(0),
            removed: Mutex::new(Removed::default()),
        };
        disk.evict();
        Ok(disk)
    }

    /// Objects held.
    pub fn len(&self) -> usize {
        self.lock().files.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.lock().bytes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A ticket for a write about to be queued: [`store`](Self::store) commits it
    /// only if nothing removed its key since.
    pub fn ticket(&self) -> u64 {
        self.epoch.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn removed(&self) -> std::sync::MutexGuard<'_, Removed> {
        self.removed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Write `s` under `key` (blocking: call off the request path), unless its key
    /// was removed after `ticket` was taken.
    pub fn store(&self, key: &str, s: &Stored, ticket: u64) {
        let head = Head {
            key: key.to_string(),
            status: s.status.as_u16(),
            headers: s
                .headers
                .iter()
                .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
                .collect(),
            policy: s.policy.clone(),
            vary_key: s.vary_key.clone(),
            tags: s.tags.clone(),
            lifetime_ms: ms(s.lifetime),
            stored_at: s.stored_at,
            stale_while_revalidate_ms: ms(s.stale_while_revalidate),
            stale_if_error_ms: ms(s.stale_if_error),
        };
        let name = file_name(key);
        let size = match self.write(&name, &head, &s.body, ticket) {
            Ok(Some(size)) => size,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), "cache: writing to disk: {e}");
                return;
            }
        };
        {
            let mut ix = self.lock();
            ix.ticks += 1;
            let used = ix.ticks;
            if let Some(old) = ix.files.insert(
                name,
                Meta {
                    key: key.into(),
                    tags: s.tags.clone(),
                    size,
                    used,
                },
            ) {
                ix.bytes -= old.size;
            }
            ix.bytes += size;
        }
        self.evict();
    }

    fn write(
        &self,
        name: &str,
        head: &Head,
        body: &[u8],
        ticket: u64,
    ) -> std::io::Result<Option<u64>> {
        static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let head = serde_json::to_vec(head).map_err(std::io::Error::other)?;
        // A name of its own per write: two writes of one key never share a file.
        let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = self.dir.join(format!("{name}.{n}.tmp"));
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&u32::try_from(head.len()).unwrap_or(u32::MAX).to_le_bytes())?;
            f.write_all(&head)?;
            f.write_all(body)?;
        }
        // Committed under the lock removals take: a removal is before it or after.
        let removed = self.removed();
        if removed.any > ticket || removed.files.get(name).is_some_and(|e| *e > ticket) {
            drop(removed);
            let _ = std::fs::remove_file(&tmp);
            return Ok(None);
        }
        std::fs::rename(&tmp, self.dir.join(name))?;
        Ok(Some((4 + head.len() + body.len()) as u64))
    }

    /// The object stored under `key`, if any (blocking: call off the request path).
    pub fn load(&self, key: &str) -> Option<Stored> {
        let name = file_name(key);
        {
            let mut ix = self.lock();
            ix.ticks += 1;
            let tick = ix.ticks;
            ix.files.get_mut(&name)?.used = tick;
        }
        let path = self.dir.join(&name);
        let read = || -> std::io::Result<Stored> {
            let mut f = std::fs::File::open(&path)?;
            let head = head_of(&mut f)?;
            if head.key != key {
                return Err(std::io::Error::other("another key"));
            }
            let mut body = Vec::new();
            f.read_to_end(&mut body)?;
            Ok(stored(head, Bytes::from(body)))
        };
        match read() {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(file = %path.display(), "cache: reading from disk: {e}");
                self.remove(key);
                None
            }
        }
    }

    /// Forget `key`.
    pub fn remove(&self, key: &str) -> bool {
        let name = file_name(key);
        self.remove_file(&name)
    }

    fn remove_file(&self, name: &str) -> bool {
        let mut removed = self.removed();
        let e = self.epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        if removed.files.len() >= 65_536 {
            // Bounded: forget the names, and count it as a purge of everything
            // (writes queued before now are dropped; they are in memory still).
            removed.files.clear();
            removed.any = e;
        }
        removed.files.insert(name.to_string(), e);
        let meta = {
            let mut ix = self.lock();
            let m = ix.files.remove(name);
            if let Some(m) = &m {
                ix.bytes -= m.size;
            }
            m
        };
        if meta.is_some() {
            let _ = std::fs::remove_file(self.dir.join(name));
        }
        meta.is_some()
    }

    /// Forget the keys for which `doomed(key, tags)`; how many.
    pub fn purge_where(&self, doomed: impl Fn(&str, &[String]) -> bool) -> usize {
        // Writes queued before a purge by pattern are not committed after it.
        {
            let mut removed = self.removed();
            removed.any = self.epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        }
        let names: Vec<String> = self
            .lock()
            .files
            .iter()
            .filter(|(_, m)| doomed(&m.key, &m.tags))
            .map(|(n, _)| n.clone())
            .collect();
        names.iter().filter(|n| self.remove_file(n)).count()
    }

    /// Remove the least recently used files while over the budget.
    fn evict(&self) {
        loop {
            let victim = {
                let ix = self.lock();
                if ix.bytes <= self.budget {
                    return;
                }
                ix.files
                    .iter()
                    .min_by_key(|(_, m)| m.used)
                    .map(|(n, _)| n.clone())
            };
            match victim {
                Some(n) => {
                    self.remove_file(&n);
                }
                None => return,
            }
        }
    }
}

fn head_of(f: &mut std::fs::File) -> std::io::Result<Head> {
    let mut len = [0u8; 4];
    f.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_HEAD {
        return Err(std::io::Error::other("head too long"));
    }
    let mut head = vec![0u8; len];
    f.read_exact(&mut head)?;
    serde_json::from_slice(&head).map_err(std::io::Error::other)
}

fn read_head(path: &Path) -> std::io::Result<(Head, u64)> {
    let mut f = std::fs::File::open(path)?;
    let size = f.metadata()?.len();
    Ok((head_of(&mut f)?, size))
}

fn stored(head: Head, body: Bytes) -> Stored {
    let mut headers = HeaderMap::with_capacity(head.headers.len());
    for (n, v) in head.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(n.as_bytes()),
            HeaderValue::from_bytes(&v),
        ) {
            headers.append(n, v);
        }
    }
    Stored {
        policy: head.policy,
        status: StatusCode::from_u16(head.status).unwrap_or(StatusCode::OK),
        headers,
        body,
        lifetime: Duration::from_millis(head.lifetime_ms),
        stored_at: head.stored_at,
        vary_key: head.vary_key,
        tags: head.tags,
        stale_while_revalidate: Duration::from_millis(head.stale_while_revalidate_ms),
        stale_if_error: Duration::from_millis(head.stale_if_error_ms),
        encoded: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(body: &'static [u8]) -> Stored {
        let req = http::Request::get("/x")
            .body(())
            .expect("req")
            .into_parts()
            .0;
        let resp = http::Response::builder()
            .header("cache-control", "max-age=60")
            .body(())
            .expect("resp")
            .into_parts()
            .0;
        let policy = CachePolicy::new(&req, &resp);
        Stored {
            policy,
            status: StatusCode::OK,
            headers: resp.headers,
            body: Bytes::from_static(body),
            lifetime: Duration::from_secs(60),
            stored_at: std::time::SystemTime::now(),
            vary_key: String::new(),
            tags: vec!["t".into()],
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: Duration::from_secs(5),
            encoded: Default::default(),
        }
    }

    #[test]
    fn objects_survive_reopening_and_the_budget_evicts_the_least_used() {
        let dir = tempfile::tempdir().expect("dir");
        let disk = Disk::open(dir.path(), 10_000).expect("open");
        disk.store("a/1", &object(b"one"), disk.ticket());
        disk.store("a/2", &object(b"two"), disk.ticket());
        drop(disk);
        // A torn write and a corrupt file are cleaned up on open.
        std::fs::write(dir.path().join("junk.tmp"), b"x").expect("tmp");
        std::fs::write(dir.path().join("deadbeef"), b"\xff\xff\xff\xffxx").expect("junk");
        let disk = Disk::open(dir.path(), 10_000).expect("reopen");
        assert_eq!(disk.len(), 2);
        let one = disk.load("a/1").expect("stored before");
        assert_eq!(&one.body[..], b"one");
        assert_eq!(
            one.policy
                .time_to_live(std::time::SystemTime::now())
                .as_secs()
                / 10,
            5
        );
        assert!(disk.load("a/3").is_none());
        assert!(!dir.path().join("deadbeef").exists());
        // Over budget: the least recently used goes (a/2; a/1 was just read).
        let per = disk.bytes() / 2;
        let small = Disk::open(dir.path(), per * 2 + per / 2).expect("small");
        small.load("a/1");
        small.store("b/1", &object(b"one"), small.ticket());
        assert!(small.load("a/2").is_none());
        assert!(small.load("a/1").is_some());
        assert_eq!(
            small.purge_where(|_, tags| tags.iter().any(|t| t == "t")),
            2
        );
        assert!(small.is_empty());
    }

    #[test]
    fn a_write_queued_before_a_purge_does_not_bring_the_object_back() {
        let dir = tempfile::tempdir().expect("dir");
        let disk = Disk::open(dir.path(), 1 << 20).expect("open");
        // Queued, then its key purged, then committed: not stored.
        let ticket = disk.ticket();
        disk.remove("k");
        disk.store("k", &object(b"old"), ticket);
        assert!(disk.load("k").is_none());
        // The same for a purge by pattern.
        let ticket = disk.ticket();
        disk.purge_where(|k, _| k.starts_with('p'));
        disk.store("p/1", &object(b"old"), ticket);
        assert!(disk.load("p/1").is_none());
        // A write queued after the purge is stored.
        disk.store("k", &object(b"new"), disk.ticket());
        assert_eq!(&disk.load("k").expect("stored").body[..], b"new");
        // No temporary file is left behind.
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("dir")
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    }
}
