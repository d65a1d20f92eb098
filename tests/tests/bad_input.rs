//! Hostile and broken clients: garbage, oversized lines, invalid UTF-8,
//! near-valid writes with the wrong community, a UDP flood, half-open and
//! 1,000 idle connections. faild must answer a normal GET quickly while all
//! of that is still open, and nothing may change.

use std::io::{BufReader, Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use failover_tests::{Faild, read, read_reply, stderr, tcp_request, udp_request};

const RULES: &str = "* public RO\n* genesis RW 127.0.0.0/8\n";

/// Sends `bytes` on a new connection and returns what came back before the
/// connection closed or went quiet for a second.
fn send_raw(f: &Faild, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(f.socket()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let _ = s.write_all(bytes); // faild may close early on an oversized line
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn hostile_clients_change_nothing_and_do_not_delay_others() {
    let dir = tempfile::tempdir().unwrap();
    let f = Faild::start(dir.path(), Some(RULES), &[]).unwrap();
    for (svc, st) in [("vip", "UP"), ("www", "RECOVER")] {
        let o = f.failc(&["-c", "genesis", "-s", st, "-b", "macbeth", svc]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    let list = "FAIL/1 1 public LIST\n";
    let before = tcp_request(f.socket(), list, Duration::from_secs(5)).unwrap();
    let file_before = read(&f.state_file());

    // 1,000 idle connections and 50 half-open ones (a request without its
    // newline), all held open until the end of the test.
    let mut held: Vec<TcpStream> = (0..1000)
        .map(|_| TcpStream::connect(f.socket()).unwrap())
        .collect();
    for _ in 0..50 {
        let mut s = TcpStream::connect(f.socket()).unwrap();
        s.write_all(b"FAIL/1 7 genesis SET vip FA").unwrap();
        held.push(s);
    }

    // Garbage, invalid UTF-8, an oversized line and near-valid writes, each
    // answered with a typed error.
    let near_valid: &[&[u8]] = &[
        b"FAIL/1 5 public SET vip FAIL\n",
        b"FAIL/1 5 genesi SET vip FAIL\n",
        b"FAIL/1 5 GENESIS SET vip FAIL\n",
        b"FAIL/1 5 genesis SET vip FAIL extra words\n",
        b"FAIL/1 5 genesis SET vip DOWN\n",
        b"FAIL/2 5 genesis SET vip FAIL\n",
        b"FAIL/1 5 genesis SET v\xffip FAIL\n",
        b"FAIL/1 5 genesis SET vip\x00 FAIL\n",
        b"FAIL/1 5 genesis DEL -vip\n",
        b"FAIL/1 5 public DEL vip\n",
        b"FAIL/1 x genesis SET vip FAIL\n",
        b"\xff\xfe\xfd\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    ];
    for bytes in near_valid {
        let reply = send_raw(&f, bytes);
        assert!(
            reply.contains(" ERR "),
            "{:?} got {reply:?}",
            String::from_utf8_lossy(bytes)
        );
    }
    let mut huge = vec![b'A'; 1 << 20];
    huge.push(b'\n');
    let reply = send_raw(&f, &huge);
    assert!(reply.contains("ERR TOOBIG"), "1 MiB line: {reply:?}");
    let mut noise = 0x2545_f491_4f6c_dd1du64;
    let mut garbage = vec![0u8; 64 * 1024];
    for b in garbage.iter_mut() {
        noise ^= noise << 13;
        noise ^= noise >> 7;
        noise ^= noise << 17;
        *b = noise as u8;
    }
    let _ = send_raw(&f, &garbage);

    // A UDP flood of the same, plus oversized datagrams, denied writes and
    // LISTs, sent from another thread *while* the GETs below are timed.
    let flooding = std::sync::atomic::AtomicBool::new(true);
    let target = f.socket();
    std::thread::scope(|scope| {
        let flood = scope.spawn(|| {
            let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
            let big = vec![b'F'; 60_000];
            let mut sent = 0;
            let deadline = Instant::now() + Duration::from_secs(20);
            for i in 0..200_000usize {
                if !flooding.load(std::sync::atomic::Ordering::Relaxed) || Instant::now() > deadline
                {
                    break;
                }
                let d: &[u8] = match i % 6 {
                    0 => near_valid[i / 6 % near_valid.len()],
                    1 => &garbage[i % 1000..i % 1000 + 200],
                    2 => &big,
                    3 => b"FAIL/1 9 public LIST",
                    4 => format!("FAIL/1 {i} wrong SET vip FAIL\n").leak().as_bytes(),
                    _ => b"FAIL/1 9 public SET vip FAIL",
                };
                if udp.send_to(d, target).is_ok() {
                    sent += 1;
                }
            }
            sent
        });

        // While all of it goes on, a GET on a new TCP connection is answered
        // within 100 ms. A UDP GET is answered too, but a flood faster than
        // faild drains its socket makes the kernel drop datagrams, ours
        // included, so it takes resends; its figure is printed.
        let mut worst = (0.0f64, 0.0f64);
        for _ in 0..10 {
            let t = Instant::now();
            let r =
                tcp_request(target, "FAIL/1 2 public GET vip\n", Duration::from_secs(5)).unwrap();
            let tcp_ms = t.elapsed().as_secs_f64() * 1e3;
            let t = Instant::now();
            let u = udp_request(target, "FAIL/1 3 public GET vip", Duration::from_secs(5)).unwrap();
            let udp_ms = t.elapsed().as_secs_f64() * 1e3;
            assert!(
                r.contains("vip UP macbeth") && u.contains("vip UP macbeth"),
                "{r:?} {u:?}"
            );
            worst = (worst.0.max(tcp_ms), worst.1.max(udp_ms));
        }
        flooding.store(false, std::sync::atomic::Ordering::Relaxed);
        let sent = flood.join().unwrap();
        println!(
            "with {} connections held, during a flood of {sent} datagrams: worst TCP GET {:.2} ms, worst UDP GET {:.2} ms (with resends every 20 ms)",
            held.len(),
            worst.0,
            worst.1
        );
        assert!(
            sent > 1_000,
            "the flood ran while the GETs were timed ({sent} datagrams)"
        );
        assert!(
            worst.0 < 100.0,
            "TCP GET took {:.1} ms during the flood",
            worst.0
        );
    });

    // The flood over, the held connections still open: both transports
    // answer within 100 ms.
    for _ in 0..3 {
        let t = Instant::now();
        let r = tcp_request(target, "FAIL/1 2 public GET vip\n", Duration::from_secs(5)).unwrap();
        let tcp_ms = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let u = udp_request(target, "FAIL/1 3 public GET vip", Duration::from_secs(5)).unwrap();
        let udp_ms = t.elapsed().as_secs_f64() * 1e3;
        println!(
            "with {} connections held: TCP GET {tcp_ms:.2} ms, UDP GET {udp_ms:.2} ms",
            held.len()
        );
        assert!(
            r.contains("vip UP macbeth") && u.contains("vip UP macbeth"),
            "{r:?} {u:?}"
        );
        assert!(
            tcp_ms < 100.0 && udp_ms < 100.0,
            "TCP {tcp_ms:.1} ms, UDP {udp_ms:.1} ms"
        );
    }

    // One of the held idle connections still works too (faild's cap is far
    // above 1,050, so none was evicted).
    let mut s = held.swap_remove(0);
    s.write_all(b"FAIL/1 4 public GET www\n").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert!(
        read_reply(&mut BufReader::new(&s))
            .unwrap()
            .contains("www RECOVER")
    );

    drop(held);
    let after = tcp_request(f.socket(), list, Duration::from_secs(5)).unwrap();
    assert_eq!(after, before, "no state, time or counter changed");
    assert_eq!(read(&f.state_file()), file_before, "state file untouched");
    assert!(!f.log().contains("panicked"), "{}", f.log());
}

#[test]
fn at_the_connection_cap_the_longest_idle_connection_makes_room() {
    let dir = tempfile::tempdir().unwrap();
    let f = Faild::start(dir.path(), Some(RULES), &["--max-connections", "20"]).unwrap();
    let mut idle: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(f.socket()).unwrap())
        .collect();
    // Make every connection but the first active, so the first is the
    // longest idle.
    for s in idle.iter_mut().skip(1) {
        s.write_all(b"FAIL/1 1 public LIST\n").unwrap();
        read_reply(&mut BufReader::new(&*s)).unwrap();
    }
    let r = tcp_request(f.socket(), "FAIL/1 2 public LIST\n", Duration::from_secs(5)).unwrap();
    assert!(r.starts_with("FAIL/1 2 OK"), "{r:?}");
    let first = &mut idle[0];
    first
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(
        first.read(&mut buf).unwrap_or(0),
        0,
        "the longest-idle connection was closed"
    );
}

#[test]
fn a_request_cut_short_by_the_client_is_not_executed() {
    let dir = tempfile::tempdir().unwrap();
    let f = Faild::start(dir.path(), Some(RULES), &[]).unwrap();
    let o = f.failc(&["-c", "genesis", "-s", "UP", "-b", "macbeth", "vip"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // A client killed while writing `... SET vip FAIL macbeth\n`.
    let reply = send_raw(&f, b"FAIL/1 5 genesis SET vip FAIL mac");
    assert!(reply.contains("ERR BADREQ"), "{reply:?}");
    let r = tcp_request(
        f.socket(),
        "FAIL/1 6 public GET vip\n",
        Duration::from_secs(5),
    )
    .unwrap();
    assert!(r.contains("vip UP macbeth"), "unchanged: {r:?}");
}

#[test]
fn a_resent_udp_write_is_done_once() {
    let dir = tempfile::tempdir().unwrap();
    let f = Faild::start(dir.path(), Some(RULES), &[]).unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.connect(f.socket()).unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 2048];
    let mut call = |req: &str| {
        udp.send(req.as_bytes()).unwrap();
        let n = udp.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    // The same SET sent twice: both answers say CREATED, and it counts once.
    let first = call("FAIL/1 77 genesis SET vip UP");
    let again = call("FAIL/1 77 genesis SET vip UP");
    assert!(first.contains("CREATED"), "{first:?}");
    assert_eq!(again, first, "a resend gets the first answer");
    // Another client's newer change is not undone by a late duplicate.
    let o = f.failc(&["-c", "genesis", "-s", "FAIL", "vip"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(call("FAIL/1 77 genesis SET vip UP"), first);
    let r = tcp_request(
        f.socket(),
        "FAIL/1 6 public GET vip\n",
        Duration::from_secs(5),
    )
    .unwrap();
    assert!(
        r.contains("vip FAIL - ") && r.trim_end().ends_with(" 2"),
        "{r:?}"
    );
    // A resent DEL still answers OK rather than NOSUCH.
    let del = call("FAIL/1 78 genesis DEL vip");
    assert!(del.starts_with("FAIL/1 78 OK 1"), "{del:?}");
    assert_eq!(call("FAIL/1 78 genesis DEL vip"), del);
}
