//! The `outpost` binary: `check` reports every error; `serve` runs a config.

use std::process::Command;

fn outpost() -> Command {
    Command::new(env!("CARGO_BIN_EXE_outpost"))
}

#[test]
fn check_reports_every_error_with_its_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("garbage.wasm"), b"not wasm at all").expect("write");
    let config = dir.path().join("edge.toml");
    std::fs::write(
        &config,
        r#"[[listeners]]
address = "127.0.0.1:0"

[origins.main]
address = "127.0.0.1:9"

[guests.garbage]
wasm = "garbage.wasm"

[guests.missing]
wasm = "missing.wasm"

[guests.shed]
wasm = "builtin:shed"

[[routes]]
name = "r"
origin = "main"
request = ["garbage", "missing", "shed"]
"#,
    )
    .expect("write config");
    let out = outpost().arg("check").arg(&config).output().expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let file = config.display().to_string();
    assert!(
        stderr.contains(&format!(
            "{file}:8:8: guest `garbage`: not a valid WebAssembly component"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{file}:11:8: guest `missing`: cannot read")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{file}:19:34: route `r` uses guest `shed` as a request guest, but it does not export"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("3 error(s)"), "{stderr}");
}

#[test]
fn check_accepts_a_good_config_and_lists_hooks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("edge.toml");
    std::fs::write(&config, edge_config::EMBEDDED_DEFAULT).expect("write");
    let out = outpost()
        .current_dir(dir.path())
        .arg("check")
        .arg(&config)
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("guest rendition: exports response"),
        "{stdout}"
    );
    assert!(stdout.contains("guest shed: exports admit"), "{stdout}");
}

#[test]
fn a_bad_config_file_is_refused_with_file_line_and_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("edge.toml");
    std::fs::write(
        &config,
        "[[listeners]]\naddress = \"127.0.0.1:0\"\nport = 8080\n",
    )
    .expect("write");
    let out = outpost()
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:3:1: unknown field `port`", config.display())),
        "{stderr}"
    );
}
