//! Signed requests (faild -k, failc -k, failsh key_file) between real
//! processes on loopback: forged, replayed, stale, wrong-key and unsigned
//! requests are refused and change nothing; forged replies are never taken
//! for an answer; keys rotate on SIGHUP.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use failover::auth::{Key, Seal, sign_request};
use failover_tests::{Faild, Failsh, failc, stderr, stdout, udp_request, wait_for};

const RULES: &str = "* public RO\n* genesis RW 127.0.0.0/8\n";
const SECRET1: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const SECRET2: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";
const WRONG: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Writes a key file, mode 0600 as faild wants it.
fn key_file(dir: &Path, name: &str, lines: &[(&str, &str)]) -> PathBuf {
    let path = dir.join(name);
    let text: String = lines
        .iter()
        .map(|(id, secret)| format!("{id} genesis hex:{secret}\n"))
        .collect();
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

fn key(id: &str, secret: &str) -> Key {
    Key::new(
        id,
        Some("genesis"),
        &failover::auth::decode_hex(secret).unwrap(),
    )
    .unwrap()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A fresh random nonce per call.
fn nonce() -> [u8; 16] {
    let mut n = [0; 16];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut n)
        .unwrap();
    n
}

/// Sends one line over a new TCP connection, half-closes, and returns all
/// faild answered.
fn tcp(addr: SocketAddr, line: &str) -> String {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(line.as_bytes()).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn udp(addr: SocketAddr, line: &str) -> String {
    udp_request(addr, line, Duration::from_secs(5)).unwrap()
}

fn signed(k: &Key, time: u64, plain: &str) -> (String, Seal) {
    sign_request(k, time, nonce(), plain)
}

#[test]
fn forged_replayed_stale_wrong_key_and_unsigned_requests_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let keys = key_file(dir.path(), "keys", &[("k1", SECRET1)]);
    let f = Faild::start(dir.path(), Some(RULES), &["-k", keys.to_str().unwrap()]).unwrap();
    let addr = f.socket();
    let k1 = key("k1", SECRET1);

    // failc signs: TCP and UDP; the reply is checked.
    for (transport, state) in [("-T", "FAIL"), ("-U", "RECOVER")] {
        let o = f.failc(&[
            "-k",
            keys.to_str().unwrap(),
            "-c",
            "genesis",
            transport,
            "-s",
            state,
            "vip",
        ]);
        assert_eq!(o.status.code(), Some(0), "{transport}: {}", stderr(&o));
    }
    // A signed request, and its reply sealed and bound to it.
    let (line, seal) = signed(&k1, now(), "FAIL/1 5 genesis SET vip UP\n");
    let reply = tcp(addr, &line);
    assert!(
        seal.open_reply(&reply)
            .unwrap()
            .starts_with("FAIL/1 5 OK 1\nvip UP"),
        "{reply}"
    );
    let before = std::fs::read(f.state_file()).unwrap();

    let denied = |reply: &str, why: &str| {
        assert!(
            reply.contains("ERR DENIED") && reply.contains(why),
            "expected DENIED ({why}): {reply:?}"
        );
    };
    for send in [tcp, udp] {
        // Replayed: the very same bytes again (sealed: the MAC verified).
        let r = send(addr, &line);
        denied(&r, "replayed");
        assert!(
            seal.open_reply(&r).is_ok(),
            "a key holder's refusal is sealed"
        );
        // Forged: signed with a secret faild does not have, under its key id.
        let (forged, _) = signed(&key("k1", WRONG), now(), "FAIL/1 6 genesis SET vip FAIL\n");
        let r = send(addr, &forged);
        denied(&r, "bad signature");
        assert!(r.starts_with("FAIL/1 6 ERR"), "unsealed, with the id: {r}");
        // Tampered: a signed GET turned into a SET.
        let (get, _) = signed(&k1, now(), "FAIL/1 7 genesis GET vip   \n");
        let tampered = get.replace("GET vip   ", "SET vip FAIL");
        denied(&send(addr, &tampered), "bad signature");
        // Stale, both ways.
        for time in [now() - 120, now() + 120] {
            let (stale, _) = signed(&k1, time, "FAIL/1 8 genesis SET vip FAIL\n");
            denied(&send(addr, &stale), "off this host's clock");
        }
        // Unknown key id.
        let (unknown, _) = signed(
            &key("k9", SECRET1),
            now(),
            "FAIL/1 9 genesis SET vip FAIL\n",
        );
        denied(&send(addr, &unknown), "unknown key id");
        // Unsigned, for a community that has a key.
        denied(&send(addr, "FAIL/1 10 genesis SET vip FAIL\n"), "must sign");
        denied(&send(addr, "FAIL/1 11 genesis GET vip\n"), "must sign");
    }
    // failc with the wrong secret: an error, faild's unsigned words shown.
    let wrong = key_file(dir.path(), "wrong", &[("k1", WRONG)]);
    for transport in ["-T", "-U"] {
        let o = f.failc(&[
            "-k",
            wrong.to_str().unwrap(),
            "-c",
            "genesis",
            "-t",
            "1",
            transport,
            "-s",
            "FAIL",
            "vip",
        ]);
        assert_eq!(o.status.code(), Some(6), "{transport}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("reply not authenticated") && stderr(&o).contains("bad signature"),
            "{}",
            stderr(&o)
        );
    }
    // failc unsigned: DENIED.
    let o = f.failc(&["-c", "genesis", "-s", "FAIL", "vip"]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(f.state_file()).unwrap(),
        before,
        "nothing changed"
    );
    // A community without a key still works unsigned.
    let o = f.failc(&["-c", "public", "vip"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(
        out.split_whitespace().take(2).collect::<Vec<_>>(),
        ["vip", "UP"],
        "{out}"
    );
    assert!(f.log().contains("denied a request from"), "{}", f.log());
}

/// A fake faild that answers every request over TCP and UDP with a reply
/// it cannot sign: a FAIL record behind a bad MAC, or an unsigned one.
fn forger(sealed_badly: bool) -> (SocketAddr, impl FnOnce()) {
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = tcp.local_addr().unwrap();
    let udp = UdpSocket::bind(addr).unwrap();
    tcp.set_nonblocking(true).unwrap();
    udp.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = stop.clone();
    let answer = move |line: &str| -> String {
        let plain = line.find("FAIL/1 ").map_or(line, |i| &line[i + 7..]);
        let id = plain.split(' ').next().unwrap_or("0");
        let reply = format!("FAIL/1 {id} OK 1\nvip FAIL - 2026-01-01T00:00:00.000Z 9\n");
        match sealed_badly {
            true => format!("AUTH/1 k1 {}\n{reply}", "ab".repeat(32)),
            false => reply,
        }
    };
    let server = thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut buf = [0u8; 9000];
        while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
            if let Ok((n, peer)) = udp.recv_from(&mut buf) {
                let line = String::from_utf8_lossy(&buf[..n]).trim_end().to_string();
                let _ = udp.send_to(answer(&line).as_bytes(), peer);
            }
            if let Ok((s, _)) = tcp.accept() {
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let mut w = s.try_clone().unwrap();
                let mut line = String::new();
                if BufReader::new(s).read_line(&mut line).is_ok() {
                    let _ = w.write_all(answer(line.trim_end()).as_bytes());
                }
            }
        }
    });
    (addr, move || {
        stopped.store(true, std::sync::atomic::Ordering::Relaxed);
        server.join().unwrap();
    })
}

#[test]
fn failc_never_takes_a_forged_reply() {
    let dir = tempfile::tempdir().unwrap();
    let keys = key_file(dir.path(), "keys", &[("k1", SECRET1)]);
    for sealed_badly in [true, false] {
        let (addr, stop) = forger(sealed_badly);
        for transport in ["-T", "-U"] {
            let port = addr.port().to_string();
            let o = failc(&[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-k",
                keys.to_str().unwrap(),
                "-c",
                "genesis",
                "-t",
                "1",
                transport,
                "vip",
            ]);
            assert_eq!(o.status.code(), Some(6), "{transport}: {}", stderr(&o));
            assert!(
                stderr(&o).contains("reply not authenticated"),
                "{}",
                stderr(&o)
            );
            assert!(o.stdout.is_empty(), "no record printed");
            // Without -k the same unsigned reply is taken: the refusal
            // above is the signature's doing.
            if !sealed_badly {
                let o = failc(&["-h", "127.0.0.1", "-p", &port, "-t", "1", transport, "vip"]);
                assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
            }
        }
        stop();
    }
}

#[test]
fn keys_rotate_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let server_keys = key_file(dir.path(), "keys", &[("k1", SECRET1)]);
    let f = Faild::start(
        dir.path(),
        Some(RULES),
        &["-k", server_keys.to_str().unwrap()],
    )
    .unwrap();
    let old = key_file(dir.path(), "old", &[("k1", SECRET1)]);
    let new = key_file(dir.path(), "new", &[("k2", SECRET2)]);
    let works = |keys: &Path| {
        let o = f.failc(&["-k", keys.to_str().unwrap(), "-c", "genesis", "-l"]);
        o.status.code() == Some(0)
    };
    assert!(works(&old));
    assert!(!works(&new), "k2 unknown yet");

    // Both keys during the switch.
    key_file(dir.path(), "keys", &[("k1", SECRET1), ("k2", SECRET2)]);
    f.signal("HUP");
    wait_for("k2 accepted", Duration::from_secs(10), || works(&new)).unwrap();
    assert!(works(&old), "the old key still works during the switch");

    // Then the old key is withdrawn.
    key_file(dir.path(), "keys", &[("k2", SECRET2)]);
    f.signal("HUP");
    wait_for("k1 refused", Duration::from_secs(10), || !works(&old)).unwrap();
    assert!(works(&new));

    // A broken key file on SIGHUP keeps the keys in force.
    std::fs::write(&server_keys, "k3 genesis hex:00\n").unwrap();
    f.signal("HUP");
    wait_for("the reload error logged", Duration::from_secs(10), || {
        f.log().contains("keys:1:")
    })
    .unwrap();
    assert!(works(&new));
}

#[test]
fn failsh_polls_a_signed_peer_and_ignores_a_forger() {
    let dir = tempfile::tempdir().unwrap();
    let keys = key_file(dir.path(), "keys", &[("k1", SECRET1)]);
    let k = keys.to_str().unwrap().to_string();
    let local = Faild::start(dir.path(), Some(RULES), &["-k", &k]).unwrap();
    let peer_dir = dir.path().join("peer");
    std::fs::create_dir(&peer_dir).unwrap();
    let peer = Faild::start(&peer_dir, Some(RULES), &["-k", &k]).unwrap();
    for f in [&local, &peer] {
        let o = f.failc(&["-k", &k, "-c", "genesis", "-sRECOVER", "svc", "other"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    let o = peer.failc(&["-k", &k, "-c", "genesis", "-sFAIL", "other"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let (forger, stop) = forger(true);

    // svc: master here, slave the signed peer. other: its slave is the
    // forger, which answers FAIL behind a bad MAC: never taken for FAIL.
    let cfg = dir.path().join("host.lua");
    std::fs::write(
        &cfg,
        format!(
            "failhost{{ name = \"localhost\", address = \"{}\", community = \"genesis\", key_file = \"keys\" }}\n\
             failhost{{ name = \"peer\", address = \"{}\", community = \"genesis\", key_file = \"keys\", key_id = \"k1\", protocol = \"udp\" }}\n\
             failhost{{ name = \"forger\", address = \"127.0.0.1\", port = {}, community = \"genesis\", key_file = \"keys\" }}\n\
             failsvc{{ name = \"svc\", interval = 0.2, slaves = {{ \"peer\" }},\n  \
               start = function() return \"UP\" end, stop = function() return \"FAIL\" end }}\n\
             failsvc{{ name = \"other\", interval = 0.2, slaves = {{ \"forger\" }},\n  \
               start = function() return \"UP\" end, stop = function() return \"FAIL\" end }}\n",
            local.addr,
            peer.addr,
            forger.port()
        ),
    )
    .unwrap();
    let mut failsh = Failsh::new(&cfg, local.addr, 1848);
    failsh.restart().unwrap();
    let log = || format!("failsh log:\n{}\nfaild log:\n{}", failsh.log(), local.log());

    // The signed peer is read (RECOVER) and the master starts svc.
    wait_for("svc UP via signed calls", Duration::from_secs(20), || {
        let o = local.failc(&["-k", &k, "-c", "genesis", "svc"]);
        String::from_utf8_lossy(&o.stdout).split_whitespace().nth(1) == Some("UP")
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", log()));
    let snap = failsh.monitor().expect("snapshot");
    let host = |n: &str| snap.hosts.iter().find(|h| h.name == n).unwrap().clone();
    assert!(host("peer").signed && host("localhost").signed);
    assert_eq!(host("peer").auth_failures, 0);
    assert!(host("peer").last_ok.is_some(), "{:?}", host("peer"));

    // The forger's FAIL is not taken: the peer is UNKNOWN (something
    // answered, unauthenticated), which blocks `other` here for good.
    wait_for("auth failures counted", Duration::from_secs(20), || {
        failsh
            .monitor()
            .and_then(|s| s.hosts.into_iter().find(|h| h.name == "forger"))
            .is_some_and(|h| h.auth_failures > 0)
    })
    .unwrap();
    let snap = failsh.monitor().expect("snapshot");
    let other = snap.services.iter().find(|s| s.name == "other").unwrap();
    let forged = other.peers.iter().find(|p| p.host == "forger").unwrap();
    assert_eq!(
        forged.state, "UNKNOWN",
        "a forged FAIL is not taken: {forged:?}"
    );
    assert!(
        snap.text().contains("signed auth-failures="),
        "{}",
        snap.text()
    );
    drop(failsh);
    stop();
}

/// Keys that do not match across two hosts (the master's faild has no key
/// file, or another key id): the slave's signed polls get faild's unsigned
/// DENIED. That is an answer, not silence: the master is UNKNOWN, which
/// blocks the start, and never times out into FAIL, so the slave never
/// starts beside the running master (two hosts UP).
#[test]
fn a_key_mismatch_never_starts_the_slave() {
    let dir = tempfile::tempdir().unwrap();
    let keys = key_file(dir.path(), "keys", &[("k1", SECRET1)]);
    let k = keys.to_str().unwrap().to_string();
    let other = key_file(dir.path(), "other", &[("k2", SECRET2)]);
    let o = other.to_str().unwrap().to_string();
    // (the master faild's key file, its failc -k, failsh's protocol)
    let cases: [(&[&str], &[&str], &str); 2] =
        [(&[], &[], "tcp"), (&["-k", &o], &["-k", &o], "udp")];
    for (n, (master_args, master_k, protocol)) in cases.into_iter().enumerate() {
        let case = dir.path().join(format!("case{n}"));
        let master_dir = case.join("master");
        std::fs::create_dir_all(&master_dir).unwrap();
        let master = Faild::start(&master_dir, Some(RULES), master_args).unwrap();
        let set = [master_k, &["-c", "genesis", "-sUP", "svc"]].concat();
        let out = master.failc(&set);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let local = Faild::start(&case, Some(RULES), &["-k", &k]).unwrap();
        let out = local.failc(&["-k", &k, "-c", "genesis", "-sRECOVER", "svc"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

        let cfg = case.join("slave.lua");
        std::fs::write(
            &cfg,
            format!(
                "failhost{{ name = \"localhost\", address = \"{}\", community = \"genesis\", key_file = \"../keys\" }}\n\
                 failhost{{ name = \"master\", address = \"{}\", community = \"genesis\", key_file = \"../keys\", protocol = \"{protocol}\" }}\n\
                 failsvc{{ name = \"svc\", interval = 0.2, timeout = 0.6, masters = {{ \"master\" }},\n  \
                   start = function() return \"UP\" end, stop = function() return \"FAIL\" end }}\n",
                local.addr, master.addr
            ),
        )
        .unwrap();
        let mut failsh = Failsh::new(&cfg, local.addr, 1848);
        failsh.restart().unwrap();
        let log = || {
            format!(
                "failsh log:\n{}\nmaster faild log:\n{}",
                failsh.log(),
                master.log()
            )
        };
        let local_state = || {
            let out = local.failc(&["-k", &k, "-c", "genesis", "svc"]);
            stdout(&out).split_whitespace().nth(1).map(str::to_string)
        };
        // The master's refusals are seen and counted...
        wait_for(
            "the master's refusals counted",
            Duration::from_secs(20),
            || {
                failsh
                    .monitor()
                    .and_then(|s| s.hosts.into_iter().find(|h| h.name == "master"))
                    .is_some_and(|h| h.auth_failures > 0)
            },
        )
        .unwrap_or_else(|e| panic!("{protocol}: {e}\n{}", log()));
        // ... and for many timeouts the slave stays down.
        let watch = Instant::now();
        while watch.elapsed() < Duration::from_secs(4) {
            let state = local_state();
            assert_eq!(
                state.as_deref(),
                Some("RECOVER"),
                "{protocol}: the slave started beside its running master\n{}",
                log()
            );
            thread::sleep(Duration::from_millis(100));
        }
        let snap = failsh.monitor().expect("snapshot");
        let svc = snap.services.iter().find(|s| s.name == "svc").unwrap();
        let peer = svc.peers.iter().find(|p| p.host == "master").unwrap();
        assert_eq!(peer.state, "UNKNOWN", "{protocol}: {peer:?}");
        let text = failsh.log();
        assert!(
            text.contains("reply not authenticated") && text.contains("unknown key id"),
            "{protocol}: the reason is logged\n{text}"
        );
        assert!(
            text.matches("reply not authenticated").count() <= 3,
            "{protocol}: logged once, not every poll\n{text}"
        );
    }
}

/// faild's nonce cache lives in memory: a request captured before a
/// restart is refused after it (it is stamped before faild's start), with
/// a signed DENIED; requests signed after the restart work.
#[test]
fn a_request_captured_before_a_restart_is_not_replayed_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let keys = key_file(dir.path(), "keys", &[("k1", SECRET1)]);
    let mut f = Faild::start(dir.path(), Some(RULES), &["-k", keys.to_str().unwrap()]).unwrap();
    let k1 = key("k1", SECRET1);
    let o = f.failc(&["-k", keys.to_str().unwrap(), "-c", "genesis", "-sUP", "vip"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let stamped = now();
    let (line, seal) = signed(&k1, stamped, "FAIL/1 5 genesis SET vip FAIL\n");
    let reply = tcp(f.socket(), &line);
    assert!(seal.open_reply(&reply).is_ok(), "{reply}");
    let o = f.failc(&["-k", keys.to_str().unwrap(), "-c", "genesis", "-sUP", "vip"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    // The restart comes in a later second than the capture.
    f.kill9();
    wait_for("the next second", Duration::from_secs(5), || {
        now() > stamped
    })
    .unwrap();
    f.restart().unwrap();
    for send in [tcp, udp] {
        let r = send(f.socket(), &line);
        assert!(
            r.contains("ERR DENIED") && r.contains("before this faild started"),
            "{r}"
        );
        assert!(
            seal.open_reply(&r).is_ok(),
            "a key holder's refusal is sealed"
        );
    }
    let o = f.failc(&["-k", keys.to_str().unwrap(), "-c", "genesis", "vip"]);
    assert_eq!(
        stdout(&o).split_whitespace().nth(1),
        Some("UP"),
        "the replay changed nothing: {}",
        stderr(&o)
    );
    // A request signed now is taken (once faild's start second is over).
    wait_for("a fresh request taken", Duration::from_secs(10), || {
        let (fresh, seal) = signed(&k1, now(), "FAIL/1 6 genesis GET vip\n");
        seal.open_reply(&tcp(f.socket(), &fresh))
            .is_ok_and(|r| r.starts_with("FAIL/1 6 OK 1"))
    })
    .unwrap();
}
