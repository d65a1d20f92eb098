//! The client end of failsh's monitor port: one TCP connection on which
//! failsh pushes a JSON [`Snapshot`] per line — on connect, after every
//! change and otherwise once a second. failmon sends nothing.
//!
//! Blocking std I/O: failmon watches one connection, so a thread per
//! connection is simpler than a runtime. Logged under the `net` facility.

use std::fmt;
use std::io::{BufRead, BufReader, ErrorKind, Read};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use failover::monitor::{Snapshot, VERSION};
use tracing::debug;

use crate::error::Error;

/// How long a connection attempt to one address may take.
pub const CONNECT_LIMIT: Duration = Duration::from_secs(5);
/// failsh pushes at least once a second; this much silence means the
/// connection (or failsh) is dead.
pub const SILENCE_LIMIT: Duration = Duration::from_secs(5);
/// Pause between reconnection attempts of the terminal UI and line mode.
pub const RETRY: Duration = Duration::from_secs(1);
/// Longest line accepted: far above a snapshot of thousands of services,
/// far below what would hurt to buffer.
const MAX_LINE: u64 = 64 * 1024 * 1024;

/// Where failsh's monitor port is: a host name or address and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
}

impl Target {
    pub fn new(host: &str, port: u16) -> Target {
        Target {
            host: host.to_string(),
            port,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&failover::usage::host_port(&self.host, self.port))
    }
}

/// One snapshot as read: parsed, and the line as failsh sent it (for
/// `--json`, which passes it on unchanged, fields failmon does not know
/// included).
#[derive(Debug, Clone)]
pub struct Push {
    pub snapshot: Snapshot,
    pub line: String,
}

/// An open connection to failsh's monitor port.
#[derive(Debug)]
pub struct Monitor {
    target: Target,
    reader: BufReader<TcpStream>,
}

impl Monitor {
    /// Connects to the first address of `target` that answers.
    pub fn connect(target: &Target) -> Result<Monitor, Error> {
        let name = target.to_string();
        let addrs: Vec<SocketAddr> = (target.host.as_str(), target.port)
            .to_socket_addrs()
            .map_err(|source| Error::Resolve {
                target: name.clone(),
                source,
            })?
            .collect();
        let mut last = std::io::Error::new(ErrorKind::NotFound, "no address");
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, CONNECT_LIMIT) {
                Ok(stream) => {
                    debug!(target: "net", "connected to {addr}");
                    stream
                        .set_read_timeout(Some(SILENCE_LIMIT))
                        .map_err(|source| Error::Connect {
                            target: name.clone(),
                            source,
                        })?;
                    return Ok(Monitor {
                        target: target.clone(),
                        reader: BufReader::new(stream),
                    });
                }
                Err(e) => {
                    debug!(target: "net", "{addr}: {e}");
                    last = e;
                }
            }
        }
        Err(Error::Connect {
            target: name,
            source: last,
        })
    }

    /// Waits for the next push (at most [`SILENCE_LIMIT`]).
    pub fn receive(&mut self) -> Result<Push, Error> {
        let target = || self.target.to_string();
        let mut line = String::new();
        let n = (&mut self.reader)
            .take(MAX_LINE)
            .read_line(&mut line)
            .map_err(|source| match source.kind() {
                ErrorKind::InvalidData => Error::Protocol {
                    target: target(),
                    detail: "not UTF-8".into(),
                },
                _ => Error::Lost {
                    target: target(),
                    source,
                },
            })?;
        if n == 0 {
            return Err(Error::Closed { target: target() });
        }
        if !line.ends_with('\n') {
            return Err(if n as u64 >= MAX_LINE {
                Error::Protocol {
                    target: target(),
                    detail: format!("a line longer than {MAX_LINE} bytes"),
                }
            } else {
                Error::Closed { target: target() }
            });
        }
        let line = line.trim_end().to_string();
        let snapshot = parse(&line).map_err(|detail| Error::Protocol {
            target: target(),
            detail,
        })?;
        debug!(target: "net", "snapshot ({:?}): {} hosts, {} services", snapshot.reason, snapshot.hosts.len(), snapshot.services.len());
        Ok(Push { snapshot, line })
    }

    pub fn target(&self) -> &Target {
        &self.target
    }
}

/// Parses one line as a snapshot of the version failmon reads.
pub fn parse(line: &str) -> Result<Snapshot, String> {
    let snapshot: Snapshot = serde_json::from_str(line).map_err(|e| e.to_string())?;
    if snapshot.version != VERSION {
        return Err(format!(
            "snapshot version {}, failmon reads version {VERSION}",
            snapshot.version
        ));
    }
    Ok(snapshot)
}

/// What a follower reports.
#[derive(Debug, Clone)]
pub enum Update {
    Snapshot(Box<Snapshot>),
    /// The connection failed or broke; a new attempt follows after
    /// [`RETRY`].
    Lost(String),
}

/// Reads pushes for as long as `deliver` accepts them (returns true),
/// reconnecting after [`RETRY`] whenever the connection fails; starts with
/// `first` if given. Runs on its own thread in the terminal UI and line
/// mode, and ends when their side of the channel is gone.
pub fn follow(target: &Target, first: Option<Monitor>, mut deliver: impl FnMut(Update) -> bool) {
    let mut monitor = first;
    loop {
        let current = match monitor.take() {
            Some(m) => Ok(m),
            None => Monitor::connect(target),
        };
        let error = match current {
            Ok(mut m) => loop {
                match m.receive() {
                    Ok(push) => {
                        if !deliver(Update::Snapshot(Box::new(push.snapshot))) {
                            return;
                        }
                    }
                    Err(e) => break e,
                }
            },
            Err(e) => e,
        };
        debug!(target: "net", "{error}; retrying in {RETRY:?}");
        if !deliver(Update::Lost(error.to_string())) {
            return;
        }
        std::thread::sleep(RETRY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;

    use crate::sample::sample;

    #[test]
    fn targets_print_as_socket_addresses() {
        assert_eq!(Target::new("127.0.0.1", 1848).to_string(), "127.0.0.1:1848");
        assert_eq!(Target::new("fe80::1", 1848).to_string(), "[fe80::1]:1848");
    }

    #[test]
    fn lines_of_another_version_or_kind_are_refused() {
        let mut s = sample();
        assert_eq!(parse(&serde_json::to_string(&s).unwrap()).unwrap(), s);
        s.version = VERSION + 1;
        let e = parse(&serde_json::to_string(&s).unwrap()).unwrap_err();
        assert!(e.contains("version 2"), "{e}");
        assert!(parse("FAIL/1 0 OK").is_err());
    }

    /// Found by fuzzing (target `monitor`): without serde_json's
    /// `float_roundtrip`, failmon read `9176399324.581123` as a float one
    /// step away from the one failsh wrote, so a snapshot changed in
    /// transit.
    #[test]
    fn times_arrive_exactly_as_sent() {
        for time in ["9176399324.5811243", "9176399324.581123"] {
            let mut s = sample();
            s.hosts[0].last_ok = Some(0.5);
            let line = serde_json::to_string(&s).unwrap().replace("0.5", time);
            let read = parse(&line).unwrap();
            assert_eq!(read.hosts[0].last_ok, Some(time.parse::<f64>().unwrap()));
            assert_eq!(parse(&serde_json::to_string(&read).unwrap()).unwrap(), read);
        }
    }

    /// A one-shot server on 127.0.0.1 that writes `lines` and closes.
    fn server(lines: Vec<String>) -> Target {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            for l in lines {
                s.write_all(l.as_bytes()).unwrap();
            }
        });
        Target::new("127.0.0.1", port)
    }

    #[test]
    fn reads_pushes_until_the_close() {
        let json = serde_json::to_string(&sample()).unwrap();
        let target = server(vec![format!("{json}\n"), "garbage\n".into()]);
        let mut m = Monitor::connect(&target).unwrap();
        let push = m.receive().unwrap();
        assert_eq!(push.snapshot, sample());
        assert_eq!(push.line, json);
        assert!(matches!(m.receive(), Err(Error::Protocol { .. })));
        assert!(matches!(m.receive(), Err(Error::Closed { .. })));
    }

    #[test]
    fn a_half_line_at_the_close_is_a_close() {
        let target = server(vec!["{\"version\":".into()]);
        let mut m = Monitor::connect(&target).unwrap();
        assert!(matches!(m.receive(), Err(Error::Closed { .. })));
    }

    #[test]
    fn refused_connections_name_the_target() {
        // Port 1 (tcpmux) is served nowhere on loopback; unlike a port that
        // was just free, no parallel test can take it.
        let port = 1;
        let target = Target::new("127.0.0.1", port);
        let e = Monitor::connect(&target).unwrap_err();
        assert!(matches!(e, Error::Connect { .. }), "{e}");
        assert!(
            e.to_string()
                .starts_with(&format!("{target}: cannot connect"))
        );
    }

    #[test]
    fn the_follower_reports_the_loss_and_stops_when_told() {
        let json = serde_json::to_string(&sample()).unwrap();
        let target = server(vec![format!("{json}\n")]);
        let mut seen = Vec::new();
        follow(&target, None, |u| {
            seen.push(u);
            seen.len() < 2
        });
        assert!(matches!(seen[0], Update::Snapshot(_)));
        assert!(matches!(&seen[1], Update::Lost(e) if e.contains("closed")));
    }
}
