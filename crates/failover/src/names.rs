//! What a service name, a host name and a community string may contain.
//!
//! The protocol is whitespace-separated text and the state file is TOML, so
//! names are restricted to a conservative visible-ASCII set. This also keeps
//! audit log lines and `failc` output unambiguous.

/// Longest service or host name accepted.
pub const MAX_NAME: usize = 128;
/// Longest community string accepted.
pub const MAX_COMMUNITY: usize = 64;

fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '@' | '+' | '/')
}

/// Checks a service or host name: 1–128 of `A-Z a-z 0-9 . _ - : @ + /`, not
/// starting with `-` (so it can't be taken for an option, and `-` alone can
/// mean "no backup host").
pub fn check_name(what: &str, s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err(format!("empty {what}"));
    }
    if s.len() > MAX_NAME {
        return Err(format!("{what} longer than {MAX_NAME} bytes"));
    }
    if s.starts_with('-') {
        return Err(format!("{what} {s:?} starts with '-'"));
    }
    match s.chars().find(|c| !name_char(*c)) {
        Some(c) => Err(format!("{what} {s:?} contains {c:?}")),
        None => Ok(()),
    }
}

/// Checks a community string: 1–64 visible ASCII characters.
pub fn check_community(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > MAX_COMMUNITY {
        return Err(format!("community must be 1 to {MAX_COMMUNITY} bytes"));
    }
    if !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("community contains a space or a non-ASCII character".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["vip", "192.168.1.10", "fe80::1", "www-proxy_2", "a/b@c+d"] {
            assert_eq!(check_name("service", ok), Ok(()), "{ok}");
        }
        for bad in ["", "-", "-x", "a b", "ä", "a\"b", "a\\b", &"x".repeat(129)] {
            assert!(check_name("service", bad).is_err(), "{bad}");
        }
        assert!(check_community("gen#sis!").is_ok());
        assert!(check_community("a b").is_err());
        assert!(check_community("").is_err());
    }
}
