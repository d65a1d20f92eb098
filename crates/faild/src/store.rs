//! The registry as faild serves it: reads answered from memory, changes made
//! durable in the state file before they become visible or are acknowledged.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use failover::proto::{ErrorCode, Op, Reply, Request};
use failover::registry::{Mutation, Outcome, Registry};
use tokio::sync::{Mutex, Semaphore};
use tracing::{error, info};

use crate::access::{Access, Admitted, Refused};
use crate::persist::{SaveError, StateFile};

/// Everything a request handler needs.
#[derive(Debug)]
pub struct Store {
    registry: Arc<RwLock<Registry>>,
    /// Serialises changes: one state-file write at a time, and each change
    /// decided against the state the previous one left.
    writer: Mutex<()>,
    /// LISTs run off the async thread (100,000 services take tens of
    /// milliseconds to copy and encode); this bounds how many at once.
    lists: Semaphore,
    file: Arc<StateFile>,
    pub access: Access,
    denials: Denials,
}

impl Store {
    pub fn new(registry: Registry, file: StateFile, access: Access) -> Store {
        Store {
            registry: Arc::new(RwLock::new(registry)),
            writer: Mutex::new(()),
            lists: Semaphore::new(2),
            file: Arc::new(file),
            access,
            denials: Denials::default(),
        }
    }

    /// Writes the whole registry once, at start: records this boot's id and
    /// proves the file is writable before faild says it is ready.
    pub fn save_all(&self) -> Result<(), SaveError> {
        self.file.save(&self.read(), None)
    }

    fn read(&self) -> RwLockReadGuard<'_, Registry> {
        // A panic while holding the lock cannot leave the registry half
        // changed (apply is a single insert or remove), so poison is ignored.
        self.registry.read().unwrap_or_else(|p| p.into_inner())
    }

    /// [`Access::admit`], with refused signatures logged (rate-limited).
    pub fn admit(&self, line: &[u8], source: SocketAddr) -> Result<Admitted, Box<Refused>> {
        self.access.admit(line).inspect_err(|r| {
            if let Some(e) = &r.auth {
                self.denials.note("a request", source, &e.to_string());
            }
        })
    }

    /// Answers one request from `source`.
    pub async fn handle(&self, req: &Request, source: SocketAddr) -> Reply {
        if let Outcome::Reply(reply) = self.decide(req, source) {
            return reply; // every read, and every refused write
        }
        // Only a write that is allowed waits for its turn; then it is decided
        // again against the latest state and the latest rules (a SIGHUP may
        // have revoked the community meanwhile).
        let _turn = self.writer.lock().await;
        match self.decide(req, source) {
            Outcome::Reply(reply) => reply,
            Outcome::Change { mutation, rule } => {
                self.commit(req.id, mutation, &rule, source).await
            }
        }
    }

    /// [`Store::handle`], encoded. A LIST is done on a blocking thread, so a
    /// large registry never stalls the other clients.
    pub async fn answer(self: &Arc<Self>, req: Request, source: SocketAddr) -> String {
        if !matches!(req.op, Op::List) {
            return self.handle(&req, source).await.encode();
        }
        let Ok(_slot) = self.lists.acquire().await else {
            return Reply::error(Some(req.id), ErrorCode::Storage, "faild is stopping").encode();
        };
        let store = self.clone();
        tokio::task::spawn_blocking(move || match store.decide(&req, source) {
            Outcome::Reply(reply) => reply.encode(),
            Outcome::Change { .. } => unreachable!("LIST never changes anything"),
        })
        .await
        .unwrap_or_else(|e| {
            Reply::error(None, ErrorCode::Storage, format!("LIST failed: {e}")).encode()
        })
    }

    fn decide(&self, req: &Request, source: SocketAddr) -> Outcome {
        let rules = self.access.current();
        let grants = rules.grants(&req.community, source.ip());
        let outcome = self.read().execute(req, &grants, SystemTime::now());
        if let Outcome::Reply(Reply::Error(e)) = &outcome
            && e.code == ErrorCode::Denied
            && req.op.writes()
        {
            self.denials.note("a write", source, &e.message);
        }
        outcome
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
        .unwrap_or_else(|e| Err(SaveError::NotWritten(std::io::Error::other(e.to_string()))));
        match written {
            Ok(()) => {}
            Err(SaveError::NotWritten(e)) => {
                error!(target: "store", "cannot write state file {}: {e}; refused the change of {}", self.file.path().display(), mutation.name());
                return Reply::error(
                    Some(id),
                    ErrorCode::Storage,
                    format!("state file not written: {e}; nothing changed"),
                );
            }
            Err(SaveError::NotSynced(e)) => {
                // The new file is in place but may not survive a power cut,
                // and faild cannot tell what the disk holds: neither
                // acknowledging nor refusing would be true. Stop, so a restart
                // loads whatever the disk has (fsyncgate rule).
                error!(target: "store", "state file {} replaced but its directory could not be synced: {e}; stopping", self.file.path().display());
                std::process::exit(1);
            }
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

/// Logs refused writes, at most [`Denials::PER_SECOND`] lines a second, so a
/// flood of bad requests cannot fill the disk with log lines; the number left
/// out is logged with the next line that gets through.
#[derive(Debug, Default)]
struct Denials {
    second: AtomicU64,
    logged: AtomicU64,
    dropped: AtomicU64,
}

impl Denials {
    const PER_SECOND: u64 = 10;

    fn note(&self, what: &str, source: SocketAddr, why: &str) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if self.second.swap(now, Ordering::Relaxed) != now {
            self.logged.store(0, Ordering::Relaxed);
        }
        if self.logged.fetch_add(1, Ordering::Relaxed) >= Self::PER_SECOND {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match self.dropped.swap(0, Ordering::Relaxed) {
            0 => info!(target: "auth", "denied {what} from {source}: {why}"),
            n => {
                info!(target: "auth", "denied {what} from {source}: {why} ({n} more denials not logged)")
            }
        }
    }
}
