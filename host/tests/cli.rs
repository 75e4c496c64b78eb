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

/// A config with a listener and an origin on free loopback ports, no guests.
fn plain_config(dir: &std::path::Path) -> std::path::PathBuf {
    let config = dir.join("edge.toml");
    std::fs::write(
        &config,
        "[[listeners]]\naddress = \"127.0.0.1:0\"\n\n[origins.main]\naddress = \"127.0.0.1:9\"\n\n\
         [[routes]]\nname = \"r\"\norigin = \"main\"\n",
    )
    .expect("write config");
    config
}

#[test]
fn serve_survives_sighup_with_its_stdout_closed() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = plain_config(dir.path());
    let mut child = outpost()
        .args(["serve", "--no-cache", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    // Read the first line, then close the pipe (`outpost serve | head -1`).
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    out.read_line(&mut first).expect("first line");
    assert!(first.contains("Outpost is serving"), "{first}");
    drop(out);
    for _ in 0..2 {
        let sent = Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        std::thread::sleep(std::time::Duration::from_millis(700));
    }
    let alive = child.try_wait().expect("try_wait").is_none();
    let _ = child.kill();
    let _ = child.wait();
    assert!(alive, "the node exited on SIGHUP with a closed stdout");
}

#[test]
fn check_refuses_config_that_defeats_the_sandbox_at_each_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("edge.toml");
    std::fs::write(
        &config,
        r#"[node]
epoch_tick = "5s"
max_instances = 4294967295

[[listeners]]
address = "127.0.0.1:0"
header_timeout = 0

[origins.main]
address = "localhost"
connect_timeout = 0

[guests.shed]
wasm = "builtin:shed"
cpu = "10ms"

[limiter]
initial_limit = 0
client_rate = nan

[[routes]]
name = "r"
origin = "main"
admit = "shed"
"#,
    )
    .expect("write config");
    let out = outpost().arg("check").arg(&config).output().expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let file = config.display().to_string();
    for (line, what) in [
        (3, "max_instances"),
        (7, "header_timeout"),
        (10, "needs a port"),
        (11, "connect_timeout"),
        (15, "epoch_tick"),
        (18, "initial_limit"),
        (19, "client_rate"),
    ] {
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(&format!("{file}:{line}:")) && l.contains(what)),
            "line {line} should report {what}:\n{stderr}"
        );
    }
}

#[test]
fn a_config_that_is_not_utf8_is_reported_at_the_bad_byte() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("edge.toml");
    std::fs::write(&config, b"[[listeners]]\naddress = \"\xff\"\n").expect("write");
    let out = outpost().arg("check").arg(&config).output().expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("{}:2:12: ", config.display())),
        "{stderr}"
    );
}

#[test]
fn a_guest_path_to_an_endless_file_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("edge.toml");
    std::fs::write(
        &config,
        "[[listeners]]\naddress = \"127.0.0.1:0\"\n\n[origins.main]\naddress = \"127.0.0.1:9\"\n\n\
         [guests.z]\nwasm = \"/dev/zero\"\n\n[[routes]]\nname = \"r\"\norigin = \"main\"\nrequest = [\"z\"]\n",
    )
    .expect("write config");
    let out = outpost().arg("check").arg(&config).output().expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("larger than the 64 MiB"), "{stderr}");
}

#[test]
fn replaying_a_file_with_no_valid_entry_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let garbage = dir.path().join("garbage.log");
    std::fs::write(&garbage, "this is not\na log of any kind\n\u{1}\u{2}\n").expect("write");
    let out = outpost()
        .arg("replay")
        .arg(&garbage)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("no valid entry to replay"), "{stderr}");
}

#[test]
fn replay_refuses_flags_that_diff_would_ignore() {
    for flag in [
        &["--json"][..],
        &["--expect", "x.toml"],
        &["--target", "127.0.0.1:9"],
    ] {
        let out = outpost()
            .args(["replay", "in.log", "--diff", "b.toml"])
            .args(flag)
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flag:?}: {stderr}");
        assert!(stderr.contains("cannot be used with"), "{flag:?}: {stderr}");
    }
}

#[test]
fn sigterm_drains_a_request_in_flight_then_exits_zero() {
    use std::io::{BufReader, Read, Write};
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    // An origin that answers after 1.5 s.
    let origin = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let origin_addr = origin.local_addr().expect("addr");
    std::thread::spawn(move || {
        for mut s in origin.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                std::thread::sleep(Duration::from_millis(1500));
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nslow\n");
            });
        }
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("edge.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\ndrain_timeout = \"10s\"\n\n[[listeners]]\naddress = \"127.0.0.1:0\"\n\n\
             [origins.main]\naddress = \"{origin_addr}\"\n\n[[routes]]\nname = \"r\"\norigin = \"main\"\n"
        ),
    )
    .expect("write config");
    let mut child = outpost()
        .args(["serve", "--no-cache", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let addr = listening_on(&mut out);
    let addr = addr.expect("the node says where it listens");
    let mut conn = std::net::TcpStream::connect(&addr).expect("connect");
    conn.write_all(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        .expect("send");
    std::thread::sleep(Duration::from_millis(400));
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success());
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut answer = String::new();
    let _ = conn.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("slow\n"), "{answer}");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "the node exits");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut rest = String::new();
    let _ = out.read_to_string(&mut rest);
    assert!(status.success(), "exit {status:?}: {rest}");
    assert!(rest.contains("drained"), "{rest}");
}

/// Where a starting `outpost serve` says it listens (its banner's first
/// `listening on http://` line among the first ten), if it says so.
fn listening_on(out: &mut impl std::io::BufRead) -> Option<String> {
    for _ in 0..10 {
        let mut line = String::new();
        out.read_line(&mut line).ok()?;
        if let Some(a) = line.trim().strip_prefix("listening on http://") {
            return Some(a.to_string());
        }
    }
    None
}

/// `GET path` over a plain HTTP/1.1 connection; the status line and body.
fn http_get(addr: &str, path: &str) -> (String, String) {
    http_get_as(addr, path, "outpost-tests")
}

/// Run `cmd`, failing the test with its output when it fails.
fn succeed(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn a_new_guest_builds_tests_serves_and_is_rebuilt_on_change_outside_the_repository() {
    use std::io::{BufReader, Read};
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let tmp = tempfile::tempdir().expect("tempdir");
    succeed(
        outpost()
            .args(["new", "request", "hello", "--dir"])
            .arg(tmp.path()),
        "outpost new",
    );
    let dir = tmp.path().join("hello");
    for f in ["Cargo.toml", "src/lib.rs", "README.md", "edge.toml"] {
        assert!(dir.join(f).is_file(), "{f} was not generated");
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let tests = succeed(
        Command::new(&cargo).arg("test").current_dir(&dir),
        "cargo test in the new crate",
    );
    assert!(tests.contains("2 passed"), "{tests}");
    let built = succeed(outpost().arg("build").arg(&dir), "outpost build");
    assert!(built.contains("hooks: request"), "{built}");

    let mut child = outpost()
        .args([
            "serve",
            "-c",
            "edge.toml",
            "--listen",
            "127.0.0.1:0",
            "--no-cache",
            "--watch",
        ])
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let addr = listening_on(&mut out);
    let mut stderr = child.stderr.take().expect("stderr");
    let Some(addr) = addr else {
        let _ = child.kill();
        let mut why = String::new();
        let _ = stderr.read_to_string(&mut why);
        panic!("the node did not say where it listens:\n{why}");
    };
    let errors = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let until = |want: &str| {
        let start = Instant::now();
        loop {
            let (status, body) = http_get(&addr, "/hello");
            if body == want {
                return status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "waited for {want:?}, got {status} {body:?}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    };
    assert!(until("hello from hello\n").contains("200"));
    // An edit is rebuilt and reloaded without a restart.
    let lib = dir.join("src/lib.rs");
    let code = std::fs::read_to_string(&lib).expect("lib.rs");
    std::fs::write(&lib, code.replace("from hello", "from the edited hello")).expect("edit");
    until("hello from the edited hello\n");
    // A broken edit fails to build, and the last good build keeps serving.
    std::fs::write(&lib, "this is not rust\n").expect("break");
    std::thread::sleep(Duration::from_secs(15));
    assert_eq!(http_get(&addr, "/hello").1, "hello from the edited hello\n");
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let errors = errors.join().unwrap_or_default();
    assert!(errors.contains("the build failed"), "{errors}");
}

/// The SDK as published: `cargo package` makes the crates a registry would hold
/// (the WIT contract inside, through the `wit` link), and a guest made by
/// `outpost new --sdk-version` builds for wasm against exactly those files.
#[test]
fn a_guest_builds_against_the_sdk_as_cargo_packages_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let pkg = tmp.path().join("pkg");
    let package = |dir: &std::path::Path, krate: &str, extra: &[&str]| {
        succeed(
            Command::new(&cargo)
                .args(["package", "--allow-dirty", "--no-verify", "-p", krate])
                .args(extra)
                .arg("--target-dir")
                .arg(&pkg)
                .current_dir(dir),
            &format!("cargo package -p {krate}"),
        );
    };
    package(&root, "outpost-common", &[]);
    // Until outpost-common is on the registry, the SDK's packaging resolves it here.
    package(
        &root.join("guests"),
        "outpost-guest",
        &[
            "--config",
            "patch.crates-io.outpost-common.path=\"../common\"",
        ],
    );
    let vendor = tmp.path().join("vendor");
    std::fs::create_dir_all(&vendor).expect("vendor dir");
    for krate in ["outpost-common-0.1.0", "outpost-guest-0.1.0"] {
        succeed(
            Command::new("tar")
                .arg("xzf")
                .arg(pkg.join("package").join(format!("{krate}.crate")))
                .arg("-C")
                .arg(&vendor),
            "tar",
        );
    }
    assert!(
        vendor.join("outpost-guest-0.1.0/wit/outpost.wit").is_file(),
        "the packaged SDK lacks its WIT"
    );
    succeed(
        outpost()
            .args(["new", "request", "hello", "--sdk-version", "0.1", "--dir"])
            .arg(tmp.path()),
        "outpost new --sdk-version",
    );
    let manifest = tmp.path().join("hello/Cargo.toml");
    let text = std::fs::read_to_string(&manifest).expect("Cargo.toml");
    assert!(
        text.contains(r#"outpost-guest = { version = "0.1", features = ["request"] }"#),
        "{text}"
    );
    // The registry, as a guest outside the repository would see it once published.
    let patched = format!(
        "{text}\n[patch.crates-io]\n\
         outpost-guest = {{ path = \"../vendor/outpost-guest-0.1.0\" }}\n\
         outpost-common = {{ path = \"../vendor/outpost-common-0.1.0\" }}\n"
    );
    std::fs::write(&manifest, patched).expect("patch");
    let built = succeed(
        outpost().arg("build").arg(tmp.path().join("hello")),
        "outpost build",
    );
    assert!(built.contains("hooks: request"), "{built}");
}

/// `GET path` with a User-Agent, over a plain HTTP/1.1 connection; the status line
/// and body.
fn http_get_as(addr: &str, path: &str, agent: &str) -> (String, String) {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return (String::new(), String::new());
    };
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(10)));
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: a\r\nUser-Agent: {agent}\r\nConnection: close\r\n\r\n"
    );
    let mut bytes = Vec::new();
    let _ = s.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

/// Issue "Replay that reproduces what the node decided": the demo stream served to
/// three client classes and recorded (bodies the rendition guest shaped included),
/// replayed with `--verify` through the same config, reproduces every decision;
/// with the cap changed, `--diff` lists exactly the masters whose body changes,
/// with the variants that went.
#[test]
fn a_recording_of_the_demo_stream_verifies_and_a_changed_cap_diffs_only_the_masters_it_trims() {
    use std::io::BufReader;
    use std::process::Stdio;
    let tmp = tempfile::tempdir().expect("tempdir");
    let classes = "\"class.mobile.max_height\" = 540\n\"class.tv.max_height\" = 360\n";
    let base = outpost_edge_default().replacen(
        "max_bandwidth = 4000000\n",
        &format!("max_bandwidth = 4000000\n{classes}"),
        1,
    );
    let recorded = format!("{base}\n[record]\ndir = \"rec\"\nsample = 1.0\n");
    std::fs::write(tmp.path().join("edge.toml"), &recorded).expect("config");
    std::fs::write(tmp.path().join("plain.toml"), &base).expect("config");
    std::fs::write(
        tmp.path().join("capped.toml"),
        base.replacen("max_bandwidth = 4000000\n", "max_bandwidth = 2000000\n", 1),
    )
    .expect("config");

    let mut child = outpost()
        .args([
            "serve",
            "-c",
            "edge.toml",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--no-cache",
        ])
        .current_dir(tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    // Killed if an assertion fails before the node is stopped.
    struct Stop(std::process::Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Stop(child);
    let addr = listening_on(&mut out).expect("the node says where it listens");
    let agents = [
        (
            "desktop",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36",
        ),
        (
            "mobile",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) Mobile/15E148",
        ),
        (
            "tv",
            "Mozilla/5.0 (SMART-TV; Linux; Tizen 6.0) AppleWebKit/537.36 SmartTV",
        ),
    ];
    let mut masters = std::collections::BTreeMap::new();
    for round in 0..3 {
        for (class, ua) in agents {
            let (status, body) = http_get_as(&addr, "/live/master.m3u8", ua);
            assert!(status.contains("200"), "{status}");
            masters.insert(class, body.matches("#EXT-X-STREAM-INF").count());
            let (status, playlist) = http_get_as(&addr, "/live/360p/index.m3u8", ua);
            assert!(status.contains("200"), "{status}");
            if round == 0 {
                let seg = playlist
                    .lines()
                    .find(|l| l.ends_with(".ts"))
                    .expect("a segment")
                    .to_string();
                let (status, _) = http_get_as(&addr, &format!("/live/360p/{seg}"), ua);
                assert!(status.contains("200"), "{status}");
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    // Three classes, each capped its way (the guest keeps at least two variants).
    assert_eq!(masters.get("desktop"), Some(&3), "{masters:?}");
    assert_eq!(masters.get("mobile"), Some(&2), "{masters:?}");
    assert_eq!(masters.get("tv"), Some(&2), "{masters:?}");
    // The recorder writes off the request path: let it catch up, then stop.
    std::thread::sleep(std::time::Duration::from_millis(600));
    let _ = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status();
    let _ = child.0.wait();

    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(tmp.path().join("rec"))
        .expect("recording dir")
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "nothing recorded");
    let lines: Vec<serde_json::Value> = files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(lines.len(), 9 * 2 + 3, "every request recorded");
    let seqs: Vec<u64> = lines.iter().filter_map(|l| l["seq"].as_u64()).collect();
    assert_eq!(seqs.len(), lines.len(), "every line has its seq");
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "seq increases: {seqs:?}"
    );
    let with_body = lines.iter().filter(|l| l.get("body").is_some()).count();
    assert_eq!(
        with_body,
        9 + 9,
        "the masters and playlists keep their bodies"
    );

    let mut replay = outpost();
    replay
        .args(["replay", "-c", "plain.toml", "--verify"])
        .args(&files)
        .current_dir(tmp.path());
    let verified = succeed(&mut replay, "outpost replay --verify");
    eprintln!("{verified}");
    assert!(
        verified.contains("21 reproduced (100.0%), 0 differ"),
        "{verified}"
    );
    assert!(
        verified.contains("request ids") && verified.contains("timing"),
        "{verified}"
    );

    let mut diff = outpost();
    diff.args([
        "replay",
        "-c",
        "plain.toml",
        "--diff",
        "capped.toml",
        "--decisions",
        "diff.jsonl",
    ])
    .args(&files)
    .current_dir(tmp.path());
    let out = diff.output().expect("replay --diff runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{text}");
    assert!(
        text.contains("3 of 21 requests decided differently"),
        "{text}"
    );
    assert!(
        text.contains("- #EXT-X-STREAM-INF:BANDWIDTH=3000000"),
        "the variant that went is shown: {text}"
    );
    let diffs = std::fs::read_to_string(tmp.path().join("diff.jsonl")).expect("diff.jsonl");
    let listed: Vec<serde_json::Value> = diffs
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(listed.len(), 3);
    for d in &listed {
        assert_eq!(d["request"], "GET /live/master.m3u8", "{d}");
        assert_eq!(d["changed"], serde_json::json!(["body"]), "{d}");
    }
}

/// The embedded default config, as `outpost` prints it.
fn outpost_edge_default() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../edge-config/src/default.toml"
    ))
    .expect("the default config")
}
