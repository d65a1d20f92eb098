//! Logging: stderr in the foreground, journald or syslog (facility `daemon`)
//! once detached; per-facility levels raised with `-d FACILITY`.

use std::ffi::CStr;
use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;

/// The filter: info for everything, each of `raised` (a facility's tracing
/// target, once per `-d`) at debug, or trace when raised twice or more.
/// The environment variable `env_var` (EnvFilter syntax) replaces it.
pub fn filter(env_var: &str, raised: &[&str]) -> EnvFilter {
    if let Ok(spec) = std::env::var(env_var) {
        return EnvFilter::new(spec);
    }
    let mut filter = EnvFilter::new("info");
    let mut seen: Vec<&str> = Vec::new();
    for target in raised {
        if seen.contains(target) {
            continue;
        }
        seen.push(target);
        let level = if raised.iter().filter(|r| *r == target).count() > 1 {
            "trace"
        } else {
            "debug"
        };
        if let Ok(d) = format!("{target}={level}").parse() {
            filter = filter.add_directive(d);
        }
    }
    filter
}

/// Installs the global subscriber for program `ident`. Detached: journald
/// when its socket exists, otherwise syslog.
pub fn init(ident: &'static CStr, foreground: bool, filter: EnvFilter) {
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
        let name = ident.to_string_lossy().into_owned();
        registry.with(journald.with_syslog_identifier(name)).init();
        return;
    }
    match syslog_tracing::Syslog::new(
        ident,
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
