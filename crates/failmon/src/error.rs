//! What can go wrong talking to failsh's monitor port.

use std::io;

/// A failure to get snapshots from failsh; every one means exit status 3
/// ([`crate::exit::UNREACHABLE`]) where failmon gives up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The target name did not resolve to any address.
    #[error("{target}: cannot resolve: {source}")]
    Resolve {
        target: String,
        #[source]
        source: io::Error,
    },
    /// No address of the target accepted the connection.
    #[error("{target}: cannot connect: {source}")]
    Connect {
        target: String,
        #[source]
        source: io::Error,
    },
    /// The connection broke or went silent.
    #[error("{target}: connection lost: {source}")]
    Lost {
        target: String,
        #[source]
        source: io::Error,
    },
    /// failsh closed the connection (it stopped or turned us away).
    #[error("{target}: connection closed by failsh")]
    Closed { target: String },
    /// A line that is not a snapshot of a version failmon knows.
    #[error("{target}: not a failsh monitor snapshot: {detail}")]
    Protocol { target: String, detail: String },
}
