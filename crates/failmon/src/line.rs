//! Line mode (`-l`): the original's "primitive" mode for dumb terminals and
//! scripts. Each line read (Return pressed) prints the latest state failsh
//! pushed, as text; `q` or the end of input quits. Nothing else is read.

use std::io::{self, BufRead, Write};
use std::sync::{Arc, Mutex, PoisonError};

use failover::monitor::Snapshot;
use tracing::debug;

use crate::net::Update;

/// The latest state pushed, and why the connection is down if it is (the
/// state is then the last one seen; a reconnection is under way).
#[derive(Debug, Clone)]
pub struct Latest {
    pub snapshot: Snapshot,
    pub lost: Option<String>,
}

impl Latest {
    pub fn new(snapshot: Snapshot) -> Latest {
        Latest {
            snapshot,
            lost: None,
        }
    }

    pub fn update(&mut self, update: Update) {
        match update {
            Update::Snapshot(s) => {
                self.snapshot = *s;
                self.lost = None;
            }
            Update::Lost(why) => self.lost = Some(why),
        }
    }
}

/// The shared slot the follower thread writes and [`run`] reads.
pub type Shared = Arc<Mutex<Latest>>;

/// What one Return prints.
pub fn render(latest: &Latest) -> String {
    match &latest.lost {
        None => latest.snapshot.text(),
        Some(why) => format!(
            "failmon: disconnected, retrying ({why}); last state seen:\n{}",
            latest.snapshot.text()
        ),
    }
}

/// Reads `input` line by line until `q` or its end, printing the state in
/// `latest` to `out` for every other line.
pub fn run(input: impl BufRead, out: &mut impl Write, latest: &Shared) -> io::Result<()> {
    for line in input.lines() {
        let line = line?;
        debug!(target: "ui", "line mode input {line:?}");
        if line.trim() == "q" {
            break;
        }
        let text = render(&latest.lock().unwrap_or_else(PoisonError::into_inner));
        out.write_all(text.as_bytes())?;
        out.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::sample;

    fn shared() -> Shared {
        Arc::new(Mutex::new(Latest::new(sample())))
    }

    #[test]
    fn one_state_per_line_until_q() {
        let latest = shared();
        let mut out = Vec::new();
        run(&b"\n\nq\n\n"[..], &mut out, &latest).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert_eq!(out, sample().text().repeat(2));
    }

    #[test]
    fn the_end_of_input_quits_and_the_latest_state_is_printed() {
        let latest = shared();
        let mut newer = sample();
        newer.host = "macbeth".into();
        latest
            .lock()
            .unwrap()
            .update(Update::Snapshot(Box::new(newer.clone())));
        let mut out = Vec::new();
        run(&b"anything\n"[..], &mut out, &latest).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), newer.text());
    }

    #[test]
    fn a_lost_connection_is_said_until_the_next_snapshot() {
        let mut l = Latest::new(sample());
        l.update(Update::Lost(
            "127.0.0.2:1848: connection closed by failsh".into(),
        ));
        let text = render(&l);
        assert!(text.starts_with(
            "failmon: disconnected, retrying (127.0.0.2:1848: connection closed by failsh); last state seen:\nfailsh on lukretia"
        ), "{text}");
        l.update(Update::Snapshot(Box::new(sample())));
        assert_eq!(render(&l), sample().text());
    }
}
