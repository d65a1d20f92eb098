//! Network namespaces for end-to-end tests that need what loopback cannot
//! give: real links that can go silent, ARP, and an address that moves from
//! one host to another.
//!
//! A [`Lab`] is a switch namespace holding a bridge, plus one namespace per
//! host with a veth link into the bridge. Addresses stay inside 127.0.0.0/8
//! (the project's rule for test traffic): each host namespace sets
//! `route_localnet` and drops its local 127/8 route, so 127.30.0.x leaves by
//! the veth while 127.0.0.1 stays local (see rust-ecosystem.md §3.2).
//! Namespace names carry the pid, so concurrent test processes never meet;
//! dropping the lab deletes every namespace it made (veths go with them),
//! and `/run/netns` too if the lab created it and it is empty again.
//!
//! Programs run inside with `ip netns exec NS PROGRAM`, which execs in place:
//! the child's pid is the program's own, so killing the child kills it.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::{bin, read, wait_for};

/// Where `ip netns add` keeps its namespace files (and bind-mounts itself).
const RUN_NETNS: &str = "/run/netns";

/// Namespace names start with this and the test process's pid.
const NAME_PREFIX: &str = "failover";

/// The interface of every host namespace (names are per namespace).
pub const IFACE: &str = "eth0";

/// Why a lab could not be made.
#[derive(Debug)]
pub enum LabError {
    /// Namespaces cannot be used here (not root, no `ip`, `ip netns add`
    /// refused): a test should skip, saying this.
    Unavailable(String),
    /// They can, but setting one up failed: a test should fail.
    Failed(anyhow::Error),
}

impl fmt::Display for LabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabError::Unavailable(why) => write!(f, "network namespaces unavailable: {why}"),
            LabError::Failed(e) => write!(f, "{e:#}"),
        }
    }
}

impl From<anyhow::Error> for LabError {
    fn from(e: anyhow::Error) -> Self {
        LabError::Failed(e)
    }
}

/// Finds a program in `PATH` or in the sbin directories, which a root
/// shell has but a test's environment may lack (`ip` and `arping` live
/// there on Debian).
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Whether this process runs with effective uid 0.
pub fn is_root() -> bool {
    read(Path::new("/proc/self/status"))
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
        .unwrap_or(false)
}

/// A host namespace of a [`Lab`].
#[derive(Debug, Clone)]
pub struct NsHost {
    /// The host's name, e.g. "lukretia"; also its port's name on the bridge.
    pub name: String,
    /// The namespace's name (unique to this test process).
    pub ns: String,
    /// Its address on [`IFACE`].
    pub addr: Ipv4Addr,
}

/// Namespaces made by a test; deleted when dropped (also on panic).
pub struct Lab {
    ip: PathBuf,
    prefix: String,
    switch: String,
    made: Vec<String>,
    made_run_netns: bool,
}

impl Lab {
    /// Makes the switch namespace `failover<pid>-<tag>-sw` with a bridge,
    /// after deleting what earlier test processes left behind.
    pub fn new(tag: &str) -> Result<Lab, LabError> {
        if !is_root() {
            return Err(LabError::Unavailable("not running as root".into()));
        }
        let ip = find_tool("ip")
            .ok_or_else(|| LabError::Unavailable("`ip` (iproute2) is not installed".into()))?;
        let prefix = format!("{NAME_PREFIX}{}-{tag}", std::process::id());
        let mut lab = Lab {
            ip,
            switch: format!("{prefix}-sw"),
            prefix,
            made: Vec::new(),
            made_run_netns: !Path::new(RUN_NETNS).exists(),
        };
        lab.sweep_leftovers();
        let switch = lab.switch.clone();
        if let Err(e) = lab.add_namespace(&switch) {
            return Err(LabError::Unavailable(format!("{e:#}")));
        }
        lab.ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"])?;
        lab.ip(&["-n", &switch, "link", "set", "br0", "up"])?;
        Ok(lab)
    }

    /// Deletes the namespaces of test processes that are gone, killing
    /// what still runs in them: a test killed by a timeout (SIGKILL) never
    /// runs its Drop guards.
    fn sweep_leftovers(&self) {
        let Ok(entries) = std::fs::read_dir(RUN_NETNS) else {
            return;
        };
        for e in entries.flatten() {
            let ns = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = ns
                .strip_prefix(NAME_PREFIX)
                .and_then(|rest| rest.split('-').next())
                .and_then(|pid| pid.parse::<u32>().ok())
            else {
                continue;
            };
            if Path::new(&format!("/proc/{pid}")).exists() {
                continue;
            }
            if let Ok(pids) = self.ip(&["netns", "pids", &ns]) {
                for p in pids.split_whitespace() {
                    let _ = Command::new("kill").args(["-9", p]).status();
                }
            }
            match self.ip(&["netns", "del", &ns]) {
                Ok(_) => eprintln!("deleted namespace {ns}, left behind by process {pid}"),
                Err(e) => eprintln!("leftover namespace: {e:#}"),
            }
        }
    }

    fn add_namespace(&mut self, ns: &str) -> Result<()> {
        self.ip(&["netns", "add", ns])?;
        self.made.push(ns.to_string());
        Ok(())
    }

    /// Adds a host: its namespace, a veth `eth0` into the bridge, and
    /// `addr/24` on it, reachable from the other hosts within 127/8.
    pub fn add_host(&mut self, name: &str, addr: Ipv4Addr) -> Result<NsHost> {
        let ns = format!("{}-{name}", self.prefix);
        self.add_namespace(&ns)?;
        let sw = self.switch.clone();
        self.ip(&[
            "link", "add", IFACE, "netns", &ns, "type", "veth", "peer", "name", name, "netns", &sw,
        ])?;
        self.ip(&["-n", &sw, "link", "set", name, "master", "br0"])?;
        self.ip(&["-n", &sw, "link", "set", name, "up"])?;
        self.ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        self.ip(&["-n", &ns, "link", "set", IFACE, "up"])?;
        self.sysctl(&ns, "net/ipv4/conf/all/route_localnet", "1")?;
        self.sysctl(&ns, &format!("net/ipv4/conf/{IFACE}/route_localnet"), "1")?;
        // 127.0.0.1 keeps its own local route; the rest of 127/8 may leave.
        self.ip(&[
            "-n",
            &ns,
            "route",
            "del",
            "local",
            "127.0.0.0/8",
            "dev",
            "lo",
            "table",
            "local",
        ])?;
        self.ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            IFACE,
        ])?;
        Ok(NsHost {
            name: name.to_string(),
            ns,
            addr,
        })
    }

    /// Writes `/proc/sys/KEY` inside a namespace (no sysctl binary needed).
    pub fn sysctl(&self, ns: &str, key: &str, value: &str) -> Result<()> {
        let o = self
            .exec(ns, "sh")
            .args(["-c", "echo \"$1\" > \"/proc/sys/$2\"", "sh", value, key])
            .output()?;
        if !o.status.success() {
            bail!(
                "sysctl {key}={value} in {ns}: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
        }
        Ok(())
    }

    /// Runs `ip ARGS`; its stdout, or an error with its stderr.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let o = Command::new(&self.ip)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("running ip")?;
        if !o.status.success() {
            bail!(
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&o.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    }

    /// A command that runs `program` inside namespace `ns`.
    pub fn exec(&self, ns: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(&self.ip);
        c.args(["netns", "exec", ns])
            .arg(program)
            .stdin(Stdio::null());
        c
    }

    /// Runs `program ARGS` inside `ns` to completion.
    pub fn run(&self, ns: &str, program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Output {
        self.exec(ns, program)
            .args(args)
            .output()
            .expect("running ip netns exec")
    }

    /// Takes a host's link down (a dead host is silent) or brings it up.
    pub fn set_link(&self, host: &NsHost, up: bool) -> Result<()> {
        let state = if up { "up" } else { "down" };
        self.ip(&["-n", &host.ns, "link", "set", IFACE, state])
            .map(drop)
    }

    /// Cuts a host's cable or plugs it back in: its port on the switch goes
    /// down or up. Unlike [`Lab::set_link`], nothing changes on the host but
    /// its carrier: its interface stays up with its addresses and routes,
    /// its packets to the others are silently lost (no "network
    /// unreachable", which taking its eth0 down gives, as that removes the
    /// subnet's route), and its own programs keep talking to each other.
    pub fn set_port(&self, host: &NsHost, up: bool) -> Result<()> {
        let state = if up { "up" } else { "down" };
        self.ip(&["-n", &self.switch, "link", "set", &host.name, state])
            .map(drop)
    }

    /// Starts faild in the foreground inside a host's namespace, on every
    /// address, under `boot_id`, with the community file `communities`, its
    /// state file and log in `dir`; waits (up to `bound`) until it answers
    /// there.
    pub fn start_faild(
        &self,
        host: &NsHost,
        dir: &Path,
        communities: &Path,
        boot_id: &str,
        bound: Duration,
    ) -> Result<NsProcess> {
        let mut cmd = self.exec(&host.ns, bin("faild"));
        cmd.env("FAILD_BOOT_ID", boot_id)
            .arg("-F")
            .arg("-c")
            .arg(communities)
            .arg("-s")
            .arg(dir.join("faild.state"));
        let mut faild = NsProcess::spawn(cmd, "faild", &dir.join("faild.log"))?;
        wait_for("faild to answer", bound, || {
            faild.exited().is_some() || self.failc(host, &["-t", "1", "-l"]).status.success()
        })?;
        faild.check_running()?;
        Ok(faild)
    }

    /// A command running failsh in the foreground inside a host's
    /// namespace, logging the engine, its dump file in `dir`; the caller
    /// adds the config (`-f FILE`) and spawns it.
    pub fn failsh(&self, host: &NsHost, dir: &Path) -> Command {
        let mut cmd = self.exec(&host.ns, bin("failsh"));
        cmd.args(["-F", "-d", "engine", "-l"])
            .arg(dir.join("failsh.dump"));
        cmd
    }

    /// Runs failc with `args` inside a host's namespace.
    pub fn failc(&self, host: &NsHost, args: &[&str]) -> Output {
        self.run(&host.ns, bin("failc"), args)
    }

    /// The MAC address of a host's interface.
    pub fn mac(&self, host: &NsHost) -> Result<String> {
        let text = self.ip(&["-n", &host.ns, "-o", "link", "show", "dev", IFACE])?;
        word_after(&text, "link/ether").with_context(|| format!("no MAC in: {text}"))
    }

    /// The MAC address `ns` has in its neighbour table for `addr`, if any
    /// (a FAILED or INCOMPLETE entry has none).
    pub fn neighbour(&self, ns: &str, addr: Ipv4Addr) -> Result<Option<String>> {
        let text = self.ip(&["-n", ns, "neigh", "show", &addr.to_string()])?;
        Ok(word_after(&text, "lladdr"))
    }

    /// Whether `addr` is configured on a host's interface.
    pub fn has_addr(&self, host: &NsHost, addr: Ipv4Addr) -> Result<bool> {
        let text = self.ip(&["-n", &host.ns, "-o", "-4", "addr", "show", "dev", IFACE])?;
        Ok(text.contains(&format!(" inet {addr}/")))
    }
}

fn word_after(text: &str, key: &str) -> Option<String> {
    let mut words = text.split_whitespace();
    words.find(|w| *w == key)?;
    words.next().map(str::to_string)
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Hosts first, the switch last; their veths go with them.
        for ns in self.made.iter().rev() {
            if let Err(e) = self.ip(&["netns", "del", ns]) {
                eprintln!("cleanup: {e:#}");
            }
        }
        let dir = Path::new(RUN_NETNS);
        let empty = std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none());
        if self.made_run_netns && empty {
            // `ip netns add` bind-mounted the directory onto itself.
            let _ = Command::new("umount")
                .arg(dir)
                .stderr(Stdio::null())
                .status();
            if let Err(e) = std::fs::remove_dir(dir) {
                eprintln!("cleanup: removing {RUN_NETNS}: {e}");
            }
        }
    }
}

/// A long-running program inside a namespace, its stderr appended to a log
/// file. Killed (SIGKILL) when dropped.
pub struct NsProcess {
    child: Option<Child>,
    what: String,
    log: PathBuf,
}

impl NsProcess {
    /// Spawns `cmd` (from [`Lab::exec`]) with stdout discarded and stderr
    /// appended to `log`; `what` names it in messages.
    pub fn spawn(mut cmd: Command, what: &str, log: &Path) -> Result<NsProcess> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let child = cmd
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .with_context(|| format!("spawning {what}"))?;
        Ok(NsProcess {
            child: Some(child),
            what: what.to_string(),
            log: log.to_path_buf(),
        })
    }

    /// The exit status if the process has ended (a kill counts).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        match &mut self.child {
            Some(c) => c.try_wait().ok().flatten(),
            None => None,
        }
    }

    /// An error naming the process and holding its log if it has ended.
    pub fn check_running(&mut self) -> Result<()> {
        if let Some(status) = self.exited() {
            bail!("{} exited ({status}); log:\n{}", self.what, self.log());
        }
        Ok(())
    }

    /// The log written so far.
    pub fn log(&self) -> String {
        read(&self.log)
    }

    /// SIGKILL, and wait until it is reaped.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for NsProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}
