//! `outpost build [DIR]`: build the guest crate in DIR for `wasm32-wasip2` (adding
//! the target with rustup when it is missing), load the component as the node
//! would (checking it against this node's contract), and print its size and hooks.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Build the guest in `dir`.
pub fn build(dir: &Path) -> ExitCode {
    match run(dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say_err!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(dir: &Path) -> Result<(), String> {
    let manifest = dir.join("Cargo.toml");
    if !manifest.is_file() {
        return Err(format!("{} has no Cargo.toml", dir.display()));
    }
    ensure_target()?;
    let wasm = compile(dir, &manifest)?;
    let bytes = std::fs::read(&wasm).map_err(|e| format!("reading {}: {e}", wasm.display()))?;
    let hooks = outpost::runtime::inspect(&bytes)?;
    say!(
        "{}: {} KiB, hooks: {hooks}",
        wasm.display(),
        bytes.len().div_ceil(1024)
    );
    Ok(())
}

/// Add `wasm32-wasip2` when rustup lacks it.
fn ensure_target() -> Result<(), String> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map_err(|e| format!("cannot run rustup ({e}); install the wasm32-wasip2 target"))?;
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|l| l.trim() == "wasm32-wasip2")
    {
        return Ok(());
    }
    say!("adding the wasm32-wasip2 target (rustup target add wasm32-wasip2)");
    let status = Command::new("rustup")
        .args(["target", "add", "wasm32-wasip2"])
        .status()
        .map_err(|e| format!("cannot run rustup: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err("`rustup target add wasm32-wasip2` failed".into())
    }
}

/// `cargo build --release --target wasm32-wasip2` of the crate in `dir`, into the
/// crate's own target directory whatever CARGO_TARGET_DIR says (its edge.toml
/// names the component there). `--watch` rebuilds with the same command.
pub fn wasm_build(dir: &Path) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut c = Command::new(cargo);
    c.args([
        "build",
        "--release",
        "--target",
        "wasm32-wasip2",
        "--target-dir",
    ])
    .arg(dir.join("target"))
    .current_dir(dir);
    c
}

/// Build the crate in `dir`; the component it made.
fn compile(dir: &Path, manifest: &Path) -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = wasm_build(dir)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err("the build failed (cargo's errors are above)".into());
    }
    let meta = Command::new(&cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--manifest-path",
        ])
        .arg(manifest)
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    let meta: serde_json::Value =
        serde_json::from_slice(&meta.stdout).map_err(|e| format!("cargo metadata: {e}"))?;
    let target = dir.join("target");
    let name = meta["packages"][0]["name"]
        .as_str()
        .ok_or("cargo metadata names no package")?;
    let wasm = target
        .join("wasm32-wasip2/release")
        .join(format!("{}.wasm", name.replace('-', "_")));
    if wasm.is_file() {
        Ok(wasm)
    } else {
        Err(format!(
            "{} was not made: is the crate a `cdylib`?",
            wasm.display()
        ))
    }
}
