//! Printing records: aligned text for people, JSON for programs.

use std::io::{self, Write};

use failover::Record;
use failover::proto::format_time;
use serde::Serialize;

/// A service's name and what faild said about it.
pub type Entry = (String, Record);

/// One line per service, `SERVICE STATE BACKUP SINCE`, in aligned columns;
/// `-` stands for no backup host, as on the wire.
pub fn write_text(out: &mut impl Write, entries: &[Entry]) -> io::Result<()> {
    let rows: Vec<[&str; 3]> = entries
        .iter()
        .map(|(service, r)| {
            [
                service.as_str(),
                r.state.as_str(),
                r.backup.as_deref().unwrap_or("-"),
            ]
        })
        .collect();
    let mut widths = [0; 3];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    for (row, (_, r)) in rows.iter().zip(entries) {
        let [service, state, backup] = row;
        let [ws, wt, wb] = widths;
        writeln!(
            out,
            "{service:ws$}  {state:wt$}  {backup:wb$}  {}",
            format_time(r.since)
        )?;
    }
    Ok(())
}

#[derive(Serialize)]
struct JsonRecord<'a> {
    service: &'a str,
    state: &'static str,
    backup: Option<&'a str>,
    since: String,
    changes: u64,
}

/// A JSON array with one object per service, always (`[]` when none).
pub fn write_json(out: &mut impl Write, entries: &[Entry]) -> io::Result<()> {
    let records: Vec<JsonRecord> = entries
        .iter()
        .map(|(service, r)| JsonRecord {
            service,
            state: r.state.as_str(),
            backup: r.backup.as_deref(),
            since: format_time(r.since),
            changes: r.changes,
        })
        .collect();
    serde_json::to_writer_pretty(&mut *out, &records)?;
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use failover::State;
    use std::time::{Duration, UNIX_EPOCH};

    fn entry(service: &str, state: State, backup: Option<&str>, secs: u64, changes: u64) -> Entry {
        (
            service.into(),
            Record::new(
                state,
                backup.map(String::from),
                UNIX_EPOCH + Duration::from_secs(secs),
                changes,
            ),
        )
    }

    fn sample() -> Vec<Entry> {
        vec![
            entry("vip", State::Up, None, 1_767_225_600, 1),
            entry(
                "www-proxy",
                State::Recover,
                Some("macbeth"),
                1_767_225_661,
                7,
            ),
            entry("db", State::Fail, Some("lb"), 1_767_225_722, 12),
        ]
    }

    fn text(entries: &[Entry]) -> String {
        let mut out = Vec::new();
        write_text(&mut out, entries).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn text_columns_line_up() {
        assert_eq!(
            text(&sample()),
            "\
vip        UP       -        2026-01-01T00:00:00.000Z
www-proxy  RECOVER  macbeth  2026-01-01T00:01:01.000Z
db         FAIL     lb       2026-01-01T00:02:02.000Z
"
        );
        assert_eq!(
            text(&sample()[..1]),
            "vip  UP  -  2026-01-01T00:00:00.000Z\n"
        );
        assert_eq!(text(&[]), "");
    }

    #[test]
    fn json_shape() {
        let mut out = Vec::new();
        write_json(&mut out, &sample()[..2]).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            value,
            serde_json::json!([
                {"service": "vip", "state": "UP", "backup": null,
                 "since": "2026-01-01T00:00:00.000Z", "changes": 1},
                {"service": "www-proxy", "state": "RECOVER", "backup": "macbeth",
                 "since": "2026-01-01T00:01:01.000Z", "changes": 7},
            ])
        );
        assert!(out.ends_with(b"]\n"));

        let mut out = Vec::new();
        write_json(&mut out, &[]).unwrap();
        assert_eq!(out, b"[]\n");
    }
}
