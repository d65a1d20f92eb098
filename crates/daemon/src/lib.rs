//! What faild and failsh share as Unix daemons: detaching with a readiness
//! pipe, locked pid files, logging to stderr, journald or syslog, resource
//! limits, priority, memory locking and dropping privileges; readiness
//! notification for systemd.

mod daemon;
pub mod logging;
pub mod notify;
pub mod random;
pub mod secret;

pub use daemon::*;

use std::process::ExitCode;

/// The start-up every daemon here shares: `prepare` (everything that can
/// fail on bad input) runs in the foreground, so its error reaches the
/// terminal; then, unless `foreground`, the process detaches; then `run`
/// serves until it returns. Errors are one line, `NAME: message`, on stderr
/// (and in the log); a detached daemon's error reaches the waiting parent.
///
/// In the foreground with `NOTIFY_SOCKET` set (a systemd `Type=notify`
/// unit), `run`'s [`Ready::ok`] sends `READY=1`, and `STOPPING=1` goes out
/// when `run` returns. `NOTIFY_SOCKET` is removed from the environment in
/// any case, so that no child process inherits it. Must be called while the
/// process is still single-threaded (it changes the environment, and
/// detaching forks).
pub fn start<P>(
    name: &str,
    foreground: bool,
    prepare: impl FnOnce() -> anyhow::Result<P>,
    run: impl FnOnce(P, &mut Ready) -> anyhow::Result<()>,
) -> ExitCode {
    // SAFETY: the caller is still single-threaded (see above).
    let notifier = unsafe { notify::Notifier::take_from_env() };
    if notifier.is_some() && !foreground {
        tracing::warn!(
            "NOTIFY_SOCKET is set but {name} detaches: a Type=notify unit must run it in the \
             foreground (-F); not notifying"
        );
    }
    let notifier = notifier.filter(|_| foreground);
    let prepared = match prepare() {
        Ok(p) => p,
        Err(e) => {
            if !foreground {
                tracing::error!("{e:#}");
            }
            eprintln!("{name}: {e:#}");
            if let Some(n) = notifier {
                Ready::notify(n).failed(&format!("{e:#}"));
            }
            return ExitCode::FAILURE;
        }
    };
    let mut ready = if foreground {
        notifier.map_or_else(Ready::none, Ready::notify)
    } else {
        match detach(name) {
            Ok(ready) => ready,
            Err(e) => {
                eprintln!("{name}: cannot detach: {e:#}");
                return ExitCode::FAILURE;
            }
        }
    };
    match run(prepared, &mut ready) {
        Ok(()) => {
            ready.stopping();
            ExitCode::SUCCESS
        }
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
