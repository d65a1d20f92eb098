//! Who holds a port's client slots, and whom a newcomer may push out.
//!
//! A port serves a bounded number of clients. Capping alone lets anyone who
//! connects and then does nothing (never reads, never finishes a request)
//! hold every slot for as long as they like; so when a newcomer finds no
//! room, the table may push out a client that *owes the port something* to
//! make way for it. Every client owes something from the moment it is
//! admitted (a request, a community, proof that it reads what it is sent)
//! until its session says it is progressing ([`Slots::unstall`]); it owes
//! something again when its session says so ([`Slots::stall`]).
//!
//! A client that is progressing — a monitor that keeps reading its pushes,
//! a debug client that gave its community — is never pushed out: however
//! many connections a newcomer's source opens, they cannot cut an
//! established session short. A newcomer may push out, in this order:
//!
//! 1. the client that has owed something longest, if for more than the
//!    grace period (when the newcomer's source is at its limit, only one of
//!    that source's own);
//! 2. when the port is full (and the newcomer's source is not at its
//!    limit), the oldest client that owes something of the source holding
//!    the most slots, if that source holds at least two more than the
//!    newcomer's would: many clients from few sources cannot crowd out one
//!    from another source;
//! 3. the oldest client that owes something of the newcomer's own source:
//!    a source's newcomers turn over its own unproven clients, oldest
//!    first, so a flood of connections from an address pushes out its own
//!    earlier ones before a later legitimate one.
//!
//! Otherwise the newcomer is refused.
//!
//! The per-source limit does not apply to the local host's loopback
//! addresses ([`Source::Local`]): any local user may bind any of 127.0.0.0/8
//! and so has as many sources as they like — the limit would bind nobody
//! hostile and only cap the local failmons. Loopback clients still count
//! towards [`Limits::max`], as one source for rule 3.
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
    /// Clients served at once from one [`Source`] (but see
    /// [`Source::Local`]).
    pub per_source: usize,
    /// How long a client may owe the port something before it counts as
    /// stalled (and may be pushed out for any newcomer).
    pub grace: Duration,
}

/// Where a client comes from, as the per-source limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// The local host's loopback (127.0.0.0/8, `::1`): no per-source limit.
    Local,
    /// An IPv4 address.
    V4(std::net::Ipv4Addr),
    /// An IPv6 /48: one subscriber often holds a /56 or a /48 (a free
    /// tunnel broker hands out a /48), so counting /64s would give one
    /// attacker hundreds of sources.
    V6(std::net::Ipv6Addr),
}

/// The IPv6 prefix length one [`Source::V6`] stands for.
pub const V6_PREFIX: u32 = 48;

impl Source {
    pub fn of(ip: IpAddr) -> Source {
        let ip = ip.to_canonical(); // IPv4-mapped IPv6 as its IPv4 address
        if ip.is_loopback() {
            return Source::Local;
        }
        match ip {
            IpAddr::V4(a) => Source::V4(a),
            IpAddr::V6(a) => Source::V6((u128::from(a) & !(!0u128 >> V6_PREFIX)).into()),
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Local => f.write_str("the local host"),
            Source::V4(a) => write!(f, "{a}"),
            Source::V6(a) => write!(f, "{a}/{V6_PREFIX}"),
        }
    }
}

/// A client's place in the table.
pub type Id = u64;

struct Holder<T> {
    source: Source,
    since: Instant,
    /// Since when it owes the port something; `None` while it progresses.
    owes_since: Option<Instant>,
    payload: T,
}

/// Why a client was pushed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// It stalled (owed the port something past the grace period).
    Stalled,
    /// It was the oldest client that owed something of the newcomer's
    /// source (at its limit, or in a full port that no other source
    /// crowds).
    OwnSource,
    /// Its source held the most slots of a full port.
    Crowding,
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Why::Stalled => "it stalled",
            Why::OwnSource => "it was its address's oldest not proven yet",
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
    /// Every slot is held by a client that may not be pushed out for it.
    Full,
    /// Its source holds its share, all progressing.
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

    /// Admits a client from `source`, owing the port something from `now`,
    /// pushing out another if needed (it is already out of the table when
    /// returned: end its session).
    #[allow(clippy::type_complexity)]
    pub fn admit(
        &mut self,
        source: Source,
        now: Instant,
        payload: T,
    ) -> Result<(Id, Option<Evicted<T>>), Refused> {
        let own = self.held_by(source);
        let source_full = source != Source::Local && own >= self.limits.per_source;
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
                owes_since: Some(now),
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
        // Progressing clients are never candidates.
        let owing = || {
            self.holders.iter().filter_map(move |(&id, h)| {
                let owes = h.owes_since?;
                (!source_full || h.source == source).then_some((id, h, owes))
            })
        };
        let stalled = owing()
            .filter(|&(_, _, owes)| now.saturating_duration_since(owes) >= self.limits.grace)
            .min_by_key(|&(id, _, owes)| (owes, id));
        if let Some((id, _, _)) = stalled {
            return Some((id, Why::Stalled));
        }
        let oldest = |of: Source| {
            owing()
                .filter(|(_, h, _)| h.source == of)
                .min_by_key(|&(id, h, _)| (h.since, id))
                .map(|(id, _, _)| id)
        };
        if !source_full {
            let mut counts: HashMap<Source, usize> = HashMap::new();
            for h in self.holders.values() {
                *counts.entry(h.source).or_default() += 1;
            }
            let crowd = counts
                .into_iter()
                .max_by_key(|&(s, n)| (n, std::cmp::Reverse(s.to_string())))
                .filter(|&(_, n)| n > own + 1)
                .and_then(|(crowd, _)| oldest(crowd));
            if let Some(id) = crowd {
                return Some((id, Why::Crowding));
            }
        }
        oldest(source).map(|id| (id, Why::OwnSource))
    }

    /// `id` owes the port something from `now` on (kept if already set).
    pub fn stall(&mut self, id: Id, now: Instant) {
        if let Some(h) = self.holders.get_mut(&id) {
            h.owes_since.get_or_insert(now);
        }
    }

    /// `id` owes the port nothing: it is not pushed out for a newcomer
    /// until it owes something again.
    pub fn unstall(&mut self, id: Id) {
        if let Some(h) = self.holders.get_mut(&id) {
            h.owes_since = None;
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
        Source::of(IpAddr::from([10, 0, 0, last]))
    }

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    fn ip(s: &str) -> Source {
        Source::of(s.parse().unwrap())
    }

    #[test]
    fn sources_count_ipv4_addresses_and_ipv6_48s() {
        // A /48 is one source, whatever /56 or /64 in it.
        assert_eq!(ip("2001:db8::1"), ip("2001:db8::ffff:2"));
        assert_eq!(ip("2001:db8::1"), ip("2001:db8:0:ff00::1"));
        assert_eq!(ip("2001:db8::1"), ip("2001:db8:0:ffff:ffff::1"));
        assert_ne!(ip("2001:db8::1"), ip("2001:db8:1::1"));
        assert_eq!(ip("2001:db8:0:ff00::1").to_string(), "2001:db8::/48");
        assert_eq!(ip("::ffff:10.0.0.1"), src(1));
        assert_ne!(src(1), src(2));
        assert_eq!(src(1).to_string(), "10.0.0.1");
    }

    #[test]
    fn the_whole_loopback_is_the_local_host() {
        for a in ["127.0.0.1", "127.9.8.7", "::1", "::ffff:127.0.0.1"] {
            assert_eq!(ip(a), Source::Local, "{a}");
        }
        assert_eq!(Source::Local.to_string(), "the local host");
    }

    #[test]
    fn the_local_host_has_no_per_source_limit_but_the_port_has_its_max() {
        let t0 = Instant::now();
        let mut s = Slots::new(LIMITS);
        for i in 0..4 {
            let (id, out) = s.admit(Source::Local, t0, i).unwrap();
            assert_eq!(out, None);
            s.unstall(id);
        }
        assert_eq!(s.admit(Source::Local, ms(t0, 1000), 9), Err(Refused::Full));
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
            let (id, _) = s.admit(src(last), t0, last).unwrap();
            s.unstall(id);
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
    fn clients_owe_something_from_their_admission() {
        let t0 = Instant::now();
        let mut s = Slots::new(LIMITS);
        for last in 1..=4 {
            s.admit(src(last), ms(t0, u64::from(last)), last).unwrap();
        }
        let (_, out) = s.admit(src(9), ms(t0, 300), 9).unwrap();
        assert_eq!(out.map(|e| (e.payload, e.why)), Some((1, Why::Stalled)));
    }

    #[test]
    fn a_full_source_makes_way_with_its_own_oldest_that_owes_something() {
        let t0 = Instant::now();
        let mut s = Slots::new(LIMITS);
        let (a, _) = s.admit(src(1), ms(t0, 1), "a").unwrap();
        s.admit(src(1), ms(t0, 2), "b").unwrap();
        s.admit(src(2), ms(t0, 3), "c").unwrap();
        // Within the grace, and even though the other source's client is
        // stalled, a source at its limit only pushes out its own.
        s.unstall(a);
        let (_, out) = s.admit(src(1), ms(t0, 4), "new").unwrap();
        assert_eq!(out.map(|e| (e.payload, e.why)), Some(("b", Why::OwnSource)));
        // Its own stalled one goes first.
        let (_, out) = s.admit(src(1), ms(t0, 2000), "newer").unwrap();
        assert_eq!(out.map(|e| (e.payload, e.why)), Some(("new", Why::Stalled)));
        // Refused once all the source's progress.
        s.unstall(4);
        assert_eq!(s.admit(src(1), ms(t0, 4000), "y"), Err(Refused::SourceFull));
    }

    /// The review's attack: a legitimate, established client shares its
    /// address with one who keeps connecting. It is never pushed out; the
    /// attacker's connections turn over among themselves.
    #[test]
    fn a_progressing_client_outlives_a_flood_from_its_own_source() {
        let t0 = Instant::now();
        let mut s = Slots::new(LIMITS);
        let (legit, _) = s.admit(src(1), t0, 0).unwrap();
        s.unstall(legit);
        for i in 1..1000 {
            // Every timing: within the grace and past it.
            let (_, out) = s.admit(src(1), ms(t0, i * 37), i).unwrap();
            if let Some(out) = out {
                assert_ne!(out.payload, 0, "the legitimate client was pushed out");
            }
        }
        assert_eq!(s.held_by(src(1)), 2);
        // It owes something again (stopped reading): then it may go.
        s.stall(legit, ms(t0, 100_000));
        let (_, out) = s.admit(src(1), ms(t0, 100_300), 1).unwrap();
        assert_eq!(out.map(|e| e.payload), Some(999), "stalled longer");
        let (_, out) = s.admit(src(1), ms(t0, 100_301), 1).unwrap();
        assert_eq!(out.map(|e| e.payload), Some(0));
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
        // A source already present turns over its own.
        let (_, out) = s.admit(src(2), ms(t0, 7), 7).unwrap();
        assert_eq!(out.map(|e| (e.payload, e.why)), Some((3, Why::OwnSource)));
    }

    /// The loopback has no per-source limit, but in a full port its
    /// newcomers still turn over its clients not proven yet.
    #[test]
    fn the_local_host_turns_over_its_own_in_a_full_port() {
        let t0 = Instant::now();
        let mut s = Slots::new(LIMITS);
        let (legit, _) = s.admit(Source::Local, t0, 0).unwrap();
        s.unstall(legit);
        for i in 1..4 {
            s.admit(Source::Local, ms(t0, i), i).unwrap();
        }
        let (_, out) = s.admit(Source::Local, ms(t0, 10), 9).unwrap();
        assert_eq!(out.map(|e| (e.payload, e.why)), Some((1, Why::OwnSource)));
    }

    #[test]
    fn progressing_clients_of_a_crowding_source_stay() {
        let t0 = Instant::now();
        let mut s = Slots::new(LIMITS);
        for i in 0..3 {
            let (id, _) = s.admit(Source::Local, ms(t0, i), i).unwrap();
            s.unstall(id);
        }
        s.admit(src(2), ms(t0, 3), 3).unwrap();
        assert_eq!(s.admit(src(9), ms(t0, 5), 9), Err(Refused::Full));
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
        s.unstall(ids[0]);
        assert_eq!(s.len(), 4);
        assert!(!s.is_empty());
    }
}
