//! Compiled components cached on disk, keyed by a hash of the wasm bytes and the
//! engine's compatibility hash: a restart does not recompile.

#![expect(
    unsafe_code,
    reason = "Component::deserialize is unsafe: it trusts the bytes are a compiled artifact"
)]

use std::hash::{Hash, Hasher};
use std::path::PathBuf;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// A directory of compiled components.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
}

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
    /// A cache in `dir` (created when first written).
    pub fn new(dir: impl Into<PathBuf>) -> CompileCache {
        CompileCache { dir: dir.into() }
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
                Ok(c) => return Ok(c),
                Err(e) => {
                    tracing::warn!(path = %path.display(), "ignoring a bad cache entry: {e:#}")
                }
            }
        }
        let component = Component::new(engine, wasm)?;
        if let Ok(bytes) = component.serialize() {
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            let written = std::fs::create_dir_all(&self.dir)
                .and_then(|()| std::fs::write(&tmp, &bytes))
                .and_then(|()| std::fs::rename(&tmp, &path));
            if let Err(e) = written {
                tracing::warn!(dir = %self.dir.display(), "cannot write the compile cache: {e}");
                let _ = std::fs::remove_file(&tmp);
            }
        }
        Ok(component)
    }

    /// Whether a compiled entry for `wasm` exists (for tests and `outpost check`).
    pub fn contains(&self, engine: &Engine, wasm: &[u8]) -> bool {
        self.dir
            .join(format!("{}.cwasm", self.key(engine, wasm)))
            .exists()
    }
}
