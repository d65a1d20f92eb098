//! Carries out one command line: connect, log in, ask, print.

use std::io::Write;

use crate::cli::{Cli, Command};
use crate::client::{Connection, target};
use crate::error::Error;
use crate::protocol::level_command;

/// Runs `cli`'s command against failsh, printing its answer to `out`.
pub fn run(cli: &Cli, out: &mut dyn Write) -> Result<(), Error> {
    let mut c = Connection::open(&cli.target, cli.port, &cli.community, cli.timeout)?;
    let text = match &cli.command {
        Command::Levels => levels(&c.block("levels")?),
        Command::Set { assignments } => format!("{}\n", c.command(&level_command(assignments))?),
        Command::Snapshot => c
            .block("snapshot")?
            .iter()
            .map(|l| format!("{l}\n"))
            .collect(),
        Command::Log => {
            c.start_log()?;
            // On stderr, so that stdout holds nothing but the log.
            eprintln!(
                "faildebug: following the log of {}; Ctrl-C to stop",
                target(&cli.target, cli.port)
            );
            return c.follow(out);
        }
    };
    c.quit();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|source| Error::Io {
            target: target(&cli.target, cli.port),
            what: "writing the answer out",
            source,
        })
}

/// `FACILITY LEVEL` lines, the levels lined up.
fn levels(lines: &[String]) -> String {
    let pairs: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| l.split_once(' ').unwrap_or((l.as_str(), "")))
        .collect();
    let width = pairs.iter().map(|(f, _)| f.len()).max().unwrap_or(0);
    pairs
        .iter()
        .map(|(f, l)| format!("{f:<width$}  {l}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_line_up() {
        let lines = ["engine debug".to_string(), "monitor info".to_string()];
        assert_eq!(levels(&lines), "engine   debug\nmonitor  info\n");
        assert_eq!(levels(&[]), "");
    }
}
