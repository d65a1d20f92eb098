//! faildebug against a real faild and failsh (`-D PORT -c SECRET`): levels
//! are shown and changed at run time, and a raised facility's debug lines
//! then reach failsh's log and the streamed `log` where they did not
//! before; a wrong community is refused and changes nothing; an unknown
//! facility or level, and a port nobody listens on, give one clear line and
//! their own exit status.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::net::IpAddr;
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use failover_tests::{
    Faild, Failsh, faildebug, lone_failsh, send_signal, stderr, stdout, wait_for,
};

const SECRET: &str = "d3bug-s3cret";
const DEBUG_PORT: u16 = 1849;
const BOUND: Duration = Duration::from_secs(30);

/// A faild with service `svc`, and a failsh on the same loopback address
/// running it with its debug port on, guarded by [`SECRET`]. The harness
/// starts failsh with `-d engine`: engine is at debug, the rest at info.
fn cluster(dir: &Path) -> (Faild, Failsh) {
    lone_failsh(dir, None, |_| {
        vec![
            "-D".into(),
            DEBUG_PORT.to_string(),
            "-c".into(),
            SECRET.into(),
        ]
    })
    .unwrap()
}

/// Runs `faildebug -c COMMUNITY -p PORT ADDR ARGS...`.
fn run(community: &str, port: u16, addr: IpAddr, args: &[&str]) -> Output {
    faildebug()
        .args(["-c", community, "-p", &port.to_string(), &addr.to_string()])
        .args(args)
        .output()
        .expect("running faildebug")
}

/// `faildebug levels` with the right community, as a map.
fn levels(failsh: &Failsh) -> BTreeMap<String, String> {
    let o = run(SECRET, DEBUG_PORT, failsh.addr, &["levels"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    stdout(&o)
        .lines()
        .map(|l| {
            let (f, level) = l.split_once(' ').unwrap_or_else(|| panic!("{l:?}"));
            (f.to_string(), level.trim().to_string())
        })
        .collect()
}

/// The lines of failsh's log that the monitor facility wrote at debug.
fn monitor_debug_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.contains("DEBUG monitor:"))
        .collect()
}

/// `faildebug log` running: its stdout and stderr collected by threads.
struct Follower {
    child: Child,
    out: Arc<Mutex<Vec<String>>>,
    err: Arc<Mutex<Vec<String>>>,
}

impl Follower {
    fn start(addr: IpAddr) -> Follower {
        let mut child = faildebug()
            .args(["-c", SECRET, &addr.to_string(), "log"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning faildebug log");
        let collect = |r: Box<dyn Read + Send>| {
            let lines = Arc::new(Mutex::new(Vec::new()));
            let sink = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(r).lines().map_while(Result::ok) {
                    sink.lock().unwrap().push(line);
                }
            });
            lines
        };
        let out = collect(Box::new(child.stdout.take().unwrap()));
        let err = collect(Box::new(child.stderr.take().unwrap()));
        Follower { child, out, err }
    }

    fn out(&self) -> Vec<String> {
        self.out.lock().unwrap().clone()
    }

    fn err(&self) -> String {
        self.err.lock().unwrap().join("\n")
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_facility_raised_at_run_time_logs_at_debug() {
    let tmp = tempfile::tempdir().unwrap();
    let (_faild, failsh) = cluster(tmp.path());

    let before = levels(&failsh);
    let expected: BTreeMap<String, String> = [
        ("engine", "debug"),
        ("hook", "info"),
        ("config", "info"),
        ("monitor", "info"),
    ]
    .into_iter()
    .map(|(f, l)| (f.to_string(), l.to_string()))
    .collect();
    assert_eq!(before, expected);
    // That connection was answered, so its debug line would be written by
    // now if monitor were at debug.
    assert_eq!(
        monitor_debug_lines(&failsh.log()),
        Vec::<&str>::new(),
        "{}",
        failsh.log()
    );

    let follower = Follower::start(failsh.addr);
    wait_for("faildebug log to follow", BOUND, || {
        follower.err().contains("following the log")
    })
    .unwrap_or_else(|e| panic!("{e}: {}", follower.err()));

    let o = run(SECRET, DEBUG_PORT, failsh.addr, &["set", "monitor=debug"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "monitor debug (was info)\n");
    assert_eq!(stderr(&o), "", "a secret community: no warning");
    assert_eq!(levels(&failsh)["monitor"], "debug");

    // The levels connection just made logged at debug: in failsh's log...
    wait_for("a monitor debug line in failsh's log", BOUND, || {
        monitor_debug_lines(&failsh.log())
            .iter()
            .any(|l| l.contains("debug port:") && l.ends_with(" connected"))
    })
    .unwrap_or_else(|e| panic!("{e}:\n{}", failsh.log()));
    // ...and in the streamed log, after the change and not before it.
    wait_for("a monitor debug line in the streamed log", BOUND, || {
        follower
            .out()
            .iter()
            .any(|l| l.contains("DEBUG monitor:") && l.ends_with(" connected"))
    })
    .unwrap_or_else(|e| panic!("{e}:\n{}", follower.out().join("\n")));
    let streamed = follower.out();
    let change = streamed
        .iter()
        .position(|l| l.contains("INFO monitor:") && l.contains("set monitor to debug (was info)"))
        .unwrap_or_else(|| panic!("the change is not in the stream:\n{}", streamed.join("\n")));
    let first_debug = streamed
        .iter()
        .position(|l| l.contains("DEBUG monitor:"))
        .unwrap();
    assert!(change < first_debug, "{}", streamed.join("\n"));

    // Lowered again: a new connection logs nothing at debug.
    let o = run(SECRET, DEBUG_PORT, failsh.addr, &["set", "monitor=info"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let count = monitor_debug_lines(&failsh.log()).len();
    assert_eq!(levels(&failsh)["monitor"], "info");
    assert_eq!(
        monitor_debug_lines(&failsh.log()).len(),
        count,
        "{}",
        failsh.log()
    );

    // Ctrl-C ends the stream.
    let mut follower = follower;
    send_signal(follower.child.id(), "INT");
    wait_for("faildebug log to exit on SIGINT", BOUND, || {
        follower.child.try_wait().unwrap().is_some()
    })
    .unwrap();
}

#[test]
fn a_wrong_community_is_refused_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (_faild, failsh) = cluster(tmp.path());
    let before = levels(&failsh);

    let o = run("wrong", DEBUG_PORT, failsh.addr, &["set", "monitor=trace"]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    assert!(
        stderr(&o).contains("failsh did not accept the community"),
        "{}",
        stderr(&o)
    );
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));

    // Without -c: the default community, refused too, with a warning.
    let o = faildebug()
        .args(["-p", &DEBUG_PORT.to_string(), &failsh.addr.to_string()])
        .args(["set", "hook=trace"])
        .env_remove("FAILDEBUG_COMMUNITY")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("warning: using the default community 'public'"),
        "{}",
        stderr(&o)
    );

    assert_eq!(levels(&failsh), before, "nothing changed");
    wait_for("the refusal in failsh's log", BOUND, || {
        failsh.log().contains("wrong community")
    })
    .unwrap_or_else(|e| panic!("{e}:\n{}", failsh.log()));
}

#[test]
fn unknown_names_and_an_unreachable_port_get_one_clear_line() {
    let tmp = tempfile::tempdir().unwrap();
    let (_faild, failsh) = cluster(tmp.path());
    let before = levels(&failsh);

    let o = run(SECRET, DEBUG_PORT, failsh.addr, &["set", "bogus=debug"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        "faildebug: unknown facility bogus (known: engine, hook, config, monitor)\n"
    );

    // All or none: the known facility before the unknown one stays as it was.
    let o = run(
        SECRET,
        DEBUG_PORT,
        failsh.addr,
        &["set", "hook=trace", "bogus=debug"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = run(SECRET, DEBUG_PORT, failsh.addr, &["set", "hook=loud"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).starts_with("faildebug: unknown level loud (known: off, error, warn"),
        "{}",
        stderr(&o)
    );
    // Not FACILITY=LEVEL: refused before anything is sent.
    let o = run(SECRET, DEBUG_PORT, failsh.addr, &["set", "hook"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert_eq!(levels(&failsh), before, "nothing changed");

    // A port nobody listens on.
    let o = run(SECRET, DEBUG_PORT + 1, failsh.addr, &["levels"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).starts_with(&format!(
            "faildebug: cannot connect to {}:{}: ",
            failsh.addr,
            DEBUG_PORT + 1
        )),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("refused"), "{}", stderr(&o));

    // failsh is still there and still serves its state.
    let o = run(SECRET, DEBUG_PORT, failsh.addr, &["snapshot"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).lines().any(|l| l.starts_with("svc ")),
        "{}",
        stdout(&o)
    );
}
