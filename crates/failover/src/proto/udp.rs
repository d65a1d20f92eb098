//! UDP's size rule: no reply larger than three times its request.
//!
//! Why: a UDP request's source address can be forged, so every byte faild
//! sends beyond what it received is a byte an attacker can aim at someone
//! else (QUIC's anti-amplification rule uses the same factor, RFC 9000
//! §8.1). A client that expects a large reply makes its request large enough
//! with a trailing `pad=...` word, which faild ignores (as QUIC pads its
//! Initial packets); a reply that would still exceed the bound is refused
//! with `TOOBIG`, and an error reply that cannot fit is not sent at all.

use super::{ErrorCode, MAX_GET_NAMES, MAX_UDP_REPLY, Op, Reply, Request};

/// A UDP reply is at most this many times its request's size.
pub const AMPLIFICATION: usize = 3;

/// The word that starts a request's padding. It must be the request's last
/// word; faild drops it before reading the request.
pub const PAD: &str = "pad=";

/// The longest reply header: `FAIL/1 <u64> REQUESTED <256>\n`.
const HEADER_MAX: usize = "FAIL/1 18446744073709551615 REQUESTED 256\n".len();

/// An item line's length beyond its service name, with room to spare for
/// attributes a later faild may add: today at most 206 bytes (a 128-byte
/// backup host, `RECOVER`, the time, a 20-digit counter, `by=failsh`,
/// `req=RECOVER`).
const ITEM_EXTRA_MAX: usize = 256;

/// The largest reply `op` can draw over UDP (capped at [`MAX_UDP_REPLY`]:
/// anything larger is TOOBIG whatever the request's size).
pub fn reply_bound(op: &Op) -> usize {
    let items = |names: &mut dyn Iterator<Item = &String>| {
        HEADER_MAX + names.map(|n| n.len() + ITEM_EXTRA_MAX).sum::<usize>()
    };
    let bound = match op {
        Op::Get(names) => items(&mut names.iter().take(MAX_GET_NAMES)),
        Op::Set { service, .. } | Op::Delete(service) => items(&mut std::iter::once(service)),
        Op::List => MAX_UDP_REPLY,
    };
    bound.min(MAX_UDP_REPLY)
}

/// The request as a UDP datagram: [`Request::encode`], padded so that the
/// largest reply it can draw stays within [`AMPLIFICATION`] times its size.
pub fn encode_padded(request: &Request) -> String {
    let mut line = request.encode();
    let want = reply_bound(&request.op).div_ceil(AMPLIFICATION);
    if line.len() < want {
        line.pop(); // the newline, put back after the padding
        line.push(' ');
        line.push_str(PAD);
        let dots = want.saturating_sub(line.len() + 1);
        line.extend(std::iter::repeat_n('.', dots));
        line.push('\n');
    }
    line
}

/// `args` without a trailing padding word.
pub(super) fn strip_pad<'a>(args: &'a [&'a str]) -> &'a [&'a str] {
    match args.split_last() {
        Some((last, rest)) if last.starts_with(PAD) => rest,
        _ => args,
    }
}

/// What faild sends over UDP for `reply` to a request of `request_len`
/// bytes, before `overhead` bytes go in front of it (a signed reply's auth
/// line): the reply when the whole is within [`AMPLIFICATION`] times the
/// request and [`MAX_UDP_REPLY`]; else `TOOBIG` (an error keeps its code but
/// loses its message); `None` when not even the bare error fits, so nothing
/// is sent.
pub fn bounded_reply(reply: &Reply, request_len: usize, overhead: usize) -> Option<String> {
    let limit = AMPLIFICATION
        .saturating_mul(request_len)
        .min(MAX_UDP_REPLY)
        .saturating_sub(overhead);
    let text = reply.encode();
    if text.len() <= limit {
        return Some(text);
    }
    let (id, code, message) = match reply {
        Reply::Items { id, .. } => (
            Some(*id),
            ErrorCode::TooBig,
            "reply larger than 3 times the request over UDP; pad the request (pad=) or use TCP",
        ),
        Reply::Error(e) => (e.id, e.code, ""),
    };
    [message, ""]
        .into_iter()
        .map(|m| Reply::error(id, code, m).encode())
        .find(|t| t.len() <= limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Item, Status};
    use crate::{Record, State};
    use std::time::UNIX_EPOCH;

    fn worst_record() -> Record {
        let mut r = Record::new(
            State::Recover,
            Some("b".repeat(crate::names::MAX_NAME)),
            UNIX_EPOCH + std::time::Duration::from_secs(253_402_300_799), // 9999-12-31
            u64::MAX,
        );
        r.by_failsh = true;
        r.request = Some(State::Recover);
        r
    }

    fn get(names: &[String]) -> Request {
        Request {
            id: u64::MAX,
            community: "public".into(),
            op: Op::Get(names.to_vec()),
        }
    }

    #[test]
    fn a_padded_request_is_read_as_the_plain_one() {
        let req = get(&["vip".into(), "www".into()]);
        let padded = encode_padded(&req);
        assert!(
            padded.contains(" pad=") && padded.ends_with(".\n"),
            "{padded}"
        );
        assert_eq!(Request::parse(padded.as_bytes()).unwrap(), req);
        let set = "FAIL/1 1 genesis SET vip UP by=failsh pad=....";
        assert!(matches!(
            Request::parse(set.as_bytes()).unwrap().op,
            Op::Set { .. }
        ));
        assert!(
            Request::parse(b"FAIL/1 1 public GET pad=.. vip").is_err(),
            "padding only at the end"
        );
    }

    #[test]
    fn padding_covers_the_largest_possible_reply() {
        for n in [1, 2, 5, 12, 60] {
            for len in [1, 20, crate::names::MAX_NAME] {
                let names: Vec<String> = (0..n).map(|i| format!("{i:0>len$}")).collect();
                let req = get(&names);
                let worst = Reply::Items {
                    id: u64::MAX,
                    status: Status::Requested,
                    items: names
                        .iter()
                        .map(|n| Item::Found(n.clone(), worst_record()))
                        .collect(),
                }
                .encode();
                let padded = encode_padded(&req);
                let sent = bounded_reply(&Reply::decode(&worst).unwrap(), padded.len(), 0).unwrap();
                if worst.len() <= MAX_UDP_REPLY {
                    assert_eq!(sent, worst, "{n} names of {len}: answered whole");
                } else {
                    assert!(sent.contains("ERR TOOBIG"), "{n} names of {len}");
                }
                assert!(padded.len() <= crate::proto::MAX_REQUEST);
            }
        }
    }

    #[test]
    fn replies_stay_within_three_times_the_request() {
        let items = Reply::Items {
            id: 9,
            status: Status::Ok,
            items: vec![Item::Found("vip".into(), worst_record())],
        };
        let big = items.encode().len();
        assert_eq!(bounded_reply(&items, big / 3 + 1, 0), Some(items.encode()));
        let refused = bounded_reply(&items, big / 3 - 1, 0).unwrap();
        assert!(refused.starts_with("FAIL/1 9 ERR TOOBIG "), "{refused}");
        assert!(refused.len() <= 3 * (big / 3 - 1));
        let err = Reply::error(Some(3), ErrorCode::BadRequest, "a long explanation");
        assert_eq!(
            bounded_reply(&err, 10, 0).as_deref(),
            Some("FAIL/1 3 ERR BADREQ \n")
        );
        assert!(bounded_reply(&err, 100, 0).unwrap().contains("explanation"));
        assert_eq!(
            bounded_reply(&err, 5, 0),
            None,
            "too short to answer at all"
        );
        for len in 0..200 {
            for reply in [&items, &err] {
                for overhead in [0, 90, 140] {
                    if let Some(text) = bounded_reply(reply, len, overhead) {
                        let sent = text.len() + overhead;
                        assert!(sent <= 3 * len && sent <= MAX_UDP_REPLY);
                    }
                }
            }
        }
    }
}
