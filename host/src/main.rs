//! The `outpost` command: `serve` (the default), `check`.

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
        }
    })
}

fn load(path: Option<&PathBuf>) -> Result<Config, ExitCode> {
    let config = match path {
        Some(p) => Config::from_file(p),
        None => Config::embedded(),
    };
    config.map_err(|e| {
        eprintln!("{e}");
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
            eprintln!("{e:#}");
            return ExitCode::FAILURE;
        }
    };
    let from = path.as_ref().map_or_else(
        || "the embedded default".to_string(),
        |p| p.display().to_string(),
    );
    println!("Outpost is serving ({from}).");
    for l in &running.listeners {
        println!("  listening on http://{l}");
    }
    if let Some(a) = running.admin {
        println!("  admin API    http://{a}/metrics  /healthz  /guests  /config");
    }
    if let (Some(demo), Some(l)) = (running.node().demo_origin, running.listeners.first()) {
        println!("  demo origin  http://{demo} (a synthetic live HLS stream)");
        println!();
        println!("Try it:");
        println!("  curl -s http://{l}/live/master.m3u8");
        println!("  curl -s http://{l}/live/360p/index.m3u8");
        println!("  ffplay http://{l}/live/master.m3u8    (or any HLS player)");
    }
    println!("  (SIGHUP reloads the configuration; ctrl-c stops)");
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("cannot listen for SIGHUP, reload disabled: {e}");
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
                    eprintln!("cannot wait for ctrl-c: {e}");
                }
                println!("shutting down");
                break;
            }
            _ = reload => {
                let config = match load(path.as_ref()) {
                    Ok(c) => c,
                    Err(_) => {
                        eprintln!("reload refused: the configuration is invalid; still serving the old one");
                        continue;
                    }
                };
                match running.reload(config).await {
                    Ok(()) => println!("configuration reloaded"),
                    Err(errors) => {
                        for e in &errors {
                            eprintln!("error: {e}");
                        }
                        eprintln!("reload refused; still serving the old configuration");
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
