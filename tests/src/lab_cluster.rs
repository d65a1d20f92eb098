//! The toy cluster of [`crate::cluster`] in network namespaces
//! ([`crate::netns`]), for faults loopback cannot make, such as a cut link.
//! Each host has its own namespace on the lab's switch, with faild (on
//! every address) and failsh; the hooks write the same journal as on
//! loopback, since the namespaces share the filesystem.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::cluster::{RULES, Timing, register, state_word, toy_config};
use crate::netns::{Lab, NsHost, NsProcess};

/// The hosts of the two-host cluster in the lab, master first: the names of
/// [`crate::cluster::PAIR`], so the journal reads the same.
pub const LAB_PAIR: [(&str, Ipv4Addr); 2] = [
    ("lukretia", Ipv4Addr::new(127, 30, 0, 1)),
    ("macbeth", Ipv4Addr::new(127, 30, 0, 2)),
];

/// How long faild may take to answer after its start (a loaded machine).
const START_BOUND: Duration = Duration::from_secs(20);

/// One host of the cluster in its namespace. Its processes are killed
/// (SIGKILL) when it is dropped: drop it before the lab.
pub struct LabHost {
    pub net: NsHost,
    pub faild: NsProcess,
    pub failsh: NsProcess,
}

/// Adds the hosts, given in preference order (the first is the master of
/// all), to the lab and boots each as [`LabHost::boot`] does.
pub fn boot_lab_cluster(
    lab: &mut Lab,
    hosts: &[(&'static str, Ipv4Addr)],
    dir: &Path,
    boot_id: &str,
    timing: Timing,
) -> Result<Vec<LabHost>> {
    let peers: Vec<(&str, IpAddr)> = hosts.iter().map(|(n, a)| (*n, (*a).into())).collect();
    let nets = hosts
        .iter()
        .map(|(n, a)| lab.add_host(n, *a))
        .collect::<Result<Vec<_>>>()?;
    nets.into_iter()
        .enumerate()
        .map(|(i, net)| LabHost::boot(lab, net, &peers[..i], &peers[i + 1..], dir, boot_id, timing))
        .collect()
}

impl LabHost {
    /// Boots a host as [`crate::cluster::Host::boot`] does on loopback:
    /// faild (under `boot_id`), the toy service registered FAIL with its
    /// backup host and then RECOVER, then failsh. `dir` holds the journal;
    /// the host's files go to `dir/NAME/`.
    pub fn boot(
        lab: &Lab,
        net: NsHost,
        masters: &[(&str, IpAddr)],
        slaves: &[(&str, IpAddr)],
        dir: &Path,
        boot_id: &str,
        timing: Timing,
    ) -> Result<LabHost> {
        let name = net.name.as_str();
        let hdir = dir.join(name);
        std::fs::create_dir_all(&hdir)?;
        let cfg = hdir.join(format!("{name}.lua"));
        let addr = net.addr.into();
        std::fs::write(&cfg, toy_config(name, addr, masters, slaves, dir, timing))?;
        let communities = hdir.join("communities");
        std::fs::write(&communities, RULES)?;
        let faild = lab.start_faild(&net, &hdir, &communities, boot_id, START_BOUND)?;
        let backup = slaves
            .first()
            .or(masters.last())
            .map(|(n, _)| *n)
            .context("a cluster of one")?;
        register(backup, |args| {
            lab.failc(&net, &[&["-h", "127.0.0.1"], args].concat())
        })?;
        let mut cmd = lab.failsh(&net, &hdir);
        cmd.arg("-f").arg(&cfg);
        let failsh = NsProcess::spawn(cmd, "failsh", &hdir.join("failsh.log"))?;
        Ok(LabHost { net, faild, failsh })
    }

    /// The state of the toy service in this host's faild ("?" if none).
    pub fn state(&self, lab: &Lab) -> String {
        state_word(&lab.failc(&self.net, &["-h", "127.0.0.1", "-t", "1", "toy"]))
    }

    /// Errors, with the logs, if faild or failsh has died.
    pub fn check_running(&mut self) -> Result<()> {
        self.faild.check_running()?;
        self.failsh.check_running()
    }
}
