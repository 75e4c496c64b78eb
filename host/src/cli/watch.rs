//! `outpost serve --watch`: the guests the config loads from a crate of their own
//! (a `.wasm` under a directory with a `Cargo.toml`, as `outpost new` makes) are
//! rebuilt when their sources change, and the node reloads; a build that fails is
//! reported and the running version keeps serving.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use outpost::Config;

/// A guest crate being watched, and the newest change seen in it.
pub struct Watched {
    /// The crate's directory.
    pub dir: PathBuf,
    seen: Option<SystemTime>,
}

/// The crates of `config`'s file guests.
pub fn crates(config: &Config) -> Vec<Watched> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for g in config.guests.values() {
        let edge_config::GuestSource::File(wasm) = config.guest_source(g) else {
            continue;
        };
        let wasm = wasm.canonicalize().unwrap_or(wasm);
        if let Some(dir) = wasm
            .ancestors()
            .skip(1)
            .find(|d| d.join("Cargo.toml").is_file())
            && !dirs.iter().any(|d| d == dir)
        {
            dirs.push(dir.to_path_buf());
        }
    }
    dirs.into_iter()
        .map(|dir| {
            let seen = newest(&dir);
            Watched { dir, seen }
        })
        .collect()
}

impl Watched {
    /// Whether a source changed since the last call (or the start).
    pub fn changed(&mut self) -> bool {
        let now = newest(&self.dir);
        let changed = now > self.seen;
        self.seen = now;
        changed
    }
}

/// The newest modification time of the crate's manifest and `src/` tree.
fn newest(dir: &Path) -> Option<SystemTime> {
    let mut newest = modified(&dir.join("Cargo.toml"));
    let mut stack = vec![dir.join("src")];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                newest = newest.max(modified(&p));
            }
        }
    }
    newest
}

fn modified(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// [`super::build::wasm_build`] of `dir`: Ok, or cargo's errors.
pub fn rebuild(dir: &Path) -> Result<(), String> {
    let out = super::build::wasm_build(dir)
        .args(["--message-format", "short"])
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("error"))
        .take(20)
        .collect();
    Err(errors.join("\n"))
}
