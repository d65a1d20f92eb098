//! A connection to failsh's debug port: connect, log in with the
//! community, send commands and read their answers (blocking, each read
//! bounded by the timeout, except while following the log).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::error::Error;
use crate::protocol::{Status, is_denial, unstuff};

/// Longest answer line read; a longer one is cut there (failsh's own lines
/// are far shorter; this only bounds what a stranger on the port can send).
const MAX_ANSWER_LINE: u64 = 1 << 20;

/// A logged-in connection.
#[derive(Debug)]
pub struct Connection {
    /// `host:port`, for messages.
    target: String,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

/// `host:port`, with brackets around an IPv6 address.
pub fn target(host: &str, port: u16) -> String {
    failover::usage::host_port(host, port)
}

impl Connection {
    /// Connects to `host:port` (each address the name resolves to in turn,
    /// each within `timeout`) and sends the community.
    pub fn open(
        host: &str,
        port: u16,
        community: &str,
        timeout: Duration,
    ) -> Result<Connection, Error> {
        let target = target(host, port);
        let unreachable = |reason: String| Error::Unreachable {
            target: target.clone(),
            reason,
        };
        let addrs: Vec<_> = (host, port)
            .to_socket_addrs()
            .map_err(|e| unreachable(e.to_string()))?
            .collect();
        let mut last = io::Error::new(io::ErrorKind::NotFound, "the name has no address");
        let mut stream = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let stream = stream.ok_or_else(|| unreachable(last.to_string()))?;
        let io = |source| Error::Io {
            target: target.clone(),
            what: "setting up the connection",
            source,
        };
        stream.set_read_timeout(Some(timeout)).map_err(io)?;
        stream.set_write_timeout(Some(timeout)).map_err(io)?;
        let writer = stream.try_clone().map_err(io)?;
        let mut c = Connection {
            target,
            reader: BufReader::new(stream),
            writer,
        };
        c.send(community)?;
        match c.status()? {
            Status::Ok(_) => Ok(c),
            Status::Err(message) if is_denial(&message) => Err(Error::Denied {
                target: c.target,
                message,
            }),
            Status::Err(message) => Err(Error::Server {
                target: c.target,
                message,
            }),
        }
    }

    /// Sends a command that is answered with one `OK` line; returns its
    /// text. An `ERR` answer is [`Error::Refused`] with failsh's message.
    pub fn command(&mut self, line: &str) -> Result<String, Error> {
        self.send(line)?;
        match self.status()? {
            Status::Ok(text) => Ok(text),
            Status::Err(message) => Err(Error::Refused(message)),
        }
    }

    /// Sends a command that is answered with a block; returns its lines.
    pub fn block(&mut self, line: &str) -> Result<Vec<String>, Error> {
        self.send(line)?;
        let mut lines = Vec::new();
        loop {
            let line = self.line()?;
            if lines.is_empty()
                && let Some(Status::Err(message)) = Status::parse(&line)
            {
                return Err(Error::Refused(message));
            }
            match unstuff(&line) {
                Some(text) => lines.push(text.to_string()),
                None => return Ok(lines),
            }
        }
    }

    /// Asks failsh to stream its log: [`Connection::follow`] reads it.
    pub fn start_log(&mut self) -> Result<(), Error> {
        self.command("log").map(drop)
    }

    /// Follows the log started by [`Connection::start_log`], writing each
    /// line to `out`, until failsh closes the connection (an error) or
    /// `out` is closed (e.g. `| head`: done).
    pub fn follow(&mut self, out: &mut dyn Write) -> Result<(), Error> {
        // The log may be quiet for long: no timeout from here on.
        self.reader
            .get_ref()
            .set_read_timeout(None)
            .map_err(|source| self.io("following the log", source))?;
        loop {
            let line = self.line()?;
            let text = unstuff(&line).unwrap_or("");
            match writeln!(out, "{text}").and_then(|()| out.flush()) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
                Err(e) => return Err(self.io("writing the log out", e)),
            }
        }
    }

    /// Says goodbye; errors are of no interest any more.
    pub fn quit(mut self) {
        let _ = self.send("quit");
    }

    fn send(&mut self, line: &str) -> Result<(), Error> {
        let mut text = String::with_capacity(line.len() + 1);
        text.push_str(line);
        text.push('\n');
        self.writer
            .write_all(text.as_bytes())
            .map_err(|source| self.io("sending", source))
    }

    /// One answer line, without its newline.
    fn line(&mut self) -> Result<String, Error> {
        let mut bytes = Vec::new();
        let n = (&mut self.reader)
            .take(MAX_ANSWER_LINE)
            .read_until(b'\n', &mut bytes)
            .map_err(|source| {
                let what = if matches!(
                    source.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) {
                    "no answer in time"
                } else {
                    "reading the answer"
                };
                self.io(what, source)
            })?;
        if n == 0 {
            return Err(Error::Closed {
                target: self.target.clone(),
            });
        }
        let text = String::from_utf8_lossy(&bytes);
        Ok(text.trim_end_matches(['\n', '\r']).to_string())
    }

    fn status(&mut self) -> Result<Status, Error> {
        let line = self.line()?;
        Status::parse(&line).ok_or_else(|| Error::Protocol {
            target: self.target.clone(),
            line,
        })
    }

    fn io(&self, what: &'static str, source: io::Error) -> Error {
        Error::Io {
            target: self.target.clone(),
            what,
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    /// A fake failsh: for each `(line, answer)`, reads `line` and writes
    /// `answer`.
    fn fake(script: &'static [(&'static str, &'static str)]) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(&s);
            for (expect, answer) in script {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                assert_eq!(line.trim_end(), *expect);
                (&s).write_all(answer.as_bytes()).unwrap();
            }
        });
        port
    }

    const T: Duration = Duration::from_secs(5);

    #[test]
    fn blocks_and_refusals() {
        let port = fake(&[
            ("s3cret", "OK failsh\n"),
            ("levels", "engine debug\n..x\n.\n"),
            (
                "level bogus debug",
                "ERR unknown facility bogus (known: engine)\n",
            ),
        ]);
        let mut c = Connection::open("127.0.0.1", port, "s3cret", T).unwrap();
        assert_eq!(c.block("levels").unwrap(), ["engine debug", ".x"]);
        let err = c.command("level bogus debug").unwrap_err();
        assert_eq!(err.to_string(), "unknown facility bogus (known: engine)");
        assert_eq!(err.code(), crate::error::USAGE);
    }

    #[test]
    fn the_log_is_followed_until_failsh_closes() {
        let port = fake(&[
            ("s3cret", "OK failsh\n"),
            ("log", "OK following\nline one\n..dotted\n"),
        ]);
        let mut c = Connection::open("127.0.0.1", port, "s3cret", T).unwrap();
        c.start_log().unwrap();
        let mut out = Vec::new();
        let err = c.follow(&mut out).unwrap_err();
        assert!(matches!(err, Error::Closed { .. }), "{err}");
        assert_eq!(String::from_utf8_lossy(&out), "line one\n.dotted\n");
    }

    #[test]
    fn a_wrong_community_is_denied() {
        let port = fake(&[("wrong", "ERR denied\n")]);
        let err = Connection::open("127.0.0.1", port, "wrong", T).unwrap_err();
        assert_eq!(err.code(), crate::error::DENIED, "{err}");
    }

    #[test]
    fn something_else_on_the_port_is_a_protocol_error() {
        let port = fake(&[("public", "SSH-2.0-OpenSSH\n")]);
        let err = Connection::open("127.0.0.1", port, "public", T).unwrap_err();
        assert!(matches!(err, Error::Protocol { .. }), "{err}");
    }

    #[test]
    fn a_closed_port_is_unreachable() {
        // Port 1 (tcpmux) is served nowhere on loopback; unlike a port that
        // was just free, no parallel test can take it.
        let err = Connection::open("127.0.0.1", 1, "public", T).unwrap_err();
        assert_eq!(err.code(), crate::error::UNREACHABLE, "{err}");
    }

    #[test]
    fn ipv6_targets_get_brackets() {
        assert_eq!(target("::1", 1849), "[::1]:1849");
        assert_eq!(target("lukretia", 1849), "lukretia:1849");
    }
}
