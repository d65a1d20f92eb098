//! The CGI mode: started as `failmon.cgi` by a web server, failmon answers
//! with a CGI header and the HTML page.
//!
//! The query string comes from whoever can reach the web server, so it is
//! trusted no further than this: `host` must be an IP address and `port` a
//! port number, or the default is used. A host *name* is refused (it would
//! let a visitor make the server resolve and connect to names of their
//! choosing), and the command line is ignored: a server may pass a query
//! without `=` as arguments (the old ISINDEX convention).

use std::net::IpAddr;

use failover::monitor::DEFAULT_MONITOR_PORT;

use crate::cli::DEFAULT_TARGET;
use crate::net::Target;

/// The header of a page; a blank line ends it.
pub const HEADER: &str = "Content-Type: text/html; charset=utf-8\r\n\r\n";
/// The header of the error page: the browser (and the server's log) learn
/// that failsh is unreachable.
pub const ERROR_HEADER: &str =
    "Status: 502 Bad Gateway\r\nContent-Type: text/html; charset=utf-8\r\n\r\n";
/// How often the browser reloads the page, seconds.
pub const REFRESH_SECS: u32 = 5;

/// The target a query string (`host=...&port=...`) asks for, every part
/// that is missing or not strictly valid replaced by the default.
pub fn target(query: Option<&str>) -> Target {
    let mut host: IpAddr = DEFAULT_TARGET.parse().expect("an address");
    let mut port = DEFAULT_MONITOR_PORT;
    for pair in query.unwrap_or("").split('&') {
        let Some((key, value)) = pair.split_once('=') else {
            continue;
        };
        let Some(value) = decode(value) else {
            continue;
        };
        match key {
            "host" => {
                if let Ok(ip) = value.parse::<IpAddr>() {
                    host = ip;
                }
            }
            "port" => {
                // Digits only: u16's parser would also take a leading '+'.
                if value.bytes().all(|b| b.is_ascii_digit())
                    && let Ok(p) = value.parse::<u16>()
                    && p > 0
                {
                    port = p;
                }
            }
            _ => {}
        }
    }
    Target::new(&host.to_string(), port)
}

/// Percent-decoding of one query value (`+` is a blank); `None` for a bad
/// escape or a result that is not UTF-8.
fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(q: &str) -> String {
        target(Some(q)).to_string()
    }

    #[test]
    fn valid_addresses_and_ports_are_taken() {
        assert_eq!(t("host=127.0.0.21&port=1900"), "127.0.0.21:1900");
        assert_eq!(t("port=1900&host=127.0.0.21"), "127.0.0.21:1900");
        assert_eq!(t("host=%3A%3A1"), "[::1]:1848");
        assert_eq!(t("host=::1&x=y"), "[::1]:1848");
        assert_eq!(target(None).to_string(), "127.0.0.1:1848");
        assert_eq!(t(""), "127.0.0.1:1848");
    }

    #[test]
    fn anything_else_falls_back_to_the_default() {
        for q in [
            "host=example.com",
            "host=<script>",
            "host=127.0.0.1%00",
            "host=127.0.0.1+",
            "host=%zz",
            "host=%",
            "host=10.0.0.1:22",
            "port=0",
            "port=65536",
            "port=+1900",
            "port=-1",
            "port=1900x",
            "port=",
            "127.0.0.5",
        ] {
            assert_eq!(t(q), "127.0.0.1:1848", "{q}");
        }
        // One bad part does not spoil the other.
        assert_eq!(t("host=127.0.0.9&port=x"), "127.0.0.9:1848");
        assert_eq!(t("host=x&port=1900"), "127.0.0.1:1900");
    }

    #[test]
    fn decoding() {
        assert_eq!(decode("a+b%20c%2B").as_deref(), Some("a b c+"));
        assert_eq!(decode("%ff"), None);
        assert_eq!(decode("%4"), None);
    }
}
