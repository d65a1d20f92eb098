//! faild and failc as separate processes on loopback: reads, writes, access
//! rules, durability, signals and the worked example's command lines.

use std::time::Duration;

use failover_tests::{Faild, failc, read, stderr, stdout, wait_for};

const RULES: &str = "# test rules\n* public RO\n* genesis RW 127.0.0.0/8\n";

/// `SERVICE STATE BACKUP` of each line failc printed.
fn rows(out: &std::process::Output) -> Vec<(String, String, String)> {
    stdout(out)
        .lines()
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w[0].to_string(), w[1].to_string(), w[2].to_string())
        })
        .collect()
}

fn row(service: &str, state: &str, backup: &str) -> (String, String, String) {
    (service.into(), state.into(), backup.into())
}

#[test]
fn set_get_list_and_delete_over_tcp_and_udp() {
    let dir = tempfile::tempdir().unwrap();
    let f = Faild::start(dir.path(), Some(RULES), &[]).unwrap();

    let o = f.failc(&["-c", "genesis", "-s", "FAIL", "-b", "macbeth", "vip"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("created"),
        "a new service warns: {}",
        stderr(&o)
    );
    assert_eq!(rows(&o), [row("vip", "FAIL", "macbeth")]);

    // UDP, attached -s form, lower case; backup kept.
    let o = f.failc(&["-c", "genesis", "-U", "-srecover", "vip"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).is_empty(), "no warning for an existing service");
    let o = f.failc(&["-c", "genesis", "-s", "UP", "www"]);
    assert_eq!(o.status.code(), Some(0));

    for transport in ["-T", "-U"] {
        let o = f.failc(&[transport, "vip", "www"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert_eq!(
            rows(&o),
            [row("vip", "RECOVER", "macbeth"), row("www", "UP", "-")]
        );
    }
    let o = f.failc(&["-l"]);
    assert_eq!(
        rows(&o),
        [row("vip", "RECOVER", "macbeth"), row("www", "UP", "-")]
    );
    // A LIST can be large: over UDP it is refused, with advice.
    let o = f.failc(&["-U", "-l"]);
    assert_eq!(o.status.code(), Some(6));
    assert!(stderr(&o).contains("TCP"), "{}", stderr(&o));

    let o = f.failc(&["--json", "vip"]);
    let json = stdout(&o);
    assert!(
        json.contains("\"state\"") && json.contains("RECOVER"),
        "{json}"
    );

    let o = f.failc(&["-c", "genesis", "-x", "www"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = f.failc(&["www"]);
    assert_eq!(
        o.status.code(),
        Some(5),
        "deleted service is gone: {}",
        stderr(&o)
    );
    assert_eq!(rows(&f.failc(&["-l"])).len(), 1);
}

#[test]
fn many_services_over_udp_fit_in_datagrams() {
    let dir = tempfile::tempdir().unwrap();
    let f = Faild::start(dir.path(), Some(RULES), &[]).unwrap();
    let names: Vec<String> = (0..60).map(|i| format!("service-number-{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let o = f.failc(
        &[
            &["-c", "genesis", "-s", "RECOVER", "-b", "macbeth"],
            &names[..],
        ]
        .concat(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // 60 records do not fit in one 1,400-byte datagram: failc asks again in parts.
    let o = f.failc(&[&["-U"], &names[..]].concat());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let got: Vec<String> = rows(&o).into_iter().map(|r| r.0).collect();
    assert_eq!(got, names, "every service, in the order asked");
}

#[test]
fn access_rules_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let f = Faild::start(dir.path(), Some(RULES), &[]).unwrap();
    assert_eq!(
        f.failc(&["-c", "genesis", "-s", "UP", "vip"]).status.code(),
        Some(0)
    );
    let before = read(&f.state_file());

    // Read-only community: refused, one line on stderr, nothing changed.
    for t in ["-T", "-U"] {
        let o = f.failc(&["-c", "public", t, "-s", "FAIL", "vip"]);
        assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
        assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    }
    // Unknown community: even reading is refused.
    let o = f.failc(&["-c", "guess", "vip"]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert_eq!(f.failc(&["-c", "guess", "-l"]).status.code(), Some(4));
    // No such service.
    assert_eq!(f.failc(&["nosuch"]).status.code(), Some(5));
    // Bad arguments.
    assert_eq!(f.failc(&["-s", "SIDEWAYS", "vip"]).status.code(), Some(2));
    assert_eq!(f.failc(&["-b", "x", "vip"]).status.code(), Some(2));

    assert_eq!(rows(&f.failc(&["vip"])), [row("vip", "UP", "-")]);
    assert_eq!(
        read(&f.state_file()),
        before,
        "refused requests did not touch the state file"
    );
    assert!(f.log().contains("denied"), "refusals are logged");

    // Nothing listens at this address: unreachable.
    let o = failc(&[
        "-h",
        &failover_tests::unique_addr().to_string(),
        "-t",
        "1",
        "vip",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let o = failc(&[
        "-U",
        "-h",
        &failover_tests::unique_addr().to_string(),
        "-t",
        "0.5",
        "vip",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
}

#[test]
fn acknowledged_state_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = Faild::start(dir.path(), Some(RULES), &[]).unwrap();
    for (svc, st) in [
        ("vip", "UP"),
        ("db", "RECOVER"),
        ("www", "FAIL"),
        ("vip", "FAIL"),
        ("vip", "UP"),
    ] {
        let o = f.failc(&["-c", "genesis", "-U", "-s", st, "-b", "macbeth", svc]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    let before = stdout(&f.failc(&["--json", "-l"]));
    f.kill9();
    f.restart().unwrap();
    let after = stdout(&f.failc(&["--json", "-l"]));
    assert_eq!(
        after, before,
        "same boot: every state, time and counter kept"
    );
    assert!(
        after.contains("\"changes\": 3") || after.contains("\"changes\":3"),
        "{after}"
    );
}

#[test]
fn pid_file_written_and_removed_on_sigterm_and_sigint() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = Faild::start(dir.path(), Some(RULES), &[]).unwrap();
    assert_eq!(read(&f.pid_file()).trim(), f.pid().to_string());
    // A second faild with the same pid file refuses to start.
    let other = failed_start(&[
        "-r".as_ref(),
        f.pid_file().as_os_str(),
        "-s".as_ref(),
        dir.path().join("other.state").as_os_str(),
    ]);
    assert_eq!(other.status.code(), Some(1));
    assert!(
        stderr(&other).contains("already running"),
        "{}",
        stderr(&other)
    );

    for sig in ["TERM", "INT"] {
        let status = f.stop_with(sig).unwrap();
        assert_eq!(status.code(), Some(0), "SIG{sig}: {}", f.log());
        assert!(!f.pid_file().exists(), "pid file removed after SIG{sig}");
        f.restart().unwrap();
    }
}

#[test]
fn sighup_rereads_community_file_and_keeps_old_rules_when_broken() {
    let dir = tempfile::tempdir().unwrap();
    let f = Faild::start(dir.path(), Some("* public RO\n"), &[]).unwrap();
    assert_eq!(
        f.failc(&["-c", "ops", "-s", "UP", "vip"]).status.code(),
        Some(4)
    );

    std::fs::write(f.community_file(), "* public RO\n* ops RW\n").unwrap();
    f.signal("HUP");
    wait_for("the new rules", Duration::from_secs(10), || {
        f.failc(&["-c", "ops", "-s", "UP", "vip"]).status.code() == Some(0)
    })
    .unwrap();

    std::fs::write(f.community_file(), "* public RO\n* ops RW\n* broken\n").unwrap();
    f.signal("HUP");
    wait_for(
        "the reload error in the log",
        Duration::from_secs(10),
        || f.log().contains("communities:3"),
    )
    .unwrap();
    assert_eq!(
        f.failc(&["-c", "ops", "-s", "FAIL", "vip"]).status.code(),
        Some(0),
        "the old rules stay in force"
    );
}

#[test]
fn worked_example_command_lines() {
    // The example's boot script, with ${port} chosen free and the state file
    // kept in a temporary directory through FAILD_STATE_FILE.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("communityfile"), "* public RW\n").unwrap();
    let port = free_port();
    let p = port.to_string();
    let o = std::process::Command::new(failover_tests::bin("faild"))
        .current_dir(dir.path())
        .env("FAILD_STATE_FILE", dir.path().join("faild.state"))
        .args(["-c", "communityfile", "-U", "-p", &p, "-r", "pidfile"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "faild detached: {}", stderr(&o));
    let pid = read(&dir.path().join("pidfile")).trim().to_string();
    assert!(
        !pid.is_empty(),
        "pid file written before the start command returned"
    );
    let _guard = KillOnDrop(pid.clone());

    // No pause needed: faild serves once its start command has returned.
    let o = failc(&[
        "-c", "public", "-T", "-p", &p, "-s", "FAIL", "-b", "macbeth", "vip",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = failc(&["-c", "public", "-T", "-p", &p, "-sRECOVER", "vip"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = failc(&["-p", &p, "vip"]);
    assert_eq!(rows(&o), [row("vip", "RECOVER", "macbeth")]);

    // The stop target: kill `cat pidfile`.
    assert!(
        std::process::Command::new("kill")
            .arg(&pid)
            .status()
            .unwrap()
            .success()
    );
    wait_for(
        "faild to remove its pid file",
        Duration::from_secs(20),
        || !dir.path().join("pidfile").exists(),
    )
    .unwrap();
}

#[test]
fn boot_id_rule() {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    for (writer_boot, want_up) in [
        ("00000000-0000-0000-0000-000000000000", "FAIL"),
        (boot.trim(), "UP"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("faild.state"),
            format!(
                "format = 1\nboot_id = \"{writer_boot}\"\n\
                 [services.up]\nstate = \"UP\"\nbackup = \"b\"\nsince = \"2026-01-01T00:00:00.000Z\"\nchanges = 4\n\
                 [services.rec]\nstate = \"RECOVER\"\nsince = \"2026-01-01T00:00:00.000Z\"\nchanges = 2\n"
            ),
        )
        .unwrap();
        let f = Faild::start(dir.path(), None, &[]).unwrap();
        assert_eq!(
            rows(&f.failc(&["up", "rec"])),
            [row("up", want_up, "b"), row("rec", "RECOVER", "-")]
        );
        if want_up == "FAIL" {
            assert!(
                f.log().contains("rebooted"),
                "the log says why: {}",
                f.log()
            );
        }
        // The file now records this boot.
        assert!(read(&f.state_file()).contains(boot.trim()));
    }
}

#[test]
fn bad_files_stop_faild_at_start_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("faild.state");
    std::fs::write(&state, "format = 1\n[services.vip\n").unwrap();
    let o = failed_start(&["-s".as_ref(), state.as_os_str()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(&state.display().to_string()),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        read(&state),
        "format = 1\n[services.vip\n",
        "never silently emptied"
    );

    let comm = dir.path().join("comm");
    std::fs::write(&comm, "* public RO\nvip ops XX\n").unwrap();
    let ok_state = dir.path().join("ok.state");
    let o = failed_start(&[
        "-c".as_ref(),
        comm.as_os_str(),
        "-s".as_ref(),
        ok_state.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(&format!("{}:2:", comm.display())),
        "{}",
        stderr(&o)
    );
}

/// Kills a detached faild by pid if the test ends early (and only a faild:
/// the pid may have been reused once it exited).
struct KillOnDrop(String);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let cmdline = read(std::path::Path::new(&format!("/proc/{}/cmdline", self.0)));
        if cmdline.contains("faild") {
            let _ = std::process::Command::new("kill")
                .args(["-9", &self.0])
                .output();
        }
    }
}

/// Runs a foreground faild on 127.0.0.1 (a free port) with `args`, for a
/// start that must fail; if faild starts after all, it is killed (after 20 s)
/// and the test fails on its exit status.
fn failed_start(args: &[&std::ffi::OsStr]) -> std::process::Output {
    let port = free_port().to_string();
    let mut child = std::process::Command::new(failover_tests::bin("faild"))
        .args(["-F", "-a", "127.0.0.1", "-p", &port])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let _ = wait_for("faild to give up", Duration::from_secs(20), || {
        child.try_wait().ok().flatten().is_some()
    });
    drop(KillOnDrop(pid));
    child.wait_with_output().unwrap()
}

/// A port free for TCP and UDP on every address (the worked example binds
/// the wildcard address).
fn free_port() -> u16 {
    loop {
        let t = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        let port = t.local_addr().unwrap().port();
        if std::net::UdpSocket::bind(("0.0.0.0", port)).is_ok() {
            return port;
        }
    }
}

#[test]
fn runs_as_another_user_with_locked_memory_and_raised_priority() {
    if !is_root() {
        println!("skipped: needs root to switch users, lock memory and raise priority");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The state file's directory must be writable by the user faild becomes.
    let status = std::process::Command::new("chown")
        .args(["nobody", &dir.path().display().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let f = Faild::start(dir.path(), Some(RULES), &["-u", "nobody", "-m", "-n", "5"]).unwrap();
    let status = read(&std::path::PathBuf::from(format!(
        "/proc/{}/status",
        f.pid()
    )));
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(field("Uid:")[0], "65534", "running as nobody");
    assert_ne!(field("VmLck:")[0], "0", "memory locked");
    // faild starts at this runner's nice value (which `nice cargo ...`
    // raises) and lowers it by 5, down to the floor of -20.
    let ours = nice_value("self");
    let expected = (ours - 5).max(-20);
    assert_eq!(
        nice_value(&f.pid().to_string()),
        expected,
        "nice value lowered by 5 from the runner's {ours}"
    );
    // And it still writes its state file as that user.
    let o = f.failc(&["-c", "genesis", "-s", "UP", "vip"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(read(&f.state_file()).contains("state = \"UP\""));
}

/// The nice value of process `pid` (`self` for this one), from
/// `/proc/PID/stat` (field 19).
fn nice_value(pid: &str) -> i32 {
    let stat = read(&std::path::PathBuf::from(format!("/proc/{pid}/stat")));
    stat[stat.rfind(')').unwrap() + 2..]
        .split(' ')
        .nth(16)
        .unwrap()
        .parse()
        .unwrap()
}

fn is_root() -> bool {
    read(std::path::Path::new("/proc/self/status"))
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1).map(|euid| euid == "0"))
        .unwrap_or(false)
}

#[test]
fn an_admin_stop_of_a_service_failsh_runs_is_a_request() {
    let dir = tempfile::tempdir().unwrap();
    let f = Faild::start(dir.path(), Some(RULES), &[]).unwrap();
    let raw =
        |line: &str| failover_tests::tcp_request(f.socket(), line, Duration::from_secs(5)).unwrap();
    // failsh claims the service (as it does before running the start hook).
    assert!(raw("FAIL/1 1 genesis SET vip UP macbeth by=failsh\n").contains("by=failsh"));

    let o = f.failc(&["-c", "genesis", "-s", "FAIL", "vip"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("stop requested"), "{}", stderr(&o));
    assert_eq!(
        rows(&f.failc(&["vip"])),
        [row("vip", "UP", "macbeth")],
        "peers still see it UP"
    );

    // Nobody carries the stop out: --wait gives up with status 7.
    let o = f.failc(&["-c", "genesis", "-s", "FAIL", "--wait", "0.3", "vip"]);
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));

    // An admin's UP takes the request back.
    assert!(!raw("FAIL/1 5 genesis SET vip UP\n").contains("req="));

    // failsh stops the service and publishes the state asked for; a waiting
    // failc then returns 0 with the final record.
    let waiter = std::thread::scope(|s| {
        let waiting = s.spawn(|| f.failc(&["-c", "genesis", "-s", "FAIL", "--wait", "20", "vip"]));
        wait_for("the request to be pending", Duration::from_secs(10), || {
            raw("FAIL/1 2 public GET vip\n").contains("req=FAIL")
        })
        .unwrap();
        raw("FAIL/1 3 genesis SET vip FAIL by=failsh\n");
        waiting.join().unwrap()
    });
    assert_eq!(waiter.status.code(), Some(0), "{}", stderr(&waiter));
    assert_eq!(rows(&waiter), [row("vip", "FAIL", "macbeth")]);

    // --force writes at once, failsh or not.
    raw("FAIL/1 4 genesis SET vip UP by=failsh\n");
    let o = f.failc(&["-c", "genesis", "-s", "RECOVER", "--force", "vip"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(rows(&o), [row("vip", "RECOVER", "macbeth")]);
}
