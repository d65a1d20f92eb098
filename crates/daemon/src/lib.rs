//! What faild and failsh share as Unix daemons: detaching with a readiness
//! pipe, locked pid files, logging to stderr, journald or syslog, resource
//! limits, priority, memory locking and dropping privileges.

mod daemon;
pub mod logging;

pub use daemon::*;
