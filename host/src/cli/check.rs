//! `outpost check`: validate a configuration, load and link every guest, report
//! every error.

use std::path::PathBuf;
use std::process::ExitCode;

use outpost::BuildOptions;

use super::load;

/// Check the config at `path`.
pub async fn check(path: PathBuf) -> ExitCode {
    let config = match load(Some(&path)) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let routes = config.routes.len();
    match outpost::Node::build(config, &BuildOptions::default()).await {
        Ok(node) => {
            let count = |n: usize, one: &str| {
                if n == 1 {
                    format!("1 {one}")
                } else {
                    format!("{n} {one}s")
                }
            };
            println!(
                "{}: ok ({}, {}, {})",
                path.display(),
                count(routes, "route"),
                count(node.guests.len(), "guest"),
                count(node.origins.len(), "origin")
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
