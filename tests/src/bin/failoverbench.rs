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
//! - Cut link: the same two hosts, each in its own network namespace
//!   (127.30.0.1/127.30.0.2 on a bridge); the master's port on the bridge
//!   goes down while all its processes keep running, until the slave has
//!   started; then it comes back up and the master reclaims, as after a
//!   freeze. Skipped, saying why, where namespaces cannot be made (not
//!   root, no `ip`).
//! - Each failover row has an overhead row under it: failover − timeout,
//!   what failsh adds to the silence it must wait out (negative when it
//!   acts before the fault has lasted a whole timeout: the timeout counts
//!   from the master's last answer, which came before the fault).
//! - False failovers: the cluster left alone at a short interval while a
//!   CPU hog saturates every core; any start on the slave (or stop on the
//!   master) is a false failover.
//! - Watching: one failsh watching N services on 2 peers at interval 1 s,
//!   its CPU use and RSS.
//!
//! Run: `cargo run --release -p failover-tests --bin failoverbench`.
//! Everything runs on 127.0.0.0/8 or in namespaces it makes, and stops by
//! itself.

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use failover_tests::cluster::{
    Host, PAIR, Timing, ToyServices, boot_cluster, event_time, events, now,
};
use failover_tests::lab_cluster::{LAB_PAIR, LabHost, boot_lab_cluster};
use failover_tests::netns::{Lab, LabError};
use failover_tests::procstat::{cpu_seconds, rss_kib};
use failover_tests::{Faild, Failsh, read_reply, send_signal, wait_for};

#[derive(Parser)]
#[command(about = "Measure failover and failback times and failsh's cost, and print tables")]
struct Args {
    /// Failovers per interval and fault.
    #[arg(long, default_value_t = 20)]
    trials: usize,
    /// Intervals to measure, in seconds.
    #[arg(long, value_delimiter = ',', default_value = "1,0.1")]
    intervals: Vec<f64>,
    /// Timeout of the failover rows, in intervals (failsh needs at least 1).
    #[arg(long, default_value_t = 3.0, value_parser = timeout_factor)]
    timeout_factor: f64,
    /// Faults to measure, in this order.
    #[arg(long, value_delimiter = ',', default_value = "kill,freeze,cut")]
    faults: Vec<Fault>,
    /// Services watched in the cost measurement (0 skips it).
    #[arg(long, default_value_t = 1000)]
    services: usize,
    /// Seconds the cost is measured over.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// Seconds of the false-failover run under a CPU hog (0 skips it).
    #[arg(long, default_value_t = 600.0)]
    hog_seconds: f64,
    /// Interval of the false-failover run, in seconds (timeout 3 intervals).
    #[arg(long, default_value_t = 0.1)]
    hog_interval: f64,
}

fn timeout_factor(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if f >= 1.0 && f.is_finite() => Ok(f),
        Ok(_) => {
            Err("must be at least 1 (failsh refuses a timeout shorter than the interval)".into())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// How the master is taken away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Fault {
    /// SIGKILL of faild, failsh and the service; then a reboot.
    Kill,
    /// SIGSTOP of faild and failsh; then SIGCONT.
    Freeze,
    /// The master's cable cut (network namespaces); then plugged back in.
    Cut,
}

impl Fault {
    /// What the failover and the failback rows say.
    fn rows(self) -> [&'static str; 2] {
        match self {
            Fault::Kill => [
                "failover (SIGKILL of the master)",
                "failback (master reboots)",
            ],
            Fault::Freeze => [
                "failover (master frozen)",
                "failback (master resumes, reclaims)",
            ],
            Fault::Cut => [
                "failover (master's link cut)",
                "failback (link back, master reclaims)",
            ],
        }
    }

    /// The master's journal event that ends the failback of trial `trial`,
    /// and its number: a rebooted master starts the service again, one
    /// that kept running reclaims it.
    fn back_event(self, trial: usize) -> (&'static str, usize) {
        match self {
            Fault::Kill => ("started", trial + 1),
            Fault::Freeze | Fault::Cut => ("reclaim", trial),
        }
    }
}

/// The master's and the slave's names in the journal.
const MASTER: &str = PAIR[0].0;
const SLAVE: &str = PAIR[1].0;

fn main() -> Result<()> {
    let args = Args::parse();
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!(
        "failoverbench: {build} build, {} trials per interval and fault, timeout = {} × interval",
        args.trials,
        secs(args.timeout_factor)
    );
    println!();
    println!("| interval | timeout | what | min s | median s | p95 s | max s | aim (p95) |");
    println!("|---:|---:|---|---:|---:|---:|---:|---:|");
    for &interval in &args.intervals {
        let timing = Timing {
            interval,
            timeout: args.timeout_factor * interval,
        };
        let at = format!("| {} s | {} s |", secs(interval), secs(timing.timeout));
        for &fault in &args.faults {
            let [failover, failback] = fault.rows();
            let (over, back) = match failovers(timing, args.trials, fault)? {
                Outcome::Measured { over, back } => (over, back),
                Outcome::Skipped(why) => {
                    println!("{at} {failover}: skipped, {why} | | | | | |");
                    continue;
                }
            };
            let overhead: Vec<f64> = over.iter().map(|t| t - timing.timeout).collect();
            let rows = [
                (failover, &over, Some(timing.timeout + interval + 0.1)),
                (
                    "overhead (failover − timeout)",
                    &overhead,
                    Some(0.1 * interval + 0.05),
                ),
                (failback, &back, None),
            ];
            for (what, v, aim) in rows {
                let s = stats(v);
                let aim = aim.map_or("-".into(), |aim| {
                    let met = if s[2] <= aim { "✓" } else { "✗" };
                    format!("≤ {aim:.3} {met}")
                });
                println!(
                    "{at} {what} | {:.3} | {:.3} | {:.3} | {:.3} | {aim} |",
                    s[0], s[1], s[2], s[3]
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

/// Seconds as the tables print them: up to three decimals, no trailing
/// zeros (0.30000000000000004 is 0.3).
fn secs(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// min, median, p95, max.
fn stats(v: &[f64]) -> [f64; 4] {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    [at(0.0), at(0.5), at(0.95), at(1.0)]
}

/// The figures of one fault at one timing, or why it could not run here.
enum Outcome {
    /// Seconds from each fault to the slave's start hook's end, and from
    /// each return of the master to its start or reclaim hook's end.
    Measured {
        over: Vec<f64>,
        back: Vec<f64>,
    },
    Skipped(String),
}

/// The two hosts of a failover run, and how the fault is made and undone.
trait Pair {
    /// Takes the master away; the time it happened.
    fn fail(&mut self) -> Result<f64>;
    /// Brings the master back after trial `trial`; the time it happened.
    fn restore(&mut self, trial: usize) -> Result<f64>;
    /// The toy service's state in the slave's faild.
    fn slave_state(&self) -> String;
    /// The failsh logs, for a failure's message.
    fn logs(&self) -> String;
}

/// The hosts on loopback, for SIGKILL and SIGSTOP.
struct Loopback {
    master: Host,
    slave: Host,
    dir: PathBuf,
    fault: Fault,
}

impl Pair for Loopback {
    fn fail(&mut self) -> Result<f64> {
        match self.fault {
            Fault::Kill => self.master.crash(&self.dir),
            Fault::Freeze => {
                let at = now();
                send_signal(self.master.failsh.pid(), "STOP");
                send_signal(self.master.faild.pid(), "STOP");
                Ok(at)
            }
            Fault::Cut => bail!("a cut link needs network namespaces"),
        }
    }

    fn restore(&mut self, trial: usize) -> Result<f64> {
        let at = now();
        match self.fault {
            Fault::Kill => self.master.reboot(&format!("boot-{trial}"))?,
            Fault::Freeze => {
                send_signal(self.master.faild.pid(), "CONT");
                send_signal(self.master.failsh.pid(), "CONT");
            }
            Fault::Cut => bail!("a cut link needs network namespaces"),
        }
        Ok(at)
    }

    fn slave_state(&self) -> String {
        self.slave.state()
    }

    fn logs(&self) -> String {
        [&self.master, &self.slave]
            .iter()
            .map(|h| format!("--- {} failsh log:\n{}\n", h.name, h.failsh.log()))
            .collect()
    }
}

/// The hosts in network namespaces, for the cut link: the master's port on
/// the bridge goes down ([`Lab::set_port`]), as when its cable is pulled or
/// the switch port dies. Its eth0 stays up: the master only loses carrier,
/// its packets vanish, and its faild and failsh keep talking to each other.
/// (Taking its eth0 down instead would remove its subnet's route, and its
/// failsh would see "network unreachable" at once: an admin's act on the
/// host, not a link failure.)
struct CutLink<'a> {
    master: LabHost,
    slave: LabHost,
    lab: &'a Lab,
}

impl Pair for CutLink<'_> {
    fn fail(&mut self) -> Result<f64> {
        self.master.check_running()?;
        let at = now();
        self.lab.set_port(&self.master.net, false)?;
        Ok(at)
    }

    fn restore(&mut self, _trial: usize) -> Result<f64> {
        self.master.check_running()?;
        let at = now();
        self.lab.set_port(&self.master.net, true)?;
        Ok(at)
    }

    fn slave_state(&self) -> String {
        self.slave.state(self.lab)
    }

    fn logs(&self) -> String {
        [&self.master, &self.slave]
            .iter()
            .map(|h| format!("--- {} failsh log:\n{}\n", h.net.name, h.failsh.log()))
            .collect()
    }
}

/// Boots the two hosts for `fault` and measures `trials` failovers and
/// failbacks.
fn failovers(timing: Timing, trials: usize, fault: Fault) -> Result<Outcome> {
    // Declared before the hosts, dropped after them: their processes die
    // before the namespaces are deleted.
    let lab = match fault {
        Fault::Cut => match Lab::new("cut") {
            Ok(lab) => Some(lab),
            Err(LabError::Unavailable(why)) => {
                return Ok(Outcome::Skipped(format!(
                    "network namespaces unavailable: {why}"
                )));
            }
            Err(e) => bail!("setting up the namespaces: {e}"),
        },
        Fault::Kill | Fault::Freeze => None,
    };
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let _services = ToyServices(dir.to_path_buf());
    std::fs::write(dir.join("journal"), "")?;
    let (over, back) = match lab {
        Some(mut lab) => {
            let [master, slave]: [LabHost; 2] =
                boot_lab_cluster(&mut lab, &LAB_PAIR, dir, "boot-0", timing)?
                    .try_into()
                    .ok()
                    .context("two hosts")?;
            let mut pair = CutLink {
                master,
                slave,
                lab: &lab,
            };
            trials_on(&mut pair, dir, timing, trials, fault)?
        }
        None => {
            let [master, slave]: [Host; 2] = boot_cluster(&PAIR, dir, "boot-0", timing)?
                .try_into()
                .ok()
                .context("two hosts")?;
            let mut pair = Loopback {
                master,
                slave,
                dir: dir.to_path_buf(),
                fault,
            };
            trials_on(&mut pair, dir, timing, trials, fault)?
        }
    };
    Ok(Outcome::Measured { over, back })
}

/// The trials on a booted pair whose journal is in `dir`: failover and
/// failback times.
fn trials_on(
    pair: &mut dyn Pair,
    dir: &Path,
    timing: Timing,
    trials: usize,
    fault: Fault,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let limit = Duration::from_secs_f64(30.0 + 10.0 * timing.timeout);
    let context = |pair: &dyn Pair| {
        format!(
            "journal:\n{}{}",
            failover_tests::read(&dir.join("journal")),
            pair.logs()
        )
    };
    let wait_event = |pair: &dyn Pair, host: &str, event: &str, n: usize| {
        wait_for(&format!("{host} {event} #{n}"), limit, || {
            events(dir, host, event) >= n
        })
        .with_context(|| context(pair))?;
        event_time(dir, host, event, n).context("journal")
    };
    wait_event(pair, MASTER, "started", 1)?;
    let (mut over, mut back) = (Vec::new(), Vec::new());
    for trial in 1..=trials {
        // Fail at a different phase of the slave's polling cycle each time,
        // so the figures cover the whole range, not one lucky moment.
        let phase = (trial as f64 * 0.618_034).fract();
        std::thread::sleep(Duration::from_secs_f64(phase * timing.interval));
        let gone = pair.fail()?;
        over.push(wait_event(pair, SLAVE, "started", trial)? - gone);
        let returned = pair.restore(trial)?;
        let (event, n) = fault.back_event(trial);
        back.push(wait_event(pair, MASTER, event, n)? - returned);
        wait_for("the slave to stand down", limit, || {
            pair.slave_state() == "RECOVER"
        })
        .with_context(|| context(pair))?;
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
