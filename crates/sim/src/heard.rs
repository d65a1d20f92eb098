//! What each host's failsh really heard from each peer: the answers the
//! simulated network delivered while the poll that asked was still open
//! (an answer after the caller's limit is no answer), each as of when the
//! peer sent it. The availability and
//! patience invariants judge from this, not from which faults were active.

use crate::world::{CALL_LIMIT, INTERVAL};

/// One answer as the oracle sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// When the peer sent it: what it is as of (a frozen failsh accepts
    /// answers late, and they are no newer for that).
    pub at: u64,
    /// Whether it keeps the listener from starting: a master UP or RECOVER
    /// (ready), a slave UP, or an error answer (UNKNOWN) from anyone.
    pub blocking: bool,
    /// An error answer.
    pub error: bool,
}

/// Per listener, per peer: the last accepted answer and when the current
/// run of answers that do not block began; per listener, when its last
/// completed poll round began. A peer missing from a round is INDOUBT to
/// failsh, which blocks a start until the timeout: a missed answer restarts
/// the run.
#[derive(Debug, Clone)]
pub struct Heard {
    last: Vec<Vec<Option<Answer>>>,
    clear_since: Vec<Vec<u64>>,
    round_at: Vec<u64>,
}

/// An answer older than this means the peer is silent: failsh asks once an
/// interval and accepts answers within its call limit.
pub const FRESH: u64 = INTERVAL + CALL_LIMIT;

impl Heard {
    pub fn new(n: usize) -> Heard {
        Heard {
            last: vec![vec![None; n]; n],
            clear_since: vec![vec![0; n]; n],
            round_at: vec![0; n],
        }
    }

    pub fn record(&mut self, listener: usize, peer: usize, answer: Answer) {
        let before = self.last[listener][peer];
        let run_broken = before.is_none_or(|b| b.blocking || self.missed(listener, b));
        if !answer.blocking && run_broken {
            self.clear_since[listener][peer] = answer.at;
        }
        self.last[listener][peer] = Some(answer);
    }

    /// When `peer`'s last answer to `listener` was sent, if it was an error.
    pub fn last_error(&self, listener: usize, peer: usize) -> Option<u64> {
        self.last[listener][peer].filter(|a| a.error).map(|a| a.at)
    }

    /// A poll round of `listener` that began at `at` is over.
    pub fn round_done(&mut self, listener: usize, at: u64) {
        self.round_at[listener] = at;
    }

    /// Whether `listener`'s last round went without this answer's peer.
    fn missed(&self, listener: usize, a: Answer) -> bool {
        a.at < self.round_at[listener]
    }

    /// When the last answer from `peer` reached `listener`, if ever.
    pub fn last(&self, listener: usize, peer: usize) -> Option<u64> {
        self.last[listener][peer].map(|a| a.at)
    }

    /// When `peer` last answered `listener`, if it has been silent since
    /// (missing from the last round, or not heard for longer than a round
    /// takes).
    pub fn silent_since(&self, listener: usize, peer: usize, now: u64) -> Option<u64> {
        self.last[listener][peer]
            .filter(|a| now - a.at > FRESH || self.missed(listener, *a))
            .map(|a| a.at)
    }

    /// Since when `peer` no longer keeps `listener` from starting, as far as
    /// the network goes: its answers in every round do not block (since the
    /// first of them), or it has been silent since its last answer (missing
    /// from the last round, or not heard for longer than a round takes),
    /// which failsh rides out for the timeout. `None`: its fresh answer
    /// blocks.
    pub fn releases_from(&self, listener: usize, peer: usize, now: u64) -> Option<u64> {
        match self.last[listener][peer] {
            None => Some(0),
            Some(a) if self.silent_since(listener, peer, now).is_some() => Some(a.at),
            Some(a) if a.blocking => None,
            Some(_) => Some(self.clear_since[listener][peer]),
        }
    }
}
