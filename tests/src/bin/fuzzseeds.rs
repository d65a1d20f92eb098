//! fuzzseeds: regenerates the fuzz seed corpora (`fuzz/corpus/<target>/`)
//! from real traffic on loopback.
//!
//! - `request`, `reply`: a real faild, driven by the real failc (and by raw
//!   lines for what failc never sends: failsh's `by=` options, malformed
//!   requests), through a recording TCP proxy; every request line and every
//!   whole reply is a seed.
//! - `statefile`: faild's state file after each change of that traffic.
//! - `community`: the community files of `samples/` and of the tests.
//! - `monitor`: snapshot lines a real failsh pushes on its monitor port.
//! - `debug`: the lines the real faildebug sends to failsh's debug port and
//!   the blocks failsh answers, recorded through the same proxy.
//!
//! Run: `cargo run -p failover-tests --bin fuzzseeds` (docs/fuzzing.md).
//! Seeds are named by a hash of their content, so a rerun only adds what
//! changed. Everything runs on 127.0.0.0/8 and stops by itself.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use failover::proto::Header;
use failover_tests::{Faild, cluster, faildebug, lone_failsh, read, stderr, tcp_request};

/// What one proxied connection carried each way.
type Conversation = (Vec<u8>, Vec<u8>);

/// A TCP proxy on 127.0.0.1 that forwards every connection to `upstream`
/// and records what each side sent.
struct Recorder {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Conversation>>>,
}

impl Recorder {
    fn start(upstream: SocketAddr) -> Result<Recorder> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::clone(&log);
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let shared = Arc::clone(&shared);
                thread::spawn(move || {
                    if let Ok(c) = relay(client, upstream) {
                        shared.lock().unwrap().push(c);
                    }
                });
            }
        });
        Ok(Recorder { addr, log })
    }

    /// Waits until `n` conversations (`what`) have ended (a relay ends
    /// when both sides have closed) and returns them.
    fn collect(&self, what: &str, n: usize) -> Result<Vec<Conversation>> {
        let mut seen = Vec::new();
        failover_tests::wait_for(what, Duration::from_secs(20), || {
            seen.extend(std::mem::take(&mut *self.log.lock().unwrap()));
            seen.len() >= n
        })?;
        Ok(seen)
    }

    /// Runs failc with `base` (naming this recorder) and then `args`.
    fn failc(&self, base: &[&str], args: &[&str]) -> Result<()> {
        let o = failover_tests::failc(&[base, args].concat());
        if o.status.code() == Some(3) {
            bail!("failc {args:?} did not reach faild: {}", stderr(&o));
        }
        Ok(())
    }
}

/// Copies both ways until each side has closed; returns what each sent.
fn relay(client: TcpStream, upstream: SocketAddr) -> Result<Conversation> {
    let server = TcpStream::connect_timeout(&upstream, Duration::from_secs(2))?;
    for s in [&client, &server] {
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
    }
    let copy = |mut from: TcpStream, mut to: TcpStream| {
        thread::spawn(move || {
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = from.read(&mut buf) {
                seen.extend_from_slice(&buf[..n]);
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            let _ = to.shutdown(Shutdown::Write);
            seen
        })
    };
    let up = copy(client.try_clone()?, server.try_clone()?);
    let down = copy(server, client);
    Ok((up.join().unwrap(), down.join().unwrap()))
}

/// Splits a faild reply stream into whole replies (header and items).
fn replies(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let mut lines = text.split_inclusive('\n');
    let mut out = Vec::new();
    while let Some(head) = lines.next() {
        let mut reply = head.to_string();
        if let Ok(Header::Items { count, .. }) = Header::parse(head) {
            lines.by_ref().take(count).for_each(|l| reply.push_str(l));
        }
        out.push(reply);
    }
    out
}

/// Writes seeds into `fuzz/corpus/<target>/`, named by content hash.
struct Corpus {
    dir: PathBuf,
    written: usize,
}

impl Corpus {
    fn new(root: &Path, target: &str) -> Result<Corpus> {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir)?;
        Ok(Corpus { dir, written: 0 })
    }

    fn add(&mut self, seed: impl AsRef<[u8]>) -> Result<()> {
        let seed = seed.as_ref();
        let mut h = DefaultHasher::new();
        seed.hash(&mut h);
        std::fs::write(self.dir.join(format!("seed-{:016x}", h.finish())), seed)?;
        self.written += 1;
        Ok(())
    }
}

impl Drop for Corpus {
    fn drop(&mut self) {
        println!("{}: {} seeds", self.dir.display(), self.written);
    }
}

/// failc runs (after `-h ADDR -p PORT`) that make up the faild traffic.
const FAILC_RUNS: &[&[&str]] = &[
    &["-l"],
    &["-c", "genesis", "-s", "UP", "-b", "macbeth", "vip"],
    &[
        "-c",
        "genesis",
        "-s",
        "recover",
        "www",
        "db",
        "mail.example.org",
    ],
    &["vip"],
    &["vip", "www", "nosuch"],
    &["-c", "genesis", "-s", "FAIL", "vip"],
    &["-c", "genesis", "-s", "UP", "--force", "db"],
    &["-c", "genesis", "-l"],
    &["-c", "genesis", "-x", "mail.example.org"],
    &["-c", "genesis", "-x", "nosuch"],
    &["-c", "public", "-s", "UP", "vip"],
    &["-c", "wrong", "vip"],
    &[
        "-c",
        "genesis",
        "-s",
        "UP",
        "-b",
        "10.0.0.2",
        "192.168.1.10",
    ],
    &["-l", "--json"],
];

/// Request lines failc never sends, sent raw: failsh's options and the
/// error paths of the parser.
const RAW_LINES: &[&str] = &[
    "FAIL/1 101 genesis SET svc UP by=failsh-claim\n",
    "FAIL/1 102 genesis SET svc UP by=failsh-adopt\n",
    "FAIL/1 103 genesis SET svc UP by=failsh\n",
    "FAIL/1 104 genesis SET svc RECOVER\n",
    "FAIL/1 105 genesis SET svc FAIL by=failsh\n",
    "FAIL/1 106 genesis DEL svc\n",
    "FAIL/1 107 public get vip www\r\n",
    "FAIL/1 108 genesis LIST\n",
    "FAIL/2 109 public LIST\n",
    "FAIL/1 x public LIST\n",
    "FAIL/1 110 public FROB vip\n",
    "FAIL/1 111 public GET\n",
    "FAIL/1 112 genesis SET vip DOWN\n",
    "FAIL/1 113 genesis SET vip UP by=admin\n",
    "GET vip\n",
];

fn faild_traffic(root: &Path, dir: &Path) -> Result<()> {
    let mut requests = Corpus::new(root, "request")?;
    let mut reply_seeds = Corpus::new(root, "reply")?;
    let mut states = Corpus::new(root, "statefile")?;
    std::fs::create_dir_all(dir)?;
    let faild = Faild::start(dir, Some(cluster::RULES), &[])?;
    let recorder = Recorder::start(faild.socket())?;
    let (host, port) = (
        recorder.addr.ip().to_string(),
        recorder.addr.port().to_string(),
    );
    let mut last_state = String::new();
    let mut record_state = |states: &mut Corpus| -> Result<()> {
        let text = read(&faild.state_file());
        if !text.is_empty() && text != last_state {
            states.add(&text)?;
            last_state = text;
        }
        Ok(())
    };
    for args in FAILC_RUNS {
        recorder.failc(&["-h", &host, "-p", &port], args)?;
        record_state(&mut states)?;
    }
    for line in RAW_LINES {
        tcp_request(recorder.addr, line, Duration::from_secs(5))
            .with_context(|| format!("sending {line:?}"))?;
        record_state(&mut states)?;
    }
    let want = FAILC_RUNS.len() + RAW_LINES.len();
    for (up, down) in recorder.collect("the recorded conversations", want)? {
        for line in String::from_utf8_lossy(&up).split_inclusive('\n') {
            requests.add(line)?;
        }
        for reply in replies(&down) {
            reply_seeds.add(reply)?;
        }
    }
    Ok(())
}

/// failc runs with a key (after `-h ADDR -p PORT -k KEYFILE`): the
/// envelope target's seeds, signed requests and sealed replies.
const SIGNED_RUNS: &[&[&str]] = &[
    &["-c", "genesis", "-s", "UP", "-b", "macbeth", "vip"],
    &["-c", "genesis", "vip", "www"],
    &["-c", "genesis", "-s", "FAIL", "vip"],
    &["-c", "genesis", "-l"],
    &["-c", "genesis", "-x", "nosuch"],
    &["-c", "genesis", "--key-id", "old", "vip"],
];

fn signed_traffic(root: &Path, dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut seeds = Corpus::new(root, "envelope")?;
    std::fs::create_dir_all(dir)?;
    let keys = dir.join("keys");
    std::fs::write(
        &keys,
        "old genesis hex:000102030405060708090a0b0c0d0e0f\n\
         new * base64:c2VlZHMgb2YgdGhlIGVudmVsb3BlIHRhcmdldA==\n",
    )?;
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600))?;
    let key_arg = keys.display().to_string();
    let faild = Faild::start(dir, Some(cluster::RULES), &["-k", &key_arg])?;
    let recorder = Recorder::start(faild.socket())?;
    let (host, port) = (
        recorder.addr.ip().to_string(),
        recorder.addr.port().to_string(),
    );
    let base = ["-h", &host, "-p", &port, "-k", &key_arg];
    for args in SIGNED_RUNS {
        recorder.failc(&base, args)?;
    }
    let seen = recorder.collect("the recorded signed conversations", SIGNED_RUNS.len())?;
    for (up, down) in seen {
        for line in String::from_utf8_lossy(&up).split_inclusive('\n') {
            seeds.add(line)?;
        }
        seeds.add(&down)?;
    }
    Ok(())
}

fn community_files(root: &Path, repo: &Path) -> Result<()> {
    let mut seeds = Corpus::new(root, "community")?;
    for file in ["samples/communities", "samples/ipfailover/communities"] {
        let text = std::fs::read_to_string(repo.join(file)).context(file)?;
        seeds.add(&text)?;
        // Each rule line alone, too: small seeds mutate faster.
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            seeds.add(format!("{line}\n"))?;
        }
    }
    seeds.add(cluster::RULES)?;
    Ok(())
}

fn failsh_traffic(root: &Path, dir: &Path) -> Result<()> {
    const SECRET: &str = "fuzz-s3cret";
    const DEBUG_PORT: u16 = 1849;
    let mut monitor = Corpus::new(root, "monitor")?;
    let mut debug = Corpus::new(root, "debug")?;
    let (faild, failsh) = lone_failsh(dir, None, |_| {
        vec![
            "-D".into(),
            DEBUG_PORT.to_string(),
            "-c".into(),
            SECRET.into(),
        ]
    })?;
    let stream = TcpStream::connect(SocketAddr::new(failsh.addr, failsh.monitor_port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut pushes = BufReader::new(stream).lines();
    // Pushes while failsh starts the service, then while it stops it on
    // an admin's request, then starts it again.
    for set in ["FAIL", "RECOVER", "UP"] {
        for line in pushes.by_ref().take(4) {
            monitor.add(line?)?;
        }
        let o = faild.failc(&["-c", "genesis", "-s", set, "svc"]);
        if !o.status.success() {
            bail!("failc -s {set} svc: {}", stderr(&o));
        }
    }

    let recorder = Recorder::start(SocketAddr::new(failsh.addr, DEBUG_PORT))?;
    let runs: &[&[&str]] = &[
        &["levels"],
        &["set", "engine=info", "hook=DEBUG"],
        &["snapshot"],
        &["levels"],
    ];
    for args in runs {
        let o = faildebug()
            .args([
                "-c",
                SECRET,
                "-p",
                &recorder.addr.port().to_string(),
                "127.0.0.1",
            ])
            .args(*args)
            .output()?;
        if !o.status.success() {
            bail!("faildebug {args:?}: {}", stderr(&o));
        }
    }
    for (up, down) in recorder.collect("the recorded debug sessions", runs.len())? {
        // The community line is no command; the lines after it are.
        for line in String::from_utf8_lossy(&up).split_inclusive('\n').skip(1) {
            debug.add(line)?;
        }
        // Each answer block, without its closing dot, as failsh's text.
        let down = String::from_utf8_lossy(&down);
        for block in down.split("\n.\n").filter(|b| b.contains('\n')) {
            debug.add(format!("{block}\n"))?;
        }
    }
    for extra in [
        "help\n",
        "log\n",
        "quit\n",
        "level engine trace config off\n",
        "bogus\n",
    ] {
        debug.add(extra)?;
    }
    Ok(())
}

fn main() -> Result<()> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = repo.join("fuzz/corpus");
    let tmp = tempfile::tempdir()?;
    faild_traffic(&root, &tmp.path().join("faild"))?;
    signed_traffic(&root, &tmp.path().join("signed"))?;
    community_files(&root, &repo)?;
    failsh_traffic(&root, &tmp.path().join("failsh"))?;
    Ok(())
}
