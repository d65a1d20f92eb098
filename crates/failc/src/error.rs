//! What can go wrong for one request, or one service of it. Each failure is
//! printed as one `failc: ` line and decides the exit status (see `exit`).

use failover::proto::ErrorCode;

use crate::client::{ClientError, Target};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// faild could not be reached, or what answered was not faild.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// faild answered with a refusal: of the whole request, or of one
    /// service of a GET (then `message` is empty).
    #[error("{}", describe(service.as_deref(), target, *code, message))]
    Refused {
        /// The service concerned, when the request was about one service.
        service: Option<String>,
        target: Target,
        code: ErrorCode,
        message: String,
    },
    /// A stop was requested (the service is run by failsh) and `--wait` ran
    /// out before failsh had carried it out.
    #[error(
        "{service}: stop requested on {target}, but failsh has not carried it out within {waited:?} (is failsh running? --force writes without it)"
    )]
    Pending {
        service: String,
        target: Target,
        waited: std::time::Duration,
    },
}

/// Prefers the service name for NOSUCH (faild's message would just repeat
/// it) and faild's own words for everything else, as they say why.
fn describe(service: Option<&str>, target: &Target, code: ErrorCode, message: &str) -> String {
    let what = match code {
        ErrorCode::Denied => "denied",
        ErrorCode::NoSuch => "no such service",
        ErrorCode::BadRequest => "bad request",
        ErrorCode::Version => "protocol version",
        ErrorCode::TooBig => "too big",
        ErrorCode::Storage => "storage failure",
        ErrorCode::Busy => "busy",
    };
    match service {
        Some(service) if code == ErrorCode::NoSuch || message.is_empty() => {
            format!("{service}: {what} on {target}")
        }
        _ if message.is_empty() => format!("{what} on {target}"),
        _ => format!("{what}: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(service: Option<&str>, code: ErrorCode, message: &str) -> String {
        Error::Refused {
            service: service.map(String::from),
            target: Target::new("localhost", 1291),
            code,
            message: message.into(),
        }
        .to_string()
    }

    #[test]
    fn messages() {
        use ErrorCode::*;
        assert_eq!(
            refused(Some("vip"), NoSuch, "no service \"vip\""),
            "vip: no such service on localhost:1291"
        );
        assert_eq!(
            refused(None, Denied, "community not accepted from this address"),
            "denied: community not accepted from this address"
        );
        assert_eq!(
            refused(
                Some("vip"),
                Denied,
                "community not accepted from this address"
            ),
            "denied: community not accepted from this address"
        );
        assert_eq!(
            refused(Some("vip"), Denied, ""),
            "vip: denied on localhost:1291"
        );
        assert_eq!(
            refused(None, TooBig, "reply too big for UDP; use TCP"),
            "too big: reply too big for UDP; use TCP"
        );
        assert_eq!(
            refused(None, Storage, ""),
            "storage failure on localhost:1291"
        );
    }
}
