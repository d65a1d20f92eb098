//! Requests: parsing what a client sent, and encoding what a client sends.

use std::fmt::Write as _;

use super::{ErrorCode, MAX_GET_NAMES, MAX_REQUEST, ProtoError, VERSION};
use crate::State;
use crate::names::{check_community, check_name};

/// One request to faild.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Echoed in the reply so a client can match replies to requests (UDP
    /// replies can arrive late or twice).
    pub id: u64,
    pub community: String,
    pub op: Op,
}

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Read one or more services.
    Get(Vec<String>),
    /// Set a service's state; without a backup host the stored one is kept.
    /// Creates the service when it does not exist.
    Set {
        service: String,
        state: State,
        backup: Option<String>,
        origin: Origin,
    },
    /// Remove a retired service.
    Delete(String),
    /// Every service the community may read.
    List,
}

/// Who sets a state, which decides what a SET of a running service means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Origin {
    /// An admin or a script: RECOVER or FAIL on a service failsh runs
    /// becomes a stop request that failsh carries out.
    #[default]
    Admin,
    /// An admin who insists (`force=yes`): written as is, even while failsh
    /// runs the service (peers may then see it free while it still runs).
    Forced,
    /// failsh itself (`by=failsh`): it runs the service, or just stopped it.
    Failsh,
    /// failsh claiming the service before its start hook
    /// (`by=failsh-claim`): UP, and only if the record is RECOVER, the state
    /// failsh decided on; otherwise refused (BUSY) and nothing starts.
    Claim,
    /// failsh marking as its own a service it found UP, set by hand
    /// (`by=failsh-adopt`): only if the record is still UP; otherwise
    /// refused (BUSY).
    Adopt,
}

impl Op {
    /// Whether the operation needs write access.
    pub fn writes(&self) -> bool {
        matches!(self, Op::Set { .. } | Op::Delete(_))
    }

    fn verb(&self) -> &'static str {
        match self {
            Op::Get(_) => "GET",
            Op::Set { .. } => "SET",
            Op::Delete(_) => "DEL",
            Op::List => "LIST",
        }
    }
}

impl Request {
    /// Parses one request. `line` may end with `\n` or `\r\n`; it must not be
    /// longer than [`MAX_REQUEST`]. Every failure carries the request id when
    /// it was readable, so the error reply can echo it.
    pub fn parse(line: &[u8]) -> Result<Request, ProtoError> {
        if line.len() > MAX_REQUEST {
            return Err(ProtoError::new(
                None,
                ErrorCode::TooBig,
                format!("request longer than {MAX_REQUEST} bytes"),
            ));
        }
        let text = std::str::from_utf8(line)
            .map_err(|_| ProtoError::new(None, ErrorCode::BadRequest, "request is not UTF-8"))?;
        let mut words = text.split_ascii_whitespace();
        let bad = |id, msg: String| ProtoError::new(id, ErrorCode::BadRequest, msg);

        let magic = words
            .next()
            .ok_or_else(|| bad(None, "empty request".into()))?;
        let version = magic
            .strip_prefix("FAIL/")
            .ok_or_else(|| bad(None, "request must start with FAIL/1".into()))?;
        let id_word = words.next();
        let id = id_word.and_then(|w| w.parse::<u64>().ok());
        if version != VERSION.to_string() {
            return Err(ProtoError::new(
                id,
                ErrorCode::Version,
                format!(
                    "protocol version {version:?} not supported; this faild speaks FAIL/{VERSION}"
                ),
            ));
        }
        let id = match (id_word, id) {
            (_, Some(id)) => id,
            (Some(w), None) => return Err(bad(None, format!("request id {w:?} is not a number"))),
            (None, None) => return Err(bad(None, "missing request id".into())),
        };
        let community = words
            .next()
            .ok_or_else(|| bad(Some(id), "missing community".into()))?;
        check_community(community).map_err(|m| bad(Some(id), m))?;
        let verb = words
            .next()
            .ok_or_else(|| bad(Some(id), "missing operation".into()))?;
        let args: Vec<&str> = words.collect();
        let op = parse_op(verb, super::udp::strip_pad(&args)).map_err(|m| bad(Some(id), m))?;
        Ok(Request {
            id,
            community: community.to_string(),
            op,
        })
    }

    /// The request as one line, newline included.
    pub fn encode(&self) -> String {
        let mut out = format!(
            "FAIL/{VERSION} {} {} {}",
            self.id,
            self.community,
            self.op.verb()
        );
        match &self.op {
            Op::Get(names) => names.iter().for_each(|n| {
                let _ = write!(out, " {n}");
            }),
            Op::Set {
                service,
                state,
                backup,
                origin,
            } => {
                let _ = write!(out, " {service} {state}");
                if let Some(b) = backup {
                    let _ = write!(out, " {b}");
                }
                match origin {
                    Origin::Admin => {}
                    Origin::Forced => out.push_str(" force=yes"),
                    Origin::Failsh => out.push_str(" by=failsh"),
                    Origin::Claim => out.push_str(" by=failsh-claim"),
                    Origin::Adopt => out.push_str(" by=failsh-adopt"),
                }
            }
            Op::Delete(name) => {
                let _ = write!(out, " {name}");
            }
            Op::List => {}
        }
        out.push('\n');
        out
    }
}

/// Splits `names` into GETs that each stay within faild's limits: at most
/// `max_names` (≤ [`MAX_GET_NAMES`]) names and [`MAX_REQUEST`] bytes per
/// request line. Order is kept.
pub fn get_batches(names: &[String], community: &str, max_names: usize) -> Vec<Vec<String>> {
    let max_names = max_names.clamp(1, MAX_GET_NAMES);
    let base = Request {
        id: u64::MAX,
        community: community.to_string(),
        op: Op::Get(Vec::new()),
    }
    .encode()
    .len();
    let mut batches: Vec<(Vec<String>, usize)> = Vec::new();
    for name in names {
        let len = name.len() + 1;
        match batches.last_mut() {
            Some((batch, total)) if batch.len() < max_names && *total + len <= MAX_REQUEST => {
                batch.push(name.clone());
                *total += len;
            }
            _ => batches.push((vec![name.clone()], base + len)),
        }
    }
    batches.into_iter().map(|(batch, _)| batch).collect()
}

fn parse_op(verb: &str, args: &[&str]) -> Result<Op, String> {
    let service = |s: &str| check_name("service name", s).map(|()| s.to_string());
    let arity = |min: usize, max: usize, usage: &str| {
        if args.len() < min || args.len() > max {
            Err(format!("usage: {usage}"))
        } else {
            Ok(())
        }
    };
    match verb.to_ascii_uppercase().as_str() {
        "GET" => {
            arity(
                1,
                MAX_GET_NAMES,
                "GET <service> [<service>...] (at most 256)",
            )?;
            Ok(Op::Get(
                args.iter().map(|s| service(s)).collect::<Result<_, _>>()?,
            ))
        }
        "SET" => {
            // Options are `key=value` words after the positional arguments;
            // names cannot contain `=`, so the two never mix up.
            let split = args
                .iter()
                .position(|a| a.contains('='))
                .unwrap_or(args.len());
            let (positional, options) = args.split_at(split);
            let usage = "SET <service> <UP|RECOVER|FAIL> [<backup-host>] [by=failsh | by=failsh-claim | by=failsh-adopt | force=yes]";
            if !(2..=3).contains(&positional.len()) || options.len() > 1 {
                return Err(format!("usage: {usage}"));
            }
            let state = positional[1].parse::<State>().map_err(|e| e.to_string())?;
            let backup = match positional.get(2) {
                Some(b) => {
                    check_name("backup host", b)?;
                    Some(b.to_string())
                }
                None => None,
            };
            let origin = match options.first().copied() {
                None => Origin::Admin,
                Some("by=failsh") => Origin::Failsh,
                Some("by=failsh-claim") if state == State::Up => Origin::Claim,
                Some("by=failsh-adopt") if state == State::Up => Origin::Adopt,
                Some("force=yes") => Origin::Forced,
                Some(other) => return Err(format!("unknown option {other:?}; usage: {usage}")),
            };
            Ok(Op::Set {
                service: service(positional[0])?,
                state,
                backup,
                origin,
            })
        }
        "DEL" => {
            arity(1, 1, "DEL <service>")?;
            Ok(Op::Delete(service(args[0])?))
        }
        "LIST" => {
            arity(0, 0, "LIST")?;
            Ok(Op::List)
        }
        _ => Err(format!(
            "unknown operation {:?} (expected GET, SET, DEL or LIST)",
            verb.chars().take(32).collect::<String>()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(line: &str) -> ProtoError {
        Request::parse(line.as_bytes()).unwrap_err()
    }

    #[test]
    fn parses_each_operation() {
        let r = Request::parse(b"FAIL/1 7 public GET vip www\r\n").unwrap();
        assert_eq!(r.id, 7);
        assert_eq!(r.community, "public");
        assert_eq!(r.op, Op::Get(vec!["vip".into(), "www".into()]));
        let r = Request::parse(b"FAIL/1 8 genesis set vip recover macbeth").unwrap();
        assert_eq!(
            r.op,
            Op::Set {
                service: "vip".into(),
                state: State::Recover,
                backup: Some("macbeth".into()),
                origin: Origin::Admin,
            }
        );
        let r = Request::parse(b"FAIL/1 8 genesis SET vip UP by=failsh").unwrap();
        assert!(matches!(
            r.op,
            Op::Set {
                origin: Origin::Failsh,
                backup: None,
                ..
            }
        ));
        let r = Request::parse(b"FAIL/1 8 genesis SET vip FAIL b force=yes").unwrap();
        assert!(matches!(
            r.op,
            Op::Set {
                origin: Origin::Forced,
                ..
            }
        ));
        assert!(r.op.writes());
        assert_eq!(
            Request::parse(b"FAIL/1 9 g DEL vip").unwrap().op,
            Op::Delete("vip".into())
        );
        assert_eq!(Request::parse(b"FAIL/1 9 g LIST\n").unwrap().op, Op::List);
    }

    #[test]
    fn every_error_path_is_typed() {
        use ErrorCode::*;
        let cases: &[(&str, ErrorCode, Option<u64>)] = &[
            ("", BadRequest, None),
            ("   ", BadRequest, None),
            ("GET vip", BadRequest, None),
            ("FAIL/2 5 public GET vip", Version, Some(5)),
            ("FAIL/x", Version, None),
            ("FAIL/1", BadRequest, None),
            ("FAIL/1 abc public GET vip", BadRequest, None),
            ("FAIL/1 5", BadRequest, Some(5)),
            ("FAIL/1 5 public", BadRequest, Some(5)),
            ("FAIL/1 5 public FROB vip", BadRequest, Some(5)),
            ("FAIL/1 5 public GET", BadRequest, Some(5)),
            ("FAIL/1 5 public GET -x", BadRequest, Some(5)),
            ("FAIL/1 5 public SET vip", BadRequest, Some(5)),
            ("FAIL/1 5 public SET vip DOWN", BadRequest, Some(5)),
            ("FAIL/1 5 public SET vip UP a b", BadRequest, Some(5)),
            ("FAIL/1 5 public SET vip UP -", BadRequest, Some(5)),
            ("FAIL/1 5 public SET vip UP by=admin", BadRequest, Some(5)),
            (
                "FAIL/1 5 public SET vip UP by=failsh force=yes",
                BadRequest,
                Some(5),
            ),
            ("FAIL/1 5 public SET vip by=failsh", BadRequest, Some(5)),
            (
                "FAIL/1 5 public SET vip UP by=failsh b",
                BadRequest,
                Some(5),
            ),
            ("FAIL/1 5 public DEL", BadRequest, Some(5)),
            ("FAIL/1 5 public LIST x", BadRequest, Some(5)),
        ];
        for (line, code, id) in cases {
            let e = err(line);
            assert_eq!((e.code, e.id), (*code, *id), "{line:?}: {e}");
            assert!(!e.message.contains('\n'));
        }
        let long = format!("FAIL/1 5 public GET {}", "x".repeat(MAX_REQUEST));
        assert_eq!(err(&long).code, TooBig);
        assert_eq!(
            Request::parse(b"FAIL/1 5 \xff GET x").unwrap_err().code,
            BadRequest
        );
        let many = format!("FAIL/1 5 public GET{}", " a".repeat(MAX_GET_NAMES + 1));
        assert_eq!(err(&many).code, BadRequest);
    }
}
