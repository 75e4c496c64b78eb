//! The subcommands: `serve` (the default), `check`, `replay`.

pub mod check;
pub mod replay;
pub mod serve;

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
