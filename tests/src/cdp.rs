//! Headless Chromium driven over the Chrome DevTools Protocol: open a page,
//! evaluate JavaScript in it (awaiting promises), take screenshots. For the web
//! console's tests (`tests/tests/console.rs`). Blocking: call it from a
//! multi-threaded runtime inside `tokio::task::block_in_place`.
//!
//! Needs Debian's `chromium` (or `OUTPOST_CHROMIUM`); a missing browser fails with
//! what to install.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// The flags every headless Chromium of the tests runs with (the media tests'
/// player too): no sandbox or GPU in a container, media autoplays muted, nothing
/// fetched in the background.
pub const HEADLESS: [&str; 11] = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--autoplay-policy=no-user-gesture-required",
    "--mute-audio",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// A headless Chromium with one page, attached.
pub struct Browser {
    child: Child,
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    session: String,
    next: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Start Chromium and open `url` in a 1400×1000 window.
    pub fn open(url: &str) -> Browser {
        let bin = std::env::var("OUTPOST_CHROMIUM").unwrap_or_else(|_| "chromium".into());
        let profile = tempfile::tempdir().expect("profile dir");
        let mut child = Command::new(&bin)
            .args(HEADLESS)
            .args([
                "--window-size=1400,1000",
                "--remote-debugging-port=0",
                format!("--user-data-dir={}", profile.path().display()).as_str(),
                "about:blank",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start `{bin}` ({e}); this test needs the Debian package `chromium`: \
                     apt-get install -y --no-install-recommends chromium (.ci/run does)"
                )
            });
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent && let Some(ws) = line.strip_prefix("DevTools listening on ") {
                    let _ = tx.send(ws.trim().to_string());
                    sent = true;
                }
            }
        });
        let ws_url = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("{bin} did not open its DevTools port"));
        let (ws, _) = tungstenite::connect(ws_url.as_str()).expect("DevTools websocket");
        let mut b = Browser {
            child,
            ws,
            session: String::new(),
            next: 0,
            _profile: profile,
        };
        let targets = b.call("Target.getTargets", json!({}));
        let page = targets["targetInfos"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["type"] == "page"))
            .and_then(|t| t["targetId"].as_str())
            .expect("a page target")
            .to_string();
        let attached = b.call(
            "Target.attachToTarget",
            json!({ "targetId": page, "flatten": true }),
        );
        b.session = attached["sessionId"]
            .as_str()
            .expect("a session")
            .to_string();
        b.call("Page.enable", json!({}));
        b.call("Page.navigate", json!({ "url": url }));
        b
    }

    /// One DevTools command (on the page's session once attached); its result.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if !self.session.is_empty() {
            msg["sessionId"] = Value::from(self.session.clone());
        }
        self.ws
            .send(Message::text(msg.to_string()))
            .expect("send to DevTools");
        loop {
            let m = self.ws.read().expect("read from DevTools");
            let Message::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(t.as_str()).expect("DevTools JSON");
            if v["id"] == id {
                if let Some(e) = v.get("error") {
                    panic!("{method} failed: {e}");
                }
                return v["result"].clone();
            }
        }
    }

    /// Evaluate `expr` in the page (a promise is awaited); its value, or the
    /// exception's text.
    pub fn eval(&mut self, expr: &str) -> Result<Value, String> {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expr, "awaitPromise": true, "returnByValue": true }),
        );
        if let Some(ex) = r.get("exceptionDetails") {
            return Err(ex["exception"]["description"]
                .as_str()
                .map_or_else(|| ex.to_string(), str::to_string));
        }
        Ok(r["result"]["value"].clone())
    }

    /// Evaluate `expr` until it is truthy (exceptions count as not yet), at most
    /// `within`; its last value.
    pub fn wait_for(&mut self, expr: &str, within: Duration) -> Value {
        let start = Instant::now();
        loop {
            let v = self.eval(expr);
            if let Ok(v) = &v
                && !(v.is_null() || v == &Value::Bool(false) || v == &json!(0) || v == &json!(""))
            {
                return v.clone();
            }
            assert!(
                start.elapsed() < within,
                "waited {within:?} for `{expr}`: last {v:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A PNG of the page as shown, written to `path`.
    pub fn screenshot(&mut self, path: &std::path::Path) {
        let shot = self.call(
            "Page.captureScreenshot",
            json!({ "format": "png", "captureBeyondViewport": true }),
        );
        let data = shot["data"].as_str().expect("screenshot data");
        use base64::Engine as _;
        let png = base64::engine::general_purpose::STANDARD
            .decode(data)
            .expect("base64 screenshot");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot dir");
        }
        std::fs::write(path, png).expect("write screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole process group: Chromium's renderers and GPU process too.
        // `--`: without it, `kill` reads the negative group id as an option.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
