//! failbench: faild's figures on loopback, printed as a table.
//!
//! - GET throughput over UDP and TCP with N concurrent closed-loop clients,
//!   next to a trivial UDP echo server (a separate process, measured in the
//!   same run the same way), with the server CPU time per request of each;
//! - signed (HMAC-SHA256, `faild -k`) against unsigned GETs over UDP: the
//!   throughput, faild's CPU per request, and the client's cost to sign a
//!   request and check its reply;
//! - durable SET latency (acknowledged only after the state file is on
//!   disk) with 100 services and with 100,000 services, and faild's RSS.
//!
//! Run: `cargo run --release -p failover-tests --bin failbench` (it builds a
//! release faild). Everything runs on 127.0.0.0/8 and stops by itself.

use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use clap::Parser;
use failover::auth::{Key, Signer};
use failover::registry::Registry;
use failover::{Record, State};
use failover_tests::procstat::{cpu_seconds, rss_kib};
use failover_tests::{Faild, read_reply, unique_addr, wait_for};

#[derive(Parser)]
#[command(about = "Measure faild on loopback and print a table of figures")]
struct Args {
    /// Concurrent clients for the throughput runs.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Seconds per throughput run.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Durable SETs timed per registry size.
    #[arg(long, default_value_t = 200)]
    sets: usize,
    /// Services in the large registry.
    #[arg(long, default_value_t = 100_000)]
    large: usize,
    /// Internal: run as the trivial UDP echo server on this address.
    #[arg(long, hide = true)]
    echo_server: Option<SocketAddr>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(addr) = args.echo_server {
        return echo_server(addr);
    }
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!(
        "failbench: {build} build, {} clients, {} s per run, {} cores",
        args.clients,
        args.seconds,
        cores()
    );
    let dir = tempfile::Builder::new()
        .prefix("failbench")
        .tempdir_in(std::env::temp_dir())?;

    // Throughput.
    let f = Faild::start(dir.path(), Some("* public RO\n* bench RW\n"), &[])?;
    let mut conn = Conn::open(f.socket())?;
    for i in 0..100 {
        conn.call(&format!("FAIL/1 {i} bench SET svc{i} UP backup{i}\n"))?;
    }
    let get = "FAIL/1 1 public GET svc42\n";
    let faild_pid = f.pid();
    let faild_udp = measure(faild_pid, args.clients, args.seconds, |stop, n| {
        udp_client(f.socket(), get, stop, n)
    })?;
    let faild_tcp = measure(faild_pid, args.clients, args.seconds, |stop, n| {
        tcp_client(f.socket(), get, stop, n)
    })?;

    let echo_addr = SocketAddr::new(unique_addr().into(), failover::DEFAULT_PORT);
    let mut echo = EchoServer::start(echo_addr)?;
    let echo_udp = measure(echo.pid(), args.clients, args.seconds, |stop, n| {
        udp_client(echo_addr, get, stop, n)
    })?;
    echo.stop();

    println!();
    println!(
        "| GET throughput ({} clients)   | requests/s | server CPU µs/request |",
        args.clients
    );
    println!("|-------------------------------|-----------:|----------------------:|");
    for (name, m) in [
        ("faild, UDP", &faild_udp),
        ("faild, TCP", &faild_tcp),
        ("trivial UDP echo server", &echo_udp),
    ] {
        println!("| {name:<29} | {:>10.0} | {:>21.1} |", m.rate, m.cpu_us);
    }
    println!(
        "faild UDP / echo: {:.2} of the echo server's throughput; CPU per request {:.2}x the echo server's",
        faild_udp.rate / echo_udp.rate,
        faild_udp.cpu_us / echo_udp.cpu_us
    );

    signed_vs_unsigned(&args, dir.path(), &faild_udp)?;

    // Durable SETs, 100 services.
    let small = set_latency(&mut conn, "svc7", args.sets)?;
    let small_rss = rss_kib(faild_pid)?;
    drop(conn);
    drop(f);

    // Durable SETs, many services: the state file is written up front (same
    // boot, so faild keeps it as is), then faild loads it.
    let big_dir = tempfile::Builder::new()
        .prefix("failbench")
        .tempdir_in(std::env::temp_dir())?;
    write_large_state(&big_dir.path().join("faild.state"), args.large)?;
    let t = Instant::now();
    let f = Faild::start(big_dir.path(), Some("* public RO\n* bench RW\n"), &[])?;
    let load = t.elapsed();
    let mut conn = Conn::open(f.socket())?;
    let large = set_latency(&mut conn, "svc7", args.sets.min(50))?;
    let large_rss = rss_kib(f.pid())?;
    let file_size = std::fs::metadata(f.state_file())?.len();

    println!();
    println!(
        "| durable SET (acknowledged after fsync) | median ms | p95 ms | max ms | faild RSS MiB |"
    );
    println!(
        "|----------------------------------------|----------:|-------:|-------:|--------------:|"
    );
    for (name, l, rss) in [
        ("100 services", &small, small_rss),
        (&*format!("{} services", args.large), &large, large_rss),
    ] {
        println!(
            "| {name:<38} | {:>9.2} | {:>6.2} | {:>6.2} | {:>13.1} |",
            l.median,
            l.p95,
            l.max,
            rss as f64 / 1024.0
        );
    }
    println!(
        "{} services: state file {:.1} MiB, faild start-up until it answers {:.2} s",
        args.large,
        file_size as f64 / (1 << 20) as f64,
        load.as_secs_f64()
    );
    Ok(())
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// One persistent TCP connection speaking raw protocol lines.
struct Conn(BufReader<TcpStream>);

impl Conn {
    fn open(addr: SocketAddr) -> Result<Conn> {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Conn(BufReader::new(s)))
    }

    fn call(&mut self, line: &str) -> Result<String> {
        self.0.get_mut().write_all(line.as_bytes())?;
        let reply = read_reply(&mut self.0)?;
        if reply.contains(" ERR ") {
            bail!("{line:?} failed: {reply}");
        }
        Ok(reply)
    }
}

struct Throughput {
    rate: f64,
    cpu_us: f64,
}

/// Runs `clients` closed-loop clients for `seconds`, and measures requests
/// per second and the server's CPU time per request.
fn measure(
    server_pid: u32,
    clients: usize,
    seconds: f64,
    client: impl Fn(&AtomicBool, &AtomicU64) -> Result<()> + Sync,
) -> Result<Throughput> {
    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);
    let start = Barrier::new(clients + 1);
    let (elapsed, cpu) = std::thread::scope(|s| -> Result<(f64, f64)> {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    client(&stop, &done)
                })
            })
            .collect();
        start.wait();
        let (t0, cpu0) = (Instant::now(), cpu_seconds(server_pid)?);
        std::thread::sleep(Duration::from_secs_f64(seconds));
        let (elapsed, cpu) = (t0.elapsed().as_secs_f64(), cpu_seconds(server_pid)? - cpu0);
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            h.join().expect("client thread")?;
        }
        Ok((elapsed, cpu))
    })?;
    let n = done.load(Ordering::Relaxed) as f64;
    Ok(Throughput {
        rate: n / elapsed,
        cpu_us: cpu / n * 1e6,
    })
}

/// faild with a key for community `signed`: GET/s and faild's CPU per
/// request, signed against the unsigned run above; and the client's own
/// cost per request (sign, then open the sealed reply), in this process.
fn signed_vs_unsigned(args: &Args, dir: &std::path::Path, unsigned: &Throughput) -> Result<()> {
    let signed_dir = dir.join("signed");
    std::fs::create_dir_all(&signed_dir)?;
    // One key per client, and at most 1 s: faild remembers every nonce of
    // its 30 s window, at most 65,536 per key and 262,144 in all, and
    // refuses signed requests beyond that (a bound far above what pollers
    // send, far below what this benchmark can).
    let keys = signed_dir.join("keys");
    let secret = "5a".repeat(32);
    let lines: String = (0..args.clients)
        .map(|i| format!("bench{i} signed hex:{secret}\n"))
        .collect();
    std::fs::write(&keys, lines)?;
    let mut perms = std::fs::metadata(&keys)?.permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
    std::fs::set_permissions(&keys, perms)?;
    let f = Faild::start(
        &signed_dir,
        Some("* public RO\n* signed RO\n* bench RW\n"),
        &["-k", &keys.display().to_string()],
    )?;
    let key = |i: u64| Key::new(&format!("bench{i}"), Some("signed"), &[0x5a; 32]);
    let mut conn = Conn::open(f.socket())?;
    conn.call("FAIL/1 0 bench SET svc42 UP backup42\n")?;
    let clients = AtomicU64::new(0);
    let signed = measure(f.pid(), args.clients, args.seconds.min(1.0), |stop, n| {
        let i = clients.fetch_add(1, Ordering::Relaxed);
        let mut signer = Signer::new(key(i).map_err(anyhow::Error::msg)?, [i as u8; 16]);
        signed_udp_client(f.socket(), &mut signer, stop, n)
    })?;

    // The client's side, alone: sign a GET, open a sealed 1-item reply.
    let reply = "FAIL/1 1 OK 1\nsvc42 UP backup42 2026-01-01T00:00:00.000Z 1\n";
    let mut signer = Signer::new(key(0).map_err(anyhow::Error::msg)?, [0xee; 16]);
    let rounds = 100_000;
    let t = Instant::now();
    for _ in 0..rounds {
        let (line, seal) = signer.sign(unix_now(), "FAIL/1 1 signed GET svc42\n");
        let sealed = seal.seal_reply(reply);
        std::hint::black_box((&line, seal.open_reply(&sealed).is_ok()));
    }
    let client_us = t.elapsed().as_secs_f64() / f64::from(rounds) * 1e6;

    println!();
    println!(
        "| GET over UDP ({} clients)      | requests/s | server CPU µs/request |",
        args.clients
    );
    println!("|-------------------------------|-----------:|----------------------:|");
    for (name, m) in [("unsigned", unsigned), ("signed (HMAC-SHA256)", &signed)] {
        println!("| {name:<29} | {:>10.0} | {:>21.1} |", m.rate, m.cpu_us);
    }
    println!(
        "signed / unsigned: {:.2} of the throughput, {:+.1} µs of faild CPU per request; \
         client: {client_us:.1} µs to sign a request, seal and open its reply (in process)",
        signed.rate / unsigned.rate,
        signed.cpu_us - unsigned.cpu_us
    );
    Ok(())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A closed-loop UDP client that signs every GET afresh and counts only
/// replies whose seal opens.
fn signed_udp_client(
    addr: SocketAddr,
    signer: &mut Signer,
    stop: &AtomicBool,
    done: &AtomicU64,
) -> Result<()> {
    let s = UdpSocket::bind("127.0.0.1:0")?;
    s.connect(addr)?;
    s.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        let (line, seal) = signer.sign(unix_now(), "FAIL/1 1 signed GET svc42\n");
        s.send(line.as_bytes())?;
        if let Ok(n) = s.recv(&mut buf) {
            let text = std::str::from_utf8(&buf[..n]).unwrap_or("");
            match seal.open_reply(text) {
                Ok(plain) if plain.contains(" OK 1") => {
                    done.fetch_add(1, Ordering::Relaxed);
                }
                other => bail!("signed GET: {other:?}: {text:?}"),
            }
        }
    }
    Ok(())
}

fn udp_client(addr: SocketAddr, req: &str, stop: &AtomicBool, done: &AtomicU64) -> Result<()> {
    let s = UdpSocket::bind("127.0.0.1:0")?;
    s.connect(addr)?;
    s.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        s.send(req.as_bytes())?;
        if s.recv(&mut buf).is_ok() {
            done.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}

fn tcp_client(addr: SocketAddr, req: &str, stop: &AtomicBool, done: &AtomicU64) -> Result<()> {
    let mut c = Conn::open(addr)?;
    while !stop.load(Ordering::Relaxed) {
        c.call(req)?;
        done.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

struct Latency {
    median: f64,
    p95: f64,
    max: f64,
}

/// Times `n` SETs that each change the state, so each one is written.
fn set_latency(conn: &mut Conn, service: &str, n: usize) -> Result<Latency> {
    let mut ms: Vec<f64> = (0..n)
        .map(|i| {
            let state = if i % 2 == 0 { "RECOVER" } else { "UP" };
            let t = Instant::now();
            conn.call(&format!("FAIL/1 {i} bench SET {service} {state}\n"))?;
            Ok(t.elapsed().as_secs_f64() * 1e3)
        })
        .collect::<Result<_>>()?;
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    Ok(Latency {
        median: at(0.5),
        p95: at(0.95),
        max: at(1.0),
    })
}

fn write_large_state(path: &std::path::Path, n: usize) -> Result<()> {
    let now = SystemTime::now();
    let records: BTreeMap<String, Record> = (0..n)
        .map(|i| {
            let r = Record::new(State::ALL[i % 3], Some(format!("backup{}", i % 7)), now, 1);
            (format!("svc{i}"), r)
        })
        .collect();
    let registry = Registry::from_parts(records, BTreeMap::new());
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").context("boot id")?;
    std::fs::write(
        path,
        failover::statefile::render(&registry, None, boot.trim(), now),
    )?;
    Ok(())
}

/// The comparison: a UDP echo server, as simple as a server can be.
fn echo_server(addr: SocketAddr) -> Result<()> {
    let s = UdpSocket::bind(addr)?;
    let mut buf = [0u8; 65_536];
    loop {
        let (n, from) = s.recv_from(&mut buf)?;
        s.send_to(&buf[..n], from)?;
    }
}

/// The echo server, run as a child process so its CPU time can be read
/// from /proc just like faild's.
struct EchoServer(Child);

impl EchoServer {
    fn start(addr: SocketAddr) -> Result<EchoServer> {
        let child = Command::new(std::env::current_exe()?)
            .args(["--echo-server", &addr.to_string()])
            .stdin(Stdio::null())
            .spawn()?;
        let probe = UdpSocket::bind("127.0.0.1:0")?;
        probe.connect(addr)?;
        probe.set_read_timeout(Some(Duration::from_millis(20)))?;
        wait_for("the echo server", Duration::from_secs(10), || {
            let mut b = [0u8; 8];
            probe.send(b"ping").is_ok() && probe.recv(&mut b).is_ok()
        })?;
        Ok(EchoServer(child))
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop();
    }
}
