//! Reading files that hold secrets (community files, key files): refused
//! when someone other than their owner could change them, warned about when
//! anybody could read them.
//!
//! Why: faild and failsh trust these files completely. A community file that
//! another user may write grants that user every right over every service; a
//! file owned by another user is that user's to change whenever they like.
//! Checks run on the opened file (`fstat`), never on the path before the
//! open, so the file checked is the file read. Symbolic links are followed,
//! as `/etc` setups use them; the link's target is what gets checked.
//!
//! The open itself must not block: a FIFO planted at the path (or a device)
//! would otherwise hang the caller until someone writes to it, and faild
//! re-reads on SIGHUP inside the task that also waits for SIGTERM. So the
//! file is opened `O_NONBLOCK` (a FIFO without writer then opens at once and
//! is refused by the `fstat` check as not a regular file; on a regular file
//! the flag changes nothing), `O_NOCTTY` (a terminal never becomes a
//! detached daemon's controlling terminal) and `O_CLOEXEC`.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// The largest secret file read (1 MiB): a community or key file is a few
/// lines; a larger one is a mistake (or a device) and is refused.
pub const MAX_SECRET_FILE: u64 = 1 << 20;

/// Why a secret file was refused. One line each, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a regular file")]
    NotRegular { path: String },
    #[error(
        "{path}: owned by uid {owner}, not by root or this process (uid {euid}); \
         refused: chown root (or this user) and chmod 600"
    )]
    Owner { path: String, owner: u32, euid: u32 },
    #[error("{path}: mode {mode:04o} lets group or others write it; refused: chmod go-w")]
    Writable { path: String, mode: u32 },
    #[error("{path}: larger than {MAX_SECRET_FILE} bytes; refused")]
    TooLarge { path: String },
    #[error("{path}: not UTF-8 text")]
    NotText { path: String },
}

/// A secret file's text, and the warnings to log about it (other-readable).
#[derive(Debug)]
pub struct SecretText {
    pub text: String,
    pub warnings: Vec<String>,
}

/// Opens, checks and reads a secret file (see the module's doc).
pub fn read_secret_file(path: &Path) -> Result<SecretText, SecretFileError> {
    let shown = path.display().to_string();
    let io = |source| SecretFileError::Io {
        path: shown.clone(),
        source,
    };
    let mut file = open_without_blocking(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    let warnings = check(&shown, &meta, nix::unistd::geteuid().as_raw())?;
    let mut bytes = Vec::new();
    (&mut file)
        .take(MAX_SECRET_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_SECRET_FILE {
        return Err(SecretFileError::TooLarge { path: shown });
    }
    let text = String::from_utf8(bytes).map_err(|_| SecretFileError::NotText {
        path: shown.clone(),
    })?;
    Ok(SecretText { text, warnings })
}

/// Opens `path` for reading without ever waiting (see the module's doc).
fn open_without_blocking(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
}

/// The rules, on the metadata of the opened file: a regular file, owned by
/// root or `euid`, not writable by group or others; a warning when others
/// may read it.
fn check(path: &str, meta: &std::fs::Metadata, euid: u32) -> Result<Vec<String>, SecretFileError> {
    if !meta.file_type().is_file() {
        return Err(SecretFileError::NotRegular { path: path.into() });
    }
    if meta.len() > MAX_SECRET_FILE {
        return Err(SecretFileError::TooLarge { path: path.into() });
    }
    let owner = meta.uid();
    if owner != 0 && owner != euid {
        return Err(SecretFileError::Owner {
            path: path.into(),
            owner,
            euid,
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(SecretFileError::Writable {
            path: path.into(),
            mode,
        });
    }
    let mut warnings = Vec::new();
    if mode & 0o004 != 0 {
        warnings.push(format!(
            "{path}: mode {mode:04o} lets every local user read its secrets; chmod o-r"
        ));
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn file_with_mode(dir: &Path, mode: u32) -> std::path::PathBuf {
        let path = dir.join(format!("f{mode:o}"));
        std::fs::write(&path, "* genesis RW\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn private_file_is_read_without_warning() {
        let dir = tempfile::tempdir().unwrap();
        let got = read_secret_file(&file_with_mode(dir.path(), 0o600)).unwrap();
        assert_eq!(got.text, "* genesis RW\n");
        assert!(got.warnings.is_empty());
        let group_readable = read_secret_file(&file_with_mode(dir.path(), 0o640)).unwrap();
        assert!(group_readable.warnings.is_empty());
    }

    #[test]
    fn other_readable_file_is_read_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let got = read_secret_file(&file_with_mode(dir.path(), 0o644)).unwrap();
        assert_eq!(got.warnings.len(), 1, "{:?}", got.warnings);
        assert!(got.warnings[0].contains("0644"), "{:?}", got.warnings);
    }

    #[test]
    fn group_or_other_writable_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o620, 0o602, 0o666, 0o777] {
            let err = read_secret_file(&file_with_mode(dir.path(), mode)).unwrap_err();
            assert!(
                matches!(err, SecretFileError::Writable { .. }),
                "{mode:o}: {err}"
            );
            assert!(err.to_string().contains("chmod go-w"), "{err}");
        }
    }

    #[test]
    fn a_file_of_another_owner_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = file_with_mode(dir.path(), 0o600);
        let err = if nix::unistd::geteuid().is_root() {
            // As root: really give the file away.
            std::os::unix::fs::chown(&path, Some(4242), None).unwrap();
            read_secret_file(&path).unwrap_err()
        } else {
            // As a user: judge the own file from another user's eyes.
            check("f", &std::fs::metadata(&path).unwrap(), 4242).unwrap_err()
        };
        assert!(matches!(err, SecretFileError::Owner { .. }), "{err}");
    }

    #[test]
    fn root_owned_files_are_trusted_by_any_user() {
        let meta = std::fs::metadata("/etc/passwd").unwrap();
        assert_eq!(meta.uid(), 0, "test assumes /etc/passwd belongs to root");
        assert!(check("/etc/passwd", &meta, 4242).is_ok());
    }

    #[test]
    fn directories_and_devices_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            read_secret_file(dir.path()).unwrap_err(),
            SecretFileError::NotRegular { .. }
        ));
        assert!(matches!(
            read_secret_file(Path::new("/dev/zero")).unwrap_err(),
            SecretFileError::NotRegular { .. }
        ));
    }

    #[test]
    fn a_fifo_without_writer_is_refused_at_once_not_waited_on() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("communities");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let path = fifo.clone();
        std::thread::spawn(move || tx.send(read_secret_file(&path).map(|t| t.text)));
        let got = rx.recv_timeout(std::time::Duration::from_secs(10));
        if got.is_err() {
            // Release the blocked reader so that the test process can end.
            let _ = OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&fifo);
        }
        let err = got
            .expect("read_secret_file still blocked on the FIFO after 10 s")
            .unwrap_err();
        assert!(matches!(err, SecretFileError::NotRegular { .. }), "{err}");
        assert!(err.to_string().contains("communities"), "{err}");
    }
}
