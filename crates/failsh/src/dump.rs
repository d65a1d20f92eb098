//! The SIGINT dump: failsh's state as text, written to a file or a FIFO.
//!
//! failsh runs as root, so the dump must never become a way for another user
//! to make root write where they choose. Why each rule:
//! - the dump lives in failsh's runtime directory ([`DEFAULT_DIR`]), which
//!   failsh creates (mode 0750) if missing, and which must belong to
//!   failsh's user and be writable by nobody else: nobody else can plant a
//!   symbolic link, a FIFO or a hard link in it (a world-writable directory
//!   such as `/var/tmp`, even sticky, is refused);
//! - the directory is opened first (`O_NOFOLLOW`) and checked on its open
//!   descriptor, the file then opened relative to it: what is checked is
//!   what is written, with no window between a check and an open;
//! - the file is opened with `O_NOFOLLOW` (a symbolic link is refused),
//!   `O_NONBLOCK` (a FIFO without a reader fails at once instead of
//!   blocking the signal loop), `O_CLOEXEC`, and without `O_TRUNC`: it is
//!   truncated only once `fstat` showed a regular file of failsh's user with
//!   a single link, else it is left untouched;
//! - a FIFO is written without blocking: a dump that does not fit in the
//!   pipe (a reader that does not keep up) is dropped whole, with a message,
//!   never written in part.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, open, openat};
use nix::sys::stat::Mode;
use nix::unistd::mkdir;
use tracing::{error, info};

/// failsh's runtime directory, where the dump goes unless `-l` says
/// otherwise (systemd's `RuntimeDirectory=failsh` creates it too).
pub const DEFAULT_DIR: &str = "/run/failsh";
/// The dump file unless `-l` says otherwise.
pub const DEFAULT_FILE: &str = "/run/failsh/failsh.dump";

/// Why a dump was not written: one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DumpError(String);

/// The SIGINT dump target. A FIFO is opened once a reader is there and kept
/// open, so `cat` on it follows dump after dump.
#[derive(Debug)]
pub struct Dump {
    path: PathBuf,
    fifo: Option<File>,
}

/// An opened and checked dump target.
enum Target {
    File(File),
    Fifo(File),
}

impl Dump {
    pub fn new(path: PathBuf) -> Dump {
        Dump { path, fifo: None }
    }

    /// Writes one dump and logs the outcome; never blocks for long (see the
    /// module's doc).
    pub fn write(&mut self, text: &str) {
        match self.dump(text) {
            Ok(()) => info!("SIGINT: state dumped to {}", self.path.display()),
            Err(e) => error!("SIGINT: not dumped to {}: {e}", self.path.display()),
        }
    }

    fn dump(&mut self, text: &str) -> Result<(), DumpError> {
        let fifo = match &mut self.fifo {
            Some(fifo) => fifo,
            None => match open_target(&self.path)? {
                Target::File(file) => return write_file(file, text),
                Target::Fifo(fifo) => self.fifo.insert(fifo),
            },
        };
        let result = write_fifo(fifo, text);
        if let Err(Dropped::Gone(_)) = &result {
            self.fifo = None; // the reader went away: open again next time
        }
        result.map_err(|e| match e {
            Dropped::Gone(e) | Dropped::Full(e) => e,
        })
    }
}

/// Opens the dump's directory (creating it if missing) and the dump file in
/// it, and checks both on their descriptors.
fn open_target(path: &Path) -> Result<Target, DumpError> {
    let (Some(dir_path), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(DumpError("not a file path".into()));
    };
    let dir_path = if dir_path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir_path
    };
    let dir = open_dir(dir_path)?;
    let flags = OFlag::O_WRONLY
        | OFlag::O_CREAT
        | OFlag::O_NOFOLLOW
        | OFlag::O_NONBLOCK
        | OFlag::O_CLOEXEC
        | OFlag::O_NOCTTY;
    let fd = openat(&dir, name, flags, Mode::from_bits_truncate(0o600)).map_err(|e| match e {
        Errno::ELOOP => DumpError("a symbolic link: refused".into()),
        Errno::ENXIO => DumpError("a FIFO with no reader".into()),
        e => DumpError(e.desc().to_string()),
    })?;
    let file = File::from(fd);
    let meta = file.metadata().map_err(|e| DumpError(e.to_string()))?;
    let euid = nix::unistd::geteuid().as_raw();
    if meta.uid() != euid {
        return Err(DumpError(format!(
            "owned by uid {}, not failsh's uid {euid}: refused",
            meta.uid()
        )));
    }
    let kind = meta.file_type();
    if kind.is_fifo() {
        Ok(Target::Fifo(file))
    } else if kind.is_file() && meta.nlink() == 1 {
        file.set_len(0).map_err(|e| DumpError(e.to_string()))?;
        Ok(Target::File(file))
    } else if kind.is_file() {
        Err(DumpError(format!(
            "a regular file with {} hard links: refused",
            meta.nlink()
        )))
    } else {
        Err(DumpError(
            "neither a regular file nor a FIFO: refused".into(),
        ))
    }
}

/// Opens `path` as a directory without following a final symbolic link,
/// creating it (mode 0750) if missing; refused unless it belongs to
/// failsh's user and neither group nor others may write it.
fn open_dir(path: &Path) -> Result<File, DumpError> {
    let shown = path.display();
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = match open(path, flags, Mode::empty()) {
        Err(Errno::ENOENT) => {
            match mkdir(path, Mode::from_bits_truncate(0o750)) {
                Ok(()) => info!("created the dump directory {shown} (mode 0750)"),
                Err(Errno::EEXIST) => {} // created meanwhile: checked below
                Err(e) => return Err(DumpError(format!("cannot create {shown}: {}", e.desc()))),
            }
            open(path, flags, Mode::empty())
        }
        other => other,
    }
    .map_err(|e| match e {
        Errno::ELOOP | Errno::ENOTDIR => DumpError(format!("{shown} is not a directory: refused")),
        e => DumpError(format!("{shown}: {}", e.desc())),
    })?;
    let dir = File::from(fd);
    let meta = dir.metadata().map_err(|e| DumpError(e.to_string()))?;
    let euid = nix::unistd::geteuid().as_raw();
    if meta.uid() != euid {
        return Err(DumpError(format!(
            "directory {shown} is owned by uid {}, not failsh's uid {euid}: refused",
            meta.uid()
        )));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(DumpError(format!(
            "directory {shown} (mode {:04o}) lets group or others write: refused \
             (use failsh's runtime directory, {DEFAULT_DIR})",
            meta.mode() & 0o7777
        )));
    }
    Ok(dir)
}

fn write_file(mut file: File, text: &str) -> Result<(), DumpError> {
    file.write_all(text.as_bytes())
        .map_err(|e| DumpError(e.to_string()))
}

/// Why a FIFO dump was dropped.
enum Dropped {
    /// The reader has gone: the FIFO is to be opened again.
    Gone(DumpError),
    /// The pipe has no room for the whole dump: the reader lags.
    Full(DumpError),
}

/// Writes the whole dump into the pipe, or nothing: a partial dump would
/// be taken by the reader for a whole one, and waiting for room would block
/// the signal loop.
fn write_fifo(fifo: &mut File, text: &str) -> Result<(), Dropped> {
    let gone = |e: std::io::Error| Dropped::Gone(DumpError(format!("the FIFO's reader: {e}")));
    let room = pipe_room(fifo).map_err(gone)?;
    if text.len() > room {
        return Err(Dropped::Full(DumpError(format!(
            "the FIFO has room for {room} bytes, the dump has {}: dropped (is its reader reading?)",
            text.len()
        ))));
    }
    match fifo.write(text.as_bytes()) {
        Ok(n) if n == text.len() => Ok(()),
        Ok(n) => Err(Dropped::Full(DumpError(format!(
            "only {n} of {} bytes went into the FIFO",
            text.len()
        )))),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Err(Dropped::Full(DumpError(
            "the FIFO is full: dropped (is its reader reading?)".into(),
        ))),
        Err(e) => Err(gone(e)),
    }
}

/// Free bytes in a pipe: its capacity less what its reader has not read.
fn pipe_room(fifo: &File) -> std::io::Result<usize> {
    let fd = fifo.as_raw_fd();
    let capacity = nix::fcntl::fcntl(fifo, nix::fcntl::FcntlArg::F_GETPIPE_SZ)?;
    let mut queued: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int through the pointer, which points
    // at a live c_int; `fd` is open for the duration of the call.
    if unsafe { libc::ioctl(fd, libc::FIONREAD, &mut queued) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(usize::try_from(capacity - queued).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn private_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        dir
    }

    #[test]
    fn a_regular_file_is_replaced_whole() {
        let dir = private_dir();
        let path = dir.path().join("dump");
        std::fs::write(&path, "an older and much longer dump\n").unwrap();
        Dump::new(path.clone()).dump("new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o644, "an existing file keeps its mode");
        let fresh = dir.path().join("fresh");
        Dump::new(fresh.clone()).dump("x").unwrap();
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "a new dump is private");
    }

    #[test]
    fn a_missing_directory_is_created_private() {
        let dir = private_dir();
        let path = dir.path().join("run").join("dump");
        Dump::new(path.clone()).dump("x").unwrap();
        let mode = std::fs::metadata(dir.path().join("run"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o027,
            0,
            "no group write, nothing for others: {mode:o}"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "x");
    }

    #[test]
    fn links_and_open_directories_are_refused_and_nothing_is_written() {
        let dir = private_dir();
        let target = dir.path().join("target");
        std::fs::write(&target, "precious").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = Dump::new(link).dump("x").unwrap_err();
        assert!(e.0.contains("symbolic link"), "{e}");
        let hard = dir.path().join("hard");
        std::fs::hard_link(&target, &hard).unwrap();
        let e = Dump::new(hard).dump("x").unwrap_err();
        assert!(e.0.contains("2 hard links"), "{e}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious");

        let linked_dir = dir.path().join("linked-dir");
        std::os::unix::fs::symlink(dir.path(), &linked_dir).unwrap();
        let e = Dump::new(linked_dir.join("dump")).dump("x").unwrap_err();
        assert!(e.0.contains("not a directory"), "{e}");

        for mode in [0o777, 0o1777, 0o770] {
            let open = dir.path().join(format!("open-{mode:o}"));
            std::fs::create_dir(&open).unwrap();
            std::fs::set_permissions(&open, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = Dump::new(open.join("dump")).dump("x").unwrap_err();
            assert!(e.0.contains("lets group or others write"), "{e}");
            assert!(!open.join("dump").exists());
        }
    }

    #[test]
    fn a_fifo_never_blocks_and_gets_whole_dumps_only() {
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        let dir = private_dir();
        let path = dir.path().join("fifo");
        nix::unistd::mkfifo(&path, Mode::from_bits_truncate(0o600)).unwrap();
        let mut dump = Dump::new(path.clone());
        let e = dump.dump("x").unwrap_err();
        assert!(e.0.contains("no reader"), "{e}");
        let mut reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .unwrap();
        dump.dump("first\n").unwrap();
        // Fill the pipe: the dump that does not fit is dropped whole.
        let big = "y".repeat(40_000);
        let mut dropped = 0;
        for _ in 0..10 {
            if dump.dump(&big).is_err() {
                dropped += 1;
            }
        }
        assert!(dropped > 0, "a 64 KiB pipe cannot hold 400,000 bytes");
        let mut got = Vec::new();
        let _ = reader.read_to_end(&mut got); // ends with WouldBlock
        assert!(got.starts_with(b"first\n"));
        assert_eq!((got.len() - 6) % big.len(), 0, "whole dumps only");
    }
}
