//! What failsh tells its monitors: one [`Snapshot`] per push on the monitor
//! port (a JSON line, `docs/monitor-protocol.md`), rendered as text for
//! `failmon -1`, the SIGINT dump and line mode, and as Prometheus metrics.
//!
//! Pure: failsh fills the snapshot, failmon reads it; both share these types
//! so the two ends cannot drift apart.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// Version of the snapshot format; bumped on incompatible changes.
pub const VERSION: u32 = 1;

/// Default TCP port of failsh's monitor port (the original's failmon default).
pub const DEFAULT_MONITOR_PORT: u16 = 1848;

/// Why a snapshot was pushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reason {
    /// The first push on a new connection.
    Connect,
    /// Something changed: a state, a decision, a hook run.
    Change,
    /// Ages and round-trip times moved on (at most once a second).
    Refresh,
}

/// Everything failsh knows, at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: u32,
    /// The host failsh runs on (its node name).
    pub host: String,
    /// When the snapshot was taken, Unix seconds.
    pub at: f64,
    pub reason: Reason,
    pub hosts: Vec<HostStatus>,
    pub services: Vec<ServiceStatus>,
}

/// One host of the config (localhost included): how calls to its faild go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostStatus {
    pub name: String,
    /// Its faild's address, `ip:port`.
    pub address: String,
    /// Last call that got an answer, Unix seconds.
    pub last_ok: Option<f64>,
    /// Last call that got none (or an unreadable one), Unix seconds.
    pub last_failure: Option<f64>,
    /// What went wrong then.
    pub last_error: Option<String>,
    /// Round-trip time of the last answered call, milliseconds.
    pub rtt_ms: Option<f64>,
    /// Calls made and calls that failed since failsh started.
    pub calls: u64,
    pub failures: u64,
    /// Requests to it are signed (`failhost` `key_file`).
    #[serde(default)]
    pub signed: bool,
    /// Replies that failed authentication (forged or unsigned), each taken
    /// as no answer.
    #[serde(default)]
    pub auth_failures: u64,
}

/// One service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceStatus {
    pub name: String,
    pub interval_s: f64,
    pub timeout_s: f64,
    /// The local faild's record: UP, RECOVER, FAIL, NOSUCH, UNAVAILABLE, or
    /// `-` before the first poll.
    pub local: String,
    /// The service runs here (failsh started or adopted it).
    pub running: bool,
    /// failsh's internal state, if any: RECLAIM, or INDOUBT while a peer
    /// cannot be read.
    pub internal: Option<String>,
    /// What failsh is doing right now (a hook, a write), if anything.
    pub busy: Option<String>,
    pub peers: Vec<PeerStatus>,
    /// The last decision and why.
    pub decision: Option<String>,
    pub reason: Option<String>,
    /// The last hook run, of any kind.
    pub last_hook: Option<HookRun>,
    /// Per hook kind: runs, failures, time spent.
    pub hooks: Vec<HookStats>,
    /// When `local` or `running` last changed, Unix seconds.
    pub last_transition: Option<f64>,
    /// How many times they changed since failsh started.
    pub transitions: u64,
}

/// One master or slave of a service, as failsh last saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerStatus {
    pub host: String,
    /// `master` or `slave`.
    pub role: String,
    /// UP, RECOVER, FAIL, INDOUBT or UNKNOWN.
    pub state: String,
    /// Seconds since its last answer (none: never answered).
    pub age_s: Option<f64>,
}

/// A hook call and how it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HookRun {
    /// start, stop, reclaim or check.
    pub kind: String,
    /// When it ended, Unix seconds.
    pub at: f64,
    pub duration_s: f64,
    pub ok: bool,
    /// What it returned, or why it failed.
    pub result: String,
}

/// Totals of one hook kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HookStats {
    pub kind: String,
    pub runs: u64,
    pub failures: u64,
    pub seconds: f64,
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// Seconds as a short age: `0.4s`, `12s`, `3m05s`, `2h10m`.
pub fn age(secs: f64) -> String {
    let s = secs.max(0.0);
    if s < 10.0 {
        format!("{s:.1}s")
    } else if s < 60.0 {
        format!("{s:.0}s")
    } else if s < 3600.0 {
        format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!(
            "{}h{:02}m",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        )
    }
}

impl HostStatus {
    /// Whether calls to the host are signed, and how many replies failed
    /// authentication: `signed, 2 auth failures` or `unsigned`.
    pub fn signing(&self) -> String {
        match self.signed {
            true => format!("signed, {} auth failures", self.auth_failures),
            false => "unsigned".into(),
        }
    }
}

impl ServiceStatus {
    /// One line: name, local state, flags, peers and the last decision.
    pub fn line(&self) -> String {
        let peers: Vec<String> = self
            .peers
            .iter()
            .map(|p| format!("{}={}", p.host, p.state))
            .collect();
        format!(
            "{} local={} running={} reclaim={} busy={} peers=[{}] decision=\"{}\"",
            self.name,
            self.local,
            yes(self.running),
            yes(self.internal.as_deref() == Some("RECLAIM")),
            self.busy.as_deref().unwrap_or("-"),
            peers.join(", "),
            self.reason.as_deref().unwrap_or(""),
        )
    }
}

impl Snapshot {
    /// The text form (`failmon -1`, line mode, failsh's SIGINT dump): the
    /// hosts, then one line per service.
    pub fn text(&self) -> String {
        let mut out = format!(
            "failsh on {} — {} host(s), {} service(s)\n",
            self.host,
            self.hosts.len(),
            self.services.len()
        );
        for h in &self.hosts {
            let since = |t: Option<f64>| t.map_or("never".to_string(), |t| age(self.at - t));
            let _ = writeln!(
                out,
                "host {} {} last-ok={} last-failure={} rtt={}{}{}",
                h.name,
                h.address,
                since(h.last_ok),
                since(h.last_failure),
                h.rtt_ms.map_or("-".into(), |r| format!("{r:.2}ms")),
                match h.signed {
                    true => format!(" signed auth-failures={}", h.auth_failures),
                    false => String::new(),
                },
                h.last_error
                    .as_ref()
                    .map_or(String::new(), |e| format!(" error=\"{e}\"")),
            );
        }
        for s in &self.services {
            let _ = writeln!(out, "{}", s.line());
        }
        out
    }

    /// The Prometheus text exposition of the snapshot.
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, String)>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in rows {
                let _ = writeln!(out, "{name}{{{labels}}} {value}");
            }
        };
        let svc = |s: &ServiceStatus| format!("service=\"{}\"", escape(&s.name));
        family(
            "failover_service_state",
            "gauge",
            "1 for the local faild's state of the service, 0 for the others.",
            self.services
                .iter()
                .flat_map(|s| {
                    ["UP", "RECOVER", "FAIL"].into_iter().map(move |st| {
                        (
                            format!("{},state=\"{st}\"", svc(s)),
                            u8::from(s.local == st).to_string(),
                        )
                    })
                })
                .collect(),
        );
        family(
            "failover_service_running",
            "gauge",
            "1 while the service runs on this host.",
            self.services
                .iter()
                .map(|s| (svc(s), u8::from(s.running).to_string()))
                .collect(),
        );
        family(
            "failover_service_reclaim",
            "gauge",
            "1 while the service is in RECLAIM.",
            self.services
                .iter()
                .map(|s| {
                    let r = s.internal.as_deref() == Some("RECLAIM");
                    (svc(s), u8::from(r).to_string())
                })
                .collect(),
        );
        family(
            "failover_service_transitions_total",
            "counter",
            "Changes of the local state or of running since failsh started.",
            self.services
                .iter()
                .map(|s| (svc(s), s.transitions.to_string()))
                .collect(),
        );
        let hooks = |f: fn(&HookStats) -> String| -> Vec<(String, String)> {
            self.services
                .iter()
                .flat_map(|s| {
                    s.hooks
                        .iter()
                        .map(move |h| (format!("{},hook=\"{}\"", svc(s), escape(&h.kind)), f(h)))
                })
                .collect()
        };
        family(
            "failover_hook_runs_total",
            "counter",
            "Hook calls.",
            hooks(|h| h.runs.to_string()),
        );
        family(
            "failover_hook_failures_total",
            "counter",
            "Hook calls that failed (error, time limit, bad result).",
            hooks(|h| h.failures.to_string()),
        );
        family(
            "failover_hook_seconds_total",
            "counter",
            "Time spent in hook calls.",
            hooks(|h| h.seconds.to_string()),
        );
        let host = |h: &HostStatus| format!("host=\"{}\"", escape(&h.name));
        family(
            "failover_peer_rtt_seconds",
            "gauge",
            "Round-trip time of the last answered call to the host's faild.",
            self.hosts
                .iter()
                .filter_map(|h| Some((host(h), (h.rtt_ms? / 1000.0).to_string())))
                .collect(),
        );
        family(
            "failover_peer_calls_total",
            "counter",
            "Calls to the host's faild.",
            self.hosts
                .iter()
                .map(|h| (host(h), h.calls.to_string()))
                .collect(),
        );
        family(
            "failover_peer_failures_total",
            "counter",
            "Calls to the host's faild that got no (readable) answer.",
            self.hosts
                .iter()
                .map(|h| (host(h), h.failures.to_string()))
                .collect(),
        );
        family(
            "failover_peer_auth_failures_total",
            "counter",
            "Replies from the host's faild that failed authentication (signed hosts).",
            self.hosts
                .iter()
                .filter(|h| h.signed)
                .map(|h| (host(h), h.auth_failures.to_string()))
                .collect(),
        );
        out
    }
}

/// A Prometheus label value: backslash, quote and newline escaped.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Snapshot {
        Snapshot {
            version: VERSION,
            host: "lukretia".into(),
            at: 1000.0,
            reason: Reason::Connect,
            hosts: vec![HostStatus {
                name: "macbeth".into(),
                address: "127.0.0.3:1291".into(),
                last_ok: Some(999.5),
                last_failure: None,
                last_error: None,
                rtt_ms: Some(0.25),
                calls: 10,
                failures: 1,
                signed: true,
                auth_failures: 2,
            }],
            services: vec![ServiceStatus {
                name: "vip\"1".into(),
                interval_s: 1.0,
                timeout_s: 3.0,
                local: "UP".into(),
                running: true,
                internal: Some("RECLAIM".into()),
                busy: None,
                peers: vec![PeerStatus {
                    host: "macbeth".into(),
                    role: "slave".into(),
                    state: "UP".into(),
                    age_s: Some(0.5),
                }],
                decision: Some("wait".into()),
                reason: Some("RECLAIM: slave macbeth is UP too".into()),
                last_hook: Some(HookRun {
                    kind: "start".into(),
                    at: 990.0,
                    duration_s: 0.2,
                    ok: true,
                    result: "returned UP".into(),
                }),
                hooks: vec![HookStats {
                    kind: "start".into(),
                    runs: 1,
                    failures: 0,
                    seconds: 0.2,
                }],
                last_transition: Some(990.0),
                transitions: 2,
            }],
        }
    }

    #[test]
    fn json_round_trip() {
        let s = sample();
        let json = serde_json::to_string(&s).unwrap();
        assert!(!json.contains('\n'), "one line per snapshot");
        assert_eq!(serde_json::from_str::<Snapshot>(&json).unwrap(), s);
    }

    #[test]
    fn text_has_hosts_and_one_line_per_service() {
        let t = sample().text();
        assert!(
            t.contains("host macbeth 127.0.0.3:1291 last-ok=0.5s last-failure=never rtt=0.25ms signed auth-failures=2")
        );
        assert!(t.contains(
            "vip\"1 local=UP running=yes reclaim=yes busy=- peers=[macbeth=UP] decision=\"RECLAIM: slave macbeth is UP too\""
        ));
    }

    #[test]
    fn prometheus_families_and_escaped_labels() {
        let p = sample().prometheus();
        assert!(p.contains("failover_service_state{service=\"vip\\\"1\",state=\"UP\"} 1"));
        assert!(p.contains("failover_service_state{service=\"vip\\\"1\",state=\"FAIL\"} 0"));
        assert!(p.contains("failover_service_transitions_total{service=\"vip\\\"1\"} 2"));
        assert!(p.contains("failover_hook_seconds_total{service=\"vip\\\"1\",hook=\"start\"} 0.2"));
        assert!(p.contains("failover_peer_rtt_seconds{host=\"macbeth\"} 0.00025"));
        assert!(p.contains("failover_peer_auth_failures_total{host=\"macbeth\"} 2"));
        // Every sample line belongs to a declared family.
        for line in p.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split('{').next().unwrap();
            assert!(p.contains(&format!("# TYPE {name} ")), "{line}");
        }
    }

    #[test]
    fn ages_are_short() {
        assert_eq!(age(0.42), "0.4s");
        assert_eq!(age(42.0), "42s");
        assert_eq!(age(185.0), "3m05s");
        assert_eq!(age(7800.0), "2h10m");
    }
}
