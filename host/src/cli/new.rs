//! `outpost new <admit|request|response|all> NAME`: a guest crate of its own, outside
//! any workspace, that builds for `wasm32-wasip2` and passes its native test as
//! generated: Cargo.toml, src/lib.rs (a working example with its tests), README.md,
//! and edge.toml (a node config that serves it in front of the demo origin).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Which hooks the new guest exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Admission: classify or reject before anything else.
    Admit,
    /// Request: rewrite, or answer at the edge.
    Request,
    /// Response: edit the origin's answer.
    Response,
    /// All three, in one crate (one instance per hook call).
    All,
}

/// Where the generated crate takes the SDK from.
#[derive(Debug, Clone)]
pub enum Sdk {
    /// A local checkout's `guests/sdk`.
    Path(PathBuf),
    /// The repository, by git.
    Git(String),
    /// The registry, by version requirement.
    Version(String),
}

/// The SDK this binary was built beside, if that checkout is still there; else
/// the repository by git.
pub fn default_sdk() -> Sdk {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guests/sdk");
    match here.canonicalize() {
        Ok(p) if p.join("Cargo.toml").is_file() => Sdk::Path(p),
        _ => Sdk::Git(REPOSITORY.to_string()),
    }
}

/// The project's repository (the guests workspace's `repository`).
const REPOSITORY: &str = "https://github.com/outpost-edge/outpost";

/// Create the crate `name` under `parent`.
pub fn new(kind: Kind, name: &str, parent: &Path, sdk: &Sdk) -> ExitCode {
    match create(kind, name, parent, sdk) {
        Ok(dir) => {
            say!("Created the {kind:?} guest `{name}` in {}", dir.display());
            say!("");
            say!("  cd {}", dir.display());
            say!("  cargo test                 # its native tests");
            say!("  outpost build              # the component, for wasm32-wasip2");
            say!("  outpost serve -c edge.toml --watch   # serve it; rebuilt on change");
            ExitCode::SUCCESS
        }
        Err(e) => {
            say_err!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn create(kind: Kind, name: &str, parent: &Path, sdk: &Sdk) -> Result<PathBuf, String> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    const RESERVED: [&str; 12] = [
        "test",
        "core",
        "std",
        "alloc",
        "proc_macro",
        "self",
        "super",
        "crate",
        "fn",
        "mod",
        "type",
        "outpost-guest",
    ];
    if valid && (name.len() > 64 || RESERVED.contains(&name)) {
        return Err(format!(
            "`{name}` cannot name a guest crate: it is reserved in Rust or longer than \
             64 characters"
        ));
    }
    if !valid {
        return Err(format!(
            "`{name}` is not a crate name for a guest: expected lower-case ASCII letters, \
             digits, `-` or `_`, starting with a letter"
        ));
    }
    let dir = parent.join(name);
    if dir.exists() {
        return Err(format!("{} already exists", dir.display()));
    }
    let files = [
        ("Cargo.toml", cargo_toml(kind, name, sdk)),
        ("src/lib.rs", lib_rs(kind, name)),
        ("README.md", readme(kind, name)),
        ("edge.toml", edge_toml(kind, name)),
        (".gitignore", "/target\n".to_string()),
    ];
    for (rel, text) in files {
        let path = dir.join(rel);
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p).map_err(|e| format!("creating {}: {e}", p.display()))?;
        }
        std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(dir)
}

fn features(kind: Kind) -> &'static str {
    match kind {
        Kind::Admit => r#"["admit"]"#,
        Kind::Request => r#"["request"]"#,
        Kind::Response => r#"["response"]"#,
        Kind::All => r#"["admit", "request", "response"]"#,
    }
}

fn cargo_toml(kind: Kind, name: &str, sdk: &Sdk) -> String {
    let source = match sdk {
        Sdk::Path(p) => format!("path = {:?}", p.display().to_string()),
        Sdk::Git(url) => format!("git = {url:?}"),
        Sdk::Version(v) => format!("version = {v:?}"),
    };
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

# A component: `cdylib` for wasm32-wasip2, `rlib` so `cargo test` runs natively.
[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
outpost-guest = {{ {source}, features = {features} }}

# Small, fast guests: one codegen unit, whole-program LTO, no unwinding.
[profile.release]
opt-level = 3
lto = true
codegen-units = 1
panic = "abort"
strip = "debuginfo"

# Its own workspace, even when created inside another project's directory.
[workspace]
"#,
        features = features(kind)
    )
}

fn lib_rs(kind: Kind, name: &str) -> String {
    // A suffix so the type never takes a name the SDK's imports hold
    // (`response` would otherwise be `Response`).
    let ty = format!("{}Guest", type_name(name));
    let header = format!(
        "//! `{name}`: an Outpost guest. Edit the hooks below; `cargo test` runs the tests\n\
         //! at the end natively (the SDK stands in for the host), `outpost build` makes the\n\
         //! component.\n\n"
    );
    let body = match kind {
        Kind::Admit => ADMIT,
        Kind::Request => REQUEST,
        Kind::Response => RESPONSE,
        Kind::All => ALL,
    };
    format!(
        "{header}{}",
        body.replace("Guest", &ty).replace("NAME", name)
    )
}

/// `my-guest` → `MyGuest`.
fn type_name(name: &str) -> String {
    name.split(['-', '_'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

const REQUEST: &str = r#"use outpost_guest::{RequestAction, RequestEdit, RequestHead, RequestHook, Response, host};

/// Answers `/hello` at the edge; forwards everything else, tagged.
pub struct Guest;

impl RequestHook for Guest {
    fn on_request(req: &RequestHead) -> RequestAction {
        if req.path == "/hello" {
            let greeting = host::config("greeting").unwrap_or_else(|| "hello".into());
            return RequestAction::respond(Response::text(200, &format!("{greeting} from NAME\n")));
        }
        RequestAction::forward(RequestEdit::default().set_header("x-NAME", "seen"))
    }
}

outpost_guest::export_request!(Guest);

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_guest::testing;

    #[test]
    fn answers_hello_at_the_edge_with_the_configured_greeting() {
        testing::set_config(&[("greeting", "howdy")]);
        let RequestAction::Respond(resp) = Guest::on_request(&RequestHead::get("/hello")) else {
            panic!("expected an answer at the edge");
        };
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body, b"howdy from NAME\n");
    }

    #[test]
    fn forwards_the_rest_tagged() {
        testing::reset();
        let RequestAction::Forward(edit) = Guest::on_request(&RequestHead::get("/video.m3u8")) else {
            panic!("expected a forward");
        };
        assert_eq!(edit, RequestEdit::default().set_header("x-NAME", "seen"));
    }
}
"#;

const ADMIT: &str = r#"use outpost_guest::{AdmitDecision, AdmitHook, PriorityClass, RequestHead, Response};

/// Rejects requests without a `user-agent`; everything else is admitted as normal,
/// and `/live/` manifests as critical (what a viewer needs to keep playing).
pub struct Guest;

impl AdmitHook for Guest {
    fn on_admit(req: &RequestHead) -> AdmitDecision {
        if req.header("user-agent").is_none() {
            return AdmitDecision::reject(Response::text(403, "NAME: a user-agent is required\n"));
        }
        if req.path.starts_with("/live/") && req.path.ends_with(".m3u8") {
            return AdmitDecision::admit(PriorityClass::Critical);
        }
        AdmitDecision::admit(PriorityClass::Normal)
    }
}

outpost_guest::export_admit!(Guest);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_without_a_user_agent_and_classifies_manifests() {
        let bare = RequestHead::get("/live/master.m3u8");
        assert!(matches!(Guest::on_admit(&bare), AdmitDecision::Reject(_)));
        let viewer = RequestHead::get("/live/master.m3u8").with_header("user-agent", "player");
        assert!(matches!(
            Guest::on_admit(&viewer),
            AdmitDecision::Admit(a) if a.class == PriorityClass::Critical
        ));
    }
}
"#;

const RESPONSE: &str = r#"use outpost_guest::{RequestHead, ResponseEdit, ResponseHead, ResponseHook};

/// Marks every response it sees, and tells browsers not to sniff content types.
pub struct Guest;

impl ResponseHook for Guest {
    fn on_response(_req: &RequestHead, _resp: &ResponseHead, _body: Option<&[u8]>) -> ResponseEdit {
        ResponseEdit::default()
            .set_header("x-NAME", "seen")
            .set_header("x-content-type-options", "nosniff")
    }
}

outpost_guest::export_response!(Guest);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_the_response() {
        let edit = Guest::on_response(&RequestHead::get("/"), &ResponseHead::new(200), None);
        assert_eq!(
            edit,
            ResponseEdit::default()
                .set_header("x-NAME", "seen")
                .set_header("x-content-type-options", "nosniff")
        );
    }
}
"#;

const ALL: &str = r#"use outpost_guest::{
    AdmitDecision, AdmitHook, PriorityClass, RequestAction, RequestEdit, RequestHead,
    RequestHook, Response, ResponseEdit, ResponseHead, ResponseHook, host,
};

/// One type, three hooks: admits everything as normal, answers `/hello` at the
/// edge, marks every response.
pub struct Guest;

impl AdmitHook for Guest {
    fn on_admit(_req: &RequestHead) -> AdmitDecision {
        AdmitDecision::admit(PriorityClass::Normal)
    }
}

impl RequestHook for Guest {
    fn on_request(req: &RequestHead) -> RequestAction {
        if req.path == "/hello" {
            let greeting = host::config("greeting").unwrap_or_else(|| "hello".into());
            return RequestAction::respond(Response::text(200, &format!("{greeting} from NAME\n")));
        }
        RequestAction::forward(RequestEdit::default())
    }
}

impl ResponseHook for Guest {
    fn on_response(_req: &RequestHead, _resp: &ResponseHead, _body: Option<&[u8]>) -> ResponseEdit {
        ResponseEdit::default().set_header("x-NAME", "seen")
    }
}

outpost_guest::export_admit!(Guest);
outpost_guest::export_request!(Guest);
outpost_guest::export_response!(Guest);

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_guest::testing;

    #[test]
    fn answers_hello_at_the_edge_with_the_configured_greeting() {
        testing::set_config(&[("greeting", "howdy")]);
        let RequestAction::Respond(resp) = Guest::on_request(&RequestHead::get("/hello")) else {
            panic!("expected an answer at the edge");
        };
        assert_eq!(resp.body, b"howdy from NAME\n");
        let edit = Guest::on_response(&RequestHead::get("/"), &ResponseHead::new(200), None);
        assert_eq!(edit, ResponseEdit::default().set_header("x-NAME", "seen"));
    }
}
"#;

fn readme(kind: Kind, name: &str) -> String {
    format!(
        r#"# {name}

An Outpost guest ({kind:?} hook{s}), made by `outpost new`.

- `cargo test`: the tests in `src/lib.rs`, natively (the SDK stands in for the host:
  `outpost_guest::testing` sets its config, load and clocks).
- `outpost build`: the component, `target/wasm32-wasip2/release/{file}.wasm`, checked
  against the node's contract (its hooks and size are printed).
- `outpost serve -c edge.toml --watch`: a node on 127.0.0.1:8080 in front of the
  built-in demo origin, with this guest on every request; an edit is rebuilt and
  reloaded, and a build that fails keeps the running version.
- `curl -i http://127.0.0.1:8080/hello`

The guest SDK's guide: `guests/README.md` in the Outpost repository.
"#,
        s = if kind == Kind::All { "s" } else { "" },
        file = name.replace('-', "_"),
    )
}

fn edge_toml(kind: Kind, name: &str) -> String {
    let file = name.replace('-', "_");
    let hooks = match kind {
        Kind::Admit => format!("admit = \"{name}\""),
        Kind::Request => format!("request = [\"{name}\"]"),
        Kind::Response => format!("response = [\"{name}\"]"),
        Kind::All => {
            format!("admit = \"{name}\"\nrequest = [\"{name}\"]\nresponse = [\"{name}\"]")
        }
    };
    format!(
        r#"# Serve {name} in front of the built-in demo origin:
#   outpost build && outpost serve -c edge.toml
[[listeners]]
address = "127.0.0.1:8080"

[origins.demo]
kind = "demo"

[guests.{name}]
wasm = "target/wasm32-wasip2/release/{file}.wasm"
cpu = "10ms"
[guests.{name}.config]
greeting = "hello"

[[routes]]
name = "all"
origin = "demo"
{hooks}
"#
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn type_names_are_camel_case() {
        assert_eq!(super::type_name("my-edge_guest"), "MyEdgeGuest");
        assert_eq!(super::type_name("hello"), "Hello");
    }
}
