//! `outpost serve` (the default): run the node until SIGTERM or ctrl-c, then drain
//! (a second signal stops at once); SIGHUP reloads its configuration.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use outpost::{BuildOptions, Running};

use super::load;

/// Run the node on the config at `path` (or the embedded default).
pub async fn serve(
    path: Option<PathBuf>,
    listen: Option<SocketAddr>,
    admin: Option<SocketAddr>,
    no_cache: bool,
    watch: bool,
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
    // The handlers go in before the banner: a signal sent as soon as the node says
    // it serves must not meet the default action (which ends the process).
    let hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            say_err!("cannot listen for SIGHUP, reload disabled: {e}");
            None
        }
    };
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    banner(&running, path.as_ref());
    let watched = if watch {
        let w = super::watch::crates(&running.node().config);
        for c in &w {
            say!(
                "  watching     {} (rebuilt and reloaded on change)",
                c.dir.display()
            );
        }
        if w.is_empty() {
            say!("  --watch: no guest of this config is built from a crate of its own");
        }
        w
    } else {
        Vec::new()
    };
    until_stopped(&running, path.as_ref(), hangup, watched).await;
    drop(term);
    drain(&running).await;
    running.shutdown();
    ExitCode::SUCCESS
}

/// Drain the node up to its `drain_timeout`, or until a second stop signal.
async fn drain(running: &Running) {
    let deadline = running
        .node()
        .config
        .node
        .drain_timeout
        .get_ref()
        .duration();
    say!(
        "draining: no new connections; waiting up to {:?} for {} open ones \
         (signal again to stop now)",
        deadline,
        running.drain.open_connections()
    );
    tokio::select! {
        left = running.drain(deadline) => {
            if left == 0 {
                say!("drained; stopped");
            } else {
                say_err!("drain deadline passed with {left} connections open; stopped");
            }
        }
        () = stop_signal() => say_err!("stopped before the drain ended"),
    }
}

/// SIGTERM or SIGINT (ctrl-c).
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                say_err!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = term => {}
        r = tokio::signal::ctrl_c() => {
            if let Err(e) = r {
                say_err!("cannot wait for ctrl-c: {e}");
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Where the node listens, and what to try.
fn banner(running: &Running, path: Option<&PathBuf>) {
    let from = path.map_or_else(
        || "the embedded default".to_string(),
        |p| p.display().to_string(),
    );
    say!("Outpost is serving ({from}).");
    let node = running.node();
    for (i, l) in running.listeners.iter().enumerate() {
        let scheme = match node.listener_tls.get(i) {
            Some(Some(_)) => "https",
            _ => "http",
        };
        say!("  listening on {scheme}://{l}");
    }
    if let Some(a) = running.admin {
        say!("  admin API    http://{a}/metrics  /healthz  /guests  /config");
        say!("  console      http://{a}/console/");
    }
    if let (Some(demo), Some(l)) = (running.node().demo_origin, running.listeners.first()) {
        say!("  demo origin  http://{demo} (a live HLS stream of looped test clips)");
        say!("");
        say!("Try it:");
        say!("  curl -s http://{l}/live/master.m3u8");
        say!("  curl -s http://{l}/live/360p/index.m3u8");
        say!("  ffplay http://{l}/live/master.m3u8    (or any HLS player)");
    }
    say!(
        "  (SIGHUP reloads the configuration and certificates; SIGTERM or ctrl-c drains and stops)"
    );
}

/// Serve until ctrl-c, reloading on SIGHUP.
async fn until_stopped(
    running: &Running,
    path: Option<&PathBuf>,
    mut hangup: Option<tokio::signal::unix::Signal>,
    mut watched: Vec<super::watch::Watched>,
) {
    // One stop signal for the whole run: one made anew each time round would miss
    // a signal that came while a reload or a rebuild ran.
    let stop = stop_signal();
    tokio::pin!(stop);
    loop {
        let idle = watched.is_empty();
        let tick = async move {
            if idle {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        };
        let reload = async {
            match hangup.as_mut() {
                Some(h) => h.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = &mut stop => return,
            _ = reload => tokio::select! {
                () = &mut stop => return,
                () = reload_from(running, path) => {}
            },
            () = tick => tokio::select! {
                () = &mut stop => return,
                () = rebuild_changed(running, path, &mut watched) => {}
            },
        }
    }
}

/// Rebuild the watched crates that changed; reload if one did and built.
async fn rebuild_changed(
    running: &Running,
    path: Option<&PathBuf>,
    watched: &mut [super::watch::Watched],
) {
    let mut built = false;
    for w in watched.iter_mut() {
        if !w.changed() {
            continue;
        }
        say!("{} changed: rebuilding", w.dir.display());
        let dir = w.dir.clone();
        let result = tokio::task::spawn_blocking(move || super::watch::rebuild(&dir)).await;
        match result {
            Ok(Ok(())) => {
                say!("{}: built", w.dir.display());
                built = true;
            }
            Ok(Err(errors)) => {
                say_err!(
                    "{}: the build failed; still serving the last good build\n{errors}",
                    w.dir.display()
                );
            }
            Err(e) => say_err!("{}: the build did not finish: {e}", w.dir.display()),
        }
    }
    if built {
        reload_from(running, path).await;
    }
}

/// Reload the config at `path`; on any error the old one keeps serving.
async fn reload_from(running: &Running, path: Option<&PathBuf>) {
    let Ok(config) = load(path) else {
        say_err!("reload refused: the configuration is invalid; still serving the old one");
        return;
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
