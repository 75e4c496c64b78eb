//! The subcommands: `serve` (the default), `check`, `replay`, `new`, `build`.

pub mod build;
pub mod check;
pub mod new;
pub mod replay;
pub mod serve;
pub mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use outpost::Config;

/// The config at `path`, or the embedded default; an error is printed.
pub fn load(path: Option<&PathBuf>) -> Result<Config, ExitCode> {
    let config = match path {
        Some(p) => Config::from_file(p),
        None => Config::embedded(),
    };
    config.map_err(|e| {
        say_err!("{e}");
        ExitCode::FAILURE
    })
}
