//! The command line:
//!
//! ```text
//! faildebug [-c COMMUNITY] [-p PORT] [-t TIMEOUT] [TARGET] COMMAND
//!   levels | set FACILITY=LEVEL... | log | snapshot
//! ```
//!
//! Every argument is checked here, so a typo exits with status 2 before
//! anything is sent to failsh.

use std::time::Duration;

use clap::{Parser, Subcommand, value_parser};

use crate::protocol::{Assignment, DEFAULT_PORT, check_community};

/// Longest accepted `-t`; anything longer is surely a typo.
const MAX_TIMEOUT_SECS: f64 = 3_600.0;

/// The community failsh uses unless started with `-c`; anyone who can
/// reach the port knows it.
pub const DEFAULT_COMMUNITY: &str = "public";

/// faildebug — change failsh's log levels at run time, follow its log,
/// read its state.
///
/// Talks to the debug port of a running failsh (`failsh -D PORT`); the
/// community must be the one failsh was started with (`failsh -c`).
#[derive(Debug, Parser)]
#[command(name = "faildebug", version, about, long_about = None, after_help = AFTER_HELP)]
pub struct Cli {
    /// Community failsh requires on its debug port
    #[arg(
        short = 'c',
        long,
        value_name = "COMMUNITY",
        env = "FAILDEBUG_COMMUNITY",
        hide_env_values = true,
        default_value = DEFAULT_COMMUNITY,
        value_parser = community
    )]
    pub community: String,

    /// failsh's debug port
    #[arg(
        short = 'p',
        long,
        value_name = "PORT",
        default_value_t = DEFAULT_PORT,
        value_parser = value_parser!(u16).range(1..)
    )]
    pub port: u16,

    /// Seconds to wait for the connection and each answer, fractions allowed
    #[arg(
        short = 't',
        long,
        value_name = "TIMEOUT",
        default_value = "5",
        value_parser = timeout
    )]
    pub timeout: Duration,

    /// Host failsh runs on: a name or an address (failsh's -a)
    #[arg(value_name = "TARGET", default_value = "127.0.0.1", value_parser = host)]
    pub target: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Show each facility's log level
    Levels,
    /// Set log levels, e.g. `set engine=debug hook=trace` (all or none)
    Set {
        /// FACILITY=LEVEL; levels: off, error, warn, info, debug, trace
        #[arg(value_name = "FACILITY=LEVEL", required = true)]
        assignments: Vec<Assignment>,
    },
    /// Follow failsh's log until interrupted (Ctrl-C)
    Log,
    /// Show failsh's state: hosts and services
    Snapshot,
}

const AFTER_HELP: &str = "\
Facilities (failsh -d): engine, hook, config, monitor.
The community travels in clear text; the default 'public' lets anyone who reaches
the port change failsh's log levels: start failsh with -c and keep -D on 127.0.0.1.

Exit status:
  0  success
  1  any other failure (connection lost, failsh busy, not failsh's debug port)
  2  bad arguments, or a command failsh refused (unknown facility or level)
  3  cannot connect (connection refused, unknown host, timed out)
  4  denied: failsh did not accept the community";

/// A clap error as the one line every faildebug error is.
pub fn one_line(err: &clap::Error) -> String {
    failover::usage::one_line(&err.to_string(), "faildebug")
}

fn community(s: &str) -> Result<String, String> {
    check_community(s).map(|()| s.to_string())
}

fn host(s: &str) -> Result<String, String> {
    failover::usage::host_arg(s)
}

fn timeout(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    // The negated test also rejects NaN.
    if !(0.001..=MAX_TIMEOUT_SECS).contains(&secs) {
        return Err(format!(
            "timeout must be from 0.001 to {MAX_TIMEOUT_SECS} seconds"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error;
    use clap::CommandFactory;
    use clap::error::ErrorKind;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("faildebug").chain(args.iter().copied()))
    }

    #[test]
    fn command_is_consistent() {
        Cli::command().debug_assert();
        // The exit statuses are defined once, in `error`.
        assert!(AFTER_HELP.ends_with(error::SUMMARY));
    }

    #[test]
    fn defaults() {
        let cli = parse(&["levels"]).unwrap();
        assert_eq!(cli.target, "127.0.0.1");
        assert_eq!(cli.port, DEFAULT_PORT);
        assert_eq!(cli.community, DEFAULT_COMMUNITY);
        assert_eq!(cli.timeout, Duration::from_secs(5));
        assert_eq!(cli.command, Command::Levels);
    }

    #[test]
    fn target_before_the_command() {
        let cli = parse(&[
            "-c",
            "s3cret",
            "-p",
            "1850",
            "[::1]",
            "set",
            "engine=debug",
            "hook=trace",
        ])
        .unwrap();
        assert_eq!((cli.target.as_str(), cli.port), ("::1", 1850));
        assert_eq!(cli.community, "s3cret");
        let Command::Set { assignments } = cli.command else {
            panic!("not set: {:?}", cli.command);
        };
        assert_eq!(assignments.len(), 2);
        assert_eq!(assignments[1].facility, "hook");
        assert_eq!(parse(&["lukretia", "log"]).unwrap().command, Command::Log);
        assert_eq!(
            parse(&["127.0.0.22", "snapshot"]).unwrap().target,
            "127.0.0.22"
        );
    }

    #[test]
    fn typos_are_usage_errors() {
        let kind = |args: &[&str]| parse(args).expect_err("should be refused").kind();
        assert_eq!(
            kind(&[]),
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        );
        assert_eq!(kind(&["lukretia"]), ErrorKind::MissingSubcommand);
        assert_eq!(kind(&["set"]), ErrorKind::MissingRequiredArgument);
        assert_eq!(kind(&["set", "engine"]), ErrorKind::ValueValidation);
        assert_eq!(kind(&["-p", "0", "levels"]), ErrorKind::ValueValidation);
        assert_eq!(kind(&["-t", "0", "levels"]), ErrorKind::ValueValidation);
        assert_eq!(kind(&["-c", "", "levels"]), ErrorKind::ValueValidation);
        assert_eq!(
            kind(&["host", "levels", "extra"]),
            ErrorKind::UnknownArgument
        );
        let e = parse(&["set", "engine"]).unwrap_err();
        let line = one_line(&e);
        assert!(line.contains("FACILITY=LEVEL"), "{line}");
        assert!(!line.contains('\n'), "{line}");
    }
}
