//! The state file's format: rendering and parsing, no I/O.
//!
//! A human-readable TOML file that faild rewrites (atomically, in the binary)
//! before it acknowledges any change:
//!
//! ```toml
//! # faild state file: rewritten by faild at every change; edit only while faild is stopped.
//! format = 1
//! boot_id = "fbddb049-676a-4dd2-9c85-f78ceaa6f576"
//! written = "2026-11-22T01:37:52.123Z"
//!
//! [services."vip"]
//! state = "UP"
//! backup = "macbeth"
//! since = "2026-11-22T01:30:00.000Z"
//! changes = 7
//!
//! [retired]
//! "old-proxy" = 12
//! ```

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::time::SystemTime;

use serde::Deserialize;

use crate::names::check_name;
use crate::proto::parse_time;
use crate::record::MAX_CHANGES;
use crate::registry::{Mutation, Registry};
use crate::{Record, State};

/// Version of the file layout.
pub const FORMAT: u32 = 1;

/// A state file that can't be used; the binary prefixes the file name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StateFileError(pub String);

/// What a state file held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub registry: Registry,
    /// Boot id of the host when the file was written; `None` when missing.
    pub boot_id: Option<String>,
}

impl Loaded {
    /// The boot-id rule: after a reboot (or when the file does not say which
    /// boot wrote it) no service can still be running, so every service
    /// recorded UP becomes FAIL. Returns the names changed.
    pub fn settle_boot(&mut self, current_boot: &str, now: SystemTime) -> Vec<String> {
        if self.boot_id.as_deref() == Some(current_boot) {
            return Vec::new();
        }
        self.registry.fail_up_services(now)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileV1 {
    format: u32,
    boot_id: Option<String>,
    #[allow(dead_code)] // informational only; parsed so that it is type-checked
    written: Option<String>,
    #[serde(default)]
    services: BTreeMap<String, RecordV1>,
    #[serde(default)]
    retired: BTreeMap<String, u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordV1 {
    state: String,
    backup: Option<String>,
    since: String,
    changes: u64,
    #[serde(default)]
    by_failsh: bool,
    request: Option<String>,
}

/// Parses a state file.
pub fn parse(text: &str) -> Result<Loaded, StateFileError> {
    let file: FileV1 = toml::from_str(text).map_err(|e| {
        StateFileError(
            e.to_string()
                .lines()
                .next()
                .unwrap_or("invalid TOML")
                .to_string(),
        )
    })?;
    if file.format != FORMAT {
        return Err(StateFileError(format!(
            "format {} is not supported (this faild reads format {FORMAT})",
            file.format
        )));
    }
    let mut records = BTreeMap::new();
    for (name, r) in file.services {
        let err = |m: String| StateFileError(format!("service {name:?}: {m}"));
        check_name("service name", &name).map_err(err)?;
        if let Some(b) = &r.backup {
            check_name("backup host", b).map_err(err)?;
        }
        check_counter(r.changes).map_err(err)?;
        let parse_state = |s: &str| s.parse::<State>().map_err(|e| err(e.to_string()));
        let record = Record {
            state: parse_state(&r.state)?,
            backup: r.backup,
            since: parse_time(&r.since).map_err(err)?,
            changes: r.changes,
            by_failsh: r.by_failsh,
            request: r.request.as_deref().map(parse_state).transpose()?,
        };
        records.insert(name, record);
    }
    for (name, changes) in &file.retired {
        check_name("retired service name", name).map_err(StateFileError)?;
        check_counter(*changes)
            .map_err(|m| StateFileError(format!("retired service {name:?}: {m}")))?;
    }
    Ok(Loaded {
        registry: Registry::from_parts(records, file.retired),
        boot_id: file.boot_id,
    })
}

/// A change counter must leave room to count on: faild never writes one
/// above [`MAX_CHANGES`], so a larger one was edited in (and would wrap).
fn check_counter(changes: u64) -> Result<(), String> {
    if changes > MAX_CHANGES {
        return Err(format!(
            "changes {changes} is above the largest counter, {MAX_CHANGES}"
        ));
    }
    Ok(())
}

/// Renders the registry as it will be once `pending` is applied, so the file
/// can be made durable before the change becomes visible to anyone.
pub fn render(
    registry: &Registry,
    pending: Option<&Mutation>,
    boot_id: &str,
    now: SystemTime,
) -> String {
    let mut out = String::with_capacity(64 + registry.len() * 110);
    render_into(&mut out, registry, pending, boot_id, now)
        .expect("writing to a String cannot fail");
    out
}

/// [`render`] into any writer, so faild can stream a large registry straight
/// to the file instead of building it in memory first.
pub fn render_into<W: fmt::Write>(
    out: &mut W,
    registry: &Registry,
    pending: Option<&Mutation>,
    boot_id: &str,
    now: SystemTime,
) -> fmt::Result {
    out.write_str(
        "# faild state file: rewritten by faild at every change; edit only while faild is stopped.\n",
    )?;
    writeln!(out, "format = {FORMAT}")?;
    writeln!(out, "boot_id = {}", Quoted(boot_id))?;
    writeln!(
        out,
        "written = \"{}\"",
        humantime::format_rfc3339_millis(now)
    )?;

    let (name, new_record, retire) = match pending {
        Some(Mutation::Set { name, record, .. }) => (Some(name.as_str()), Some(record), None),
        Some(Mutation::Delete { name, previous }) => {
            (Some(name.as_str()), None, Some(previous.changes))
        }
        None => (None, None, None),
    };
    for (n, r) in overlaid(registry.records(), name, new_record) {
        write!(out, "\n[services.{}]\nstate = \"{}\"\n", Quoted(n), r.state)?;
        if let Some(b) = &r.backup {
            writeln!(out, "backup = {}", Quoted(b))?;
        }
        writeln!(
            out,
            "since = \"{}\"\nchanges = {}",
            humantime::format_rfc3339_millis(r.since),
            r.changes
        )?;
        if r.by_failsh {
            out.write_str("by_failsh = true\n")?;
        }
        if let Some(req) = r.request {
            writeln!(out, "request = \"{req}\"")?;
        }
    }
    // A SET of a retired name brings it back; a delete retires it.
    let mut retired = overlaid(registry.retired(), name, retire.as_ref()).peekable();
    if retired.peek().is_some() {
        out.write_str("\n[retired]\n")?;
        for (n, c) in retired {
            writeln!(out, "{} = {c}", Quoted(n))?;
        }
    }
    Ok(())
}

/// The entries of a sorted map with the entry `name` replaced by `value`
/// (or removed when `value` is `None`), still in order.
fn overlaid<'a, V: 'a>(
    entries: impl Iterator<Item = (&'a String, &'a V)>,
    name: Option<&'a str>,
    value: Option<&'a V>,
) -> impl Iterator<Item = (&'a str, &'a V)> {
    let mut pending = name.zip(value);
    let mut entries = entries.map(|(n, v)| (n.as_str(), v)).peekable();
    std::iter::from_fn(move || {
        loop {
            let next = entries.peek().copied();
            match (next, pending) {
                (Some((n, _)), Some((pn, pv))) if pn <= n => {
                    pending = None;
                    if pn == n {
                        entries.next();
                    }
                    return Some((pn, pv));
                }
                (Some((n, v)), _) => {
                    entries.next();
                    if Some(n) == name {
                        continue; // removed by the pending change
                    }
                    return Some((n, v));
                }
                (None, p) => {
                    pending = None;
                    return p;
                }
            }
        }
    })
}

/// Displays as a TOML basic string.
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                c if c.is_control() => write!(f, "\\u{:04X}", c as u32)?,
                c => f.write_char(c)?,
            }
        }
        f.write_char('"')
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::community::Rules;
    use crate::proto::Request;
    use crate::registry::Outcome;
    use proptest::prelude::*;
    use std::time::{Duration, UNIX_EPOCH};

    const BOOT: &str = "11111111-2222-3333-4444-555555555555";

    fn t(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + s)
    }

    fn plan(reg: &Registry, line: &str, now: SystemTime) -> Option<Mutation> {
        let rules = Rules::parse("* w RW", "c").unwrap();
        let req = Request::parse(line.as_bytes()).unwrap();
        match reg.execute(&req, &rules.grants("w", "127.0.0.1".parse().unwrap()), now) {
            Outcome::Change { mutation, .. } => Some(mutation),
            Outcome::Reply(_) => None,
        }
    }

    /// Rendering with a pending change must equal applying it and rendering.
    fn check_overlay(reg: &Registry, m: &Mutation) {
        let mut applied = reg.clone();
        applied.apply(m);
        let with = render(reg, Some(m), BOOT, t(0));
        assert_eq!(with, render(&applied, None, BOOT, t(0)));
        assert_eq!(parse(&with).unwrap().registry, applied);
    }

    proptest! {
        #[test]
        fn render_parse_round_trip_with_any_pending_change(
            ops in prop::collection::vec((0usize..6, 0usize..4, prop::option::of(0usize..3), 0usize..3), 0..30)
        ) {
            let names = ["a", "b", "c", "vip", "10.0.0.1", "z/y"];
            let origins = ["", " by=failsh", " force=yes"];
            let mut reg = Registry::new();
            for (i, (n, s, b, o)) in ops.into_iter().enumerate() {
                let line = match s {
                    3 => format!("FAIL/1 1 w DEL {}", names[n]),
                    s => format!("FAIL/1 1 w SET {} {} {}{}", names[n], State::ALL[s],
                                 b.map(|b| ["h1", "h2", "h3"][b]).unwrap_or(""), origins[o]),
                };
                if let Some(m) = plan(&reg, &line, t(i as u64 * 1000)) {
                    check_overlay(&reg, &m);
                    reg.apply(&m);
                }
            }
            let text = render(&reg, None, BOOT, t(1));
            let loaded = parse(&text).unwrap();
            prop_assert_eq!(loaded.registry, reg);
            prop_assert_eq!(loaded.boot_id.as_deref(), Some(BOOT));
        }
    }

    #[test]
    fn boot_rule() {
        let mut reg = Registry::new();
        for line in ["FAIL/1 1 w SET up UP", "FAIL/1 1 w SET rec RECOVER"] {
            let m = plan(&reg, line, t(0)).unwrap();
            reg.apply(&m);
        }
        let text = render(&reg, None, BOOT, t(1));

        let mut same = parse(&text).unwrap();
        assert!(same.settle_boot(BOOT, t(2)).is_empty());
        assert_eq!(same.registry.get("up").unwrap().state, State::Up);

        let mut other = parse(&text).unwrap();
        assert_eq!(
            other.settle_boot("another-boot", t(2)),
            vec!["up".to_string()]
        );
        assert_eq!(other.registry.get("up").unwrap().state, State::Fail);
        assert_eq!(other.registry.get("rec").unwrap().state, State::Recover);

        let mut unknown = parse(&text.replace(&format!("boot_id = \"{BOOT}\"\n"), "")).unwrap();
        assert_eq!(unknown.boot_id, None);
        assert_eq!(unknown.settle_boot(BOOT, t(2)).len(), 1);
    }

    #[test]
    fn bad_files_are_errors() {
        let good = "format = 1\n[services.vip]\nstate = \"UP\"\nsince = \"2026-01-01T00:00:00.000Z\"\nchanges = 1\n";
        assert!(parse(good).is_ok());
        for bad in [
            "",
            "garbage",
            "format = 2",
            &good.replace("UP", "SIDEWAYS"),
            &good.replace("2026-01-01T00:00:00.000Z", "yesterday"),
            &good.replace("changes = 1", "changes = -1"),
            &good.replace("[services.vip]", "[services.\"a b\"]"),
            &good.replace("changes = 1", "changes = 1\ncolour = \"red\""),
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    /// Found writing the `statefile` fuzz target's property: a counter of u64::MAX
    /// in a hand-edited file made the next SET overflow (a panic in a
    /// debug build, a counter wrapping to 0 in release).
    #[test]
    fn counters_leave_room_to_count() {
        let file = |changes: u64| {
            format!(
                "format = 1\n[services.vip]\nstate = \"UP\"\nsince = \"2026-01-01T00:00:00.000Z\"\nchanges = {changes}\n\n[retired]\nold = {changes}\n"
            )
        };
        for too_big in [MAX_CHANGES + 1, u64::MAX] {
            let e = parse(&file(too_big)).unwrap_err().0;
            assert!(e.contains("above the largest counter"), "{e}");
        }
        let mut reg = parse(&file(MAX_CHANGES)).unwrap().registry;
        for line in [
            "FAIL/1 1 w SET vip FAIL",
            "FAIL/1 1 w SET old UP",
            "FAIL/1 1 w DEL vip",
            "FAIL/1 1 w SET vip UP",
        ] {
            let m = plan(&reg, line, t(1)).unwrap();
            let text = render(&reg, Some(&m), BOOT, t(1));
            reg.apply(&m);
            assert_eq!(parse(&text).unwrap().registry, reg, "{line}");
        }
        assert_eq!(reg.get("vip").unwrap().changes, MAX_CHANGES);
        reg.fail_up_services(t(2));
        assert_eq!(reg.get("old").unwrap().changes, MAX_CHANGES);
    }

    #[test]
    fn quoting() {
        assert_eq!(Quoted("a\"b\\c\n").to_string(), "\"a\\\"b\\\\c\\u000A\"");
    }
}
