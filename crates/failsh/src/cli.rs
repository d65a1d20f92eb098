//! failsh's command line, as the original's plus long forms.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::Parser;

/// A named subsystem whose log level `-d` raises (a `tracing` target).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Facility {
    /// Decisions and state changes of each service.
    Engine,
    /// Hook calls, their durations and results.
    Hook,
    /// The config and its reloads.
    Config,
    /// The monitor and debug ports.
    Monitor,
}

impl Facility {
    /// Every facility, in the order `levels` lists them.
    pub const ALL: [Facility; 4] = [
        Facility::Engine,
        Facility::Hook,
        Facility::Config,
        Facility::Monitor,
    ];

    /// The facility called `name` (any case), as `-d` and the debug port
    /// take it.
    pub fn named(name: &str) -> Option<Facility> {
        Facility::ALL
            .into_iter()
            .find(|f| f.target().eq_ignore_ascii_case(name))
    }

    /// The facility's name, which is also its `tracing` target.
    pub fn target(self) -> &'static str {
        match self {
            Facility::Engine => "engine",
            Facility::Hook => "hook",
            Facility::Config => "config",
            Facility::Monitor => "monitor",
        }
    }
}

/// The environment variable that may carry `--community`.
pub const COMMUNITY_ENV: &str = "FAILSH_COMMUNITY";
/// The variables holding communities (failsh's, failc's, faildebug's):
/// removed from failsh's environment at start, so no hook inherits them.
pub const SECRET_ENV: [&str; 3] = [COMMUNITY_ENV, "FAILC_COMMUNITY", "FAILDEBUG_COMMUNITY"];

/// failsh — the failover shell.
///
/// Runs a per-host Lua config that declares services, their masters and
/// slaves and start/stop/reclaim/check hooks; polls the faild of every master
/// and slave at each service's interval and starts, stops or reclaims the
/// local service, recording the result in the local faild.
#[derive(Debug, Clone, Parser)]
#[command(name = "failsh", version, about, long_about = None, after_help = AFTER_HELP)]
pub struct Cli {
    /// The Lua config (mandatory).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: PathBuf,

    /// Check the config and exit: 0 if it loads, 1 with `file:line: message`
    /// (also for a master or slave whose name does not resolve).
    #[arg(short = 't', long = "test")]
    pub test: bool,

    /// Stay in the foreground and log to stderr.
    #[arg(short = 'F', long)]
    pub foreground: bool,

    /// Raise the log level of one facility (repeatable; twice = trace).
    #[arg(short = 'd', long = "debug", value_name = "FACILITY")]
    pub debug: Vec<Facility>,

    /// Write the process id here; removed at exit.
    #[arg(short = 'i', long = "pid-file", value_name = "FILE")]
    pub pid_file: Option<PathBuf>,

    /// SIGINT dumps the full state here (a FIFO stays open between dumps).
    /// Its directory must belong to failsh's user and be writable by nobody
    /// else; failsh creates it (mode 0750) if missing. Symbolic links,
    /// hard-linked files and files of other users are refused.
    #[arg(
        short = 'l',
        long = "dump-file",
        value_name = "FILE",
        default_value = crate::dump::DEFAULT_FILE
    )]
    pub dump_file: PathBuf,

    /// Monitor port (failmon's): a JSON snapshot of every host and service
    /// on connect, then on every change and at most once a second.
    #[arg(
        short = 'm',
        long = "monitor-port",
        value_name = "PORT",
        default_value_t = 1848
    )]
    pub monitor_port: u16,

    /// Debug port (faildebug's; off unless given): log levels and the log,
    /// after the community.
    #[arg(short = 'D', long = "debug-port", value_name = "PORT")]
    pub debug_port: Option<u16>,

    /// Community a debug-port client must send first (or FAILSH_COMMUNITY,
    /// which keeps it out of `ps`; failsh takes it out of its environment, so
    /// hooks do not inherit it).
    #[arg(
        short = 'c',
        long,
        env = COMMUNITY_ENV,
        hide_env_values = true,
        default_value = "public"
    )]
    pub community: String,

    /// Address the monitor and debug ports listen on.
    #[arg(
        short = 'a',
        long = "address",
        value_name = "ADDR",
        default_value = "127.0.0.1"
    )]
    pub address: IpAddr,

    /// Serve Prometheus metrics at http://ADDR:PORT/metrics (off unless given).
    #[arg(short = 'M', long = "metrics", value_name = "ADDR:PORT")]
    pub metrics: Option<SocketAddr>,
}

const AFTER_HELP: &str = "\
Log facilities for -d: engine, hook, config, monitor.
Signals: SIGHUP reloads the config (a broken one keeps the old running); SIGINT dumps the
state to the dump file; SIGTERM stops failsh without touching the services.
Exit status: 0 clean stop or config OK; 1 config error or start-up failure; 2 bad arguments.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worked_example_command_line() {
        let cli = Cli::try_parse_from([
            "failsh",
            "-f",
            "/opt/AFMfail/etc/lukretia.tcl",
            "-i",
            "/var/run/failsh.pid",
            "-m",
            "1848",
            "-D",
            "1849",
        ])
        .unwrap();
        assert_eq!(cli.monitor_port, 1848);
        assert_eq!(cli.debug_port, Some(1849));
        assert!(!cli.foreground && !cli.test);
        assert!(Cli::try_parse_from(["failsh"]).is_err(), "-f is mandatory");
        assert!(Cli::try_parse_from(["failsh", "-f", "x", "-d", "bogus"]).is_err());
    }

    #[test]
    fn every_facility_is_listed_and_found_by_name() {
        use clap::ValueEnum;
        assert_eq!(Facility::ALL.as_slice(), Facility::value_variants());
        for f in Facility::ALL {
            assert_eq!(Facility::named(f.target()), Some(f));
            assert_eq!(Facility::named(&f.target().to_uppercase()), Some(f));
        }
        assert_eq!(Facility::named("bogus"), None);
    }
}
