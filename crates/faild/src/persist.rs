//! The state file on disk: loading at start and atomic, durable rewrites.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result};
use failover::registry::{Mutation, Registry};
use failover::statefile::{self, Loaded};
use nix::fcntl::{Flock, FlockArg};
use tracing::{debug, info, warn};

/// The state file and the boot id it is written under.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    boot_id: String,
    /// Held from load to exit: two faild writing one state file would
    /// overwrite each other's changes.
    _lock: Flock<File>,
}

/// Why a save failed, and so what the file now holds.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// The old file is untouched: nothing changed.
    #[error("{0}")]
    NotWritten(io::Error),
    /// The new file replaced the old one, but the rename may not be durable.
    #[error("{0} (after the rename)")]
    NotSynced(io::Error),
}

/// This boot's id: `FAILD_BOOT_ID` if set (containers that share the host's
/// kernel but not its boots; tests that simulate a reboot), else the
/// kernel's. Where it can't be read, a fresh value stands in, so every start
/// counts as a reboot: the safe side (UP is never kept on a guess).
pub fn current_boot_id() -> String {
    if let Ok(id) = std::env::var("FAILD_BOOT_ID") {
        return id;
    }
    match fs::read_to_string("/proc/sys/kernel/random/boot_id") {
        Ok(id) => id.trim().to_string(),
        Err(e) => {
            warn!(target: "store", "cannot read the boot id ({e}); treating this start as a reboot");
            format!(
                "unknown-{}-{}",
                std::process::id(),
                failover::proto::format_time(SystemTime::now())
            )
        }
    }
}

impl StateFile {
    /// Takes the state file's lock (`FILE.lock` beside it), refusing when
    /// another faild holds it.
    pub fn open(path: PathBuf, boot_id: String) -> Result<StateFile> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut lock_path = path.clone().into_os_string();
        lock_path.push(".lock");
        let lock_path = PathBuf::from(lock_path);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(STATE_MODE)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&lock_path)
            .with_context(|| format!("state file lock {}", lock_path.display()))?;
        let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err(_) => anyhow::bail!(
                "state file {} is in use by another faild (lock {} is held)",
                path.display(),
                lock_path.display()
            ),
        };
        remove_stale_temps(&path);
        Ok(StateFile {
            path,
            boot_id,
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Loads the registry and applies the boot-id rule. A missing file is a
    /// first start; an unreadable or corrupt one is an error naming the file,
    /// never an empty registry.
    pub fn load(&self) -> Result<Registry> {
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                info!(target: "store", "state file {} does not exist yet: starting with no services", self.path.display());
                return Ok(Registry::new());
            }
            Err(e) => return Err(e).with_context(|| format!("state file {}", self.path.display())),
        };
        let mut loaded: Loaded = statefile::parse(&text).with_context(|| {
            format!(
                "state file {} is corrupt (fix or move it away)",
                self.path.display()
            )
        })?;
        let failed = loaded.settle_boot(&self.boot_id, SystemTime::now());
        match loaded.boot_id.as_deref() {
            Some(id) if id == self.boot_id => info!(
                target: "store",
                "loaded {} services from {}, written during this boot: states kept as recorded",
                loaded.registry.len(),
                self.path.display()
            ),
            previous => info!(
                target: "store",
                "loaded {} services from {}, written during {}: the host rebooted, so {} service(s) recorded UP are now FAIL{}{}",
                loaded.registry.len(),
                self.path.display(),
                previous.map_or("an unknown boot".to_string(), |p| format!("boot {p}")),
                failed.len(),
                if failed.is_empty() { "" } else { ": " },
                failed.join(", ")
            ),
        }
        release_free_memory();
        Ok(loaded.registry)
    }

    /// Writes the registry as it will be after `pending`: temp file, fsync,
    /// rename, fsync of the directory. Returns only once the data is durable.
    pub fn save(&self, registry: &Registry, pending: Option<&Mutation>) -> Result<(), SaveError> {
        write_atomic(&self.path, |w| {
            let mut out = FmtToIo {
                inner: w,
                buf: String::with_capacity(FmtToIo::CHUNK + 1024),
                error: None,
            };
            let rendered = statefile::render_into(
                &mut out,
                registry,
                pending,
                &self.boot_id,
                SystemTime::now(),
            );
            match (rendered, out.flush()) {
                (Ok(()), Ok(())) => Ok(()),
                (_, Err(e)) => Err(e),
                (Err(_), Ok(())) => Err(out
                    .error
                    .take()
                    .unwrap_or_else(|| io::Error::other("formatting failed"))),
            }
        })?;
        debug!(target: "store", "wrote {} ({} services)", self.path.display(), registry.len());
        Ok(())
    }
}

/// Hands the parser's scratch memory back to the system: a large state file
/// would otherwise keep faild's resident size at its load-time peak.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Lets the pure renderer (a `fmt::Write` user) stream into a file in
/// chunks, so a large registry never exists as one big string.
struct FmtToIo<'a> {
    inner: &'a mut dyn Write,
    buf: String,
    error: Option<io::Error>,
}

impl FmtToIo<'_> {
    const CHUNK: usize = 64 * 1024;

    fn flush(&mut self) -> io::Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.inner.write_all(self.buf.as_bytes())?;
        self.buf.clear();
        Ok(())
    }
}

impl fmt::Write for FmtToIo<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.buf.push_str(s);
        if self.buf.len() >= Self::CHUNK {
            self.flush().map_err(|e| {
                self.error = Some(e);
                fmt::Error
            })?;
        }
        Ok(())
    }
}

/// Replaces `path` with what `fill` writes, so that after a crash the file
/// holds either the old or the new contents, never a mix.
pub fn write_atomic(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<(), SaveError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let (tmp, mut f) = create_temp(dir, &name).map_err(SaveError::NotWritten)?;
    let result = (|| {
        fill(&mut f)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(SaveError::NotWritten(e));
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(SaveError::NotSynced)
}

/// Mode of the temporary file, and so of the state file: faild's user
/// writes it, its group (admins) may read it, nobody else.
const STATE_MODE: u32 = 0o640;

/// Creates a new temporary file beside the state file, under a name nobody
/// can guess (`.NAME.tmp.PID.RANDOM`), exclusively (`O_EXCL`, so an entry
/// already there — a planted symbolic link — is never opened, let alone
/// followed or truncated; another name is tried instead). When a write
/// fails, [`write_atomic`] removes only the file this call created. At start,
/// [`remove_stale_temps`] removes every entry with the `.NAME.tmp.` prefix,
/// whoever made it: safe because it runs with the state file's lock held (no
/// other faild is writing one) in a directory [`check_state_dir`] found only
/// root and faild's user may write, so such an entry is a killed faild's
/// leftover or a trusted user's doing.
fn create_temp(dir: &Path, name: &str) -> io::Result<(PathBuf, File)> {
    let mut last = io::Error::from(io::ErrorKind::AlreadyExists);
    for _ in 0..8 {
        let tmp = dir.join(format!(
            ".{name}.tmp.{}.{:016x}",
            std::process::id(),
            random_u64()
        ));
        match open_exclusive(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// Removes the temporary files a killed faild left beside `path`: every
/// entry whose name starts with `.NAME.tmp.`, not only files this process
/// made. Called with the lock held (no other faild is writing one), in a
/// directory checked at start to be writable only by root and faild's user
/// ([`check_state_dir`]); unlinking removes a link itself, never its target.
fn remove_stale_temps(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let prefix = format!(".{}.tmp.", name.to_string_lossy());
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            match fs::remove_file(entry.path()) {
                Ok(()) => {
                    info!(target: "store", "removed {}, left by a faild that was killed while writing", entry.path().display())
                }
                Err(e) => {
                    warn!(target: "store", "cannot remove stale {}: {e}", entry.path().display())
                }
            }
        }
    }
}

/// Creates `path`, failing if anything (a file, a link) is already there.
fn open_exclusive(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(STATE_MODE)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// 64 unpredictable bits: std's hasher keys are random per process, and
/// every `RandomState` gets new ones.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// The state file's directory must be one only trusted users can change:
/// owned by root or by one of `trusted` (the user faild runs as), and not
/// writable by group or others — sticky or not (in a sticky `/tmp` another
/// user could still put a `faild.state` or its lock there first). Checked
/// at start, before the state file is read, on the opened directory
/// ([`open_dir`]), so a symbolic link put in its place is refused rather
/// than its target judged.
pub fn check_state_dir(dir: &Path, trusted: &[u32]) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = open_dir(dir)?
        .metadata()
        .with_context(|| format!("state directory {}", dir.display()))?;
    let (owner, mode) = (meta.uid(), meta.mode() & 0o7777);
    anyhow::ensure!(
        owner == 0 || trusted.contains(&owner),
        "state directory {}: owned by uid {owner}, not by root or faild's user; refused: chown it, or choose another -s",
        dir.display()
    );
    anyhow::ensure!(
        mode & 0o022 == 0,
        "state directory {}: mode {mode:04o} lets group or others write it (they could plant files or links there); refused: chmod go-w, or choose another -s",
        dir.display()
    );
    Ok(())
}

/// Gives the state directory faild just created to the user it will run as
/// (`-u`), so that it can still replace the state file after dropping root.
/// The change is made on the opened directory (`fchown`), and only when
/// that directory is still the one this process made (owned by it): in a
/// parent others may write, someone could otherwise swap in a link to
/// `/etc`, or a directory of their own with files planted in it, between
/// the `mkdir` and the `chown`.
pub fn hand_over_state_dir(dir: &Path, uid: u32, gid: u32) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let handle = open_dir(dir)?;
    let meta = handle
        .metadata()
        .with_context(|| format!("state directory {}", dir.display()))?;
    let me = nix::unistd::geteuid().as_raw();
    anyhow::ensure!(
        meta.uid() == me,
        "state directory {}: owned by uid {}, not the directory faild just made (uid {me}); refused",
        dir.display(),
        meta.uid()
    );
    std::os::unix::fs::fchown(&handle, Some(uid), Some(gid)).with_context(|| {
        format!(
            "state directory {}: cannot hand it over to uid {uid}",
            dir.display()
        )
    })
}

/// Opens the directory `dir` itself: `O_NOFOLLOW`, so a symbolic link at its
/// place (the last component of the path) is refused, never followed;
/// `O_DIRECTORY`, so anything else is refused too. This port's choice: a
/// state directory is named by its real path. Links in the components
/// before the last are followed (`/var` may be one).
fn open_dir(dir: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir)
        .map_err(|e| {
            let shown = dir.display();
            match fs::symlink_metadata(dir) {
                Ok(m) if m.is_symlink() => anyhow::anyhow!(
                    "state directory {shown}: a symbolic link; refused: give -s the real directory's path"
                ),
                Ok(m) if !m.is_dir() => {
                    anyhow::anyhow!("state directory {shown}: not a directory")
                }
                _ => anyhow::anyhow!("state directory {shown}: {e}"),
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("faild.state");
        write_atomic(&path, |w| w.write_all(b"one")).unwrap();
        write_atomic(&path, |w| w.write_all(b"two")).unwrap();
        let failed = write_atomic(&path, |w| {
            w.write_all(b"half")?;
            Err(io::Error::other("disk full"))
        });
        assert!(matches!(failed, Err(SaveError::NotWritten(_))));
        assert_eq!(
            fs::read(&path).unwrap(),
            b"two",
            "a failed write leaves the old file"
        );
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
    }

    #[test]
    fn temp_files_are_new_files_never_planted_links() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "precious").unwrap();
        let link = dir.path().join(".faild.state.tmp.planted");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let err = open_exclusive(&link).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        assert!(fs::symlink_metadata(&link).unwrap().is_symlink());
        let (stale, _) = create_temp(dir.path(), "faild.state").unwrap();
        let _lock = StateFile::open(dir.path().join("faild.state"), "b".into()).unwrap();
        assert!(
            !stale.exists(),
            "a killed faild's temp file is removed at start"
        );
        let (a, _) = create_temp(dir.path(), "faild.state").unwrap();
        let (b, _) = create_temp(dir.path(), "faild.state").unwrap();
        assert_ne!(a, b, "every temp name is new");
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&a).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & !STATE_MODE, 0, "mode {mode:o}");
    }

    #[test]
    fn state_dir_must_be_changeable_by_trusted_users_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let me = nix::unistd::geteuid().as_raw();
        let set = |mode| fs::set_permissions(dir.path(), fs::Permissions::from_mode(mode)).unwrap();
        for ok in [0o700, 0o755, 0o750, 0o1755] {
            set(ok);
            check_state_dir(dir.path(), &[me]).unwrap();
        }
        for bad in [0o777, 0o1777, 0o775, 0o757] {
            set(bad);
            let err = check_state_dir(dir.path(), &[me]).unwrap_err().to_string();
            assert!(
                err.contains("chmod go-w") && err.contains(&dir.path().display().to_string()),
                "{err}"
            );
        }
        set(0o700);
        if me != 0 {
            let err = check_state_dir(dir.path(), &[]).unwrap_err().to_string();
            assert!(err.contains("owned by uid"), "{err}");
        }
    }

    #[test]
    fn a_link_in_place_of_the_state_dir_is_refused_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let me = nix::unistd::geteuid().as_raw();
        let real = dir.path().join("real");
        fs::create_dir(&real).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        check_state_dir(&real, &[me]).unwrap();
        let err = check_state_dir(&link, &[me]).unwrap_err().to_string();
        assert!(
            err.contains("symbolic link") && err.contains(&link.display().to_string()),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
        let file = dir.path().join("file");
        fs::write(&file, "").unwrap();
        let err = check_state_dir(&file, &[me]).unwrap_err().to_string();
        assert!(err.contains("not a directory"), "{err}");
    }

    #[test]
    fn handing_over_the_state_dir_never_follows_a_link() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let (me, my_gid) = (
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        );
        // As root, hand over to another user; else to oneself (the only
        // change allowed), which still shows what is refused.
        let (uid, gid) = if me == 0 { (4242, 4242) } else { (me, my_gid) };
        let target = dir.path().join("etc");
        fs::create_dir(&target).unwrap();
        let link = dir.path().join("state");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = hand_over_state_dir(&link, uid, gid)
            .unwrap_err()
            .to_string();
        assert!(err.contains("symbolic link"), "{err}");
        assert_eq!(fs::metadata(&target).unwrap().uid(), me, "target untouched");
        let made = dir.path().join("made");
        fs::create_dir(&made).unwrap();
        hand_over_state_dir(&made, uid, gid).unwrap();
        assert_eq!(fs::metadata(&made).unwrap().uid(), uid);
        if me == 0 {
            // A directory someone else swapped in is not taken over.
            let err = hand_over_state_dir(&made, 0, 0).unwrap_err().to_string();
            assert!(err.contains("not the directory faild just made"), "{err}");
            assert_eq!(fs::metadata(&made).unwrap().uid(), uid);
        }
    }

    #[test]
    fn corrupt_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("faild.state");
        fs::write(&path, "not = [toml").unwrap();
        let err = StateFile::open(path.clone(), "b".into())
            .unwrap()
            .load()
            .unwrap_err();
        assert!(
            format!("{err:#}").contains(&path.display().to_string()),
            "{err:#}"
        );
        assert_eq!(
            fs::read(&path).unwrap(),
            b"not = [toml",
            "file left untouched"
        );
    }

    #[test]
    fn missing_file_is_an_empty_start() {
        let dir = tempfile::tempdir().unwrap();
        let reg = StateFile::open(dir.path().join("x"), "b".into())
            .unwrap()
            .load()
            .unwrap();
        assert!(reg.is_empty());
    }

    #[test]
    fn one_state_file_one_faild() {
        let dir = tempfile::tempdir().unwrap();
        let first = StateFile::open(dir.path().join("s"), "b".into()).unwrap();
        let second = StateFile::open(dir.path().join("s"), "b".into()).unwrap_err();
        assert!(
            format!("{second:#}").contains("in use by another faild"),
            "{second:#}"
        );
        drop(first);
        assert!(StateFile::open(dir.path().join("s"), "b".into()).is_ok());
    }
}
