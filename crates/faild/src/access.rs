//! The community rules and request keys in force, and their reload on SIGHUP.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use failover::auth::{self, KeyRing, Opened, ReplayCache, Seal};
use failover::community::Rules;
use failover::proto::{ErrorCode, Reply, Request};

/// The current rule set and key ring. Requests take a cheap `Arc` snapshot,
/// so a reload never blocks or tears a request in progress.
#[derive(Debug)]
pub struct Access {
    file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    rules: RwLock<Arc<Rules>>,
    keys: RwLock<Arc<KeyRing>>,
    /// Nonces of signed requests within the window. Kept across reloads: a
    /// rotation must not make the requests just seen replayable.
    replay: Mutex<ReplayCache>,
}

/// A request that passed the envelope check, and the seal its reply gets
/// (none for a plain request).
#[derive(Debug)]
pub struct Admitted {
    pub request: Request,
    pub seal: Option<Seal>,
}

/// A request refused before it reached the registry: its reply, sealed
/// when the request's MAC verified.
#[derive(Debug)]
pub struct Refused {
    pub reply: Reply,
    pub seal: Option<Seal>,
    /// Why, when signing was the reason (for the log).
    pub auth: Option<auth::AuthError>,
}

impl Access {
    /// Loads the community file (or the built-in `public` read-only
    /// default) and the key file, if any.
    pub fn load(file: Option<PathBuf>, key_file: Option<PathBuf>) -> Result<Access> {
        let rules = match &file {
            Some(path) => read(path)?,
            None => Rules::public_read_only(),
        };
        let keys = match &key_file {
            Some(path) => read_keys(path)?,
            None => KeyRing::default(),
        };
        Ok(Access {
            file,
            key_file,
            rules: RwLock::new(Arc::new(rules)),
            keys: RwLock::new(Arc::new(keys)),
            replay: Mutex::new(ReplayCache::new(
                ReplayCache::DEFAULT_CAPACITY,
                auth::WINDOW,
            )),
        })
    }

    pub fn file(&self) -> Option<&PathBuf> {
        self.file.as_ref()
    }

    pub fn key_file(&self) -> Option<&PathBuf> {
        self.key_file.as_ref()
    }

    pub fn current(&self) -> Arc<Rules> {
        self.rules.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn keys(&self) -> Arc<KeyRing> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Re-reads the community file and the key file. Both are read before
    /// either is replaced: on any error the old rules and keys stay in
    /// force. Returns the number of rules and keys now in force.
    pub fn reload(&self) -> Result<(usize, usize)> {
        let rules = self.file.as_deref().map(read).transpose()?;
        let keys = self.key_file.as_deref().map(read_keys).transpose()?;
        if let Some(rules) = rules {
            *self.rules.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(rules);
        }
        if let Some(keys) = keys {
            *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
        }
        Ok((self.current().len(), self.keys().len()))
    }

    /// Opens a request line: checks its envelope (MAC, time, nonce) when it
    /// is signed, parses the plain request, and refuses an unsigned request
    /// of a community that has a key, or a key used for another community.
    /// Refusals are `DENIED`, and change nothing.
    pub fn admit(&self, line: &[u8]) -> Result<Admitted, Box<Refused>> {
        let keys = self.keys();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let opened = {
            let mut replay = self.replay.lock().unwrap_or_else(|p| p.into_inner());
            auth::verify_request(line, &keys, now, auth::WINDOW, &mut replay)
        };
        let (plain, seal) = match opened {
            Ok(Opened::Plain(plain)) => (plain, None),
            Ok(Opened::Signed { inner, seal }) => (inner, Some(seal)),
            Err(refusal) => {
                // The id of the request inside, when readable, so that the
                // client can match the refusal to its request.
                let id = auth::decode_request(line)
                    .ok()
                    .flatten()
                    .and_then(|s| Request::parse(s.inner).ok())
                    .map(|r| r.id);
                return Err(denied(id, refusal.error, refusal.seal));
            }
        };
        let request = Request::parse(plain).map_err(|e| {
            Box::new(Refused {
                reply: Reply::Error(e),
                seal: seal.clone(),
                auth: None,
            })
        })?;
        if let Err(e) = auth::check_community(seal.as_ref(), &request.community, &keys) {
            return Err(denied(Some(request.id), e, seal));
        }
        Ok(Admitted { request, seal })
    }
}

fn denied(id: Option<u64>, error: auth::AuthError, seal: Option<Seal>) -> Box<Refused> {
    Box::new(Refused {
        reply: Reply::error(id, ErrorCode::Denied, error.to_string()),
        seal,
        auth: Some(error),
    })
}

/// A reply's text as sent: behind the auth line when the request was signed.
pub fn sealed(seal: Option<&Seal>, text: String) -> String {
    match seal {
        Some(seal) => seal.seal_reply(&text),
        None => text,
    }
}

/// Reads the community file through the secret-file checks (owner, mode):
/// a file others may write is refused, one others may read is warned about.
fn read(path: &Path) -> Result<Rules> {
    let secret = failover_daemon::secret::read_secret_file(path).context("community file")?;
    for warning in &secret.warnings {
        tracing::warn!(target: "auth", "community file {warning}");
    }
    Ok(Rules::parse(&secret.text, &path.display().to_string())?)
}

/// Reads the key file through the same checks.
fn read_keys(path: &Path) -> Result<KeyRing> {
    let secret = failover_daemon::secret::read_secret_file(path).context("key file")?;
    for warning in &secret.warnings {
        tracing::warn!(target: "auth", "key file {warning}");
    }
    Ok(KeyRing::parse(&secret.text, &path.display().to_string())?)
}
