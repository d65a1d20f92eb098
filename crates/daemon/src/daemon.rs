//! Becoming a daemon: detaching, the pid file, resource limits, priority,
//! memory locking and dropping privileges. Everything here runs before the
//! async runtime exists, while faild is still a single thread (fork needs that).

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use nix::fcntl::{Flock, FlockArg};
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use nix::unistd::{ForkResult, Uid, User, fork, initgroups, setgid, setsid, setuid};
use tracing::{info, warn};

use crate::notify::{Notifier, NotifyState};

/// How the daemon tells that it serves (or why it could not start): the
/// write end of the pipe the waiting parent reads when it detached, so that
/// the init script's `faild` command returns only once faild serves (no
/// "small pause" needed before the first failc, unlike the original); or,
/// in the foreground under a systemd `Type=notify` unit, the service
/// manager's notification socket.
#[derive(Debug, Default)]
pub struct Ready {
    parent: Option<OwnedFd>,
    notifier: Option<Notifier>,
    /// `READY=1` went out, so a shutdown is worth announcing.
    notified_ready: bool,
    notified_stopping: bool,
}

impl Ready {
    /// For a foreground daemon that nobody waits for.
    pub fn none() -> Ready {
        Ready::default()
    }

    /// For a foreground daemon that reports to the service manager.
    pub fn notify(notifier: Notifier) -> Ready {
        Ready {
            notifier: Some(notifier),
            ..Ready::default()
        }
    }

    /// Tells the waiting parent, or the service manager (`READY=1`), that
    /// the daemon serves. Later calls do nothing.
    pub fn ok(&mut self) {
        if let Some(n) = &self.notifier
            && !self.notified_ready
        {
            self.notified_ready = true;
            n.send_logged(&[NotifyState::Ready]);
        }
        self.send("ok\n");
    }

    /// Hands the start-up (or run-time) error to the waiting parent, which
    /// prints it, or to the service manager as the unit's status line.
    pub fn failed(&mut self, message: &str) {
        if let Some(n) = &self.notifier {
            n.send_logged(&[NotifyState::Status(message)]);
        }
        self.stopping();
        self.send(message);
    }

    /// Tells the service manager that the daemon is shutting down
    /// (`STOPPING=1`), once, and only after it said it was ready.
    /// [`crate::start`] calls it when the daemon's `run` returns; a daemon
    /// may call it earlier, when a stop signal starts its shutdown.
    pub fn stopping(&mut self) {
        if let Some(n) = &self.notifier
            && self.notified_ready
            && !self.notified_stopping
        {
            self.notified_stopping = true;
            n.send_logged(&[NotifyState::Stopping]);
        }
    }

    fn send(&mut self, msg: &str) {
        if let Some(fd) = self.parent.take() {
            let _ = File::from(fd).write_all(msg.as_bytes());
        }
    }
}

/// Detaches from the terminal (fork, setsid, fork). The original process
/// waits for the daemon's word on a pipe and exits with 0 once it serves, or
/// prints the start-up error (as `name: message`) and exits with 1. Only the
/// daemon returns.
pub fn detach(name: &str) -> Result<Ready> {
    let (read_end, write_end) = nix::unistd::pipe().context("pipe")?;
    // SAFETY: no other thread exists yet (the runtime is built after this).
    match unsafe { fork() }.context("fork")? {
        ForkResult::Parent { .. } => {
            drop(write_end);
            let mut msg = String::new();
            let _ = File::from(read_end).read_to_string(&mut msg);
            let code = match msg.as_str() {
                "ok\n" => 0,
                "" => {
                    eprintln!("{name}: exited during start-up (see the system log)");
                    1
                }
                m => {
                    eprintln!("{name}: {}", m.trim_end());
                    1
                }
            };
            std::process::exit(code);
        }
        ForkResult::Child => {}
    }
    drop(read_end);
    setsid().context("setsid")?;
    // SAFETY: still single-threaded.
    if let ForkResult::Parent { .. } = unsafe { fork() }.context("fork")? {
        // SAFETY: _exit skips destructors that belong to the daemon.
        unsafe { libc::_exit(0) };
    }
    std::env::set_current_dir("/").context("chdir /")?;
    let null = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    nix::unistd::dup2_stdin(&null)?;
    nix::unistd::dup2_stdout(&null)?;
    nix::unistd::dup2_stderr(&null)?;
    Ok(Ready {
        parent: Some(write_end),
        ..Ready::default()
    })
}

/// A locked pid file; removed when faild stops.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
    _lock: Flock<File>,
}

impl PidFile {
    /// Writes this process's id, refusing to start when a running faild
    /// holds the same pid file.
    pub fn create(path: &Path) -> Result<PidFile> {
        let ctx = || format!("pid file {}", path.display());
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .with_context(ctx)?;
        let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((mut file, _)) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                bail!("{}: already running (pid {})", ctx(), pid.trim());
            }
        };
        lock.set_len(0).with_context(ctx)?;
        writeln!(lock, "{}", std::process::id()).with_context(ctx)?;
        lock.sync_all().with_context(ctx)?;
        Ok(PidFile {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            warn!("cannot remove pid file {}: {e}", self.path.display());
        }
    }
}

/// The open-file limits (soft, hard) before [`raise_fd_limit`] raised them.
static STARTED_WITH_NOFILE: std::sync::OnceLock<(u64, u64)> = std::sync::OnceLock::new();

/// Raises the open-file soft limit to the hard limit; returns the new soft
/// limit, which bounds the connection cap. The limits it started with are
/// kept for [`restore_fd_limit`].
pub fn raise_fd_limit() -> u64 {
    let limits = getrlimit(Resource::RLIMIT_NOFILE);
    if let Ok(limits) = limits {
        let _ = STARTED_WITH_NOFILE.set(limits);
    }
    match limits {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => hard,
            Err(e) => {
                warn!(target: "net", "cannot raise the open-file limit from {soft} to {hard}: {e}");
                soft
            }
        },
        Ok((soft, _)) => soft,
        Err(_) => 1024,
    }
}

/// Gives this process back the open-file limits it started with, before
/// [`raise_fd_limit`]; nothing if that was not called. For a child between
/// fork and exec (it only reads a value set before and makes one system
/// call): programs a daemon runs get the limit their administrator set, not
/// the daemon's raised one — programs that `select()` or close every
/// descriptor up to the limit break or slow down with a high one.
pub fn restore_fd_limit() -> std::io::Result<()> {
    match STARTED_WITH_NOFILE.get() {
        Some(&(soft, hard)) => setrlimit(Resource::RLIMIT_NOFILE, soft, hard).map_err(Into::into),
        None => Ok(()),
    }
}

/// `-m`: keep faild's pages in RAM, so a reply never waits for paging.
///
/// Locking future allocations too (`MCL_FUTURE`) is only safe when nothing
/// can refuse them later: with a finite `RLIMIT_MEMLOCK` (e.g. after `-u`
/// drops root's CAP_IPC_LOCK) any allocation past the limit would fail and
/// abort faild. So faild first tries to lift the limit; failing that, and
/// unless it stays root with CAP_IPC_LOCK, it locks what is mapped now
/// (which covers the registry loaded at start) and says so.
pub fn lock_memory(staying_root: bool) {
    use nix::sys::mman::{MlockAllFlags, mlockall};
    let unlimited = nix::sys::resource::RLIM_INFINITY;
    let lifted = setrlimit(Resource::RLIMIT_MEMLOCK, unlimited, unlimited).is_ok()
        || getrlimit(Resource::RLIMIT_MEMLOCK).is_ok_and(|(soft, _)| soft == unlimited);
    let future = lifted || (staying_root && has_cap_ipc_lock());
    let flags = if future {
        MlockAllFlags::MCL_CURRENT | MlockAllFlags::MCL_FUTURE
    } else {
        MlockAllFlags::MCL_CURRENT
    };
    match mlockall(flags) {
        Ok(()) if future => info!("memory locked, including future allocations"),
        Ok(()) => warn!(
            "-m: memory locked as mapped now; later growth is not locked because RLIMIT_MEMLOCK \
             is finite (raise it, e.g. LimitMEMLOCK=infinity in the unit, to lock everything)"
        ),
        Err(e) => {
            warn!("-m: cannot lock memory: {e} (needs root or CAP_IPC_LOCK); going on unlocked")
        }
    }
}

/// Whether this process holds CAP_IPC_LOCK (bit 14 of CapEff).
fn has_cap_ipc_lock() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let hex = s
                .lines()
                .find_map(|l| l.strip_prefix("CapEff:"))?
                .trim()
                .to_string();
            u64::from_str_radix(&hex, 16).ok()
        })
        .is_some_and(|caps| caps & (1 << 14) != 0)
}

/// `-n N`: lower the nice value by N.
pub fn raise_priority(n: i32) {
    // SAFETY: plain system calls on this process; errno is cleared first
    // because -1 is also a valid priority.
    let current = unsafe {
        *libc::__errno_location() = 0;
        libc::getpriority(libc::PRIO_PROCESS, 0)
    };
    let target = current - n;
    // SAFETY: as above.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, target) } == 0 {
        info!("nice value lowered from {current} to {target}");
    } else {
        warn!(
            "-n {n}: cannot lower the nice value to {target}: {} (needs root); going on at {current}",
            std::io::Error::last_os_error()
        );
    }
}

/// The user `-u USER|UID` names.
pub fn lookup_user(spec: &str) -> Result<User> {
    match spec.parse::<u32>() {
        Ok(uid) => User::from_uid(Uid::from_raw(uid)),
        Err(_) => User::from_name(spec),
    }
    .with_context(|| format!("-u {spec}"))?
    .with_context(|| format!("-u {spec}: no such user"))
}

/// `-u USER|UID`: switch user and groups for good.
pub fn drop_privileges(spec: &str) -> Result<()> {
    let user = lookup_user(spec)?;
    if Uid::current() == user.uid && Uid::effective() == user.uid {
        return Ok(());
    }
    if !Uid::effective().is_root() {
        bail!("-u {spec}: only root can switch to another user");
    }
    let name = CString::new(user.name.clone())?;
    initgroups(&name, user.gid).with_context(|| format!("-u {spec}: initgroups"))?;
    setgid(user.gid).with_context(|| format!("-u {spec}: setgid"))?;
    setuid(user.uid).with_context(|| format!("-u {spec}: setuid"))?;
    info!(
        "running as user {} (uid {}, gid {})",
        user.name, user.uid, user.gid
    );
    Ok(())
}
