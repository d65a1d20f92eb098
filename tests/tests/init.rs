//! What init/ ships, checked against the real binaries: systemd readiness
//! notification (READY=1 / STOPPING=1) from faild and failsh, the units
//! (`systemd-analyze verify` and the offline security score), the tmpfiles
//! and sysusers fragments (applied to a temporary root), the register
//! helper, and the SysV scripts (shellcheck, and a real start, status,
//! registration and stop of faild on 127.0.0.23 and of failsh on
//! 127.0.0.24). A check whose tool is missing is skipped with a message.

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use failover_tests::{
    Faild, answers, bin, failc, read, send_signal, stderr, stdout, unique_addr, wait_for,
};

const RULES: &str = "* public RO\n* genesis RW 127.0.0.0/8\n";
const BOUND: Duration = Duration::from_secs(30);

/// The address the SysV faild script test serves on (port 1291); no other
/// test uses it.
const SYSV_FAILD_ADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 23);
/// The address of the SysV failsh script test's monitor port (1848).
const SYSV_FAILSH_ADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 24);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn init_file(rel: &str) -> PathBuf {
    repo().join("init").join(rel)
}

/// Whether `tool` can be run; prints why a check is skipped if not.
fn have(tool: &str, check: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        eprintln!("SKIPPED {check}: {tool} is not installed");
    }
    found
}

/// A datagram socket standing in for systemd's notification socket.
struct NotifySocket {
    sock: UnixDatagram,
    path: PathBuf,
}

impl NotifySocket {
    fn bind(dir: &Path) -> NotifySocket {
        let path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        NotifySocket { sock, path }
    }

    /// The next notification, waiting at most `limit`.
    fn recv(&self, limit: Duration) -> anyhow::Result<String> {
        self.sock.set_read_timeout(Some(limit))?;
        let mut buf = [0u8; 4096];
        let n = self.sock.recv(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// The notification already queued, if any, without waiting.
    fn pending(&self) -> Option<String> {
        self.sock.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 4096];
        let got = match self.sock.recv(&mut buf) {
            Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e) if e.kind() == ErrorKind::WouldBlock => None,
            Err(e) => panic!("notification socket: {e}"),
        };
        self.sock.set_nonblocking(false).unwrap();
        got
    }
}

/// Waits (bounded) for a child to exit and returns its exit code.
fn exit_code(child: &mut Child) -> Option<i32> {
    let deadline = Instant::now() + BOUND;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("process {} did not exit within {BOUND:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether process `pid` runs. A zombie does not: a detached daemon's
/// parent is init, which may take its time to reap it.
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
        !s.lines()
            .any(|l| l.starts_with("State:") && l.contains("Z (zombie)"))
    })
}

/// Kills a child still running when a test fails half-way.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn faild_in_the_foreground_notifies_ready_once_serving_and_stopping_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let notify = NotifySocket::bind(dir);
    let addr = SocketAddr::new(unique_addr().into(), failover::DEFAULT_PORT);
    let log = dir.join("faild.log");
    let mut faild = Reap(
        Command::new(bin("faild"))
            .args(["-F", "-a", &addr.ip().to_string()])
            .arg("-s")
            .arg(dir.join("faild.state"))
            .env("NOTIFY_SOCKET", &notify.path)
            .stdin(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let msg = notify
        .recv(BOUND)
        .unwrap_or_else(|e| panic!("no READY=1: {e}\n{}", read(&log)));
    assert_eq!(msg, "READY=1\n");
    // Ready means serving: the first request after READY=1 is answered.
    assert!(answers(addr), "faild said READY=1 but does not answer");
    send_signal(faild.0.id(), "TERM");
    let msg = notify
        .recv(BOUND)
        .unwrap_or_else(|e| panic!("no STOPPING=1: {e}\n{}", read(&log)));
    assert_eq!(msg, "STOPPING=1\n");
    assert_eq!(exit_code(&mut faild.0), Some(0), "{}", read(&log));
    assert_eq!(notify.pending(), None, "nothing more after STOPPING=1");
}

#[test]
fn a_failed_start_tells_the_service_manager_why() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let notify = NotifySocket::bind(dir);
    let rules = dir.join("communities");
    std::fs::write(&rules, "* public RX\n").unwrap();
    let o = Command::new(bin("faild"))
        .args(["-F", "-a", &unique_addr().to_string(), "-c"])
        .arg(&rules)
        .arg("-s")
        .arg(dir.join("faild.state"))
        .env("NOTIFY_SOCKET", &notify.path)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    // Sent before faild exited: already queued.
    let msg = notify.pending().expect("a STATUS= notification");
    assert!(
        msg.starts_with("STATUS=") && msg.contains("communities:1") && msg.ends_with('\n'),
        "{msg:?}"
    );
    assert_eq!(msg.lines().count(), 1, "one line: {msg:?}");
    assert_eq!(notify.pending(), None, "no READY=1 or STOPPING=1");
}

#[test]
fn a_detaching_daemon_does_not_notify() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let notify = NotifySocket::bind(dir);
    let addr = unique_addr();
    let pid_file = dir.join("faild.pid");
    let o = Command::new(bin("faild"))
        .args(["-a", &addr.to_string()])
        .arg("-s")
        .arg(dir.join("faild.state"))
        .arg("-r")
        .arg(&pid_file)
        .env("NOTIFY_SOCKET", &notify.path)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let pid: u32 = read(&pid_file).trim().parse().unwrap();
    // The parent returned only after the daemon said it serves, which is
    // when READY=1 would have been sent.
    let pending = notify.pending();
    send_signal(pid, "TERM");
    wait_for("the detached faild to exit", BOUND, || !running(pid)).unwrap();
    assert_eq!(pending, None, "a Type=notify unit must run faild with -F");
}

#[test]
fn failsh_notifies_ready_and_stopping_and_hides_the_socket_from_its_hooks() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let faild = Faild::start(dir, Some(RULES), &[]).unwrap();
    let o = faild.failc(&["-c", "genesis", "-s", "RECOVER", "svc"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let seen = dir.join("hook-saw");
    let cfg = dir.join("host.lua");
    std::fs::write(
        &cfg,
        format!(
            r#"failhost("localhost", "address", "{addr}")
failhost("localhost", "community", "genesis")
failsvc{{ name = "svc", interval = 0.2,
  start = function() exec("echo ${{NOTIFY_SOCKET-unset}} > {seen}"); return "UP" end,
  stop = function() return "FAIL" end }}
"#,
            addr = faild.addr,
            seen = seen.display()
        ),
    )
    .unwrap();
    let notify = NotifySocket::bind(dir);
    let log = dir.join("failsh.log");
    let mut failsh = Reap(
        Command::new(bin("failsh"))
            .args(["-F", "-a", &unique_addr().to_string(), "-f"])
            .arg(&cfg)
            .env("NOTIFY_SOCKET", &notify.path)
            .stdin(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let msg = notify
        .recv(BOUND)
        .unwrap_or_else(|e| panic!("no READY=1: {e}\n{}", read(&log)));
    assert_eq!(msg, "READY=1\n");
    wait_for("the start hook", BOUND, || read(&seen).ends_with('\n'))
        .unwrap_or_else(|e| panic!("{e}\n{}", read(&log)));
    assert_eq!(
        read(&seen),
        "unset\n",
        "hooks must not inherit NOTIFY_SOCKET"
    );
    send_signal(failsh.0.id(), "TERM");
    let msg = notify
        .recv(BOUND)
        .unwrap_or_else(|e| panic!("no STOPPING=1: {e}\n{}", read(&log)));
    assert_eq!(msg, "STOPPING=1\n");
    assert_eq!(exit_code(&mut failsh.0), Some(0), "{}", read(&log));
}

/// The units, with the binaries and the register helper pointed at this
/// build (`systemd-analyze verify` checks that they exist), in `dir`.
fn units_for_this_build(dir: &Path) -> Vec<PathBuf> {
    let helper = init_file("systemd/failover-register");
    let faild = bin("faild");
    let failsh = bin("failsh");
    let mut out = Vec::new();
    for unit in ["faild.service", "failsh.service"] {
        let text = read(&init_file(&format!("systemd/{unit}")));
        assert!(
            text.contains("ExecStart=/usr/local/sbin/"),
            "{unit}: ExecStart moved; update this test"
        );
        let text = text
            .replace(
                "/usr/local/sbin/failover-register",
                &helper.display().to_string(),
            )
            .replace("/usr/local/sbin/faild", &faild.display().to_string())
            .replace("/usr/local/sbin/failsh", &failsh.display().to_string());
        assert!(!text.contains("/usr/local/sbin/"), "{unit}: {text}");
        let path = dir.join(unit);
        std::fs::write(&path, text).unwrap();
        out.push(path);
    }
    let dropins = dir.join("faild.service.d");
    std::fs::create_dir(&dropins).unwrap();
    std::fs::copy(
        init_file("systemd/faild.service.d/priority.conf"),
        dropins.join("priority.conf"),
    )
    .unwrap();
    out
}

fn analyze(args: &[&str], units: &[PathBuf]) -> Output {
    Command::new("systemd-analyze")
        .args(args)
        .args(units)
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .unwrap()
}

#[test]
fn systemd_units_verify_cleanly_and_faild_is_sandboxed() {
    if !have("systemd-analyze", "systemd unit checks") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let units = units_for_this_build(tmp.path());
    let o = analyze(&["verify", "--man=no", "--generators=no"], &units);
    // verify exits 0 on unknown keys and bad values, but says so on stderr.
    assert!(
        o.status.success() && stderr(&o).trim().is_empty(),
        "systemd-analyze verify: {}{}",
        stdout(&o),
        stderr(&o)
    );
    // The check above can fail: a unit with a mistake does not pass.
    let bad = tmp.path().join("bad.service");
    std::fs::write(
        &bad,
        read(&units[0]).replace("Type=notify", "Type=notify\nKilMode=process"),
    )
    .unwrap();
    let o = analyze(&["verify", "--man=no", "--generators=no"], &[bad]);
    assert!(stderr(&o).contains("KilMode"), "{}", stderr(&o));

    // Exposure 0.0 (best) to 10.0; faild must stay "OK" (below 2.0).
    let o = analyze(
        &["security", "--offline=yes", "--threshold=20", "--no-pager"],
        &units[..1],
    );
    if stderr(&o).contains("unrecognized option") {
        eprintln!("SKIPPED the security score: systemd-analyze too old for --offline");
        return;
    }
    assert!(
        o.status.success(),
        "faild.service exposure above 2.0:\n{}{}",
        stdout(&o),
        stderr(&o)
    );
    assert!(
        stdout(&o).contains("Overall exposure level for faild.service"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn sysusers_and_tmpfiles_make_the_user_and_directories() {
    if !have("systemd-sysusers", "sysusers") || !have("systemd-tmpfiles", "tmpfiles") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::create_dir_all(root.join("etc/failover")).unwrap();
    let communities = root.join("etc/failover/communities");
    std::fs::write(&communities, RULES).unwrap();
    std::fs::set_permissions(&communities, std::fs::Permissions::from_mode(0o644)).unwrap();
    let apply = |tool: &str, extra: &[&str], file: &str| {
        let o = Command::new(tool)
            .arg(format!("--root={}", root.display()))
            .args(extra)
            .arg("-")
            .stdin(std::fs::File::open(init_file(file)).unwrap())
            .output()
            .unwrap();
        // sysusers says what it creates; anything else is a complaint.
        let err = stderr(&o);
        let complaints = err.lines().filter(|l| !l.starts_with("Creating ")).count();
        assert!(
            o.status.success() && complaints == 0,
            "{tool} {file}: {err}"
        );
    };
    apply("systemd-sysusers", &[], "systemd/failover.sysusers.conf");
    let passwd = read(&root.join("etc/passwd"));
    let line = passwd
        .lines()
        .find(|l| l.starts_with("failover:"))
        .unwrap_or_else(|| panic!("no user failover:\n{passwd}"));
    let fields: Vec<&str> = line.split(':').collect();
    assert_eq!(fields[5], "/var/lib/failover", "{line}");
    let uid: u32 = fields[2].parse().unwrap();
    let gid: u32 = fields[3].parse().unwrap();

    apply(
        "systemd-tmpfiles",
        &["--create"],
        "systemd/failover.tmpfiles.conf",
    );
    let check = |rel: &str, mode: u32, uid_want: u32, gid_want: u32| {
        let m = std::fs::metadata(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert_eq!(m.mode() & 0o7777, mode, "{rel} mode");
        assert_eq!((m.uid(), m.gid()), (uid_want, gid_want), "{rel} owner");
    };
    check("etc/failover", 0o750, 0, gid);
    check("etc/failover/communities", 0o640, 0, gid);
    check("var/lib/failover", 0o750, uid, gid);
    check("run/failsh", 0o750, 0, 0);
}

#[test]
fn init_scripts_are_posix_sh_and_shellcheck_clean() {
    let scripts = [
        init_file("sysv/faild"),
        init_file("sysv/failsh"),
        init_file("systemd/failover-register"),
    ];
    for s in &scripts {
        let mode = std::fs::metadata(s).unwrap().permissions().mode();
        assert!(mode & 0o111 != 0, "{} is not executable", s.display());
        assert!(
            read(s).starts_with("#!/bin/sh\n"),
            "{} is not a /bin/sh script",
            s.display()
        );
        // Syntax under the plain POSIX shell (dash where it is installed).
        let shell = if Path::new("/bin/dash").exists() {
            "/bin/dash"
        } else {
            "/bin/sh"
        };
        let o = Command::new(shell).arg("-n").arg(s).output().unwrap();
        assert!(o.status.success(), "{}: {}", s.display(), stderr(&o));
    }
    if !have("shellcheck", "shellcheck of the init scripts") {
        return;
    }
    let o = Command::new("shellcheck")
        .args(["--shell=sh", "--severity=style"])
        .args(&scripts)
        .output()
        .unwrap();
    assert!(o.status.success(), "shellcheck:\n{}", stdout(&o));
}

/// Runs an init script with `FAILOVER_DEFAULTS` pointing at `defaults`.
fn run_script(script: &str, defaults: &Path, verb: &str) -> Output {
    Command::new(init_file(script))
        .arg(verb)
        .env("FAILOVER_DEFAULTS", defaults)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Kills the daemon a pid file names when a test ends (whether or not the
/// script's stop worked), so that a failure leaves nothing behind.
struct KillPidFile(PathBuf);

impl Drop for KillPidFile {
    fn drop(&mut self) {
        if let Ok(pid) = read(&self.0).trim().parse::<u32>() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

fn pid_alive(pid_file: &Path) -> Option<u32> {
    let pid: u32 = read(pid_file).trim().parse().ok()?;
    running(pid).then_some(pid)
}

#[test]
fn sysv_faild_script_starts_registers_and_stops_faild() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let addr = SYSV_FAILD_ADDR.to_string();
    let pid_file = dir.join("faild.pid");
    let _reap = KillPidFile(pid_file.clone());
    std::fs::write(dir.join("communities"), RULES).unwrap();
    let defaults = dir.join("failover");
    std::fs::write(
        &defaults,
        format!(
            "FAILD={faild}\nFAILC={failc}\nCOMMUNITIES={dir}/communities\n\
             FAILD_PIDFILE={pid}\nFAILD_OPTS=\"-a {addr} -s {dir}/faild.state\"\n\
             FAILD_HOST={addr}\nSERVICES=\"vip www:db2\"\nOTHER=macbeth\n",
            faild = bin("faild").display(),
            failc = bin("failc").display(),
            dir = dir.display(),
            pid = pid_file.display(),
        ),
    )
    .unwrap();
    let script = |verb: &str| run_script("sysv/faild", &defaults, verb);
    let list = || {
        let o = failc(&["-h", &addr, "-l"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        stdout(&o)
            .lines()
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
    };
    let set_recover = || {
        let o = failc(&["-h", &addr, "-c", "genesis", "-s", "RECOVER", "vip"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    };

    let o = script("status");
    assert_eq!(o.status.code(), Some(3), "{}", stdout(&o));

    // start returns once faild serves and each service is registered FAIL
    // with its backup host.
    let o = script("start");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(list(), ["vip FAIL macbeth", "www FAIL db2"]);
    assert!(
        stderr(&o).contains("registering www as FAIL, backed up by db2"),
        "{}",
        stderr(&o)
    );
    let pid = pid_alive(&pid_file).expect("faild runs, by its pid file");
    let o = script("status");
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o), format!("faild is running (pid {pid})\n"));

    // start on a running faild registers nothing (it would stop services
    // failsh runs here); restart does.
    set_recover();
    let o = script("start");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("already running"), "{}", stderr(&o));
    assert_eq!(list(), ["vip RECOVER macbeth", "www FAIL db2"]);
    let o = script("reload");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        pid_alive(&pid_file),
        Some(pid),
        "SIGHUP does not stop faild"
    );
    let o = script("restart");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let new_pid = pid_alive(&pid_file).expect("faild runs again");
    assert_ne!(new_pid, pid);
    assert_eq!(list(), ["vip FAIL macbeth", "www FAIL db2"]);

    let o = script("stop");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!running(new_pid), "stop returned while faild still runs");
    assert!(!pid_file.exists(), "pid file removed");
    assert!(!answers(SocketAddr::new(
        IpAddr::V4(SYSV_FAILD_ADDR),
        failover::DEFAULT_PORT
    )));
    let o = script("status");
    assert_eq!(o.status.code(), Some(3), "{}", stdout(&o));
    let o = script("stop");
    assert_eq!(
        o.status.code(),
        Some(0),
        "stop when stopped: {}",
        stderr(&o)
    );
    let o = script("bogus");
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn sysv_faild_script_reports_a_stale_pid_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pid_file = dir.join("faild.pid");
    // No process has this pid: pid_max is at most 2^22.
    std::fs::write(&pid_file, "99999999\n").unwrap();
    let defaults = dir.join("failover");
    std::fs::write(&defaults, format!("FAILD_PIDFILE={}\n", pid_file.display())).unwrap();
    let o = run_script("sysv/faild", &defaults, "status");
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let o = run_script("sysv/faild", &defaults, "reload");
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
}

#[test]
fn sysv_failsh_script_starts_checks_reloads_and_stops_failsh() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pid_file = dir.join("failsh.pid");
    let _reap = KillPidFile(pid_file.clone());
    let cfg = dir.join("host.lua");
    // The local faild is not running: failsh starts anyway and waits.
    std::fs::write(
        &cfg,
        "failhost(\"localhost\", \"address\", \"127.0.0.24\")\n\
         failsvc{ name = \"svc\", start = function() return \"UP\" end,\n\
         stop = function() return \"FAIL\" end }\n",
    )
    .unwrap();
    let defaults = dir.join("failover");
    std::fs::write(
        &defaults,
        format!(
            "FAILSH={failsh}\nFAILSH_CONFIG={cfg}\nFAILSH_PIDFILE={pid}\n\
             FAILSH_OPTS=\"-a {addr} -l {dir}/dump\"\n",
            failsh = bin("failsh").display(),
            cfg = cfg.display(),
            pid = pid_file.display(),
            addr = SYSV_FAILSH_ADDR,
            dir = dir.display(),
        ),
    )
    .unwrap();
    let script = |verb: &str| run_script("sysv/failsh", &defaults, verb);

    let o = script("check");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = script("start");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let pid = pid_alive(&pid_file).expect("failsh runs, by its pid file");
    let monitor = SocketAddr::new(IpAddr::V4(SYSV_FAILSH_ADDR), 1848);
    assert!(
        std::net::TcpStream::connect_timeout(&monitor, Duration::from_secs(2)).is_ok(),
        "start returned before the monitor port was open"
    );
    let o = script("status");
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o), format!("failsh is running (pid {pid})\n"));

    // reload checks the config first and refuses a broken one.
    let good = read(&cfg);
    std::fs::write(&cfg, "failsvc(\"svc\", \"create\")\nnot lua\n").unwrap();
    let o = script("reload");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("{}:2:", cfg.display())),
        "{}",
        stderr(&o)
    );
    std::fs::write(&cfg, good).unwrap();
    let o = script("reload");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(pid_alive(&pid_file), Some(pid));

    let o = script("stop");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!running(pid), "stop returned while failsh still runs");
    let o = script("status");
    assert_eq!(o.status.code(), Some(3), "{}", stdout(&o));
}

#[test]
fn failover_register_registers_once_per_start_unless_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let faild = Faild::start(dir, Some(RULES), &[]).unwrap();
    let runtime = dir.join("run");
    std::fs::create_dir(&runtime).unwrap();
    let defaults = dir.join("failover");
    std::fs::write(&defaults, "SERVICES=\"vip www:db2\"\nOTHER=macbeth\n").unwrap();
    let register = |args: &[&str], host: &str| {
        Command::new(init_file("systemd/failover-register"))
            .args(args)
            .env("FAILOVER_DEFAULTS", &defaults)
            .env("RUNTIME_DIRECTORY", &runtime)
            .env("FAILC", bin("failc"))
            .env("FAILD_HOST", host)
            .env("PORT", faild.port.to_string())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let states = || {
        stdout(&faild.failc(&["-l"]))
            .lines()
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
    };
    let host = faild.addr.to_string();

    // faild unreachable: fails, and leaves no mark, so the next start tries again.
    let o = register(&["--once"], &unique_addr().to_string());
    assert_ne!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!runtime.join("registered").exists());

    let o = register(&["--once"], &host);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(states(), ["vip FAIL macbeth", "www FAIL db2"]);
    assert!(runtime.join("registered").exists());

    // A restart (the mark survives it) keeps the states.
    let o = faild.failc(&["-c", "genesis", "-s", "RECOVER", "vip"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = register(&["--once"], &host);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(states(), ["vip RECOVER macbeth", "www FAIL db2"]);

    // By hand, it registers again.
    let o = register(&[], &host);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(states(), ["vip FAIL macbeth", "www FAIL db2"]);
}

/// Both registration paths (failover-register, and the SysV script's
/// `register`) hand failc the write community in its environment, never on
/// its command line, where any local user reads it with `ps`. A stand-in
/// failc records its arguments and environment, then runs the real one.
#[test]
fn registration_keeps_the_community_off_failcs_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let secret = "s3cret-Wr1te";
    let faild = Faild::start(
        dir,
        Some(&format!("* public RO\n* {secret} RW 127.0.0.0/8\n")),
        &[],
    )
    .unwrap();
    let spy = dir.join("failc-spy");
    std::fs::write(
        &spy,
        format!(
            "#!/bin/sh\nprintf 'argv: %s\\n' \"$*\" >>{log}\n\
             printf 'env: %s\\n' \"${{FAILC_COMMUNITY-unset}}\" >>{log}\nexec {failc} \"$@\"\n",
            log = dir.join("spy.log").display(),
            failc = bin("failc").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&spy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let defaults = dir.join("failover");
    std::fs::write(
        &defaults,
        format!(
            "SERVICES=\"vip\"\nOTHER=macbeth\nCOMMUNITY={secret}\nFAILC={spy}\n\
             FAILD_HOST={addr}\nPORT={port}\n",
            spy = spy.display(),
            addr = faild.addr,
            port = faild.port
        ),
    )
    .unwrap();
    let runtime = dir.join("run");
    std::fs::create_dir(&runtime).unwrap();
    for script in ["systemd/failover-register", "sysv/faild"] {
        let _ = std::fs::remove_file(dir.join("spy.log"));
        let verb = if script.starts_with("sysv") {
            "register"
        } else {
            "--once"
        };
        let o = Command::new(init_file(script))
            .arg(verb)
            .env("FAILOVER_DEFAULTS", &defaults)
            .env("RUNTIME_DIRECTORY", &runtime)
            .env_remove("FAILC_COMMUNITY")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{script}: {}", stderr(&o));
        let log = read(&dir.join("spy.log"));
        assert!(log.contains("argv: -h"), "{script} ran failc: {log}");
        for line in log.lines().filter(|l| l.starts_with("argv:")) {
            assert!(
                !line.contains(secret),
                "{script}: community in argv: {line}"
            );
        }
        assert!(log.contains(&format!("env: {secret}")), "{script}: {log}");
        let state = stdout(&faild.failc(&["vip"]));
        let words: Vec<&str> = state.split_whitespace().take(3).collect();
        assert_eq!(words, ["vip", "FAIL", "macbeth"], "{script} registered");
        let o = faild.failc(&["-c", secret, "-s", "RECOVER", "vip"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
}
