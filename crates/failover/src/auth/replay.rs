//! The nonce cache: every signed request's nonce is remembered until its
//! timestamp leaves the window, so the same request cannot be played again
//! while it is still fresh; after that the window refuses it.
//!
//! Bounded: when `capacity` nonces are still live, a new request is refused
//! (faild answers DENIED) rather than remembered in place of an older one,
//! because forgetting a live nonce would let its request be replayed. The
//! caller passes the time in, so the simulator and the fuzzer drive it.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};

use super::{AuthError, Nonce};

/// Nonces seen within the window.
#[derive(Debug, Clone)]
pub struct ReplayCache {
    capacity: usize,
    window: u64,
    live: HashSet<Nonce>,
    /// (expiry, nonce), soonest first.
    expiries: BinaryHeap<Reverse<(u64, Nonce)>>,
}

impl ReplayCache {
    /// Default bound: 262,144 nonces (about 16 MiB at worst), enough for
    /// 8,700 signed requests a second held for a 30 s window.
    pub const DEFAULT_CAPACITY: usize = 1 << 18;

    /// A cache for timestamps accepted within ± `window` seconds.
    pub fn new(capacity: usize, window: u64) -> ReplayCache {
        ReplayCache {
            capacity: capacity.max(1),
            window,
            live: HashSet::new(),
            expiries: BinaryHeap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Records `nonce` of a request stamped `time`, at `now` (Unix seconds;
    /// the caller has already checked that `time` is within the window).
    /// Refused when the nonce is still live, or when the cache is full.
    pub fn check_in(&mut self, nonce: Nonce, time: u64, now: u64) -> Result<(), AuthError> {
        self.expire(now);
        if self.live.contains(&nonce) {
            return Err(AuthError::Replayed);
        }
        if self.live.len() >= self.capacity {
            return Err(AuthError::CacheFull(self.capacity));
        }
        // A request stamped `time` is fresh until `time + window`; its nonce
        // must be remembered that long, and no longer.
        let expiry = time.saturating_add(self.window);
        self.live.insert(nonce);
        self.expiries.push(Reverse((expiry, nonce)));
        Ok(())
    }

    fn expire(&mut self, now: u64) {
        while let Some(Reverse((expiry, nonce))) = self.expiries.peek().copied() {
            if expiry >= now {
                break;
            }
            self.expiries.pop();
            self.live.remove(&nonce);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn nonce(i: u64) -> Nonce {
        let mut n = [0; 16];
        n[..8].copy_from_slice(&i.to_be_bytes());
        n
    }

    #[test]
    fn refuses_a_nonce_while_fresh_and_forgets_it_after() {
        let mut c = ReplayCache::new(10, 30);
        assert_eq!(c.check_in(nonce(1), 1000, 1000), Ok(()));
        assert_eq!(c.check_in(nonce(1), 1000, 1029), Err(AuthError::Replayed));
        assert_eq!(c.check_in(nonce(1), 1000, 1030), Err(AuthError::Replayed));
        assert_eq!(c.check_in(nonce(2), 1031, 1031), Ok(()));
        assert_eq!(c.len(), 1, "nonce 1 expired once its time left the window");
    }

    #[test]
    fn full_means_refused_not_forgotten() {
        let mut c = ReplayCache::new(3, 30);
        for i in 0..3 {
            assert_eq!(c.check_in(nonce(i), 1000, 1000), Ok(()));
        }
        assert_eq!(
            c.check_in(nonce(9), 1000, 1001),
            Err(AuthError::CacheFull(3))
        );
        assert_eq!(c.check_in(nonce(0), 1000, 1001), Err(AuthError::Replayed));
        // Once the old ones expire there is room again.
        assert_eq!(c.check_in(nonce(9), 1031, 1031), Ok(()));
    }

    #[test]
    fn future_stamps_are_kept_until_their_own_expiry() {
        let mut c = ReplayCache::new(10, 30);
        assert_eq!(c.check_in(nonce(1), 1030, 1000), Ok(()));
        assert_eq!(c.check_in(nonce(1), 1030, 1059), Err(AuthError::Replayed));
    }

    proptest! {
        /// Against a model that remembers every nonce for ever: while a
        /// request's time is within the window, a repeat is always refused.
        #[test]
        fn never_accepts_a_live_replay(ops in prop::collection::vec((0u64..20, 0u64..5), 1..200)) {
            let mut c = ReplayCache::new(8, 30);
            let mut accepted: Vec<(u64, u64)> = Vec::new(); // (nonce, time)
            let mut now = 1000;
            for (n, step) in ops {
                now += step;
                let time = now;
                let got = c.check_in(nonce(n), time, now);
                let live_dup = accepted.iter().any(|&(m, t)| m == n && t + 30 >= now);
                if live_dup {
                    prop_assert_eq!(got.clone(), Err(AuthError::Replayed));
                }
                if got.is_ok() {
                    accepted.push((n, time));
                }
                prop_assert!(c.len() <= 8);
            }
        }
    }
}
