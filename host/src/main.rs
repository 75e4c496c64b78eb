//! The `outpost` command: `serve` (the default), `check`, `replay`, `new`, `build`.

#![warn(clippy::too_many_lines)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc rather than glibc's allocator: a request's many small, short-lived
/// allocations (header maps, strings, futures) are served from per-thread pages
/// (benches/README.md, "The host's own path").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Outpost: WebAssembly edge functions for CDN nodes.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the edge node (the default command). Without --config, runs the embedded
    /// default: a demo origin serving a live HLS stream behind the shipped guests.
    Serve {
        /// The configuration file (TOML).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Listen here instead of the first listener's configured address.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Serve the admin API here instead of the configured address.
        #[arg(long)]
        admin: Option<SocketAddr>,
        /// Do not read or write the compiled-guest cache.
        #[arg(long)]
        no_cache: bool,
        /// Rebuild the guests the config loads from their own crates when their
        /// sources change, and reload; a failed build keeps the running version.
        #[arg(long)]
        watch: bool,
    },
    /// Validate a configuration, load and link every guest, report every error.
    Check {
        /// The configuration file (TOML).
        config: PathBuf,
    },
    /// Replay recorded traffic (HAR, Common/Combined Log Format, Outpost JSONL;
    /// told from the content) through a node and report its decisions.
    Replay(Box<cli::replay::ReplayArgs>),
    /// Create a guest crate: a working example with its tests, a README, and a
    /// config that serves it.
    New {
        /// The hooks it exports.
        #[arg(value_enum)]
        kind: cli::new::Kind,
        /// The crate's name (and directory).
        name: String,
        /// Create it under this directory.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Depend on the SDK at this path (default: the checkout this binary was
        /// built from, if present, else the repository by git).
        #[arg(long)]
        sdk_path: Option<PathBuf>,
        /// Depend on the SDK by version from the registry (`0.1`), as a guest
        /// outside any checkout does once the SDK is published.
        #[arg(long, conflicts_with = "sdk_path")]
        sdk_version: Option<String>,
    },
    /// Build a guest crate for wasm32-wasip2, check it against this node's
    /// contract, and print its size and hooks.
    Build {
        /// The crate's directory.
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
}

/// Print a line to stdout; a closed stdout (`outpost | head -1`) is not an error:
/// the node keeps serving. (`println!` panics on a broken pipe.)
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($t)*);
    }};
}

/// [`say!`] for stderr.
macro_rules! say_err {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($t)*);
    }};
}

mod cli;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("OUTPOST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour only on a terminal: redirected to a file or a log pipeline, the
        // escape codes would be noise.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let command = cli.command.unwrap_or(Command::Serve {
        config: None,
        listen: None,
        admin: None,
        no_cache: false,
        watch: false,
    });
    runtime.block_on(async {
        match command {
            Command::Serve {
                config,
                listen,
                admin,
                no_cache,
                watch,
            } => cli::serve::serve(config, listen, admin, no_cache, watch).await,
            Command::Check { config } => cli::check::check(config).await,
            Command::Replay(args) => cli::replay::replay(*args).await,
            Command::New {
                kind,
                name,
                dir,
                sdk_path,
                sdk_version,
            } => {
                let sdk = match (sdk_path, sdk_version) {
                    (Some(p), _) => cli::new::Sdk::Path(p),
                    (None, Some(v)) => cli::new::Sdk::Version(v),
                    (None, None) => cli::new::default_sdk(),
                };
                cli::new::new(kind, &name, &dir, &sdk)
            }
            Command::Build { dir } => cli::build::build(&dir),
        }
    })
}
