//! faild's command line: the original's getopt-style letters plus long forms.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::logging::Facility;

/// faild — the per-host failover state registry.
///
/// Stores, per service name, the state UP, RECOVER or FAIL and an
/// informational backup-host name; peers and admins read and write it over
/// TCP and UDP on one port.
#[derive(Debug, Clone, Parser)]
#[command(name = "faild", version, about, long_about = None, after_help = AFTER_HELP)]
pub struct Cli {
    /// Community file: lines `SERVICE|* COMMUNITY RO|RW [SOURCE]`. Without it,
    /// community `public` may read and nobody may write.
    #[arg(short = 'c', long = "community-file", value_name = "FILE")]
    pub community_file: Option<PathBuf>,

    /// Key file for signed requests: lines `KEY-ID COMMUNITY|* hex:SECRET`.
    /// A community a key names must sign its requests (unsigned ones are
    /// DENIED); re-read on SIGHUP. See faild-keys(5).
    #[arg(short = 'k', long = "key-file", value_name = "FILE")]
    pub key_file: Option<PathBuf>,

    /// State file, rewritten atomically before every change is acknowledged.
    #[arg(
        short = 's',
        long = "state-file",
        value_name = "FILE",
        env = "FAILD_STATE_FILE",
        default_value = "/var/lib/failover/faild.state"
    )]
    pub state_file: PathBuf,

    /// Write the process id here; removed at exit.
    #[arg(short = 'r', long = "pid-file", value_name = "FILE")]
    pub pid_file: Option<PathBuf>,

    /// Port for both TCP and UDP.
    #[arg(short = 'p', long, default_value_t = failover::DEFAULT_PORT)]
    pub port: u16,

    /// Listen address (repeatable; IPv4 or IPv6). Default: all addresses.
    #[arg(short = 'a', long = "address", value_name = "ADDR")]
    pub addresses: Vec<IpAddr>,

    /// Stay in the foreground and log to stderr (default: detach and log to
    /// journald or syslog).
    #[arg(short = 'F', long)]
    pub foreground: bool,

    /// Run as this user (name or numeric uid) once the ports are bound.
    #[arg(short = 'u', long, value_name = "USER|UID")]
    pub user: Option<String>,

    /// Raise the log level of one facility (repeatable; twice = trace).
    #[arg(short = 'd', long = "debug", value_name = "FACILITY")]
    pub debug: Vec<Facility>,

    /// Lock faild's memory so paging cannot delay replies.
    #[arg(short = 'm', long = "lock-memory")]
    pub lock_memory: bool,

    /// Raise the scheduling priority by N (lower the nice value; needs root).
    #[arg(short = 'n', long = "nice", value_name = "N", value_parser = clap::value_parser!(i32).range(0..=39))]
    pub nice: Option<i32>,

    /// Accepted for the original's portmapper flags and ignored: faild always
    /// serves TCP and UDP on the fixed port (see docs/faild.md).
    #[arg(short = 'T', hide = true)]
    pub tcp_flag: bool,

    /// See -T.
    #[arg(short = 'U', hide = true)]
    pub udp_flag: bool,

    /// Most TCP connections kept at once; at the cap the longest-idle one is
    /// closed to make room.
    #[arg(long, default_value_t = 4096)]
    pub max_connections: usize,

    /// Close a TCP connection idle for this many seconds.
    #[arg(long, value_name = "SECONDS", default_value = "300", value_parser = parse_seconds)]
    pub idle_timeout: Duration,
}

const AFTER_HELP: &str = "\
Log facilities for -d: net, proto, store, auth.
Signals: SIGHUP re-reads the community file and the key file; SIGTERM or SIGINT stop faild cleanly.
Exit status: 0 clean stop; 1 startup failure (message names the file or address); 2 bad arguments.";

fn parse_seconds(s: &str) -> Result<Duration, String> {
    s.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v > 0.0 && *v < 1e9)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{s:?} is not a positive number of seconds"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worked_example_command_line() {
        let cli = Cli::try_parse_from([
            "faild",
            "-c",
            "communityfile",
            "-U",
            "-p",
            "1291",
            "-r",
            "pidfile",
        ])
        .unwrap();
        assert_eq!(cli.port, 1291);
        assert_eq!(cli.pid_file.unwrap(), PathBuf::from("pidfile"));
        assert!(cli.udp_flag && !cli.foreground);
    }

    #[test]
    fn getopt_forms() {
        let cli = Cli::try_parse_from([
            "faild",
            "-Fm",
            "-p1300",
            "-a",
            "127.0.0.2",
            "-a",
            "::1",
            "-d",
            "proto",
            "-dproto",
            "-n",
            "5",
        ])
        .unwrap();
        assert!(cli.foreground && cli.lock_memory);
        assert_eq!(cli.port, 1300);
        assert_eq!(cli.addresses.len(), 2);
        assert_eq!(cli.debug, vec![Facility::Proto, Facility::Proto]);
        assert_eq!(cli.nice, Some(5));
        assert!(Cli::try_parse_from(["faild", "-d", "bogus"]).is_err());
        assert!(Cli::try_parse_from(["faild", "--idle-timeout", "0"]).is_err());
    }
}
