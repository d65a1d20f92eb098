//! failsim: runs the deterministic simulator over many seeds and prints a
//! report; a failing seed prints its trace and the command that replays it.

use std::collections::BTreeMap;
use std::time::Instant;

use clap::Parser;
use failover::decide::decide;
use failover_sim::run;

#[derive(Parser)]
#[command(
    about = "Simulate failover clusters under seeded faults and check the safety and liveness invariants"
)]
struct Args {
    /// Seeds per topology.
    #[arg(long, default_value_t = 1000)]
    seeds: u64,
    /// First seed.
    #[arg(long, default_value_t = 1)]
    from: u64,
    /// Cluster sizes to simulate (hosts in preference order).
    #[arg(long, value_delimiter = ',', default_value = "2,3,4")]
    hosts: Vec<usize>,
    /// Replay one seed with its trace (with one --hosts value).
    #[arg(long)]
    seed: Option<u64>,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if let Some(seed) = args.seed {
        let n = args.hosts[0];
        let report = run(seed, n, decide, true);
        for line in &report.trace {
            println!("{line}");
        }
        for v in &report.violations {
            println!("VIOLATION {v}");
        }
        return if report.violations.is_empty() {
            0.into()
        } else {
            1.into()
        };
    }
    let started = Instant::now();
    let mut failed = 0;
    for &n in &args.hosts {
        let mut faults: BTreeMap<String, u64> = BTreeMap::new();
        let (mut overlapping, mut reclaims, mut takeovers, mut events, mut settle, mut checks) =
            (0, 0, 0, 0, 0, 0);
        let (mut gap, mut prompt, mut errors) = (0, 0, 0);
        let mut takeovers_by: BTreeMap<String, u64> = BTreeMap::new();
        for seed in args.from..args.from + args.seeds {
            let r = run(seed, n, decide, false);
            for (k, v) in &r.faults {
                *faults.entry(k.clone()).or_default() += v;
            }
            overlapping += r.overlapping;
            reclaims += r.reclaims;
            takeovers += r.takeovers;
            checks += r.failed_checks;
            events += r.events;
            settle = settle.max(r.settle_ms);
            gap = gap.max(r.gap_ms);
            prompt = prompt.max(r.prompt_gap_ms);
            errors += r.error_answers;
            for (k, v) in &r.takeovers_by {
                *takeovers_by.entry(k.clone()).or_default() += v;
            }
            if !r.violations.is_empty() {
                failed += 1;
                println!("seed {seed}, {n} hosts: {}", r.violations.join("; "));
                println!(
                    "  replay: cargo run -p failover-sim --bin failsim -- --seed {seed} --hosts {n}"
                );
            }
        }
        println!(
            "{n} hosts: {} seeds, {events} events; faults {faults:?}, {overlapping} overlapping; {reclaims} reclaims, {takeovers} start hooks, {checks} failed checks, {errors} error answers; settled at most {settle} ms after the last fault; longest service gap {gap} ms (U = {} ms), {prompt} ms at the detection limit (P = {} ms); takeovers by the faults active at the claim {takeovers_by:?}",
            args.seeds,
            failover_sim::world::U,
            failover_sim::world::P
        );
    }
    println!(
        "{failed} failing seeds; {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if failed == 0 { 0.into() } else { 1.into() }
}
