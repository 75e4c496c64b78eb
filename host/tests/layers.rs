//! The host's modules are layers: `lib.rs` lists them lowest first, and a module
//! may use only the modules listed before it. So no two modules import each other,
//! directly or through others, and each can be read knowing only those below it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");

/// The modules `lib.rs` declares, in order.
fn layers() -> Vec<String> {
    let lib = std::fs::read_to_string(Path::new(SRC).join("lib.rs")).expect("lib.rs");
    lib.lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod ")?.strip_suffix(';'))
        .map(str::to_string)
        .collect()
}

/// The source files of module `m` (a file, or a directory of them).
fn files(m: &str) -> Vec<PathBuf> {
    let file = Path::new(SRC).join(format!("{m}.rs"));
    if file.exists() {
        return vec![file];
    }
    let mut out = Vec::new();
    let mut dirs = vec![Path::new(SRC).join(m)];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).expect("module directory") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out
}

/// The crate's modules named after `crate::` in `code` (paths and `use` groups).
fn uses(code: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find("};").unwrap_or(group.len());
            let mut depth = 0;
            let mut item_start = true;
            for (j, c) in group[..end].char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && !c.is_whitespace() => {
                        out.insert(ident(&group[j..]));
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            out.insert(ident(rest));
        }
    }
    out
}

/// A file's code: comments and the tests at its end left out.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("source");
    let text = text.split("#[cfg(test)]\nmod ").next().unwrap_or("");
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn each_module_uses_only_the_layers_below_it() {
    let layers = layers();
    assert!(layers.len() > 10, "{layers:?}");
    let mut wrong = Vec::new();
    for (i, m) in layers.iter().enumerate() {
        let below: BTreeSet<&str> = layers[..i].iter().map(String::as_str).collect();
        for f in files(m) {
            for used in uses(&code(&f)) {
                if used != *m && layers.contains(&used) && !below.contains(used.as_str()) {
                    wrong.push(format!("{} uses `{used}`, listed after `{m}`", f.display()));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "a module uses one at or above its own layer (lib.rs lists them lowest first):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_scanner_sees_paths_and_use_groups() {
    let found =
        uses("use crate::a::X;\nuse crate::{b, c::{D, E}, d::F};\nfn f() { crate::e::g(); }");
    let want: BTreeSet<String> = ["a", "b", "c", "d", "e"].map(String::from).into();
    assert_eq!(found, want);
}
