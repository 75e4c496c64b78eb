//! Builds the shipped guests (`outpost_common::builtin::BUILTIN_GUESTS`) of the
//! guest workspace and writes the table that embeds them in the binary
//! (`wasm = "builtin:NAME"`). The test fixtures are built by the dev-only
//! `outpost-test-guests` crate, not here.
//!
//! Emits `OUTPOST_GUEST_DIR`: the directory holding `<crate_name>.wasm`.
//!
//! Also builds the web console's playground (`guests/playground` for the browser,
//! through wasm-bindgen): see [`playground`].

#[path = "build/guests.rs"]
mod guests;

#[path = "../common/src/builtin.rs"]
mod builtin;

use std::fmt::Write as _;

fn main() {
    let dir = guests::build(&builtin::BUILTIN_GUESTS, &[]);
    println!("cargo:rustc-env=OUTPOST_GUEST_DIR={}", dir.display());
    let mut table = String::from(
        "/// Every built-in guest's component, embedded.\nstatic BUILTIN: [(&str, &[u8]); BUILTIN_GUESTS.len()] = [\n",
    );
    for name in builtin::BUILTIN_GUESTS {
        let file = dir.join(format!("{}.wasm", name.replace('-', "_")));
        let _ = writeln!(
            table,
            "    ({name:?}, include_bytes!({:?})),",
            file.display().to_string()
        );
    }
    table.push_str("];\n");
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it"));
    std::fs::write(out.join("builtin.rs"), table).expect("write the built-in table");
    playground(&out);
}

/// The console's playground: the guests' own logic built for the browser
/// (`guests/playground`, `wasm32-unknown-unknown`) and its JavaScript bindings made
/// by wasm-bindgen, into `OUT_DIR/console/` (`playground.js`,
/// `playground_bg.wasm`), which `src/console.rs` embeds.
fn playground(out: &std::path::Path) {
    let dir = guests::build_for("wasm32-unknown-unknown", &["outpost-playground"], &[]);
    let dest = out.join("console");
    std::fs::create_dir_all(&dest).expect("create OUT_DIR/console");
    let mut bindgen = wasm_bindgen_cli_support::Bindgen::new();
    bindgen
        .input_path(dir.join("outpost_playground.wasm"))
        .out_name("playground")
        .typescript(false);
    bindgen
        .web(true)
        .and_then(|b| b.generate(&dest))
        .unwrap_or_else(|e| panic!("wasm-bindgen on the playground: {e}"));
}
