//! The worked example for real: a floating IP address moved between two
//! hosts by faild, failsh and the sample scripts of samples/ipfailover, with
//! real links, ARP and a client that only knows the floating address.
//!
//! Four network namespaces (netns.rs): a switch with a bridge, and lukretia
//! (master, 127.30.0.1), macbeth (slave, 127.30.0.2) and a client
//! (127.30.0.3) linked to it. lukretia and macbeth run faild with the
//! sample community file and failsh with the sample configs (faster timing,
//! the peer's address, the sample vip.init as the hooks' script); both run
//! a server on the floating address's port that answers with the host's
//! name. The client connects to 127.30.0.100 again and again.
//!
//! The client's ARP entries stay valid for minutes here, so only the hooks'
//! gratuitous ARP can move it within the test's bounds: a vip.init whose
//! arping sends nothing useful (e.g. Habets' arping without `-S VIP`) fails
//! this test instead of passing late.
//!
//! Skips, saying why, when not root, when `ip` or `arping` is missing, or
//! when `ip netns add` fails.

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use failover_tests::cluster::{now, state_word};
use failover_tests::netns::{IFACE, Lab, LabError, NsHost, NsProcess, find_tool};
use failover_tests::{bin, stderr, stdout, wait_for};

/// The floating (service) address, the sample vip.init's default.
const VIP: Ipv4Addr = Ipv4Addr::new(127, 30, 0, 100);
/// The service's port on the floating address (inside the lab only).
const SERVICE_PORT: u16 = 8080;
/// Generous: for a loaded 2-core machine, not a figure.
const BOUND: Duration = Duration::from_secs(30);
/// failsh timing replacing the sample's 5 s (timeout 15 s).
const INTERVAL: f64 = 0.5;
const TIMEOUT: f64 = 1.5;
/// Answers in a row that show the client settled on a host.
const SETTLED: usize = 5;

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/ipfailover")
}

/// The sample's failsh config for this lab: the hooks call the sample
/// vip.init (not /etc/init.d/vip), the timing is short, and the peer's
/// faild is found by address. Fails if the sample no longer has the lines
/// this relies on, so the test cannot drift away from it silently.
fn failsh_config(sample: &str, peer: &str, peer_addr: Ipv4Addr) -> Result<String> {
    let vip = samples().join("vip.init");
    let vip = vip.to_str().context("sample path")?;
    ensure!(
        !vip.contains(['"', '\\', ' ']),
        "{vip}: path unusable in a hook"
    );
    let hook = "exec(\"/etc/init.d/vip ";
    ensure!(
        sample.matches(hook).count() == 3,
        "the sample config no longer calls /etc/init.d/vip up, down and reclaim"
    );
    let interval = "failsvc(\"vip\", \"interval\", 5)";
    ensure!(
        sample.matches(interval).count() == 1,
        "the sample config no longer sets the interval as {interval}"
    );
    let text = sample.replace(hook, &format!("exec(\"{vip} ")).replace(
        interval,
        &format!(
            "failsvc(\"vip\", \"interval\", {INTERVAL})\n\
             failsvc(\"vip\", \"timeout\", {TIMEOUT})\n\
             failsvc(\"vip\", \"hooktimeout\", 10)"
        ),
    );
    Ok(format!(
        "{text}\n-- the floating-IP test's lab\nfailhost(\"{peer}\", \"address\", \"{peer_addr}\")\n"
    ))
}

/// One of the two failover hosts: its namespace, files and processes.
struct Machine {
    host: NsHost,
    peer: &'static str,
    dir: PathBuf,
    /// vip.init's settings (FAILOVER_VIP_DEFAULTS).
    defaults: PathBuf,
    config: PathBuf,
    faild: Option<NsProcess>,
    failsh: Option<NsProcess>,
    server: Option<NsProcess>,
}

impl Machine {
    fn new(
        lab: &mut Lab,
        (name, addr): (&str, Ipv4Addr),
        (peer, peer_addr): (&'static str, Ipv4Addr),
        dir: &Path,
    ) -> Result<Machine> {
        let host = lab.add_host(name, addr)?;
        let dir = dir.join(name);
        std::fs::create_dir_all(&dir)?;
        let defaults = dir.join("failover-vip");
        std::fs::write(
            &defaults,
            format!(
                "# /etc/default/failover-vip of {name} in the floating-IP test\n\
                 VIP={VIP}\nPREFIX=24\nIFACE={IFACE}\nFAILC={}\n",
                bin("failc").display()
            ),
        )?;
        let sample = std::fs::read_to_string(samples().join(format!("{name}.lua")))?;
        let config = dir.join(format!("{name}.lua"));
        std::fs::write(&config, failsh_config(&sample, peer, peer_addr)?)?;
        let o = lab.run(&host.ns, bin("failsh"), &["-t", "-f", path(&config)?]);
        ensure!(
            o.status.success(),
            "the derived config of {name} does not load: {}{}",
            stdout(&o),
            stderr(&o)
        );
        Ok(Machine {
            host,
            peer,
            dir,
            defaults,
            config,
            faild: None,
            failsh: None,
            server: None,
        })
    }

    fn name(&self) -> &str {
        &self.host.name
    }

    /// Boots as the sample init scripts do, in their order: faild (under
    /// `boot_id`) and the registration faild.init makes (FAIL, backed up by
    /// the peer), then `vip.init start` (the address down, RECOVER), the
    /// service's server, failsh.
    fn boot(&mut self, lab: &Lab, boot_id: &str) -> Result<()> {
        self.faild = Some(lab.start_faild(
            &self.host,
            &self.dir,
            &samples().join("communities"),
            boot_id,
            BOUND,
        )?);

        let o = self.failc(
            lab,
            &[
                "-c", "genesis", "-s", "FAIL", "-b", self.peer, "--wait", "30", "vip",
            ],
        );
        ensure!(o.status.success(), "registering FAIL: {}", stderr(&o));
        let o = self.vip(lab, "start");
        ensure!(o.status.success(), "vip.init start: {}", stderr(&o));
        ensure!(
            !lab.has_addr(&self.host, VIP)?,
            "vip.init start left {VIP} on {}",
            self.name()
        );
        ensure!(
            self.state(lab) == "RECOVER",
            "vip.init start did not register RECOVER"
        );

        let mut cmd = lab.exec(&self.host.ns, env!("CARGO_BIN_EXE_whoanswers"));
        cmd.args(["serve", "--name", &self.host.name, "--port"])
            .arg(SERVICE_PORT.to_string());
        self.server = Some(NsProcess::spawn(
            cmd,
            "the service's server",
            &self.dir.join("server.log"),
        )?);

        let mut cmd = lab.failsh(&self.host, &self.dir);
        cmd.env("FAILOVER_VIP_DEFAULTS", &self.defaults)
            .arg("-f")
            .arg(&self.config);
        self.failsh = Some(NsProcess::spawn(
            cmd,
            "failsh",
            &self.dir.join("failsh.log"),
        )?);
        Ok(())
    }

    /// The host dies: every process by SIGKILL, and its link goes silent.
    /// Its addresses stay configured, as on a crashed machine.
    fn crash(&mut self, lab: &Lab) -> Result<()> {
        for p in [&mut self.failsh, &mut self.faild, &mut self.server] {
            if let Some(mut p) = p.take() {
                p.kill9();
            }
        }
        lab.set_link(&self.host, false)
    }

    /// Power back on: the link comes up (the floating address still on it
    /// from before the crash), then the boot scripts run.
    fn reboot(&mut self, lab: &Lab, boot_id: &str) -> Result<()> {
        lab.set_link(&self.host, true)?;
        self.boot(lab, boot_id)
    }

    fn failc(&self, lab: &Lab, args: &[&str]) -> Output {
        lab.failc(&self.host, args)
    }

    fn vip(&self, lab: &Lab, verb: &str) -> Output {
        lab.exec(&self.host.ns, samples().join("vip.init"))
            .env("FAILOVER_VIP_DEFAULTS", &self.defaults)
            .arg(verb)
            .output()
            .expect("running vip.init")
    }

    /// The service's state in this host's faild ("?" if it does not answer).
    fn state(&self, lab: &Lab) -> String {
        state_word(&self.failc(lab, &["-h", "127.0.0.1", "vip"]))
    }

    /// Errors (with the logs) if faild or failsh has died.
    fn check_running(&mut self) -> Result<()> {
        for p in [&mut self.faild, &mut self.failsh].into_iter().flatten() {
            p.check_running()?;
        }
        Ok(())
    }

    fn logs(&self) -> String {
        let mut text = String::new();
        for (what, p) in [("faild", &self.faild), ("failsh", &self.failsh)] {
            if let Some(p) = p {
                text += &format!("--- {} {what} log:\n{}\n", self.name(), p.log());
            }
        }
        text
    }

    fn wait_state(&mut self, lab: &Lab, want: &str, why: &str) -> Result<()> {
        let what = format!("{} {want}: {why}", self.name());
        let mut dead = false;
        let waited = wait_for(&what, BOUND, || {
            dead = self.check_running().is_err();
            dead || self.state(lab) == want
        });
        self.check_running()?;
        waited.with_context(|| self.logs())
    }
}

/// One connection attempt of the client.
#[derive(Clone)]
struct Attempt {
    /// Wall-clock seconds when it ended.
    at: f64,
    /// The host that answered; `None` if the attempt failed.
    who: Option<String>,
}

impl Attempt {
    fn from(&self, host: &str) -> bool {
        self.who.as_deref() == Some(host)
    }
}

/// The client: `whoanswers probe` in the client namespace, its lines
/// collected by a reader thread.
struct Probe {
    child: Child,
    seen: Arc<Mutex<Vec<Attempt>>>,
}

impl Probe {
    fn start(lab: &Lab, client: &NsHost) -> Result<Probe> {
        let mut child = lab
            .exec(&client.ns, env!("CARGO_BIN_EXE_whoanswers"))
            .args(["probe", "--to", &format!("{VIP}:{SERVICE_PORT}")])
            .args(["--for", "150"])
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the client")?;
        let out = child.stdout.take().context("client stdout")?;
        let seen: Arc<Mutex<Vec<Attempt>>> = Arc::default();
        let sink = Arc::clone(&seen);
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let mut words = line.split_whitespace();
                let (Some(at), Some(who)) = (words.next(), words.next()) else {
                    continue;
                };
                let Ok(at) = at.parse::<f64>() else { continue };
                let who = (who != "-").then(|| who.to_string());
                sink.lock().unwrap().push(Attempt { at, who });
            }
        });
        Ok(Probe { child, seen })
    }

    /// The last attempts, for failure messages.
    fn tail(&self) -> String {
        let seen = self.seen();
        let from = seen.len().saturating_sub(10);
        let mut text = format!("--- the client's last attempts of {}:\n", seen.len());
        for a in &seen[from..] {
            text += &format!("{:.3} {}\n", a.at, a.who.as_deref().unwrap_or("-"));
        }
        text
    }

    fn seen(&self) -> Vec<Attempt> {
        self.seen.lock().unwrap().clone()
    }

    /// Answers from `host` after time `since`.
    fn count(&self, host: &str, since: f64) -> usize {
        self.seen()
            .iter()
            .filter(|a| a.at > since && a.from(host))
            .count()
    }

    /// The client's view of a move from `old` to `new` that began at
    /// `since`: the last answer from `old` before the first answer from
    /// `new` after `since`, that first answer, and the failed attempts
    /// between them. Fails if `old` answered again after it.
    fn switch(&self, old: &str, new: &str, since: f64) -> Result<Switch> {
        let seen = self.seen();
        let first = seen
            .iter()
            .find(|a| a.at > since && a.from(new))
            .map(|a| a.at)
            .with_context(|| format!("no answer from {new}"))?;
        let last = seen
            .iter()
            .filter(|a| a.at < first && a.from(old))
            .map(|a| a.at)
            .next_back()
            .with_context(|| format!("no answer from {old} before {new}'s"))?;
        let failed = seen
            .iter()
            .filter(|a| a.at > last && a.at < first && a.who.is_none())
            .count();
        if let Some(a) = seen.iter().find(|a| a.at > first && a.from(old)) {
            bail!(
                "{old} answered at {:.3}, after {new} had answered at {first:.3}: the client flaps",
                a.at
            );
        }
        Ok(Switch {
            last,
            first,
            failed,
        })
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A move of the client from one host to the other, as the client saw it.
struct Switch {
    /// The old host's last answer.
    last: f64,
    /// The new host's first answer.
    first: f64,
    /// Attempts that failed in between.
    failed: usize,
}

impl Switch {
    fn outage(&self) -> f64 {
        self.first - self.last
    }
}

fn path(p: &Path) -> Result<&str> {
    p.to_str().context("a non-UTF-8 path")
}

/// The lab, or `None` after printing why this machine cannot run the test.
fn lab_or_skip() -> Option<Lab> {
    if find_tool("arping").is_none() {
        println!("skipped: `arping` is not installed (apt-get install arping)");
        return None;
    }
    match Lab::new("fip") {
        Ok(lab) => Some(lab),
        Err(LabError::Unavailable(why)) => {
            println!("skipped: network namespaces unavailable: {why}");
            None
        }
        Err(e) => panic!("setting up the namespaces: {e}"),
    }
}

#[test]
fn the_floating_address_moves_to_the_slave_and_back() {
    // Declared first, dropped last: the processes die before their
    // namespaces are deleted.
    let Some(mut lab) = lab_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pid = std::process::id();
    let lukretia_addr = Ipv4Addr::new(127, 30, 0, 1);
    let macbeth_addr = Ipv4Addr::new(127, 30, 0, 2);
    let mut lukretia = Machine::new(
        &mut lab,
        ("lukretia", lukretia_addr),
        ("macbeth", macbeth_addr),
        dir,
    )
    .unwrap();
    let mut macbeth = Machine::new(
        &mut lab,
        ("macbeth", macbeth_addr),
        ("lukretia", lukretia_addr),
        dir,
    )
    .unwrap();
    let client = lab
        .add_host("client", Ipv4Addr::new(127, 30, 0, 3))
        .unwrap();
    // Entries stay REACHABLE for 5 to 15 minutes: only a gratuitous ARP
    // moves the client while the test runs.
    lab.sysctl(
        &client.ns,
        &format!("net/ipv4/neigh/{IFACE}/base_reachable_time_ms"),
        "600000",
    )
    .unwrap();
    let lukretia_mac = lab.mac(&lukretia.host).unwrap();
    let macbeth_mac = lab.mac(&macbeth.host).unwrap();
    let neighbour = || lab.neighbour(&client.ns, VIP).unwrap();

    // 1. Both hosts boot, the master first; the master brings the address up.
    lukretia
        .boot(&lab, &format!("fip-{pid}-lukretia-1"))
        .unwrap();
    macbeth.boot(&lab, &format!("fip-{pid}-macbeth-1")).unwrap();
    lukretia
        .wait_state(&lab, "UP", "the master starts the service")
        .unwrap();
    let probe = Probe::start(&lab, &client).unwrap();
    wait_for("the client to be answered by lukretia", BOUND, || {
        probe.count("lukretia", 0.0) >= SETTLED
    })
    .unwrap_or_else(|e| panic!("{e}\n{}{}{}", probe.tail(), lukretia.logs(), macbeth.logs()));
    assert_eq!(macbeth.state(&lab), "RECOVER");
    assert_eq!(neighbour().as_deref(), Some(lukretia_mac.as_str()));
    assert!(!lab.has_addr(&macbeth.host, VIP).unwrap());

    // 2. The master dies: SIGKILL for everything, its link silent.
    let killed = now();
    lukretia.crash(&lab).unwrap();
    wait_for("the client to be answered by macbeth", BOUND, || {
        probe.count("macbeth", killed) >= SETTLED
    })
    .unwrap_or_else(|e| panic!("{e}\n{}{}", probe.tail(), macbeth.logs()));
    let over = probe.switch("lukretia", "macbeth", killed).unwrap();
    assert_eq!(macbeth.state(&lab), "UP");
    assert!(lab.has_addr(&macbeth.host, VIP).unwrap());
    assert_eq!(
        neighbour().as_deref(),
        Some(macbeth_mac.as_str()),
        "the client's ARP entry for {VIP} should hold macbeth's MAC"
    );
    println!(
        "failover: client outage {:.2} s (last lukretia answer → first macbeth answer, \
         {} failed attempts); {:.2} s from the kill; interval {INTERVAL} s, timeout {TIMEOUT} s",
        over.outage(),
        over.failed,
        over.first - killed,
    );

    // 3. The master reboots; the slave stands down and the master takes
    //    the address back.
    assert!(
        lab.has_addr(&lukretia.host, VIP).unwrap(),
        "the dead master keeps its address until it boots"
    );
    let rebooted = now();
    lukretia
        .reboot(&lab, &format!("fip-{pid}-lukretia-2"))
        .unwrap();
    macbeth
        .wait_state(&lab, "RECOVER", "the slave stands down for the master")
        .unwrap();
    wait_for("the client to be answered by lukretia again", BOUND, || {
        probe.count("lukretia", rebooted) >= SETTLED
    })
    .unwrap_or_else(|e| panic!("{e}\n{}{}{}", probe.tail(), lukretia.logs(), macbeth.logs()));
    let back = probe.switch("macbeth", "lukretia", rebooted).unwrap();
    assert_eq!(lukretia.state(&lab), "UP");
    assert!(lab.has_addr(&lukretia.host, VIP).unwrap());
    assert!(!lab.has_addr(&macbeth.host, VIP).unwrap());
    assert_eq!(
        neighbour().as_deref(),
        Some(lukretia_mac.as_str()),
        "the client's ARP entry for {VIP} should hold lukretia's MAC again"
    );
    println!(
        "failback: client outage {:.2} s (last macbeth answer → first lukretia answer, \
         {} failed attempts); {:.2} s from the reboot",
        back.outage(),
        back.failed,
        back.first - rebooted,
    );
    lukretia.check_running().unwrap();
    macbeth.check_running().unwrap();
}
