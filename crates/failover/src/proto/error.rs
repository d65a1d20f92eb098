//! Typed protocol errors.

use std::fmt;
use std::str::FromStr;

/// Why faild refused a request (or one item of a GET).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The community is unknown, or may not do this to this service.
    Denied,
    /// No such service.
    NoSuch,
    /// The request could not be parsed.
    BadRequest,
    /// The request's protocol version is not spoken here.
    Version,
    /// The request (or, over UDP, the reply) exceeds the size limit.
    TooBig,
    /// faild could not make the change durable; nothing was changed.
    Storage,
    /// Not now: the service is running (a delete), or FAIL (a claim).
    Busy,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 7] = [
        ErrorCode::Denied,
        ErrorCode::NoSuch,
        ErrorCode::BadRequest,
        ErrorCode::Version,
        ErrorCode::TooBig,
        ErrorCode::Storage,
        ErrorCode::Busy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Denied => "DENIED",
            ErrorCode::NoSuch => "NOSUCH",
            ErrorCode::BadRequest => "BADREQ",
            ErrorCode::Version => "VERSION",
            ErrorCode::TooBig => "TOOBIG",
            ErrorCode::Storage => "STORAGE",
            ErrorCode::Busy => "BUSY",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ErrorCode {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        ErrorCode::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or(())
    }
}

/// A request that faild answers with an error reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ProtoError {
    /// The request id, when it could be read before the error.
    pub id: Option<u64>,
    pub code: ErrorCode,
    pub message: String,
}

impl ProtoError {
    pub fn new(id: Option<u64>, code: ErrorCode, message: impl Into<String>) -> Self {
        ProtoError {
            id,
            code,
            message: message.into(),
        }
    }
}
