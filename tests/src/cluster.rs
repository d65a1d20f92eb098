//! A cluster of two or more hosts on loopback for the end-to-end tests and
//! the failover benchmark: each host has its own faild and failsh on its own
//! address, and runs the toy service (`samples/toy/toy-service.sh`), whose hooks start and
//! stop a real process and write `HOST up|started|down|reclaim TIME` lines to
//! a shared journal. [`crate::lab_cluster`] runs the same hosts in network
//! namespaces.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};

use crate::{Faild, Failsh, failc, journal, read, stderr, stdout, wait_for};

/// The community file of every host: peers read, only the host itself writes.
pub const RULES: &str = "* public RO\n* genesis RW 127.0.0.0/8\n";

/// The toy service's hook script.
pub fn hook_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/toy/toy-service.sh")
}

/// Timing of the toy service.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub interval: f64,
    pub timeout: f64,
}

impl Timing {
    /// failsh's per-call limit of a poll: half the interval, clamped to
    /// 20 ms–2 s (the rule of `call_limit` in failsh's engine).
    pub fn call_limit(&self) -> f64 {
        (self.interval / 2.0).clamp(0.02, 2.0)
    }

    /// The availability bound U of docs/safety.md for this timing, in
    /// seconds: a call limit from a peer's last answer to the end of the
    /// poll that took it in, the timeout of silence, and a call limit each
    /// for the poll that decides and the second look after the claim. (The
    /// simulator adds its longest hook as slack for the claim's writes;
    /// real processes get their own slack, see the chaos run.)
    pub fn availability_bound(&self) -> f64 {
        self.timeout + 3.0 * self.call_limit()
    }
}

/// One host of the cluster.
pub struct Host {
    pub name: &'static str,
    pub addr: IpAddr,
    /// The backup host registered with the service.
    pub peer: &'static str,
    pub faild: Faild,
    pub failsh: Failsh,
}

/// The hosts of the two-host cluster of the worked example, master first.
pub const PAIR: [(&str, &str); 2] = [("lukretia", "127.0.0.2"), ("macbeth", "127.0.0.3")];

/// The host's Lua config: the toy service, with every host above it as a
/// master and every host below as a slave (the seed's rule).
pub fn toy_config(
    name: &str,
    addr: IpAddr,
    masters: &[(&str, IpAddr)],
    slaves: &[(&str, IpAddr)],
    journal_dir: &Path,
    t: Timing,
) -> String {
    let hook = format!(
        "{} {name} {}",
        hook_script().display(),
        journal_dir.display()
    );
    // As in the worked example: the top master records FAIL when it stops,
    // the others RECOVER (ready to take over again).
    let stopped = if masters.is_empty() {
        "FAIL"
    } else {
        "RECOVER"
    };
    let list = |peers: &[(&str, IpAddr)]| {
        peers
            .iter()
            .map(|(n, _)| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let peer_lines: String = masters
        .iter()
        .chain(slaves)
        .map(|(n, a)| format!("failhost(\"{n}\", \"address\", \"{a}\")\n"))
        .collect();
    format!(
        r#"
failhost("localhost", "address", "{addr}")
failhost("localhost", "community", "genesis")
{peer_lines}local hook = "{hook}"
failsvc{{
    name = "toy", interval = {interval}, timeout = {timeout}, hook_timeout = 10,
    masters = {{ {masters} }}, slaves = {{ {slaves} }},
    start = function() exec(hook .. " up"); return "UP" end,
    stop = function() exec(hook .. " down"); return "{stopped}" end,
    reclaim = function() exec(hook .. " reclaim"); return "UP" end,
    check = function() exec(hook .. " check"); return true end,
}}
"#,
        masters = list(masters),
        slaves = list(slaves),
        interval = t.interval,
        timeout = t.timeout,
    )
}

/// Boots a cluster of hosts given in preference order (the first is the
/// master of all), each host booted as [`Host::boot`] does.
pub fn boot_cluster(
    hosts: &[(&'static str, &str)],
    dir: &Path,
    boot_id: &str,
    timing: Timing,
) -> Result<Vec<Host>> {
    let parsed: Vec<(&'static str, IpAddr)> = hosts
        .iter()
        .map(|(n, a)| Ok((*n, a.parse()?)))
        .collect::<Result<_>>()?;
    (0..parsed.len())
        .map(|i| {
            Host::boot(
                parsed[i],
                &parsed[..i],
                &parsed[i + 1..],
                dir,
                boot_id,
                timing,
            )
        })
        .collect()
}

impl Host {
    /// Boots a host as the worked example's init scripts do: faild (under
    /// `boot_id`), the service registered FAIL with its backup host (the
    /// next host down, or up for the last), then RECOVER, then failsh. `dir`
    /// holds the journal; the host's files go to `dir/NAME/`.
    pub fn boot(
        (name, addr): (&'static str, IpAddr),
        masters: &[(&'static str, IpAddr)],
        slaves: &[(&'static str, IpAddr)],
        dir: &Path,
        boot_id: &str,
        timing: Timing,
    ) -> Result<Host> {
        let hdir = dir.join(name);
        std::fs::create_dir_all(&hdir)?;
        let cfg = hdir.join(format!("{name}.lua"));
        std::fs::write(&cfg, toy_config(name, addr, masters, slaves, dir, timing))?;
        std::fs::write(hdir.join("communities"), RULES)?;
        let mut faild = Faild::start_at(addr, &hdir, Some(RULES), &[])?;
        faild.kill9();
        faild.env = vec![("FAILD_BOOT_ID".into(), boot_id.into())];
        faild.restart()?;
        let backup = slaves
            .first()
            .or(masters.last())
            .context("a cluster of one")?;
        let mut host = Host {
            name,
            addr,
            peer: backup.0,
            faild,
            failsh: Failsh::new(&cfg, addr, 1848),
        };
        host.register()?;
        host.failsh.restart()?;
        Ok(host)
    }

    fn register(&self) -> Result<()> {
        register(self.peer, |args| self.faild.failc(args))
    }

    /// The host reboots: faild comes back under a new boot id, the service
    /// is registered again, failsh starts.
    pub fn reboot(&mut self, boot_id: &str) -> Result<()> {
        self.faild.kill9();
        self.failsh.kill9();
        self.faild.env = vec![("FAILD_BOOT_ID".into(), boot_id.into())];
        self.faild.restart()?;
        self.register()?;
        self.failsh.restart()
    }

    /// The state of the toy service in this host's faild ("?" if none).
    pub fn state(&self) -> String {
        state_word(&failc(&["-h", &self.addr.to_string(), "-t", "1", "toy"]))
    }

    /// Polls until the toy service is `want` here; the failsh log on failure.
    pub fn wait_state(&self, want: &str, why: &str, limit: Duration) -> Result<()> {
        wait_for(&format!("{} {want}: {why}", self.name), limit, || {
            self.state() == want
        })
        .with_context(|| format!("--- {} failsh log:\n{}", self.name, self.failsh.log()))
    }

    /// The host crashes: failsh, faild and the service process die by
    /// SIGKILL. Returns the time of the kill; the journal notes the service
    /// down once its process is dead.
    pub fn crash(&mut self, dir: &Path) -> Result<f64> {
        let pidfile = dir.join(format!("{}.pid", self.name));
        let at = now();
        self.failsh.kill9();
        self.faild.kill9();
        // Everything of the host dies, a hook still running included (it
        // would otherwise go on and start the service after the "crash").
        let hooks = format!(
            "{} {} {}",
            hook_script().display(),
            self.name,
            dir.display()
        );
        for entry in std::fs::read_dir("/proc")?.flatten() {
            let cmdline = read(&entry.path().join("cmdline")).replace('\0', " ");
            if cmdline.contains(&hooks) {
                let pid = entry.file_name().to_string_lossy().into_owned();
                let _ = std::process::Command::new("kill")
                    .args(["-9", &pid])
                    .status();
            }
        }
        let pid = read(&pidfile).trim().to_string();
        if !pid.is_empty() {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid])
                .status();
            // Dead once gone or a zombie (its new parent may reap it later).
            wait_for(
                "the service process to die",
                Duration::from_secs(30),
                || {
                    read(Path::new(&format!("/proc/{pid}/stat")))
                        .split(' ')
                        .nth(2)
                        .is_none_or(|s| s == "Z")
                },
            )?;
            let _ = std::fs::remove_file(&pidfile);
        }
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join("journal"))?;
        writeln!(f, "{} down {:.9}", self.name, now())?;
        Ok(at)
    }
}

/// The boot scripts' registration of the toy service: FAIL with the backup
/// host, then RECOVER. `failc` runs failc against the host's faild with the
/// arguments it is given (it adds how to reach that faild).
pub fn register(backup: &str, failc: impl Fn(&[&str]) -> Output) -> Result<()> {
    for args in [vec!["-s", "FAIL", "-b", backup], vec!["-sRECOVER"]] {
        let o = failc(&[&["-c", "genesis"], &args[..], &["toy"]].concat());
        if o.status.code() != Some(0) {
            bail!("failc {args:?}: {}", stderr(&o));
        }
    }
    Ok(())
}

/// The state in the answer of `failc SERVICE` ("?" if it has none: faild
/// did not answer, or does not know the service).
pub fn state_word(o: &Output) -> String {
    stdout(o)
        .split_whitespace()
        .nth(1)
        .unwrap_or("?")
        .to_string()
}

/// Wall-clock seconds, as the hooks' `date +%s.%N` writes them.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// How many `event` lines `host` has in the journal in `dir`.
pub fn events(dir: &Path, host: &str, event: &str) -> usize {
    journal(&dir.join("journal"))
        .iter()
        .filter(|e| e.host == host && e.event == event)
        .count()
}

/// The time of the `n`th (1-based) `event` line of `host`.
pub fn event_time(dir: &Path, host: &str, event: &str, n: usize) -> Option<f64> {
    journal(&dir.join("journal"))
        .iter()
        .filter(|e| e.host == host && e.event == event)
        .nth(n - 1)
        .map(|e| e.at)
}

/// Kills, when dropped, every toy-service process whose pid file is in the
/// directory, so a test that fails midway leaves nothing running.
pub struct ToyServices(pub PathBuf);

impl Drop for ToyServices {
    fn drop(&mut self) {
        let Ok(entries) = std::fs::read_dir(&self.0) else {
            return;
        };
        for e in entries.flatten() {
            if e.path().extension().is_some_and(|x| x == "pid") {
                let pid = read(&e.path()).trim().to_string();
                if read(Path::new(&format!("/proc/{pid}/cmdline"))).starts_with("sleep") {
                    let _ = std::process::Command::new("kill")
                        .args(["-9", &pid])
                        .status();
                }
            }
        }
    }
}
