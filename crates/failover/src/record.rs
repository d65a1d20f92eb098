//! One service's entry in faild.

use std::time::SystemTime;

use crate::State;

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
}
