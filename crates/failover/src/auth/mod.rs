//! Signed requests and replies (opt-in): an HMAC-SHA256 envelope around the
//! plain protocol, so that a network peer who sniffs a community can neither
//! forge a request, replay one, nor feed a poller a forged reply.
//!
//! A signed request is the plain request line behind five words:
//!
//! ```text
//! AUTH/1 <key-id> <unix-seconds> <nonce: 32 hex> <mac: 64 hex> FAIL/1 <id> <community> <OP> ...
//! ```
//!
//! `mac` = HMAC-SHA256(key, `failover-request/1\n<key-id>\n<unix-seconds>\n<nonce>\n` ‖ the
//! plain request line without its line end). faild accepts it when the key
//! id is known, the MAC verifies, the time is within ± [`WINDOW`] seconds of
//! its own clock and the nonce was not seen within the window
//! ([`ReplayCache`]). The reply to a request whose MAC verified is the plain
//! reply behind one line:
//!
//! ```text
//! AUTH/1 <key-id> <mac: 64 hex>
//! FAIL/1 <id> OK 1
//! ...
//! ```
//!
//! `mac` = HMAC-SHA256(key, `failover-reply/1\n` ‖ the request's 32-byte MAC ‖ the
//! reply text), which binds the reply to that one request: a recorded reply
//! cannot answer another request. A reply to a request that did not verify
//! is sent unsigned, and a client that signed never trusts an unsigned
//! reply. See `docs/protocol.md`, "Signed requests".
//!
//! Pure: no I/O, no clock; the caller passes the time and the nonce cache.

mod client;
mod keys;
mod replay;

pub use client::{ReplyReader, SealRing, envelope, unsigned_answer};

pub use keys::{
    Key, KeyError, KeyRing, MAX_KEY_ID, MAX_SECRET, MIN_SECRET, check_key_id, decode_hex,
    encode_hex,
};
pub use replay::ReplayCache;

use std::sync::Arc;

use hmac::{Hmac, Mac as _};
use sha2::Sha256;

/// First word of a signed request and of a signed reply.
pub const MAGIC: &str = "AUTH/1";
/// How far (seconds) a request's time may be from faild's clock, either
/// way. Hosts need synchronised clocks (NTP) to sign.
pub const WINDOW: u64 = 30;
/// Bytes of random nonce per request.
pub const NONCE_LEN: usize = 16;
/// Bytes of an HMAC-SHA256.
pub const MAC_LEN: usize = 32;
/// Most bytes the envelope adds in front of a request line: faild accepts
/// lines this much longer than [`crate::proto::MAX_REQUEST`].
pub const MAX_OVERHEAD: usize =
    MAGIC.len() + 1 + MAX_KEY_ID + 1 + 20 + 1 + 2 * NONCE_LEN + 1 + 2 * MAC_LEN + 1;

pub type Nonce = [u8; NONCE_LEN];
pub type Digest = [u8; MAC_LEN];

const REQUEST_DOMAIN: &[u8] = b"failover-request/1\n";
const REPLY_DOMAIN: &[u8] = b"failover-reply/1\n";

/// Why a signed exchange was refused. One line each; none names a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("malformed signature: {0}")]
    Malformed(&'static str),
    #[error("unknown key id {0:?}")]
    UnknownKey(String),
    #[error("bad signature")]
    BadMac,
    #[error(
        "request time is {skew:+} s off this host's clock (window ±{window} s: are the clocks synchronised?)"
    )]
    Stale { skew: i64, window: u64 },
    #[error("replayed request (nonce already seen)")]
    Replayed,
    #[error("too many signed requests within the window ({0} remembered); try again")]
    CacheFull(usize),
    #[error(
        "key {key:?} made too many signed requests within the window ({quota} remembered); try again"
    )]
    KeyQuota { key: String, quota: usize },
    #[error("request signed before this faild started (its replay cache is new); try again")]
    BeforeStart,
    #[error("key {0:?} is not for this community")]
    WrongCommunity(String),
    #[error("this community must sign its requests")]
    Unsigned,
    #[error("reply is not signed")]
    UnsignedReply,
    #[error("reply signed with key {got:?}, not {want:?}")]
    ReplyKey { got: String, want: String },
}

/// The envelope of a signed request, decoded but not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest<'a> {
    pub key_id: &'a str,
    pub time: u64,
    pub nonce: Nonce,
    pub mac: Digest,
    /// The plain request line inside.
    pub inner: &'a [u8],
}

/// A key and the MAC of the request it answers: faild seals its reply with
/// it, the client opens the reply with it.
#[derive(Debug, Clone)]
pub struct Seal {
    key: Arc<Key>,
    request_mac: Digest,
}

/// A request line after the envelope check.
#[derive(Debug, Clone)]
pub enum Opened<'a> {
    /// No envelope: the plain line.
    Plain(&'a [u8]),
    /// Verified; the plain line inside, and the seal for the reply.
    Signed { inner: &'a [u8], seal: Seal },
}

/// A refused request: why, and the seal when the MAC itself verified (a
/// stale or replayed request from a key holder gets a signed DENIED, so its
/// client can trust the reason; anything else gets an unsigned one).
#[derive(Debug, Clone)]
pub struct Refusal {
    pub error: AuthError,
    pub seal: Option<Seal>,
}

/// Splits off the envelope of a request line (its `\n` or `\r\n` already
/// removed, or not): `None` for a plain request. No verification.
pub fn decode_request(line: &[u8]) -> Result<Option<SignedRequest<'_>>, AuthError> {
    let line = strip_line_end(line);
    let Some(rest) = line
        .strip_prefix(MAGIC.as_bytes())
        .and_then(|r| r.strip_prefix(b" "))
    else {
        return match line.starts_with(b"AUTH/") {
            true => Err(AuthError::Malformed("envelope version is not AUTH/1")),
            false => Ok(None),
        };
    };
    let mut words = rest.splitn(5, |b| *b == b' ');
    let mut word = |what| words.next().ok_or(AuthError::Malformed(what));
    let key_id = std::str::from_utf8(word("missing key id")?)
        .ok()
        .filter(|id| check_key_id(id).is_ok())
        .ok_or(AuthError::Malformed("bad key id"))?;
    let time = std::str::from_utf8(word("missing time")?)
        .ok()
        .filter(|t| canonical_number(t))
        .and_then(|t| t.parse::<u64>().ok())
        .ok_or(AuthError::Malformed("time is not a number of seconds"))?;
    let nonce = hex_array::<NONCE_LEN>(word("missing nonce")?)
        .ok_or(AuthError::Malformed("nonce is not 32 hex digits"))?;
    let mac = hex_array::<MAC_LEN>(word("missing MAC")?)
        .ok_or(AuthError::Malformed("MAC is not 64 hex digits"))?;
    let inner = word("missing request after the MAC")?;
    if inner.is_empty() {
        return Err(AuthError::Malformed("missing request after the MAC"));
    }
    Ok(Some(SignedRequest {
        key_id,
        time,
        nonce,
        mac,
        inner,
    }))
}

/// The clock a signed request's time is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// faild's clock (Unix seconds).
    pub now: u64,
    /// How far a request's time may be from `now`, either way.
    pub window: u64,
    /// faild's start (Unix seconds) while it is young enough that a
    /// request captured before the start could still be fresh (the nonce
    /// cache lives in memory and starts empty): requests stamped at or
    /// before it are refused. `None` once that is over.
    pub started: Option<u64>,
}

/// A request line whose envelope (if any) verified: the MAC is right, the
/// time and nonce are not checked yet.
#[derive(Debug, Clone)]
pub enum Authentic<'a> {
    Plain(&'a [u8]),
    Signed(Verified<'a>),
}

/// A request whose MAC verified, with what [`Verified::admit`] checks next.
#[derive(Debug, Clone)]
pub struct Verified<'a> {
    time: u64,
    nonce: Nonce,
    inner: &'a [u8],
    seal: Seal,
}

/// faild's check of a request line (the fuzz target's entry point): the
/// MAC ([`authenticate`]), then the time and nonce ([`Verified::admit`]).
/// The cache learns a nonce only from a request whose MAC verified, so
/// forgeries cannot fill it.
pub fn verify_request<'a>(
    line: &'a [u8],
    keys: &KeyRing,
    clock: Freshness,
    cache: &mut ReplayCache,
) -> Result<Opened<'a>, Refusal> {
    match authenticate(line, keys)? {
        Authentic::Plain(plain) => Ok(Opened::Plain(plain)),
        Authentic::Signed(verified) => verified.admit(clock, cache),
    }
}

/// The first half of [`verify_request`]: decodes the envelope and verifies
/// the MAC in constant time. Needs no shared state, so faild runs it
/// before it takes the nonce cache's lock: a flood of forgeries costs CPU
/// but never holds up the key holders' requests.
pub fn authenticate<'a>(line: &'a [u8], keys: &KeyRing) -> Result<Authentic<'a>, Refusal> {
    let unsealed = |error| Refusal { error, seal: None };
    let Some(signed) = decode_request(line).map_err(unsealed)? else {
        return Ok(Authentic::Plain(strip_line_end(line)));
    };
    let key = keys
        .get(signed.key_id)
        .ok_or_else(|| unsealed(AuthError::UnknownKey(signed.key_id.to_string())))?;
    let mut mac = request_mac(key, signed.key_id, signed.time, &signed.nonce);
    mac.update(signed.inner);
    mac.verify_slice(&signed.mac)
        .map_err(|_| unsealed(AuthError::BadMac))?;
    Ok(Authentic::Signed(Verified {
        time: signed.time,
        nonce: signed.nonce,
        inner: signed.inner,
        seal: Seal {
            key: key.clone(),
            request_mac: signed.mac,
        },
    }))
}

impl<'a> Verified<'a> {
    /// The second half of [`verify_request`]: the time against `clock`,
    /// then the nonce against `cache` (the only step that needs it).
    /// Refusals are sealed: the request came from a key holder.
    pub fn admit(self, clock: Freshness, cache: &mut ReplayCache) -> Result<Opened<'a>, Refusal> {
        let skew = i128::from(self.time) - i128::from(clock.now);
        let checked = if skew.unsigned_abs() > u128::from(clock.window) {
            Err(AuthError::Stale {
                skew: skew.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64,
                window: clock.window,
            })
        } else if clock.started.is_some_and(|started| self.time <= started) {
            // Its nonce may have been seen by the previous run of faild.
            Err(AuthError::BeforeStart)
        } else {
            cache.check_in(&self.seal.key.id, self.nonce, self.time, clock.now)
        };
        match checked {
            Ok(()) => Ok(Opened::Signed {
                inner: self.inner,
                seal: self.seal,
            }),
            Err(error) => Err(Refusal {
                error,
                seal: Some(self.seal),
            }),
        }
    }
}

/// faild's check once the plain request is parsed: a signed request's key
/// must be for its community; an unsigned request is refused when a key
/// covers its community.
pub fn check_community(
    seal: Option<&Seal>,
    community: &str,
    keys: &KeyRing,
) -> Result<(), AuthError> {
    match seal {
        Some(seal) if seal.key.covers(community) => Ok(()),
        Some(seal) => Err(AuthError::WrongCommunity(seal.key.id.clone())),
        None if keys.requires_signature(community) => Err(AuthError::Unsigned),
        None => Ok(()),
    }
}

/// A client's signing of a plain request line (a trailing `\n` is kept at
/// the end of the signed line). Returns the line to send and the seal that
/// opens its reply.
pub fn sign_request(key: &Key, time: u64, nonce: Nonce, plain: &str) -> (String, Seal) {
    sign_with(Arc::new(key.clone()), time, nonce, plain)
}

fn sign_with(key: Arc<Key>, time: u64, nonce: Nonce, plain: &str) -> (String, Seal) {
    let inner = strip_line_end(plain.as_bytes());
    let mut mac = request_mac(&key, &key.id, time, &nonce);
    mac.update(inner);
    let request_mac: Digest = mac.finalize().into_bytes().into();
    let line = format!(
        "{MAGIC} {} {time} {} {} {plain}",
        key.id,
        encode_hex(&nonce),
        encode_hex(&request_mac)
    );
    (line, Seal { key, request_mac })
}

/// A client's key and the nonces it signs with: a random prefix per
/// process (from the caller's seed) and a counter, so no two requests of
/// one client share a nonce and two clients share one only by a 2^-64
/// chance.
#[derive(Debug, Clone)]
pub struct Signer {
    key: Arc<Key>,
    prefix: [u8; 8],
    counter: u64,
}

impl Signer {
    pub fn new(key: impl Into<Arc<Key>>, seed: [u8; 16]) -> Signer {
        let (prefix, counter) = seed.split_at(8);
        Signer {
            key: key.into(),
            prefix: prefix.try_into().expect("8 bytes"),
            counter: u64::from_be_bytes(counter.try_into().expect("8 bytes")),
        }
    }

    /// Signs `plain` at `time` (Unix seconds) with the next nonce.
    pub fn sign(&mut self, time: u64, plain: &str) -> (String, Seal) {
        self.counter = self.counter.wrapping_add(1);
        let mut nonce = [0; NONCE_LEN];
        nonce[..8].copy_from_slice(&self.prefix);
        nonce[8..].copy_from_slice(&self.counter.to_be_bytes());
        sign_with(self.key.clone(), time, nonce, plain)
    }
}

impl Seal {
    pub fn key_id(&self) -> &str {
        &self.key.id
    }

    /// faild's signed reply: the auth line, then `reply` as is.
    pub fn seal_reply(&self, reply: &str) -> String {
        let mac = encode_hex(&self.reply_mac(reply.as_bytes()).finalize().into_bytes());
        format!("{MAGIC} {} {mac}\n{reply}", self.key.id)
    }

    /// How many bytes [`Seal::seal_reply`] puts in front of a reply (the
    /// auth line), so that a size rule can count them in.
    pub fn reply_overhead(&self) -> usize {
        self.seal_reply("").len()
    }

    /// A client's check of a whole reply (auth line and plain reply, as
    /// received); returns the plain reply. The entry point for replies.
    pub fn open_reply<'a>(&self, text: &'a str) -> Result<&'a str, AuthError> {
        let (first, reply) = text.split_once('\n').ok_or(AuthError::UnsignedReply)?;
        let (key_id, mac) = decode_reply_line(first)?.ok_or(AuthError::UnsignedReply)?;
        if key_id != self.key.id {
            return Err(AuthError::ReplyKey {
                got: key_id.to_string(),
                want: self.key.id.clone(),
            });
        }
        self.reply_mac(reply.as_bytes())
            .verify_slice(&mac)
            .map_err(|_| AuthError::BadMac)?;
        Ok(reply)
    }

    fn reply_mac(&self, reply: &[u8]) -> Hmac<Sha256> {
        let mut mac = hmac_for(&self.key);
        mac.update(REPLY_DOMAIN);
        mac.update(&self.request_mac);
        mac.update(reply);
        mac
    }
}

/// Decodes the auth line of a reply (`\r\n` or `\n` ending allowed):
/// `None` when the line is not one (an unsigned reply).
pub fn decode_reply_line(line: &str) -> Result<Option<(&str, Digest)>, AuthError> {
    let line = line.trim_end_matches(['\r', '\n']);
    let Some(rest) = line.strip_prefix(MAGIC).and_then(|r| r.strip_prefix(' ')) else {
        return Ok(None);
    };
    let (key_id, mac) = rest.split_once(' ').ok_or(AuthError::Malformed(
        "reply auth line needs a key id and a MAC",
    ))?;
    check_key_id(key_id).map_err(|_| AuthError::Malformed("bad key id"))?;
    let mac = hex_array::<MAC_LEN>(mac.as_bytes())
        .ok_or(AuthError::Malformed("MAC is not 64 hex digits"))?;
    Ok(Some((key_id, mac)))
}

fn hmac_for(key: &Key) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(key.secret()).expect("HMAC takes keys of any length")
}

fn request_mac(key: &Key, key_id: &str, time: u64, nonce: &Nonce) -> Hmac<Sha256> {
    let mut mac = hmac_for(key);
    mac.update(REQUEST_DOMAIN);
    mac.update(key_id.as_bytes());
    mac.update(b"\n");
    mac.update(time.to_string().as_bytes());
    mac.update(b"\n");
    mac.update(encode_hex(nonce).as_bytes());
    mac.update(b"\n");
    mac
}

fn strip_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Decimal digits without a leading zero: each time has one spelling, so
/// the signed bytes are the bytes on the wire.
fn canonical_number(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 20
        && t.bytes().all(|b| b.is_ascii_digit())
        && (t == "0" || !t.starts_with('0'))
}

/// Exactly `2 * N` lower-case hex digits (one spelling, as for times).
fn hex_array<const N: usize>(word: &[u8]) -> Option<[u8; N]> {
    if word.len() != 2 * N || word.iter().any(u8::is_ascii_uppercase) {
        return None;
    }
    decode_hex(std::str::from_utf8(word).ok()?)?.try_into().ok()
}

#[cfg(test)]
mod tests;
