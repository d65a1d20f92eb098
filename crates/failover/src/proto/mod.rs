//! The faild wire protocol, version 1: encode and decode, no I/O.
//!
//! One request is one line of whitespace-separated words:
//!
//! ```text
//! FAIL/1 <id> <community> GET <service> [<service>...]
//! FAIL/1 <id> <community> SET <service> <UP|RECOVER|FAIL> [<backup-host>] [by=failsh|force=yes]
//! FAIL/1 <id> <community> DEL <service>
//! FAIL/1 <id> <community> LIST
//! ```
//!
//! A trailing `pad=...` word is ignored: UDP clients pad their requests so
//! that the reply may be up to three times as large (see [`udp`]).
//!
//! A reply is a header line followed by as many item lines as the header
//! counts:
//!
//! ```text
//! FAIL/1 <id> OK <n>          (CREATED: a SET made a new service; REQUESTED: a stop was requested)
//! <service> <STATE> <backup|-> <since RFC 3339> <changes> [by=failsh] [req=<STATE>]
//! <service> ERR <CODE>         (an item of a GET that could not be read)
//! FAIL/1 <id> ERR <CODE> <one-line message>
//! ```
//!
//! Over TCP lines end with `\n` and a connection carries any number of
//! requests; over UDP a datagram holds exactly one request or one reply.
//! See `docs/protocol.md` for the full definition.

mod error;
mod request;
mod response;
pub mod udp;

pub use error::{ErrorCode, ProtoError};
pub use request::{Op, Origin, Request, get_batches};
pub use response::{Header, Item, Reply, Status, format_time, parse_time};

/// The protocol version this implementation speaks.
pub const VERSION: u32 = 1;
/// Longest request line accepted, newline included. A GET for 60 services of
/// maximal name length still fits.
pub const MAX_REQUEST: usize = 8 * 1024;
/// Largest reply sent over UDP: one unfragmented datagram on any Ethernet
/// path. A larger reply is refused with TOOBIG (fetch it over TCP); so is
/// one over three times its request (see [`udp`]).
pub const MAX_UDP_REPLY: usize = 1_400;
/// Most names one GET may ask for.
pub const MAX_GET_NAMES: usize = 256;
