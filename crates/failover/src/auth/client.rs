//! What failc and failsh share as signing clients: the envelope of a
//! request, the reading of a reply that may carry an auth line, the seals
//! of a UDP request's recent sends, and how faild's unsigned refusal is
//! shown. Pure: the callers do the socket work and read the clock.

use std::collections::VecDeque;

use super::{AuthError, MAGIC, Seal, Signer};
use crate::proto::Header;

/// The line to send for `plain` at `now` (Unix seconds): signed by
/// `signer` (with the seal that opens its reply), or `plain` as is.
pub fn envelope(signer: Option<&mut Signer>, now: u64, plain: &str) -> (String, Option<Seal>) {
    match signer {
        None => (plain.to_string(), None),
        Some(signer) => {
            let (line, seal) = signer.sign(now, plain);
            (line, Some(seal))
        }
    }
}

/// A reply read line by line off a stream: the auth line (when the
/// request was signed and faild sealed its answer), the header, then as
/// many item lines as the header announces.
#[derive(Debug, Clone)]
pub struct ReplyReader {
    signed: bool,
    text: String,
    /// Item lines still to come, once the header is read.
    items_left: Option<usize>,
}

impl ReplyReader {
    /// For the reply to a request that was signed (`signed`) or not.
    pub fn new(signed: bool) -> ReplyReader {
        ReplyReader {
            signed,
            text: String::new(),
            items_left: None,
        }
    }

    /// Takes the next line received (with its line end). `Ok(true)` when
    /// the reply is whole; an error when the header cannot be read.
    pub fn push(&mut self, line: &str) -> Result<bool, String> {
        let first = self.text.is_empty();
        self.text.push_str(line);
        match self.items_left {
            Some(ref mut left) => *left = left.saturating_sub(1),
            // An unsigned reply (faild's refusal of the signature, or a
            // forger) has no auth line: its first line is the header.
            None if first && self.signed && line.starts_with(MAGIC) => return Ok(false),
            None => {
                self.items_left = Some(match Header::parse(line)? {
                    Header::Items { count, .. } => count,
                    Header::Error(_) => 0,
                });
            }
        }
        Ok(self.items_left == Some(0))
    }

    /// The whole reply as received.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The plain reply: checked against `seal` when the request was
    /// signed.
    pub fn open(&self, seal: Option<&Seal>) -> Result<&str, AuthError> {
        match seal {
            None => Ok(&self.text),
            Some(seal) => seal.open_reply(&self.text),
        }
    }
}

/// The seals of a UDP request's most recent sends: each resend is signed
/// afresh (faild refuses a nonce twice), and a late reply to an earlier
/// send opens with that send's seal. Only the last [`SealRing::KEEP`] are
/// kept, so checking one datagram costs at most that many HMACs.
#[derive(Debug, Clone, Default)]
pub struct SealRing {
    seals: VecDeque<Seal>,
}

impl SealRing {
    /// Sends whose replies are still taken: a reply later than this many
    /// resends (a quarter of the timeout each) is too late anyway.
    pub const KEEP: usize = 8;

    pub fn push(&mut self, seal: Seal) {
        if self.seals.len() == Self::KEEP {
            self.seals.pop_front();
        }
        self.seals.push_back(seal);
    }

    pub fn len(&self) -> usize {
        self.seals.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seals.is_empty()
    }

    /// A datagram's plain reply, opened with whichever kept seal made it;
    /// the error is the newest seal's.
    pub fn open<'a>(&self, text: &'a str) -> Result<&'a str, AuthError> {
        let mut newest = Err(AuthError::UnsignedReply);
        for (i, seal) in self.seals.iter().rev().enumerate() {
            match seal.open_reply(text) {
                Ok(plain) => return Ok(plain),
                Err(e) if i == 0 => newest = Err(e),
                Err(_) => {}
            }
        }
        newest
    }
}

/// An unsigned error reply's first line, shown (never trusted) beside an
/// authentication failure: it is usually faild saying why it refused the
/// signature. Anyone can send it, so control characters (an escape
/// sequence, a carriage return that would overwrite the line) are escaped
/// and it is cut at 200 characters.
pub fn unsigned_answer(text: &str) -> Option<String> {
    let first = text.lines().next()?;
    let escape = |c: char| -> String {
        match c.is_control() {
            true => c.escape_debug().collect(),
            false => c.to_string(),
        }
    };
    first
        .contains(" ERR ")
        .then(|| first.chars().take(200).map(escape).collect())
}
