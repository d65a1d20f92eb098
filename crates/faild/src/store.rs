//! The registry as faild serves it: reads answered from memory, changes made
//! durable in the state file before they become visible or are acknowledged.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use failover::proto::{ErrorCode, Reply, Request};
use failover::registry::{Mutation, Outcome, Registry};
use tokio::sync::Mutex;
use tracing::{debug, error, info};

use crate::access::Access;
use crate::persist::StateFile;

/// Everything a request handler needs.
#[derive(Debug)]
pub struct Store {
    registry: Arc<RwLock<Registry>>,
    /// Serialises changes: one state-file write at a time, and each change
    /// decided against the state the previous one left.
    writer: Mutex<()>,
    file: Arc<StateFile>,
    pub access: Access,
}

impl Store {
    pub fn new(registry: Registry, file: StateFile, access: Access) -> Store {
        Store {
            registry: Arc::new(RwLock::new(registry)),
            writer: Mutex::new(()),
            file: Arc::new(file),
            access,
        }
    }

    /// Writes the whole registry once, at start: records this boot's id and
    /// proves the file is writable before faild says it is ready.
    pub fn save_all(&self) -> std::io::Result<()> {
        self.file.save(&self.read(), None)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        // A panic while holding the lock cannot leave the registry half
        // changed (apply is a single insert or remove), so poison is ignored.
        self.registry.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Answers one request from `source`.
    pub async fn handle(&self, req: Request, source: SocketAddr) -> Reply {
        let rules = self.access.current();
        let grants = rules.grants(&req.community, source.ip());
        if grants.is_empty() {
            if req.op.writes() {
                info!(target: "auth", "denied a write from {source}: unknown community (or not allowed from this address)");
            } else {
                debug!(target: "auth", "denied a read from {source}: unknown community");
            }
        }
        let _turn = if req.op.writes() {
            Some(self.writer.lock().await)
        } else {
            None
        };
        let outcome = self.read().execute(&req, &grants, SystemTime::now());
        match outcome {
            Outcome::Reply(reply) => {
                if let Reply::Error(e) = &reply
                    && e.code == ErrorCode::Denied
                    && !grants.is_empty()
                {
                    info!(target: "auth", "denied a write from {source}: {}", e.message);
                }
                reply
            }
            Outcome::Change { mutation, rule } => {
                self.commit(req.id, mutation, &rule, source).await
            }
        }
    }

    async fn commit(&self, id: u64, mutation: Mutation, rule: &str, source: SocketAddr) -> Reply {
        // Render and write on a blocking thread (100,000 services take tens of
        // milliseconds); readers go on meanwhile. The change is applied only
        // once the bytes are on disk.
        let (registry, file, pending) =
            (self.registry.clone(), self.file.clone(), mutation.clone());
        let written = tokio::task::spawn_blocking(move || {
            let registry = registry.read().unwrap_or_else(|p| p.into_inner());
            file.save(&registry, Some(&pending))
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        if let Err(e) = written {
            error!(target: "store", "cannot write state file {}: {e}; refused the change of {}", self.file.path().display(), mutation.name());
            return Reply::error(
                Some(id),
                ErrorCode::Storage,
                format!("state file not written: {e}; nothing changed"),
            );
        }
        self.registry
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .apply(&mutation);
        let show = |s: Option<failover::State>| s.map_or("(none)".to_string(), |s| s.to_string());
        info!(
            target: "audit",
            "{} {}: {} -> {} from {} allowed by {}",
            if mutation.new_state().is_some() { "SET" } else { "DEL" },
            mutation.name(),
            show(mutation.old_state()),
            show(mutation.new_state()),
            source.ip().to_canonical(),
            rule
        );
        mutation.reply(id)
    }
}
