//! The command line, getopt-style as in the original failmon:
//!
//! ```text
//! failmon [-V] [-d facility] {-l | -c | -h | -1 | --json [-f]} [-p port] [target]
//! ```
//!
//! `-h` is the HTML mode, as in the original, so help is `--help` only.

use clap::{ArgAction, ArgGroup, Parser, value_parser};
use failover::monitor::DEFAULT_MONITOR_PORT;

use crate::exit;
use crate::net::Target;

/// Where failmon looks without a `target`. The original resolved the local
/// node name; failsh listens on 127.0.0.1 unless told otherwise (`-a`), so
/// the loopback address is what reaches a local failsh out of the box.
pub const DEFAULT_TARGET: &str = "127.0.0.1";

/// A named subsystem whose log level `-d` raises (a `tracing` target).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Facility {
    /// Connections to failsh and the snapshots read.
    Net,
    /// Keys and screens of the terminal UI, line-mode input.
    Ui,
}

impl Facility {
    pub fn target(self) -> &'static str {
        match self {
            Facility::Net => "net",
            Facility::Ui => "ui",
        }
    }
}

/// What failmon does with the snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The full-screen terminal UI (`-c`, the default).
    Tui,
    /// Print the current state each time Return is pressed (`-l`).
    Lines,
    /// Print the state as an HTML page (`-h`; the CGI mode is chosen by
    /// the program name, before the command line is parsed).
    Html,
    /// Print one snapshot as text (`-1`).
    Once,
    /// Print one snapshot, or every one with `follow`, as a JSON line.
    Json { follow: bool },
}

/// failmon — watch a failsh through its monitor port.
///
/// Connects to the failsh on TARGET (default 127.0.0.1) and shows what it
/// pushes: its hosts, services, peers, decisions and hook runs.
#[derive(Debug, Parser)]
#[command(
    name = "failmon",
    version,
    about,
    long_about = None,
    // -h is the HTML mode, as in the original; help is --help only.
    disable_help_flag = true,
    after_help = exit::SUMMARY,
    group(ArgGroup::new("mode").args(["lines", "curses", "html", "once", "json"])),
)]
pub struct Cli {
    /// Raise the log level of a facility on stderr (repeatable; twice =
    /// trace); ignored while the terminal UI owns the screen
    #[arg(short = 'd', long = "debug", value_name = "FACILITY")]
    pub debug: Vec<Facility>,

    /// Line mode: print the current state each time Return is pressed; `q`
    /// or end of input quits
    #[arg(short = 'l', long = "lines")]
    lines: bool,

    /// Full-screen terminal UI (the default)
    #[arg(short = 'c', long = "curses")]
    curses: bool,

    /// Print the state as a self-contained HTML page
    #[arg(short = 'h', long = "html")]
    html: bool,

    /// Wait for one state update, print it as text and exit
    #[arg(short = '1', long = "once")]
    once: bool,

    /// Print one snapshot as a JSON line and exit
    #[arg(long)]
    json: bool,

    /// With --json: print every snapshot failsh pushes, one JSON line each,
    /// until interrupted
    #[arg(short = 'f', long, requires = "json")]
    follow: bool,

    /// failsh's monitor port
    #[arg(
        short = 'p',
        long,
        value_name = "PORT",
        default_value_t = DEFAULT_MONITOR_PORT,
        value_parser = value_parser!(u16).range(1..)
    )]
    pub port: u16,

    /// Print help
    #[arg(long, action = ArgAction::Help)]
    help: Option<bool>,

    /// Host failsh runs on: a name, an IPv4 or an IPv6 address
    #[arg(value_name = "TARGET", default_value = DEFAULT_TARGET, value_parser = host)]
    pub target: String,
}

impl Cli {
    pub fn mode(&self) -> Mode {
        if self.lines {
            Mode::Lines
        } else if self.html {
            Mode::Html
        } else if self.once {
            Mode::Once
        } else if self.json {
            Mode::Json {
                follow: self.follow,
            }
        } else {
            Mode::Tui
        }
    }

    pub fn target(&self) -> Target {
        Target::new(&self.target, self.port)
    }
}

/// A host name or address: no blanks, nothing a resolver would choke on.
fn host(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_' | '%'));
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!("not a host name or address: {s:?}"))
    }
}

/// Whether the program was started as `failmon.cgi` (the original's web
/// mode): only the file name of argv\[0\] counts.
pub fn is_cgi(argv0: Option<&std::ffi::OsStr>) -> bool {
    argv0
        .and_then(|a| std::path::Path::new(a).file_name())
        .is_some_and(|n| n == "failmon.cgi")
}

/// A clap error as the one line every failmon error is.
pub fn one_line(err: &clap::Error) -> String {
    failover::usage::one_line(&err.to_string(), "failmon")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use clap::error::ErrorKind;
    use std::ffi::OsStr;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("failmon").chain(args.iter().copied()))
    }

    #[test]
    fn command_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_are_the_tui_on_loopback_port_1848() {
        let cli = parse(&[]).unwrap();
        assert_eq!(cli.mode(), Mode::Tui);
        assert_eq!(cli.target(), Target::new("127.0.0.1", 1848));
        assert!(cli.debug.is_empty());
    }

    #[test]
    fn modes_and_options() {
        assert_eq!(parse(&["-l"]).unwrap().mode(), Mode::Lines);
        assert_eq!(parse(&["-c"]).unwrap().mode(), Mode::Tui);
        assert_eq!(parse(&["-h"]).unwrap().mode(), Mode::Html);
        assert_eq!(parse(&["-1"]).unwrap().mode(), Mode::Once);
        assert_eq!(
            parse(&["--json"]).unwrap().mode(),
            Mode::Json { follow: false }
        );
        assert_eq!(
            parse(&["--json", "-f"]).unwrap().mode(),
            Mode::Json { follow: true }
        );
        let cli = parse(&["-d", "net", "-dui", "-1", "-p1900", "fe80::1"]).unwrap();
        assert_eq!(cli.debug, vec![Facility::Net, Facility::Ui]);
        assert_eq!(cli.target(), Target::new("fe80::1", 1900));
    }

    #[test]
    fn bad_arguments_are_refused() {
        let kind = |args: &[&str]| parse(args).expect_err("refused").kind();
        assert_eq!(kind(&["-l", "-1"]), ErrorKind::ArgumentConflict);
        assert_eq!(kind(&["-f"]), ErrorKind::MissingRequiredArgument);
        assert_eq!(kind(&["-p", "0"]), ErrorKind::ValueValidation);
        assert_eq!(kind(&["-d", "disk"]), ErrorKind::InvalidValue);
        assert_eq!(kind(&["-1", "a host"]), ErrorKind::ValueValidation);
        assert_eq!(kind(&["-V"]), ErrorKind::DisplayVersion);
        assert_eq!(kind(&["--help"]), ErrorKind::DisplayHelp);
    }

    #[test]
    fn usage_errors_fit_on_one_line() {
        let e = parse(&["-p", "x"]).unwrap_err();
        let line = one_line(&e);
        assert!(line.contains("'x'") && !line.contains('\n'), "{line}");
    }

    #[test]
    fn cgi_only_by_file_name() {
        assert!(is_cgi(Some(OsStr::new("/srv/cgi-bin/failmon.cgi"))));
        assert!(is_cgi(Some(OsStr::new("failmon.cgi"))));
        assert!(!is_cgi(Some(OsStr::new("/usr/bin/failmon"))));
        assert!(!is_cgi(Some(OsStr::new("/failmon.cgi/failmon"))));
        assert!(!is_cgi(None));
    }
}
