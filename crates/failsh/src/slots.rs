//! Who holds a port's client slots, and whom a newcomer may push out.
//!
//! A port serves a bounded number of clients. Capping alone lets anyone who
//! connects and then does nothing (never reads, never finishes a request)
//! hold every slot for as long as they like; so when a newcomer finds no
//! room, the table picks a client to make way for it, in this order:
//!
//! 1. the one that has stalled longest — it owes the port something (a
//!    request, a community, reading what it was sent) and has owed it for
//!    more than the grace period;
//! 2. when the newcomer's source already holds its share
//!    ([`Limits::per_source`]), that source's oldest client: a source's
//!    own clients make way for its newest, so sharing an address with an
//!    attacker never locks a legitimate client out;
//! 3. when the port is full, the oldest client of the source holding the
//!    most slots, if that source holds at least two more than the newcomer's
//!    would: many clients from few sources cannot crowd out one from
//!    another source.
//!
//! Otherwise the newcomer is refused. Trusted clients (a debug client that
//! gave the community) are never pushed out.
//!
//! Pure logic: time comes in as arguments, and the payload (what ends an
//! evicted client's session) is the caller's.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// One port's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Clients served at once.
    pub max: usize,
    /// Clients served at once from one [`Source`].
    pub per_source: usize,
    /// How long a client may owe the port something before it counts as
    /// stalled (and may be pushed out for a newcomer).
    pub grace: Duration,
}

/// Where a client comes from, as the per-source limit counts: an IPv4
/// address, or an IPv6 /64 (one host usually holds a whole /64, so counting
/// single IPv6 addresses would be no limit at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Source(IpAddr);

impl Source {
    pub fn of(ip: IpAddr) -> Source {
        match ip {
            IpAddr::V4(_) => Source(ip),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source(IpAddr::V4(v4)),
                None => Source(IpAddr::V6((u128::from(v6) & !0u128 << 64).into())),
            },
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(a) => write!(f, "{a}"),
            IpAddr::V6(a) => write!(f, "{a}/64"),
        }
    }
}

/// A client's place in the table.
pub type Id = u64;

struct Holder<T> {
    source: Source,
    since: Instant,
    stalled_since: Option<Instant>,
    trusted: bool,
    payload: T,
}

/// Why a client was pushed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// It stalled (owed the port something past the grace period).
    Stalled,
    /// Its source is at its limit and it was that source's oldest.
    SourceFull,
    /// Its source held the most slots of a full port.
    Crowding,
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Why::Stalled => "it stalled",
            Why::SourceFull => "its address was at its limit",
            Why::Crowding => "its address held the most slots",
        })
    }
}

/// A client pushed out to make room.
#[derive(Debug, PartialEq, Eq)]
pub struct Evicted<T> {
    pub source: Source,
    pub why: Why,
    pub payload: T,
}

/// Why a newcomer was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Every slot is held by a client that may not be pushed out.
    Full,
    /// Its source holds its share, all trusted.
    SourceFull,
}

/// The clients a port serves.
pub struct Slots<T> {
    limits: Limits,
    holders: HashMap<Id, Holder<T>>,
    next: Id,
}

impl<T> Slots<T> {
    pub fn new(limits: Limits) -> Slots<T> {
        Slots {
            limits,
            holders: HashMap::new(),
            next: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.holders.len()
    }

    pub fn is_empty(&self) -> bool {
        self.holders.is_empty()
    }

    fn held_by(&self, source: Source) -> usize {
        self.holders.values().filter(|h| h.source == source).count()
    }

    /// Admits a client from `source`, pushing out another if needed (it is
    /// already out of the table when returned: end its session).
    #[allow(clippy::type_complexity)]
    pub fn admit(
        &mut self,
        source: Source,
        now: Instant,
        payload: T,
    ) -> Result<(Id, Option<Evicted<T>>), Refused> {
        let own = self.held_by(source);
        let source_full = own >= self.limits.per_source;
        let full = self.holders.len() >= self.limits.max;
        let evicted = if source_full || full {
            let (victim, why) =
                self.victim(source, own, source_full, now)
                    .ok_or(if source_full {
                        Refused::SourceFull
                    } else {
                        Refused::Full
                    })?;
            let h = self.holders.remove(&victim).expect("victim is held");
            Some(Evicted {
                source: h.source,
                why,
                payload: h.payload,
            })
        } else {
            None
        };
        let id = self.next;
        self.next += 1;
        self.holders.insert(
            id,
            Holder {
                source,
                since: now,
                stalled_since: None,
                trusted: false,
                payload,
            },
        );
        Ok((id, evicted))
    }

    fn victim(
        &self,
        source: Source,
        own: usize,
        source_full: bool,
        now: Instant,
    ) -> Option<(Id, Why)> {
        let candidates = || {
            self.holders
                .iter()
                .filter(move |(_, h)| !h.trusted && (!source_full || h.source == source))
        };
        let stalled = candidates()
            .filter_map(|(&id, h)| Some((h.stalled_since?, id)))
            .filter(|&(since, _)| now.saturating_duration_since(since) >= self.limits.grace)
            .min();
        if let Some((_, id)) = stalled {
            return Some((id, Why::Stalled));
        }
        let oldest = |of: Source| {
            candidates()
                .filter(|(_, h)| h.source == of)
                .min_by_key(|&(&id, h)| (h.since, id))
                .map(|(&id, _)| id)
        };
        if source_full {
            return oldest(source).map(|id| (id, Why::SourceFull));
        }
        let mut counts: HashMap<Source, usize> = HashMap::new();
        for (_, h) in candidates() {
            *counts.entry(h.source).or_default() += 1;
        }
        let (crowd, n) = counts
            .into_iter()
            .max_by_key(|&(s, n)| (n, std::cmp::Reverse(s.to_string())))?;
        if n > own + 1 {
            oldest(crowd).map(|id| (id, Why::Crowding))
        } else {
            None
        }
    }

    /// `id` owes the port something from `now` on (kept if already set).
    pub fn stall(&mut self, id: Id, now: Instant) {
        if let Some(h) = self.holders.get_mut(&id) {
            h.stalled_since.get_or_insert(now);
        }
    }

    /// `id` owes the port nothing.
    pub fn unstall(&mut self, id: Id) {
        if let Some(h) = self.holders.get_mut(&id) {
            h.stalled_since = None;
        }
    }

    /// `id` is never pushed out from now on.
    pub fn trust(&mut self, id: Id) {
        if let Some(h) = self.holders.get_mut(&id) {
            h.trusted = true;
            h.stalled_since = None;
        }
    }

    /// `id` left (nothing happens if it was pushed out already).
    pub fn release(&mut self, id: Id) {
        self.holders.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max: 4,
        per_source: 2,
        grace: Duration::from_millis(250),
    };

    fn src(last: u8) -> Source {
        Source::of(IpAddr::from([127, 0, 0, last]))
    }

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    #[test]
    fn sources_count_ipv4_addresses_and_ipv6_prefixes() {
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::ffff:2".parse().unwrap();
        let other: IpAddr = "2001:db8:0:1::1".parse().unwrap();
        assert_eq!(Source::of(a), Source::of(b));
        assert_ne!(Source::of(a), Source::of(other));
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(Source::of(mapped), src(1));
        assert_eq!(Source::of(a).to_string(), "2001:db8::/64");
        assert_ne!(src(1), src(2));
    }

    #[test]
    fn room_admits_without_evicting() {
        let t0 = Instant::now();
        let mut s = Slots::new(LIMITS);
        for (i, last) in [1, 1, 2, 3].into_iter().enumerate() {
            assert_eq!(s.admit(src(last), ms(t0, i as u64), i), Ok((i as Id, None)));
        }
        assert_eq!(s.len(), 4);
    }

    #[test]
    fn the_longest_stalled_makes_way_but_only_after_the_grace() {
        let t0 = Instant::now();
        let mut s = Slots::new(LIMITS);
        for last in 1..=4 {
            s.admit(src(last), t0, last).unwrap();
        }
        s.stall(1, ms(t0, 10));
        s.stall(2, ms(t0, 5));
        s.stall(2, ms(t0, 100)); // kept: stalled since 5 ms
        // Within the grace: nobody counts as stalled, all hold one slot.
        assert_eq!(s.admit(src(9), ms(t0, 200), 9), Err(Refused::Full));
        let (_, out) = s.admit(src(9), ms(t0, 300), 9).unwrap();
        assert_eq!(
            out,
            Some(Evicted {
                source: src(3),
                why: Why::Stalled,
                payload: 3
            })
        );
        // Progress clears the stall.
        s.unstall(1);
        assert_eq!(s.admit(src(8), ms(t0, 400), 8), Err(Refused::Full));
    }

    #[test]
    fn a_full_source_makes_way_with_its_own_oldest() {
        let t0 = Instant::now();
        let mut s = Slots::new(LIMITS);
        s.admit(src(1), ms(t0, 1), "a").unwrap();
        let (b, _) = s.admit(src(1), ms(t0, 2), "b").unwrap();
        s.admit(src(2), ms(t0, 3), "c").unwrap();
        // Even though the other source's client is stalled, a source at its
        // limit only pushes out its own.
        s.stall(2, ms(t0, 3));
        let (c, out) = s.admit(src(1), ms(t0, 1000), "new").unwrap();
        assert_eq!(
            out.map(|e| (e.payload, e.why)),
            Some(("a", Why::SourceFull))
        );
        s.stall(c, ms(t0, 1000));
        // Its own stalled one goes first.
        let (_, out) = s.admit(src(1), ms(t0, 2000), "newer").unwrap();
        assert_eq!(out.map(|e| (e.payload, e.why)), Some(("new", Why::Stalled)));
        // Trusted clients stay: refused once all the source's are.
        s.trust(b);
        let (d, _) = s.admit(src(1), ms(t0, 3000), "x").unwrap();
        s.trust(d);
        assert_eq!(s.admit(src(1), ms(t0, 4000), "y"), Err(Refused::SourceFull));
    }

    #[test]
    fn crowding_sources_make_way_for_another() {
        let t0 = Instant::now();
        let mut s = Slots::new(LIMITS);
        s.admit(src(1), ms(t0, 1), 1).unwrap();
        s.admit(src(1), ms(t0, 2), 2).unwrap();
        s.admit(src(2), ms(t0, 3), 3).unwrap();
        s.admit(src(3), ms(t0, 4), 4).unwrap();
        // Source 1 holds 2, the newcomer's would hold 1: 1's oldest goes.
        let (_, out) = s.admit(src(9), ms(t0, 5), 9).unwrap();
        assert_eq!(out.map(|e| (e.payload, e.why)), Some((1, Why::Crowding)));
        // Now everybody holds one: no fairer split, so refused.
        assert_eq!(s.admit(src(8), ms(t0, 6), 8), Err(Refused::Full));
        // A source already present may not crowd out another either.
        assert_eq!(s.admit(src(2), ms(t0, 7), 7), Err(Refused::Full));
    }

    #[test]
    fn released_and_evicted_slots_are_free_again() {
        let t0 = Instant::now();
        let mut s = Slots::new(LIMITS);
        let ids: Vec<Id> = (1..=4).map(|l| s.admit(src(l), t0, l).unwrap().0).collect();
        s.release(ids[0]);
        s.release(ids[0]); // twice: no harm
        assert_eq!(s.len(), 3);
        assert!(s.admit(src(9), t0, 9).unwrap().1.is_none());
        // Marks on clients that left change nothing.
        s.stall(ids[0], t0);
        s.trust(ids[0]);
        assert_eq!(s.len(), 4);
        assert!(!s.is_empty());
    }
}
