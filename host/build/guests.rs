//! Building guests of the guest workspace (`guests/`, its own workspace for
//! `wasm32-wasip2`) from a build script. Shared by the node's `build.rs` (the
//! shipped guests it embeds) and `test-guests/build.rs` (the test fixtures, a
//! dev-only crate), through `#[path]`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository's root, from a crate one level below it.
pub fn root() -> PathBuf {
    let manifest_dir =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    manifest_dir
        .parent()
        .expect("the crate is inside the workspace")
        .to_path_buf()
}

/// Build `packages` of the guest workspace for `wasm32-wasip2` (release), or every
/// member but `exclude` when `packages` is empty, and return the directory that
/// holds `<crate_name>.wasm`. Re-runs when the WIT, the guests or the code they
/// share with the node change.
pub fn build(packages: &[&str], exclude: &[&str]) -> PathBuf {
    build_for("wasm32-wasip2", packages, exclude)
}

/// [`build`] for another target: `wasm32-unknown-unknown` for the console's
/// playground, which runs the guests' own logic in a browser.
pub fn build_for(target: &str, packages: &[&str], exclude: &[&str]) -> PathBuf {
    let root = root();
    let guests = root.join("guests");
    for watched in [
        root.join("wit"),
        root.join("common"),
        guests.join("Cargo.toml"),
        guests.join("Cargo.lock"),
    ] {
        println!("cargo:rerun-if-changed={}", watched.display());
    }
    watch_crates(&guests);

    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it"));
    // <target>/<profile>/build/<pkg>/out: one guest build for every profile and crate.
    let target_dir = out_dir
        .ancestors()
        .nth(4)
        .map(|t| t.join("wasm-guests"))
        .unwrap_or_else(|| out_dir.join("wasm-guests"));

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&guests)
        .args(["build", "--release", "--target", target])
        .arg("--target-dir")
        .arg(&target_dir);
    if packages.is_empty() {
        cmd.arg("--workspace");
        for e in exclude {
            cmd.args(["--exclude", e]);
        }
    }
    for p in packages {
        cmd.args(["-p", p]);
    }
    // The nested build must not inherit the outer build's compiler settings.
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
            "building the guests (cd guests && cargo build --release --target {target}) failed; \
             is the target installed? run: rustup target add {target}"
        );
    }
    target_dir.join(target).join("release")
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
