//! The `outpost` command: `serve` (the default), `check`, `replay`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use outpost::{BuildOptions, Config};

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
    },
    /// Validate a configuration, load and link every guest, report every error.
    Check {
        /// The configuration file (TOML).
        config: PathBuf,
    },
    /// Replay recorded traffic (HAR, Common/Combined Log Format, Outpost JSONL;
    /// told from the content) through a node and report its decisions.
    Replay(ReplayArgs),
}

#[derive(clap::Args)]
struct ReplayArgs {
    /// The recordings.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// The configuration (default: the embedded one).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// A second configuration: replay through both in-process and list the
    /// requests whose decisions differ, grouped by kind of change. (In-process
    /// only, and it reports differences, not a report: it does not combine with
    /// --target, --json or --expect.)
    #[arg(long, conflicts_with_all = ["target", "json", "expect"])]
    diff: Option<PathBuf>,
    /// Force the input format: har, clf, jsonl.
    #[arg(long)]
    format: Option<String>,
    /// Stop at the first malformed entry instead of reporting and skipping it.
    #[arg(long)]
    strict: bool,
    /// The authority for inputs that have none (access logs).
    #[arg(long, default_value = "localhost")]
    authority: String,
    /// Write every request's decisions (or, with --diff, every difference) as JSONL.
    #[arg(long)]
    decisions: Option<PathBuf>,
    /// Assertions to check over the replay (TOML); failing ones fail the command.
    #[arg(long)]
    expect: Option<PathBuf>,
    /// Network mode: send the requests over HTTP to a running node at this address.
    #[arg(long)]
    target: Option<SocketAddr>,
    /// Network mode: replay speed relative to the recorded times.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Network mode: longest idle gap between requests, milliseconds.
    #[arg(long)]
    max_gap_ms: Option<u64>,
    /// Network mode: ignore recorded times, send as fast as --concurrency allows.
    #[arg(long)]
    flood: bool,
    /// Network mode: requests in flight at most.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Scenario "launch day": multiply the requests under this path prefix (the
    /// live share) by --spike, each copy a distinct viewer, and compress the
    /// whole in time by --compress.
    #[arg(long)]
    launch_day: Option<String>,
    /// Launch day: copies of each live request.
    #[arg(long, default_value_t = 20)]
    spike: u32,
    /// Launch day: time compression factor.
    #[arg(long, default_value_t = 10.0)]
    compress: f64,
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

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("OUTPOST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
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
    });
    runtime.block_on(async {
        match command {
            Command::Serve {
                config,
                listen,
                admin,
                no_cache,
            } => serve(config, listen, admin, no_cache).await,
            Command::Check { config } => check(config).await,
            Command::Replay(args) => replay(args).await,
        }
    })
}

fn load(path: Option<&PathBuf>) -> Result<Config, ExitCode> {
    let config = match path {
        Some(p) => Config::from_file(p),
        None => Config::embedded(),
    };
    config.map_err(|e| {
        say_err!("{e}");
        ExitCode::FAILURE
    })
}

async fn serve(
    path: Option<PathBuf>,
    listen: Option<SocketAddr>,
    admin: Option<SocketAddr>,
    no_cache: bool,
) -> ExitCode {
    let config = match load(path.as_ref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let opts = BuildOptions {
        no_cache,
        ..Default::default()
    };
    let running = match outpost::start(config, &opts, listen, admin.map(Some)).await {
        Ok(r) => r,
        Err(e) => {
            say_err!("{e:#}");
            return ExitCode::FAILURE;
        }
    };
    let from = path.as_ref().map_or_else(
        || "the embedded default".to_string(),
        |p| p.display().to_string(),
    );
    say!("Outpost is serving ({from}).");
    for l in &running.listeners {
        say!("  listening on http://{l}");
    }
    if let Some(a) = running.admin {
        say!("  admin API    http://{a}/metrics  /healthz  /guests  /config");
    }
    if let (Some(demo), Some(l)) = (running.node().demo_origin, running.listeners.first()) {
        say!("  demo origin  http://{demo} (a synthetic live HLS stream)");
        say!("");
        say!("Try it:");
        say!("  curl -s http://{l}/live/master.m3u8");
        say!("  curl -s http://{l}/live/360p/index.m3u8");
        say!("  ffplay http://{l}/live/master.m3u8    (or any HLS player)");
    }
    say!("  (SIGHUP reloads the configuration; ctrl-c stops)");
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            say_err!("cannot listen for SIGHUP, reload disabled: {e}");
            None
        }
    };
    loop {
        let reload = async {
            match hangup.as_mut() {
                Some(h) => h.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = tokio::signal::ctrl_c() => {
                if let Err(e) = r {
                    say_err!("cannot wait for ctrl-c: {e}");
                }
                say!("shutting down");
                break;
            }
            _ = reload => {
                let config = match load(path.as_ref()) {
                    Ok(c) => c,
                    Err(_) => {
                        say_err!("reload refused: the configuration is invalid; still serving the old one");
                        continue;
                    }
                };
                match running.reload(config).await {
                    Ok(()) => say!("configuration reloaded"),
                    Err(errors) => {
                        for e in &errors {
                            say_err!("error: {e}");
                        }
                        say_err!("reload refused; still serving the old configuration");
                    }
                }
            }
        }
    }
    running.shutdown();
    ExitCode::SUCCESS
}

async fn check(path: PathBuf) -> ExitCode {
    let config = match load(Some(&path)) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let routes = config.routes.len();
    match outpost::Node::build(config, &BuildOptions::default()).await {
        Ok(node) => {
            println!(
                "{}: ok ({} routes, {} guests, {} origins)",
                path.display(),
                routes,
                node.guests.len(),
                node.origins.len()
            );
            for (name, g) in &node.guests {
                println!("  guest {name}: exports {}", g.hooks);
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("error: {e}");
            }
            eprintln!("{} error(s)", errors.len());
            ExitCode::FAILURE
        }
    }
}

fn read_entries(args: &ReplayArgs) -> Result<(Vec<outpost_traffic::Entry>, u64), ExitCode> {
    let format = match args
        .format
        .as_deref()
        .map(str::parse::<outpost_traffic::Format>)
    {
        None => None,
        Some(Ok(f)) => Some(f),
        Some(Err(e)) => {
            eprintln!("error: --format: {e}");
            return Err(ExitCode::FAILURE);
        }
    };
    let options = outpost_traffic::Options {
        format,
        authority: args.authority.clone(),
        ..Default::default()
    };
    let mut entries = Vec::new();
    let mut malformed = 0;
    for f in &args.files {
        let reader = match outpost_traffic::read_file(f, &options) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {}: {e}", f.display());
                return Err(ExitCode::FAILURE);
            }
        };
        for item in reader {
            match item {
                Ok(e) => entries.push(e),
                Err(e) => {
                    eprintln!("skipped: {e}");
                    malformed += 1;
                    if args.strict {
                        return Err(ExitCode::FAILURE);
                    }
                }
            }
        }
    }
    if entries.is_empty() {
        eprintln!(
            "error: no valid entry to replay in {} ({malformed} malformed)",
            args.files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Err(ExitCode::FAILURE);
    }
    Ok((entries, malformed))
}

async fn replay(args: ReplayArgs) -> ExitCode {
    use outpost::replay::{self, Decision};
    let (mut entries, malformed) = match read_entries(&args) {
        Ok(x) => x,
        Err(code) => return code,
    };
    if let Some(prefix) = &args.launch_day {
        entries = replay::launch_day(&entries, prefix, args.spike, args.compress);
    }
    let total = entries.len();
    let progress = move |n: usize| {
        if n.is_multiple_of(5000) || n == total {
            eprint!("\rreplayed {n} / {total}");
            if n == total {
                eprintln!();
            }
        }
    };
    let mut report;
    let mut decisions: Vec<Decision> = Vec::with_capacity(total);
    if let Some(target) = args.target {
        let pacing = if args.flood {
            replay::Pacing::Flood
        } else {
            replay::Pacing::Recorded {
                speed: args.speed,
                max_gap: args.max_gap_ms.map(std::time::Duration::from_millis),
            }
        };
        report = replay::network(target, entries, pacing, args.concurrency, |d, _| {
            decisions.push(d.clone());
            progress(decisions.len());
        })
        .await;
    } else {
        let build = |path: Option<PathBuf>| async move {
            let config = load(path.as_ref())?;
            replay::replay_node(config, None).await.map_err(|errors| {
                for e in errors {
                    eprintln!("{e}");
                }
                ExitCode::FAILURE
            })
        };
        let (node, clock) = match build(args.config.clone()).await {
            Ok(n) => n,
            Err(code) => return code,
        };
        report = replay::in_process(&node, &clock, entries.iter().cloned(), |d| {
            decisions.push(d.clone());
            progress(decisions.len());
        })
        .await;
        if let Some(b) = args.diff.clone() {
            let (node_b, clock_b) = match build(Some(b)).await {
                Ok(n) => n,
                Err(code) => return code,
            };
            let mut other = Vec::with_capacity(total);
            replay::in_process(&node_b, &clock_b, entries, |d| other.push(d.clone())).await;
            let (diffs, kinds) = replay::diff(&decisions, &other);
            println!("{} of {total} requests decided differently", diffs.len());
            for (kind, n) in &kinds {
                println!("  {n:>8}  {kind}");
            }
            for d in diffs.iter().take(20) {
                println!(
                    "  #{} {}: {} → {}",
                    d.seq,
                    d.request,
                    d.a.forwarded.as_deref().unwrap_or(&d.a.answered_by),
                    d.b.forwarded.as_deref().unwrap_or(&d.b.answered_by)
                );
            }
            if let Some(path) = &args.decisions {
                let mut out = String::new();
                for d in &diffs {
                    match serde_json::to_string(d) {
                        Ok(l) => {
                            out.push_str(&l);
                            out.push('\n');
                        }
                        Err(e) => eprintln!("error: {e}"),
                    }
                }
                if let Err(e) = std::fs::write(path, out) {
                    eprintln!("error: writing {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
            }
            return ExitCode::SUCCESS;
        }
    }
    report.malformed = malformed;
    if let Some(path) = &args.decisions {
        let written = std::fs::File::create(path).and_then(|f| {
            let mut w = std::io::BufWriter::new(f);
            replay::write_decisions(&mut w, &decisions)?;
            std::io::Write::flush(&mut w)
        });
        if let Err(e) = written {
            eprintln!("error: writing {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("error: {e}"),
        }
    } else {
        print!("{}", report.summary());
    }
    if let Some(path) = &args.expect {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: reading {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        };
        let expectations: replay::Expectations = match toml::from_str(&text) {
            Ok(x) => x,
            Err(e) => {
                eprintln!("error: {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        };
        let (lines, ok) = expectations.check(&decisions);
        for l in lines {
            println!("{l}");
        }
        if !ok {
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
