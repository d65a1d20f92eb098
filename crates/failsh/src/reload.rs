//! SIGHUP's config reload, run beside the signal loop rather than in it, so
//! that a config that takes long to run (up to its time limit) never delays
//! SIGINT's dump or SIGTERM.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::{self, Config, ConfigError};
use crate::engine::Engine;
use crate::hooks::Hooks;

/// How long SIGTERM waits for a reload in progress to give up (its `exec`
/// processes killed) before failsh exits anyway: a config stuck in one long
/// C call (see [`crate::hooks`]) would never notice.
const STOP_WAIT: Duration = Duration::from_secs(2);

type Loaded = Result<(Config, Hooks), ConfigError>;

/// The reload in progress, if any, and whether another SIGHUP came
/// meanwhile.
pub(crate) struct Reloader {
    engine: Arc<Engine>,
    file: PathBuf,
    stop: CancellationToken,
    running: Option<oneshot::Receiver<Loaded>>,
    again: bool,
}

impl Reloader {
    pub(crate) fn new(engine: Arc<Engine>, file: PathBuf) -> Self {
        Self {
            engine,
            file,
            stop: CancellationToken::new(),
            running: None,
            again: false,
        }
    }

    /// SIGHUP: loads the config on a thread of its own; while a load runs,
    /// the file is loaded once more after it (it may have been edited since
    /// that load read it).
    pub(crate) fn request(&mut self) {
        if self.running.is_some() {
            info!(target: "config", "SIGHUP: a reload is running; the file is read again after it");
            self.again = true;
            return;
        }
        let (done, running) = oneshot::channel();
        let (file, stop) = (self.file.clone(), self.stop.clone());
        let spawned = std::thread::Builder::new()
            .name("reload".into())
            .spawn(move || {
                let _ = done.send(config::load_unless_stopped(&file, &stop));
            });
        match spawned {
            Ok(_) => self.running = Some(running),
            Err(e) => {
                error!(target: "config", "SIGHUP: cannot start the reload: {e}; the previous config stays in force")
            }
        }
    }

    /// Waits until the reload in progress ends, puts its config in force
    /// (or logs why not), and starts the next one if asked for meanwhile.
    /// Never ends while no reload runs. Cancel-safe.
    pub(crate) async fn finish(&mut self) {
        let Some(running) = &mut self.running else {
            return std::future::pending().await;
        };
        let loaded = running.await;
        self.running = None;
        match loaded {
            Ok(Ok((config, hooks))) => {
                let summary = self.engine.reload(config, hooks);
                info!(target: "config", "SIGHUP: {} reloaded: {summary}", self.file.display());
            }
            Ok(Err(e)) => {
                error!(target: "config", "SIGHUP: {e}; the previous config stays in force");
            }
            Err(_) => error!(
                target: "config",
                "SIGHUP: the reload ended without a result; the previous config stays in force"
            ),
        }
        if std::mem::take(&mut self.again) {
            self.request();
        }
    }

    /// SIGTERM: abandons a reload in progress, waiting at most
    /// [`STOP_WAIT`] for it to kill what its `exec` calls started.
    pub(crate) async fn stop(self) {
        self.stop.cancel();
        if let Some(running) = self.running {
            info!(target: "config", "SIGTERM: the reload in progress is abandoned");
            if tokio::time::timeout(STOP_WAIT, running).await.is_err() {
                warn!(target: "config", "the abandoned reload did not end within {} s", STOP_WAIT.as_secs());
            }
        }
    }
}
