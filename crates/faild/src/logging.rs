//! Logging: stderr in the foreground, journald or syslog (facility `daemon`)
//! once detached; per-subsystem levels raised with `-d FACILITY`.

use std::ffi::CStr;
use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;

/// A named subsystem whose log level `-d` raises. Each is a `tracing` target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Facility {
    /// Listening, accepting, connection limits.
    Net,
    /// Every request and reply.
    Proto,
    /// The state file.
    Store,
    /// Community rules and access decisions.
    Auth,
}

impl Facility {
    pub fn target(self) -> &'static str {
        match self {
            Facility::Net => "net",
            Facility::Proto => "proto",
            Facility::Store => "store",
            Facility::Auth => "auth",
        }
    }
}

/// The filter: info for everything, raised per facility (once: debug, twice
/// or more: trace). `FAILD_LOG` (EnvFilter syntax) replaces it entirely.
fn filter(raised: &[Facility]) -> EnvFilter {
    if let Ok(spec) = std::env::var("FAILD_LOG") {
        return EnvFilter::new(spec);
    }
    let mut filter = EnvFilter::new("info");
    for f in [
        Facility::Net,
        Facility::Proto,
        Facility::Store,
        Facility::Auth,
    ] {
        let level = match raised.iter().filter(|r| **r == f).count() {
            0 => continue,
            1 => "debug",
            _ => "trace",
        };
        if let Ok(d) = format!("{}={level}", f.target()).parse() {
            filter = filter.add_directive(d);
        }
    }
    filter
}

const IDENT: &CStr = c"faild";

/// Installs the global subscriber. Detached: journald when its socket exists,
/// otherwise syslog.
pub fn init(foreground: bool, raised: &[Facility]) {
    let filter = filter(raised);
    let registry = tracing_subscriber::registry().with(filter);
    let stderr = || {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
    };
    if foreground {
        registry.with(stderr()).init();
        return;
    }
    if std::path::Path::new("/run/systemd/journal/socket").exists()
        && let Ok(journald) = tracing_journald::layer()
    {
        registry
            .with(journald.with_syslog_identifier("faild".into()))
            .init();
        return;
    }
    match syslog_tracing::Syslog::new(
        IDENT,
        syslog_tracing::Options::LOG_PID,
        syslog_tracing::Facility::Daemon,
    ) {
        Some(syslog) => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(syslog)
                    .with_ansi(false)
                    .without_time()
                    .with_level(true),
            )
            .init(),
        None => registry.with(stderr()).init(),
    }
}
