//! UDP amplification: faild never answers a datagram with more than three
//! times its size (a spoofed source would otherwise turn faild into a
//! reflector), and its UDP clients (failc, failsh) still work with records
//! that carry 128-character backup hosts, by padding their requests.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use failover_tests::{Faild, Failsh, stderr, stdout, wait_for};

const RULES: &str = "* public RO\n* genesis RW 127.0.0.0/8\n";

/// A backup host name of the longest length allowed.
fn long_backup(tag: char) -> String {
    std::iter::once(tag)
        .chain(std::iter::repeat_n('b', 127))
        .collect()
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:02}")).collect()
}

/// Registers `services` in `state` with a 128-character backup host, over TCP.
fn register(f: &Faild, services: &[String], state: &str) {
    let backup = long_backup('x');
    let args: Vec<&str> = ["-c", "genesis", "-T", "-s", state, "-b", &backup]
        .into_iter()
        .chain(services.iter().map(String::as_str))
        .collect();
    let o = f.failc(&args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// Sends `datagram` and returns the sizes of every reply it drew.
///
/// A write (SET, DEL) is always answered, after its disk write: it is resent
/// with the same id (a resend is answered from faild's cache) until the
/// reply comes. For anything else, a marker GET sent after it from the same
/// socket bounds the wait: faild answers a socket's reads in order, so once
/// the marker's reply is in, any reply to `datagram` is too (both are resent
/// until then, as loopback may drop under load; a resent read draws the same
/// reply).
fn replies_to(target: SocketAddr, datagram: &[u8], write: bool) -> Vec<usize> {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.connect(target).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let marker = padded(4_242_424_242, &["marker"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = vec![0u8; 70_000];
    let mut sizes = Vec::new();
    while Instant::now() < deadline {
        sizes.clear();
        s.send(datagram).unwrap();
        if write {
            if let Ok(n) = s.recv(&mut buf) {
                return vec![n];
            }
            continue;
        }
        s.send(marker.as_bytes()).unwrap();
        while let Ok(n) = s.recv(&mut buf) {
            if buf[..n].starts_with(b"FAIL/1 4242424242 ") {
                return sizes;
            }
            sizes.push(n);
        }
    }
    panic!("no reply from {target}");
}

/// A GET as failc and failsh send it over UDP: padded.
fn padded(id: u64, names: &[&str]) -> String {
    failover::proto::udp::encode_padded(&failover::proto::Request {
        id,
        community: "public".into(),
        op: failover::proto::Op::Get(names.iter().map(|n| n.to_string()).collect()),
    })
}

#[test]
fn udp_replies_are_at_most_three_times_the_request() {
    let dir = tempfile::tempdir().unwrap();
    let f = Faild::start(dir.path(), Some(RULES), &[]).unwrap();
    let services = names("s", 40);
    register(&f, &services, "RECOVER");
    register(&f, &["marker".to_string()], "UP");
    let target = f.socket();

    let all = services.join(" ");
    let long_name = "n".repeat(128);
    let twelve: Vec<&str> = services[..12].iter().map(String::as_str).collect();
    let requests: Vec<(&str, Vec<u8>)> = vec![
        (
            "GET of 1, padded (as failc sends it)",
            padded(1, &["s00"]).into_bytes(),
        ),
        (
            "GET of 12, padded (as failsh sends it)",
            padded(1, &twelve).into_bytes(),
        ),
        ("GET of 1", b"FAIL/1 1 public GET s00".to_vec()),
        ("GET of 1, newline", b"FAIL/1 1 public GET s00\n".to_vec()),
        (
            "GET of 6",
            b"FAIL/1 1 public GET s00 s01 s02 s03 s04 s05".to_vec(),
        ),
        (
            "GET of 40",
            format!("FAIL/1 1 public GET {all}").into_bytes(),
        ),
        (
            "GET of 1 with the shortest id",
            b"FAIL/1 0 public GET s39".to_vec(),
        ),
        (
            "GET of a 128-char name (no such)",
            format!("FAIL/1 1 public GET {long_name}").into_bytes(),
        ),
        (
            "SET keeping the long backup",
            b"FAIL/1 77 genesis SET s01 RECOVER".to_vec(),
        ),
        ("DEL of no such", b"FAIL/1 78 genesis DEL zz".to_vec()),
        ("LIST", b"FAIL/1 1 public LIST".to_vec()),
        ("denied", b"FAIL/1 1 guess GET s00".to_vec()),
        ("junk: FAIL/", b"FAIL/".to_vec()),
        ("junk: FAIL/1", b"FAIL/1".to_vec()),
        ("junk: FAIL/9", b"FAIL/9 x".to_vec()),
        ("junk: bad op", b"FAIL/1 1 public FROB".to_vec()),
        ("junk: two lines", b"FAIL/1 1 public GET a\nb\n".to_vec()),
        ("junk: not UTF-8", b"FAIL/1 \xff\xfe".to_vec()),
        ("junk: not ours", b"GET / HTTP/1.0\r\n\r\n".to_vec()),
        (
            "oversized",
            [b"FAIL/1 1 public GET ".as_slice(), &[b'a'; 9000]].concat(),
        ),
    ];
    let mut worst = (0.0f64, "");
    println!(
        "{:<45} {:>8} {:>8} {:>6}",
        "request", "request", "reply", "ratio"
    );
    for (what, datagram) in &requests {
        let write = what.starts_with("SET") || what.starts_with("DEL");
        for reply in replies_to(target, datagram, write) {
            let ratio = reply as f64 / datagram.len() as f64;
            println!("{what:<45} {:>8} {reply:>8} {ratio:>6.2}", datagram.len());
            if ratio > worst.0 {
                worst = (ratio, what);
            }
        }
    }
    println!(
        "UDP amplification factor: at most {:.2} ({})",
        worst.0, worst.1
    );
    assert!(
        worst.0 <= 3.0,
        "a reply more than 3 times its request: {:.2} ({})",
        worst.0,
        worst.1
    );
}

#[test]
fn failc_over_udp_reads_and_writes_records_with_long_backup_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let f = Faild::start(dir.path(), Some(RULES), &[]).unwrap();
    let services = names("svc", 30);
    register(&f, &services, "RECOVER");
    let backup = long_backup('x');

    // One service, then all of them, in one failc call.
    let o = f.failc(&["-U", "svc00"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains(&backup), "{}", stdout(&o));
    let mut args = vec!["-U"];
    args.extend(services.iter().map(String::as_str));
    let o = f.failc(&args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o).matches(&backup).count(),
        services.len(),
        "{}",
        stdout(&o)
    );
    // A SET that keeps the stored long backup draws it back in its reply.
    let o = f.failc(&["-U", "-c", "genesis", "-s", "FAIL", "svc01"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains(&backup), "{}", stdout(&o));
    let other = long_backup('y');
    let o = f.failc(&["-U", "-c", "genesis", "-s", "UP", "-b", &other, "svc02"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains(&other), "{}", stdout(&o));
}

#[test]
fn failsh_over_udp_polls_and_sets_records_with_long_backup_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let (local_dir, peer_dir) = (dir.path().join("local"), dir.path().join("peer"));
    std::fs::create_dir_all(&local_dir).unwrap();
    std::fs::create_dir_all(&peer_dir).unwrap();
    let local = Faild::start(&local_dir, Some(RULES), &[]).unwrap();
    let peer = Faild::start(&peer_dir, Some(RULES), &[]).unwrap();
    // 16 services polled together: one batch of GETs per tick, each record
    // with a 128-character backup host on both sides.
    let services = names("svc", 16);
    register(&local, &services, "RECOVER");
    register(&peer, &services, "FAIL");
    let udp_host = |name: &str, addr: IpAddr, community: &str| {
        format!(
            "failhost(\"{name}\", \"address\", \"{addr}\")\nfailhost(\"{name}\", \"protocol\", \"udp\")\n\
             failhost(\"{name}\", \"community\", \"{community}\")\n"
        )
    };
    let mut config = udp_host("localhost", local.addr, "genesis");
    config.push_str(&udp_host("peer", peer.addr, "public"));
    for s in &services {
        config.push_str(&format!(
            "failsvc{{ name = \"{s}\", interval = 0.2, slaves = {{ \"peer\" }},\n  \
             start = function() return \"UP\" end, stop = function() return \"FAIL\" end }}\n"
        ));
    }
    let cfg = dir.path().join("host.lua");
    std::fs::write(&cfg, config).unwrap();
    let mut failsh = Failsh::new(&cfg, local.addr, 1848);
    failsh.restart().unwrap();

    // Every service seen FAIL at the peer (GETs answered) and started here
    // (its claim, a SET whose reply carries the long backup, answered).
    let done = wait_for(
        "failsh to poll and start every service",
        Duration::from_secs(60),
        || {
            failsh.monitor().is_some_and(|s| {
                s.services.len() == services.len()
                    && s.services
                        .iter()
                        .all(|svc| svc.local == "UP" && svc.peers.iter().all(|p| p.state == "FAIL"))
            })
        },
    );
    let snapshot = failsh.snapshot();
    done.unwrap_or_else(|e| panic!("{e}\n{snapshot}\nlog:\n{}", failsh.log()));
    let snap = failsh.monitor().unwrap();
    for h in &snap.hosts {
        assert!(h.calls > 0, "{snapshot}");
        assert!(
            h.last_error
                .as_deref()
                .is_none_or(|e| !e.contains("TOOBIG")),
            "{snapshot}"
        );
    }
    println!("{snapshot}");
}
