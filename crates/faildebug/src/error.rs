//! What can go wrong, each printed as one `faildebug: ` line, and the exit
//! status it stands for, so scripts can tell a stopped failsh from a wrong
//! community or a typo.

/// Everything asked for was done.
pub const OK: u8 = 0;
/// Anything else: the connection broke, failsh is busy, or it answered
/// something that is not the protocol.
pub const FAILURE: u8 = 1;
/// A bad argument, or a command failsh refused (unknown facility or level);
/// the same status clap uses for its usage errors.
pub const USAGE: u8 = 2;
/// failsh's debug port could not be reached (refused, unknown host, timeout).
pub const UNREACHABLE: u8 = 3;
/// failsh did not accept the community.
pub const DENIED: u8 = 4;

/// The exit statuses as shown at the end of `faildebug --help`.
pub const SUMMARY: &str = "\
Exit status:
  0  success
  1  any other failure (connection lost, failsh busy, not failsh's debug port)
  2  bad arguments, or a command failsh refused (unknown facility or level)
  3  cannot connect (connection refused, unknown host, timed out)
  4  denied: failsh did not accept the community";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No connection to the debug port.
    #[error("cannot connect to {target}: {reason}")]
    Unreachable { target: String, reason: String },
    /// failsh refused the community.
    #[error("{target}: {message}: failsh did not accept the community (check -c)")]
    Denied { target: String, message: String },
    /// failsh refused a command; its message says why.
    #[error("{0}")]
    Refused(String),
    /// failsh answered the community or a command with another `ERR`.
    #[error("{target}: {message}")]
    Server { target: String, message: String },
    /// What answered does not speak the protocol.
    #[error("{target}: unexpected answer {line:?} (is this failsh's debug port?)")]
    Protocol { target: String, line: String },
    /// The connection failed after it was made.
    #[error("{target}: {what}: {source}")]
    Io {
        target: String,
        what: &'static str,
        source: std::io::Error,
    },
    /// failsh closed the connection before the answer was complete.
    #[error("{target}: failsh closed the connection")]
    Closed { target: String },
}

impl Error {
    /// The exit status for this failure.
    pub fn code(&self) -> u8 {
        match self {
            Error::Unreachable { .. } => UNREACHABLE,
            Error::Denied { .. } => DENIED,
            Error::Refused(_) => USAGE,
            Error::Server { .. }
            | Error::Protocol { .. }
            | Error::Io { .. }
            | Error::Closed { .. } => FAILURE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_has_its_status() {
        let target = || "127.0.0.1:1849".to_string();
        let cases = [
            (
                Error::Unreachable {
                    target: target(),
                    reason: "Connection refused".into(),
                },
                UNREACHABLE,
            ),
            (
                Error::Denied {
                    target: target(),
                    message: "denied".into(),
                },
                DENIED,
            ),
            (Error::Refused("unknown facility x".into()), USAGE),
            (Error::Closed { target: target() }, FAILURE),
        ];
        for (err, code) in cases {
            assert_eq!(err.code(), code, "{err}");
            assert_eq!(err.to_string().lines().count(), 1, "{err}");
        }
    }
}
