//! failsh's monitor port and metrics endpoint, against a real faild and
//! failsh: snapshots are pushed on connect, on change and as refreshes; the
//! Prometheus text parses and says what faild says; bad HTTP gets an error
//! and changes nothing.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use failover::monitor::{Reason, Snapshot};
use failover_tests::{Faild, Failsh, lone_failsh, unique_addr, wait_for};

const BOUND: Duration = Duration::from_secs(30);

/// failsh managing `svc` with a slave nobody answers for (INDOUBT, then
/// FAIL), its metrics endpoint on `metrics_port`.
fn cluster(dir: &std::path::Path, metrics_port: u16) -> (Faild, Failsh) {
    let nobody = IpAddr::V4(unique_addr());
    lone_failsh(dir, Some(nobody), |addr| {
        vec!["-M".into(), format!("{addr}:{metrics_port}")]
    })
    .unwrap()
}

fn next(reader: &mut BufReader<TcpStream>) -> Snapshot {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
}

#[test]
fn snapshots_are_pushed_on_connect_on_change_and_as_refreshes() {
    let tmp = tempfile::tempdir().unwrap();
    let (_faild, failsh) = cluster(tmp.path(), 9848);
    let stream = TcpStream::connect(SocketAddr::new(failsh.addr, 1848)).unwrap();
    stream.set_read_timeout(Some(BOUND)).unwrap();
    let mut reader = BufReader::new(stream);
    let first = next(&mut reader);
    assert_eq!(first.reason, Reason::Connect);
    assert_eq!(first.version, failover::monitor::VERSION);
    assert!(first.hosts.iter().any(|h| h.name == "localhost"));
    assert!(first.hosts.iter().any(|h| h.name == "peer"));
    // The service starts once the silent slave has timed out: pushed as a
    // change, with its start hook and a transition.
    let deadline = Instant::now() + BOUND;
    let up = loop {
        let s = next(&mut reader);
        let svc = &s.services[0];
        if svc.local == "UP" && svc.running && svc.last_hook.is_some() {
            break s;
        }
        assert!(Instant::now() < deadline, "never UP: {}", s.text());
    };
    let svc = &up.services[0];
    assert_eq!(svc.name, "svc");
    assert!(
        svc.transitions >= 1 && svc.last_transition.is_some(),
        "{svc:?}"
    );
    let hook = svc.last_hook.as_ref().unwrap();
    assert_eq!((hook.kind.as_str(), hook.ok), ("start", true), "{hook:?}");
    assert_eq!(svc.peers[0].role, "slave");
    assert_eq!(svc.peers[0].state, "FAIL");
    let localhost = up.hosts.iter().find(|h| h.name == "localhost").unwrap();
    assert!(localhost.last_ok.is_some() && localhost.rtt_ms.is_some());
    let peer = up.hosts.iter().find(|h| h.name == "peer").unwrap();
    assert!(peer.failures > 0 && peer.last_error.is_some(), "{peer:?}");
    // Nothing changes any more: refreshes keep coming, about once a second.
    let mut refreshes = Vec::new();
    while refreshes.len() < 3 {
        let s = next(&mut reader);
        if s.reason == Reason::Refresh {
            refreshes.push(s.at);
        }
    }
    let gaps: Vec<f64> = refreshes.windows(2).map(|w| w[1] - w[0]).collect();
    println!("refresh gaps: {gaps:?}");
    assert!(
        gaps.iter().all(|g| *g >= 0.9),
        "at most once a second: {gaps:?}"
    );
    // ... and they keep coming (generous: a loaded machine).
    assert!(
        gaps.iter().all(|g| *g < 5.0),
        "about once a second: {gaps:?}"
    );
}

/// One HTTP request; the status line and the body.
fn http(addr: SocketAddr, request: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(BOUND)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

/// Parses the text exposition: `name{labels} value` → value; every sample's
/// family must be declared with `# TYPE`.
fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    let mut samples = BTreeMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if line.starts_with('#') {
            assert!(
                line.starts_with("# HELP ") || line.starts_with("# TYPE "),
                "{line}"
            );
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let family = series.split('{').next().unwrap();
        assert!(text.contains(&format!("# TYPE {family} ")), "{line}");
        samples.insert(series.to_string(), value.parse::<f64>().unwrap());
    }
    samples
}

#[test]
fn metrics_endpoint_serves_prometheus_text() {
    let tmp = tempfile::tempdir().unwrap();
    let (faild, failsh) = cluster(tmp.path(), 9849);
    let addr = SocketAddr::new(failsh.addr, 9849);
    let get = || http(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    // UP is claimed before the start hook runs: wait for the hook's end.
    wait_for("the service started, in the metrics", BOUND, || {
        parse_metrics(&get().1)
            .get("failover_hook_runs_total{service=\"svc\",hook=\"start\"}")
            .is_some_and(|v| *v == 1.0)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", failsh.log()));
    let (status, body) = get();
    assert_eq!(status, "HTTP/1.1 200 OK");
    let m = parse_metrics(&body);
    assert_eq!(m["failover_service_running{service=\"svc\"}"], 1.0);
    assert_eq!(
        m["failover_service_state{service=\"svc\",state=\"UP\"}"],
        1.0
    );
    assert_eq!(
        m["failover_service_state{service=\"svc\",state=\"RECOVER\"}"],
        0.0
    );
    assert!(m["failover_service_transitions_total{service=\"svc\"}"] >= 1.0);
    assert_eq!(
        m["failover_hook_runs_total{service=\"svc\",hook=\"start\"}"],
        1.0
    );
    assert!(m.contains_key("failover_hook_seconds_total{service=\"svc\",hook=\"start\"}"));
    assert!(m["failover_peer_rtt_seconds{host=\"localhost\"}"] > 0.0);
    assert!(m["failover_peer_failures_total{host=\"peer\"}"] >= 1.0);
    // faild agrees.
    assert!(faild.failc(&["svc"]).status.success());
    // Bad requests get an error and change nothing.
    assert!(http(addr, "GET /other HTTP/1.1\r\n\r\n").0.contains("404"));
    assert!(
        http(addr, "POST /metrics HTTP/1.1\r\n\r\n")
            .0
            .contains("405")
    );
    let mut junk = TcpStream::connect(addr).unwrap();
    junk.write_all(&[0xff; 20_000]).unwrap();
    drop(junk);
    let (status, body) = get();
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(
        parse_metrics(&body)["failover_service_running{service=\"svc\"}"],
        1.0
    );
}
