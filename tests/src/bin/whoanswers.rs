//! whoanswers: the service and the client of the floating-IP test
//! (tests/tests/floating_ip.rs), which runs them in network namespaces.
//!
//! - `whoanswers serve --name lukretia --port 8080` accepts TCP connections
//!   on every address of the host (so it answers on the floating address
//!   whenever that is configured here, and needs no restart when it moves)
//!   and writes the host's name, one line, to each.
//! - `whoanswers probe --to 127.30.0.100:8080 --for 150` connects again and
//!   again, with short timeouts, and prints one line per attempt:
//!   `UNIX_SECONDS NAME` for an answer, `UNIX_SECONDS - REASON` for a failure.
//!   It is what a client of the floating address sees; it stops after
//!   `--for` seconds, so a test that dies cannot leave it running for long.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Answer with a host name, or probe who answers on an address")]
struct Args {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Answer every TCP connection on PORT (all addresses) with NAME.
    Serve {
        #[arg(long)]
        name: String,
        #[arg(long)]
        port: u16,
    },
    /// Connect to ADDR:PORT repeatedly and print who answered, with the time.
    Probe {
        #[arg(long)]
        to: SocketAddr,
        /// Stop after this many seconds.
        #[arg(long = "for", default_value_t = 120.0)]
        seconds: f64,
        /// Connect time limit, in milliseconds: a SYN lost to a dead host's
        /// address costs only this much, which bounds the measured gaps'
        /// resolution.
        #[arg(long, default_value_t = 100)]
        connect_ms: u64,
        /// Time limit for the answer once connected, in milliseconds.
        #[arg(long, default_value_t = 500)]
        read_ms: u64,
        /// Pause between attempts, in milliseconds.
        #[arg(long, default_value_t = 20)]
        every_ms: u64,
    },
}

fn main() -> Result<()> {
    match Args::parse().mode {
        Mode::Serve { name, port } => serve(&name, port),
        Mode::Probe {
            to,
            seconds,
            connect_ms,
            read_ms,
            every_ms,
        } => {
            probe(
                to,
                Duration::from_secs_f64(seconds),
                Duration::from_millis(connect_ms),
                Duration::from_millis(read_ms),
                Duration::from_millis(every_ms),
            );
            Ok(())
        }
    }
}

fn serve(name: &str, port: u16) -> Result<()> {
    let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, port))
        .with_context(|| format!("binding port {port}"))?;
    // A failed accept, or a client gone mid-answer, is the client's problem.
    for mut s in listener.incoming().flatten() {
        let _ = writeln!(s, "{name}");
    }
    Ok(())
}

fn probe(to: SocketAddr, run: Duration, connect: Duration, read: Duration, pause: Duration) {
    let end = Instant::now() + run;
    let mut out = std::io::stdout().lock();
    while Instant::now() < end {
        let line = match ask(to, connect, read) {
            Ok(name) => name,
            Err(e) => format!("- {e:#}"),
        };
        let at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        // The reader (the test) gone means the probe is no longer wanted.
        if writeln!(out, "{at:.6} {line}")
            .and_then(|()| out.flush())
            .is_err()
        {
            return;
        }
        std::thread::sleep(pause);
    }
}

/// One connection: the name the server wrote.
fn ask(to: SocketAddr, connect: Duration, read: Duration) -> Result<String> {
    let s = TcpStream::connect_timeout(&to, connect).context("connect")?;
    s.set_read_timeout(Some(read))?;
    let mut name = String::new();
    BufReader::new(s).read_line(&mut name).context("read")?;
    let name = name.trim();
    anyhow::ensure!(!name.is_empty(), "closed without an answer");
    Ok(name.to_string())
}
