//! A real-process chaos run: two hosts on 127.0.0.2/127.0.0.3, or three on
//! 127.0.0.2–4 (faild + failsh each, the toy service; every host has the
//! hosts above it as masters, those below as slaves), driven by a seeded
//! nemesis for a fixed
//! number of cycles: SIGKILL of the serving host (then a reboot), SIGSTOP and
//! SIGCONT of a faild or a failsh, and an admin's FAIL then RECOVER. After
//! each cycle exactly one host must serve again within the bound; the
//! journal the hooks wrote must show two hosts up at once only in overlaps
//! that began while a process was stopped, ending soon after it resumed;
//! and each outage (no host up) that began while the serving host was dead,
//! its faild frozen or its record FAILed by an admin, with another host
//! eligible to take over, must have
//! ended within the availability bound U of docs/safety.md plus [`SLACK`].
//! The spread of the outages is printed at the end of each run.
//!
//! The short runs are part of the suite; the long ones run on demand:
//! `cargo nextest run -p failover-tests --run-ignored all chaos_long --no-capture`.

use std::time::Duration;

use failover_tests::cluster::{Host, PAIR, Timing, ToyServices, boot_cluster, now};
use failover_tests::outage::{Spread, outages};
use failover_tests::{journal, overlaps, read, send_signal, up_sets, wait_for};

const TIMING: Timing = Timing {
    interval: 0.3,
    timeout: 0.9,
};
/// Generous: a loaded 2-core machine.
const BOUND: Duration = Duration::from_secs(30);
/// An overlap may begin up to this long after a stopped process resumed
/// (a start decided before), and must end within it.
const AFTER_RESUME: f64 = 10.0;
/// Added to U for real processes on a loaded 2-core machine: U counts the
/// protocol's waits only, while here every poll round, claim and start also
/// waits for the scheduler (six daemons, the nemesis and other tests' builds
/// share two cores), the start hook is a fork and exec of a shell that runs
/// `date` before it writes its "up" line, and the crash's own "down" line is
/// written only once the killed service is gone. Generous, as a bound on a
/// shared machine must be: it catches a takeover late by more than ~2 s (a
/// slave timeout of 4 s instead of 0.9 s fails the run); smaller slips are
/// the simulator's to catch, where U holds to the millisecond.
const SLACK: f64 = 2.0;

/// A small seeded generator, so a failing run can be repeated.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

const THREE: [(&str, &str); 3] = [
    ("lukretia", "127.0.0.2"),
    ("macbeth", "127.0.0.3"),
    ("banquo", "127.0.0.4"),
];

fn chaos(seed: u64, cluster: &[(&'static str, &str)], cycles: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let _services = ToyServices(dir.to_path_buf());
    std::fs::write(dir.join("journal"), "").unwrap();
    let mut hosts = boot_cluster(cluster, dir, "b0", TIMING).unwrap();
    let n = hosts.len() as u64;
    let serving = |hosts: &[Host]| hosts.iter().position(|h| h.state() == "UP");
    let settle = |hosts: &[Host], what: &str| {
        // One record UP, and its start hook begun (the record goes UP
        // before the hook runs): a fault then strikes a serving host, and
        // the journal read at the end shows the last start.
        wait_for(&format!("one host UP after {what}"), BOUND, || {
            let up: Vec<&str> = hosts
                .iter()
                .filter(|h| h.state() == "UP")
                .map(|h| h.name)
                .collect();
            up.len() == 1
                && up_sets(&journal(&dir.join("journal")))
                    .last()
                    .is_some_and(|(_, s)| s.iter().any(|h| h == up[0]))
        })
        .unwrap_or_else(|e| panic!("seed {seed}: {e}\n{}", read(&dir.join("journal"))));
    };
    // The first fault strikes a serving host, not one still starting.
    settle(&hosts, "the boot");
    let mut rng = Lcg(seed);
    let mut stopped: Vec<(f64, f64)> = Vec::new(); // windows in which a process was stopped
    // Windows in which the serving host was dead, its faild frozen (no
    // answer for its peers) or its record FAIL, while another host was
    // eligible to take over.
    let mut masterless: Vec<(f64, f64, &str)> = Vec::new();
    let mut boots = 0;
    for cycle in 0..cycles {
        let up = serving(&hosts).unwrap_or(0);
        let successor = eligible_other(&hosts, up);
        // Every kind of fault first, then at random.
        let kind = if cycle < 4 {
            cycle as u64
        } else {
            rng.below(4)
        };
        let what = match kind {
            0 => {
                let from = hosts[up].crash(dir).unwrap();
                settle(&hosts, "a crash");
                if successor {
                    masterless.push((from, now(), "crashed"));
                }
                boots += 1;
                hosts[up].reboot(&format!("b{boots}")).unwrap();
                "crash and reboot"
            }
            k @ (1 | 2) => {
                let h = rng.below(n) as usize;
                let pid = if k == 1 {
                    hosts[h].faild.pid()
                } else {
                    hosts[h].failsh.pid()
                };
                let held = Duration::from_millis(1_000 + rng.below(1_500));
                let from = now();
                send_signal(pid, "STOP");
                std::thread::sleep(held); // the fault's own duration, not a wait for a condition
                send_signal(pid, "CONT");
                stopped.push((from, now()));
                // A frozen failsh leaves its faild answering UP: the peers
                // wait, by design (as in the simulator, that answer blocks).
                if k == 1 && h == up && successor {
                    masterless.push((from, now(), "faild frozen"));
                }
                if k == 1 {
                    "faild frozen"
                } else {
                    "failsh frozen"
                }
            }
            _ => {
                let from = now();
                let o = hosts[up]
                    .faild
                    .failc(&["-c", "genesis", "-s", "FAIL", "--wait", "20", "toy"]);
                assert_eq!(
                    o.status.code(),
                    Some(0),
                    "seed {seed}: {}",
                    failover_tests::stderr(&o)
                );
                settle(&hosts, "an admin's FAIL");
                // The record FAIL releases the peers (the simulator's rule).
                if successor {
                    masterless.push((from, now(), "failed by an admin"));
                }
                let o = hosts[up]
                    .faild
                    .failc(&["-c", "genesis", "-sRECOVER", "toy"]);
                assert_eq!(
                    o.status.code(),
                    Some(0),
                    "seed {seed}: {}",
                    failover_tests::stderr(&o)
                );
                "admin FAIL, then RECOVER"
            }
        };
        settle(&hosts, what);
        println!("seed {seed}, {n} hosts, cycle {cycle}: {what}");
    }
    let text = read(&dir.join("journal"));
    let entries = journal(&dir.join("journal"));
    check_outages(seed, n, &entries, &masterless, &text);
    let found = overlaps(&entries);
    println!(
        "seed {seed}, {n} hosts: {cycles} cycles, {} overlaps (split brains while a process was stopped)",
        found.len()
    );
    for (from, to, who) in found {
        let excused = stopped
            .iter()
            .any(|(a, b)| from >= *a && from <= b + AFTER_RESUME && to <= b + AFTER_RESUME);
        assert!(
            excused,
            "seed {seed}: {who:?} both up from {from:.3} to {to:.3}, not explained by a stopped process {stopped:?}\n{text}"
        );
    }
}

/// Whether a host other than `serving` is eligible to take over: its faild
/// answers and its record is not FAIL (the simulator's rule; its failsh runs
/// and is not frozen, as the nemesis applies one fault at a time).
fn eligible_other(hosts: &[Host], serving: usize) -> bool {
    hosts
        .iter()
        .enumerate()
        .any(|(i, h)| i != serving && !matches!(h.state().as_str(), "FAIL" | "?"))
}

/// Prints the spread of the outages and checks those that began in a
/// `masterless` window against U + [`SLACK`].
fn check_outages(
    seed: u64,
    n: u64,
    entries: &[failover_tests::Entry],
    masterless: &[(f64, f64, &str)],
    text: &str,
) {
    let bound = TIMING.availability_bound() + SLACK;
    let all = outages(entries);
    let checked: Vec<(f64, f64, &str)> = all
        .iter()
        .filter_map(|&(a, b)| {
            let (_, _, why) = masterless.iter().find(|(f, t, _)| a >= *f && a <= *t)?;
            Some((a, b, *why))
        })
        .collect();
    let spread = |d: Vec<f64>| Spread::of(&d).map_or("no outages".into(), |s| s.to_string());
    println!(
        "seed {seed}, {n} hosts: serving host dead, its faild frozen or FAILed: {} (bound U {:.1} s + slack {SLACK:.1} s); all outages: {}",
        spread(checked.iter().map(|(a, b, _)| b - a).collect()),
        TIMING.availability_bound(),
        spread(all.iter().map(|(a, b)| b - a).collect()),
    );
    for (a, b, why) in checked {
        assert!(
            b - a <= bound,
            "seed {seed}: no host up from {a:.3} to {b:.3} ({:.3} s > {bound:.1} s) while the serving host was {why}\n{text}",
            b - a
        );
    }
}

#[test]
fn chaos_short() {
    chaos(1, &PAIR, 8);
}

#[test]
fn chaos_short_three_hosts() {
    chaos(2, &THREE, 6);
}

#[test]
#[ignore = "long: run on demand"]
fn chaos_long() {
    for seed in 1..=5 {
        chaos(seed * 7919, &PAIR, 40);
    }
    for seed in 1..=3 {
        chaos(seed * 104_729, &THREE, 40);
    }
}
