//! nginx as the origin, configured as operators run it
//! (`tests/fixtures/origins/nginx-origin.conf`): the origin the burst tests and
//! benchmarks put behind the node, since a hand-written test origin is kinder than
//! a real one.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The fixture's configuration.
pub const CONF: &str = include_str!("../fixtures/origins/nginx-origin.conf");

/// A running nginx, stopped when dropped.
pub struct Nginx {
    pub addr: SocketAddr,
    /// Its document root: put files under here.
    pub www: PathBuf,
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // `nginx -s stop` signals the master, which stops its workers; killing the
        // master outright would leave the workers running.
        let _ = command(self.dir.path())
            .args(["-s", "stop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx with its error log, prefix and configuration under `root`.
fn command(root: &Path) -> Command {
    let mut c = Command::new(binary());
    c.arg("-e")
        .arg(root.join("error.log"))
        .arg("-p")
        .arg(root)
        .arg("-c")
        .arg(root.join("nginx.conf"));
    c
}

/// Where Debian's package puts nginx, or the one on the PATH.
fn binary() -> PathBuf {
    let sbin = PathBuf::from("/usr/sbin/nginx");
    if sbin.exists() {
        sbin
    } else {
        PathBuf::from("nginx")
    }
}

impl Nginx {
    /// Start nginx with the fixture's configuration serving `files` (path, bytes),
    /// and wait until it accepts connections. Panics with what to install when nginx
    /// is missing.
    pub fn start(files: &[(&str, &[u8])]) -> Nginx {
        let dir = tempfile::tempdir().expect("nginx's directory");
        let root = dir.path();
        let www = root.join("www");
        for (path, bytes) in files {
            let p = www.join(path.trim_start_matches('/'));
            std::fs::create_dir_all(p.parent().unwrap_or(&www)).expect("nginx's www");
            std::fs::write(&p, bytes).expect("a file for nginx");
        }
        std::fs::create_dir_all(&www).expect("nginx's www");
        let mut last_error = String::new();
        // The port is picked by binding :0 and releasing it: another process may take
        // it in between, so try a few.
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("a free port");
            let conf = root.join("nginx.conf");
            std::fs::write(&conf, config(root, port)).expect("nginx.conf");
            let child = command(root)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn();
            let mut child = match child {
                Ok(c) => c,
                Err(e) => panic!(
                    "cannot run nginx ({e}): these tests need Debian's `nginx` package \
                     (`apt-get install nginx`; .ci/run installs it)"
                ),
            };
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(status)) = child.try_wait() {
                    last_error = format!(
                        "nginx exited ({status}): {}",
                        std::fs::read_to_string(root.join("error.log")).unwrap_or_default()
                    );
                    break;
                }
                if std::net::TcpStream::connect(addr).is_ok() {
                    return Nginx {
                        addr,
                        www,
                        child,
                        dir,
                    };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("nginx did not start: {last_error}");
    }
}

/// The fixture with `@PORT@` and `@ROOT@` filled in, temporary paths under the root
/// (Debian's build puts them under /var/lib/nginx, which a test cannot write), and
/// `user root` when running as root (nginx's workers would otherwise run as
/// `nobody`, who cannot read the test's files).
fn config(root: &Path, port: u16) -> String {
    let r = root.display().to_string();
    let mut conf = CONF
        .replace("@PORT@", &port.to_string())
        .replace("@ROOT@", &r);
    let temps = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
        .iter()
        .map(|t| format!("  {t}_temp_path {r}/{t};\n"))
        .collect::<String>();
    conf = conf.replacen("http {\n", &format!("http {{\n{temps}"), 1);
    if is_root() {
        conf = format!("user root;\n{conf}");
    }
    conf
}

fn is_root() -> bool {
    // The effective uid (no libc call).
    crate::proc_status("Uid", 1).is_some_and(|u| u == "0")
}
