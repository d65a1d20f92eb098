//! Key files: the shared secrets that sign requests and replies.
//!
//! One key per line, `#` starts a comment:
//!
//! ```text
//! # key-id   community|*   secret
//! k2026a     genesis       hex:5f1c0e...        (at least 16 bytes)
//! k2026b     genesis       base64:Xx4n...
//! site       *             hex:...
//! ```
//!
//! faild reads the file to know which keys it accepts, and which
//! communities must come signed (every community a key names; a `*` key
//! makes every community need a signature). A client reads the same format
//! to pick the key it signs with: the key named by its key id, otherwise the
//! **last** key in the file that covers its community, so that appending a
//! new key switches a client over.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use subtle::ConstantTimeEq;

use crate::names::check_community;

/// Shortest secret accepted: 128 bits.
pub const MIN_SECRET: usize = 16;
/// Longest secret accepted: HMAC-SHA256's block size (a longer one would be
/// hashed down anyway).
pub const MAX_SECRET: usize = 64;
/// Longest key id.
pub const MAX_KEY_ID: usize = 32;

/// One shared key.
#[derive(Clone, PartialEq, Eq)]
pub struct Key {
    pub id: String,
    /// The community it signs; `None` is `*`, every community.
    pub community: Option<String>,
    secret: Vec<u8>,
    /// `file:line`, for log lines (never the secret).
    pub origin: String,
}

/// Never prints the secret.
impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("id", &self.id)
            .field("community", &self.community)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl Key {
    /// A key from its parts (tests, benchmarks); the secret is checked like
    /// a key file's.
    pub fn new(id: &str, community: Option<&str>, secret: &[u8]) -> Result<Key, String> {
        check_key_id(id)?;
        if let Some(c) = community {
            check_community(c)?;
        }
        check_secret_len(secret.len())?;
        Ok(Key {
            id: id.to_string(),
            community: community.map(str::to_string),
            secret: secret.to_vec(),
            origin: "built in".into(),
        })
    }

    pub(crate) fn secret(&self) -> &[u8] {
        &self.secret
    }

    /// Whether the key may sign requests of `community` (compared in
    /// constant time, like community rules).
    pub fn covers(&self, community: &str) -> bool {
        self.community
            .as_deref()
            .is_none_or(|c| bool::from(c.as_bytes().ct_eq(community.as_bytes())))
    }
}

/// A malformed key file; the message starts with `file:line:`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(pub String);

/// Every key of one key file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyRing {
    /// Shared with the seals of the requests they verified.
    keys: Vec<Arc<Key>>,
}

impl KeyRing {
    /// Parses a key file; `file` only labels error messages and origins.
    pub fn parse(text: &str, file: &str) -> Result<KeyRing, KeyError> {
        let mut keys: Vec<Arc<Key>> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let lineno = n + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |m: String| KeyError(format!("{file}:{lineno}: {m}"));
            let fields: Vec<&str> = line.split_ascii_whitespace().collect();
            let [id, community, secret] = fields.as_slice() else {
                return Err(err(format!(
                    "expected KEY-ID COMMUNITY|* hex:SECRET|base64:SECRET, found {} fields",
                    fields.len()
                )));
            };
            check_key_id(id).map_err(err)?;
            if let Some(first) = keys.iter().find(|k| k.id == *id) {
                return Err(err(format!(
                    "key id {id:?} already used at {}",
                    first.origin
                )));
            }
            let community = match *community {
                "*" => None,
                c => {
                    check_community(c).map_err(err)?;
                    Some(c.to_string())
                }
            };
            let secret = decode_secret(secret).map_err(err)?;
            keys.push(Arc::new(Key {
                id: id.to_string(),
                community,
                secret,
                origin: format!("{file}:{lineno}"),
            }));
        }
        Ok(KeyRing { keys })
    }

    pub fn from_keys(keys: Vec<Key>) -> KeyRing {
        KeyRing {
            keys: keys.into_iter().map(Arc::new).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key with this id.
    pub fn get(&self, id: &str) -> Option<&Arc<Key>> {
        self.keys.iter().find(|k| k.id == id)
    }

    /// Whether faild must refuse an unsigned request of `community`: some
    /// key covers it.
    pub fn requires_signature(&self, community: &str) -> bool {
        self.keys.iter().any(|k| k.covers(community))
    }

    /// The key a client signs `community`'s requests with: the one named
    /// `key_id`, else the last one covering the community.
    pub fn signing_key(&self, community: &str, key_id: Option<&str>) -> Result<&Arc<Key>, String> {
        match key_id {
            Some(id) => {
                let key = self.get(id).ok_or_else(|| format!("no key {id:?}"))?;
                match key.covers(community) {
                    true => Ok(key),
                    false => Err(format!(
                        "key {id:?} ({}) is not for this community",
                        key.origin
                    )),
                }
            }
            None => self
                .keys
                .iter()
                .rev()
                .find(|k| k.covers(community))
                .ok_or_else(|| "no key for this community".to_string()),
        }
    }
}

/// Key ids travel in every signed request: short, visible, no spaces.
pub fn check_key_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_KEY_ID {
        return Err(format!("key id must be 1-{MAX_KEY_ID} characters"));
    }
    match id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        Some(c) => Err(format!(
            "key id {:?}: character {c:?} not allowed (A-Z a-z 0-9 . _ -)",
            id.chars().take(40).collect::<String>()
        )),
        None => Ok(()),
    }
}

fn check_secret_len(len: usize) -> Result<(), String> {
    match len {
        MIN_SECRET..=MAX_SECRET => Ok(()),
        _ => Err(format!(
            "secret is {len} bytes; {MIN_SECRET}-{MAX_SECRET} bytes needed \
             (e.g. `hex:` and the output of `openssl rand -hex 32`)"
        )),
    }
}

/// `hex:...` or `base64:...`; the prefix is required, as many hex strings
/// are valid base64 too.
fn decode_secret(s: &str) -> Result<Vec<u8>, String> {
    let bytes = if let Some(h) = s.strip_prefix("hex:") {
        decode_hex(h).ok_or("secret after hex: is not an even number of hex digits")?
    } else if let Some(b) = s.strip_prefix("base64:") {
        base64::engine::general_purpose::STANDARD
            .decode(b)
            // Not base64's own words: they name a character of the secret.
            .map_err(|_| "secret after base64: is not base64")?
    } else {
        return Err("secret must start with hex: or base64:".into());
    };
    check_secret_len(bytes.len())?;
    Ok(bytes)
}

/// Lower-case hex.
pub fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// Hex of either case; `None` for an odd length or a non-hex digit.
pub fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.as_bytes()
        .chunks(2)
        .map(|pair| {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            Some((hi * 16 + lo) as u8)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HEX16: &str = "hex:000102030405060708090a0b0c0d0e0f";

    #[test]
    fn parses_keys_and_scopes() {
        let text = format!(
            "# rotation\n\nold genesis {HEX16}\n  new genesis base64:AAECAwQFBgcICQoLDA0ODxAREhM=  \nsite * {HEX16}\n"
        );
        let ring = KeyRing::parse(&text, "keys").unwrap();
        assert_eq!(ring.len(), 3);
        assert_eq!(ring.get("new").unwrap().secret().len(), 20);
        assert_eq!(ring.get("old").unwrap().origin, "keys:3");
        assert!(ring.get("old").unwrap().covers("genesis"));
        assert!(!ring.get("old").unwrap().covers("public"));
        assert!(ring.get("site").unwrap().covers("public"));
        assert!(ring.requires_signature("public"), "a * key covers all");
        // The last covering key signs; a key id picks one.
        assert_eq!(ring.signing_key("genesis", None).unwrap().id, "site");
        assert_eq!(ring.signing_key("genesis", Some("old")).unwrap().id, "old");
        assert!(ring.signing_key("genesis", Some("nope")).is_err());
        let only = KeyRing::parse(&format!("a genesis {HEX16}"), "k").unwrap();
        assert!(!only.requires_signature("public"));
        assert!(only.signing_key("public", None).is_err());
        assert!(only.signing_key("public", Some("a")).is_err());
    }

    #[test]
    fn errors_name_file_and_line() {
        let cases = [
            ("a genesis", "expected KEY-ID"),
            ("a genesis hex:00 extra", "expected KEY-ID"),
            (
                "a/b genesis hex:000102030405060708090a0b0c0d0e0f",
                "not allowed",
            ),
            (&format!("{} g {HEX16}", "k".repeat(33)), "1-32"),
            ("a g 000102030405060708090a0b0c0d0e0f", "hex: or base64:"),
            ("a g hex:0001020304050607", "8 bytes"),
            ("a g hex:0g0102030405060708090a0b0c0d0e0f", "hex digits"),
            ("a g hex:00010203040506070809", "10 bytes"),
            ("a g base64:!!!!", "not base64"),
            (&format!("a g hex:{}", "00".repeat(65)), "65 bytes"),
            (
                &format!("a g {HEX16}\na h {HEX16}"),
                "already used at keys:2",
            ),
            (&format!("a {} {HEX16}", "c".repeat(65)), "community"),
        ];
        for (body, want) in cases {
            let text = format!("# first\n{body}\n");
            let e = KeyRing::parse(&text, "keys").unwrap_err().0;
            assert!(
                e.starts_with("keys:2: ") || e.starts_with("keys:3: "),
                "{e}"
            );
            assert!(e.contains(want), "{body:?}: {e}");
            assert!(!e.contains('\n'));
            assert!(!e.contains("0102030405"), "secret leaked: {e}");
        }
    }

    #[test]
    fn a_bad_base64_secret_is_not_quoted() {
        // Invalid last symbol ('R' of the secret), invalid byte ('#').
        for secret in ["QUJDREVGR0hJSktMTU5PUR==", "QUJDREVGR0hJSkt#TU5PUQ=="] {
            let e = KeyRing::parse(&format!("a g base64:{secret}\n"), "keys")
                .unwrap_err()
                .0;
            assert_eq!(e, "keys:1: secret after base64: is not base64");
        }
    }

    #[test]
    fn debug_hides_the_secret() {
        let k = Key::new("a", None, &[0xab; 16]).unwrap();
        assert!(!format!("{k:?}").contains("171"));
        assert!(Key::new("a", None, &[1; 8]).is_err());
        assert!(Key::new("a b", None, &[1; 16]).is_err());
    }

    proptest! {
        #[test]
        fn hex_round_trips(bytes in prop::collection::vec(any::<u8>(), 0..80)) {
            prop_assert_eq!(decode_hex(&encode_hex(&bytes)), Some(bytes.clone()));
            prop_assert_eq!(decode_hex(&encode_hex(&bytes).to_uppercase()), Some(bytes));
        }

        #[test]
        fn parser_never_panics(text in "[ -~\n\t]{0,200}") {
            let _ = KeyRing::parse(&text, "k");
        }
    }
}
