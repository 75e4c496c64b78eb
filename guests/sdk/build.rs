//! Embeds the WIT contract (`wit/outpost.wit`, a link to the repository's `wit/`) into a macro so that a
//! guest crate can generate the bindings of exactly the world it exports, without
//! knowing where the WIT files live.

use std::{env, fs, path::PathBuf};

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    // `wit` is a symbolic link to the repository's `wit/` (the single source of
    // truth); `cargo package` follows it, so the published crate carries the file.
    let wit = manifest.join("wit/outpost.wit");
    println!("cargo:rerun-if-changed={}", wit.display());
    let text =
        fs::read_to_string(&wit).unwrap_or_else(|e| panic!("reading {}: {e}", wit.display()));
    let mut hashes = String::from("#");
    while text.contains(&format!("\"{hashes}")) {
        hashes.push('#');
    }
    let out = format!(
        "/// Runs `wit_bindgen::generate!` with the Outpost WIT package inlined.\n\
         #[doc(hidden)]\n\
         #[macro_export]\n\
         macro_rules! __outpost_generate {{\n\
         \x20   ($($opts:tt)*) => {{\n\
         \x20       $crate::__private::wit_bindgen::generate!({{\n\
         \x20           inline: r{hashes}\"{text}\"{hashes},\n\
         \x20           $($opts)*\n\
         \x20       }});\n\
         \x20   }};\n\
         }}\n"
    );
    let dest = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR")).join("wit_macro.rs");
    fs::write(&dest, out).unwrap_or_else(|e| panic!("writing {}: {e}", dest.display()));
}
