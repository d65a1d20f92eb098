//! failsh's SIGINT dump against another local user: root's failsh must never
//! write through a link, a FIFO or a file that user planted, and a planted
//! FIFO must never wedge it (issue 9, item 1).
//!
//! The plants run as `nobody` (through `setpriv`, or `runuser`), so these
//! tests need root; run as another user they skip, saying why.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use failover_tests::netns::{find_tool, is_root};
use failover_tests::{Faild, Failsh, lone_failsh, read, send_signal, wait_for};

const BOUND: Duration = Duration::from_secs(30);
const NOBODY: u32 = 65_534;
/// SIGINTs sent (at most) while the FIFO is swapped in and out.
const SIGINTS: usize = 300;

/// A command running `script` with `sh` as user nobody, or `None` (with
/// the reason printed) when this test cannot switch users.
fn as_nobody(script: &str) -> Option<Command> {
    if !is_root() {
        println!("SKIPPED: not root, so cannot plant files as another user");
        return None;
    }
    let mut c = if let Some(setpriv) = find_tool("setpriv") {
        let mut c = Command::new(setpriv);
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]);
        c
    } else if let Some(runuser) = find_tool("runuser") {
        let mut c = Command::new(runuser);
        c.args(["-u", "nobody", "--"]);
        c
    } else {
        println!("SKIPPED: neither setpriv nor runuser is installed");
        return None;
    };
    c.args(["sh", "-c", script]).stdin(Stdio::null());
    Some(c)
}

fn mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A lone failsh whose dump file is `dump`.
fn failsh_dumping_to(dir: &Path, dump: &Path) -> (Faild, Failsh) {
    let dump = dump.display().to_string();
    lone_failsh(dir, None, |_| vec!["-l".into(), dump.clone()]).unwrap()
}

/// Sends SIGINT and waits for failsh's log line about it (one more than
/// `before`); returns that line.
fn sigint(failsh: &Failsh, before: usize) -> String {
    send_signal(failsh.pid(), "INT");
    let lines = || -> Vec<String> {
        failsh
            .log()
            .lines()
            .filter(|l| l.contains("SIGINT:"))
            .map(str::to_string)
            .collect()
    };
    wait_for("failsh's SIGINT log line", BOUND, || lines().len() > before)
        .unwrap_or_else(|e| panic!("{e}\n{}", failsh.log()));
    lines()[before].clone()
}

/// Whether `pid` has exited (gone, or a zombie its parent has not reaped).
fn exited(pid: u32) -> bool {
    let stat = read(Path::new(&format!("/proc/{pid}/stat")));
    stat.is_empty()
        || stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z'))
}

/// SIGTERM, then how long failsh took to exit (panics past the bound).
fn stop(failsh: &Failsh) -> Duration {
    let started = Instant::now();
    send_signal(failsh.pid(), "TERM");
    wait_for("failsh to exit on SIGTERM", BOUND, || exited(failsh.pid()))
        .unwrap_or_else(|e| panic!("{e}\n{}", failsh.log()));
    started.elapsed()
}

/// A world-writable directory like `/var/tmp` (not sticky, so the kernel's
/// `protected_symlinks` does not step in and the dump's own defences are
/// what is tested), root's secret in a directory only root may enter.
struct Plot {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    open: PathBuf,
    secret: PathBuf,
}

fn plot() -> Plot {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    mode(&dir, 0o755);
    let open = dir.join("open");
    std::fs::create_dir(&open).unwrap();
    mode(&open, 0o777);
    let private = dir.join("private");
    std::fs::create_dir(&private).unwrap();
    mode(&private, 0o700);
    let secret = private.join("shadow");
    std::fs::write(&secret, "root's secret\n").unwrap();
    Plot {
        dir: dir.join("failsh"),
        _tmp: tmp,
        open,
        secret,
    }
}

#[test]
fn a_symbolic_link_planted_by_another_user_is_not_followed() {
    let p = plot();
    let dump = p.open.join("failsh.dump");
    let Some(mut plant) = as_nobody(&format!("ln -s {} {}", p.secret.display(), dump.display()))
    else {
        return;
    };
    assert!(plant.status().unwrap().success(), "nobody plants the link");
    let (_faild, failsh) = failsh_dumping_to(&p.dir, &dump);
    let line = sigint(&failsh, 0);
    assert_eq!(
        read(&p.secret),
        "root's secret\n",
        "the link's target is unchanged; failsh said: {line}"
    );
    assert!(line.contains("not dumped"), "{line}");
    assert!(
        line.contains("lets group or others write"),
        "the world-writable directory is refused: {line}"
    );
    // A link to a file that does not exist yet creates nothing either.
    let new = p.secret.with_file_name("created-by-root");
    std::fs::remove_file(&dump).unwrap();
    std::os::unix::fs::symlink(&new, &dump).unwrap();
    sigint(&failsh, 1);
    assert!(!new.exists(), "no root-owned file in a root-only directory");
}

#[test]
fn a_fifo_swapped_in_by_another_user_never_wedges_failsh() {
    let p = plot();
    let dump = p.open.join("failsh.dump");
    // The race of the finding: the dump path leads to a file that flips
    // between a regular file and a FIFO without a reader. The path goes
    // through a maze of 30 symbolic links of 1,500 `./` each, so that
    // resolving it takes long enough (about a millisecond) for a flip to
    // land between a check of the path and an open of it.
    let maze = format!(
        "cd {} || exit 1; pad=$(printf './%.0s' $(seq 1 1500)); : > target; \
         ln -s \"${{pad}}target\" l30 || exit 1; \
         for i in $(seq 29 -1 1); do ln -s \"${{pad}}l$((i+1))\" l$i || exit 1; done; \
         ln -s l1 failsh.dump",
        p.open.display()
    );
    let flipper = format!(
        "cd {} || exit 1; i=0; while [ $i -lt 100000 ]; do i=$((i+1)); \
         : > f; mv -f f target; mkfifo p; mv -f p target; done",
        p.open.display()
    );
    // The flipper may be killed between its mkfifo and its mv: `p` may be left.
    let last_fifo = format!(
        "cd {} && rm -f p && mkfifo p && mv -f p target",
        p.open.display()
    );
    let (Some(mut maze), Some(mut flip), Some(mut last_fifo)) =
        (as_nobody(&maze), as_nobody(&flipper), as_nobody(&last_fifo))
    else {
        return;
    };
    assert!(maze.status().unwrap().success(), "nobody builds the maze");
    let (_faild, failsh) = failsh_dumping_to(&p.dir, &dump);
    let mut flip = Reaped(flip.spawn().unwrap());
    // SIGINTs until failsh is caught waiting in a FIFO's open (the kernel
    // names where a thread sleeps in `wchan`).
    let wchan = format!("/proc/{}/wchan", failsh.pid());
    let mut sent = 0;
    let mut wedged = false;
    while sent < SIGINTS && !wedged {
        send_signal(failsh.pid(), "INT");
        sent += 1;
        std::thread::sleep(Duration::from_millis(3)); // paces the signals
        wedged = read(Path::new(&wchan)).trim() == "wait_for_partner";
    }
    assert!(
        flip.0.try_wait().unwrap().is_none(),
        "the flipper ran all along"
    );
    drop(flip);
    // The last word is a FIFO: a wedged open (restarted after each signal)
    // finds a FIFO again.
    assert!(last_fifo.status().unwrap().success());
    let answered = failsh.log().matches("SIGINT:").count();
    let took = stop(&failsh);
    println!(
        "failsh answered {answered} of {sent} SIGINTs while a FIFO was swapped in \
         (caught waiting in a FIFO's open: {wedged}), and stopped {:.3} s after SIGTERM",
        took.as_secs_f64()
    );
    assert!(!wedged, "failsh's main thread waited in a FIFO's open");
    assert!(
        took < Duration::from_secs(10),
        "SIGTERM took {took:?}\n{}",
        failsh.log()
    );
}

#[test]
fn a_file_owned_by_another_user_is_refused_even_in_a_private_directory() {
    if !is_root() {
        println!("SKIPPED: not root, so cannot give a file to another user");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    std::fs::create_dir(&run).unwrap();
    mode(&run, 0o700);
    let dump = run.join("failsh.dump");
    std::fs::write(&dump, "nobody's file\n").unwrap();
    std::os::unix::fs::chown(&dump, Some(NOBODY), Some(NOBODY)).unwrap();
    let (_faild, failsh) = failsh_dumping_to(&tmp.path().join("failsh"), &dump);
    let line = sigint(&failsh, 0);
    assert!(line.contains("owned by uid 65534"), "{line}");
    assert_eq!(read(&dump), "nobody's file\n");

    // A FIFO without a reader in the same place: refused at once.
    std::fs::remove_file(&dump).unwrap();
    assert!(
        Command::new("mkfifo")
            .arg(&dump)
            .status()
            .unwrap()
            .success()
    );
    let line = sigint(&failsh, 1);
    assert!(line.contains("a FIFO with no reader"), "{line}");
    // A link root made itself is refused too: links are never followed.
    std::fs::remove_file(&dump).unwrap();
    std::os::unix::fs::symlink("/dev/null", &dump).unwrap();
    let line = sigint(&failsh, 2);
    assert!(line.contains("symbolic link"), "{line}");
    // And a plain file of root's is dumped to.
    std::fs::remove_file(&dump).unwrap();
    let line = sigint(&failsh, 3);
    assert!(line.contains("state dumped"), "{line}");
    assert!(read(&dump).contains("svc local="), "{}", read(&dump));
    let took = stop(&failsh);
    println!("stopped {:.3} s after SIGTERM", took.as_secs_f64());
}

/// A child process killed and reaped when dropped (also on panic).
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
