//! failmon against a real faild pair and failsh: `-1`, `--json` (and
//! `--follow`), `-h`, line mode, the CGI name, exit status 3 when failsh is
//! unreachable or goes away, and the terminal UI driven through tmux.
//!
//! The cluster: failsh runs service `svc` as master on its own loopback
//! address, with one slave `peer` whose faild says RECOVER; so failsh starts
//! `svc` (its hooks only answer) and the peer shows as RECOVER.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use failover::monitor::{Reason, Snapshot};
use failover_tests::cluster::RULES;
use failover_tests::{
    Faild, Failsh, bin, failmon, lone_failsh, stderr, stdout, unique_addr, wait_for,
};

const BOUND: Duration = Duration::from_secs(30);
const MONITOR_PORT: u16 = 1848;

struct Cluster {
    failsh: Failsh,
    _local: Faild,
    peer: Faild,
    tmp: tempfile::TempDir,
}

impl Cluster {
    fn addr(&self) -> String {
        self.failsh.addr.to_string()
    }

    /// `-p PORT ADDR` after `args`.
    fn failmon(&self, args: &[&str]) -> Command {
        let mut c = failmon();
        c.args(args)
            .args(["-p", &MONITOR_PORT.to_string(), &self.addr()]);
        c
    }
}

/// Starts the cluster and waits until failsh reports `svc` UP and running.
fn cluster() -> Cluster {
    let tmp = tempfile::tempdir().unwrap();
    let peer_dir = tmp.path().join("peer");
    std::fs::create_dir_all(&peer_dir).unwrap();
    let peer = Faild::start(&peer_dir, Some(RULES), &[]).unwrap();
    let o = peer.failc(&["-c", "genesis", "-sRECOVER", "svc"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let (local, failsh) =
        lone_failsh(&tmp.path().join("local"), Some(peer.addr), |_| vec![]).unwrap();
    wait_for("svc UP and the peer RECOVER", BOUND, || {
        failsh.monitor().is_some_and(|s| {
            s.services.iter().any(|svc| {
                svc.name == "svc"
                    && svc.local == "UP"
                    && svc.running
                    && svc.peers.iter().any(|p| p.state == "RECOVER")
            })
        })
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", failsh.log()));
    Cluster {
        failsh,
        _local: local,
        peer,
        tmp,
    }
}

/// Runs `cmd` with `input` on stdin; kills it and fails the test if it has
/// not exited within [`BOUND`].
fn run(cmd: &mut Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(input);
    drop(stdin);
    let deadline = Instant::now() + BOUND;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} still running after {BOUND:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

#[test]
fn once_prints_the_text_snapshot() {
    let c = cluster();
    let o = run(
        c.failmon(&["-1", "-d", "net"]).env_remove("FAILMON_LOG"),
        b"",
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.starts_with("failsh on "), "{text}");
    assert!(text.contains("2 host(s), 1 service(s)"), "{text}");
    assert!(text.contains("host localhost "), "{text}");
    assert!(text.contains("host peer "), "{text}");
    assert!(
        text.contains("svc local=UP running=yes reclaim=no busy=- peers=[peer=RECOVER]"),
        "{text}"
    );
    // -d net logs the connection on stderr, not on stdout.
    assert!(stderr(&o).contains("connected to"), "{}", stderr(&o));
    assert!(!text.contains("connected to"));
}

#[test]
fn json_is_a_snapshot_and_follow_streams_until_failsh_goes() {
    let mut c = cluster();
    let o = run(&mut c.failmon(&["--json"]), b"");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert_eq!(text.lines().count(), 1, "{text}");
    let snap: Snapshot = serde_json::from_str(&text).unwrap();
    assert_eq!(snap.reason, Reason::Connect);
    assert_eq!(snap.services.len(), 1);
    let svc = &snap.services[0];
    assert_eq!((svc.name.as_str(), svc.local.as_str()), ("svc", "UP"));
    assert_eq!(svc.peers[0].host, "peer");
    assert!(snap.hosts.iter().any(|h| h.name == "localhost"));

    // --follow: one line per push, until failsh goes away (status 3).
    let mut child = c
        .failmon(&["--json", "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = BufReader::new(child.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in reader.lines() {
            if tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    let mut reasons = Vec::new();
    while reasons.len() < 3 {
        let line = rx.recv_timeout(BOUND).expect("a push within the bound");
        let snap: Snapshot = serde_json::from_str(&line).unwrap();
        reasons.push(snap.reason);
    }
    assert_eq!(reasons[0], Reason::Connect);
    assert!(
        reasons[1..].iter().all(|r| *r != Reason::Connect),
        "{reasons:?}"
    );
    c.failsh.kill9();
    let status = wait_exit(&mut child);
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(3), "{err}");
    assert!(
        err.starts_with("failmon: ") && err.lines().count() == 1,
        "{err}"
    );
    assert!(err.contains("closed") || err.contains("lost"), "{err}");
}

fn wait_exit(child: &mut std::process::Child) -> ExitStatus {
    let mut status = None;
    let waited = wait_for("failmon to exit", BOUND, || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    if waited.is_err() {
        let _ = child.kill();
        panic!("failmon did not exit");
    }
    status.unwrap()
}

#[test]
fn html_page_names_the_service() {
    let c = cluster();
    let o = run(&mut c.failmon(&["-h"]), b"");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let page = stdout(&o);
    assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
    assert!(page.trim_end().ends_with("</html>"), "{page}");
    assert!(page.contains("<title>failmon: failsh on "), "{page}");
    assert!(page.contains(">svc</a>"), "{page}");
    assert!(page.contains("<span class=\"UP\">UP</span>"), "{page}");
    assert!(
        page.contains("peer=<span class=\"RECOVER\">RECOVER</span>"),
        "{page}"
    );
    assert!(!page.contains("Content-Type"), "no CGI header with -h");
}

#[test]
fn line_mode_prints_the_state_once_per_return() {
    let c = cluster();
    let o = run(&mut c.failmon(&["-l"]), b"\n\nq\n\n\n");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert_eq!(text.matches("failsh on ").count(), 2, "{text}");
    assert_eq!(text.matches("svc local=UP").count(), 2, "{text}");
    // The end of input quits too.
    let o = run(&mut c.failmon(&["-l"]), b"\n");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o).matches("failsh on ").count(), 1);
}

#[test]
fn cgi_name_sends_a_header_and_takes_only_valid_query_values() {
    let c = cluster();
    let cgi = c.tmp.path().join("failmon.cgi");
    std::os::unix::fs::symlink(bin("failmon"), &cgi).unwrap();
    let query = format!("host={}&port={MONITOR_PORT}", c.addr());
    // Arguments are ignored in CGI mode (a server may pass the query so).
    let o = run(
        Command::new(&cgi).arg("-1").env("QUERY_STRING", &query),
        b"",
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.starts_with("Content-Type: text/html; charset=utf-8\r\n\r\n<!DOCTYPE html>"),
        "{text}"
    );
    assert!(text.contains(">svc</a>"), "{text}");
    assert!(text.contains(&format!("monitor port {}:{MONITOR_PORT}", c.addr())));
    // A bad port alone falls back to the default port (which is ours).
    let o = run(
        Command::new(&cgi).env("QUERY_STRING", format!("host={}&port=1848x", c.addr())),
        b"",
    );
    assert!(stdout(&o).contains(">svc</a>"), "{}", stdout(&o));
    // A host that is not an address is not used: 127.0.0.1 is asked
    // instead (whatever answers there), and nothing is echoed unescaped.
    let o = run(
        Command::new(&cgi).env("QUERY_STRING", "host=<script>x</script>&port=1848"),
        b"",
    );
    let text = stdout(&o);
    assert!(text.contains("127.0.0.1:1848"), "{text}");
    assert!(!text.contains("<script>"), "{text}");
    if o.status.code() == Some(3) {
        assert!(text.starts_with("Status: 502 Bad Gateway\r\n"), "{text}");
    }
}

#[test]
fn unreachable_failsh_is_one_line_and_status_3() {
    let nobody: IpAddr = unique_addr().into();
    for mode in [
        &["-1"][..],
        &["--json"],
        &["-h"],
        &["--json", "-f"],
        &["-l"],
    ] {
        let o = run(failmon().args(mode).arg(nobody.to_string()), b"\n");
        assert_eq!(o.status.code(), Some(3), "{mode:?}: {}", stderr(&o));
        assert!(stdout(&o).is_empty(), "{mode:?}: {}", stdout(&o));
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{mode:?}: {err}");
        assert!(
            err.starts_with(&format!("failmon: {nobody}:1848: cannot connect: ")),
            "{mode:?}: {err}"
        );
    }
    let o = run(failmon().args(["-1", "-p", "0"]), b"");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

/// A tmux server of its own (its socket in the test's temporary
/// directory, so nothing is left behind), killed when dropped.
struct Tmux {
    socket: PathBuf,
}

const PANE: &str = "failmon";

impl Tmux {
    fn start(dir: &Path, command: &str) -> Tmux {
        let tmux = Tmux {
            socket: dir.join("tmux.sock"),
        };
        let o = tmux.run(&[
            "new-session",
            "-d",
            "-s",
            PANE,
            "-x",
            "120",
            "-y",
            "40",
            command,
        ]);
        assert!(o.status.success(), "tmux: {}", stderr(&o));
        tmux
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(["-f", "/dev/null"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("running tmux")
    }

    fn screen(&self) -> String {
        stdout(&self.run(&["capture-pane", "-p", "-t", PANE]))
    }

    fn keys(&self, keys: &[&str]) {
        let o = self.run(&[&["send-keys", "-t", PANE][..], keys].concat());
        assert!(o.status.success(), "send-keys: {}", stderr(&o));
    }

    /// Waits until the screen, each line squeezed to single blanks, shows
    /// every one of `texts` and none of `absent`; returns it. Whole
    /// expectations go here, not into asserts on one capture: failmon may be
    /// halfway through drawing a frame when the pane is captured.
    fn wait(&self, texts: &[&str], absent: &[&str]) -> String {
        let mut screen = String::new();
        let shown = wait_for(&format!("{texts:?} on the screen"), BOUND, || {
            screen = squeeze(&self.screen());
            texts.iter().all(|t| screen.contains(t)) && !absent.iter().any(|t| screen.contains(t))
        });
        if let Err(e) = shown {
            panic!("{e}; screen:\n{}", self.screen());
        }
        screen
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// Every line of `screen` squeezed to single blanks.
fn squeeze(screen: &str) -> String {
    screen
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn terminal_ui_screens_keys_and_reconnection() {
    let mut c = cluster();
    // The shell says how failmon ended, then waits for input, so that the
    // pane (and the line) stays until the server is killed: tmux may drop
    // the last output of a pane whose terminal closes at once.
    let command = format!(
        "'{}' -p {MONITOR_PORT} {}; echo \"failmon exited with status $?\"; read x",
        bin("failmon").display(),
        c.addr()
    );
    let tmux = Tmux::start(c.tmp.path(), &command);

    // The host list, the local host selected; both failds answer.
    tmux.wait(&["connected", "Hosts of failsh on", "> localhost ("], &[]);
    tmux.wait(
        &[&format!("│ peer {}:1291 ok ", c.peer.addr), "ago never"],
        &[],
    );
    tmux.keys(&["c"]);
    tmux.wait(
        &[
            "times: last connect / last call",
            "Last connect Last call",
            "ago ok",
        ],
        &[],
    );

    // l: the services of the local host, with the local faild's state.
    tmux.keys(&["l"]);
    tmux.wait(&["Services on localhost (", "│> svc UP yes - - "], &[]);

    // s: the details, with the peer and the start hook.
    tmux.keys(&["s"]);
    tmux.wait(
        &[
            "Service svc (selected on localhost",
            "│local state UP running yes",
            "│last hook start ",
            "ok: returned UP",
            "│ peer slave RECOVER ",
            "│ start 1 0 ",
        ],
        &["> peer"],
    );

    // Tab: the host list; down to the peer; Tab back to the details, now
    // with the peer's row marked; ←: the services as the peer has them.
    tmux.keys(&["Tab"]);
    tmux.wait(&["Hosts of failsh on", "> localhost ("], &[]);
    tmux.keys(&["Down"]);
    tmux.wait(&["│> peer "], &[]);
    tmux.keys(&["Tab"]);
    tmux.wait(
        &["Service svc (selected on peer)", "│ > peer slave RECOVER "],
        &[],
    );
    tmux.keys(&["Left"]);
    tmux.wait(
        &[
            "Services on peer: its state as failsh saw it",
            "│> svc slave RECOVER ",
        ],
        &[],
    );
    tmux.keys(&["h"]);
    tmux.wait(&["Hosts of failsh on", "│> peer "], &[]);

    // failsh goes: said on the screen; it comes back: reconnected.
    c.failsh.kill9();
    tmux.wait(&["disconnected, retrying"], &[]);
    c.failsh.restart().unwrap();
    tmux.wait(&["connected", "Hosts of failsh on"], &["disconnected"]);

    tmux.keys(&["q"]);
    tmux.wait(&["failmon exited with status 0"], &[]);
}
