//! failmon: the monitor client of failsh. Connects to failsh's monitor port
//! (default 1848), where failsh pushes a JSON snapshot of its hosts and
//! services on connect, after every change and once a second, and shows it:
//! as a full-screen terminal UI (the default, `-c`), in line mode (`-l`),
//! once as text (`-1`) or JSON (`--json`), or as an HTML page (`-h`, and
//! as a CGI program when installed as `failmon.cgi`). See `docs/failmon.md`.
//!
//! A library so that the pieces (the HTML page, the UI's state machine) are
//! tested without a terminal or a failsh; the binary is a thin `fn main`
//! that calls [`main`].

pub mod cgi;
pub mod cli;
pub mod error;
pub mod exit;
pub mod html;
pub mod line;
pub mod logging;
pub mod net;
pub mod presence;
pub mod tui;
pub mod when;

#[cfg(test)]
mod sample;

use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};

use clap::Parser;

use crate::cli::{Cli, Mode};
use crate::error::Error;
use crate::net::{Monitor, Push, Target};

/// Runs failmon with the process's arguments and returns the exit status
/// (see [`exit`]).
pub fn main() -> ExitCode {
    if cli::is_cgi(std::env::args_os().next().as_deref()) {
        logging::init(&[]);
        return ExitCode::from(cgi_page());
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and -V
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            eprintln!("failmon: {}", cli::one_line(&e));
            return ExitCode::from(exit::USAGE);
        }
    };
    let mode = cli.mode();
    if mode != Mode::Tui {
        logging::init(&cli.debug);
    }
    let target = cli.target();
    let code = match mode {
        Mode::Once => once(&target, |p| p.snapshot.text()),
        Mode::Html => once(&target, |p| html::page(&p.snapshot, &target, None)),
        Mode::Json { follow: false } => once(&target, |p| format!("{}\n", p.line)),
        Mode::Json { follow: true } => follow_json(&target),
        Mode::Lines => lines(&target),
        Mode::Tui => match tui::run(&target) {
            Ok(()) => exit::OK,
            Err(e) => {
                eprintln!("failmon: {e}");
                exit::FAILURE
            }
        },
    };
    ExitCode::from(code)
}

/// Connects and waits for the first push.
fn first(target: &Target) -> Result<(Monitor, Push), Error> {
    let mut monitor = Monitor::connect(target)?;
    let push = monitor.receive()?;
    Ok((monitor, push))
}

/// Writes `text` to stdout; a reader that went away (`| head`) is not an
/// error.
fn print(text: &str) -> u8 {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => exit::OK,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => exit::OK,
        Err(e) => {
            eprintln!("failmon: cannot write output: {e}");
            exit::FAILURE
        }
    }
}

fn unreachable(e: &Error) -> u8 {
    eprintln!("failmon: {e}");
    exit::UNREACHABLE
}

/// `-1`, `-h`, `--json`: one snapshot, rendered by `render`.
fn once(target: &Target, render: impl Fn(&Push) -> String) -> u8 {
    match first(target) {
        Ok((_, push)) => print(&render(&push)),
        Err(e) => unreachable(&e),
    }
}

/// `--json --follow`: every push as it comes, until the connection ends.
fn follow_json(target: &Target) -> u8 {
    let (mut monitor, mut push) = match first(target) {
        Ok(f) => f,
        Err(e) => return unreachable(&e),
    };
    loop {
        let mut out = io::stdout().lock();
        match writeln!(out, "{}", push.line).and_then(|()| out.flush()) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return exit::OK,
            Err(e) => {
                eprintln!("failmon: cannot write output: {e}");
                return exit::FAILURE;
            }
        }
        drop(out);
        push = match monitor.receive() {
            Ok(p) => p,
            Err(e) => return unreachable(&e),
        };
    }
}

/// `-l`: connects (exit 3 if failsh cannot be reached at all), then prints
/// the latest state per line of input while a follower thread keeps it
/// current and reconnects when needed.
fn lines(target: &Target) -> u8 {
    let (monitor, push) = match first(target) {
        Ok(f) => f,
        Err(e) => return unreachable(&e),
    };
    let latest: line::Shared = Arc::new(Mutex::new(line::Latest::new(push.snapshot)));
    let shared = latest.clone();
    let t = target.clone();
    let spawned = std::thread::Builder::new()
        .name("follower".into())
        .spawn(move || {
            net::follow(&t, Some(monitor), |u| {
                shared
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .update(u);
                true
            })
        });
    if let Err(e) = spawned {
        eprintln!("failmon: {e}");
        return exit::FAILURE;
    }
    let stdin = io::stdin().lock();
    match line::run(stdin, &mut io::stdout().lock(), &latest) {
        Ok(()) => exit::OK,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => exit::OK,
        Err(e) => {
            eprintln!("failmon: {e}");
            exit::FAILURE
        }
    }
}

/// The CGI mode: the header and the page, or an error page (status 502)
/// and exit status 3 when failsh cannot be read.
fn cgi_page() -> u8 {
    let query = std::env::var("QUERY_STRING").ok();
    let target = cgi::target(query.as_deref());
    match first(&target) {
        Ok((_, push)) => print(&format!(
            "{}{}",
            cgi::HEADER,
            html::page(&push.snapshot, &target, Some(cgi::REFRESH_SECS))
        )),
        Err(e) => {
            let code = unreachable(&e);
            print(&format!(
                "{}{}",
                cgi::ERROR_HEADER,
                html::error_page(&target, &e.to_string())
            ));
            code
        }
    }
}
