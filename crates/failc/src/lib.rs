//! failc: the administrator's command line client of faild. Sets service
//! states (`-s`), reads them, lists (`-l`) and deletes (`-x`) them.
//!
//! A library so that other crates can reach failc's parts without running
//! it: the man-page generator renders `failc.1` from [`cli::Cli`], as it does
//! for faild and failsh. The binary is a thin `fn main` that calls [`main`].

pub mod cli;
pub mod client;
pub mod error;
pub mod exit;
pub mod output;
pub mod run;

use std::io::{self, Write};
use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;
use crate::client::Client;

/// Runs failc with the process's arguments: parses them (status 2 on a
/// usage error), sends the requests, prints the records and one `failc: `
/// line per warning or failure, and returns the exit status (see [`exit`]).
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            eprintln!("failc: {}", cli::one_line(&e));
            return ExitCode::from(exit::USAGE);
        }
    };
    let mut client = Client::new(
        cli.target(),
        cli.transport(),
        cli.community.clone(),
        cli.timeout,
    );
    let outcome = run::run(&mut client, &cli.action(), &cli.community);

    for line in &outcome.warnings {
        eprintln!("failc: {line}");
    }
    for failure in &outcome.failures {
        eprintln!("failc: {failure}");
    }
    let mut stdout = io::stdout().lock();
    let written = if cli.json {
        output::write_json(&mut stdout, &outcome.entries)
    } else {
        output::write_text(&mut stdout, &outcome.entries)
    };
    if let Err(e) = written.and_then(|()| stdout.flush()) {
        eprintln!("failc: cannot write output: {e}");
        return ExitCode::from(exit::FAILURE);
    }
    ExitCode::from(outcome.exit_code())
}
