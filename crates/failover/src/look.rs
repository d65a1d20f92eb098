//! When failsh polls, and how long it waits for each peer: the timing that
//! makes a failover happen at the detection limit — a silent peer's last
//! answer plus the timeout — rather than at the next tick after it.
//!
//! A silent peer can only be found dead by the timeout; everything after it
//! is overhead. So (this port's choice, docs/failsh.md "Timing"):
//! - a poll is due at every interval tick, and also at the moment a silent
//!   peer's INDOUBT reaches the timeout (its *expiry*) when that falls
//!   between two ticks ([`PollKind::Expiry`], the deciding poll);
//! - a poll whose call limit reaches past a peer's expiry waits for that
//!   peer only until the expiry, and a no-answer counts at the end of that
//!   wait (so the poll ends at the expiry and decides then);
//! - a peer already silent for the whole timeout gets only a
//!   [`LAST_LOOK`] in the deciding poll and in the second look after a
//!   claim: it had the timeout to answer; an answer within the look still
//!   stops the start. The regular tick waits the full call limit for it, so
//!   a distant host coming back is seen at the next interval — unless
//!   another peer's expiry falls within that tick's poll, which then
//!   decides: it waits for the silent peers only until the last of those
//!   expiries (at least the last look).
//!
//! Pure: failsh's engine and the simulator both schedule with it.

use std::time::Duration;

/// The last look at a peer already silent for the whole timeout: a LAN round
/// trip with room to spare (this port's choice).
pub const LAST_LOOK: Duration = Duration::from_millis(10);

/// Why a poll happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollKind {
    /// The regular poll at an interval tick.
    Tick,
    /// A peer's silence reaches the timeout between two ticks: the poll that
    /// decides at the detection limit.
    Expiry,
    /// The second look at the peers after a claim, before the start hook.
    SecondLook,
}

/// How long a poll waits for one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait {
    /// The call's limit.
    pub limit: Duration,
    /// The wait ends at the peer's expiry: a no-answer (a refused
    /// connection included) counts only once the whole limit has passed,
    /// so that the poll ends when the silence reaches the timeout.
    pub hold: bool,
}

/// The waits for peers silent since the given times (`None`: it answered
/// last time), in a poll of `kind` that starts at `start`.
pub fn waits(
    silent_since: &[Option<Duration>],
    timeout: Duration,
    start: Duration,
    call_limit: Duration,
    kind: PollKind,
) -> Vec<Wait> {
    let mut waits: Vec<Wait> = silent_since
        .iter()
        .map(|since| wait(*since, timeout, start, call_limit, kind))
        .collect();
    // A tick whose poll reaches a peer's expiry decides there: the peers
    // silent for the timeout already are waited for no longer than that.
    let deciding = waits.iter().filter(|w| w.hold).map(|w| w.limit).max();
    if let (PollKind::Tick, Some(until)) = (kind, deciding) {
        let look = until.max(LAST_LOOK).min(call_limit);
        for (w, since) in waits.iter_mut().zip(silent_since) {
            if since.is_some_and(|s| s + timeout <= start) {
                w.limit = look;
            }
        }
    }
    waits
}

/// The wait for a peer silent since `silent_since` (`None`: it answered
/// last time), in a poll of `kind` that starts at `start`.
fn wait(
    silent_since: Option<Duration>,
    timeout: Duration,
    start: Duration,
    call_limit: Duration,
    kind: PollKind,
) -> Wait {
    let full = Wait {
        limit: call_limit,
        hold: false,
    };
    let Some(since) = silent_since else {
        return full;
    };
    let look = LAST_LOOK.min(call_limit);
    match (since + timeout).checked_sub(start) {
        // Silent for the whole timeout already.
        None | Some(Duration::ZERO) => match kind {
            PollKind::Tick => full,
            PollKind::Expiry | PollKind::SecondLook => Wait {
                limit: look,
                hold: false,
            },
        },
        Some(left) if left >= call_limit => full,
        Some(left) => Wait {
            limit: left.max(look),
            hold: true,
        },
    }
}

/// The next expiry after `after` among peers silent since the given times:
/// when a deciding poll is due.
pub fn next_expiry(
    silent_since: impl IntoIterator<Item = Duration>,
    timeout: Duration,
    after: Duration,
) -> Option<Duration> {
    silent_since
        .into_iter()
        .map(|since| since + timeout)
        .filter(|expiry| *expiry > after)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    const T: Duration = Duration::from_secs(2);
    const LIMIT: Duration = Duration::from_millis(500);

    #[test]
    fn a_peer_that_answered_gets_the_call_limit() {
        for kind in [PollKind::Tick, PollKind::Expiry, PollKind::SecondLook] {
            assert_eq!(
                wait(None, T, ms(5_000), LIMIT, kind),
                Wait {
                    limit: LIMIT,
                    hold: false
                }
            );
        }
    }

    #[test]
    fn a_wait_past_the_expiry_ends_at_the_expiry_and_holds() {
        // Silent since 1.0 s: expiry 3.0 s; a tick at 2.8 s waits 0.2 s.
        let w = wait(Some(ms(1_000)), T, ms(2_800), LIMIT, PollKind::Tick);
        assert_eq!(
            w,
            Wait {
                limit: ms(200),
                hold: true
            }
        );
        // The expiry beyond the call limit: the ordinary wait.
        let w = wait(Some(ms(1_000)), T, ms(2_400), LIMIT, PollKind::Tick);
        assert_eq!(
            w,
            Wait {
                limit: LIMIT,
                hold: false
            }
        );
        // A few milliseconds before the expiry: at least the last look.
        let w = wait(Some(ms(1_000)), T, ms(2_997), LIMIT, PollKind::Tick);
        assert_eq!(
            w,
            Wait {
                limit: LAST_LOOK,
                hold: true
            }
        );
    }

    #[test]
    fn a_peer_silent_for_the_timeout_gets_a_last_look_only_when_deciding() {
        for start in [ms(3_000), ms(9_000)] {
            let at = |kind| wait(Some(ms(1_000)), T, start, LIMIT, kind);
            assert_eq!(
                at(PollKind::Tick).limit,
                LIMIT,
                "a tick sees a far host come back"
            );
            assert_eq!(at(PollKind::Expiry).limit, LAST_LOOK);
            assert_eq!(at(PollKind::SecondLook).limit, LAST_LOOK);
            assert!(!at(PollKind::Expiry).hold);
        }
        // Never longer than the call limit of a short interval.
        let w = wait(Some(ms(0)), ms(40), ms(50), ms(5), PollKind::SecondLook);
        assert_eq!(w.limit, ms(5));
    }

    #[test]
    fn a_tick_that_reaches_an_expiry_waits_no_longer_for_the_long_silent() {
        // One peer silent for the timeout already, one whose expiry comes
        // 0.25 s into the tick: the tick decides then.
        let silent = [Some(ms(0)), Some(ms(750)), None];
        let w = waits(&silent, T, ms(2_500), LIMIT, PollKind::Tick);
        assert_eq!(w[0].limit, ms(250));
        assert!(!w[0].hold);
        assert_eq!(
            w[1],
            Wait {
                limit: ms(250),
                hold: true
            }
        );
        assert_eq!(w[2].limit, LIMIT, "a peer that answers gets the call limit");
        // Without an expiry inside the tick: the full call limit for all.
        let w = waits(&silent[..1], T, ms(2_500), LIMIT, PollKind::Tick);
        assert_eq!(w[0].limit, LIMIT);
    }

    #[test]
    fn the_next_expiry_is_the_earliest_still_ahead() {
        let silent = [ms(1_000), ms(400), ms(2_500)];
        assert_eq!(next_expiry(silent, T, ms(2_000)), Some(ms(2_400)));
        assert_eq!(next_expiry(silent, T, ms(2_400)), Some(ms(3_000)));
        assert_eq!(next_expiry(silent, T, ms(4_500)), None);
        assert_eq!(next_expiry([], T, ms(0)), None);
    }
}
