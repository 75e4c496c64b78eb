//! Config error snapshots: each `tests/ui/*.toml` beside the `.err` it must print.
//! Run with `BLESS=1` to rewrite the `.err` files after an intended change.

use std::path::Path;

use edge_config::{Config, Source};

#[test]
fn invalid_configs_print_their_snapshot() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/ui exists")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    entries.sort();
    assert!(
        entries.len() >= 8,
        "expected the ui cases, found {}",
        entries.len()
    );
    let bless = std::env::var_os("BLESS").is_some();
    let mut failures = Vec::new();
    for path in entries {
        let name = format!(
            "ui/{}",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("?")
        );
        let text = std::fs::read_to_string(&path).expect("read case");
        let got = match Config::from_source(Source {
            name: name.clone(),
            base_dir: dir.clone(),
            text,
        }) {
            Ok(_) => format!("{name}: unexpectedly valid\n"),
            Err(e) => format!("{e}\n"),
        };
        let err_path = path.with_extension("err");
        if bless {
            std::fs::write(&err_path, &got).expect("write snapshot");
            continue;
        }
        let want = std::fs::read_to_string(&err_path).unwrap_or_default();
        if want != got {
            failures.push(format!("{name}\n--- want\n{want}--- got\n{got}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
