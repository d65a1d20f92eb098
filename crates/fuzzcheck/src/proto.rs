//! faild's wire protocol: requests (what faild parses from any client) and
//! replies (what failc, failsh and failmon's peers parse from any faild).

use failover::proto::{ErrorCode, MAX_REQUEST, Reply, Request};

use crate::assert_one_line;

/// A request faild accepts re-encodes (as failc would send it) to a line
/// that faild accepts as the same request and that fits its size limit; a
/// request it refuses gets an error reply that a client decodes to the
/// same id and code.
pub fn request(data: &[u8]) {
    match Request::parse(data) {
        Ok(req) => {
            let line = req.encode();
            assert!(
                line.len() <= MAX_REQUEST,
                "{req:?} re-encodes to {} bytes, over the {MAX_REQUEST}-byte limit",
                line.len()
            );
            assert_eq!(Request::parse(line.as_bytes()), Ok(req.clone()), "{line:?}");
        }
        Err(e) => {
            assert!(
                matches!(
                    e.code,
                    ErrorCode::BadRequest | ErrorCode::Version | ErrorCode::TooBig
                ),
                "a parse error is {e}"
            );
            assert_one_line("parse error", &e.message);
            let reply = Reply::Error(e.clone());
            let Ok(Reply::Error(back)) = Reply::decode(&reply.encode()) else {
                panic!("error reply {:?} does not decode", reply.encode());
            };
            assert_eq!((back.id, back.code), (e.id, e.code));
        }
    }
}

/// A reply a client accepts, once encoded as faild would send it, is a
/// fixed point: it decodes to a value that encodes to the same text and
/// decodes back equal (the first decode may carry more precision than the
/// encoding keeps, e.g. nanoseconds, or a message with control characters).
pub fn reply(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(first) = Reply::decode(text) else {
        return;
    };
    let once = first.encode();
    let normal = Reply::decode(&once)
        .unwrap_or_else(|e| panic!("{first:?} encodes to {once:?}, which does not decode: {e}"));
    let twice = normal.encode();
    assert_eq!(once, twice, "encoding is not stable");
    assert_eq!(Reply::decode(&twice), Ok(normal.clone()));
    assert_eq!(first.id(), normal.id());
    if let Reply::Error(e) = &normal {
        assert_one_line("error reply", &e.message);
    }
}
