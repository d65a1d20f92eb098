//! The failover decision: given what this host and its peers are doing, what
//! failsh must do with the local instance of a service. Pure and total.
//!
//! The rules are the seed's (`concepts.html`); `docs/decision-table.md` cites
//! the sentence behind each and marks the cases the seed leaves open.

use std::fmt;
use std::time::Duration;

use crate::State;

/// What failsh last learned of one peer's instance of the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerView {
    Up,
    Recover,
    /// FAIL, or "no such service" (that host never claimed it).
    Fail,
    /// No answer for this long. Counts as FAIL once it reaches the timeout.
    InDoubt(Duration),
    /// The peer answered, but with an error (denied, bad request, version):
    /// it is alive and its state hidden. Never times out into FAIL.
    Unknown,
    /// The config names the peer by a name that does not resolve: a
    /// configuration error (a typo), not evidence that the peer is down. It
    /// may be up under its real name, so, like UNKNOWN, it blocks a start
    /// and never times out into FAIL; only a reload with a name that
    /// resolves ends it.
    Unresolved,
}

impl PeerView {
    /// The view with an INDOUBT that lasted `timeout` turned into FAIL.
    pub fn settled(self, timeout: Duration) -> PeerView {
        match self {
            PeerView::InDoubt(d) if d >= timeout => PeerView::Fail,
            v => v,
        }
    }
}

impl PeerView {
    /// Whether the peer's state cannot be seen although it may be up:
    /// INDOUBT (not timed out yet), UNKNOWN or UNRESOLVED. Such a peer
    /// blocks a start and holds a RECLAIM.
    pub fn may_be_up_unseen(self) -> bool {
        matches!(
            self,
            PeerView::InDoubt(_) | PeerView::Unknown | PeerView::Unresolved
        )
    }
}

impl fmt::Display for PeerView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerView::Up => f.write_str("UP"),
            PeerView::Recover => f.write_str("RECOVER"),
            PeerView::Fail => f.write_str("FAIL"),
            PeerView::InDoubt(_) => f.write_str("INDOUBT"),
            PeerView::Unknown => f.write_str("UNKNOWN"),
            PeerView::Unresolved => f.write_str("UNRESOLVED"),
        }
    }
}

/// Everything the decision depends on.
#[derive(Debug, Clone)]
pub struct Situation<'a> {
    /// UP when the service runs here (failsh started or adopted it),
    /// otherwise the local record's state.
    pub local: State,
    /// The internal RECLAIM flag: local UP and a peer may have announced
    /// itself meanwhile (seen UP, or its changes missed): re-announce once
    /// no peer may be up.
    pub reclaim: bool,
    pub masters: &'a [(String, PeerView)],
    pub slaves: &'a [(String, PeerView)],
    /// How long a peer may stay INDOUBT before it counts as FAIL.
    pub timeout: Duration,
}

/// What to do with the local instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Claim and start it here.
    Start,
    /// Stop it here.
    Stop,
    /// Re-announce it: it never stopped here, and the insane slave has stood down.
    Reclaim,
    /// Failsh would act, but something blocks it for now.
    Wait,
    /// All is as it should be.
    Nothing,
}

/// The decision and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub action: Action,
    /// The RECLAIM flag from now on.
    pub reclaim: bool,
    pub reason: String,
}

fn first(
    peers: &[(String, PeerView)],
    timeout: Duration,
    pred: impl Fn(PeerView) -> bool,
) -> Option<(&str, PeerView)> {
    peers
        .iter()
        .map(|(n, v)| (n.as_str(), v.settled(timeout)))
        .find(|(_, v)| pred(*v))
}

/// Decides. Total: every situation has exactly one answer.
pub fn decide(s: &Situation<'_>) -> Decision {
    let t = s.timeout;
    let ready_master = first(s.masters, t, |v| {
        matches!(v, PeerView::Up | PeerView::Recover)
    });
    let doubtful_master = first(s.masters, t, PeerView::may_be_up_unseen);
    let up_slave = first(s.slaves, t, |v| v == PeerView::Up);
    let doubtful_slave = first(s.slaves, t, PeerView::may_be_up_unseen);
    let d = |action, reclaim, reason: String| Decision {
        action,
        reclaim,
        reason,
    };
    match s.local {
        State::Fail => d(
            Action::Nothing,
            false,
            "FAIL here: failsh never starts it".into(),
        ),
        State::Up => {
            if let Some((m, v)) = ready_master {
                d(Action::Stop, false, format!("master {m} is {v}"))
            } else if let Some((sl, _)) = up_slave {
                d(
                    Action::Wait,
                    true,
                    format!("RECLAIM: slave {sl} is UP too; waiting for it to stand down"),
                )
            } else if let (true, Some((p, v))) = (s.reclaim, doubtful_slave.or(doubtful_master)) {
                d(Action::Wait, true, format!("RECLAIM: {p} is {v}; waiting"))
            } else if s.reclaim {
                d(
                    Action::Reclaim,
                    false,
                    "RECLAIM: no peer is UP or in doubt any more".into(),
                )
            } else {
                d(Action::Nothing, false, "UP here, no master ready".into())
            }
        }
        State::Recover => {
            if let Some((m, v)) = ready_master {
                d(Action::Nothing, false, format!("master {m} is {v}"))
            } else if let Some((m, v)) = doubtful_master {
                d(
                    Action::Wait,
                    false,
                    format!("master {m} is {v}; not starting"),
                )
            } else if let Some((sl, v)) = up_slave.or(doubtful_slave) {
                d(
                    Action::Wait,
                    false,
                    format!("slave {sl} is {v}; waiting for it to stand down"),
                )
            } else {
                d(
                    Action::Start,
                    false,
                    "no master ready and no slave UP".into(),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(15);

    /// Whether any peer may be providing the service, as far as failsh can
    /// tell: UP, or not known to be down.
    fn any_may_be_up(views: &[(String, PeerView)], timeout: Duration) -> bool {
        views.iter().any(|(_, v)| {
            matches!(
                v.settled(timeout),
                PeerView::Up | PeerView::InDoubt(_) | PeerView::Unknown | PeerView::Unresolved
            )
        })
    }

    const VIEWS: [PeerView; 7] = [
        PeerView::Up,
        PeerView::Recover,
        PeerView::Fail,
        PeerView::InDoubt(Duration::from_secs(1)),
        PeerView::InDoubt(Duration::from_secs(15)),
        PeerView::Unknown,
        PeerView::Unresolved,
    ];

    /// Every list of 0, 1 or 2 peers with every view.
    fn peer_lists(prefix: &str) -> Vec<Vec<(String, PeerView)>> {
        let mut lists = vec![vec![]];
        for a in VIEWS {
            lists.push(vec![(format!("{prefix}1"), a)]);
            for b in VIEWS {
                lists.push(vec![(format!("{prefix}1"), a), (format!("{prefix}2"), b)]);
            }
        }
        lists
    }

    /// Runs `check` on every situation with up to 2 masters and 2 slaves.
    fn every_situation(mut check: impl FnMut(&Situation<'_>, &Decision)) -> usize {
        let (masters, slaves) = (peer_lists("m"), peer_lists("s"));
        let mut n = 0;
        for local in State::ALL {
            for reclaim in [false, true] {
                for m in &masters {
                    for s in &slaves {
                        let sit = Situation {
                            local,
                            reclaim,
                            masters: m,
                            slaves: s,
                            timeout: T,
                        };
                        check(&sit, &decide(&sit));
                        n += 1;
                    }
                }
            }
        }
        n
    }

    #[test]
    fn invariants_hold_in_every_situation() {
        let n = every_situation(|s, d| {
            let ready_master = s
                .masters
                .iter()
                .any(|(_, v)| matches!(v.settled(T), PeerView::Up | PeerView::Recover));
            if d.action == Action::Start {
                assert!(
                    !any_may_be_up(s.masters, T),
                    "started beside a master that may be up: {s:?}"
                );
                assert!(
                    !any_may_be_up(s.slaves, T),
                    "started beside a slave that may be up: {s:?}"
                );
                assert!(!ready_master, "{s:?}");
                assert_eq!(
                    s.local,
                    State::Recover,
                    "only a RECOVER service starts: {s:?}"
                );
            }
            if s.local == State::Fail {
                assert_eq!(d.action, Action::Nothing, "FAIL is never started: {s:?}");
            }
            if s.local == State::Up && ready_master {
                assert_eq!(
                    d.action,
                    Action::Stop,
                    "a ready master makes us stop: {s:?}"
                );
            }
            if d.action == Action::Stop {
                assert!(s.local == State::Up && ready_master, "{s:?}");
            }
            if d.action == Action::Reclaim {
                assert!(s.local == State::Up && s.reclaim, "{s:?}");
                assert!(
                    !any_may_be_up(s.slaves, T) && !any_may_be_up(s.masters, T),
                    "reclaimed while a peer may be up: {s:?}"
                );
            }
            if d.reclaim {
                assert_eq!(s.local, State::Up, "RECLAIM only while UP: {s:?}");
            }
            if s.local == State::Up
                && !ready_master
                && s.slaves.iter().any(|(_, v)| *v == PeerView::Up)
            {
                assert!(
                    d.reclaim && d.action == Action::Wait,
                    "an UP slave means RECLAIM: {s:?}"
                );
            }
            assert!(!d.reason.is_empty() && !d.reason.contains('\n'));
        });
        // 1 + 7 + 7 × 7 peer lists of masters, and as many of slaves.
        assert_eq!(n, 3 * 2 * 57 * 57);
    }

    #[test]
    fn start_exactly_when_the_rules_allow() {
        every_situation(|s, d| {
            let allowed = s.local == State::Recover
                && !any_may_be_up(s.slaves, T)
                && s.masters
                    .iter()
                    .all(|(_, v)| v.settled(T) == PeerView::Fail);
            assert_eq!(d.action == Action::Start, allowed, "{s:?} -> {d:?}");
        });
    }

    fn sit<'a>(
        local: State,
        reclaim: bool,
        masters: &'a [(String, PeerView)],
        slaves: &'a [(String, PeerView)],
    ) -> Decision {
        decide(&Situation {
            local,
            reclaim,
            masters,
            slaves,
            timeout: T,
        })
    }

    fn one(name: &str, v: PeerView) -> Vec<(String, PeerView)> {
        vec![(name.to_string(), v)]
    }

    #[test]
    fn the_worked_example() {
        let master = |v| one("lukretia", v);
        let slave = |v| one("macbeth", v);
        // The slave: master up → nothing; master dead (timed out) → start.
        assert_eq!(
            sit(State::Recover, false, &master(PeerView::Up), &[]).action,
            Action::Nothing
        );
        let doubt = PeerView::InDoubt(Duration::from_secs(3));
        assert_eq!(
            sit(State::Recover, false, &master(doubt), &[]).action,
            Action::Wait
        );
        let dead = PeerView::InDoubt(T);
        assert_eq!(
            sit(State::Recover, false, &master(dead), &[]).action,
            Action::Start
        );
        // The master comes back RECOVER → the slave stops.
        assert_eq!(
            sit(State::Up, false, &master(PeerView::Recover), &[]).action,
            Action::Stop
        );
        // The master waits for the slave to stand down, then starts.
        assert_eq!(
            sit(State::Recover, false, &[], &slave(PeerView::Up)).action,
            Action::Wait
        );
        assert_eq!(
            sit(State::Recover, false, &[], &slave(PeerView::Recover)).action,
            Action::Start
        );
        // Split brain: master UP sees the slave UP → RECLAIM, then reclaim.
        let d = sit(State::Up, false, &[], &slave(PeerView::Up));
        assert!(d.reclaim && d.action == Action::Wait);
        assert_eq!(
            sit(State::Up, true, &[], &slave(PeerView::Recover)).action,
            Action::Reclaim
        );
        // A peer answering with an error is alive with a hidden state: never FAIL.
        assert_eq!(
            sit(State::Recover, false, &master(PeerView::Unknown), &[]).action,
            Action::Wait
        );
    }

    #[test]
    fn an_unresolved_peer_blocks_forever_and_never_counts_as_fail() {
        let typo = || one("lukertia", PeerView::Unresolved);
        assert_eq!(
            PeerView::Unresolved.settled(Duration::ZERO),
            PeerView::Unresolved
        );
        let d = sit(State::Recover, false, &typo(), &[]);
        assert_eq!(d.action, Action::Wait);
        assert_eq!(d.reason, "master lukertia is UNRESOLVED; not starting");
        // An unresolved slave may be up too: the master waits as well.
        assert_eq!(
            sit(State::Recover, false, &[], &typo()).action,
            Action::Wait
        );
        // While UP, it never makes the service stop, and holds a RECLAIM.
        assert_eq!(sit(State::Up, false, &typo(), &[]).action, Action::Nothing);
        let d = sit(State::Up, true, &[], &typo());
        assert!(d.reclaim && d.action == Action::Wait, "{d:?}");
    }
}
