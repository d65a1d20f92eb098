//! faildebug: the debug client of failsh. Connects to failsh's debug port
//! (`failsh -D PORT`), logs in with the community (`failsh -c`), and shows
//! or changes the log level of each facility at run time, follows the log,
//! or shows the state. The protocol is in `docs/faildebug.md`.
//!
//! A library so that other crates can reach its parts (the man-page
//! generator renders from [`cli::Cli`]); the binary is a thin `fn main`
//! that calls [`main`].

pub mod cli;
pub mod client;
pub mod error;
pub mod protocol;
pub mod run;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, DEFAULT_COMMUNITY};

/// Runs faildebug with the process's arguments and returns its exit status
/// (see [`error`]); every failure is one `faildebug: ` line on stderr.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version; no arguments at all: the help, status 2
        Err(e)
            if !e.use_stderr()
                || e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand =>
        {
            e.exit()
        }
        Err(e) => {
            eprintln!("faildebug: {}", cli::one_line(&e));
            return ExitCode::from(error::USAGE);
        }
    };
    if cli.community == DEFAULT_COMMUNITY {
        eprintln!(
            "faildebug: warning: using the default community '{DEFAULT_COMMUNITY}', which anyone can guess (set -c or FAILDEBUG_COMMUNITY, and failsh -c)"
        );
    }
    match run::run(&cli, &mut std::io::stdout().lock()) {
        Ok(()) => ExitCode::from(error::OK),
        Err(e) => {
            eprintln!("faildebug: {e}");
            ExitCode::from(e.code())
        }
    }
}
