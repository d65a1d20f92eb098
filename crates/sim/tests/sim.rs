//! The simulator in CI: a fixed budget of seeds must hold S1, patience,
//! availability and liveness, the nemesis must really bite, and
//! deliberately broken rules must each be caught within the budget.

use std::time::Duration;

use failover::State;
use failover::decide::{Action, Decision, PeerView, Situation, decide};
use failover_sim::{Driver, Report, run_with};

/// Seeds per cluster size in CI (about 30 s on 2 cores; `failsim
/// --seeds 100000` is the long soak).
const BUDGET: u64 = 10_000;

fn sweep(n: usize, seeds: u64, decider: failover::machine::Decider) -> (Vec<String>, Report) {
    sweep_with(n, seeds, decider, Driver::Faithful)
}

fn sweep_with(
    n: usize,
    seeds: u64,
    decider: failover::machine::Decider,
    driver: Driver,
) -> (Vec<String>, Report) {
    let mut failures = Vec::new();
    let mut total = Report::default();
    for seed in 1..=seeds {
        let r = run_with(seed, n, decider, driver, false);
        if let Some(v) = r.violations.first() {
            failures.push(format!(
                "seed {seed} ({n} hosts): {v}\n  replay: cargo run -p failover-sim --bin failsim -- --seed {seed} --hosts {n}"
            ));
        }
        for (k, v) in r.faults {
            *total.faults.entry(k).or_default() += v;
        }
        for (k, v) in r.takeovers_by {
            *total.takeovers_by.entry(k).or_default() += v;
        }
        total.overlapping += r.overlapping;
        total.reclaims += r.reclaims;
        total.takeovers += r.takeovers;
        total.failed_checks += r.failed_checks;
        total.error_answers += r.error_answers;
        total.settle_ms = total.settle_ms.max(r.settle_ms);
        total.gap_ms = total.gap_ms.max(r.gap_ms);
        total.prompt_gap_ms = total.prompt_gap_ms.max(r.prompt_gap_ms);
    }
    (failures, total)
}

/// Prints how many seeds the mutant (`label`) failed, and asserts that the
/// simulator caught `what` it does — by the named invariant, when given.
fn assert_caught(label: &str, what: &str, failures: &[String], invariant: Option<&str>) {
    println!(
        "{label} failed {} of {BUDGET} seeds; first: {:?}",
        failures.len(),
        failures.first()
    );
    let caught = match invariant {
        Some(name) => failures.iter().any(|f| f.contains(name)),
        None => !failures.is_empty(),
    };
    assert!(caught, "the simulator did not catch {what}");
}

#[test]
fn every_seed_of_the_budget_holds_safety_and_liveness() {
    for n in [2, 3, 4] {
        let (failures, total) = sweep(n, BUDGET, decide);
        println!(
            "{n} hosts, {BUDGET} seeds: faults {:?}, {} overlapping, {} reclaims, {} start hooks, {} failed checks, {} error answers, settled within {} ms, longest service gap {} ms (at the detection limit {} ms); takeovers by the faults active at the claim {:?}",
            total.faults,
            total.overlapping,
            total.reclaims,
            total.takeovers,
            total.failed_checks,
            total.error_answers,
            total.settle_ms,
            total.gap_ms,
            total.prompt_gap_ms,
            total.takeovers_by
        );
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        // A nemesis that never bites proves nothing.
        assert_eq!(
            total.faults.len(),
            failover_sim::FaultKind::ALL.len(),
            "every kind of fault injected: {:?}",
            total.faults
        );
        assert!(
            total.faults.values().all(|&c| c > BUDGET / 5),
            "{:?}",
            total.faults
        );
        assert!(total.overlapping > BUDGET, "faults overlap");
        assert!(
            total.reclaims > 0 && total.takeovers > BUDGET,
            "RECLAIM and takeovers happen"
        );
        assert!(
            total.failed_checks > BUDGET / 10,
            "broken services are found by their checks: {}",
            total.failed_checks
        );
        assert!(
            total.prompt_gap_ms > failover_sim::world::TIMEOUT,
            "takeovers at the detection limit happen and are measured: {} ms",
            total.prompt_gap_ms
        );
        assert!(
            total.error_answers > BUDGET,
            "polls are answered with errors: {}",
            total.error_answers
        );
    }
}

/// Before starting, looks only at the masters: the rule the seed spells out
/// ("before starting the service, failsh queries all the slaves") left out.
fn ignores_slaves_before_start(s: &Situation<'_>) -> Decision {
    if s.local == State::Recover {
        return decide(&Situation {
            slaves: &[],
            ..s.clone()
        });
    }
    decide(s)
}

#[test]
fn a_broken_rule_is_caught_within_the_budget() {
    let (failures, _) = sweep(2, BUDGET, ignores_slaves_before_start);
    assert_caught(
        "the broken rule",
        "a master that starts beside an UP slave",
        &failures,
        None,
    );
}

/// Never re-announces: RECLAIM ends without the reclaim hook, so a host that
/// kept the service while another announced itself leaves clients stranded
/// (the seed's hidden-state race, which the simulator checks at the end).
fn never_reclaims(s: &Situation<'_>) -> Decision {
    let d = decide(s);
    match d.action {
        Action::Reclaim => Decision {
            action: Action::Nothing,
            ..d
        },
        _ => d,
    }
}

#[test]
fn a_master_that_never_reclaims_is_caught_within_the_budget() {
    let (failures, _) = sweep(2, BUDGET, never_reclaims);
    assert_caught(
        "never reclaiming",
        "clients left with a host that does not serve",
        &failures,
        Some("hidden state"),
    );
}

/// Never turns a silent master into FAIL: the INDOUBT timeout never runs
/// out. A failover tool that never fails over — invisible to S1 and to the
/// liveness check after the faults (the master is back by then); the
/// availability invariant must catch it during the fault.
fn never_fails_over(s: &Situation<'_>) -> Decision {
    decide(&Situation {
        timeout: Duration::MAX,
        ..s.clone()
    })
}

#[test]
fn a_slave_that_never_fails_over_is_caught_within_the_budget() {
    let (failures, _) = sweep(2, BUDGET, never_fails_over);
    assert_caught(
        "never failing over",
        "a slave that never takes over from a silent master",
        &failures,
        Some("availability"),
    );
}

/// Starts on the first unanswered poll: the INDOUBT timeout ignored (in the
/// decision and in the second look after the claim, which asks the same
/// rule). S1 excuses the overlaps it causes — they begin while Loss or
/// Delay is active — so only the patience invariant can catch it.
fn impatient(s: &Situation<'_>) -> Decision {
    decide(&Situation {
        timeout: Duration::ZERO,
        ..s.clone()
    })
}

#[test]
fn a_slave_that_starts_on_the_first_unanswered_poll_is_caught_within_the_budget() {
    let (failures, _) = sweep(2, BUDGET, impatient);
    assert_caught(
        "the impatient slave",
        "a slave that starts without waiting out the timeout",
        &failures,
        Some("patience"),
    );
}

/// Takes an error answer (UNKNOWN: alive, its state hidden) for FAIL.
fn error_as_fail(s: &Situation<'_>) -> Decision {
    let fail = |peers: &[(String, PeerView)]| -> Vec<(String, PeerView)> {
        peers
            .iter()
            .map(|(n, v)| {
                let v = if *v == PeerView::Unknown {
                    PeerView::Fail
                } else {
                    *v
                };
                (n.clone(), v)
            })
            .collect()
    };
    let (masters, slaves) = (fail(s.masters), fail(s.slaves));
    decide(&Situation {
        masters: &masters,
        slaves: &slaves,
        ..s.clone()
    })
}

#[test]
fn an_error_answer_taken_as_fail_is_caught_within_the_budget() {
    let (failures, _) = sweep(2, BUDGET, error_as_fail);
    assert_caught(
        "taking errors for FAIL",
        "a host that starts beside a peer answering with errors",
        &failures,
        Some("unknown"),
    );
}

/// Ignores a slave's UP: an UP slave counts as RECOVER, so a running
/// master never enters RECLAIM and a RECOVER master starts beside it.
fn ignores_slave_up(s: &Situation<'_>) -> Decision {
    let slaves: Vec<(String, PeerView)> = s
        .slaves
        .iter()
        .map(|(n, v)| {
            let v = if *v == PeerView::Up {
                PeerView::Recover
            } else {
                *v
            };
            (n.clone(), v)
        })
        .collect();
    decide(&Situation {
        slaves: &slaves,
        ..s.clone()
    })
}

#[test]
fn a_slave_up_ignored_is_caught_within_the_budget() {
    let (failures, _) = sweep(2, BUDGET, ignores_slave_up);
    assert_caught(
        "ignoring a slave's UP",
        "a master that ignores its slave's UP",
        &failures,
        None,
    );
}

#[test]
fn a_claim_without_the_second_look_is_caught_within_the_budget() {
    let (failures, _) = sweep_with(2, BUDGET, decide, Driver::NoSecondLook);
    assert_caught(
        "skipping the second look",
        "a claim that starts without a last look at the peers",
        &failures,
        None,
    );
}

#[test]
fn a_failed_stop_taken_as_stopped_is_caught_within_the_budget() {
    let (failures, _) = sweep_with(2, BUDGET, decide, Driver::StopFailureAsSuccess);
    assert_caught(
        "taking a failed stop for a stop",
        "a service released while its stop had failed",
        &failures,
        None,
    );
}

#[test]
fn a_refused_claim_taken_as_landed_is_caught_within_the_budget() {
    let (failures, _) = sweep_with(2, BUDGET, decide, Driver::ClaimRefusalAsSuccess);
    assert_caught(
        "taking a refused claim as landed",
        "a service started without its claim",
        &failures,
        None,
    );
}

#[test]
fn deciding_at_the_next_tick_instead_of_the_expiry_is_caught_within_the_budget() {
    let (failures, _) = sweep_with(2, BUDGET, decide, Driver::NoExpiryPoll);
    assert_caught(
        "no deciding poll at the expiry",
        "a failover that waits for the next tick after the timeout",
        &failures,
        Some("detection limit"),
    );
}
