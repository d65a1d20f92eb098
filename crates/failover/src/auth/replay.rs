//! The nonce cache: every signed request's nonce is remembered until its
//! timestamp leaves the window, so the same request cannot be played again
//! while it is still fresh; after that the window refuses it.
//!
//! Bounded: when `capacity` nonces are still live, a new request is refused
//! (faild answers DENIED) rather than remembered in place of an older one,
//! because forgetting a live nonce would let its request be replayed. The
//! caller passes the time in, so the simulator and the fuzzer drive it.
//!
//! Each key may also hold only a share of it (the key quota): a key holder
//! that misbehaves (a bug, a stolen key) can fill its own share, and be
//! refused, but not the whole cache, so holders of other keys keep working.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

use super::{AuthError, Nonce};

/// Nonces seen within the window.
#[derive(Debug, Clone)]
pub struct ReplayCache {
    capacity: usize,
    key_quota: usize,
    window: u64,
    live: HashSet<Nonce>,
    /// Live nonces per key id.
    per_key: HashMap<String, usize>,
    /// (expiry, nonce, key id), soonest first.
    expiries: BinaryHeap<Reverse<(u64, Nonce, String)>>,
}

impl ReplayCache {
    /// Default bound: 262,144 nonces (about 16 MiB at worst), enough for
    /// 8,700 signed requests a second held for a 30 s window.
    pub const DEFAULT_CAPACITY: usize = 1 << 18;
    /// Default key quota: a quarter of the cache, 65,536 nonces (2,100
    /// signed requests a second for 30 s, hundreds of times what a failsh
    /// sends), so that at least four keys always have room.
    pub const DEFAULT_KEY_QUOTA: usize = Self::DEFAULT_CAPACITY / 4;

    /// A cache for timestamps accepted within ± `window` seconds, with no
    /// key quota (one key may fill it).
    pub fn new(capacity: usize, window: u64) -> ReplayCache {
        let capacity = capacity.max(1);
        ReplayCache {
            capacity,
            key_quota: capacity,
            window,
            live: HashSet::new(),
            per_key: HashMap::new(),
            expiries: BinaryHeap::new(),
        }
    }

    /// The same, with at most `quota` live nonces per key id.
    pub fn with_key_quota(mut self, quota: usize) -> ReplayCache {
        self.key_quota = quota.clamp(1, self.capacity);
        self
    }

    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Records `nonce` of a request signed with `key_id` and stamped
    /// `time`, at `now` (Unix seconds; the caller has already checked that
    /// `time` is within the window). Refused when the nonce is still live,
    /// when the cache is full, or when the key has used up its quota.
    pub fn check_in(
        &mut self,
        key_id: &str,
        nonce: Nonce,
        time: u64,
        now: u64,
    ) -> Result<(), AuthError> {
        self.expire(now);
        if self.live.contains(&nonce) {
            return Err(AuthError::Replayed);
        }
        if self.live.len() >= self.capacity {
            return Err(AuthError::CacheFull(self.capacity));
        }
        let held = self.per_key.get(key_id).copied().unwrap_or(0);
        if held >= self.key_quota {
            return Err(AuthError::KeyQuota {
                key: key_id.to_string(),
                quota: self.key_quota,
            });
        }
        // A request stamped `time` is fresh until `time + window`; its nonce
        // must be remembered that long, and no longer.
        let expiry = time.saturating_add(self.window);
        self.live.insert(nonce);
        *self.per_key.entry(key_id.to_string()).or_insert(0) += 1;
        self.expiries
            .push(Reverse((expiry, nonce, key_id.to_string())));
        Ok(())
    }

    fn expire(&mut self, now: u64) {
        while self
            .expiries
            .peek()
            .is_some_and(|Reverse((expiry, ..))| *expiry < now)
        {
            let Some(Reverse((_, nonce, key_id))) = self.expiries.pop() else {
                break;
            };
            self.live.remove(&nonce);
            if let Some(n) = self.per_key.get_mut(&key_id) {
                *n -= 1;
                if *n == 0 {
                    self.per_key.remove(&key_id);
                }
            }
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
        assert_eq!(c.check_in("k", nonce(1), 1000, 1000), Ok(()));
        assert_eq!(
            c.check_in("k", nonce(1), 1000, 1029),
            Err(AuthError::Replayed)
        );
        assert_eq!(
            c.check_in("k", nonce(1), 1000, 1030),
            Err(AuthError::Replayed)
        );
        assert_eq!(c.check_in("k", nonce(2), 1031, 1031), Ok(()));
        assert_eq!(c.len(), 1, "nonce 1 expired once its time left the window");
    }

    #[test]
    fn full_means_refused_not_forgotten() {
        let mut c = ReplayCache::new(3, 30);
        for i in 0..3 {
            assert_eq!(c.check_in("k", nonce(i), 1000, 1000), Ok(()));
        }
        assert_eq!(
            c.check_in("k", nonce(9), 1000, 1001),
            Err(AuthError::CacheFull(3))
        );
        assert_eq!(
            c.check_in("k", nonce(0), 1000, 1001),
            Err(AuthError::Replayed)
        );
        // Once the old ones expire there is room again.
        assert_eq!(c.check_in("k", nonce(9), 1031, 1031), Ok(()));
    }

    #[test]
    fn one_key_cannot_fill_the_cache() {
        let mut c = ReplayCache::new(4, 30).with_key_quota(2);
        assert_eq!(c.check_in("a", nonce(1), 1000, 1000), Ok(()));
        assert_eq!(c.check_in("a", nonce(2), 1000, 1000), Ok(()));
        assert_eq!(
            c.check_in("a", nonce(3), 1000, 1000),
            Err(AuthError::KeyQuota {
                key: "a".into(),
                quota: 2
            })
        );
        // Another key still has room, until the whole cache is full.
        assert_eq!(c.check_in("b", nonce(4), 1000, 1000), Ok(()));
        assert_eq!(c.check_in("c", nonce(5), 1000, 1000), Ok(()));
        assert_eq!(
            c.check_in("d", nonce(6), 1000, 1000),
            Err(AuthError::CacheFull(4))
        );
        // The replay check comes first: a live nonce is a replay whoever
        // signed it.
        assert_eq!(
            c.check_in("a", nonce(4), 1000, 1000),
            Err(AuthError::Replayed)
        );
        // Expiry gives the key its quota back.
        assert_eq!(c.check_in("a", nonce(7), 1031, 1031), Ok(()));
        assert_eq!(c.check_in("a", nonce(8), 1031, 1031), Ok(()));
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn future_stamps_are_kept_until_their_own_expiry() {
        let mut c = ReplayCache::new(10, 30);
        assert_eq!(c.check_in("k", nonce(1), 1030, 1000), Ok(()));
        assert_eq!(
            c.check_in("k", nonce(1), 1030, 1059),
            Err(AuthError::Replayed)
        );
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
                let got = c.check_in("k", nonce(n), time, now);
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
