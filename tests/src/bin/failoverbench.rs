//! failoverbench: how fast failover happens, and what watching costs.
//!
//! - Failover: two hosts on 127.0.0.2/127.0.0.3 (the toy service of the
//!   end-to-end tests); the master is killed with SIGKILL (failsh, faild and
//!   the service process) and the time until the slave's start hook has
//!   finished is measured; then the master reboots and takes the service
//!   back (failback, from its faild's start to its start hook's end).
//! - Watching: one failsh watching N services on 2 peers at interval 1 s,
//!   its CPU use and RSS.
//!
//! Run: `cargo run --release -p failover-tests --bin failoverbench`.
//! Everything runs on 127.0.0.0/8 and stops by itself.

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use failover_tests::cluster::{Host, Timing, ToyServices, event_time, events, now};
use failover_tests::procstat::{cpu_seconds, rss_kib};
use failover_tests::{Faild, Failsh, read_reply, wait_for};

#[derive(Parser)]
#[command(about = "Measure failover and failback times and failsh's cost, and print tables")]
struct Args {
    /// Failovers per interval.
    #[arg(long, default_value_t = 20)]
    trials: usize,
    /// Intervals to measure, in seconds (timeout = 3 x interval).
    #[arg(long, value_delimiter = ',', default_value = "1,0.1")]
    intervals: Vec<f64>,
    /// Services watched in the cost measurement (0 skips it).
    #[arg(long, default_value_t = 1000)]
    services: usize,
    /// Seconds the cost is measured over.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!(
        "failoverbench: {build} build, {} trials per interval",
        args.trials
    );
    println!();
    println!("| interval | timeout | what | min s | median s | p95 s | max s | aim (p95) |");
    println!("|---:|---:|---|---:|---:|---:|---:|---:|");
    for &interval in &args.intervals {
        let timing = Timing {
            interval,
            timeout: 3.0 * interval,
        };
        let (over, back) = failovers(timing, args.trials)?;
        let aim = timing.timeout + interval + 0.1;
        for (what, v) in [
            ("failover (SIGKILL of the master)", &over),
            ("failback (master reboots)", &back),
        ] {
            let s = stats(v);
            let aim = if what.starts_with("failover") {
                format!("≤ {aim:.2}")
            } else {
                "-".into()
            };
            println!(
                "| {interval} s | {:.1} s | {what} | {:.3} | {:.3} | {:.3} | {:.3} | {aim} |",
                timing.timeout, s[0], s[1], s[2], s[3]
            );
        }
    }
    if args.services > 0 {
        watching(args.services, args.seconds)?;
    }
    Ok(())
}

/// min, median, p95, max.
fn stats(v: &[f64]) -> [f64; 4] {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    [at(0.0), at(0.5), at(0.95), at(1.0)]
}

fn failovers(timing: Timing, trials: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let _services = ToyServices(dir.to_path_buf());
    std::fs::write(dir.join("journal"), "")?;
    let mut master = Host::boot(
        "lukretia",
        "127.0.0.2",
        ("macbeth", "127.0.0.3"),
        true,
        dir,
        "boot-0",
        timing,
    )?;
    let slave = Host::boot(
        "macbeth",
        "127.0.0.3",
        ("lukretia", "127.0.0.2"),
        false,
        dir,
        "boot-0",
        timing,
    )?;
    let limit = Duration::from_secs_f64(30.0 + 10.0 * timing.timeout);
    let wait_event = |host: &str, n: usize| {
        wait_for(&format!("{host} started #{n}"), limit, || {
            events(dir, host, "started") >= n
        })
        .with_context(|| format!("journal:\n{}", failover_tests::read(&dir.join("journal"))))
    };
    wait_event("lukretia", 1)?;
    let (mut over, mut back) = (Vec::new(), Vec::new());
    for trial in 1..=trials {
        // Crash at a different phase of the slave's polling cycle each time,
        // so the figures cover the whole range, not one lucky moment.
        let phase = (trial as f64 * 0.618_034).fract();
        std::thread::sleep(Duration::from_secs_f64(phase * timing.interval));
        let killed = master.crash(dir)?;
        wait_event("macbeth", trial)?;
        over.push(event_time(dir, "macbeth", "started", trial).context("journal")? - killed);
        let rebooted = now();
        master.reboot(&format!("boot-{trial}"))?;
        wait_event("lukretia", trial + 1)?;
        back.push(event_time(dir, "lukretia", "started", trial + 1).context("journal")? - rebooted);
        if slave.state() == "UP" {
            bail!("trial {trial}: the slave still UP after the master took over");
        }
        eprint!(".");
    }
    eprintln!();
    Ok((over, back))
}

/// One failsh watching `n` services: its peers are two failds, one holding
/// them all UP (the master), one RECOVER (the slave); locally RECOVER.
fn watching(n: usize, seconds: f64) -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let rules = "* public RO\n* genesis RW 127.0.0.0/8\n";
    let mut failds = Vec::new();
    for (i, (addr, state)) in [
        ("127.0.0.4", "RECOVER"),
        ("127.0.0.5", "UP"),
        ("127.0.0.6", "RECOVER"),
    ]
    .into_iter()
    .enumerate()
    {
        let d = dir.join(format!("host{i}"));
        std::fs::create_dir_all(&d)?;
        let f = Faild::start_at(addr.parse()?, &d, Some(rules), &[])?;
        let mut conn = BufReader::new(TcpStream::connect(f.socket())?);
        for s in 0..n {
            conn.get_mut()
                .write_all(format!("FAIL/1 {s} genesis SET svc{s} {state}\n").as_bytes())?;
            read_reply(&mut conn)?;
        }
        failds.push(f);
    }
    let cfg = dir.join("watch.lua");
    std::fs::write(
        &cfg,
        format!(
            r#"
failhost("localhost", "address", "127.0.0.4")
failhost("localhost", "community", "genesis")
failhost("master", "address", "127.0.0.5")
failhost("slave", "address", "127.0.0.6")
for i = 0, {last} do
    failsvc{{ name = "svc" .. i, interval = 1, masters = {{ "master" }}, slaves = {{ "slave" }},
              start = function() return "UP" end, stop = function() return "RECOVER" end }}
end
"#,
            last = n - 1
        ),
    )?;
    let mut failsh = Failsh::new(&cfg, "127.0.0.4".parse()?, 1848);
    failsh.restart()?;
    let seeing = |f: &Failsh| {
        f.snapshot()
            .lines()
            .filter(|l| l.contains("master=UP"))
            .count()
    };
    wait_for(
        "every service to see its master",
        Duration::from_secs(60),
        || seeing(&failsh) == n,
    )?;
    let pid = failsh.pid();
    let (t0, cpu0) = (Instant::now(), cpu_seconds(pid)?);
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let cpu = (cpu_seconds(pid)? - cpu0) / t0.elapsed().as_secs_f64();
    let rss = rss_kib(pid)?;
    let polled = seeing(&failsh);
    println!();
    println!(
        "| failsh watching | interval | CPU (% of one core) | RSS MiB | services seeing the master UP |"
    );
    println!("|---:|---:|---:|---:|---:|");
    println!(
        "| {n} services on 2 peers | 1 s | {:.1} % | {:.1} | {polled} |",
        cpu * 100.0,
        rss as f64 / 1024.0
    );
    if polled != n {
        bail!("only {polled} of {n} services saw their master");
    }
    Ok(())
}
