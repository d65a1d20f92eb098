//! The three states faild stores for a service.

use std::fmt;
use std::str::FromStr;

/// The externally visible state of a service on one host.
///
/// Only these three exist on the wire and in faild; failsh's INDOUBT and
/// RECLAIM are internal to failsh and never stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    /// Running here; needs no backup.
    Up,
    /// Not running, but may be brought up at any time.
    Recover,
    /// Cannot be brought up; failsh will not start it.
    Fail,
}

impl State {
    pub const ALL: [State; 3] = [State::Up, State::Recover, State::Fail];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Up => "UP",
            State::Recover => "RECOVER",
            State::Fail => "FAIL",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not UP, RECOVER or FAIL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid state {0:?} (expected UP, RECOVER or FAIL)")]
pub struct InvalidState(pub String);

impl FromStr for State {
    type Err = InvalidState;

    /// Case-insensitive, as admins type `-s recover` as often as `-sRECOVER`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        State::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| InvalidState(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_any_case_and_round_trips() {
        for st in State::ALL {
            assert_eq!(st.as_str().parse::<State>(), Ok(st));
            assert_eq!(st.as_str().to_lowercase().parse::<State>(), Ok(st));
        }
        assert!("DOWN".parse::<State>().is_err());
        assert!("".parse::<State>().is_err());
    }
}
