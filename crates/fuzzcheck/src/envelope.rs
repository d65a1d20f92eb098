//! The HMAC envelope of signed requests and replies (`failover::auth`):
//! the first thing faild reads of a signed request, and what a signing
//! client reads of a reply before it trusts a word of it.

use failover::auth::{
    Freshness, Key, KeyRing, MAGIC, Opened, ReplayCache, Signer, WINDOW, decode_reply_line,
    decode_request, encode_hex, verify_request,
};

/// The key the checks sign with; the fuzzer never sees its secret except
/// through the envelopes it signs.
fn key() -> Key {
    Key::new("fuzz", None, b"0123456789abcdef0123456789abcdef").expect("a valid test key")
}

/// Properties of arbitrary bytes as a request line and as a reply:
/// - a decoded envelope has one spelling: its fields rendered again give
///   the very line decoded (the signed bytes are the bytes on the wire);
/// - arbitrary bytes never pass as signed by a key the sender lacks;
/// - the bytes as the plain request inside a real envelope: accepted once,
///   the inner line given back whole; the same line again is a replay; any
///   one byte changed is refused;
/// - a reply sealed for that request opens to exactly the reply, and with
///   one byte of it changed does not open; a reply auth line decodes without
///   panicking.
pub fn envelope(data: &[u8]) {
    let keys = KeyRing::from_keys(vec![key()]);
    let now = 1_800_000_000;
    let clock = Freshness {
        now,
        window: WINDOW,
        started: None,
    };
    decoded_has_one_spelling(data);
    let mut cache = ReplayCache::new(64, WINDOW);
    if let Ok(Opened::Signed { .. }) = verify_request(data, &keys, clock, &mut cache) {
        panic!("arbitrary bytes passed as signed: {data:?}");
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = decode_reply_line(text);
    if text.contains(['\n', '\r']) || text.is_empty() {
        return; // a request line is one line
    }
    let mut signer = Signer::new(key(), [7; 16]);
    let (line, seal) = signer.sign(now, text);
    let mut cache = ReplayCache::new(64, WINDOW);
    match verify_request(line.as_bytes(), &keys, clock, &mut cache) {
        Ok(Opened::Signed { inner, .. }) => assert_eq!(inner, text.as_bytes(), "{line:?}"),
        other => panic!("a signed line is refused: {line:?} → {other:?}"),
    }
    assert!(
        verify_request(line.as_bytes(), &keys, clock, &mut cache).is_err(),
        "a replay is accepted: {line:?}"
    );
    let at = usize::from(data[0]) * 31 % line.len();
    let mut tampered = line.clone().into_bytes();
    tampered[at] ^= 0x01;
    let mut fresh = ReplayCache::new(64, WINDOW);
    assert!(
        !matches!(
            verify_request(&tampered, &keys, clock, &mut fresh),
            Ok(Opened::Signed { .. })
        ),
        "byte {at} of {line:?} changed and still accepted"
    );
    let sealed = seal.seal_reply(text);
    assert_eq!(seal.open_reply(&sealed), Ok(text), "{sealed:?}");
    let mut forged = sealed.into_bytes();
    let at = usize::from(data[0]) * 17 % forged.len();
    forged[at] ^= 0x01;
    if let Ok(forged) = std::str::from_utf8(&forged) {
        assert!(
            seal.open_reply(forged).is_err(),
            "a changed reply opens: {forged:?}"
        );
    }
}

/// What decodes as an envelope renders back to the same bytes.
fn decoded_has_one_spelling(data: &[u8]) {
    let Ok(Some(signed)) = decode_request(data) else {
        return;
    };
    let mut again = format!(
        "{MAGIC} {} {} {} {} ",
        signed.key_id,
        signed.time,
        encode_hex(&signed.nonce),
        encode_hex(&signed.mac)
    )
    .into_bytes();
    again.extend_from_slice(signed.inner);
    let line = data.strip_suffix(b"\n").unwrap_or(data);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    assert_eq!(again, line, "an envelope with two spellings");
}
