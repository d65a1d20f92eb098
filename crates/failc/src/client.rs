//! The transport: one request to faild and its reply, over TCP or UDP, given
//! up on after a timeout.
//!
//! Synchronous on purpose: failc sends a handful of requests one after the
//! other, so blocking sockets with deadlines are all it needs.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use failover::proto::{Header, Item, MAX_UDP_REPLY, Op, Reply, Request};

/// Longest reply line read over TCP. A record line is a few hundred bytes at
/// most; anything longer is not faild talking.
const MAX_LINE: u64 = 4096;

/// Where faild listens, kept as the user named it for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    host: String,
    port: u16,
}

impl Target {
    pub fn new(host: &str, port: u16) -> Target {
        Target {
            host: host.to_string(),
            port,
        }
    }

    fn resolve(&self) -> Result<Vec<SocketAddr>, ClientError> {
        let resolve_error = |source| ClientError::Resolve {
            target: self.clone(),
            source,
        };
        let addrs: Vec<SocketAddr> = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(resolve_error)?
            .collect();
        if addrs.is_empty() {
            return Err(resolve_error(io::Error::other("no addresses")));
        }
        Ok(addrs)
    }
}

/// `host:port`, with an IPv6 address in brackets.
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Udp,
}

/// Why no reply came back. Everything but [`ClientError::Protocol`] means
/// faild could not be reached; `Protocol` means something answered that is
/// not a faild speaking FAIL/1.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{target}: cannot resolve host: {source}")]
    Resolve { target: Target, source: io::Error },
    #[error("{target}: connection refused")]
    Refused { target: Target },
    #[error("{target}: no reply within {}s", timeout.as_secs_f64())]
    Timeout { target: Target, timeout: Duration },
    #[error("{target}: {source}")]
    Io { target: Target, source: io::Error },
    #[error("{target}: connection closed before the reply was complete")]
    Closed { target: Target },
    #[error("{target}: {reason}")]
    Protocol { target: Target, reason: String },
}

/// Talks to one faild. Over TCP the connection is opened on the first call
/// and reused by the following ones.
pub struct Client {
    target: Target,
    transport: Transport,
    community: String,
    timeout: Duration,
    next_id: u64,
    conn: Option<TcpConn>,
}

impl Client {
    pub fn new(target: Target, transport: Transport, community: String, timeout: Duration) -> Client {
        Client {
            target,
            transport,
            community,
            timeout,
            next_id: first_id(),
            conn: None,
        }
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Sends one request and waits at most the timeout for its reply. A
    /// reply of faild's refusing the request is still `Ok`.
    pub fn call(&mut self, op: Op) -> Result<Reply, ClientError> {
        let id = self.next_id;
        self.next_id = id.wrapping_add(1);
        let request = Request {
            id,
            community: self.community.clone(),
            op,
        }
        .encode();
        let deadline = Instant::now() + self.timeout;
        match self.transport {
            Transport::Tcp => {
                let reply = self.call_tcp(id, &request, deadline);
                if reply.is_err() {
                    // The stream may hold the rest of a late or bad reply;
                    // a following call must not read it as its own.
                    self.conn = None;
                }
                reply
            }
            Transport::Udp => self.call_udp(id, &request, deadline),
        }
    }

    fn call_tcp(&mut self, id: u64, request: &str, deadline: Instant) -> Result<Reply, ClientError> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => self.conn.insert(self.connect(deadline)?),
        };
        conn.set_deadline(deadline);
        let result = conn.exchange(request);
        let reply = result.map_err(|e| self.io_error(e))?;
        match reply.id() {
            Some(got) if got != id => Err(self.protocol(format!(
                "reply id {got} does not match request id {id}"
            ))),
            _ => Ok(reply),
        }
    }

    /// Tries every address the host resolves to, as a name may resolve to
    /// an IPv6 and an IPv4 address and faild listen on only one.
    fn connect(&self, deadline: Instant) -> Result<TcpConn, ClientError> {
        let mut last = io::Error::from(io::ErrorKind::TimedOut);
        for addr in self.target.resolve()? {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match TcpStream::connect_timeout(&addr, left) {
                Ok(stream) => return Ok(TcpConn::new(stream, deadline)),
                Err(e) => last = e,
            }
        }
        Err(self.io_error(IoFailure::Io(last)))
    }

    /// Sends the request, and again every timeout/4 with the same id, until
    /// a reply with that id arrives. A connected socket only receives
    /// datagrams from faild's address; replies to other ids (late answers to
    /// earlier requests) are skipped.
    fn call_udp(&self, id: u64, request: &str, deadline: Instant) -> Result<Reply, ClientError> {
        let mut result = Err(ClientError::Timeout {
            target: self.target.clone(),
            timeout: self.timeout,
        });
        for addr in self.target.resolve()? {
            result = self.exchange_udp(addr, id, request, deadline);
            // An ICMP "port unreachable" from one address: try the next one.
            if !matches!(result, Err(ClientError::Refused { .. })) {
                break;
            }
        }
        result
    }

    fn exchange_udp(
        &self,
        addr: SocketAddr,
        id: u64,
        request: &str,
        deadline: Instant,
    ) -> Result<Reply, ClientError> {
        let io_error = |e| self.io_error(IoFailure::Io(e));
        let local: SocketAddr = if addr.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(local).map_err(io_error)?;
        socket.connect(addr).map_err(io_error)?;
        let resend = self.timeout / 4;
        let mut buf = vec![0; MAX_UDP_REPLY + 1];
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(io_error(io::ErrorKind::TimedOut.into()));
            }
            socket.send(request.as_bytes()).map_err(io_error)?;
            let resend_at = (now + resend).min(deadline);
            while let Some(left) = resend_at.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) {
                socket.set_read_timeout(Some(left)).map_err(io_error)?;
                let n = match socket.recv(&mut buf) {
                    Ok(n) => n,
                    Err(e) if is_timeout(&e) => break,
                    Err(e) => return Err(io_error(e)),
                };
                let text = std::str::from_utf8(&buf[..n])
                    .map_err(|_| self.protocol("reply is not UTF-8".into()))?;
                let reply = Reply::decode(text).map_err(|e| self.protocol(e))?;
                // An error without an id answers a request faild could not
                // read; only ours can have reached it from this socket.
                if reply.id().is_none_or(|got| got == id) {
                    return Ok(reply);
                }
            }
        }
    }

    fn io_error(&self, failure: IoFailure) -> ClientError {
        let target = self.target.clone();
        match failure {
            IoFailure::Io(e) if is_timeout(&e) => ClientError::Timeout {
                target,
                timeout: self.timeout,
            },
            IoFailure::Io(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                ClientError::Refused { target }
            }
            IoFailure::Io(source) => ClientError::Io { target, source },
            IoFailure::Closed => ClientError::Closed { target },
            IoFailure::Garbage(reason) => ClientError::Protocol { target, reason },
        }
    }

    fn protocol(&self, reason: String) -> ClientError {
        ClientError::Protocol {
            target: self.target.clone(),
            reason,
        }
    }
}

/// Starts request ids somewhere different in each run, so a late UDP reply
/// meant for an earlier failc is not taken for this one's.
fn first_id() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (nanos ^ (u64::from(std::process::id()) << 32)).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Socket read timeouts show up as `WouldBlock` on Unix and `TimedOut` elsewhere.
fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

/// What went wrong on a TCP connection, before the client names faild's address.
enum IoFailure {
    Io(io::Error),
    Closed,
    Garbage(String),
}

/// A TCP stream whose every read and write gives up at one deadline, so a
/// reply trickling in a byte at a time cannot stretch the timeout.
struct DeadlineStream {
    stream: TcpStream,
    deadline: Instant,
}

impl DeadlineStream {
    fn left(&self) -> io::Result<Duration> {
        match self.deadline.checked_duration_since(Instant::now()) {
            Some(d) if !d.is_zero() => Ok(d),
            _ => Err(io::ErrorKind::TimedOut.into()),
        }
    }
}

impl Read for DeadlineStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.set_read_timeout(Some(self.left()?))?;
        self.stream.read(buf)
    }
}

impl Write for DeadlineStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.set_write_timeout(Some(self.left()?))?;
        self.stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

struct TcpConn {
    reader: BufReader<DeadlineStream>,
}

impl TcpConn {
    fn new(stream: TcpStream, deadline: Instant) -> TcpConn {
        // Requests are single small lines; don't hold them back.
        let _ = stream.set_nodelay(true);
        TcpConn {
            reader: BufReader::new(DeadlineStream { stream, deadline }),
        }
    }

    fn set_deadline(&mut self, deadline: Instant) {
        self.reader.get_mut().deadline = deadline;
    }

    /// Writes the request, then reads the header line and as many item lines
    /// as it announces.
    fn exchange(&mut self, request: &str) -> Result<Reply, IoFailure> {
        self.reader
            .get_mut()
            .write_all(request.as_bytes())
            .map_err(IoFailure::Io)?;
        match Header::parse(&self.read_line()?).map_err(IoFailure::Garbage)? {
            Header::Error(e) => Ok(Reply::Error(e)),
            Header::Items { id, status, count } => {
                let mut items = Vec::new();
                for _ in 0..count {
                    items.push(Item::parse(&self.read_line()?).map_err(IoFailure::Garbage)?);
                }
                Ok(Reply::Items { id, status, items })
            }
        }
    }

    fn read_line(&mut self) -> Result<String, IoFailure> {
        let mut line = String::new();
        let n = (&mut self.reader)
            .take(MAX_LINE)
            .read_line(&mut line)
            .map_err(|e| match e.kind() {
                io::ErrorKind::InvalidData => IoFailure::Garbage("reply is not UTF-8".into()),
                _ => IoFailure::Io(e),
            })?;
        if line.ends_with('\n') {
            Ok(line)
        } else if n as u64 == MAX_LINE {
            Err(IoFailure::Garbage(format!(
                "reply line longer than {MAX_LINE} bytes"
            )))
        } else {
            Err(IoFailure::Closed)
        }
    }
}
