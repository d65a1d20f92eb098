//! What the command-line clients share about their arguments: usage
//! errors as one line (scripts that capture stderr see one line per
//! problem), host arguments, and `host:port` as they print it.

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

/// A host given on the command line: `[::1]` accepted as well as `::1`, as
/// people copy addresses from URLs; blanks and control characters refused.
pub fn host_arg(s: &str) -> Result<String, String> {
    let bare = s
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(s);
    if bare.is_empty() || bare.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{s:?} is not a host name or address"));
    }
    Ok(bare.to_string())
}

/// `host:port`, with an IPv6 address in brackets.
pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
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
        assert_eq!(host_arg("[::1]").unwrap(), "::1");
        assert!(host_arg("a b").is_err() && host_arg("[]").is_err());
        assert_eq!(host_port("::1", 1848), "[::1]:1848");
        assert_eq!(host_port("127.0.0.1", 1848), "127.0.0.1:1848");
        assert_eq!(
            one_line("", "failmon"),
            "bad arguments (see 'failmon --help')"
        );
    }
}
