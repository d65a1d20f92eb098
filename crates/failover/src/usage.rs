//! Usage errors of the command-line clients as one line: scripts that
//! capture stderr see one line per problem, as with every other error.

/// The first paragraph of a rendered argument-parser error (clap's text,
/// without its usage block and tip), joined into one line, with a pointer
/// to `PROGRAM --help`.
pub fn one_line(rendered: &str, program: &str) -> String {
    let first_paragraph: Vec<&str> = rendered
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let joined = first_paragraph.join(" ");
    let message = joined.strip_prefix("error: ").unwrap_or(&joined);
    let message = if message.is_empty() {
        "bad arguments"
    } else {
        message
    };
    format!("{message} (see '{program} --help')")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_paragraph_only() {
        let text =
            "error: unexpected argument '-x' found\n  tip: use '-- -x'\n\nUsage: failc [OPTIONS]\n";
        assert_eq!(
            one_line(text, "failc"),
            "unexpected argument '-x' found tip: use '-- -x' (see 'failc --help')"
        );
        assert_eq!(
            one_line("", "failmon"),
            "bad arguments (see 'failmon --help')"
        );
    }
}
