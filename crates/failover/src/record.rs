//! One service's entry in faild.

use std::time::SystemTime;

use crate::State;

/// The largest change counter: TOML, the state file's format, holds signed
/// 64-bit integers, so a larger counter would make a file that other tools
/// (and a strict reader) refuse. A counter stays here once it gets here:
/// the state file never holds a counter it cannot read back.
pub const MAX_CHANGES: u64 = i64::MAX as u64;

/// The counter after one more change, kept at [`MAX_CHANGES`] (only a
/// state file edited by hand gets anywhere near it).
pub fn next_change(changes: u64) -> u64 {
    changes.saturating_add(1).min(MAX_CHANGES)
}

/// What faild knows about one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub state: State,
    /// Purely informational name of the host that backs this one up (`failc -b`).
    pub backup: Option<String>,
    /// When the state last changed.
    pub since: SystemTime,
    /// Grows by one at every change of state or backup and never goes back,
    /// not even across delete and re-create, so a poller can tell that it
    /// missed a change between two polls.
    pub changes: u64,
    /// The state was last set by failsh, which runs the service: an admin's
    /// RECOVER or FAIL then becomes a stop request instead of a plain write,
    /// so peers never see the service free while it still runs.
    pub by_failsh: bool,
    /// A stop an admin asked for (RECOVER or FAIL) that the local failsh has
    /// not carried out yet.
    pub request: Option<State>,
}

impl Record {
    /// A record as first written, with nothing pending.
    pub fn new(state: State, backup: Option<String>, since: SystemTime, changes: u64) -> Record {
        Record {
            state,
            backup,
            since,
            changes,
            by_failsh: false,
            request: None,
        }
    }
}
