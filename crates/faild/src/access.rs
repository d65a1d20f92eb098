//! The community rules and request keys in force, and their reload on SIGHUP.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use failover::auth::{self, Authentic, Freshness, KeyRing, Opened, ReplayCache, Seal};
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
    /// When this faild started: the wall clock (Unix seconds) and the
    /// monotonic one. The nonce cache starts empty, so for a window after
    /// the start requests stamped before it are refused (see
    /// [`Freshness::started`]); the monotonic clock bounds that time even
    /// if the wall clock steps.
    started: (u64, Instant),
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
            replay: Mutex::new(
                ReplayCache::new(ReplayCache::DEFAULT_CAPACITY, auth::WINDOW)
                    .with_key_quota(ReplayCache::DEFAULT_KEY_QUOTA),
            ),
            started: (unix_now(), Instant::now()),
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
        // The MAC is checked before the nonce cache is locked: forgeries
        // (any number, from anyone) never hold up a key holder's request.
        let opened = auth::authenticate(line, &keys).and_then(|a| match a {
            Authentic::Plain(plain) => Ok(Opened::Plain(plain)),
            Authentic::Signed(verified) => {
                let clock = self.clock();
                let mut replay = self.replay.lock().unwrap_or_else(|p| p.into_inner());
                verified.admit(clock, &mut replay)
            }
        });
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

    /// With a key file, waits (at most a second) until the wall clock has
    /// left the second faild started in. Requests stamped in that second or
    /// before are refused for a while (the previous run may have seen
    /// them), so a key holder asking as soon as faild answers must not be
    /// stamping in it.
    pub fn wait_out_start_second(&self) {
        if self.key_file.is_none() {
            return;
        }
        let next = UNIX_EPOCH + Duration::from_secs(self.started.0 + 1);
        if let Ok(left) = next.duration_since(SystemTime::now()) {
            std::thread::sleep(left.min(Duration::from_secs(1)));
        }
    }

    /// The clock signed requests are checked against.
    fn clock(&self) -> Freshness {
        let (wall, mono) = self.started;
        // One second more than the window: the wall start is rounded down.
        let young = mono.elapsed() <= Duration::from_secs(auth::WINDOW + 1);
        Freshness {
            now: unix_now(),
            window: auth::WINDOW,
            started: young.then_some(wall),
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::mpsc;

    const SECRET: &str = "00112233445566778899aabbccddeeff";

    fn access(dir: &Path) -> Access {
        let keys = dir.join("keys");
        std::fs::write(&keys, format!("k1 genesis hex:{SECRET}\n")).unwrap();
        std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).unwrap();
        Access::load(None, Some(keys)).unwrap()
    }

    /// Forgeries and plain requests are answered while the nonce cache is
    /// locked (by a key holder's request in flight): only a request whose
    /// MAC verified waits for it.
    #[test]
    fn forgeries_do_not_wait_for_the_nonce_cache() {
        let dir = tempfile::tempdir().unwrap();
        let access = Arc::new(access(dir.path()));
        let forger = auth::Key::new("k1", Some("genesis"), &[7; 16]).unwrap();
        let now = unix_now();
        let (forged, _) =
            auth::sign_request(&forger, now, [1; 16], "FAIL/1 1 genesis SET vip UP\n");
        let held = access.replay.lock().unwrap();
        let (tx, rx) = mpsc::channel();
        let a = access.clone();
        let worker = std::thread::spawn(move || {
            let forged = a.admit(forged.as_bytes()).map(|_| ()).map_err(|r| r.auth);
            let plain = a
                .admit(b"FAIL/1 2 public GET vip\n")
                .map(|_| ())
                .map_err(|r| r.auth);
            let _ = tx.send((forged, plain));
        });
        let got = rx.recv_timeout(Duration::from_secs(10));
        drop(held);
        worker.join().unwrap();
        let (forged, plain) = got.expect("answered without waiting for the lock");
        assert_eq!(forged, Err(Some(auth::AuthError::BadMac)));
        assert_eq!(plain, Ok(()));
    }

    /// Just after the start, a request stamped before it is refused (its
    /// nonce may be in the previous run's cache); one stamped after is not.
    #[test]
    fn a_young_faild_refuses_requests_stamped_before_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let access = access(dir.path());
        let key =
            auth::Key::new("k1", Some("genesis"), &auth::decode_hex(SECRET).unwrap()).unwrap();
        let started = access.started.0;
        let sign =
            |time, n| auth::sign_request(&key, time, [n; 16], "FAIL/1 1 genesis GET vip\n").0;
        let refused = access.admit(sign(started - 1, 1).as_bytes()).unwrap_err();
        assert_eq!(refused.auth, Some(auth::AuthError::BeforeStart));
        assert!(refused.seal.is_some(), "a key holder's refusal is sealed");
        assert!(access.admit(sign(started + 1, 2).as_bytes()).is_ok());
    }
}
