//! Crash storm: faild is SIGKILLed at random instants while several clients
//! send SETs, over many cycles. After every kill faild must start again on
//! its state file, and every SET it acknowledged must be there: each
//! service's record is exactly the last acknowledged one, or — when a SET of
//! that service was in flight, sent but not acknowledged, at the kill — that
//! SET applied on top of it (written before the reply could leave).
//!
//! Short in the suite (25 cycles); longer on demand:
//! `FAILD_CRASH_CYCLES=1000 cargo nextest run -p failover-tests --test crash_storm --no-capture`
//! (`FAILD_CRASH_SEED` repeats a run; the seed is printed).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use failover::proto::{Item, Reply};
use failover::{Record, State};
use failover_tests::{Faild, read_reply, tcp_request};

const CLIENTS: usize = 4;
const SERVICES_PER_CLIENT: usize = 4;
/// The kill comes 0 to this many ms after the clients start.
const MAX_DELAY_MS: u64 = 150;

/// A small seeded generator (splitmix64), so a failing run can be repeated.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}

/// What a client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Change {
    service: String,
    state: State,
    backup: String,
}

/// What one client saw in one cycle: the SETs faild acknowledged, with the
/// record each reply carried, and the SET it was waiting on at the kill.
#[derive(Default)]
struct Seen {
    acked: Vec<(Change, Record)>,
    in_flight: Option<Change>,
}

/// Sends SETs of the client's own services one after the other over one
/// connection until faild goes away. Every SET changes the backup host, so
/// every one bumps the change counter.
fn storm(target: SocketAddr, client: usize, seed: u64, seq: &mut u64) -> Seen {
    let mut rng = Rng(seed);
    let mut seen = Seen::default();
    let Ok(stream) = TcpStream::connect_timeout(&target, Duration::from_secs(5)) else {
        return seen;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(20)));
    let mut reader = BufReader::new(stream);
    loop {
        *seq += 1;
        let change = Change {
            service: format!("storm-c{client}-s{}", rng.below(SERVICES_PER_CLIENT as u64)),
            state: [State::Up, State::Recover, State::Fail][rng.below(3) as usize],
            backup: format!("c{client}x{seq}"),
        };
        let line = format!(
            "FAIL/1 {seq} genesis SET {} {} {}\n",
            change.service, change.state, change.backup
        );
        seen.in_flight = Some(change.clone());
        if reader.get_mut().write_all(line.as_bytes()).is_err() {
            return seen;
        }
        let Ok(text) = read_reply(&mut reader) else {
            return seen;
        };
        match Reply::decode(&text) {
            Ok(Reply::Items { mut items, .. }) => match items.pop() {
                Some(Item::Found(name, record)) if name == change.service => {
                    seen.in_flight = None;
                    seen.acked.push((change, record));
                }
                other => panic!("SET {line:?} answered {other:?}"),
            },
            // Not done: faild stopping (STORAGE) or the like.
            Ok(Reply::Error(e)) => panic!("SET {line:?} refused: {e}"),
            Err(_) => return seen, // cut off by the kill
        }
    }
}

/// Every record faild serves, by service.
fn records(f: &Faild) -> BTreeMap<String, Record> {
    let text = tcp_request(
        f.socket(),
        "FAIL/1 1 genesis LIST\n",
        Duration::from_secs(20),
    )
    .expect("LIST after restart");
    let Ok(Reply::Items { items, .. }) = Reply::decode(&text) else {
        panic!("LIST answered {text:?}")
    };
    items
        .into_iter()
        .filter_map(|i| match i {
            Item::Found(n, r) => Some((n, r)),
            Item::Missing(..) => None,
        })
        .collect()
}

#[test]
fn acknowledged_sets_survive_sigkill_at_random_instants() {
    let cycles: usize = std::env::var("FAILD_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(25);
    let seed: u64 = std::env::var("FAILD_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!(
        "crash storm: seed {seed}, {cycles} cycles, {CLIENTS} clients (FAILD_CRASH_SEED={seed} repeats it)"
    );
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut f = Faild::start(dir.path(), Some("* genesis RW 127.0.0.0/8\n"), &[]).unwrap();
    let mut seqs = [0u64; CLIENTS];
    // The record each service must have: the last one acknowledged (or
    // found after a restart).
    let mut expected: BTreeMap<String, Record> = BTreeMap::new();
    let (mut acked, mut in_flight_applied, mut in_flight_lost) = (0usize, 0usize, 0usize);
    let started = Instant::now();
    for cycle in 0..cycles {
        let delay = Duration::from_millis(rng.below(MAX_DELAY_MS + 1));
        let seeds: Vec<u64> = (0..CLIENTS).map(|_| rng.below(u64::MAX)).collect();
        let target = f.socket();
        let seen: Vec<Seen> = std::thread::scope(|s| {
            let clients: Vec<_> = seqs
                .iter_mut()
                .zip(&seeds)
                .enumerate()
                .map(|(c, (seq, &seed))| s.spawn(move || storm(target, c, seed, seq)))
                .collect();
            // A random instant, not a wait for a condition: the point is
            // to hit faild anywhere in its work.
            std::thread::sleep(delay);
            f.kill9();
            clients.into_iter().map(|c| c.join().unwrap()).collect()
        });
        f.restart().unwrap_or_else(|e| {
            panic!("seed {seed}, cycle {cycle}: faild does not start on its state file: {e:#}")
        });
        let found = records(&f);
        for client in &seen {
            for (change, record) in &client.acked {
                assert_eq!(
                    (&record.state, record.backup.as_deref()),
                    (&change.state, Some(change.backup.as_str())),
                    "seed {seed}: the reply carries the change"
                );
                expected.insert(change.service.clone(), record.clone());
            }
            acked += client.acked.len();
        }
        // Clients own disjoint services: at most one SET in flight each.
        let pending: BTreeMap<&String, &Change> = seen
            .iter()
            .filter_map(|c| c.in_flight.as_ref())
            .map(|c| (&c.service, c))
            .collect();
        let services: BTreeSet<&String> = expected
            .keys()
            .chain(found.keys())
            .chain(pending.keys().copied())
            .collect();
        for service in services {
            let (want, got) = (expected.get(service), found.get(service));
            let pending = pending.get(service);
            let exact = match (got, want) {
                (Some(g), Some(w)) => same(g, w),
                (None, None) => true,
                _ => false,
            };
            let applied = pending.is_some_and(|p| {
                got.is_some_and(|g| {
                    g.state == p.state
                        && g.backup.as_deref() == Some(p.backup.as_str())
                        && g.changes == want.map_or(1, |w| w.changes + 1)
                })
            });
            assert!(
                exact || applied,
                "seed {seed}, cycle {cycle}: {service} lost an acknowledged change: \
                 expected {want:?} (in flight: {pending:?}), found {got:?}"
            );
            match (pending, applied) {
                (Some(_), true) => in_flight_applied += 1,
                (Some(_), false) => in_flight_lost += 1,
                _ => {}
            }
        }
        // What faild holds now is the base of the next cycle.
        expected = found;
        let temps = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().contains(".tmp."))
            })
            .count();
        assert_eq!(
            temps, 0,
            "seed {seed}, cycle {cycle}: stale temporary files left"
        );
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "crash storm: seed {seed}: {cycles} SIGKILLs in {secs:.1} s, {acked} acknowledged SETs, 0 lost; \
         {in_flight_applied} unacknowledged SETs found applied, {in_flight_lost} not; \
         the state file loaded after every kill"
    );
    assert!(acked > 0, "no SET was acknowledged at all");
}

/// The same record, as far as a client can tell (times are rounded to ms on
/// the wire).
fn same(a: &Record, b: &Record) -> bool {
    a.state == b.state && a.backup == b.backup && a.changes == b.changes
}
