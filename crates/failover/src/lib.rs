//! The pure core of the failover utilities.
//!
//! Everything here is free of I/O: no sockets, no files, no clock. Callers pass
//! the current time in and do the reading and writing themselves. That keeps
//! the rules testable exhaustively and lets a simulated network drive the very
//! code the daemons run.

pub mod auth;
pub mod community;
pub mod decide;
pub mod look;
pub mod machine;
pub mod monitor;
pub mod names;
pub mod proto;
pub mod record;
pub mod registry;
pub mod state;
pub mod statefile;
pub mod usage;

pub use record::Record;
pub use state::State;

/// Default TCP and UDP port of faild (the worked example's port).
pub const DEFAULT_PORT: u16 = 1291;
