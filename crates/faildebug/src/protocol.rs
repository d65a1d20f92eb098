//! The client's side of failsh's debug-port protocol (docs/faildebug.md),
//! without I/O: the lines faildebug sends and how it reads the answers.
//!
//! The client sends the community, then one command per line. failsh
//! answers a command with one `OK …` or `ERR …` line, or (for `levels`,
//! `snapshot` and `help`) with a block of lines closed by a line holding
//! only `.`, in which a line that starts with `.` has another put in front.

/// The port faildebug connects to unless `-p` says otherwise. failsh has
/// no default (the debug port is off unless `-D` is given); this is the
/// port its examples use.
pub const DEFAULT_PORT: u16 = 1849;

/// The longest line failsh takes (its `debug::MAX_LINE`): a longer
/// community or command would be cut off, so it is refused here first.
pub const MAX_LINE: usize = 512;

/// A status line: `OK …` or `ERR …`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Ok(String),
    Err(String),
}

impl Status {
    /// Reads a status line (newline already removed); `None` if it is not
    /// one.
    pub fn parse(line: &str) -> Option<Status> {
        if line == "OK" {
            return Some(Status::Ok(String::new()));
        }
        if let Some(text) = line.strip_prefix("OK ") {
            return Some(Status::Ok(text.to_string()));
        }
        if line == "ERR" {
            return Some(Status::Err(String::new()));
        }
        line.strip_prefix("ERR ")
            .map(|text| Status::Err(text.to_string()))
    }
}

/// Whether an `ERR` answer to the community is a refusal of it (rather
/// than, say, `busy`).
pub fn is_denial(err: &str) -> bool {
    err == "denied" || err.starts_with("denied:") || err.starts_with("denied ")
}

/// One line of a block: `None` for the closing `.`, otherwise the line
/// with the stuffed `.` removed.
pub fn unstuff(line: &str) -> Option<&str> {
    if line == "." {
        return None;
    }
    Some(line.strip_prefix('.').unwrap_or(line))
}

/// Checks a community before it is sent: failsh reads it as one line.
pub fn check_community(c: &str) -> Result<(), String> {
    if c.is_empty() {
        return Err("the community is empty".into());
    }
    if c.len() > MAX_LINE {
        return Err(format!("the community is longer than {MAX_LINE} bytes"));
    }
    if c.chars().any(char::is_control) {
        return Err("the community contains a control character".into());
    }
    Ok(())
}

/// `FACILITY=LEVEL`, as `faildebug set` takes it. Only its shape is
/// checked here: failsh knows its facilities and says which it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub facility: String,
    pub level: String,
}

impl std::str::FromStr for Assignment {
    type Err = String;

    fn from_str(s: &str) -> Result<Assignment, String> {
        let shape = || format!("{s:?} is not FACILITY=LEVEL (e.g. engine=debug)");
        let (facility, level) = s.split_once('=').ok_or_else(shape)?;
        let word = |w: &str| !w.is_empty() && !w.chars().any(|c| c.is_whitespace() || c == '=');
        if !word(facility) || !word(level) || s.chars().any(char::is_control) {
            return Err(shape());
        }
        Ok(Assignment {
            facility: facility.to_string(),
            level: level.to_string(),
        })
    }
}

/// The command line that sets every assignment at once (failsh applies
/// all or none).
pub fn level_command(assignments: &[Assignment]) -> String {
    let mut line = String::from("level");
    for a in assignments {
        line.push(' ');
        line.push_str(&a.facility);
        line.push(' ');
        line.push_str(&a.level);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(
            Status::parse("OK failsh 0.6.0 debug port, protocol 1"),
            Some(Status::Ok("failsh 0.6.0 debug port, protocol 1".into()))
        );
        assert_eq!(
            Status::parse("ERR denied"),
            Some(Status::Err("denied".into()))
        );
        assert_eq!(Status::parse("OK"), Some(Status::Ok(String::new())));
        assert_eq!(Status::parse("engine debug"), None);
        assert_eq!(Status::parse("OKAY"), None);
        assert_eq!(Status::parse("ERRor"), None);
    }

    #[test]
    fn denials() {
        assert!(is_denial("denied"));
        assert!(is_denial("denied: no community within 5s"));
        assert!(!is_denial("busy: 8 debug clients already"));
        assert!(!is_denial("deniedly"));
    }

    #[test]
    fn blocks_are_unstuffed() {
        assert_eq!(unstuff("."), None);
        assert_eq!(unstuff("..hidden"), Some(".hidden"));
        assert_eq!(unstuff("engine debug"), Some("engine debug"));
        assert_eq!(unstuff(".."), Some("."));
    }

    #[test]
    fn assignments() {
        let a: Assignment = "engine=debug".parse().unwrap();
        assert_eq!((a.facility.as_str(), a.level.as_str()), ("engine", "debug"));
        for bad in [
            "engine",
            "=debug",
            "engine=",
            "en gine=debug",
            "a=b=c",
            "a=b\n",
        ] {
            assert!(bad.parse::<Assignment>().is_err(), "{bad:?}");
        }
        let b: Assignment = "HOOK=trace".parse().unwrap();
        assert_eq!(level_command(&[a, b]), "level engine debug HOOK trace");
    }

    #[test]
    fn communities() {
        assert_eq!(check_community("s3cret with space"), Ok(()));
        assert!(check_community("").is_err());
        assert!(check_community("a\nlevel engine debug").is_err());
        assert!(check_community(&"x".repeat(MAX_LINE + 1)).is_err());
    }
}
