//! The seed story with real processes: two hosts on 127.0.0.2 (lukretia, the
//! master) and 127.0.0.3 (macbeth, the slave), each with its own faild and
//! failsh, and a toy service whose hooks start and stop a real process and
//! write a journal. The journal must never show both hosts up at once,
//! except in the split brain the test injects (which must end in RECLAIM).

use std::time::{Duration, Instant};

use failover_tests::cluster::{
    Host, PAIR, Timing, ToyServices, boot_cluster, events, hook_script, now,
};
use failover_tests::{journal, overlaps, read, send_signal, stderr, wait_for};

/// Generous: the bounds are for a loaded 2-core machine, not figures.
const BOUND: Duration = Duration::from_secs(30);
const TIMING: Timing = Timing {
    interval: 0.5,
    timeout: 1.5,
};

#[test]
fn the_seed_story_on_two_loopback_hosts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let _services = ToyServices(dir.to_path_buf());
    std::fs::write(dir.join("journal"), "").unwrap();
    let [mut lukretia, macbeth]: [Host; 2] = boot_cluster(&PAIR, dir, "boot-1", TIMING)
        .unwrap()
        .try_into()
        .ok()
        .unwrap();
    let wait = |h: &Host, want: &str, why: &str| {
        h.wait_state(want, why, BOUND)
            .unwrap_or_else(|e| panic!("{e:#}"))
    };
    let wait_event = |host: &str, event: &str, n: usize| {
        wait_for(&format!("{host} {event} #{n}"), BOUND, || {
            events(dir, host, event) >= n
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", read(&dir.join("journal"))));
    };

    // 1. The master comes up; the slave stays RECOVER. (UP is claimed before
    //    the start hook runs: wait for the hook too.)
    wait(&lukretia, "UP", "the master starts");
    wait_event("lukretia", "started", 1);
    assert_eq!(macbeth.state(), "RECOVER");

    // 2. The master host crashes: the slave takes over.
    let killed = lukretia.crash(dir).unwrap();
    wait_event("macbeth", "started", 1);
    println!(
        "failover after SIGKILL of the master: {:.2} s (interval 0.5 s, timeout 1.5 s)",
        failover_tests::cluster::event_time(dir, "macbeth", "started", 1).unwrap() - killed
    );
    assert_eq!(macbeth.state(), "UP");

    // 3. The master reboots and registers RECOVER: the slave stands down,
    //    then the master starts.
    lukretia.reboot("boot-2").unwrap();
    wait(
        &macbeth,
        "RECOVER",
        "the slave stands down for the returning master",
    );
    wait(&lukretia, "UP", "the master takes the service back");
    wait_event("lukretia", "started", 2);
    assert_eq!(events(dir, "macbeth", "down"), 1);

    // 4. Split brain: the slave's failsh frozen, the service started there by
    //    hand and reported with failc, until the master has seen it.
    send_signal(macbeth.failsh.pid(), "STOP");
    let split = now();
    let by_hand = std::process::Command::new(hook_script())
        .args(["macbeth", &dir.display().to_string(), "up"])
        .status()
        .unwrap();
    assert!(by_hand.success());
    let o = macbeth.faild.failc(&["-c", "genesis", "-s", "UP", "toy"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    wait_for("the master to enter RECLAIM", BOUND, || {
        lukretia.failsh.snapshot().contains("reclaim=yes")
    })
    .unwrap();
    send_signal(macbeth.failsh.pid(), "CONT");
    let resumed = Instant::now();
    wait(&macbeth, "RECOVER", "the insane slave stands down");
    wait_event("lukretia", "reclaim", 1);
    println!(
        "split brain resolved {:.2} s after the slave's failsh resumed",
        resumed.elapsed().as_secs_f64()
    );
    assert_eq!(lukretia.state(), "UP");
    assert!(lukretia.failsh.log().contains("RECLAIM"));

    // 5. An admin takes the master out of service: failsh stops it first,
    //    then publishes FAIL; only then does the slave start.
    let o = lukretia
        .faild
        .failc(&["-c", "genesis", "-s", "FAIL", "--wait", "30", "toy"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("stop requested"), "{}", stderr(&o));
    assert_eq!(lukretia.state(), "FAIL");
    wait(
        &macbeth,
        "UP",
        "the slave takes over from the master an admin set FAIL",
    );

    // Back to normal: RECOVER on the master; the slave hands it back.
    let o = lukretia.faild.failc(&["-c", "genesis", "-sRECOVER", "toy"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    wait(&macbeth, "RECOVER", "the slave hands back");
    wait(&lukretia, "UP", "the master serves again");

    // 6. A failing check on the master hands the service to the slave.
    std::fs::write(dir.join("lukretia.sick"), "").unwrap();
    wait(&lukretia, "FAIL", "the master's check fails");
    wait(&macbeth, "UP", "the slave takes over from the sick master");

    // The journal: both up at once only in the injected split brain, which
    // ended within the bound after the slave's failsh resumed.
    let entries = journal(&dir.join("journal"));
    let text = read(&dir.join("journal"));
    let found = overlaps(&entries);
    for (from, to, hosts) in &found {
        let injected = *from >= split && to - split < BOUND.as_secs_f64();
        assert!(
            injected,
            "{hosts:?} up at once from {from:.3} to {to:.3}, outside the injected split brain\n{text}"
        );
    }
    assert_eq!(
        found.len(),
        1,
        "the split brain shows in the journal:\n{text}"
    );
}
