//! Builds the guest workspace (`../guests`, its own workspace for `wasm32-wasip2`) so
//! the node can carry its built-in guests and tests can find every fixture.
//!
//! Emits `OUTPOST_GUEST_DIR`: the directory holding `<crate_name>.wasm` for every guest.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let root = manifest_dir
        .parent()
        .expect("host/ is inside the workspace")
        .to_path_buf();
    let guests = root.join("guests");
    let wit = root.join("wit");

    println!("cargo:rerun-if-changed={}", wit.display());
    println!(
        "cargo:rerun-if-changed={}",
        guests.join("Cargo.toml").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        guests.join("Cargo.lock").display()
    );
    watch_crates(&guests);

    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it"));
    // <target>/<profile>/build/<pkg>/out: share one guest build between profiles.
    let target_dir = out_dir
        .ancestors()
        .nth(4)
        .map(|t| t.join("wasm-guests"))
        .unwrap_or_else(|| out_dir.join("wasm-guests"));

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&guests)
        .args([
            "build",
            "--release",
            "--workspace",
            "--target",
            "wasm32-wasip2",
        ])
        .arg("--target-dir")
        .arg(&target_dir);
    // The nested build must not inherit the host build's compiler settings.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_MANIFEST_PATH",
        "CARGO_LLVM_COV",
        "LLVM_PROFILE_FILE",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo for the guests: {e}"));
    if !status.success() {
        panic!(
            "building the guests (cd guests && cargo build --release --target wasm32-wasip2) failed; \
             is the target installed? run: rustup target add wasm32-wasip2"
        );
    }
    let artifacts = target_dir.join("wasm32-wasip2").join("release");
    println!("cargo:rustc-env=OUTPOST_GUEST_DIR={}", artifacts.display());
}

fn watch_crates(guests: &Path) {
    let Ok(entries) = std::fs::read_dir(guests) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() && name != "target" && !name.to_string_lossy().starts_with('.') {
            if path.join("Cargo.toml").exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            } else {
                // A folder of crates (fixtures/).
                watch_crates(&path);
            }
        }
    }
}
