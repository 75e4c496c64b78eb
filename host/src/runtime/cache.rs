//! Compiled components cached on disk, keyed by a hash of the wasm bytes and the
//! engine's compatibility hash: a restart does not recompile. The directory is
//! bounded (`node.cache_max_mib`): a write that takes it past the bound removes the
//! entries used least recently (a hit touches its entry), as ccache does.

#![expect(
    unsafe_code,
    reason = "Component::deserialize is unsafe: it trusts the bytes are a compiled artifact"
)]

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// A directory of compiled components.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
    max_bytes: u64,
}

/// The bound when the config names none, MiB.
pub const DEFAULT_MAX_MIB: u64 = 1024;

/// A temporary file older than this was left by a writer that died: removed.
const STALE_TMP: Duration = Duration::from_secs(3600);

struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

impl CompileCache {
    /// A cache in `dir` (created when first written), bounded at [`DEFAULT_MAX_MIB`].
    pub fn new(dir: impl Into<PathBuf>) -> CompileCache {
        CompileCache {
            dir: dir.into(),
            max_bytes: DEFAULT_MAX_MIB << 20,
        }
    }

    /// The same, holding at most `bytes` of compiled entries.
    #[must_use]
    pub fn bounded(self, bytes: u64) -> CompileCache {
        CompileCache {
            max_bytes: bytes,
            ..self
        }
    }

    fn key(&self, engine: &Engine, wasm: &[u8]) -> String {
        let mut h = ShaHasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut h);
        h.0.update(wasm);
        let digest = h.0.finalize();
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The compiled component for `wasm`: from the cache when present and valid,
    /// otherwise compiled and written to it (a write failure only costs the next start).
    pub fn component(&self, engine: &Engine, wasm: &[u8]) -> wasmtime::Result<Component> {
        let path = self.dir.join(format!("{}.cwasm", self.key(engine, wasm)));
        if let Ok(bytes) = std::fs::read(&path) {
            // SAFETY: the file is named by the hash of its source and of the engine's
            // settings, and was written by `Component::serialize` below in this
            // directory, which only the node writes to.
            match unsafe { Component::deserialize(engine, &bytes) } {
                Ok(c) => {
                    touch(&path);
                    return Ok(c);
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), "ignoring a bad cache entry: {e:#}")
                }
            }
        }
        let component = Component::new(engine, wasm)?;
        if let Ok(bytes) = component.serialize() {
            // Unique to this writer (nodes in containers sharing the directory may
            // all be process 1): nobody else ever opens it.
            static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let nanos = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .subsec_nanos();
            let tmp = path.with_extension(format!("tmp{}{n:04}{nanos:09}", std::process::id()));
            let written = std::fs::create_dir_all(&self.dir)
                .and_then(|()| {
                    use std::io::Write;
                    let mut f = std::fs::File::options()
                        .write(true)
                        .create_new(true)
                        .open(&tmp)?;
                    f.write_all(&bytes)
                })
                .and_then(|()| std::fs::rename(&tmp, &path));
            match written {
                Ok(()) => self.evict(&path),
                Err(e) => {
                    tracing::warn!(dir = %self.dir.display(), "cannot write the compile cache: {e}");
                    let _ = std::fs::remove_file(&tmp);
                }
            }
        }
        Ok(component)
    }

    /// Bring the directory back under its bound: remove the entries used least
    /// recently, never `kept` (the one just written), and temporary files a dead
    /// writer left. Best effort: an entry another node removes first is skipped.
    fn evict(&self, kept: &Path) {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let now = SystemTime::now();
        let mut entries = Vec::new();
        for e in dir.flatten() {
            let (path, Ok(meta)) = (e.path(), e.metadata()) else {
                continue;
            };
            let used = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            // Only the files this cache writes: a key (64 hex digits), then
            // `.cwasm` or `.tmp` and digits. Whatever else shares the directory stays.
            let name = e.file_name();
            let Some((stem, ext)) = name.to_str().and_then(|n| n.split_once('.')) else {
                continue;
            };
            if stem.len() != 64 || !stem.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue;
            }
            let temporary = ext
                .strip_prefix("tmp")
                .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
            if ext == "cwasm" {
                entries.push((used, meta.len(), path));
            } else if temporary && now.duration_since(used).unwrap_or_default() > STALE_TMP {
                let _ = std::fs::remove_file(&path);
            }
        }
        let mut total: u64 = entries.iter().map(|(_, len, _)| len).sum();
        if total <= self.max_bytes {
            return;
        }
        entries.sort();
        let (mut removed, mut freed) = (0, 0);
        for (_, len, path) in entries {
            if total <= self.max_bytes {
                break;
            }
            if path == kept {
                continue;
            }
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                // Another node evicted it first: it is gone all the same.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    total -= len;
                    continue;
                }
                Err(_) => continue,
            }
            total -= len;
            removed += 1;
            freed += len;
        }
        tracing::info!(
            dir = %self.dir.display(),
            removed,
            freed_mib = freed >> 20,
            "compile cache over its bound: removed the entries used least recently"
        );
    }

    /// Whether a compiled entry for `wasm` exists (for tests and `outpost check`).
    pub fn contains(&self, engine: &Engine, wasm: &[u8]) -> bool {
        self.dir
            .join(format!("{}.cwasm", self.key(engine, wasm)))
            .exists()
    }
}

/// Mark the entry at `path` used now (its modification time: the eviction order).
fn touch(path: &Path) {
    if let Ok(f) = std::fs::File::options().write(true).open(path) {
        let _ = f.set_modified(SystemTime::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A component of its own: an empty one with a custom section saying `tag`.
    fn component(tag: &str) -> Vec<u8> {
        let mut w = b"\0asm\x0d\x00\x01\x00".to_vec();
        let name = b"tag";
        let body_len = 1 + name.len() + tag.len();
        w.push(0);
        w.push(u8::try_from(body_len).expect("short tag"));
        w.push(u8::try_from(name.len()).expect("short name"));
        w.extend_from_slice(name);
        w.extend_from_slice(tag.as_bytes());
        w
    }

    fn set_used(cache: &CompileCache, engine: &Engine, wasm: &[u8], secs_ago: u64) {
        let path = cache.dir.join(format!("{}.cwasm", cache.key(engine, wasm)));
        let f = std::fs::File::options()
            .write(true)
            .open(path)
            .expect("entry");
        f.set_modified(SystemTime::now() - Duration::from_secs(secs_ago))
            .expect("set mtime");
    }

    #[test]
    fn a_write_past_the_bound_removes_the_entries_used_least_recently() {
        let dir = tempfile::tempdir().expect("dir");
        let engine = Engine::default();
        let (a, b, c, d) = (
            component("a"),
            component("b"),
            component("c"),
            component("d"),
        );
        let probe = CompileCache::new(dir.path().join("probe"));
        probe.component(&engine, &a).expect("compile");
        let one = std::fs::read_dir(dir.path().join("probe"))
            .expect("probe")
            .flatten()
            .map(|e| e.metadata().expect("meta").len())
            .max()
            .expect("an entry");
        // Room for three entries (they are all about the same size).
        let cache = CompileCache::new(dir.path().join("c")).bounded(one * 3 + one / 2);
        for (w, ago) in [(&a, 300), (&b, 200), (&c, 100)] {
            cache.component(&engine, w).expect("compile");
            set_used(&cache, &engine, w, ago);
        }
        // A hit on `a` makes it the most recently used...
        cache.component(&engine, &a).expect("hit");
        // ...so a fourth entry pushes out `b`, the least recently used.
        cache.component(&engine, &d).expect("compile");
        assert!(cache.contains(&engine, &a), "touched on its hit");
        assert!(!cache.contains(&engine, &b), "least recently used");
        assert!(cache.contains(&engine, &c));
        assert!(cache.contains(&engine, &d), "the entry just written stays");
        // A bound below one entry still keeps the one just written.
        let tiny = CompileCache::new(dir.path().join("c")).bounded(1);
        tiny.component(&engine, &b).expect("compile");
        assert!(tiny.contains(&engine, &b));
        for w in [&a, &c, &d] {
            assert!(!tiny.contains(&engine, w));
        }
    }

    #[test]
    fn a_dead_writers_temporary_file_goes_and_a_fresh_one_and_other_files_stay() {
        let dir = tempfile::tempdir().expect("dir");
        let engine = Engine::default();
        std::fs::create_dir_all(dir.path()).expect("dir");
        let key = "ab".repeat(32);
        let old = dir.path().join(format!("{key}.tmp1"));
        let fresh = dir.path().join(format!("{key}.tmp2"));
        let unrelated = dir.path().join("notes.tmpl");
        let not_ours = dir.path().join("model.cwasm");
        std::fs::write(&unrelated, b"mine").expect("write");
        std::fs::write(&not_ours, vec![0u8; 4096]).expect("write");
        std::fs::write(&old, b"partial").expect("write");
        std::fs::write(&fresh, b"partial").expect("write");
        for p in [&old, &unrelated, &not_ours] {
            std::fs::File::options()
                .write(true)
                .open(p)
                .expect("file")
                .set_modified(SystemTime::now() - 2 * STALE_TMP)
                .expect("mtime");
        }
        let cache = CompileCache::new(dir.path()).bounded(1);
        cache.component(&engine, &component("e")).expect("compile");
        assert!(!old.exists(), "left by a writer that died");
        assert!(fresh.exists(), "another node may be writing it");
        assert!(
            unrelated.exists() && not_ours.exists(),
            "not the cache's files"
        );
    }
}
