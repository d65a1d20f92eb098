//! failsh as a process: config checks, reload on SIGHUP, the SIGINT dump.

use std::path::Path;
use std::time::Duration;

use failover_tests::cluster::{ToyServices, hook_script};
use failover_tests::{
    Faild, Failsh, bin, journal, read, send_signal, stderr, stdout, unique_addr, wait_for,
};

const RULES: &str = "* public RO\n* genesis RW 127.0.0.0/8\n";
const BOUND: Duration = Duration::from_secs(30);

#[test]
fn config_check_accepts_the_samples_and_points_at_errors() {
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/ipfailover");
    let dir = tempfile::tempdir().unwrap();
    for (host, peer) in [("lukretia", "macbeth"), ("macbeth", "lukretia")] {
        // The samples name the peer by its host name, which this machine's
        // resolver may not know: given an address, they are accepted.
        let sample = samples.join(format!("{host}.lua"));
        let mut text = std::fs::read_to_string(&sample).unwrap();
        text.push_str(&format!(
            "failhost(\"{peer}\", \"address\", \"127.0.0.1\")\n"
        ));
        let addressed = dir.path().join(format!("{host}.lua"));
        std::fs::write(&addressed, text).unwrap();
        let check = |file: &Path| {
            std::process::Command::new(bin("failsh"))
                .arg("-t")
                .arg("-f")
                .arg(file)
                .output()
                .unwrap()
        };
        let o = check(&addressed);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(stdout(&o).contains("OK (1 services"), "{}", stdout(&o));
        // As shipped: accepted where the name resolves, else refused at the
        // line of the masters or slaves list.
        let o = check(&sample);
        let resolves = std::net::ToSocketAddrs::to_socket_addrs(&(peer, 1291)).is_ok();
        if resolves {
            assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        } else {
            assert_eq!(o.status.code(), Some(1));
            let line = if host == "lukretia" { 50 } else { 44 };
            let at = format!(
                "{}:{line}: host \"{peer}\" does not resolve",
                sample.display()
            );
            assert!(stderr(&o).contains(&at), "{}", stderr(&o));
        }
    }
    let bad = dir.path().join("bad.lua");
    std::fs::write(
        &bad,
        "failsvc(\"vip\", \"create\")\nfailsvc(\"vip\", \"interval\", -1)\n",
    )
    .unwrap();
    let o = std::process::Command::new(bin("failsh"))
        .arg("-t")
        .arg("-f")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(&format!("{}:2:", bad.display())),
        "{}",
        stderr(&o)
    );
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
}

fn services(dir: &Path, local: &str, names: &[(&str, f64)]) -> String {
    let toy = format!("{} {{}} {}", hook_script().display(), dir.display());
    let mut lua = format!(
        "failhost(\"localhost\", \"address\", \"{local}\")\nfailhost(\"localhost\", \"community\", \"genesis\")\n"
    );
    for (name, interval) in names {
        let hook = toy.replace("{}", name);
        lua.push_str(&format!(
            "failsvc{{ name = \"{name}\", interval = {interval},\n  start = function() exec(\"{hook} up\"); return \"UP\" end,\n  stop = function() exec(\"{hook} down\"); return \"FAIL\" end }}\n"
        ));
    }
    lua
}

fn states(f: &Faild) -> String {
    stdout(&f.failc(&["-l"]))
}

#[test]
fn sighup_reloads_without_touching_what_did_not_change() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let _services = ToyServices(dir.to_path_buf());
    std::fs::write(dir.join("journal"), "").unwrap();
    let faild = Faild::start(dir, Some(RULES), &[]).unwrap();
    for svc in ["a", "b", "c"] {
        let o = faild.failc(&["-c", "genesis", "-sRECOVER", svc]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    let cfg = dir.join("host.lua");
    let local = faild.addr.to_string();
    std::fs::write(&cfg, services(dir, &local, &[("a", 0.2), ("b", 0.2)])).unwrap();
    let mut failsh = Failsh::new(&cfg, unique_addr().into(), 1848);
    failsh.restart().unwrap();
    let ups = |svc: &str| {
        journal(&dir.join("journal"))
            .iter()
            .filter(|e| e.host == svc && e.event == "started")
            .count()
    };
    wait_for("a and b to start", BOUND, || ups("a") == 1 && ups("b") == 1).unwrap();

    // a changes its interval, b goes, c comes.
    std::fs::write(&cfg, services(dir, &local, &[("a", 0.3), ("c", 0.2)])).unwrap();
    send_signal(failsh.pid(), "HUP");
    wait_for("c to start after the reload", BOUND, || ups("c") == 1)
        .unwrap_or_else(|e| panic!("{e}\n{}", failsh.log()));
    assert!(
        failsh
            .log()
            .contains("1 added, 1 changed, 1 no longer managed"),
        "{}",
        failsh.log()
    );
    let downs = journal(&dir.join("journal"))
        .iter()
        .filter(|e| e.event == "down")
        .count();
    assert_eq!(
        downs,
        0,
        "nothing was stopped:\n{}",
        read(&dir.join("journal"))
    );
    assert!(
        states(&faild).lines().all(|l| l.contains(" UP ")),
        "b left as it is:\n{}",
        states(&faild)
    );

    // A broken config keeps the running one.
    std::fs::write(&cfg, "failsvc(\"a\", \"create\")\nthis is not lua\n").unwrap();
    send_signal(failsh.pid(), "HUP");
    wait_for("the reload error", BOUND, || {
        failsh.log().contains("previous config stays in force")
    })
    .unwrap();
    assert!(
        failsh.log().contains(&format!("{}:2:", cfg.display())),
        "{}",
        failsh.log()
    );
    assert!(
        failsh.snapshot().lines().any(|l| l.starts_with("c ")),
        "{}",
        failsh.snapshot()
    );
}

#[test]
fn sigint_dumps_and_sigterm_leaves_services_running() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let _services = ToyServices(dir.to_path_buf());
    std::fs::write(dir.join("journal"), "").unwrap();
    let faild = Faild::start(dir, Some(RULES), &[]).unwrap();
    assert_eq!(
        faild
            .failc(&["-c", "genesis", "-sRECOVER", "a"])
            .status
            .code(),
        Some(0)
    );
    let cfg = dir.join("host.lua");
    std::fs::write(&cfg, services(dir, &faild.addr.to_string(), &[("a", 0.2)])).unwrap();
    let dump = dir.join("dump");
    let addr = unique_addr();
    let mut child = std::process::Command::new(bin("failsh"))
        .args(["-F", "-a", &addr.to_string(), "-l"])
        .arg(&dump)
        .arg("-f")
        .arg(&cfg)
        .stderr(std::fs::File::create(dir.join("failsh.log")).unwrap())
        .spawn()
        .unwrap();
    wait_for("a to start", BOUND, || {
        let o = faild.failc(&["a"]);
        o.status.code() == Some(0) && stdout(&o).contains(" UP ")
    })
    .unwrap();
    wait_for("a's process", BOUND, || dir.join("a.pid").exists()).unwrap();
    send_signal(child.id(), "INT");
    wait_for("the dump", BOUND, || {
        read(&dump).contains("a local=UP running=yes")
    })
    .unwrap_or_else(|e| panic!("{e}: {:?} exited: {:?}", read(&dump), child.try_wait()));
    send_signal(child.id(), "TERM");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    // The service is left running and UP.
    let pid = read(&dir.join("a.pid")).trim().to_string();
    assert!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "the service process still runs"
    );
    assert!(stdout(&faild.failc(&["a"])).contains(" UP "));
}
