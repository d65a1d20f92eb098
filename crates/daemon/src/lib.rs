//! What faild and failsh share as Unix daemons: detaching with a readiness
//! pipe, locked pid files, logging to stderr, journald or syslog, resource
//! limits, priority, memory locking and dropping privileges.

mod daemon;
pub mod logging;

pub use daemon::*;

use std::process::ExitCode;

/// The start-up every daemon here shares: `prepare` (everything that can
/// fail on bad input) runs in the foreground, so its error reaches the
/// terminal; then, unless `foreground`, the process detaches; then `run`
/// serves until it returns. Errors are one line, `NAME: message`, on stderr
/// (and in the log); a detached daemon's error reaches the waiting parent.
pub fn start<P>(
    name: &str,
    foreground: bool,
    prepare: impl FnOnce() -> anyhow::Result<P>,
    run: impl FnOnce(P, &mut Ready) -> anyhow::Result<()>,
) -> ExitCode {
    let prepared = match prepare() {
        Ok(p) => p,
        Err(e) => {
            if !foreground {
                tracing::error!("{e:#}");
            }
            eprintln!("{name}: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let mut ready = if foreground {
        Ready::none()
    } else {
        match detach() {
            Ok(ready) => ready,
            Err(e) => {
                eprintln!("{name}: cannot detach: {e:#}");
                return ExitCode::FAILURE;
            }
        }
    };
    match run(prepared, &mut ready) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            if foreground {
                eprintln!("{name}: {e:#}");
            }
            ready.failed(&format!("{e:#}"));
            ExitCode::FAILURE
        }
    }
}

/// Ignores SIGHUP until the daemon's own handler is in place, so that a
/// reload sent too early (or log rotation) does not kill it during start-up.
pub fn ignore_sighup_during_startup() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: called first thing in main, before any other thread exists;
    // SigIgn runs no code.
    let _ = unsafe { signal(Signal::SIGHUP, SigHandler::SigIgn) };
}
