//! failoverbench: how fast failover happens, and what watching costs.
//!
//! - Failover: two hosts on 127.0.0.2/127.0.0.3 (the toy service of the
//!   end-to-end tests); the master is killed with SIGKILL (failsh, faild and
//!   the service process) and the time until the slave's start hook has
//!   finished is measured; then the master reboots and takes the service
//!   back (failback, from its faild's start to its start hook's end).
//! - Frozen master: its faild and failsh are stopped (SIGSTOP) until the
//!   slave has started; then resumed (SIGCONT): the slave stands down and
//!   the master, whose service never stopped, reclaims it (failback, from
//!   the SIGCONT to the reclaim hook's end).
//! - False failovers: the cluster left alone at a short interval while a
//!   CPU hog saturates every core; any start on the slave (or stop on the
//!   master) is a false failover.
//! - Watching: one failsh watching N services on 2 peers at interval 1 s,
//!   its CPU use and RSS.
//!
//! Run: `cargo run --release -p failover-tests --bin failoverbench`.
//! Everything runs on 127.0.0.0/8 and stops by itself.

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use failover_tests::cluster::{
    Host, PAIR, Timing, ToyServices, boot_cluster, event_time, events, now,
};
use failover_tests::procstat::{cpu_seconds, rss_kib};
use failover_tests::{Faild, Failsh, read_reply, send_signal, wait_for};

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
    /// Seconds of the false-failover run under a CPU hog (0 skips it).
    #[arg(long, default_value_t = 600.0)]
    hog_seconds: f64,
    /// Interval of the false-failover run, in seconds.
    #[arg(long, default_value_t = 0.1)]
    hog_interval: f64,
}

/// How the master is taken away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// SIGKILL of faild, failsh and the service; then a reboot.
    Kill,
    /// SIGSTOP of faild and failsh; then SIGCONT.
    Freeze,
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
        for fault in [Fault::Kill, Fault::Freeze] {
            let (over, back) = failovers(timing, args.trials, fault)?;
            let aim = timing.timeout + interval + 0.1;
            let rows = match fault {
                Fault::Kill => [
                    ("failover (SIGKILL of the master)", &over),
                    ("failback (master reboots)", &back),
                ],
                Fault::Freeze => [
                    ("failover (master frozen)", &over),
                    ("failback (master resumes, reclaims)", &back),
                ],
            };
            for (what, v) in rows {
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
    }
    if args.hog_seconds > 0.0 {
        false_failovers(args.hog_interval, args.hog_seconds)?;
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

fn failovers(timing: Timing, trials: usize, fault: Fault) -> Result<(Vec<f64>, Vec<f64>)> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let _services = ToyServices(dir.to_path_buf());
    std::fs::write(dir.join("journal"), "")?;
    let [mut master, slave]: [Host; 2] = boot_cluster(&PAIR, dir, "boot-0", timing)?
        .try_into()
        .ok()
        .context("two hosts")?;
    let limit = Duration::from_secs_f64(30.0 + 10.0 * timing.timeout);
    let wait_event = |host: &str, event: &str, n: usize| {
        wait_for(&format!("{host} {event} #{n}"), limit, || {
            events(dir, host, event) >= n
        })
        .with_context(|| format!("journal:\n{}", failover_tests::read(&dir.join("journal"))))
    };
    wait_event("lukretia", "started", 1)?;
    let (mut over, mut back) = (Vec::new(), Vec::new());
    for trial in 1..=trials {
        // Fail at a different phase of the slave's polling cycle each time,
        // so the figures cover the whole range, not one lucky moment.
        let phase = (trial as f64 * 0.618_034).fract();
        std::thread::sleep(Duration::from_secs_f64(phase * timing.interval));
        let gone = match fault {
            Fault::Kill => master.crash(dir)?,
            Fault::Freeze => {
                let at = now();
                send_signal(master.failsh.pid(), "STOP");
                send_signal(master.faild.pid(), "STOP");
                at
            }
        };
        wait_event("macbeth", "started", trial)?;
        over.push(event_time(dir, "macbeth", "started", trial).context("journal")? - gone);
        let returned = now();
        match fault {
            Fault::Kill => {
                master.reboot(&format!("boot-{trial}"))?;
                wait_event("lukretia", "started", trial + 1)?;
                back.push(
                    event_time(dir, "lukretia", "started", trial + 1).context("journal")?
                        - returned,
                );
            }
            Fault::Freeze => {
                send_signal(master.faild.pid(), "CONT");
                send_signal(master.failsh.pid(), "CONT");
                wait_event("lukretia", "reclaim", trial)?;
                back.push(
                    event_time(dir, "lukretia", "reclaim", trial).context("journal")? - returned,
                );
            }
        }
        wait_for("the slave to stand down", limit, || {
            slave.state() == "RECOVER"
        })?;
        eprint!(".");
    }
    eprintln!();
    Ok((over, back))
}

/// The cluster left alone at `interval` for `seconds` while a CPU hog
/// keeps every core busy: counts the slave's starts and the master's stops.
fn false_failovers(interval: f64, seconds: f64) -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let _services = ToyServices(dir.to_path_buf());
    std::fs::write(dir.join("journal"), "")?;
    let timing = Timing {
        interval,
        timeout: 3.0 * interval,
    };
    let hosts = boot_cluster(&PAIR, dir, "boot-0", timing)?;
    wait_for("the master to start", Duration::from_secs(60), || {
        events(dir, "lukretia", "started") >= 1
    })?;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let stop = Arc::new(AtomicBool::new(false));
    let hogs: Vec<_> = (0..cores)
        .map(|_| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                }
            })
        })
        .collect();
    let t0 = Instant::now();
    let (cpu0, load0) = (cpu_seconds(hosts[1].failsh.pid())?, now());
    std::thread::sleep(Duration::from_secs_f64(seconds)); // the run's length, not a wait for a condition
    let failsh_cpu = (cpu_seconds(hosts[1].failsh.pid())? - cpu0) / (now() - load0);
    stop.store(true, Ordering::Relaxed);
    for h in hogs {
        let _ = h.join();
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let slave_starts = events(dir, "macbeth", "up");
    let master_stops = events(dir, "lukretia", "down");
    let state = (hosts[0].state(), hosts[1].state());
    println!();
    println!(
        "| false failovers under a CPU hog ({cores} spinning threads) | interval | timeout | run | slave starts | master stops | slave failsh CPU | states after |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---|");
    println!(
        "| master healthy, left alone | {interval} s | {:.1} s | {elapsed:.0} s | {slave_starts} | {master_stops} | {:.1} % | {} / {} |",
        timing.timeout,
        failsh_cpu * 100.0,
        state.0,
        state.1
    );
    Ok(())
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
