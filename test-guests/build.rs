//! Builds every guest of the guest workspace but the shipped ones (which the node's
//! own build builds, `outpost_common::builtin`) and writes a constant per guest: its component's path.

#[path = "../host/build/guests.rs"]
mod guests;

#[path = "../common/src/builtin.rs"]
mod builtin;

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    // The shipped guests, and the console's playground (a browser crate).
    let mut not_fixtures = builtin::BUILTIN_GUESTS.to_vec();
    not_fixtures.push("outpost-playground");
    let dir = guests::build(&[], &not_fixtures);
    let fixtures = guests::root().join("guests").join("fixtures");
    let mut names: Vec<String> = std::fs::read_dir(&fixtures)
        .expect("guests/fixtures")
        .flatten()
        .filter(|e| e.path().join("Cargo.toml").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut out = format!(
        "/// Where every guest's component is (`<crate_name>.wasm`), shipped ones too.\npub const DIR: &str = {:?};\n",
        dir.display().to_string()
    );
    for n in &names {
        let file = dir.join(format!("{}.wasm", n.replace('-', "_")));
        let _ = writeln!(
            out,
            "/// The `{n}` fixture (`guests/fixtures/{n}`).\npub const {}: &str = {:?};",
            n.replace('-', "_").to_ascii_uppercase(),
            file.display().to_string()
        );
    }
    let _ = writeln!(
        out,
        "/// Every fixture's crate name.\npub const FIXTURES: [&str; {}] = {names:?};",
        names.len()
    );
    let dest = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it")).join("guests.rs");
    std::fs::write(dest, out).expect("write the constants");
}
