//! The simulated cluster: hosts, network, hooks, a seeded nemesis that aims
//! at races, and the checks: S1, patience, UNKNOWN blocks, availability,
//! liveness and hidden state.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use failover::State;
use failover::community::Rules;

use failover::look::PollKind;
use failover::machine::{
    Command, Decider, HookKind, HookResult, LocalAnswer, Machine, Params, PeerAnswer, Step,
};
use failover::proto::{ErrorCode, Item, Op, Origin, Reply, Request};
use failover::registry::{Outcome, Registry};

use crate::heard::{self, Heard};
use crate::rng::Rng;

/// The one service of the simulated cluster.
pub const SERVICE: &str = "svc";
/// Times in milliseconds.
pub const INTERVAL: u64 = 1_000;
/// Not a multiple of the interval: a silent peer's expiry then falls
/// between two ticks, so the deciding poll at the expiry is exercised (with
/// a multiple it lands just after a tick, whose wait covers it; late
/// answers make both paths happen either way).
pub const TIMEOUT: u64 = 2_750;
/// failsh's per-call limit: half the interval.
pub const CALL_LIMIT: u64 = INTERVAL / 2;
/// failsh's last look at a peer already silent for the timeout.
pub const LAST_LOOK: u64 = failover::look::LAST_LOOK.as_millis() as u64;
/// Longest a simulated hook runs.
pub const HOOK_MAX: u64 = 300;
/// Faults start within this window.
pub const FAULT_WINDOW: (u64, u64) = (2_000, 40_000);
/// Longest fault.
pub const FAULT_MAX: u64 = 10_000;
/// Longest extra delay of a message under a Delay fault.
pub const FAULT_DELAY_MAX: u64 = 800;
/// Longest reboot.
pub const REBOOT_MAX: u64 = 5_000;
/// S1: an overlap must have ended this long after the two hosts can talk
/// again (or after an admin's UP). Two stop-hook failures in a row are the
/// most the model allows, hence the intervals.
pub const R: u64 = TIMEOUT + 3 * INTERVAL + 2 * HOOK_MAX;
/// An overlap may begin this long after the hosts last could not talk: a
/// start decided on polls made before the heal.
pub const GRACE: u64 = 2 * INTERVAL;
/// Liveness: after the last fault healed and the last reboot completed,
/// exactly the most preferred eligible host serves within this bound.
pub const L: u64 = TIMEOUT + 4 * INTERVAL + 2 * HOOK_MAX;
/// Availability: no host may be left without the service for this long
/// while an eligible host has had nothing from its peers that keeps it from
/// starting (derivation in `docs/safety.md`): a call limit from a peer's
/// last answer to the end of the poll that took it in (whence its silence
/// counts), the timeout of silence, the deciding poll and the second look
/// after the claim (each up to a call limit while other answers are slow);
/// a hook's time as slack for the claim's writes (no hook runs before the
/// start hook begins the service).
pub const U: u64 = TIMEOUT + 3 * CALL_LIMIT + HOOK_MAX;
/// Failover at the detection limit: when the last thing keeping an
/// eligible host from starting is a peer's silence, and no answer was slow
/// or lost meanwhile, the start begins within this long of the silent
/// peer's last answer: the call limit until that answer's poll ended, the
/// timeout, a last look in the deciding poll and in the second look, and
/// the network's and the claim's milliseconds.
pub const P: u64 = TIMEOUT + CALL_LIMIT + 2 * LAST_LOOK + 20;
/// The end of a run.
pub const END: u64 = FAULT_WINDOW.1 + FAULT_MAX + REBOOT_MAX + L + INTERVAL;

/// How failsh's driver feeds the step machine. Only the mutation tests use
/// anything but [`Driver::Faithful`]: a failsh around the same machine that
/// misreads what its hooks and writes did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Driver {
    #[default]
    Faithful,
    /// A stop hook that failed is reported as a stop that worked.
    StopFailureAsSuccess,
    /// A claim that faild refused (BUSY: the record was not RECOVER) is
    /// reported as landed, so the service starts unclaimed.
    ClaimRefusalAsSuccess,
    /// The second look after a claim is answered with the answers of the
    /// poll that decided: no second look.
    NoSecondLook,
    /// No deciding poll at a silent peer's expiry: the next tick decides
    /// (failsh before issue 11).
    NoExpiryPoll,
}

/// What the nemesis does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    /// Host crash and reboot (faild keeps its state file, the boot id changes).
    HostCrash,
    /// failsh killed, the service left as it is; restarted later.
    FailshCrash,
    /// failsh frozen (SIGSTOP), then resumed.
    Freeze,
    /// A partition between random halves, possibly one-way.
    Partition,
    /// Packet loss.
    Loss,
    /// Long delays.
    Delay,
    /// faild restarted alone (same boot).
    FaildRestart,
    /// An admin's `failc -s FAIL`, later RECOVER.
    AdminFail,
    /// An admin's `failc -s UP` after starting the service by hand.
    AdminUp,
    /// The service on a host is broken: its check hook fails. At the end the
    /// admin has repaired it and says RECOVER if it was recorded FAIL.
    Sick,
    /// The host's faild answers its peers' polls with errors (a wrong
    /// community after a config edit, a version mismatch, BUSY, a reply
    /// that fails authentication): to one asker, or to all of them.
    ErrorAnswers,
}

impl FaultKind {
    pub const ALL: [FaultKind; 11] = [
        FaultKind::HostCrash,
        FaultKind::FailshCrash,
        FaultKind::Freeze,
        FaultKind::Partition,
        FaultKind::Loss,
        FaultKind::Delay,
        FaultKind::FaildRestart,
        FaultKind::AdminFail,
        FaultKind::AdminUp,
        FaultKind::Sick,
        FaultKind::ErrorAnswers,
    ];
}

#[derive(Debug, Clone)]
enum Answer {
    Record(failover::Record),
    NoSuch,
    Error(String),
}

#[derive(Debug, Clone)]
enum Event {
    Tick {
        h: usize,
        inc: u64,
    },
    /// A silent peer's INDOUBT reaches the timeout: the deciding poll.
    Expiry {
        h: usize,
        inc: u64,
    },
    PollArrive {
        from: usize,
        to: usize,
        slot: usize,
        round: u64,
    },
    PollReply {
        h: usize,
        /// The host that answered, and when (what the answer is as of).
        peer: usize,
        sent: u64,
        slot: usize,
        round: u64,
        answer: Answer,
    },
    RoundDeadline {
        h: usize,
        round: u64,
    },
    WriteArrive {
        h: usize,
        op: u64,
        state: State,
        origin: Origin,
    },
    WriteReply {
        h: usize,
        op: u64,
        ok: bool,
    },
    WriteDeadline {
        h: usize,
        op: u64,
    },
    HookDone {
        h: usize,
        op: u64,
        kind: HookKind,
        ok: bool,
        inc: u64,
    },
    /// The part of a hook's end that failsh sees (deferred while frozen).
    HookFeed {
        h: usize,
        op: u64,
        kind: HookKind,
        ok: bool,
        inc: u64,
    },
    Fault {
        id: usize,
        start: bool,
    },
    Boot {
        h: usize,
    },
}

struct Round {
    id: u64,
    at: u64,
    answers: Vec<Option<Answer>>,
    /// Per slot, when failsh stops waiting for it.
    until: Vec<u64>,
}

struct Host {
    faild_up: bool,
    registry: Registry,
    failsh_up: bool,
    /// failsh incarnation: results for an earlier one are ignored.
    inc: u64,
    frozen: bool,
    deferred: Vec<Event>,
    machine: Machine,
    round: Option<Round>,
    op: Option<u64>,
    /// The service physically runs (a failed stop counts as running).
    service_up: bool,
    stop_failures: u32,
    /// The whole host is down (until it boots).
    crashed: bool,
    /// The service here is broken: its check fails.
    sick: bool,
    /// When the current failsh incarnation started.
    failsh_since: u64,
    /// The last poll's answers (kept only for [`Driver::NoSecondLook`]).
    last_poll: Option<PollAnswers>,
}

/// One poll as fed to the machine: its time, the local and the peers' answers.
type PollAnswers = (Duration, LocalAnswer, Vec<(String, PeerAnswer)>);

struct Fault {
    kind: FaultKind,
    target: usize,
    end: u64,
    /// A partition: the hosts on one side; one-way: only that side's
    /// messages out are lost.
    side: Vec<bool>,
    one_way: bool,
    /// Error answers: only to this asker (else to all).
    asker: Option<usize>,
    active: bool,
}

/// What a run found and did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub violations: Vec<String>,
    pub faults: BTreeMap<String, u64>,
    /// Faults that began while another was active.
    pub overlapping: u64,
    pub reclaims: u64,
    pub takeovers: u64,
    /// Check hooks that found the service broken (a Sick fault biting).
    pub failed_checks: u64,
    /// Polls answered with an error (an ErrorAnswers fault biting).
    pub error_answers: u64,
    pub events: u64,
    /// After the last fault healed: how long until the right host served.
    pub settle_ms: u64,
    /// The longest time no host served while an eligible host had nothing
    /// keeping it from starting (checked against [`U`]).
    pub gap_ms: u64,
    /// The longest such time when only a silent peer kept a host from
    /// starting (checked against [`P`]).
    pub prompt_gap_ms: u64,
    /// Start hooks after a claim, by the kinds of fault active when the
    /// claim was decided ("none": no fault active).
    pub takeovers_by: BTreeMap<String, u64>,
    pub trace: Vec<String>,
}

struct World {
    decider: Decider,
    driver: Driver,
    rng: Rng,
    now: u64,
    seq: u64,
    queue: BTreeMap<(u64, u64), Event>,
    hosts: Vec<Host>,
    faults: Vec<Fault>,
    rules: Rules,
    next_id: u64,
    /// Per pair (a < b): when the overlap began (and whether it was
    /// reported), and when they last could not talk.
    overlap_since: BTreeMap<(usize, usize), (u64, bool)>,
    last_bad: BTreeMap<(usize, usize), u64>,
    last_admin_up: Option<u64>,
    last_change: u64,
    prev_up: Vec<bool>,
    /// The host clients last heard announce the service (a start, a
    /// reclaim: the gratuitous ARP of the worked example).
    announced: Option<usize>,
    quiet_from: u64,
    /// What each failsh really heard (the availability and patience oracle).
    heard: Heard,
    /// Per host: since when it has been eligible to serve.
    eligible_since: Vec<Option<u64>>,
    /// Since when no host has served.
    nobody_since: Option<u64>,
    /// The outage (by its start) already reported as too long.
    gap_reported: Option<u64>,
    /// Per host: its pending claim, with what it had heard when it decided.
    claims: Vec<Option<Claim>>,
    /// Per host: since when its service has run.
    up_since: Vec<u64>,
    /// The last time answers could be slow or lost (a Delay or Loss fault
    /// active): the detection-limit check needs a network without either.
    last_noisy: Option<u64>,
    /// When faults began or ended and hosts booted, with whether it was a
    /// beginning: the detection-limit check wants the silence to be the
    /// last thing that happened.
    edges: Vec<(u64, bool)>,
    report: Report,
    trace: bool,
}

/// A start decided: when, the last answer heard from each host by then, and
/// the faults active.
#[derive(Debug, Clone)]
struct Claim {
    at: u64,
    heard: Vec<Option<u64>>,
    kinds: Vec<FaultKind>,
}

fn params(h: usize, n: usize) -> Params {
    Params {
        masters: (0..h).map(name).collect(),
        slaves: (h + 1..n).map(name).collect(),
        timeout: Duration::from_millis(TIMEOUT),
        has_check: true,
        has_reclaim: true,
    }
}

fn name(h: usize) -> String {
    format!("h{h}")
}

/// Runs one seed on `n` hosts (h0 most preferred; each lists every host
/// above it as a master and every host below as a slave) and checks every
/// invariant (see `docs/safety.md`).
pub fn run(seed: u64, n: usize, decider: Decider, trace: bool) -> Report {
    run_with(seed, n, decider, Driver::Faithful, trace)
}

/// [`run`] with a given failsh driver.
pub fn run_with(seed: u64, n: usize, decider: Decider, driver: Driver, trace: bool) -> Report {
    let mut w = World {
        decider,
        driver,
        rng: Rng::new(seed.wrapping_mul(31).wrapping_add(n as u64)),
        now: 0,
        seq: 0,
        queue: BTreeMap::new(),
        hosts: (0..n)
            .map(|h| Host {
                faild_up: true,
                registry: Registry::new(),
                failsh_up: false,
                inc: 0,
                frozen: false,
                deferred: Vec::new(),
                machine: Machine::with_decider(params(h, n), decider),
                round: None,
                op: None,
                service_up: false,
                stop_failures: 0,
                crashed: false,
                sick: false,
                failsh_since: 0,
                last_poll: None,
            })
            .collect(),
        faults: Vec::new(),
        rules: Rules::parse("* c RW", "sim").expect("static rules"),
        next_id: 1,
        overlap_since: BTreeMap::new(),
        last_bad: BTreeMap::new(),
        last_admin_up: None,
        last_change: 0,
        prev_up: vec![false; n],
        announced: None,
        quiet_from: 0,
        heard: Heard::new(n),
        eligible_since: vec![None; n],
        nobody_since: None,
        gap_reported: None,
        claims: vec![None; n],
        up_since: vec![0; n],
        last_noisy: None,
        edges: Vec::new(),
        report: Report::default(),
        trace,
    };
    for h in 0..n {
        w.boot(h);
    }
    w.plan_faults(n);
    while let Some(((t, _), ev)) = w.queue.pop_first() {
        if t > END {
            break;
        }
        w.now = t;
        w.check_availability();
        w.report.events += 1;
        if w.trace {
            let line = match &ev {
                Event::Fault { id, start } => {
                    let f = &w.faults[*id];
                    let what = if *start { "starts" } else { "ends" };
                    format!("{t:>6} FAULT {:?} on h{} {what}", f.kind, f.target)
                }
                ev => format!("{t:>6} {ev:?}"),
            };
            w.report.trace.push(line);
        }
        w.handle(ev);
        w.check();
    }
    w.now = END;
    w.check_availability();
    w.check_liveness();
    w.report
}

impl World {
    fn at(&mut self, t: u64, ev: Event) {
        self.seq += 1;
        self.queue.insert((t, self.seq), ev);
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// The boot scripts: faild up (UP loaded as FAIL after a reboot), the
    /// service registered FAIL then RECOVER, failsh started.
    fn boot(&mut self, h: usize) {
        let now = self.now;
        self.edges.push((now, false));
        // Quiet only once the last reboot is over.
        self.quiet_from = self.quiet_from.max(now);
        let host = &mut self.hosts[h];
        host.faild_up = true;
        host.crashed = false;
        host.registry
            .fail_up_services(UNIX_EPOCH + Duration::from_millis(now));
        let n = self.hosts.len();
        self.admin(h, State::Fail);
        self.admin(h, State::Recover);
        let host = &mut self.hosts[h];
        host.machine = Machine::with_decider(params(h, n), self.decider);
        self.start_failsh(h);
    }

    fn start_failsh(&mut self, h: usize) {
        let n = self.hosts.len();
        let host = &mut self.hosts[h];
        host.failsh_up = true;
        host.failsh_since = self.now;
        host.frozen = false;
        host.deferred.clear();
        host.inc += 1;
        host.round = None;
        host.op = None;
        host.machine = Machine::with_decider(params(h, n), self.decider);
        let inc = host.inc;
        self.claims[h] = None;
        let next = (self.now / INTERVAL + 1) * INTERVAL;
        self.at(next, Event::Tick { h, inc });
    }

    /// An admin's `failc -s STATE` on host `h`'s faild.
    fn admin(&mut self, h: usize, state: State) {
        if !self.hosts[h].faild_up {
            return;
        }
        let op = Op::Set {
            service: SERVICE.into(),
            state,
            backup: None,
            origin: Origin::Admin,
        };
        self.execute(h, op);
    }

    fn execute(&mut self, h: usize, op: Op) -> Reply {
        let id = self.id();
        let req = Request {
            id,
            community: "c".into(),
            op,
        };
        let now = UNIX_EPOCH + Duration::from_millis(self.now);
        let grants = self
            .rules
            .grants("c", "127.0.0.1".parse().expect("address"));
        let registry = &mut self.hosts[h].registry;
        match registry.execute(&req, &grants, now) {
            Outcome::Reply(r) => r,
            Outcome::Change { mutation, .. } => {
                registry.apply(&mutation);
                mutation.reply(id)
            }
        }
    }

    fn blocked(&self, from: usize, to: usize) -> bool {
        from != to
            && self.faults.iter().any(|f| {
                f.active && f.kind == FaultKind::Partition && f.side[from] && !f.side[to]
                    || f.active
                        && f.kind == FaultKind::Partition
                        && !f.one_way
                        && !f.side[from]
                        && f.side[to]
            })
    }

    /// Whether `to`'s faild answers `from`'s polls with an error.
    fn answers_errors(&self, to: usize, from: usize) -> bool {
        from != to
            && self.faults.iter().any(|f| {
                f.active
                    && f.kind == FaultKind::ErrorAnswers
                    && f.target == to
                    && f.asker.is_none_or(|a| a == from)
            })
    }

    fn active(&self, kind: FaultKind) -> bool {
        self.faults.iter().any(|f| f.active && f.kind == kind)
    }

    /// The delay of a message, or `None` when it is lost.
    fn deliver(&mut self, from: usize, to: usize) -> Option<u64> {
        if self.blocked(from, to)
            || from != to && self.active(FaultKind::Loss) && self.rng.chance(0.3)
        {
            return None;
        }
        let extra = if from != to && self.active(FaultKind::Delay) {
            self.rng.range(50, FAULT_DELAY_MAX)
        } else {
            0
        };
        Some(self.rng.range(1, 5) + extra)
    }

    fn talk(&self, a: usize, b: usize) -> bool {
        let ok = |h: &Host| h.faild_up && h.failsh_up && !h.frozen;
        ok(&self.hosts[a])
            && ok(&self.hosts[b])
            && !self.blocked(a, b)
            && !self.blocked(b, a)
            && !self.answers_errors(a, b)
            && !self.answers_errors(b, a)
            && !self.active(FaultKind::Loss)
            && !self.active(FaultKind::Delay)
    }

    fn plan_faults(&mut self, n: usize) {
        let count = self.rng.range(3, 9);
        for _ in 0..count {
            let kind = FaultKind::ALL[self.rng.range(0, FaultKind::ALL.len() as u64 - 1) as usize];
            let start = self.rng.range(FAULT_WINDOW.0, FAULT_WINDOW.1);
            let start = self.aim(start);
            let end = start + self.rng.range(300, FAULT_MAX);
            let end = self.aim(end).max(start + 1);
            let target = self.rng.range(0, n as u64 - 1) as usize;
            let mut side: Vec<bool> = (0..n).map(|_| self.rng.chance(0.5)).collect();
            side[target] = true;
            if side.iter().all(|s| *s) {
                side[(target + 1) % n] = false;
            }
            let one_way = self.rng.chance(0.3);
            let other = (target + self.rng.range(1, n as u64 - 1) as usize) % n;
            let asker = self.rng.chance(0.5).then_some(other);
            let id = self.faults.len();
            self.faults.push(Fault {
                kind,
                target,
                end,
                side,
                one_way,
                asker,
                active: false,
            });
            self.at(start, Event::Fault { id, start: true });
            self.at(end, Event::Fault { id, start: false });
            *self.report.faults.entry(format!("{kind:?}")).or_default() += 1;
        }
        self.quiet_from = self.faults.iter().map(|f| f.end).max().unwrap_or(0);
    }

    /// Half the time, moves a fault's edge into the few milliseconds where
    /// races happen: just after the hosts' common poll tick (polls in
    /// flight, claims written on their answers) or just after the call
    /// limit (claims decided on a silent peer). Uniform times hit these
    /// windows a few times in a thousand.
    fn aim(&mut self, t: u64) -> u64 {
        if !self.rng.chance(0.5) {
            return t;
        }
        let base = t / INTERVAL * INTERVAL;
        let after = if self.rng.chance(0.5) { 0 } else { CALL_LIMIT };
        base + after + self.rng.range(1, 7)
    }

    /// Aims the admin's RECOVER at the moment that matters: just after a
    /// slave has read the record as FAIL, before its owner reads it (the
    /// race the second look after a claim exists for). Sometimes ends an
    /// active AdminFail on `to` right after a slave's poll of it.
    /// Aims an admin's `fail` at the claim: sometimes it runs just as the
    /// host's failsh decides to claim, so the claim meets a FAIL record
    /// (the race the conditional claim exists for).
    fn race_admin_fail(&mut self, h: usize) {
        // Within the nemesis's window, so that it ends when faults end.
        if self.now > FAULT_WINDOW.1 || !self.rng.chance(0.05) {
            return;
        }
        let end = self.now + self.rng.range(300, FAULT_MAX);
        let id = self.faults.len();
        self.faults.push(Fault {
            kind: FaultKind::AdminFail,
            target: h,
            end,
            side: vec![true; self.hosts.len()],
            one_way: false,
            asker: None,
            active: false,
        });
        *self.report.faults.entry("AdminFail".into()).or_default() += 1;
        self.quiet_from = self.quiet_from.max(end);
        self.at(end, Event::Fault { id, start: false });
        self.fault(id, true);
    }

    fn race_admin_recover(&mut self, to: usize, from: usize) {
        if from <= to || !self.rng.chance(0.15) {
            return;
        }
        let now = self.now;
        if let Some(id) = self.faults.iter().position(|f| {
            f.active && f.kind == FaultKind::AdminFail && f.target == to && f.end > now
        }) {
            self.faults[id].end = now;
            self.fault(id, false);
        }
    }

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::Tick { h, inc } => {
                let host = &self.hosts[h];
                if inc != host.inc || !host.failsh_up {
                    return;
                }
                let busy = host.frozen
                    || host.round.is_some()
                    || host.op.is_some()
                    || !host.machine.idle();
                self.at(self.now + INTERVAL, Event::Tick { h, inc });
                if busy {
                    return;
                }
                self.start_round(h, PollKind::Tick);
            }
            Event::Expiry { h, inc } => {
                let host = &self.hosts[h];
                let due = Duration::from_millis(self.now);
                let still = host.machine.next_expiry(due - Duration::from_millis(1)) == Some(due);
                let busy = host.frozen
                    || host.round.is_some()
                    || host.op.is_some()
                    || !host.machine.idle();
                if inc == host.inc && host.failsh_up && still && !busy {
                    self.start_round(h, PollKind::Expiry);
                }
            }
            Event::PollArrive {
                from,
                to,
                slot,
                round,
            } => {
                if !self.hosts[to].faild_up {
                    return;
                }
                let answer = match self.execute(to, Op::Get(vec![SERVICE.into()])) {
                    Reply::Items { mut items, .. } => match items.pop() {
                        Some(Item::Found(_, r)) => Answer::Record(r),
                        Some(Item::Missing(_, ErrorCode::NoSuch)) => Answer::NoSuch,
                        other => Answer::Error(format!("{other:?}")),
                    },
                    Reply::Error(e) => Answer::Error(e.to_string()),
                };
                self.race_admin_recover(to, from);
                let answer = if self.answers_errors(to, from) {
                    self.report.error_answers += 1;
                    const ERRORS: [&str; 4] = [
                        "DENIED: unknown community",
                        "unsupported protocol version",
                        "BUSY",
                        "reply failed authentication",
                    ];
                    Answer::Error(ERRORS[self.rng.range(0, 3) as usize].into())
                } else {
                    answer
                };
                if let Some(d) = self.deliver(to, from) {
                    self.at(
                        self.now + d,
                        Event::PollReply {
                            h: from,
                            peer: to,
                            sent: self.now,
                            slot,
                            round,
                            answer,
                        },
                    );
                }
            }
            ev @ (Event::PollReply { .. }
            | Event::RoundDeadline { .. }
            | Event::WriteReply { .. }
            | Event::WriteDeadline { .. }
            | Event::HookFeed { .. }) => self.for_failsh(ev),
            Event::WriteArrive {
                h,
                op,
                state,
                origin,
            } => {
                if !self.hosts[h].faild_up {
                    return;
                }
                let reply = self.execute(
                    h,
                    Op::Set {
                        service: SERVICE.into(),
                        state,
                        backup: None,
                        origin,
                    },
                );
                let ok = matches!(reply, Reply::Items { .. })
                    || origin == Origin::Claim && self.driver == Driver::ClaimRefusalAsSuccess;
                self.at(self.now + 1, Event::WriteReply { h, op, ok });
            }
            Event::HookDone {
                h,
                op,
                kind,
                ok,
                inc,
            } => {
                let host = &mut self.hosts[h];
                if kind == HookKind::Stop && ok {
                    host.service_up = false;
                }
                if kind == HookKind::Reclaim && ok {
                    self.announced = Some(h);
                }
                self.at(
                    self.now,
                    Event::HookFeed {
                        h,
                        op,
                        kind,
                        ok,
                        inc,
                    },
                );
            }
            // An end moved earlier by the nemesis has already happened.
            Event::Fault { id, start: false } if self.faults[id].end != self.now => {}
            Event::Fault { id, start } => self.fault(id, start),
            Event::Boot { h } => self.boot(h),
        }
    }

    /// Events failsh must see: held while it is frozen, dropped when they
    /// belong to an earlier failsh.
    fn for_failsh(&mut self, ev: Event) {
        let h = match &ev {
            Event::PollReply { h, .. }
            | Event::RoundDeadline { h, .. }
            | Event::WriteReply { h, .. }
            | Event::WriteDeadline { h, .. }
            | Event::HookFeed { h, .. } => *h,
            _ => unreachable!("only failsh's events come here"),
        };
        if !self.hosts[h].failsh_up {
            return;
        }
        if self.hosts[h].frozen {
            self.hosts[h].deferred.push(ev);
            return;
        }
        let step = match ev {
            Event::PollReply {
                peer,
                sent,
                slot,
                round,
                answer,
                ..
            } => {
                // An answer after its wait is no answer.
                if self.hosts[h]
                    .round
                    .as_ref()
                    .is_none_or(|r| r.id != round || r.until[slot] < self.now)
                {
                    return;
                }
                if peer != h {
                    let error = matches!(answer, Answer::Error(_));
                    let blocking = match &answer {
                        Answer::Record(rec) => {
                            rec.state == State::Up || peer < h && rec.state == State::Recover
                        }
                        Answer::NoSuch => false,
                        Answer::Error(_) => true,
                    };
                    self.heard.record(
                        h,
                        peer,
                        heard::Answer {
                            at: sent,
                            blocking,
                            error,
                        },
                    );
                }
                let r = self.hosts[h].round.as_mut().expect("matched above");
                r.answers[slot] = Some(answer);
                if !self.round_over(h) {
                    return;
                }
                self.finish_round(h)
            }
            Event::RoundDeadline { round, .. } => {
                if self.hosts[h].round.as_ref().is_none_or(|r| r.id != round) || !self.round_over(h)
                {
                    return;
                }
                self.finish_round(h)
            }
            Event::WriteReply { op, ok, .. } => {
                if self.hosts[h].op != Some(op) {
                    return;
                }
                self.hosts[h].op = None;
                self.hosts[h]
                    .machine
                    .on_written(if ok { Ok(()) } else { Err("refused".into()) })
            }
            Event::WriteDeadline { op, .. } => {
                if self.hosts[h].op != Some(op) {
                    return;
                }
                self.hosts[h].op = None;
                self.hosts[h].machine.on_written(Err("no reply".into()))
            }
            Event::HookFeed {
                op, kind, ok, inc, ..
            } => {
                let host = &mut self.hosts[h];
                if host.inc != inc || host.op != Some(op) {
                    return;
                }
                host.op = None;
                let result = match (kind, ok) {
                    (HookKind::Stop, false) if self.driver == Driver::StopFailureAsSuccess => {
                        HookResult::State(if h == 0 { State::Fail } else { State::Recover })
                    }
                    (_, false) => HookResult::Failed("simulated failure".into()),
                    (HookKind::Stop, true) => {
                        HookResult::State(if h == 0 { State::Fail } else { State::Recover })
                    }
                    (HookKind::Check, true) => {
                        self.report.failed_checks += u64::from(host.sick);
                        HookResult::Healthy(!host.sick)
                    }
                    (_, true) => HookResult::State(State::Up),
                };
                host.machine.on_hook(result)
            }
            _ => return,
        };
        self.follow(h, step);
    }

    /// failsh polls its local faild and every peer, waiting for each as
    /// long as [`failover::look`] says for a poll of `kind`.
    fn start_round(&mut self, h: usize, kind: PollKind) {
        let n = self.hosts.len();
        let round = self.id();
        let targets: Vec<usize> = std::iter::once(h)
            .chain((0..n).filter(|t| *t != h))
            .collect();
        let start = Duration::from_millis(self.now);
        let limit = Duration::from_millis(CALL_LIMIT);
        // The local faild first, then the peers: masters, then slaves.
        let until: Vec<u64> = std::iter::once(limit)
            .chain(
                self.hosts[h]
                    .machine
                    .waits(start, limit, kind)
                    .into_iter()
                    .map(|w| w.limit),
            )
            .map(|wait| self.now + wait.as_millis() as u64)
            .collect();
        let mut deadlines = until.clone();
        deadlines.sort();
        deadlines.dedup();
        for t in deadlines {
            self.at(t, Event::RoundDeadline { h, round });
        }
        self.hosts[h].round = Some(Round {
            id: round,
            at: self.now,
            answers: vec![None; targets.len()],
            until,
        });
        for (slot, to) in targets.into_iter().enumerate() {
            if let Some(d) = self.deliver(h, to) {
                self.at(
                    self.now + d,
                    Event::PollArrive {
                        from: h,
                        to,
                        slot,
                        round,
                    },
                );
            }
        }
    }

    /// Whether every slot of `h`'s open round has its answer or is past its
    /// wait.
    fn round_over(&self, h: usize) -> bool {
        self.hosts[h].round.as_ref().is_some_and(|r| {
            r.answers
                .iter()
                .zip(&r.until)
                .all(|(a, until)| a.is_some() || *until <= self.now)
        })
    }

    /// Wakes `h`'s failsh at its next silent peer's expiry if that comes
    /// before its next tick (the engine's loop does the same).
    fn schedule_expiry(&mut self, h: usize) {
        let host = &self.hosts[h];
        if self.driver == Driver::NoExpiryPoll || host.round.is_some() || !host.machine.idle() {
            return;
        }
        let tick = (self.now / INTERVAL + 1) * INTERVAL; // as start_failsh aligns them
        if let Some(expiry) = host.machine.next_expiry(Duration::from_millis(self.now)) {
            let at = expiry.as_millis() as u64;
            if at < tick {
                let inc = host.inc;
                self.at(at, Event::Expiry { h, inc });
            }
        }
    }

    fn finish_round(&mut self, h: usize) -> Step {
        let n = self.hosts.len();
        let round = self.hosts[h].round.take().expect("a round is open");
        self.heard.round_done(h, round.at);
        let mut answers = round.answers.into_iter();
        let local = match answers.next().flatten() {
            Some(Answer::Record(r)) => LocalAnswer::Record(r),
            Some(Answer::NoSuch) => LocalAnswer::NoSuch,
            Some(Answer::Error(e)) => LocalAnswer::Unavailable(e),
            None => LocalAnswer::Unavailable("no answer".into()),
        };
        let peers: Vec<(String, PeerAnswer)> = (0..n)
            .filter(|t| *t != h)
            .zip(answers)
            .map(|(t, a)| {
                let a = match a {
                    Some(Answer::Record(r)) => PeerAnswer::Record(r),
                    Some(Answer::NoSuch) => PeerAnswer::NoSuch,
                    Some(Answer::Error(e)) => PeerAnswer::Error(e),
                    None => PeerAnswer::NoAnswer,
                };
                (name(t), a)
            })
            .collect();
        // As of the moment the round ended (failsh's engine does the same).
        let at = Duration::from_millis(self.now);
        if self.driver == Driver::NoSecondLook {
            self.hosts[h].last_poll = Some((at, local.clone(), peers.clone()));
        }
        self.hosts[h].machine.on_poll(at, local, &peers)
    }

    /// Runs the command a step asks for.
    fn follow(&mut self, h: usize, step: Step) {
        if self.trace {
            for note in &step.notes {
                let line = format!("{:>6}   h{h} {note:?}", self.now);
                self.report.trace.push(line);
            }
        }
        let Some(command) = step.command else {
            self.schedule_expiry(h);
            return;
        };
        let op = self.id();
        self.hosts[h].op = Some(op);
        match command {
            Command::Poll => {
                self.hosts[h].op = None; // a poll round, not a call
                if self.driver == Driver::NoSecondLook
                    && let Some((at, local, peers)) = self.hosts[h].last_poll.clone()
                {
                    let step = self.hosts[h].machine.on_poll(at, local, &peers);
                    return self.follow(h, step);
                }
                self.start_round(h, PollKind::SecondLook);
            }
            Command::Write(_) | Command::Claim | Command::Adopt => {
                // A claim given back (or any other write) ends it.
                self.claims[h] = None;
                if command == Command::Claim {
                    let mut kinds: Vec<FaultKind> = self
                        .faults
                        .iter()
                        .filter(|f| f.active)
                        .map(|f| f.kind)
                        .collect();
                    kinds.sort();
                    kinds.dedup();
                    self.check_unknown_blocks(h);
                    self.race_admin_fail(h);
                    self.claims[h] = Some(Claim {
                        at: self.now,
                        heard: (0..self.hosts.len())
                            .map(|p| self.heard.last(h, p))
                            .collect(),
                        kinds,
                    });
                }
                let (state, origin) = match command {
                    Command::Write(state) => (state, Origin::Failsh),
                    Command::Claim => (State::Up, Origin::Claim),
                    _ => (State::Up, Origin::Adopt),
                };
                if self.hosts[h].faild_up {
                    self.at(
                        self.now + 1,
                        Event::WriteArrive {
                            h,
                            op,
                            state,
                            origin,
                        },
                    );
                }
                self.at(
                    self.now + CALL_LIMIT.max(1_000),
                    Event::WriteDeadline { h, op },
                );
            }
            Command::Run(kind) => {
                if kind == HookKind::Start
                    && let Some(claim) = self.claims[h].take()
                {
                    self.check_patience(h, &claim);
                }
                let took = self.rng.range(10, HOOK_MAX);
                let host = &mut self.hosts[h];
                let ok = match kind {
                    HookKind::Stop => {
                        // At most two failures in a row: a stop that never
                        // works is a stuck service no failover can fix.
                        let fail = host.stop_failures < 2 && self.rng.chance(0.05);
                        host.stop_failures = if fail { host.stop_failures + 1 } else { 0 };
                        !fail
                    }
                    HookKind::Start => {
                        host.service_up = true; // "up" before it starts
                        self.announced = Some(h);
                        self.report.takeovers += 1;
                        !self.rng.chance(0.05)
                    }
                    HookKind::Reclaim => {
                        self.report.reclaims += 1;
                        !self.rng.chance(0.05)
                    }
                    HookKind::Check => true,
                };
                let inc = self.hosts[h].inc;
                self.at(
                    self.now + took,
                    Event::HookDone {
                        h,
                        op,
                        kind,
                        ok,
                        inc,
                    },
                );
            }
        }
    }

    fn fault(&mut self, id: usize, start: bool) {
        let (kind, target) = (self.faults[id].kind, self.faults[id].target);
        if start && self.faults.iter().any(|f| f.active) {
            self.report.overlapping += 1;
        }
        self.edges.push((self.now, start));
        if matches!(kind, FaultKind::Delay | FaultKind::Loss) {
            // A message sent just before the end may still be on its way.
            self.last_noisy = Some(self.now + FAULT_DELAY_MAX);
        }
        self.faults[id].active = start;
        let crashed = self.hosts[target].crashed;
        match (kind, start) {
            (_, _)
                if crashed
                    && kind != FaultKind::Partition
                    && kind != FaultKind::Loss
                    && kind != FaultKind::Delay => {}
            (FaultKind::HostCrash, true) => {
                let host = &mut self.hosts[target];
                host.crashed = true;
                host.faild_up = false;
                host.failsh_up = false;
                host.frozen = false;
                host.service_up = false;
                host.round = None;
                host.op = None;
                let reboot = self.rng.range(500, REBOOT_MAX);
                self.at(self.now + reboot, Event::Boot { h: target });
            }
            (FaultKind::FailshCrash, true) if self.hosts[target].failsh_up => {
                let host = &mut self.hosts[target];
                host.failsh_up = false;
                host.frozen = false;
                host.round = None;
                host.op = None;
            }
            // Restarted (by its supervisor) whether or not faild is up.
            (FaultKind::FailshCrash, false) if !self.hosts[target].failsh_up => {
                self.start_failsh(target)
            }
            (FaultKind::Freeze, true) if self.hosts[target].failsh_up => {
                self.hosts[target].frozen = true
            }
            (FaultKind::Freeze, false) if self.hosts[target].frozen => {
                self.hosts[target].frozen = false;
                let held = std::mem::take(&mut self.hosts[target].deferred);
                for ev in held {
                    self.for_failsh(ev);
                }
            }
            (FaultKind::Sick, true) => self.hosts[target].sick = true,
            // Repaired: RECOVER if the failed check left it FAIL.
            (FaultKind::Sick, false) => {
                self.hosts[target].sick = false;
                let failed = self.hosts[target]
                    .registry
                    .get(SERVICE)
                    .is_some_and(|r| r.state == State::Fail);
                if self.hosts[target].faild_up && failed {
                    self.admin(target, State::Recover);
                }
            }
            (FaultKind::FaildRestart, true) => self.hosts[target].faild_up = false,
            (FaultKind::FaildRestart, false) => self.hosts[target].faild_up = true,
            // The init script's `fail`: the resource taken down first, then
            // FAIL (a stop request if failsh runs it); later `recover`.
            (FaultKind::AdminFail, true) if self.hosts[target].faild_up => {
                self.hosts[target].service_up = false;
                self.admin(target, State::Fail);
            }
            // (An admin does not declare RECOVER a service they started by
            // hand meanwhile: `recover` is for a service that is down.)
            (FaultKind::AdminFail, false) if !self.hosts[target].service_up => {
                self.admin(target, State::Recover)
            }
            // `failc -s UP` reports an out-of-band start of a service whose
            // record says it is not up (the original's convention).
            (FaultKind::AdminUp, true)
                if self.hosts[target].faild_up
                    && !self.hosts[target].service_up
                    && self.hosts[target]
                        .registry
                        .get(SERVICE)
                        .is_none_or(|r| r.state != State::Up) =>
            {
                self.hosts[target].service_up = true; // started by hand (and announced)
                self.announced = Some(target);
                self.last_admin_up = Some(self.now);
                self.admin(target, State::Up);
            }
            _ => {}
        }
    }

    /// S1, checked after every event.
    fn check(&mut self) {
        let n = self.hosts.len();
        if self.active(FaultKind::Delay) || self.active(FaultKind::Loss) {
            self.last_noisy = Some(self.now);
        }
        let up: Vec<bool> = self.hosts.iter().map(|h| h.service_up).collect();
        if up != self.prev_up {
            self.last_change = self.now;
        }
        for (since, (now_up, was_up)) in self.up_since.iter_mut().zip(up.iter().zip(&self.prev_up))
        {
            if *now_up && !was_up {
                *since = self.now;
            }
        }
        if up.iter().any(|u| *u) {
            self.nobody_since = None;
        } else {
            self.nobody_since.get_or_insert(self.now);
        }
        for h in 0..n {
            if !self.eligible(h) {
                self.eligible_since[h] = None;
            } else {
                self.eligible_since[h].get_or_insert(self.now);
            }
        }
        for a in 0..n {
            for b in a + 1..n {
                let pair = (a, b);
                let talking = self.talk(a, b);
                if !talking {
                    self.last_bad.insert(pair, self.now);
                }
                if !(up[a] && up[b]) {
                    self.overlap_since.remove(&pair);
                    continue;
                }
                let bad = self.last_bad.get(&pair).copied();
                let admin = self.last_admin_up;
                let now = self.now;
                let recent = |t: Option<u64>, within: u64| t.is_some_and(|t| now - t <= within);
                match self.overlap_since.get(&pair).copied() {
                    None => {
                        let excused = recent(bad, GRACE) || recent(admin, R);
                        self.overlap_since.insert(pair, (now, !excused));
                        if !excused {
                            self.violation(format!(
                                "t={now}: h{a} and h{b} both up, and the overlap began while they could talk"
                            ));
                        }
                    }
                    Some((since, reported)) => {
                        let from = [Some(since), bad, admin]
                            .into_iter()
                            .flatten()
                            .max()
                            .unwrap_or(since);
                        if talking && now - from > R && !reported {
                            self.overlap_since.insert(pair, (since, true));
                            self.violation(format!(
                                "t={now}: h{a} and h{b} both up since t={since}, more than {R} ms after they could talk again"
                            ));
                        }
                    }
                }
            }
        }
        self.prev_up = up;
    }

    /// Whether host `h` could serve and nothing of its own stops it: faild
    /// and failsh up, not frozen, its service healthy, its record not FAIL
    /// and no admin's request pending against it.
    fn eligible(&self, h: usize) -> bool {
        let host = &self.hosts[h];
        host.faild_up
            && host.failsh_up
            && !host.frozen
            && !host.crashed
            && !host.sick
            && host
                .registry
                .get(SERVICE)
                .is_some_and(|r| r.state != State::Fail && r.request.is_none())
    }

    /// Availability, checked before every event (the state since the last
    /// one still holds): while no host serves, an eligible host whose peers
    /// have all stopped keeping it from starting must start within [`U`].
    fn check_availability(&mut self) {
        let Some(nobody) = self.nobody_since else {
            return;
        };
        let now = self.now;
        for e in 0..self.hosts.len() {
            let Some(eligible) = self.eligible_since[e] else {
                continue;
            };
            let released: Option<Vec<u64>> = (0..self.hosts.len())
                .filter(|p| *p != e)
                .map(|p| self.heard.releases_from(e, p, now))
                .collect();
            let Some(released) = released else {
                continue;
            };
            let since = released
                .into_iter()
                .chain([nobody, eligible])
                .max()
                .expect("not empty");
            let gap = now - since;
            self.report.gap_ms = self.report.gap_ms.max(gap);
            if gap >= U && self.gap_reported != Some(nobody) {
                self.gap_reported = Some(nobody);
                self.violation(format!(
                    "availability: t={now}: no host serves since t={nobody}, and h{e} has been free to start since t={since} ({gap} ms, bound U = {U} ms)"
                ));
            }
            if !self.at_detection_limit(e, since) {
                continue;
            }
            self.report.prompt_gap_ms = self.report.prompt_gap_ms.max(gap);
            if gap >= P && self.gap_reported != Some(nobody) {
                self.gap_reported = Some(nobody);
                self.violation(format!(
                    "detection limit: t={now}: no host serves since t={nobody}, and h{e} was kept from starting only by a peer silent since t={since} ({gap} ms, bound P = {P} ms)"
                ));
            }
        }
    }

    /// Whether `e`'s start is due at the detection limit: what it waits for
    /// since `since` is a peer's silence (its last answer at `since`) that
    /// `e`'s current failsh heard begin, no answer could be slow or lost
    /// since the poll before it, and nothing happened since but the fault
    /// that silenced the peer (another peer falling silent meanwhile holds
    /// the deciding poll for a call limit, as it must).
    fn at_detection_limit(&self, e: usize, since: u64) -> bool {
        let mut edges = self
            .edges
            .iter()
            .rev()
            .take_while(|(t, _)| t + CALL_LIMIT > since);
        let quiet = match (edges.next(), edges.next()) {
            (None, _) => true,
            (Some((_, start)), None) => *start,
            _ => false,
        };
        let silent = (0..self.hosts.len())
            .filter(|p| *p != e)
            .filter_map(|p| self.heard.silent_since(e, p, self.now))
            .max();
        quiet
            && silent == Some(since)
            && self.hosts[e].failsh_since <= since
            && self.last_noisy.is_none_or(|t| t + CALL_LIMIT < since)
    }

    /// Patience, when a claimed start begins: every host that already
    /// served when the claim was decided must have been silent to the
    /// claimer (no accepted answer) for the timeout by then — unless an
    /// admin's start by hand explains it. Also counts the takeover towards
    /// the faults active at the decision.
    fn check_patience(&mut self, e: usize, claim: &Claim) {
        let now = self.now;
        for q in (0..self.hosts.len()).filter(|q| *q != e) {
            let serving_before = self.hosts[q].service_up && self.up_since[q] < claim.at;
            let admin = self
                .last_admin_up
                .is_some_and(|t| claim.at.saturating_sub(t) <= R);
            let heard = claim.heard[q].filter(|d| claim.at - d < TIMEOUT);
            if let (true, false, Some(d)) = (serving_before, admin, heard) {
                self.violation(format!(
                    "patience: t={now}: h{e} starts while h{q} serves (since t={}), having heard h{q} {} ms before it decided at t={} (timeout {TIMEOUT} ms)",
                    self.up_since[q],
                    claim.at - d,
                    claim.at
                ));
            }
        }
        let kinds = if claim.kinds.is_empty() {
            vec!["none".to_string()]
        } else {
            claim.kinds.iter().map(|k| format!("{k:?}")).collect()
        };
        for k in kinds {
            *self.report.takeovers_by.entry(k).or_default() += 1;
        }
    }

    /// An error answer is UNKNOWN: alive, its state hidden. It never times
    /// out into FAIL, so no claim may be decided while a peer's last answer
    /// was an error, unless the peer has been silent for the timeout since.
    fn check_unknown_blocks(&mut self, e: usize) {
        let now = self.now;
        for p in (0..self.hosts.len()).filter(|p| *p != e) {
            if let Some(at) = self.heard.last_error(e, p)
                && now - at < TIMEOUT
            {
                self.violation(format!(
                    "unknown: t={now}: h{e} claims the service although h{p} answered it with an error {} ms before",
                    now - at
                ));
            }
        }
    }

    fn violation(&mut self, what: String) {
        if self.report.violations.len() < 20 {
            self.report.violations.push(what);
        }
    }

    /// Liveness, at the end: the faults healed long ago; exactly the most
    /// preferred eligible host (faild and failsh running, not FAIL) serves.
    fn check_liveness(&mut self) {
        let eligible: Vec<usize> = (0..self.hosts.len())
            .filter(|&h| {
                let host = &self.hosts[h];
                host.faild_up
                    && host.failsh_up
                    && host
                        .registry
                        .get(SERVICE)
                        .is_some_and(|r| r.state != State::Fail)
            })
            .collect();
        let up: Vec<usize> = (0..self.hosts.len())
            .filter(|&h| self.hosts[h].service_up)
            .collect();
        let want: Vec<usize> = eligible.first().copied().into_iter().collect();
        if up != want {
            let states: Vec<String> = self
                .hosts
                .iter()
                .enumerate()
                .map(|(h, host)| {
                    let rec = host
                        .registry
                        .get(SERVICE)
                        .map_or("-".into(), |r| r.state.to_string());
                    format!(
                        "h{h}:{rec}{}",
                        if host.service_up { "/running" } else { "" }
                    )
                })
                .collect();
            self.violation(format!(
                "liveness: at the end hosts {up:?} serve, expected {want:?} (eligible {eligible:?}); {}",
                states.join(" ")
            ));
        } else if let [serving] = up[..]
            && self.announced != Some(serving)
        {
            // The seed's hidden-state race: another host started (and
            // announced itself) after the one that serves, and the server
            // never announced it again: clients still go to the other host.
            self.violation(format!(
                "hidden state: h{serving} serves, but clients last heard {} announce it",
                self.announced.map_or("no host".into(), |a| format!("h{a}"))
            ));
        }
        self.report.settle_ms = self.last_change.saturating_sub(self.quiet_from);
        if self.report.settle_ms > L {
            self.violation(format!(
                "liveness: the service moved {} ms after the last fault healed (bound L = {L} ms)",
                self.report.settle_ms
            ));
        }
    }
}
