//! Local users against root's faild: the files it reads and writes.
//!
//! - A state directory other users may write is refused at start, so a link
//!   planted at the state file's temporary name (which faild used to follow,
//!   overwriting the link's target as root) never gets a chance.
//! - A symbolic link in place of the state directory is refused, never
//!   followed; a directory faild creates for `-u` is handed over on the
//!   opened directory.
//! - A community file others may write, or owned by another user, is refused
//!   (at start: exit 1, one line naming the file; on SIGHUP: the old rules
//!   stay); one others may read is warned about.
//!
//! - A FIFO at the community or key file's path is refused at once (at
//!   start: exit 1; on SIGHUP: the old rules stay), never waited on, so a
//!   reload never keeps faild from stopping on SIGTERM.
//!
//! - `--help` never prints a community taken from the environment.
//!
//! The plants are made by user `nobody`; where the tests do not run as root
//! they say so and skip (only root can act as another user).

use std::os::unix::fs::{PermissionsExt, chown};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use failover_tests::{Faild, answers, bin, read, stderr, unique_addr, wait_for};

const RULES: &str = "* public RO\n* genesis RW 127.0.0.0/8\n";

/// `nobody`'s uid and gid, when this test runs as root (else why not).
fn nobody() -> Result<(u32, u32), String> {
    let id = |flag: &str| -> Result<u32, String> {
        let o = Command::new("id")
            .args([flag, "nobody"])
            .output()
            .map_err(|e| format!("id: {e}"))?;
        String::from_utf8_lossy(&o.stdout)
            .trim()
            .parse()
            .map_err(|_| "no user nobody".to_string())
    };
    let me = id("-u").and_then(|_| {
        let o = Command::new("id")
            .arg("-u")
            .output()
            .map_err(|e| e.to_string())?;
        Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
    })?;
    if me != "0" {
        return Err(format!(
            "running as uid {me}, not root: cannot act as nobody"
        ));
    }
    Ok((id("-u")?, id("-g")?))
}

macro_rules! as_root_or_skip {
    () => {
        match nobody() {
            Ok(ids) => ids,
            Err(why) => {
                println!("SKIPPED: {why}");
                return;
            }
        }
    };
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Starts faild in the foreground with `args`; its stderr goes to `log`.
fn spawn_faild(addr: std::net::IpAddr, args: &[&str], log: &Path) -> Child {
    Command::new(bin("faild"))
        .args(["-F", "-a", &addr.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

/// Waits until faild answers (`Ok(child)`) or exits (`Err(exit code)`).
fn started(mut child: Child, addr: std::net::IpAddr) -> Result<Child, Option<i32>> {
    let sock = (addr, failover::DEFAULT_PORT).into();
    let mut exited = None;
    let waited = wait_for("faild to answer or exit", Duration::from_secs(20), || {
        if let Ok(Some(status)) = child.try_wait() {
            exited = Some(status.code());
            return true;
        }
        answers(sock)
    });
    if let Err(e) = waited {
        drop(Killed(child));
        panic!("{e}");
    }
    match exited {
        Some(code) => Err(code),
        None => Ok(child),
    }
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// faild exited 1 at start, its log holding one line beside the info
/// lines, and that line names every one of `words` (the file and the fix).
fn refused_in_one_line(code: Option<i32>, log: &Path, words: &[&str]) {
    let text = read(log);
    assert_eq!(code, Some(1), "{text}");
    let lines: Vec<&str> = text.lines().filter(|l| !l.contains(" INFO ")).collect();
    assert_eq!(lines.len(), 1, "one error line: {text}");
    assert!(
        words.iter().all(|w| lines[0].contains(w)),
        "names {words:?}: {text}"
    );
}

#[test]
fn a_state_directory_others_may_write_is_refused_so_no_planted_link_is_followed() {
    let (uid, gid) = as_root_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    set_mode(dir.path(), 0o755); // nobody may reach the shared directory
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    std::fs::write(dir.path().join("communities"), RULES).unwrap();
    set_mode(&dir.path().join("communities"), 0o600);
    for mode in [0o1777, 0o777, 0o775] {
        let shared = dir.path().join(format!("shared{mode:o}"));
        std::fs::create_dir(&shared).unwrap();
        set_mode(&shared, mode);
        if mode == 0o775 {
            chown(&shared, Some(0), Some(gid)).unwrap(); // nobody's group may write
        }
        let state = shared.join("faild.state");
        let log = dir.path().join(format!("faild{mode:o}.log"));
        let addr = unique_addr().into();
        let community = dir.path().join("communities");
        let args = [
            "-s",
            state.to_str().unwrap(),
            "-c",
            community.to_str().unwrap(),
        ];
        match started(spawn_faild(addr, &args, &log), addr) {
            Ok(child) => {
                // The old faild: plant a link at its temporary file's name,
                // as nobody, and make it write.
                let _faild = Killed(child);
                let tmp = shared.join(format!(".faild.state.tmp{}", _faild.0.id()));
                let planted = Command::new("ln")
                    .arg("-s")
                    .args([&victim, &tmp])
                    .uid(uid)
                    .gid(gid)
                    .status()
                    .unwrap();
                assert!(planted.success() || mode == 0o775, "ln -s as nobody");
                let o = failover_tests::failc(&[
                    "-h",
                    &addr.to_string(),
                    "-c",
                    "genesis",
                    "-s",
                    "UP",
                    "vip",
                ]);
                println!("failc: {}", stderr(&o));
                assert_eq!(
                    read(&victim),
                    "precious\n",
                    "mode {mode:o}: faild followed the planted link and overwrote its target"
                );
                panic!("mode {mode:o}: faild started in a directory others may write");
            }
            Err(code) => {
                refused_in_one_line(code, &log, &[&shared.display().to_string(), "chmod go-w"]);
                assert!(!state.exists(), "nothing written");
            }
        }
        assert_eq!(read(&victim), "precious\n");
    }
    // A directory only root may write is fine.
    let good = dir.path().join("good");
    std::fs::create_dir(&good).unwrap();
    set_mode(&good, 0o755);
    let f = Faild::start(&good, Some(RULES), &[]).unwrap();
    assert_eq!(
        f.failc(&["-c", "genesis", "-s", "UP", "vip"]).status.code(),
        Some(0)
    );
    let mode = std::fs::metadata(f.state_file())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o640, "state file mode {mode:o}");
}

#[test]
fn a_state_directory_that_is_a_link_is_refused_and_one_made_for_u_is_handed_over() {
    let dir = tempfile::tempdir().unwrap();
    set_mode(dir.path(), 0o755); // nobody may reach what faild makes here
    let rules = dir.path().join("communities");
    std::fs::write(&rules, RULES).unwrap();
    set_mode(&rules, 0o600);
    let real = dir.path().join("real");
    std::fs::create_dir(&real).unwrap();
    set_mode(&real, 0o755);
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let state = link.join("faild.state");
    let log = dir.path().join("link.log");
    let addr = unique_addr().into();
    let args = ["-s", state.to_str().unwrap(), "-c", rules.to_str().unwrap()];
    match started(spawn_faild(addr, &args, &log), addr) {
        Ok(child) => {
            drop(Killed(child));
            panic!("faild started in a linked state directory: {}", read(&log));
        }
        Err(code) => {
            refused_in_one_line(code, &log, &[&link.display().to_string(), "symbolic link"]);
        }
    }
    assert_eq!(
        std::fs::read_dir(&real).unwrap().count(),
        0,
        "nothing written"
    );

    // As root with -u: the directory faild makes is handed to that user,
    // who can then write the state file in it.
    let (uid, _) = as_root_or_skip!();
    let made = dir.path().join("made");
    let state = made.join("faild.state");
    let log = dir.path().join("made.log");
    let addr = unique_addr().into();
    let args = [
        "-s",
        state.to_str().unwrap(),
        "-c",
        rules.to_str().unwrap(),
        "-u",
        "nobody",
    ];
    let faild = Killed(
        started(spawn_faild(addr, &args, &log), addr)
            .unwrap_or_else(|code| panic!("exit {code:?}: {}", read(&log))),
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(&made).unwrap().uid(),
        uid,
        "owned by nobody"
    );
    let o = failover_tests::failc(&["-h", &addr.to_string(), "-c", "genesis", "-s", "UP", "vip"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(read(&state).contains("state = \"UP\""));
    drop(faild);
}

/// A community file in `dir` with `mode`, owned by `owner` (root if none).
fn community_file(dir: &Path, text: &str, mode: u32, owner: Option<u32>) -> PathBuf {
    let path = dir.join("communities");
    std::fs::write(&path, text).unwrap();
    set_mode(&path, mode);
    chown(&path, Some(owner.unwrap_or(0)), None).unwrap();
    path
}

#[test]
fn a_community_file_others_may_change_is_refused_at_start() {
    let (uid, _) = as_root_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("group-writable", 0o660, None),
        ("other-writable", 0o602, None),
        ("owned by nobody", 0o600, Some(uid)),
    ];
    for (what, mode, owner) in cases {
        let file = community_file(dir.path(), RULES, mode, owner);
        let log = dir.path().join("faild.log");
        let state = dir.path().join("faild.state");
        let addr = unique_addr().into();
        let args = ["-s", state.to_str().unwrap(), "-c", file.to_str().unwrap()];
        let result = started(spawn_faild(addr, &args, &log), addr);
        let text = read(&log);
        match result {
            Ok(child) => {
                drop(Killed(child));
                panic!("{what}: faild started with it; log:\n{text}");
            }
            Err(code) => {
                assert_eq!(code, Some(1), "{what}: {text}");
                assert_eq!(text.lines().count(), 1, "{what}: one line: {text}");
                assert!(text.contains(&file.display().to_string()), "{what}: {text}");
                println!("{what}: {}", text.trim());
            }
        }
    }
    // Readable by others: served, with a warning naming the file.
    let file = community_file(dir.path(), RULES, 0o644, None);
    let f = Faild::start(dir.path(), None, &["-c", file.to_str().unwrap()]).unwrap();
    let warning = f
        .log()
        .lines()
        .find(|l| l.contains("WARN") && l.contains(&file.display().to_string()))
        .map(str::to_string);
    assert!(
        warning.as_deref().is_some_and(|w| w.contains("chmod o-r")),
        "warned: {}",
        f.log()
    );
    assert_eq!(
        f.failc(&["-c", "genesis", "-s", "UP", "vip"]).status.code(),
        Some(0)
    );
}

#[test]
fn a_community_file_others_may_change_is_refused_on_sighup() {
    let (uid, _) = as_root_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let file = community_file(dir.path(), RULES, 0o600, None);
    let f = Faild::start(dir.path(), None, &["-c", file.to_str().unwrap()]).unwrap();
    // Each bad file would grant `intruder` write access; the old rules stay.
    let hostile = "* intruder RW\n";
    let cases = [
        ("group-writable", 0o620, None),
        ("other-writable", 0o606, None),
        ("owned by nobody", 0o600, Some(uid)),
    ];
    for (n, (what, mode, owner)) in cases.into_iter().enumerate() {
        community_file(dir.path(), hostile, mode, owner);
        f.signal("HUP");
        let refusals = |log: &str| {
            log.lines()
                .filter(|l| l.contains("SIGHUP") && l.contains(&file.display().to_string()))
                .count()
        };
        wait_for("the reload to be refused", Duration::from_secs(10), || {
            refusals(&f.log()) > n
        })
        .unwrap_or_else(|e| panic!("{what}: {e}\n{}", f.log()));
        assert_eq!(
            f.failc(&["-c", "intruder", "-s", "UP", "vip"])
                .status
                .code(),
            Some(4),
            "{what}: the hostile rules are not in force"
        );
        assert_eq!(
            f.failc(&["-c", "genesis", "-s", "UP", "vip"]).status.code(),
            Some(0),
            "{what}: the old rules are"
        );
    }
    // A readable-by-others file is loaded, with a warning.
    community_file(dir.path(), "* public RO\n* other RW\n", 0o644, None);
    f.signal("HUP");
    wait_for("the reload", Duration::from_secs(10), || {
        f.log().contains("SIGHUP: re-read")
    })
    .unwrap();
    assert!(f.log().contains("chmod o-r"), "{}", f.log());
    assert_eq!(
        f.failc(&["-c", "other", "-s", "FAIL", "vip"]).status.code(),
        Some(0)
    );
}

/// Replaces `path` with a FIFO that nobody writes to.
fn plant_fifo(path: &Path) {
    let _ = std::fs::remove_file(path);
    let made = Command::new("mkfifo")
        .args(["-m", "600"])
        .arg(path)
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo {}", path.display());
}

#[test]
fn a_fifo_at_the_community_or_key_path_is_refused_and_never_blocks_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    // At start: refused with one line, promptly (a blocked open would keep
    // faild from answering or exiting).
    let fifo = dir.path().join("keys.fifo");
    plant_fifo(&fifo);
    let rules = community_file(dir.path(), RULES, 0o600, None);
    let state = dir.path().join("start.state");
    let log = dir.path().join("start.log");
    let addr = unique_addr().into();
    let args = [
        "-s",
        state.to_str().unwrap(),
        "-c",
        rules.to_str().unwrap(),
        "-k",
        fifo.to_str().unwrap(),
    ];
    match started(spawn_faild(addr, &args, &log), addr) {
        Ok(child) => {
            drop(Killed(child));
            panic!("faild started with a FIFO as key file: {}", read(&log));
        }
        Err(code) => {
            let text = read(&log);
            assert_eq!(code, Some(1), "{text}");
            assert_eq!(text.lines().count(), 1, "one line: {text}");
            assert!(
                text.contains(&fifo.display().to_string()) && text.contains("not a regular file"),
                "{text}"
            );
        }
    }

    // On SIGHUP: refused, the old rules stay, and SIGTERM still stops faild.
    let mut f = Faild::start(dir.path(), None, &["-c", rules.to_str().unwrap()]).unwrap();
    plant_fifo(&rules);
    f.signal("HUP");
    wait_for("the reload to be refused", Duration::from_secs(10), || {
        f.log()
            .lines()
            .any(|l| l.contains("SIGHUP") && l.contains("not a regular file"))
    })
    .unwrap_or_else(|e| panic!("{e} (faild blocked opening the FIFO?)\n{}", f.log()));
    assert_eq!(
        f.failc(&["-c", "genesis", "-s", "UP", "vip"]).status.code(),
        Some(0),
        "the old rules stay in force"
    );
    let asked = std::time::Instant::now();
    let status = f.stop_with("TERM").unwrap();
    let took = asked.elapsed();
    println!("stopped {took:?} after SIGTERM");
    assert!(status.success(), "{status:?}\n{}", f.log());
    assert!(took < Duration::from_secs(10), "took {took:?} to stop");
}

#[test]
fn help_does_not_print_communities_from_the_environment() {
    let secret = "s3cret-fr0m-env";
    for (tool, var) in [
        ("failc", "FAILC_COMMUNITY"),
        ("faildebug", "FAILDEBUG_COMMUNITY"),
    ] {
        let o = Command::new(bin(tool))
            .arg("--help")
            .env(var, secret)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{tool}: {}", stderr(&o));
        let help = failover_tests::stdout(&o);
        assert!(help.contains(var), "{tool} --help names {var}: {help}");
        assert!(
            !help.contains(secret),
            "{tool} --help prints {var}'s value:\n{help}"
        );
    }
}
