//! Composes one page from `clap_mangen`'s sections and a few of our own.
//!
//! `clap_mangen`'s whole-page renderer would print the NAME line as
//! "faild - faild — the per-host …" (our `about` texts start with the
//! program's name), put `after_help` into a section called EXTRA with its
//! lines run together, and end with a VERSION section repeating the header.
//! Its SYNOPSIS lists `[-c|--community]` without the value an option takes,
//! and it writes an empty date as nothing, which shifts the `.TH` fields.
//! So the page is assembled here: OPTIONS come from `clap_mangen`; the
//! header, NAME, SYNOPSIS, DESCRIPTION, NOTES and SEE ALSO are ours.

use clap::{Arg, ArgAction, Command};
use clap_mangen::Man;
use clap_mangen::roff::{Roff, roman};

use crate::SECTION;
use crate::binaries::{BINARIES, HAND_WRITTEN};

/// The manual every page belongs to (centre of the page footer).
pub const MANUAL: &str = "Failover Manual";

/// What `roff` writes at the start of every rendered piece (it defines the
/// `Aq` string its apostrophes use); kept once, at the top of the page.
const ROFF_PREAMBLE: &str = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";

/// Renders the page of binary `name` from its clap command.
pub fn page(name: &str, mut cmd: Command) -> String {
    cmd.build();
    let man = Man::new(cmd.clone());
    let mut pieces = vec![
        title(name, &cmd),
        rendered(|w| name_section(name, &cmd).to_writer(w)),
        synopsis_section(name, &cmd),
        rendered(|w| description_section(name, &cmd).to_writer(w)),
    ];
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        pieces.push(rendered(|w| man.render_options_section(w)));
    }
    if let Some(notes) = notes_section(&cmd) {
        pieces.push(rendered(|w| notes.to_writer(w)));
    }
    pieces.push(see_also_section(name));

    let mut text = String::from(ROFF_PREAMBLE);
    for piece in &pieces {
        text.push_str(piece.strip_prefix(ROFF_PREAMBLE).unwrap_or(piece));
    }
    escape_non_ascii(&text)
}

/// The `.TH` line: title, section, an empty date (so the page only changes
/// when the code does), source and manual. Written by hand because
/// `clap_mangen` writes an empty date as nothing at all, which shifts the
/// source into the date's place.
fn title(name: &str, cmd: &Command) -> String {
    let source = match cmd.get_version() {
        Some(version) => format!("{name} {version}"),
        None => name.to_string(),
    };
    format!(
        ".TH {} {SECTION} \"\" \"{source}\" \"{MANUAL}\"\n",
        name.to_uppercase()
    )
}

/// What one section renderer writes.
fn rendered(render: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> String {
    let mut buf = Vec::new();
    render(&mut buf).expect("writing to a Vec cannot fail");
    String::from_utf8(buf).expect("roff output of UTF-8 input is UTF-8")
}

/// The command's one-line summary without the program name in front
/// ("faild — the per-host …", "failc: set and …") or a final period.
fn summary(name: &str, cmd: &Command) -> String {
    let about = cmd
        .get_about()
        .or_else(|| cmd.get_long_about())
        .map(|s| s.to_string())
        .unwrap_or_default();
    let first = about.lines().next().unwrap_or_default().trim();
    let bare = [" — ", " - ", ": "]
        .iter()
        .find_map(|sep| first.strip_prefix(name)?.strip_prefix(sep))
        .unwrap_or(first);
    bare.trim_end_matches('.').to_string()
}

/// `NAME`: `faild \- the per-host failover state registry`, the form
/// `apropos` and `whatis` index.
fn name_section(name: &str, cmd: &Command) -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["NAME"]);
    roff.text([roman(format!("{name} - {}", summary(name, cmd)))]);
    roff
}

/// `SYNOPSIS` in the classic form, `faild [-c FILE] [-a ADDR]... SERVICE...`:
/// each option with its short name (else its long one) and value name,
/// optional ones in brackets, repeatable ones followed by `...`. `--help`
/// and `--version` are left to OPTIONS. Each item is one unbreakable,
/// unhyphenated word, so a line never ends inside a bracket, and the line
/// is not justified.
fn synopsis_section(name: &str, cmd: &Command) -> String {
    let shown = cmd.get_arguments().filter(|a| {
        !a.is_hide_set() && !matches!(a.get_action(), ArgAction::Help | ArgAction::Version)
    });
    let (positionals, options): (Vec<&Arg>, Vec<&Arg>) = shown.partition(|a| a.is_positional());
    let mut line = format!("\\fB{}\\fR", escape(name));
    for arg in options.into_iter().chain(positionals) {
        let mut item = Vec::new();
        if !arg.is_positional() {
            let flag = match (arg.get_short(), arg.get_long()) {
                (Some(short), _) => format!("-{short}"),
                (None, Some(long)) => format!("--{long}"),
                (None, None) => continue,
            };
            item.push(format!("\\fB{}\\fR", escape(&flag)));
        }
        if arg.get_num_args().is_some_and(|n| n.takes_values()) {
            let value = arg
                .get_value_names()
                .map(|names| names.join(" "))
                .unwrap_or_else(|| arg.get_id().as_str().to_uppercase());
            item.push(format!("\\fI{}\\fR", escape(&value)));
        }
        let mut item = item.join("\\ ");
        if !arg.is_required_set() {
            item = format!("[{item}]");
        }
        let repeats = matches!(arg.get_action(), ArgAction::Append | ArgAction::Count)
            || arg.get_num_args().is_some_and(|n| n.max_values() > 1);
        if repeats {
            item.push_str("...");
        }
        line.push_str(" \\%");
        line.push_str(&item);
    }
    // Unjustified (.na), so the gaps between items stay single spaces.
    format!(".SH SYNOPSIS\n.na\n{line}\n.ad\n")
}

/// Text escaped for a roff text line that starts with an escape (so a
/// leading `.` needs no care): backslashes and hyphens.
fn escape(text: &str) -> String {
    text.replace('\\', "\\e").replace('-', "\\-")
}

/// `DESCRIPTION`: the long about text when there is one, else the summary
/// as a sentence; paragraphs separated by blank lines stay paragraphs.
fn description_section(name: &str, cmd: &Command) -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["DESCRIPTION"]);
    let text = match cmd.get_long_about() {
        Some(long) => long.to_string(),
        None => sentence(name, &summary(name, cmd)),
    };
    paragraphs(&mut roff, &text, |_, _| false);
    roff
}

/// The summary as a sentence: "faild is the per-host …" for a noun phrase,
/// "Set and query …" for a verb phrase.
fn sentence(name: &str, summary: &str) -> String {
    let noun = ["the ", "a ", "an "].iter().any(|a| summary.starts_with(a));
    if noun {
        return format!("{name} is {summary}.");
    }
    let mut chars = summary.chars();
    match chars.next() {
        Some(first) => format!("{}{}.", first.to_uppercase(), chars.as_str()),
        None => String::new(),
    }
}

/// `NOTES`: the `after_help` text (log facilities, signals, exit status).
///
/// It is laid out for an 80-column terminal, so its line breaks are not all
/// meant: an unindented line that starts with a capital letter after a line
/// that ended a sentence (`.` or `:`) or after an indented line begins a
/// paragraph, and other lines continue theirs. An indented line is a table
/// row, as in failc's exit statuses (`  3  faild unreachable …`): its first
/// word becomes the tag of an indented paragraph.
fn notes_section(cmd: &Command) -> Option<Roff> {
    let text = cmd
        .get_after_long_help()
        .or_else(|| cmd.get_after_help())?
        .to_string();
    let mut roff = Roff::new();
    roff.control("SH", ["NOTES"]);
    paragraphs(&mut roff, &text, |previous, line| {
        line.starts_with(|c: char| c.is_uppercase())
            && (indented(previous) || previous.ends_with(['.', ':']))
    });
    Some(roff)
}

fn indented(line: &str) -> bool {
    line.starts_with(char::is_whitespace)
}

/// Adds `text` as filled paragraphs: a blank line, or an unindented line
/// for which `starts_paragraph(previous line, line)` holds, begins a new
/// one. An indented line `  TAG  text` is set as an indented paragraph
/// tagged TAG, consecutive ones without space between them (`.PD 0`) as in
/// `--help`; an indented line without such a tag keeps a line of its own
/// (roff breaks before a line that starts with a space).
fn paragraphs(roff: &mut Roff, text: &str, starts_paragraph: impl Fn(&str, &str) -> bool) {
    let mut previous: Option<&str> = None;
    let mut blank = false;
    let mut in_rows = false;
    for line in text.lines().map(str::trim_end) {
        if line.is_empty() {
            blank = true;
            continue;
        }
        let row = indented(line)
            .then(|| line.trim_start().split_once("  "))
            .flatten();
        if let Some((tag, rest)) = row {
            if !in_rows {
                roff.control("PD", ["0"]);
                in_rows = true;
            }
            roff.control("IP", [escape(tag).as_str(), "4"]);
            roff.text([roman(rest.trim_start())]);
        } else {
            if in_rows {
                roff.control("PD", []);
                in_rows = false;
            }
            let after_row = previous.is_some_and(indented) && !indented(line);
            if let Some(previous) = previous
                && (blank || after_row || starts_paragraph(previous, line))
            {
                roff.control("PP", []);
            }
            roff.text([roman(line)]);
        }
        previous = Some(line);
        blank = false;
    }
    if in_rows {
        roff.control("PD", []);
    }
}

/// `SEE ALSO`: every other page of the set, generated or hand-written, and
/// the operator documentation in the source tree.
fn see_also_section(name: &str) -> String {
    let pages: Vec<String> = BINARIES
        .iter()
        .map(|&(other, _)| (other, SECTION))
        .chain(HAND_WRITTEN.iter().copied())
        .filter(|&(other, _)| other != name)
        .map(|(page, section)| format!("\\fB{}\\fR({section})", escape(page)))
        .collect();
    format!(
        ".SH \"SEE ALSO\"\n{}\n.PP\n{}\n",
        pages.join(", "),
        "In the source distribution: \\%docs/concepts.md (states, masters and slaves), \\%docs/operations.md (running a pair) and \\%docs/troubleshooting.md (symptoms and fixes)."
    )
}

/// Replaces every character outside ASCII with its groff escape
/// (`—` becomes `\[u2014]`): groff reads its input as Latin-1 unless a
/// preprocessor converts it, and `man` does that but `groff -man` does not.
fn escape_non_ascii(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            out.push_str(&format!("\\[u{:04X}]", u32::from(c)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roff_of(text: &str, starts: impl Fn(&str, &str) -> bool) -> String {
        let mut roff = Roff::new();
        paragraphs(&mut roff, text, starts);
        roff.to_roff()
    }

    #[test]
    fn summary_drops_the_program_name_and_the_period() {
        let cmd = |about: &'static str| Command::new("x").about(about);
        assert_eq!(
            summary("faild", &cmd("faild — the registry.")),
            "the registry"
        );
        assert_eq!(summary("failc", &cmd("failc: set states")), "set states");
        assert_eq!(summary("failsh", &cmd("the shell")), "the shell");
        assert_eq!(summary("fail", &cmd("failsh: other")), "failsh: other");
    }

    #[test]
    fn notes_keep_paragraphs_and_table_rows() {
        let cmd = Command::new("x").after_help(
            "Signals: SIGHUP reloads the\nconfig; SIGINT dumps the\nSIGTERM stops.\nExit status:\n  0  success\n  2  bad\n  odd line\nwhen several are\ngiven, the first.",
        );
        let out = notes_section(&cmd).unwrap().to_roff();
        assert_eq!(
            out,
            ".SH NOTES\nSignals: SIGHUP reloads the\nconfig; SIGINT dumps the\nSIGTERM stops.\n.PP\nExit status:\n.PD 0\n.IP 0 4\nsuccess\n.IP 2 4\nbad\n.PD\n  odd line\n.PP\nwhen several are\ngiven, the first.\n"
        );
    }

    #[test]
    fn blank_lines_separate_paragraphs() {
        assert_eq!(
            roff_of("one\ntwo\n\nthree\n", |_, _| false),
            "one\ntwo\n.PP\nthree\n"
        );
    }

    #[test]
    fn summaries_become_sentences() {
        assert_eq!(sentence("faild", "the registry"), "faild is the registry.");
        assert_eq!(sentence("failc", "set states"), "Set states.");
    }

    #[test]
    fn synopsis_shows_values_brackets_and_repeats() {
        let mut cmd = Command::new("x")
            .arg(
                Arg::new("file")
                    .short('f')
                    .value_name("FILE")
                    .required(true),
            )
            .arg(
                Arg::new("addr")
                    .short('a')
                    .value_name("ADDR")
                    .action(ArgAction::Append),
            )
            .arg(
                Arg::new("fg")
                    .short('F')
                    .long("foreground")
                    .action(ArgAction::SetTrue),
            )
            .arg(Arg::new("json").long("json").action(ArgAction::SetTrue))
            .arg(Arg::new("svc").value_name("SERVICE").num_args(1..));
        cmd.build();
        assert_eq!(
            synopsis_section("x", &cmd),
            ".SH SYNOPSIS\n.na\n\\fBx\\fR \\%\\fB\\-f\\fR\\ \\fIFILE\\fR \\%[\\fB\\-a\\fR\\ \\fIADDR\\fR]... \\%[\\fB\\-F\\fR] \\%[\\fB\\-\\-json\\fR] \\%[\\fISERVICE\\fR]...\n.ad\n"
        );
    }

    #[test]
    fn title_has_an_empty_date() {
        let cmd = Command::new("faild").version("1.2.3");
        assert_eq!(
            title("faild", &cmd),
            ".TH FAILD 1 \"\" \"faild 1.2.3\" \"Failover Manual\"\n"
        );
    }

    #[test]
    fn non_ascii_becomes_groff_escapes() {
        assert_eq!(escape_non_ascii("a — b ä"), "a \\[u2014] b \\[u00E4]");
    }

    #[test]
    fn the_preamble_matches_what_roff_writes() {
        let mut buf = Vec::new();
        Roff::new().to_writer(&mut buf).unwrap();
        assert_eq!(String::from_utf8(buf).unwrap(), ROFF_PREAMBLE);
    }
}
