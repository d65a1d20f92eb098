//! Test harness: builds the real binaries and runs them as separate
//! processes on their own loopback addresses.
//!
//! Every faild started here listens on a random address in 127.0.0.0/8, so
//! tests can run in parallel on the default port without meeting each other,
//! and never send a packet off this machine.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};

pub mod cluster;
pub mod lab_cluster;
pub mod netns;
pub mod outage;
pub mod procstat;

/// Path of a workspace binary, built once per test process (escargot runs
/// cargo, which rebuilds it when a source changed, so it is never stale).
pub fn bin(name: &str) -> PathBuf {
    static PATHS: OnceLock<std::sync::Mutex<Vec<(String, PathBuf)>>> = OnceLock::new();
    let paths = PATHS.get_or_init(Default::default);
    let mut paths = paths.lock().unwrap();
    if let Some((_, p)) = paths.iter().find(|(n, _)| n == name) {
        return p.clone();
    }
    let mut build = escargot::CargoBuild::new().bin(name).package(name);
    if !cfg!(debug_assertions) {
        build = build.release();
    }
    let path = build
        .run()
        .unwrap_or_else(|e| panic!("building {name}: {e}"))
        .path()
        .to_path_buf();
    paths.push((name.to_string(), path.clone()));
    path
}

/// A loopback address no other test of this run is likely to use.
pub fn unique_addr() -> Ipv4Addr {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let mix = std::process::id()
        .wrapping_mul(2_654_435_761)
        .wrapping_add(nanos)
        .wrapping_add(N.fetch_add(1, Ordering::Relaxed).wrapping_mul(40_503));
    let [a, b, c, _] = mix.to_le_bytes();
    Ipv4Addr::new(127, a.max(1), b, c.clamp(2, 254))
}

/// Polls `cond` every 10 ms until it holds or `limit` passes.
pub fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + limit;
    while !cond() {
        if Instant::now() > deadline {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// A faild process started by a test. Killed (SIGKILL) when dropped.
pub struct Faild {
    child: Option<Child>,
    pub addr: IpAddr,
    pub port: u16,
    pub dir: PathBuf,
    args: Vec<String>,
    /// Extra environment for the next (re)start, e.g. `FAILD_BOOT_ID`.
    pub env: Vec<(String, String)>,
}

impl Faild {
    pub fn state_file(&self) -> PathBuf {
        self.dir.join("faild.state")
    }

    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("faild.pid")
    }

    pub fn community_file(&self) -> PathBuf {
        self.dir.join("communities")
    }

    pub fn socket(&self) -> SocketAddr {
        SocketAddr::new(self.addr, self.port)
    }

    /// Starts faild in the foreground in `dir` (state, pid and community
    /// files live there) with `communities` as its community file, and waits
    /// until it answers.
    pub fn start(dir: &Path, communities: Option<&str>, extra: &[&str]) -> Result<Faild> {
        Faild::start_at(unique_addr().into(), dir, communities, extra)
    }

    /// [`Faild::start`] on a given address (the multi-host tests use
    /// 127.0.0.2, 127.0.0.3, ...).
    pub fn start_at(
        addr: IpAddr,
        dir: &Path,
        communities: Option<&str>,
        extra: &[&str],
    ) -> Result<Faild> {
        let mut args = vec!["-F".to_string()];
        if let Some(text) = communities {
            std::fs::write(dir.join("communities"), text)?;
            args.extend(["-c".into(), dir.join("communities").display().to_string()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut f = Faild {
            child: None,
            addr,
            port: failover::DEFAULT_PORT,
            dir: dir.to_path_buf(),
            args,
            env: Vec::new(),
        };
        f.restart()?;
        Ok(f)
    }

    /// (Re)starts the process with the same arguments, files and address.
    pub fn restart(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("faild.log"))?;
        let child = Command::new(bin("faild"))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .args(&self.args)
            .args(["-a", &self.addr.to_string(), "-p", &self.port.to_string()])
            .arg("-s")
            .arg(self.state_file())
            .arg("-r")
            .arg(self.pid_file())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("spawning faild")?;
        self.child = Some(child);
        let sock = self.socket();
        wait_for("faild to answer", Duration::from_secs(20), || {
            answers(sock) || self.exited()
        })?;
        if self.exited() {
            bail!("faild exited at start; log:\n{}", self.log());
        }
        Ok(())
    }

    fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|c| c.try_wait().ok().flatten().is_some())
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("faild.log")).unwrap_or_default()
    }

    pub fn signal(&self, sig: &str) {
        send_signal(self.pid(), sig);
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends `sig` and waits (bounded) for the exit status.
    pub fn stop_with(&mut self, sig: &str) -> Result<ExitStatus> {
        self.signal(sig);
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("faild did not exit within 20 s of SIG{sig}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Runs failc against this faild: `-h ADDR -p PORT` followed by `args`.
    pub fn failc(&self, args: &[&str]) -> Output {
        failc(
            &[
                &["-h", &self.addr.to_string(), "-p", &self.port.to_string()],
                args,
            ]
            .concat(),
        )
    }
}

impl Drop for Faild {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Runs failc with `args`, bounded by its own `-t` (default 3 s).
pub fn failc(args: &[&str]) -> Output {
    Command::new(bin("failc"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running failc")
}

/// A faild in `dir` (the cluster's community rules) with service `svc`
/// registered RECOVER, and a failsh on the same loopback address managing
/// `svc` with hooks that only answer (start: UP, stop: FAIL) — and `peer`,
/// if given, as its slave — started with the arguments `extra` makes of the
/// host's address. For the tests of failsh's ports (monitor, metrics, debug)
/// and their clients.
pub fn lone_failsh(
    dir: &Path,
    peer: Option<IpAddr>,
    extra: impl Fn(IpAddr) -> Vec<String>,
) -> Result<(Faild, Failsh)> {
    std::fs::create_dir_all(dir)?;
    let faild = Faild::start(dir, Some(cluster::RULES), &[])?;
    let o = faild.failc(&["-c", "genesis", "-sRECOVER", "svc"]);
    if o.status.code() != Some(0) {
        bail!("failc -sRECOVER svc: {}", stderr(&o));
    }
    let (peer_line, slaves) = match peer {
        Some(a) => (
            format!("failhost(\"peer\", \"address\", \"{a}\")\n"),
            "slaves = { \"peer\" }, ",
        ),
        None => (String::new(), ""),
    };
    let cfg = dir.join("host.lua");
    std::fs::write(
        &cfg,
        format!(
            "failhost(\"localhost\", \"address\", \"{}\")\nfailhost(\"localhost\", \"community\", \"genesis\")\n\
             {peer_line}failsvc{{ name = \"svc\", interval = 0.2, {slaves}\n  \
             start = function() return \"UP\" end, stop = function() return \"FAIL\" end }}\n",
            faild.addr
        ),
    )?;
    let mut failsh = Failsh::new(&cfg, faild.addr, 1848);
    failsh.extra = extra(faild.addr);
    failsh.restart()?;
    Ok((faild, failsh))
}

/// A command running failmon (the monitor client), stdin closed unless the
/// test says otherwise.
pub fn failmon() -> Command {
    let mut c = Command::new(bin("failmon"));
    c.stdin(Stdio::null());
    c
}

/// A command running faildebug (failsh's debug client), stdin closed;
/// each answer is bounded by its own `-t` (default 5 s).
pub fn faildebug() -> Command {
    let mut c = Command::new(bin("faildebug"));
    c.stdin(Stdio::null());
    c
}

/// Whether a faild answers a request on TCP at `addr`.
pub fn answers(addr: SocketAddr) -> bool {
    tcp_request(addr, "FAIL/1 0 x LIST\n", Duration::from_millis(500)).is_ok()
}

/// Sends one raw request line over a new TCP connection; returns the whole
/// reply text (header and item lines).
pub fn tcp_request(addr: SocketAddr, line: &str, timeout: Duration) -> Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.write_all(line.as_bytes())?;
    read_reply(&mut BufReader::new(s))
}

/// Reads one reply (header plus as many lines as it counts) from a stream.
pub fn read_reply(r: &mut impl BufRead) -> Result<String> {
    let mut header = String::new();
    if r.read_line(&mut header)? == 0 {
        bail!("connection closed without a reply");
    }
    let mut text = header.clone();
    if let failover::proto::Header::Items { count, .. } =
        failover::proto::Header::parse(&header).map_err(anyhow::Error::msg)?
    {
        for _ in 0..count {
            r.read_line(&mut text)?;
        }
    }
    Ok(text)
}

/// Sends one raw request datagram, resending it every 20 ms as a poller
/// would (a datagram can be dropped when faild's receive queue is full);
/// returns the first reply datagram.
pub fn udp_request(addr: SocketAddr, line: &str, timeout: Duration) -> Result<String> {
    let s = UdpSocket::bind("127.0.0.1:0")?;
    s.connect(addr)?;
    s.set_read_timeout(Some(Duration::from_millis(20)))?;
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; 70_000];
    while Instant::now() < deadline {
        s.send(line.as_bytes())?;
        match s.recv(&mut buf) {
            Ok(n) => return Ok(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e.into()),
        }
    }
    bail!("no UDP reply from {addr} within {timeout:?}")
}

/// stdout of a finished command, as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr of a finished command, as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Reads a whole file or an empty string.
pub fn read(path: &Path) -> String {
    let mut s = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_string(&mut s);
    }
    s
}

/// Sends `sig` (e.g. "HUP", "STOP") to a process; panics if kill fails.
pub fn send_signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill -{sig} {pid} failed");
}

/// A failsh process started by a test, in the foreground, logging to
/// `DIR/failsh.log`. Killed (SIGKILL) when dropped.
pub struct Failsh {
    child: Option<Child>,
    pub addr: IpAddr,
    pub monitor_port: u16,
    /// More command-line arguments for the next [`Failsh::restart`].
    pub extra: Vec<String>,
    config: PathBuf,
    log: PathBuf,
}

impl Failsh {
    /// A failsh for `config`, its monitor on `addr:monitor_port`, not
    /// started yet: [`Failsh::restart`] starts it.
    pub fn new(config: &Path, addr: IpAddr, monitor_port: u16) -> Failsh {
        Failsh {
            child: None,
            addr,
            monitor_port,
            extra: Vec::new(),
            config: config.to_path_buf(),
            log: config.with_extension("log"),
        }
    }

    pub fn restart(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = Command::new(bin("failsh"))
            .args(["-F", "-d", "engine", "-f"])
            .arg(&self.config)
            .args([
                "-a",
                &self.addr.to_string(),
                "-m",
                &self.monitor_port.to_string(),
            ])
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("spawning failsh")?;
        self.child = Some(child);
        let addr = SocketAddr::new(self.addr, self.monitor_port);
        wait_for("failsh's monitor port", Duration::from_secs(20), || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        })
        .with_context(|| format!("failsh log:\n{}", self.log()))
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn log(&self) -> String {
        read(&self.log)
    }

    /// The monitor's snapshot: one line per service.
    /// The first snapshot the monitor port pushes, parsed; `None` if
    /// failsh does not answer (yet).
    pub fn monitor(&self) -> Option<failover::monitor::Snapshot> {
        let addr = SocketAddr::new(self.addr, self.monitor_port);
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).ok()?;
        serde_json::from_str(&line).ok()
    }

    /// The monitor's snapshot as text: one line per service (empty if
    /// failsh does not answer).
    pub fn snapshot(&self) -> String {
        self.monitor().map_or(String::new(), |s| s.text())
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Failsh {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// One line of a service journal: `HOST up|down|reclaim SECONDS`.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub host: String,
    pub event: String,
    pub at: f64,
}

/// Reads a journal written by service hooks.
pub fn journal(path: &Path) -> Vec<Entry> {
    read(path)
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            Some(Entry {
                host: w.first()?.to_string(),
                event: w.get(1)?.to_string(),
                at: w.get(2)?.parse().ok()?,
            })
        })
        .collect()
}

/// The hosts up after each journal line, in time order: `(time, hosts)`.
/// "up" is written before a service starts and "down" after it is gone, so
/// a host counts as up from the moment it might be, until it surely is not.
pub fn up_sets(entries: &[Entry]) -> Vec<(f64, Vec<String>)> {
    let mut sorted = entries.to_vec();
    sorted.sort_by(|a, b| a.at.total_cmp(&b.at));
    let mut up: Vec<String> = Vec::new();
    sorted
        .into_iter()
        .map(|e| {
            match e.event.as_str() {
                "up" if !up.contains(&e.host) => up.push(e.host),
                "down" => up.retain(|h| *h != e.host),
                _ => {}
            }
            (e.at, up.clone())
        })
        .collect()
}

/// Periods in which two or more hosts were up at once, by the journal:
/// `(start, end, hosts)`; an overlap still open at the end has end = ∞.
/// The periods are conservative (never shorter than the real overlap), as
/// [`up_sets`] says.
pub fn overlaps(entries: &[Entry]) -> Vec<(f64, f64, Vec<String>)> {
    let mut out: Vec<(f64, f64, Vec<String>)> = Vec::new();
    let mut before = 0;
    for (at, up) in up_sets(entries) {
        if before < 2 && up.len() >= 2 {
            out.push((at, f64::INFINITY, up.clone()));
        } else if before >= 2
            && up.len() < 2
            && let Some(last) = out.last_mut()
        {
            last.1 = at;
        }
        before = up.len();
    }
    out
}
