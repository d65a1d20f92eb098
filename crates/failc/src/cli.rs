//! The command line, getopt-style as in the original failc:
//!
//! ```text
//! failc [-c COMMUNITY] [-h HOST] [-p PORT] [-T|-U] [-t TIMEOUT]
//!       [-s STATE [-b BACKUP]] [-l] [-x] [--json] SERVICE...
//! ```
//!
//! Every argument is checked here, so that a typo exits with status 2 before
//! anything is sent to faild.

use std::str::FromStr;
use std::time::Duration;

use clap::{ArgAction, ArgGroup, Parser, value_parser};
use failover::names::{check_community, check_name};
use failover::proto::Origin;
use failover::{DEFAULT_PORT, State};

use crate::client::{Target, Transport};
use crate::exit;

/// Longest accepted `-t`; anything longer is surely a typo.
const MAX_TIMEOUT_SECS: f64 = 86_400.0;

#[derive(Debug, Parser)]
#[command(
    name = "failc",
    version,
    about,
    // -h is the faild host, as in the original failc; help is --help only.
    disable_help_flag = true,
    after_help = exit::SUMMARY,
    group(ArgGroup::new("action").args(["set", "list", "delete"])),
)]
pub struct Cli {
    /// Community string that faild checks the request against
    #[arg(
        short = 'c',
        long,
        value_name = "COMMUNITY",
        env = "FAILC_COMMUNITY",
        // --help must not print the secret the environment holds.
        hide_env_values = true,
        default_value = "public",
        value_parser = community
    )]
    pub community: String,

    /// Sign requests with a key from FILE (lines `KEY-ID COMMUNITY|*
    /// hex:SECRET`, as faild's -k) and accept only replies signed with it
    #[arg(short = 'k', long, value_name = "FILE", env = "FAILC_KEY_FILE")]
    pub key_file: Option<std::path::PathBuf>,

    /// With -k: the key to sign with (default: the last key in the file for
    /// the community)
    #[arg(long, value_name = "ID", env = "FAILC_KEY_ID", requires = "key_file", value_parser = key_id)]
    pub key_id: Option<String>,

    /// faild host: a name, an IPv4 or an IPv6 address
    #[arg(
        short = 'h',
        long,
        value_name = "HOST",
        default_value = "localhost",
        value_parser = host
    )]
    host: String,

    /// faild port
    #[arg(
        short = 'p',
        long,
        value_name = "PORT",
        default_value_t = DEFAULT_PORT,
        value_parser = value_parser!(u16).range(1..)
    )]
    port: u16,

    /// Talk to faild over TCP (the default)
    #[arg(short = 'T', long, conflicts_with = "udp")]
    tcp: bool,

    /// Talk to faild over UDP, resending every TIMEOUT/4
    #[arg(short = 'U', long)]
    udp: bool,

    /// Seconds to wait for each answer, fractions allowed
    #[arg(
        short = 't',
        long,
        value_name = "TIMEOUT",
        default_value = "3",
        value_parser = timeout
    )]
    pub timeout: Duration,

    /// Set each SERVICE to STATE: UP, RECOVER or FAIL (any case)
    #[arg(short = 's', long = "set", value_name = "STATE", value_parser = State::from_str)]
    set: Option<State>,

    /// With -s: the host that backs the services up (informational)
    #[arg(
        short = 'b',
        long,
        value_name = "BACKUP",
        requires = "set",
        value_parser = backup
    )]
    backup: Option<String>,

    /// With -s: write the state even while failsh runs the service (peers
    /// may then see it free while it still runs); normally RECOVER or FAIL
    /// of such a service is a stop request that failsh carries out
    #[arg(long, requires = "set")]
    force: bool,

    /// With -s: when a stop was requested, wait up to SECONDS for failsh to
    /// carry it out (exit 7 if it does not)
    #[arg(
        short = 'w',
        long,
        value_name = "SECONDS",
        requires = "set",
        value_parser = timeout
    )]
    wait: Option<Duration>,

    /// List every service the community may read
    #[arg(short = 'l', long)]
    list: bool,

    /// Delete each SERVICE, printing what it was
    #[arg(short = 'x', long = "delete")]
    delete: bool,

    /// Print the records as a JSON array
    #[arg(long)]
    pub json: bool,

    /// Print help
    #[arg(long, action = ArgAction::Help)]
    help: Option<bool>,

    /// Services to query, set or delete
    #[arg(
        value_name = "SERVICE",
        required_unless_present = "list",
        conflicts_with = "list",
        value_parser = service
    )]
    services: Vec<String>,
}

/// What one invocation asks faild to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Get(Vec<String>),
    Set {
        state: State,
        backup: Option<String>,
        origin: Origin,
        /// How long to wait for a requested stop to be carried out.
        wait: Option<Duration>,
        services: Vec<String>,
    },
    Delete(Vec<String>),
    List,
}

impl Cli {
    pub fn action(&self) -> Action {
        let services = self.services.clone();
        match self.set {
            Some(state) => Action::Set {
                state,
                backup: self.backup.clone(),
                origin: if self.force {
                    Origin::Forced
                } else {
                    Origin::Admin
                },
                wait: self.wait,
                services,
            },
            None if self.list => Action::List,
            None if self.delete => Action::Delete(services),
            None => Action::Get(services),
        }
    }

    pub fn target(&self) -> Target {
        Target::new(&self.host, self.port)
    }

    pub fn transport(&self) -> Transport {
        if self.udp {
            Transport::Udp
        } else {
            Transport::Tcp
        }
    }
}

/// A clap error as the one line every failc error is.
pub fn one_line(err: &clap::Error) -> String {
    failover::usage::one_line(&err.to_string(), "failc")
}

fn community(s: &str) -> Result<String, String> {
    check_community(s).map(|()| s.to_string())
}

fn key_id(s: &str) -> Result<String, String> {
    failover::auth::check_key_id(s).map(|()| s.to_string())
}

fn service(s: &str) -> Result<String, String> {
    check_name("service name", s).map(|()| s.to_string())
}

fn backup(s: &str) -> Result<String, String> {
    check_name("backup host", s).map(|()| s.to_string())
}

fn host(s: &str) -> Result<String, String> {
    failover::usage::host_arg(s)
}

fn timeout(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    let bad = || format!("timeout must be more than 0 and at most {MAX_TIMEOUT_SECS} seconds");
    // The negated test also rejects NaN.
    if !(secs > 0.0 && secs <= MAX_TIMEOUT_SECS) {
        return Err(bad());
    }
    let d = Duration::from_secs_f64(secs);
    if d.is_zero() {
        return Err(bad());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use clap::error::ErrorKind;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("failc").chain(args.iter().copied()))
    }

    fn kind(args: &[&str]) -> ErrorKind {
        parse(args).expect_err("should be refused").kind()
    }

    #[test]
    fn command_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn worked_example_set_with_backup() {
        let cli = parse(&[
            "-c", "public", "-T", "-p", "1291", "-s", "FAIL", "-b", "macbeth", "SERVICE",
        ])
        .unwrap();
        assert_eq!(cli.community, "public");
        assert_eq!(cli.transport(), Transport::Tcp);
        assert_eq!(cli.target(), Target::new("localhost", 1291));
        assert_eq!(
            cli.action(),
            Action::Set {
                state: State::Fail,
                backup: Some("macbeth".into()),
                origin: Origin::Admin,
                wait: None,
                services: vec!["SERVICE".into()],
            }
        );
    }

    #[test]
    fn worked_example_attached_state() {
        let cli = parse(&["-c", "public", "-T", "-p", "1291", "-sRECOVER", "SERVICE"]).unwrap();
        assert_eq!(
            cli.action(),
            Action::Set {
                state: State::Recover,
                backup: None,
                origin: Origin::Admin,
                wait: None,
                services: vec!["SERVICE".into()],
            }
        );
    }

    #[test]
    fn attached_values_and_lowercase_state() {
        let cli = parse(&[
            "-cgenesis",
            "-hfe80::1",
            "-p1300",
            "-U",
            "-t0.5",
            "-s",
            "up",
            "a",
            "b",
        ])
        .unwrap();
        assert_eq!(cli.community, "genesis");
        assert_eq!(cli.target(), Target::new("fe80::1", 1300));
        assert_eq!(cli.transport(), Transport::Udp);
        assert_eq!(cli.timeout, Duration::from_millis(500));
        assert_eq!(
            cli.action(),
            Action::Set {
                state: State::Up,
                backup: None,
                origin: Origin::Admin,
                wait: None,
                services: vec!["a".into(), "b".into()],
            }
        );
    }

    #[test]
    fn defaults_get_all_services() {
        let cli = parse(&["vip", "www"]).unwrap();
        if std::env::var_os("FAILC_COMMUNITY").is_none() {
            assert_eq!(cli.community, "public");
        }
        assert_eq!(cli.target(), Target::new("localhost", DEFAULT_PORT));
        assert_eq!(cli.transport(), Transport::Tcp);
        assert_eq!(cli.timeout, Duration::from_secs(3));
        assert!(!cli.json);
        assert_eq!(cli.action(), Action::Get(vec!["vip".into(), "www".into()]));
    }

    #[test]
    fn list_delete_and_json() {
        let cli = parse(&["-l", "--json"]).unwrap();
        assert_eq!(cli.action(), Action::List);
        assert!(cli.json);
        let cli = parse(&["-x", "old", "older"]).unwrap();
        assert_eq!(
            cli.action(),
            Action::Delete(vec!["old".into(), "older".into()])
        );
    }

    #[test]
    fn bracketed_ipv6_host() {
        let cli = parse(&["-h", "[::1]", "vip"]).unwrap();
        assert_eq!(cli.target(), Target::new("::1", DEFAULT_PORT));
        assert_eq!(cli.target().to_string(), "[::1]:1291");
    }

    #[test]
    fn argument_problems_are_usage_errors() {
        use ErrorKind::*;
        let cases: &[(&[&str], ErrorKind)] = &[
            (&["-s", "DOWN", "vip"], ValueValidation),
            (&["-s", "UP"], MissingRequiredArgument),
            (&["a b"], ValueValidation),
            (&["vip\u{e4}"], ValueValidation),
            (&["-b", "macbeth", "vip"], MissingRequiredArgument),
            (&["-s", "UP", "-b", "a b", "vip"], ValueValidation),
            (&["-l", "vip"], ArgumentConflict),
            (&["-l", "-x"], ArgumentConflict),
            (&["-s", "UP", "-x", "vip"], ArgumentConflict),
            (&["-s", "UP", "-l"], ArgumentConflict),
            (&["-T", "-U", "vip"], ArgumentConflict),
            (&[], MissingRequiredArgument),
            (&["-t", "0", "vip"], ValueValidation),
            (&["-t", "soon", "vip"], ValueValidation),
            (&["-t", "NaN", "vip"], ValueValidation),
            (&["-t", "1e9", "vip"], ValueValidation),
            (&["-p", "0", "vip"], ValueValidation),
            (&["-p", "65536", "vip"], ValueValidation),
            (&["-c", "a b", "vip"], ValueValidation),
            (&["-h", "", "vip"], ValueValidation),
            (&["-h"], InvalidValue),
            (&["-z", "vip"], UnknownArgument),
        ];
        for (args, expected) in cases {
            let err = parse(args).expect_err("should be refused");
            assert_eq!(err.kind(), *expected, "{args:?}: {err}");
            assert!(err.use_stderr(), "{args:?}");
            assert_eq!(err.exit_code(), i32::from(exit::USAGE), "{args:?}");
        }
    }

    #[test]
    fn help_is_long_only_and_version_exists() {
        assert_eq!(kind(&["--help"]), ErrorKind::DisplayHelp);
        assert_eq!(kind(&["-V"]), ErrorKind::DisplayVersion);
        assert_eq!(kind(&["--version"]), ErrorKind::DisplayVersion);
        let help = Cli::command().render_help().to_string();
        assert!(help.contains("Exit status:"), "{help}");
        assert!(help.contains("-h, --host <HOST>"), "{help}");
    }

    #[test]
    fn usage_errors_become_one_line() {
        let err = parse(&["-s", "DOWN", "vip"]).unwrap_err();
        let line = one_line(&err);
        assert!(!line.contains('\n'), "{line}");
        assert!(line.starts_with("invalid value 'DOWN'"), "{line}");
        assert!(line.contains("expected UP, RECOVER or FAIL"), "{line}");
        let line = one_line(&parse(&[]).unwrap_err());
        assert!(!line.contains('\n'), "{line}");
        assert!(line.contains("<SERVICE>"), "{line}");
    }
}
