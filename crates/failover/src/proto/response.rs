//! Replies: encoding what faild sends, and decoding what a client receives.

use std::fmt::Write as _;
use std::time::SystemTime;

use super::{ErrorCode, ProtoError, VERSION};
use crate::names::check_name;
use crate::{Record, State};

/// How a successful request went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// A SET created the service. Clients warn: a typo in a name must not pass silently.
    Created,
    /// An admin's RECOVER or FAIL of a service failsh runs was turned into a
    /// stop request; the record shows it pending (`req=`) until failsh has
    /// stopped the service and published the state.
    Requested,
}

/// One line of a successful reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Found(String, Record),
    /// One name of a GET that could not be read (NOSUCH or DENIED); the other
    /// names of the same GET are still answered.
    Missing(String, ErrorCode),
}

/// A whole reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Items {
        id: u64,
        status: Status,
        items: Vec<Item>,
    },
    Error(ProtoError),
}

/// The first line of a reply, decoded; for a success it says how many item
/// lines follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Header {
    Items {
        id: u64,
        status: Status,
        count: usize,
    },
    Error(ProtoError),
}

/// Formats a time as RFC 3339 in UTC with milliseconds.
pub fn format_time(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Parses what [`format_time`] writes.
pub fn parse_time(s: &str) -> Result<SystemTime, String> {
    humantime::parse_rfc3339(s).map_err(|e| format!("bad time {s:?}: {e}"))
}

/// Keeps an error message to one printable line.
fn one_line(msg: &str) -> String {
    msg.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect()
}

impl Reply {
    pub fn error(id: Option<u64>, code: ErrorCode, message: impl Into<String>) -> Reply {
        Reply::Error(ProtoError::new(id, code, message))
    }

    pub fn id(&self) -> Option<u64> {
        match self {
            Reply::Items { id, .. } => Some(*id),
            Reply::Error(e) => e.id,
        }
    }

    /// The reply as text: a header line and its item lines, each ending in `\n`.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(96);
        match self {
            Reply::Items { id, status, items } => {
                let word = match status {
                    Status::Ok => "OK",
                    Status::Created => "CREATED",
                    Status::Requested => "REQUESTED",
                };
                let _ = writeln!(out, "FAIL/{VERSION} {id} {word} {}", items.len());
                for item in items {
                    match item {
                        Item::Found(name, r) => {
                            let _ = write!(
                                out,
                                "{name} {} {} {} {}",
                                r.state,
                                r.backup.as_deref().unwrap_or("-"),
                                format_time(r.since),
                                r.changes
                            );
                            if r.by_failsh {
                                out.push_str(" by=failsh");
                            }
                            if let Some(req) = r.request {
                                let _ = write!(out, " req={req}");
                            }
                            out.push('\n');
                        }
                        Item::Missing(name, code) => {
                            let _ = writeln!(out, "{name} ERR {code}");
                        }
                    }
                }
            }
            Reply::Error(e) => {
                let id = e.id.map_or_else(|| "-".to_string(), |i| i.to_string());
                let _ = writeln!(
                    out,
                    "FAIL/{VERSION} {id} ERR {} {}",
                    e.code,
                    one_line(&e.message)
                );
            }
        }
        out
    }

    /// Decodes a whole reply (a UDP datagram, or lines collected from TCP).
    pub fn decode(text: &str) -> Result<Reply, String> {
        let mut lines = text.lines();
        let header = Header::parse(lines.next().ok_or("empty reply")?)?;
        match header {
            Header::Error(e) => Ok(Reply::Error(e)),
            Header::Items { id, status, count } => {
                let items = lines.map(Item::parse).collect::<Result<Vec<_>, _>>()?;
                if items.len() != count {
                    return Err(format!(
                        "reply announced {count} items but carried {}",
                        items.len()
                    ));
                }
                Ok(Reply::Items { id, status, items })
            }
        }
    }
}

impl Header {
    pub fn parse(line: &str) -> Result<Header, String> {
        let line = line.trim_end_matches(['\r', '\n']);
        let mut words = line.splitn(5, ' ');
        let bad = || {
            format!(
                "malformed reply header {:?}",
                line.chars().take(80).collect::<String>()
            )
        };
        if words.next() != Some(&format!("FAIL/{VERSION}")) {
            return Err(bad());
        }
        let id = match words.next().ok_or_else(bad)? {
            "-" => None,
            w => Some(w.parse::<u64>().map_err(|_| bad())?),
        };
        match words.next().ok_or_else(bad)? {
            word @ ("OK" | "CREATED" | "REQUESTED") => {
                let count = words.next().and_then(|w| w.parse().ok()).ok_or_else(bad)?;
                let status = match word {
                    "OK" => Status::Ok,
                    "CREATED" => Status::Created,
                    _ => Status::Requested,
                };
                Ok(Header::Items {
                    id: id.ok_or_else(bad)?,
                    status,
                    count,
                })
            }
            "ERR" => {
                let code = words
                    .next()
                    .and_then(|w| w.parse::<ErrorCode>().ok())
                    .ok_or_else(bad)?;
                let message = words.next().unwrap_or("").to_string();
                Ok(Header::Error(ProtoError { id, code, message }))
            }
            _ => Err(bad()),
        }
    }
}

impl Item {
    pub fn parse(line: &str) -> Result<Item, String> {
        let line = line.trim_end_matches(['\r', '\n']);
        let words: Vec<&str> = line.split(' ').collect();
        let bad = || {
            format!(
                "malformed reply line {:?}",
                line.chars().take(80).collect::<String>()
            )
        };
        let name = *words.first().ok_or_else(bad)?;
        check_name("service name", name).map_err(|_| bad())?;
        match words.as_slice() {
            [_, "ERR", code] => Ok(Item::Missing(
                name.to_string(),
                code.parse().map_err(|_| bad())?,
            )),
            [_, state, backup, since, changes, attrs @ ..] => {
                let mut record = Record::new(
                    state.parse::<State>().map_err(|_| bad())?,
                    match *backup {
                        "-" => None,
                        b => Some(b.to_string()),
                    },
                    parse_time(since)?,
                    changes.parse().map_err(|_| bad())?,
                );
                for attr in attrs {
                    match attr.split_once('=') {
                        Some(("by", "failsh")) => record.by_failsh = true,
                        Some(("req", st)) => record.request = Some(st.parse().map_err(|_| bad())?),
                        // Unknown attributes are ignored: a newer faild may add some.
                        Some(_) => {}
                        None => return Err(bad()),
                    }
                }
                Ok(Item::Found(name.to_string(), record))
            }
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Op, Origin, Request};
    use proptest::prelude::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn arb_name() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_.:@+/][A-Za-z0-9_.:@+/-]{0,40}"
    }

    fn arb_record() -> impl Strategy<Value = Record> {
        (
            prop::sample::select(State::ALL.to_vec()),
            prop::option::of(arb_name()),
            0u64..4_000_000_000_000,
            any::<u64>(),
            any::<bool>(),
            prop::option::of(prop::sample::select(State::ALL.to_vec())),
        )
            .prop_map(|(state, backup, ms, changes, by_failsh, request)| Record {
                state,
                backup,
                since: UNIX_EPOCH + Duration::from_millis(ms),
                changes,
                by_failsh,
                request,
            })
    }

    fn arb_item() -> impl Strategy<Value = Item> {
        prop_oneof![
            (arb_name(), arb_record()).prop_map(|(n, r)| Item::Found(n, r)),
            (arb_name(), prop::sample::select(ErrorCode::ALL.to_vec()))
                .prop_map(|(n, c)| Item::Missing(n, c)),
        ]
    }

    fn arb_op() -> impl Strategy<Value = Op> {
        prop_oneof![
            prop::collection::vec(arb_name(), 1..20).prop_map(Op::Get),
            (
                arb_name(),
                prop::sample::select(State::ALL.to_vec()),
                prop::option::of(arb_name()),
                prop::sample::select(vec![Origin::Admin, Origin::Forced, Origin::Failsh]),
            )
                .prop_map(|(service, state, backup, origin)| Op::Set {
                    service,
                    state,
                    backup,
                    origin,
                }),
            arb_name().prop_map(Op::Delete),
            Just(Op::List),
        ]
    }

    proptest! {
        #[test]
        fn request_round_trips(id in any::<u64>(), community in "[!-~]{1,64}", op in arb_op()) {
            let req = Request { id, community, op };
            prop_assert_eq!(Request::parse(req.encode().as_bytes()), Ok(req));
        }

        #[test]
        fn reply_round_trips(id in any::<u64>(),
                             status in prop::sample::select(vec![Status::Ok, Status::Created, Status::Requested]),
                             items in prop::collection::vec(arb_item(), 0..10)) {
            let reply = Reply::Items { id, status, items };
            prop_assert_eq!(Reply::decode(&reply.encode()), Ok(reply));
        }

        #[test]
        fn error_reply_round_trips(id in prop::option::of(any::<u64>()),
                                   code in prop::sample::select(ErrorCode::ALL.to_vec()),
                                   msg in "[ -~]{0,100}") {
            let reply = Reply::error(id, code, msg.trim().to_string());
            let Reply::Error(back) = Reply::decode(&reply.encode()).unwrap() else { panic!() };
            prop_assert_eq!((back.id, back.code), (id, code));
            prop_assert_eq!(back.message.trim(), msg.trim());
        }

        #[test]
        fn parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = Request::parse(&bytes);
            if let Ok(s) = std::str::from_utf8(&bytes) { let _ = Reply::decode(s); }
        }

        #[test]
        fn near_valid_requests_never_panic(prefix in "(FAIL/1 [0-9]{1,3} [a-z]{1,6} )?",
                                           rest in "[A-Za-z0-9 /\\-]{0,60}") {
            let _ = Request::parse(format!("{prefix}{rest}").as_bytes());
        }
    }

    #[test]
    fn error_messages_stay_on_one_line() {
        let r = Reply::error(Some(1), ErrorCode::Storage, "disk\nfull\r");
        assert_eq!(r.encode().lines().count(), 1);
        assert_eq!(
            Reply::error(None, ErrorCode::BadRequest, "x").encode(),
            "FAIL/1 - ERR BADREQ x\n"
        );
    }

    #[test]
    fn malformed_replies_are_errors() {
        for bad in [
            "",
            "HTTP/1.1 200 OK",
            "FAIL/1 x OK 1",
            "FAIL/1 1 OK",
            "FAIL/1 1 MAYBE 1",
            "FAIL/1 1 ERR WHAT msg",
            "FAIL/1 1 OK 1\nvip SIDEWAYS - 2026-01-01T00:00:00.000Z 1",
            "FAIL/1 1 OK 1\nvip UP - yesterday 1",
            "FAIL/1 1 OK 1\nvip UP - 2026-01-01T00:00:00.000Z 1 req=DOWN",
            "FAIL/1 1 OK 1\nvip UP - 2026-01-01T00:00:00.000Z 1 stray",
            "FAIL/1 1 OK 2\nvip UP - 2026-01-01T00:00:00.000Z 1",
            "FAIL/1 - OK 0",
        ] {
            assert!(Reply::decode(bad).is_err(), "{bad:?}");
        }
    }
}
