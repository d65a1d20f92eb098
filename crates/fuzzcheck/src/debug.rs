//! failsh's debug port (faildebug's protocol): command lines failsh parses
//! from any client that knows the community, and the multi-line answers
//! faildebug reads back.

use faildebug::protocol::{Assignment, level_command, unstuff};
use failsh::debug::{Command, block, parse};

use crate::assert_one_line;

/// A command failsh accepts, written the way faildebug writes it, parses
/// to the same command; a refusal is one line (it is sent as `ERR …`).
/// And any text failsh sends as a block reaches faildebug line for line
/// (but for a CR at the end of a line).
pub fn line(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let first = text.lines().next().unwrap_or("");
    match parse(first) {
        Ok(command) => {
            let canonical = match &command {
                Command::Level(changes) => {
                    let assignments: Vec<Assignment> = changes
                        .iter()
                        .map(|(facility, level)| {
                            format!("{}={}", facility.target(), level.to_string().to_lowercase())
                                .parse()
                                .expect("a facility and a level make an assignment")
                        })
                        .collect();
                    level_command(&assignments)
                }
                Command::Levels => "levels".into(),
                Command::Log => "log".into(),
                Command::Snapshot => "snapshot".into(),
                Command::Help => "help".into(),
                Command::Quit => "quit".into(),
            };
            assert_eq!(parse(&canonical), Ok(command), "{canonical:?}");
        }
        Err(e) => assert_one_line("debug-port error", &e),
    }

    let sent = block(text);
    let mut lines = sent.lines();
    let received: Vec<&str> = lines.by_ref().map_while(unstuff).collect();
    // On the wire "\r\n" ends a line too, so a line's own last CR is
    // taken for part of its ending (failsh's text never ends a line so).
    let expected: Vec<&str> = text
        .lines()
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    assert_eq!(received, expected, "{sent:?}");
    assert_eq!(lines.next(), None, "lines after the closing dot");
}
