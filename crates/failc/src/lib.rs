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
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use failover::auth::{KeyRing, Signer};
use failover_daemon::secret::read_secret_file;

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
    if let Some(file) = &cli.key_file {
        match signer(file, &cli.community, cli.key_id.as_deref()) {
            Ok(signer) => client.sign_with(signer),
            Err(e) => {
                eprintln!("failc: {e}");
                return ExitCode::from(exit::USAGE);
            }
        }
    }
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

/// The signer for `-k`: the key file read through the secret-file checks,
/// and the key for the community picked from it.
fn signer(file: &Path, community: &str, key_id: Option<&str>) -> Result<Signer, String> {
    let secret = read_secret_file(file).map_err(|e| format!("key file {e}"))?;
    for warning in &secret.warnings {
        eprintln!("failc: warning: key file {warning}");
    }
    let ring =
        KeyRing::parse(&secret.text, &file.display().to_string()).map_err(|e| e.to_string())?;
    let key = ring
        .signing_key(community, key_id)
        .map_err(|e| format!("key file {}: {e}", file.display()))?;
    let seed = failover_daemon::random::seed().map_err(|e| format!("/dev/urandom: {e}"))?;
    Ok(Signer::new(key.clone(), seed))
}
