//! The seed story with real processes: two hosts on 127.0.0.2 (lukretia, the
//! master) and 127.0.0.3 (macbeth, the slave), each with its own faild and
//! failsh, and a toy service whose hooks start and stop a real process and
//! write a journal. The journal must never show both hosts up at once,
//! except in the split brain the test injects (which must end in RECLAIM).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use failover_tests::{
    Entry, Faild, Failsh, failc, journal, overlaps, read, send_signal, stderr, stdout, wait_for,
};

const RULES: &str = "* public RO\n* genesis RW 127.0.0.0/8\n";
/// Generous: the bounds are for a loaded 2-core machine, not figures.
const BOUND: Duration = Duration::from_secs(30);

struct Host {
    name: &'static str,
    addr: IpAddr,
    dir: PathBuf,
    faild: Faild,
    failsh: Failsh,
}

fn config(name: &str, addr: IpAddr, peer: (&str, IpAddr), master: bool, dir: &Path) -> String {
    let hook = format!(
        "{} {name} {}",
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/toy-service.sh")
            .display(),
        dir.display()
    );
    let (role, stopped) = if master {
        ("slaves", "FAIL")
    } else {
        ("masters", "RECOVER")
    };
    format!(
        r#"
failhost("localhost", "address", "{addr}")
failhost("localhost", "community", "genesis")
failhost("{peer}", "address", "{peer_addr}")
local hook = "{hook}"
failsvc{{
    name = "toy", interval = 0.5, timeout = 1.5, hook_timeout = 10,
    {role} = {{ "{peer}" }},
    start = function() exec(hook .. " up"); return "UP" end,
    stop = function() exec(hook .. " down"); return "{stopped}" end,
    reclaim = function() exec(hook .. " reclaim"); return "UP" end,
    check = function() exec(hook .. " check"); return true end,
}}
"#,
        peer = peer.0,
        peer_addr = peer.1,
    )
}

/// Boots a host as the worked example's init scripts do: faild, the service
/// registered FAIL with its backup host, then RECOVER, then failsh.
fn boot(
    name: &'static str,
    addr: &str,
    peer: (&str, &str),
    master: bool,
    dir: &Path,
    boot_id: &str,
) -> Host {
    let addr: IpAddr = addr.parse().unwrap();
    let hdir = dir.join(name);
    std::fs::create_dir_all(&hdir).unwrap();
    let mut faild = Faild::start_at(addr, &hdir, Some(RULES), &[]).unwrap();
    faild.env.push(("FAILD_BOOT_ID".into(), boot_id.into()));
    faild.kill9();
    faild.restart().unwrap();
    for args in [vec!["-s", "FAIL", "-b", peer.0], vec!["-sRECOVER"]] {
        let o = faild.failc(&[&["-c", "genesis"], &args[..], &["toy"]].concat());
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    let cfg = hdir.join(format!("{name}.lua"));
    std::fs::write(
        &cfg,
        config(name, addr, (peer.0, peer.1.parse().unwrap()), master, dir),
    )
    .unwrap();
    let failsh = Failsh::start(&cfg, addr, 1848).unwrap();
    Host {
        name,
        addr,
        dir: hdir,
        faild,
        failsh,
    }
}

fn state(h: &Host) -> String {
    let o = failc(&["-h", &h.addr.to_string(), "-t", "1", "toy"]);
    stdout(&o)
        .split_whitespace()
        .nth(1)
        .unwrap_or("?")
        .to_string()
}

fn wait_state(h: &Host, want: &str, why: &str) -> Duration {
    let t = Instant::now();
    wait_for(&format!("{} {want}: {why}", h.name), BOUND, || {
        state(h) == want
    })
    .unwrap_or_else(|e| {
        panic!("{e}\n--- {} failsh log:\n{}", h.name, h.failsh.log());
    });
    t.elapsed()
}

fn events(dir: &Path, host: &str, event: &str) -> usize {
    journal(&dir.join("journal"))
        .iter()
        .filter(|e| e.host == host && e.event == event)
        .count()
}

/// Simulates the master host crashing: failsh, faild and the service process
/// die by SIGKILL; the journal notes the service gone once it is.
fn crash(h: &mut Host, dir: &Path) {
    h.failsh.kill9();
    h.faild.kill9();
    let pid = read(&dir.join(format!("{}.pid", h.name)));
    let pid = pid.trim();
    if !pid.is_empty() {
        let _ = std::process::Command::new("kill")
            .args(["-9", pid])
            .status();
        // Dead once gone or a zombie (its new parent may reap it later).
        wait_for("the service process to die", BOUND, || {
            read(Path::new(&format!("/proc/{pid}/stat")))
                .split(' ')
                .nth(2)
                .is_none_or(|s| s == "Z")
        })
        .unwrap();
        let _ = std::fs::remove_file(dir.join(format!("{}.pid", h.name)));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let line = format!("{} down {now:.9}\n", h.name);
    std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("journal"))
        .and_then(|mut f| {
            use std::io::Write;
            f.write_all(line.as_bytes())
        })
        .unwrap();
}

#[test]
fn the_seed_story_on_two_loopback_hosts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("journal"), "").unwrap();
    let mut lukretia = boot(
        "lukretia",
        "127.0.0.2",
        ("macbeth", "127.0.0.3"),
        true,
        dir,
        "boot-1",
    );
    let macbeth = boot(
        "macbeth",
        "127.0.0.3",
        ("lukretia", "127.0.0.2"),
        false,
        dir,
        "boot-1",
    );

    // 1. The master comes up; the slave stays RECOVER.
    wait_state(&lukretia, "UP", "the master starts");
    assert_eq!(state(&macbeth), "RECOVER");
    // (UP is claimed before the start hook runs: wait for the hook too.)
    wait_for("the master's start hook", BOUND, || {
        events(dir, "lukretia", "up") == 1
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", lukretia.failsh.log()));

    // 2. The master host crashes: the slave takes over.
    crash(&mut lukretia, dir);
    let took = wait_state(
        &macbeth,
        "UP",
        "the slave takes over after the master crashed",
    );
    println!(
        "failover after SIGKILL of the master: {:.2} s (interval 0.5 s, timeout 1.5 s)",
        took.as_secs_f64()
    );
    wait_for("the slave's start hook", BOUND, || {
        events(dir, "macbeth", "up") == 1
    })
    .unwrap();

    // 3. The master reboots (a new boot id) and registers RECOVER: the slave
    //    stands down, then the master starts.
    lukretia.faild.env = vec![("FAILD_BOOT_ID".into(), "boot-2".into())];
    lukretia.faild.restart().unwrap();
    for args in [vec!["-s", "FAIL", "-b", "macbeth"], vec!["-sRECOVER"]] {
        let o = lukretia
            .faild
            .failc(&[&["-c", "genesis"], &args[..], &["toy"]].concat());
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    lukretia.failsh.restart().unwrap();
    wait_state(
        &macbeth,
        "RECOVER",
        "the slave stands down for the returning master",
    );
    wait_state(&lukretia, "UP", "the master takes the service back");
    assert_eq!(events(dir, "macbeth", "down"), 1);

    // 4. Split brain: the slave's failsh frozen, the service started there by
    //    hand and reported with failc, until the master has seen it.
    send_signal(macbeth.failsh.pid(), "STOP");
    let split = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let hook = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/toy-service.sh");
    assert!(
        std::process::Command::new(&hook)
            .args(["macbeth", &dir.display().to_string(), "up"])
            .status()
            .unwrap()
            .success()
    );
    let o = macbeth.faild.failc(&["-c", "genesis", "-s", "UP", "toy"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    wait_for("the master to enter RECLAIM", BOUND, || {
        lukretia.failsh.snapshot().contains("reclaim=yes")
    })
    .unwrap();
    send_signal(macbeth.failsh.pid(), "CONT");
    let resumed = Instant::now();
    wait_state(&macbeth, "RECOVER", "the insane slave stands down");
    wait_for("the master to reclaim", BOUND, || {
        events(dir, "lukretia", "reclaim") == 1
    })
    .unwrap();
    println!(
        "split brain resolved {:.2} s after the slave's failsh resumed",
        resumed.elapsed().as_secs_f64()
    );
    assert_eq!(state(&lukretia), "UP");
    assert!(lukretia.failsh.log().contains("RECLAIM"));

    // 5. An admin takes the master out of service: failsh stops it first,
    //    then publishes FAIL; only then does the slave start.
    let o = lukretia
        .faild
        .failc(&["-c", "genesis", "-s", "FAIL", "--wait", "30", "toy"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("stop requested"), "{}", stderr(&o));
    assert_eq!(state(&lukretia), "FAIL");
    wait_state(
        &macbeth,
        "UP",
        "the slave takes over from the master an admin set FAIL",
    );

    // Back to normal: RECOVER on the master; the slave hands it back.
    let o = lukretia.faild.failc(&["-c", "genesis", "-sRECOVER", "toy"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    wait_state(&macbeth, "RECOVER", "the slave hands back");
    wait_state(&lukretia, "UP", "the master serves again");

    // 6. A failing check on the master hands the service to the slave.
    std::fs::write(dir.join("lukretia.sick"), "").unwrap();
    wait_state(&lukretia, "FAIL", "the master's check fails");
    wait_state(&macbeth, "UP", "the slave takes over from the sick master");

    // The journal: both up at once only in the injected split brain, which
    // ended within the bound after the slave's failsh resumed.
    let entries: Vec<Entry> = journal(&dir.join("journal"));
    let text = read(&dir.join("journal"));
    for (from, to, hosts) in overlaps(&entries) {
        let injected = from >= split && to - split < BOUND.as_secs_f64();
        assert!(
            injected,
            "{hosts:?} up at once from {from:.3} to {to:.3}, outside the injected split brain\n{text}"
        );
    }
    assert_eq!(
        overlaps(&entries).len(),
        1,
        "the split brain shows in the journal:\n{text}"
    );
    drop(macbeth);
    drop(lukretia.dir);
}
