//! Times as failmon shows them: ages relative to the snapshot's own clock
//! (`at`), so a monitor on another host with a skewed clock still shows
//! right ages, and the same snapshot always renders the same way.

use failover::monitor::{HostStatus, Snapshot, age};

/// How long before the snapshot `t` was: `12s ago`, or `never`.
pub fn ago(snapshot: &Snapshot, t: Option<f64>) -> String {
    t.map_or_else(
        || "never".to_string(),
        |t| format!("{} ago", age(snapshot.at - t)),
    )
}

/// The last call to a host's faild, answered or not, and how it went.
pub fn last_call(h: &HostStatus) -> Option<(f64, bool)> {
    match (h.last_ok, h.last_failure) {
        (Some(ok), Some(failed)) if failed > ok => Some((failed, false)),
        (Some(ok), _) => Some((ok, true)),
        (None, Some(failed)) => Some((failed, false)),
        (None, None) => None,
    }
}

/// `ok`, `failing` or `-` (never called), by the last call.
pub fn health(h: &HostStatus) -> &'static str {
    match last_call(h) {
        Some((_, true)) => "ok",
        Some((_, false)) => "failing",
        None => "-",
    }
}

/// A round-trip time, `0.25ms`, or `-`.
pub fn rtt(h: &HostStatus) -> String {
    h.rtt_ms.map_or("-".into(), |r| format!("{r:.2}ms"))
}

/// A duration in seconds, short: `0.20s`, `12.0s`.
pub fn seconds(s: f64) -> String {
    if s < 10.0 {
        format!("{s:.2}s")
    } else {
        format!("{s:.1}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::sample;

    #[test]
    fn ages_count_from_the_snapshot() {
        let s = sample();
        assert_eq!(ago(&s, Some(999.5)), "0.5s ago");
        assert_eq!(ago(&s, Some(940.0)), "1m00s ago");
        assert_eq!(ago(&s, None), "never");
    }

    #[test]
    fn the_last_call_is_the_later_of_ok_and_failure() {
        let s = sample();
        assert_eq!(last_call(&s.hosts[0]), Some((999.5, true)));
        assert_eq!(last_call(&s.hosts[2]), Some((998.0, false)));
        assert_eq!(health(&s.hosts[2]), "failing");
        let mut never = s.hosts[0].clone();
        never.last_ok = None;
        assert_eq!(health(&never), "-");
        assert_eq!(rtt(&s.hosts[2]), "-");
        assert_eq!(seconds(0.2), "0.20s");
        assert_eq!(seconds(12.04), "12.0s");
    }
}
