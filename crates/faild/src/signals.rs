//! Signals: SIGHUP re-reads the community file and the key file, SIGTERM
//! and SIGINT stop.

use std::sync::Arc;

use anyhow::Result;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::store::Store;

/// Installs the handlers; returns once they are in place, so a signal sent
/// right after start-up is never lost to the default action.
pub fn install(store: Arc<Store>, shutdown: CancellationToken) -> Result<()> {
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = hup.recv() => match store.access.reload() {
                    Ok((rules, keys)) => info!(target: "auth", "SIGHUP: re-read, {rules} rules and {keys} keys in force"),
                    Err(e) => error!(target: "auth", "SIGHUP: {e:#}; the previous rules and keys stay in force"),
                },
                _ = term.recv() => break info!("SIGTERM received"),
                _ = int.recv() => break info!("SIGINT received"),
            }
        }
        shutdown.cancel();
    });
    Ok(())
}
