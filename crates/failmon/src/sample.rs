//! A snapshot of a small cluster for the unit tests: failsh on lukretia,
//! hosts localhost and macbeth (and an unreachable one), two services.

use failover::monitor::{
    HookRun, HookStats, HostStatus, PeerStatus, Reason, ServiceStatus, Snapshot, VERSION,
};

fn host(name: &str, address: &str) -> HostStatus {
    HostStatus {
        name: name.into(),
        address: address.into(),
        last_ok: Some(999.5),
        last_failure: None,
        last_error: None,
        rtt_ms: Some(0.25),
        calls: 10,
        failures: 0,
        signed: false,
        auth_failures: 0,
    }
}

pub fn sample() -> Snapshot {
    Snapshot {
        version: VERSION,
        host: "lukretia".into(),
        at: 1000.0,
        reason: Reason::Connect,
        hosts: vec![
            host("localhost", "127.0.0.2:1291"),
            HostStatus {
                signed: true,
                auth_failures: 3,
                ..host("macbeth", "127.0.0.3:1291")
            },
            HostStatus {
                last_ok: Some(940.0),
                last_failure: Some(998.0),
                last_error: Some("connection refused <&>".into()),
                rtt_ms: None,
                failures: 4,
                ..host("ophelia", "127.0.0.4:1291")
            },
        ],
        services: vec![
            ServiceStatus {
                name: "vip".into(),
                interval_s: 1.0,
                timeout_s: 3.0,
                local: "UP".into(),
                running: true,
                internal: Some("RECLAIM".into()),
                busy: None,
                peers: vec![PeerStatus {
                    host: "macbeth".into(),
                    role: "slave".into(),
                    state: "RECOVER".into(),
                    age_s: Some(0.5),
                }],
                decision: Some("reclaim".into()),
                reason: Some("slave macbeth is <UP> & \"busy\"".into()),
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
            },
            ServiceStatus {
                name: "www".into(),
                interval_s: 5.0,
                timeout_s: 15.0,
                local: "RECOVER".into(),
                running: false,
                internal: Some("INDOUBT".into()),
                busy: Some("stop hook".into()),
                peers: vec![
                    PeerStatus {
                        host: "ophelia".into(),
                        role: "master".into(),
                        state: "INDOUBT".into(),
                        age_s: Some(60.0),
                    },
                    PeerStatus {
                        host: "macbeth".into(),
                        role: "slave".into(),
                        state: "FAIL".into(),
                        age_s: None,
                    },
                ],
                decision: Some("wait".into()),
                reason: Some("master ophelia is INDOUBT".into()),
                last_hook: None,
                hooks: Vec::new(),
                last_transition: None,
                transitions: 0,
            },
        ],
    }
}
