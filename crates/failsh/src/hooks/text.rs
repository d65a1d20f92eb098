//! Bounded copies of Lua strings into Rust.
//!
//! A Lua string costs the state's memory once, however often it is
//! referenced, and the state's memory is limited; a Rust copy is made per
//! reference and is not. Copying every reference in full would let a hook
//! ask Rust for far more than the Lua memory limit: `log(table.unpack(t))`,
//! with `t` holding 10,000 references to one 1 MiB string, would copy 10 GB
//! and abort failsh. So no Lua string is copied into Rust in full unless its
//! length was checked first; text for messages goes through [`excerpt`].

/// What marks a text as cut.
pub(crate) const CUT: &str = "…";

/// `s` cut to at most `max` bytes at a character boundary, marked with
/// [`CUT`].
pub(crate) fn shorten(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let end = (0..=max)
        .rev()
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(0);
    format!("{}{CUT}", &s[..end])
}

/// At most `max` bytes of a Lua string as text (invalid UTF-8 replaced),
/// marked with [`CUT`] if cut; copies at most `max + 1` bytes of it.
pub(crate) fn excerpt(s: &mlua::LuaString, max: usize) -> String {
    let bytes = s.as_bytes();
    // One byte more than fits: decoding never shortens, so a longer string
    // stays longer than `max` and `shorten` marks it.
    let head = &bytes[..bytes.len().min(max.saturating_add(1))];
    shorten(&String::from_utf8_lossy(head), max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorten_respects_char_boundaries() {
        assert_eq!(shorten("abc", 5), "abc");
        assert_eq!(shorten("abcdef", 3), "abc…");
        assert_eq!(shorten("aé", 2), "a…");
    }

    #[test]
    fn excerpt_copies_only_the_head() {
        let lua = mlua::Lua::new();
        let s = |b: &[u8]| lua.create_string(b).unwrap();
        assert_eq!(excerpt(&s(b"abc"), 3), "abc");
        assert_eq!(excerpt(&s(b"abcd"), 3), "abc…");
        assert_eq!(excerpt(&s(b"ab\xff"), 3), "ab…");
        assert_eq!(excerpt(&s(b"a\xffb"), 10), "a\u{fffd}b");
        assert_eq!(excerpt(&s(&[b'x'; 1 << 20]), 4), "xxxx…");
    }
}
