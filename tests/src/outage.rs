//! Outages in a service journal — periods in which no host ran the service
//! — and their spread, for the availability check of the chaos run.

use std::fmt;

use crate::{Entry, up_sets};

/// Periods `(start, end)` in which no host was up, by the journal, from the
/// first start on (before it the service had not begun: the boot is not an
/// outage); one still open at the end has end = ∞. Never shorter than the
/// real ones, as [`up_sets`] says.
pub fn outages(entries: &[Entry]) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::new();
    let mut before: Option<usize> = None; // None until the first start
    for (at, up) in up_sets(entries) {
        match before {
            Some(b) if b > 0 && up.is_empty() => out.push((at, f64::INFINITY)),
            Some(0) if !up.is_empty() => {
                if let Some(last) = out.last_mut() {
                    last.1 = at;
                }
            }
            _ => {}
        }
        if before.is_some() || !up.is_empty() {
            before = Some(up.len());
        }
    }
    out
}

/// Count, min, median, 95th percentile and max of a set of durations in
/// seconds (nearest rank), printed as a one-line summary.
#[derive(Debug, Clone, PartialEq)]
pub struct Spread {
    pub count: usize,
    pub min: f64,
    pub median: f64,
    pub p95: f64,
    pub max: f64,
}

impl Spread {
    /// `None` for no durations.
    pub fn of(durations: &[f64]) -> Option<Spread> {
        let mut d = durations.to_vec();
        d.sort_by(f64::total_cmp);
        let rank = |p: f64| d[((p * d.len() as f64).ceil() as usize).clamp(1, d.len()) - 1];
        Some(Spread {
            count: d.len(),
            min: *d.first()?,
            median: rank(0.5),
            p95: rank(0.95),
            max: *d.last()?,
        })
    }
}

impl fmt::Display for Spread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} outages, min {:.0} ms, median {:.0} ms, p95 {:.0} ms, max {:.0} ms",
            self.count,
            self.min * 1e3,
            self.median * 1e3,
            self.p95 * 1e3,
            self.max * 1e3
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(host: &str, event: &str, at: f64) -> Entry {
        Entry {
            host: host.into(),
            event: event.into(),
            at,
        }
    }

    #[test]
    fn outages_are_the_gaps_after_the_first_start() {
        let j = [
            e("a", "up", 1.0),
            e("a", "started", 1.1),
            e("a", "down", 2.0),
            e("b", "up", 3.5),
            e("a", "up", 4.0), // an overlap is no outage
            e("b", "down", 4.5),
            e("a", "reclaim", 4.6),
            e("a", "down", 6.0),
        ];
        assert_eq!(outages(&j), vec![(2.0, 3.5), (6.0, f64::INFINITY)]);
        assert_eq!(outages(&[e("a", "down", 0.5)]), vec![]);
        // The same replay gives the overlaps.
        let both = vec!["b".to_string(), "a".to_string()];
        assert_eq!(crate::overlaps(&j), vec![(4.0, 4.5, both)]);
    }

    #[test]
    fn the_bound_of_the_simulator_timing() {
        let t = crate::cluster::Timing {
            interval: 1.0,
            timeout: 2.75,
        };
        // docs/safety.md: 2.75 + 3 x 0.5, before the hook's slack.
        assert_eq!(t.availability_bound(), 4.25);
    }

    #[test]
    fn spread_by_nearest_rank() {
        let d: Vec<f64> = (1..=20).map(f64::from).collect();
        let s = Spread::of(&d).unwrap();
        assert_eq!(
            (s.count, s.min, s.median, s.p95, s.max),
            (20, 1.0, 10.0, 19.0, 20.0)
        );
        assert_eq!(Spread::of(&[]), None);
        assert_eq!(
            Spread::of(&[0.25]).unwrap().to_string(),
            "1 outages, min 250 ms, median 250 ms, p95 250 ms, max 250 ms"
        );
    }
}
