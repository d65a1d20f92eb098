//! Exit statuses, so scripts (and failsh-style wrappers) can tell an
//! unreachable faild from a refusal without parsing messages.

use failover::proto::ErrorCode;

use crate::client::ClientError;
use crate::error::Error;

/// Everything asked for was done or read.
pub const OK: u8 = 0;
/// A bad argument; the same status clap uses for its usage errors.
pub const USAGE: u8 = 2;
/// faild could not be reached or did not answer in time.
pub const UNREACHABLE: u8 = 3;
/// faild refused the community (DENIED).
pub const DENIED: u8 = 4;
/// faild has no such service (NOSUCH).
pub const NO_SUCH: u8 = 5;
/// Any other failure: BADREQ, VERSION, TOOBIG, STORAGE or a malformed reply.
pub const FAILURE: u8 = 6;
/// `--wait`: the stop requested was not carried out in time.
pub const PENDING: u8 = 7;

/// The exit statuses as shown at the end of `failc --help`.
pub const SUMMARY: &str = "\
Exit status:
  0  success
  2  bad arguments
  3  faild unreachable or timed out (connection refused, unknown host, no reply)
  4  denied (community not accepted for this service or address)
  5  no such service
  6  any other failure (bad request, protocol version, too big, storage, busy, malformed or
     unauthenticated reply)
  7  with --wait: the stop requested from failsh was not carried out in time
When several services are given, failc goes on after a refusal and exits with
the status of the first failure.";

/// The exit status a failure stands for.
pub fn code(err: &Error) -> u8 {
    match err {
        Error::Pending { .. } => PENDING,
        Error::Client(ClientError::Protocol { .. } | ClientError::Unauthenticated { .. }) => {
            FAILURE
        }
        Error::Client(_) => UNREACHABLE,
        Error::Refused { code, .. } => match code {
            ErrorCode::Denied => DENIED,
            ErrorCode::NoSuch => NO_SUCH,
            ErrorCode::BadRequest
            | ErrorCode::Version
            | ErrorCode::TooBig
            | ErrorCode::Storage
            | ErrorCode::Busy => FAILURE,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Target;
    use std::io;
    use std::time::Duration;

    fn target() -> Target {
        Target::new("localhost", 1291)
    }

    fn refused(code: ErrorCode) -> Error {
        Error::Refused {
            service: Some("vip".into()),
            target: target(),
            code,
            message: String::new(),
        }
    }

    #[test]
    fn faild_error_codes_map_to_statuses() {
        use ErrorCode::*;
        let expected = [
            (Denied, DENIED),
            (NoSuch, NO_SUCH),
            (BadRequest, FAILURE),
            (Version, FAILURE),
            (TooBig, FAILURE),
            (Storage, FAILURE),
            (Busy, FAILURE),
        ];
        assert_eq!(expected.len(), ErrorCode::ALL.len());
        for (c, status) in expected {
            assert_eq!(code(&refused(c)), status, "{c}");
        }
    }

    #[test]
    fn transport_failures_are_unreachable_but_garbage_is_not() {
        let t = target;
        let unreachable = [
            ClientError::Refused { target: t() },
            ClientError::Timeout {
                target: t(),
                timeout: Duration::from_secs(3),
            },
            ClientError::Resolve {
                target: t(),
                source: io::Error::other("no such host"),
            },
            ClientError::Io {
                target: t(),
                source: io::Error::from(io::ErrorKind::ConnectionReset),
            },
            ClientError::Closed { target: t() },
        ];
        for e in unreachable {
            assert_eq!(code(&e.into()), UNREACHABLE);
        }
        let garbage = ClientError::Protocol {
            target: t(),
            reason: "malformed reply header".into(),
        };
        assert_eq!(code(&garbage.into()), FAILURE);
    }

    #[test]
    fn help_text_lists_every_status() {
        for status in [OK, USAGE, UNREACHABLE, DENIED, NO_SUCH, FAILURE] {
            assert!(SUMMARY.contains(&format!("\n  {status}  ")), "{status}");
        }
    }
}
