//! `outpost replay`: recorded traffic through a node, in-process or over the
//! network; a report, the decisions, a diff between two configs, expectations.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use outpost::replay::{self, Replayed};

use super::load;

/// `outpost replay`'s arguments.
#[derive(clap::Args)]
pub struct ReplayArgs {
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
    /// Replay a node's own recording through the config it was recorded with and
    /// compare each decision with the recorded one: the share reproduced, the
    /// kinds of difference, what is left out and why. Fails unless every
    /// decision is reproduced. (In-process only.)
    #[arg(long, conflicts_with_all = ["target", "diff", "expect", "launch_day"])]
    verify: bool,
    /// In-process: a header the model origin adds to every recorded answer that
    /// lacks it, `NAME: VALUE` (repeatable). An access log records no response
    /// headers: `--origin-header "cache-control: max-age=3600"` replays it as if
    /// the origin had said how long its answers may be cached.
    #[arg(long = "origin-header", value_name = "NAME: VALUE", value_parser = parse_header)]
    origin_headers: Vec<(String, String)>,
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
    /// In-process: threads to use (default: one per core). The replay steps the
    /// limiter and the cache in order on one; the others run the guests of the
    /// requests ahead, and the replay takes a traced call only if every answer the
    /// guest got still holds: the decisions are the same whatever the number.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    jobs: Option<u16>,
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

/// Run a replay.
pub async fn replay(args: ReplayArgs) -> ExitCode {
    // The expectations are read and checked before anything is replayed.
    let expectations = match args.expect.as_deref().map(replay::Expectations::load) {
        Some(Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
        Some(Ok(x)) => Some(x),
        None => None,
    };
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
    let mut decisions: Vec<Replayed> = Vec::with_capacity(total);
    let mut report = if let Some(target) = args.target {
        let pacing = if args.flood {
            replay::Pacing::Flood
        } else {
            replay::Pacing::Recorded {
                speed: args.speed,
                max_gap: args.max_gap_ms.map(std::time::Duration::from_millis),
            }
        };
        replay::network(target, entries, pacing, args.concurrency, |d, _| {
            decisions.push(d.clone());
            progress(decisions.len());
        })
        .await
    } else {
        let (node, clock) = match node(args.config.clone(), &args.origin_headers).await {
            Ok(n) => n,
            Err(code) => return code,
        };
        if let Some(b) = args.diff.clone() {
            return diff(&node, &clock, b, entries, &args).await;
        }
        if args.verify {
            return verify(&node, &clock, entries, jobs(&args)).await;
        }
        replay::in_process_on(&node, &clock, entries, jobs(&args), |d| {
            decisions.push(d.clone());
            progress(decisions.len());
        })
        .await
    };
    report.malformed = malformed;
    finish(&args, &report, &decisions, expectations.as_ref())
}

/// The node an in-process replay runs (model origins, a virtual clock).
async fn node(
    path: Option<PathBuf>,
    origin_headers: &[(String, String)],
) -> Result<(std::sync::Arc<outpost::Node>, outpost::clock::Clock), ExitCode> {
    let config = load(path.as_ref())?;
    let headers = origin_headers.to_vec();
    replay::replay_node_with(config, None, headers)
        .await
        .map_err(|errors| {
            for e in errors {
                eprintln!("{e}");
            }
            ExitCode::FAILURE
        })
}

/// Replay `entries` and compare each decision with the one recorded.
async fn verify(
    node: &std::sync::Arc<outpost::Node>,
    clock: &outpost::clock::Clock,
    entries: Vec<outpost_traffic::Entry>,
    jobs: usize,
) -> ExitCode {
    let mut replayed = Vec::with_capacity(entries.len());
    replay::in_process_on(node, clock, entries.iter().cloned(), jobs, |d| {
        replayed.push(d.clone());
    })
    .await;
    let v = replay::verify(&entries, &replayed);
    print!("{}", v.summary());
    if v.compared > 0 && v.reproduced == v.compared {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Replay through `a` and through the config at `b`; print (and write) the
/// requests decided differently.
async fn diff(
    a: &std::sync::Arc<outpost::Node>,
    clock_a: &outpost::clock::Clock,
    b: PathBuf,
    entries: Vec<outpost_traffic::Entry>,
    args: &ReplayArgs,
) -> ExitCode {
    let total = entries.len();
    let (node_b, clock_b) = match node(Some(b), &args.origin_headers).await {
        Ok(n) => n,
        Err(code) => return code,
    };
    let mut first = Vec::with_capacity(total);
    let report_a = replay::in_process_on(a, clock_a, entries.iter().cloned(), jobs(args), |d| {
        first.push(d.clone())
    })
    .await;
    let mut other = Vec::with_capacity(total);
    let report_b = replay::in_process_on(&node_b, &clock_b, entries, jobs(args), |d| {
        other.push(d.clone())
    })
    .await;
    let (diffs, _kinds) = replay::diff(&first, &other);
    println!("{} of {total} requests decided differently", diffs.len());
    // What the change does to the origin's load (a cache rule, a shed rule...).
    println!(
        "origin requests: {} → {}{}",
        report_a.origin_requests,
        report_b.origin_requests,
        match (report_a.hit_ratio(), report_b.hit_ratio()) {
            (None, None) => String::new(),
            (a, b) => format!(
                "  (cache hit ratio {:.1}% → {:.1}%)",
                a.unwrap_or(0.0) * 100.0,
                b.unwrap_or(0.0) * 100.0
            ),
        }
    );
    print_groups(&diffs);
    let Some(path) = args.decisions.as_ref() else {
        return ExitCode::SUCCESS;
    };
    let mut text = String::new();
    for d in &diffs {
        match serde_json::to_string(d) {
            Ok(l) => {
                text.push_str(&l);
                text.push('\n');
            }
            Err(e) => eprintln!("error: {e}"),
        }
    }
    if let Err(e) = std::fs::write(path, text) {
        eprintln!("error: writing {}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// The differences grouped by what changed, before → after, largest first, each
/// with its first request.
fn print_groups(diffs: &[replay::Difference]) {
    const SHOWN: usize = 12;
    let groups = replay::grouped(diffs);
    if groups.is_empty() {
        return;
    }
    println!("{} distinct changes:", groups.len());
    for g in groups.iter().take(SHOWN) {
        println!("  {:>8}  {}", g.count, g.changes.join("; "));
        let detail = if g.example_changes.is_empty() {
            String::new()
        } else {
            format!(": {}", g.example_changes.join("; "))
        };
        println!(
            "            e.g. #{} {}{detail}",
            g.example.seq, g.example.request
        );
        // How the example's bodies differ, line by line (a manifest's variants).
        if let Some((gone, new)) = &g.example.body_lines {
            for l in gone.iter().take(8) {
                println!("              - {l}");
            }
            for l in new.iter().take(8) {
                println!("              + {l}");
            }
        }
    }
    if groups.len() > SHOWN {
        let rest: u64 = groups[SHOWN..].iter().map(|g| g.count).sum();
        println!(
            "  {rest:>8}  in {} more groups (every difference is in --decisions)",
            groups.len() - SHOWN
        );
    }
}

/// Write the decisions, print the report, check the expectations.
fn finish(
    args: &ReplayArgs,
    report: &replay::Report,
    decisions: &[Replayed],
    expectations: Option<&replay::Expectations>,
) -> ExitCode {
    if let Some(path) = &args.decisions {
        let written = std::fs::File::create(path).and_then(|f| {
            let mut w = std::io::BufWriter::new(f);
            replay::write_decisions(&mut w, decisions)?;
            std::io::Write::flush(&mut w)
        });
        if let Err(e) = written {
            eprintln!("error: writing {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if args.json {
        match serde_json::to_string_pretty(report) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("error: {e}"),
        }
    } else {
        print!("{}", report.summary());
    }
    match expectations {
        Some(x) => check_expectations(x, decisions),
        None => ExitCode::SUCCESS,
    }
}

/// Check `expectations` over `decisions`; a failing one fails the command.
fn check_expectations(expectations: &replay::Expectations, decisions: &[Replayed]) -> ExitCode {
    let (lines, ok) = expectations.check(decisions);
    for l in lines {
        println!("{l}");
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `NAME: VALUE`, for `--origin-header`.
fn parse_header(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| format!("`{s}`: expected `NAME: VALUE`"))?;
    let name = name.trim();
    http::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("`{name}` is not a header name"))?;
    http::HeaderValue::from_str(value.trim())
        .map_err(|_| format!("`{}` is not a header value", value.trim()))?;
    Ok((name.to_ascii_lowercase(), value.trim().to_string()))
}

/// The threads an in-process replay uses.
fn jobs(args: &ReplayArgs) -> usize {
    args.jobs.map_or_else(replay::default_jobs, usize::from)
}
