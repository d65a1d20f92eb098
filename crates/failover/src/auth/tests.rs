use super::*;
use proptest::prelude::*;

const NOW: u64 = 1_800_000_000;

fn key(id: &str, community: Option<&str>, fill: u8) -> Key {
    Key::new(id, community, &[fill; 32]).unwrap()
}

fn ring() -> KeyRing {
    KeyRing::from_keys(vec![
        key("old", Some("genesis"), 1),
        key("new", Some("genesis"), 2),
        key("ops", Some("ops"), 3),
    ])
}

fn cache() -> ReplayCache {
    ReplayCache::new(100, WINDOW)
}

const PLAIN: &str = "FAIL/1 7 genesis SET vip FAIL macbeth\n";

fn signed(k: &Key, time: u64, n: u8) -> (String, Seal) {
    sign_request(k, time, [n; NONCE_LEN], PLAIN)
}

/// faild's clock long after its start.
const CLOCK: Freshness = Freshness {
    now: NOW,
    window: WINDOW,
    started: None,
};

fn verify<'a>(line: &'a str, c: &mut ReplayCache) -> Result<Opened<'a>, Refusal> {
    verify_request(line.as_bytes(), &ring(), CLOCK, c)
}

fn error(r: Result<Opened<'_>, Refusal>) -> (AuthError, bool) {
    match r {
        Ok(o) => panic!("accepted: {o:?}"),
        Err(r) => (r.error, r.seal.is_some()),
    }
}

#[test]
fn a_signed_request_opens_to_the_plain_line() {
    let (line, _) = signed(&key("old", Some("genesis"), 1), NOW, 1);
    assert!(line.starts_with("AUTH/1 old 1800000000 0101"));
    assert!(line.ends_with(PLAIN), "the plain line rides as is");
    let Ok(Opened::Signed { inner, seal }) = verify(&line, &mut cache()) else {
        panic!("refused")
    };
    assert_eq!(inner, PLAIN.trim_end().as_bytes());
    assert_eq!(seal.key_id(), "old");
    // Both keys of a rotation verify.
    let (line, _) = signed(&key("new", Some("genesis"), 2), NOW, 2);
    assert!(matches!(
        verify(&line, &mut cache()),
        Ok(Opened::Signed { .. })
    ));
    // \r\n and no line end at all are the same request.
    let crlf = format!("{}\r\n", line.trim_end());
    assert!(matches!(
        verify(&crlf, &mut cache()),
        Ok(Opened::Signed { .. })
    ));
}

#[test]
fn plain_requests_pass_through() {
    let Ok(Opened::Plain(p)) = verify(PLAIN, &mut cache()) else {
        panic!()
    };
    assert_eq!(p, PLAIN.trim_end().as_bytes());
    assert_eq!(decode_request(b"garbage"), Ok(None));
}

#[test]
fn forged_wrong_key_unknown_key_are_refused_unsealed() {
    let mut c = cache();
    // Signed with a secret faild does not hold, under a key id it knows.
    let (line, _) = signed(&key("old", Some("genesis"), 9), NOW, 1);
    assert_eq!(error(verify(&line, &mut c)), (AuthError::BadMac, false));
    // Signed with the other key's secret.
    let (line, _) = signed(&key("old", Some("genesis"), 2), NOW, 2);
    assert_eq!(error(verify(&line, &mut c)), (AuthError::BadMac, false));
    let (line, _) = signed(&key("gone", Some("genesis"), 1), NOW, 3);
    assert_eq!(
        error(verify(&line, &mut c)),
        (AuthError::UnknownKey("gone".into()), false)
    );
    assert!(c.is_empty(), "forgeries never fill the nonce cache");
    // The request changed after signing: SET vip UP instead of FAIL.
    let (line, _) = signed(&key("old", Some("genesis"), 1), NOW, 4);
    let tampered = line.replace("FAIL macbeth", "UP macbeth");
    assert_eq!(error(verify(&tampered, &mut c)), (AuthError::BadMac, false));
    // The time changed after signing.
    let tampered = line.replace("1800000000", "1800000001");
    assert_eq!(error(verify(&tampered, &mut c)), (AuthError::BadMac, false));
}

#[test]
fn replayed_and_stale_requests_are_refused_sealed() {
    let mut c = cache();
    let k = key("old", Some("genesis"), 1);
    let (line, _) = signed(&k, NOW, 1);
    assert!(verify(&line, &mut c).is_ok());
    assert_eq!(error(verify(&line, &mut c)), (AuthError::Replayed, true));
    for (time, skew) in [(NOW - 31, -31), (NOW + 31, 31), (0, -(NOW as i64))] {
        let (line, _) = signed(&k, time, 2);
        assert_eq!(
            error(verify(&line, &mut c)),
            (AuthError::Stale { skew, window: 30 }, true)
        );
    }
    for time in [NOW - 30, NOW + 30] {
        let (line, _) = signed(&k, time, time as u8);
        assert!(verify(&line, &mut c).is_ok(), "edge of the window");
    }
    let (line, _) = signed(&k, u64::MAX, 5);
    assert!(matches!(
        error(verify(&line, &mut c)).0,
        AuthError::Stale { .. }
    ));
}

#[test]
fn full_cache_refuses() {
    let mut c = ReplayCache::new(1, WINDOW);
    let k = key("old", Some("genesis"), 1);
    assert!(verify(&signed(&k, NOW, 1).0, &mut c).is_ok());
    assert_eq!(
        error(verify(&signed(&k, NOW, 2).0, &mut c)),
        (AuthError::CacheFull(1), true)
    );
}

#[test]
fn community_scope() {
    let keys = ring();
    let (line, _) = signed(&key("ops", Some("ops"), 3), NOW, 1);
    let Ok(Opened::Signed { seal, .. }) = verify(&line, &mut cache()) else {
        panic!()
    };
    assert_eq!(
        check_community(Some(&seal), "genesis", &keys),
        Err(AuthError::WrongCommunity("ops".into()))
    );
    assert_eq!(check_community(Some(&seal), "ops", &keys), Ok(()));
    assert_eq!(
        check_community(None, "genesis", &keys),
        Err(AuthError::Unsigned)
    );
    assert_eq!(check_community(None, "public", &keys), Ok(()));
    let site = KeyRing::from_keys(vec![key("site", None, 4)]);
    assert_eq!(
        check_community(None, "public", &site),
        Err(AuthError::Unsigned)
    );
}

#[test]
fn malformed_envelopes() {
    let mac = "0".repeat(64);
    let nonce = "0".repeat(32);
    for bad in [
        "AUTH/2 k 1 x y FAIL/1 1 p GET v".to_string(),
        "AUTH/1".into(),
        "AUTH/1 ".into(),
        "AUTH/1 k".into(),
        format!("AUTH/1 k/x 1 {nonce} {mac} FAIL/1 1 p GET v"),
        format!("AUTH/1 k 01 {nonce} {mac} FAIL/1 1 p GET v"),
        format!("AUTH/1 k -1 {nonce} {mac} FAIL/1 1 p GET v"),
        format!("AUTH/1 k 99999999999999999999 {nonce} {mac} FAIL/1 1 p GET v"),
        format!("AUTH/1 k 1 {} {mac} FAIL/1 1 p GET v", "0".repeat(31)),
        format!("AUTH/1 k 1 {} {mac} FAIL/1 1 p GET v", "A".repeat(32)),
        format!("AUTH/1 k 1 {nonce} {} FAIL/1 1 p GET v", "g".repeat(64)),
        format!("AUTH/1 k 1 {nonce} {mac}"),
        format!("AUTH/1 k 1 {nonce} {mac} "),
        format!("AUTH/1  k 1 {nonce} {mac} FAIL/1 1 p GET v"),
    ] {
        assert!(
            matches!(decode_request(bad.as_bytes()), Err(AuthError::Malformed(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn replies_are_bound_to_their_request() {
    let k = key("old", Some("genesis"), 1);
    let (_, seal1) = signed(&k, NOW, 1);
    let (_, seal2) = signed(&k, NOW, 2);
    let reply = "FAIL/1 7 OK 1\nvip FAIL macbeth 2026-01-01T00:00:00.000Z 3\n";
    let sealed = seal1.seal_reply(reply);
    assert!(sealed.starts_with("AUTH/1 old "));
    assert_eq!(seal1.open_reply(&sealed), Ok(reply));
    // Replayed to another request of the same key: refused.
    assert_eq!(seal2.open_reply(&sealed), Err(AuthError::BadMac));
    // Changed in flight.
    let forged = sealed.replace("vip FAIL", "vip UP");
    assert_eq!(seal1.open_reply(&forged), Err(AuthError::BadMac));
    // Unsigned (what a forger without the key can send, or faild's refusal
    // of a request that did not verify).
    assert_eq!(
        seal1.open_reply("FAIL/1 7 ERR DENIED bad signature\n"),
        Err(AuthError::UnsignedReply)
    );
    assert_eq!(seal1.open_reply(""), Err(AuthError::UnsignedReply));
    // Signed with another key.
    let other = signed(&key("new", Some("genesis"), 2), NOW, 1).1;
    assert!(matches!(
        seal1.open_reply(&other.seal_reply(reply)),
        Err(AuthError::ReplyKey { .. })
    ));
    assert!(matches!(
        seal1.open_reply("AUTH/1 old zz\nFAIL/1 7 OK 0\n"),
        Err(AuthError::Malformed(_))
    ));
}

#[test]
fn a_reply_to_any_recent_send_of_a_request_opens() {
    let mut signer = Signer::new(key("old", Some("genesis"), 1), [1; 16]);
    let seals: Vec<Seal> = (0..3).map(|_| signer.sign(NOW, PLAIN).1).collect();
    let mut ring = SealRing::default();
    let reply = "FAIL/1 7 OK 0\n";
    let late = seals[0].seal_reply(reply);
    assert_eq!(ring.open(&late), Err(AuthError::UnsignedReply));
    for seal in &seals {
        ring.push(seal.clone());
    }
    assert_eq!(ring.open(&late), Ok(reply));
    assert_eq!(ring.open(reply), Err(AuthError::UnsignedReply));
    let forged = late.replace("OK 0", "OK 1");
    assert_eq!(ring.open(&forged), Err(AuthError::BadMac));
    // Only the last KEEP sends are kept: a datagram costs at most KEEP
    // HMACs however long the exchange goes on.
    for _ in 0..100 {
        ring.push(signer.sign(NOW, PLAIN).1);
    }
    assert_eq!(ring.len(), SealRing::KEEP);
    assert_eq!(ring.open(&late), Err(AuthError::BadMac));
    let newest = signer.sign(NOW, PLAIN).1;
    ring.push(newest.clone());
    assert_eq!(ring.open(&newest.seal_reply(reply)), Ok(reply));
}

#[test]
fn a_request_signed_before_faild_started_is_refused_sealed_while_it_could_be_fresh() {
    let k = key("old", Some("genesis"), 1);
    let young = Freshness {
        started: Some(NOW - 5),
        ..CLOCK
    };
    let check = |time, n, clock| {
        let (line, _) = signed(&k, time, n);
        verify_request(line.as_bytes(), &ring(), clock, &mut cache()).map(|_| ())
    };
    // Captured before the restart (its nonce may have been seen by the
    // previous run), or in faild's very start second.
    for time in [NOW - 10, NOW - 5] {
        let e = check(time, 1, young).unwrap_err();
        assert_eq!((e.error, e.seal.is_some()), (AuthError::BeforeStart, true));
    }
    assert!(check(NOW - 4, 2, young).is_ok(), "signed after the start");
    assert!(
        check(NOW - 10, 3, CLOCK).is_ok(),
        "once faild is old enough"
    );
}

#[test]
fn the_reply_reader_takes_an_auth_line_only_from_a_signed_request() {
    let whole = |signed, lines: &[&str]| {
        let mut r = ReplyReader::new(signed);
        let done: Vec<bool> = lines.iter().map(|l| r.push(l).unwrap()).collect();
        (done, r.text().to_string())
    };
    let items = ["FAIL/1 7 OK 1\n", "vip UP - 2026-01-01T00:00:00.000Z 3\n"];
    assert_eq!(whole(false, &items).0, [false, true]);
    let auth = format!("AUTH/1 old {}\n", "ab".repeat(32));
    let sealed = [auth.as_str(), items[0], items[1]];
    assert_eq!(whole(true, &sealed).0, [false, false, true]);
    assert_eq!(whole(true, &sealed).1, sealed.concat());
    // faild's unsigned refusal of a signed request: one line, whole.
    assert_eq!(
        whole(true, &["FAIL/1 7 ERR DENIED bad signature\n"]).0,
        [true]
    );
    assert_eq!(whole(true, &["FAIL/1 7 OK 0\n"]).0, [true]);
    // An unsigned request never takes an auth line for one.
    assert!(ReplyReader::new(false).push(&auth).is_err());
    // Opened with the seal of a signed request; as is without.
    let (_, seal) = signed(&key("old", Some("genesis"), 1), NOW, 1);
    let mut r = ReplyReader::new(true);
    for line in seal.seal_reply(&items.concat()).split_inclusive('\n') {
        r.push(line).unwrap();
    }
    assert_eq!(r.open(Some(&seal)), Ok(items.concat().as_str()));
    let mut r = ReplyReader::new(true);
    r.push("FAIL/1 7 ERR DENIED bad signature\n").unwrap();
    assert_eq!(r.open(Some(&seal)), Err(AuthError::UnsignedReply));
    assert!(r.open(None).is_ok());
}

#[test]
fn an_unsigned_answer_is_shown_with_control_characters_escaped() {
    let shown = unsigned_answer("FAIL/1 7 ERR DENIED \x1b[2Jgone\rfake \"k9\"\n").unwrap();
    assert_eq!(shown, "FAIL/1 7 ERR DENIED \\u{1b}[2Jgone\\rfake \"k9\"");
    assert!(!shown.chars().any(char::is_control));
    assert_eq!(unsigned_answer("FAIL/1 7 OK 0\n"), None);
    assert_eq!(
        unsigned_answer(&format!("FAIL/1 7 ERR DENIED {}", "x".repeat(500)))
            .unwrap()
            .len(),
        200
    );
}

#[test]
fn envelope_signs_only_with_a_signer() {
    let (line, seal) = envelope(None, NOW, PLAIN);
    assert_eq!((line.as_str(), seal.is_none()), (PLAIN, true));
    let mut signer = Signer::new(key("old", Some("genesis"), 1), [1; 16]);
    let (line, seal) = envelope(Some(&mut signer), NOW, PLAIN);
    let Ok(Opened::Signed { seal: faild, .. }) = verify(&line, &mut cache()) else {
        panic!("refused: {line}")
    };
    let reply = "FAIL/1 7 OK 0\n";
    assert_eq!(
        seal.unwrap().open_reply(&faild.seal_reply(reply)),
        Ok(reply)
    );
}

#[test]
fn the_request_mac_is_what_faild_seals_with() {
    // faild's seal (from verification) and the client's (from signing) are
    // the same: a reply sealed by one opens with the other.
    let k = key("old", Some("genesis"), 1);
    let (line, client) = signed(&k, NOW, 7);
    let Ok(Opened::Signed { seal: server, .. }) = verify(&line, &mut cache()) else {
        panic!()
    };
    let reply = "FAIL/1 7 ERR STORAGE disk full\n";
    assert_eq!(client.open_reply(&server.seal_reply(reply)), Ok(reply));
}

#[test]
fn a_signer_never_repeats_a_nonce() {
    let mut signer = Signer::new(key("old", Some("genesis"), 1), [7; 16]);
    let mut c = cache();
    for _ in 0..50 {
        let (line, _) = signer.sign(NOW, PLAIN);
        assert!(verify(&line, &mut c).is_ok());
    }
    assert_eq!(c.len(), 50);
}

#[test]
fn overhead_bound_holds() {
    let k = key(&"k".repeat(MAX_KEY_ID), None, 1);
    let (line, _) = sign_request(&k, u64::MAX, [0xff; NONCE_LEN], "X");
    assert_eq!(line.len() - 1, MAX_OVERHEAD);
}

proptest! {
    #[test]
    fn signed_requests_round_trip(time in NOW - 30..NOW + 30, nonce in any::<[u8; 16]>(),
                                  plain in "FAIL/1 [0-9]{1,5} genesis [ -~]{1,100}") {
        let k = key("new", Some("genesis"), 2);
        let (line, client) = sign_request(&k, time, nonce, &plain);
        let got = verify(&line, &mut cache());
        let Ok(Opened::Signed { inner, seal }) = got else { panic!("{got:?}") };
        prop_assert_eq!(inner, plain.as_bytes());
        let reply = "FAIL/1 1 OK 0\n";
        let sealed = seal.seal_reply(reply);
        prop_assert_eq!(client.open_reply(&sealed), Ok(reply));
    }

    /// Any one byte changed anywhere in a signed line: never accepted as
    /// signed (a broken magic makes it a plain line, which is not a request).
    #[test]
    fn any_change_is_refused(pos in 0usize..200, byte in any::<u8>()) {
        let (line, _) = signed(&key("old", Some("genesis"), 1), NOW, 1);
        let mut bytes = line.trim_end().as_bytes().to_vec();
        let pos = pos % bytes.len();
        prop_assume!(bytes[pos] != byte);
        bytes[pos] = byte;
        match verify_request(&bytes, &ring(), CLOCK, &mut cache()) {
            Ok(Opened::Signed { .. }) => prop_assert!(false, "accepted a changed line"),
            Ok(Opened::Plain(p)) => prop_assert!(!p.starts_with(b"AUTH/1 ")),
            Err(_) => {}
        }
    }

    #[test]
    fn any_change_to_a_reply_is_refused(pos in 0usize..200, byte in any::<u8>()) {
        let (_, seal) = signed(&key("old", Some("genesis"), 1), NOW, 1);
        let sealed = seal.seal_reply("FAIL/1 7 OK 1\nvip UP - 2026-01-01T00:00:00.000Z 3\n");
        let mut bytes = sealed.into_bytes();
        let pos = pos % bytes.len();
        prop_assume!(bytes[pos] != byte);
        bytes[pos] = byte;
        if let Ok(text) = std::str::from_utf8(&bytes) {
            prop_assert!(seal.open_reply(text).is_err());
        }
    }

    #[test]
    fn decoders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = verify_request(&bytes, &ring(), CLOCK, &mut cache());
        let mut prefixed = b"AUTH/1 ".to_vec();
        prefixed.extend_from_slice(&bytes);
        let _ = verify_request(&prefixed, &ring(), CLOCK, &mut cache());
        if let Ok(s) = std::str::from_utf8(&bytes) {
            let (_, seal) = signed(&key("old", None, 1), NOW, 1);
            let _ = seal.open_reply(s);
            let _ = decode_reply_line(s);
        }
    }
}
