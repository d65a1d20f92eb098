//! A typo never becomes a split brain (issue 9, item 4): a slave whose
//! config misspells its master's name must not take the service over while
//! the master runs it, however long it waits; `failsh -t` refuses the typo;
//! a reload that fixes it brings failover back.

use std::time::{Duration, Instant};

use failover_tests::cluster::{Timing, boot_cluster, toy_config};
use failover_tests::{bin, send_signal, stderr, unique_addr, wait_for};

const BOUND: Duration = Duration::from_secs(30);
const TIMING: Timing = Timing {
    interval: 0.2,
    timeout: 0.6,
};

#[test]
fn a_misspelt_master_never_lets_the_slave_start() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("journal"), "").unwrap();
    let (master_addr, slave_addr) = (unique_addr().to_string(), unique_addr().to_string());
    let pair = [
        ("lukretia", master_addr.as_str()),
        ("macbeth", slave_addr.as_str()),
    ];
    let mut hosts = boot_cluster(&pair, dir, "boot-1", TIMING).unwrap();
    hosts[0]
        .wait_state("UP", "the master starts the service", BOUND)
        .unwrap();

    // The slave's config as a new admin wrote it: failhost spells the master
    // right, the masters list does not.
    let cfg = dir.join("macbeth/macbeth.lua");
    let good = toy_config(
        "macbeth",
        hosts[1].addr,
        &[("lukretia", hosts[0].addr)],
        &[],
        dir,
        TIMING,
    );
    let typo = good.replace(
        "masters = { \"lukretia\" }",
        "masters = { \"lukertia.invalid\" }",
    );
    assert_ne!(typo, good);
    std::fs::write(&cfg, &typo).unwrap();
    // (A table-style failsvc{...} is one call: its first line.)
    let line = typo
        .lines()
        .position(|l| l.contains("failsvc{"))
        .map(|i| i + 1)
        .unwrap();

    // `failsh -t` refuses it, naming the line; it warns about the unused
    // right spelling.
    let o = std::process::Command::new(bin("failsh"))
        .args(["-t", "-f"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let at = format!(
        "{}:{line}: host \"lukertia.invalid\" does not resolve",
        cfg.display()
    );
    assert!(stderr(&o).contains(&at), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("failhost \"lukretia\": no service has this host"),
        "{}",
        stderr(&o)
    );

    // failsh runs it anyway (it is started with it): the slave never starts.
    let slave = &mut hosts[1];
    slave.failsh.kill9();
    slave.failsh.restart().unwrap();
    let watch = Duration::from_secs_f64(5.0 * TIMING.timeout);
    let started = Instant::now();
    let mut polls = 0;
    while started.elapsed() < watch {
        assert_eq!(
            slave.state(),
            "RECOVER",
            "the slave took over from a master it cannot name\n{}",
            slave.failsh.log()
        );
        polls += 1;
        std::thread::sleep(Duration::from_millis(50)); // paces the polls
    }
    println!(
        "slave stayed RECOVER for {:.1} s ({polls} polls, 5 × the {} s timeout)",
        started.elapsed().as_secs_f64(),
        TIMING.timeout
    );
    let log = slave.failsh.log();
    assert!(log.contains("CONFIG ERROR") && log.contains(&at), "{log}");
    let snapshot = slave.failsh.snapshot();
    assert!(
        snapshot.contains("peers=[lukertia.invalid=UNRESOLVED]"),
        "{snapshot}"
    );
    assert!(snapshot.contains("does not resolve"), "{snapshot}");

    // A reload with the name fixed: failover works again.
    std::fs::write(&cfg, &good).unwrap();
    send_signal(slave.failsh.pid(), "HUP");
    wait_for("the reload", BOUND, || {
        slave.failsh.snapshot().contains("peers=[lukretia=UP]")
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", slave.failsh.log()));
    let dir = dir.to_path_buf();
    hosts[0].crash(&dir).unwrap();
    hosts[1]
        .wait_state("UP", "the slave takes over once the master is gone", BOUND)
        .unwrap();
}
