//! The transport: one request to faild and its reply, over TCP or UDP, given
//! up on after a timeout.
//!
//! Synchronous on purpose: failc sends a handful of requests one after the
//! other, so blocking sockets with deadlines are all it needs.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use failover::auth::{self, ReplyReader, Seal, SealRing, Signer};
use failover::proto::{Op, Reply, Request, udp};

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
        f.write_str(&failover::usage::host_port(&self.host, self.port))
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
    /// The request was signed and the reply did not prove it came from a
    /// holder of the key: forged, or faild's unsigned refusal of the
    /// signature (whose words are shown, but not trusted).
    #[error("{target}: reply not authenticated ({reason}){}", answer.as_deref().map(|a| format!("; unsigned answer: {a}")).unwrap_or_default())]
    Unauthenticated {
        target: Target,
        reason: String,
        answer: Option<String>,
    },
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
    /// Signs every request when a key is configured.
    signer: Option<Signer>,
}

impl Client {
    pub fn new(
        target: Target,
        transport: Transport,
        community: String,
        timeout: Duration,
    ) -> Client {
        Client {
            target,
            transport,
            community,
            timeout,
            next_id: first_id(),
            conn: None,
            signer: None,
        }
    }

    /// Signs every request from now on with `signer`'s key.
    pub fn sign_with(&mut self, signer: Signer) {
        self.signer = Some(signer);
    }

    /// The line to send for `plain`: signed (with the seal that opens its
    /// reply) when a key is configured.
    fn envelope(&mut self, plain: &str) -> (String, Option<Seal>) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        auth::envelope(self.signer.as_mut(), now, plain)
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
        };
        // Over UDP faild answers at most three times the request's size, so
        // the request is padded to allow the largest reply it can draw.
        let request = match self.transport {
            Transport::Tcp => request.encode(),
            Transport::Udp => udp::encode_padded(&request),
        };
        let deadline = Instant::now() + self.timeout;
        match self.transport {
            Transport::Tcp => self.call_tcp(id, &request, deadline),
            Transport::Udp => self.call_udp(id, &request, deadline),
        }
    }

    fn call_tcp(
        &mut self,
        id: u64,
        request: &str,
        deadline: Instant,
    ) -> Result<Reply, ClientError> {
        let mut conn = match self.conn.take() {
            Some(conn) => conn,
            None => self.connect(deadline)?,
        };
        conn.set_deadline(deadline);
        let (line, seal) = self.envelope(request);
        let reply = conn
            .exchange(&line, seal.as_ref())
            .map_err(|e| self.io_error(e))?;
        if let Some(got) = reply.id().filter(|&got| got != id) {
            return Err(self.protocol(format!("reply id {got} does not match request id {id}")));
        }
        // Only a connection whose reply was read whole may carry the next
        // request: after a failure it may still hold the rest of a late or
        // bad reply, which the next call would take for its own.
        self.conn = Some(conn);
        Ok(reply)
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
    fn call_udp(
        &mut self,
        id: u64,
        request: &str,
        deadline: Instant,
    ) -> Result<Reply, ClientError> {
        // Replaced at the first address: resolve() never returns none.
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
        &mut self,
        addr: SocketAddr,
        id: u64,
        request: &str,
        deadline: Instant,
    ) -> Result<Reply, ClientError> {
        let target = self.target.clone();
        let timeout = self.timeout;
        let io_error = |e| io_failure(&target, timeout, IoFailure::Io(e));
        let local: SocketAddr = if addr.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(local).map_err(io_error)?;
        socket.connect(addr).map_err(io_error)?;
        let resend = self.timeout / 4;
        let mut buf = vec![0; 65_536];
        // Every resend is signed afresh (faild refuses a nonce twice); a late
        // reply to an earlier send opens with that send's seal.
        let mut seals = SealRing::default();
        let mut unauthenticated = None;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(
                    unauthenticated.unwrap_or_else(|| io_error(io::ErrorKind::TimedOut.into()))
                );
            }
            let (line, seal) = self.envelope(request);
            if let Some(seal) = seal {
                seals.push(seal);
            }
            socket.send(line.as_bytes()).map_err(io_error)?;
            let resend_at = (now + resend).min(deadline);
            while let Some(left) = resend_at
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero())
            {
                socket.set_read_timeout(Some(left)).map_err(io_error)?;
                let n = match socket.recv(&mut buf) {
                    Ok(n) => n,
                    Err(e) if is_timeout(&e) => break,
                    Err(e) => return Err(io_error(e)),
                };
                let text = std::str::from_utf8(&buf[..n])
                    .map_err(|_| self.protocol("reply is not UTF-8".into()))?;
                let text = match self.signer.is_some() {
                    false => text,
                    // A forged datagram is skipped, not fatal: anyone can
                    // send one, and the real reply may still come.
                    true => match seals.open(text) {
                        Ok(plain) => plain,
                        Err(e) => {
                            unauthenticated = Some(self.unauthenticated(e, text));
                            continue;
                        }
                    },
                };
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
        io_failure(&self.target, self.timeout, failure)
    }

    fn unauthenticated(&self, e: failover::auth::AuthError, text: &str) -> ClientError {
        ClientError::Unauthenticated {
            target: self.target.clone(),
            reason: e.to_string(),
            answer: auth::unsigned_answer(text),
        }
    }

    fn protocol(&self, reason: String) -> ClientError {
        ClientError::Protocol {
            target: self.target.clone(),
            reason,
        }
    }
}

fn io_failure(target: &Target, timeout: Duration, failure: IoFailure) -> ClientError {
    let target = target.clone();
    match failure {
        IoFailure::Io(e) if is_timeout(&e) => ClientError::Timeout { target, timeout },
        IoFailure::Io(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            ClientError::Refused { target }
        }
        IoFailure::Io(source) => ClientError::Io { target, source },
        IoFailure::Closed => ClientError::Closed { target },
        IoFailure::Garbage(reason) => ClientError::Protocol { target, reason },
        IoFailure::Unauthenticated { reason, answer } => ClientError::Unauthenticated {
            target,
            reason,
            answer,
        },
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
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// What went wrong on a TCP connection, before the client names faild's address.
enum IoFailure {
    Io(io::Error),
    Closed,
    Garbage(String),
    Unauthenticated {
        reason: String,
        answer: Option<String>,
    },
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

    /// Writes the request, then reads the auth line (when `seal` says the
    /// request was signed), the header line and as many item lines as it
    /// announces; a signed request's reply is checked before it is decoded.
    fn exchange(&mut self, request: &str, seal: Option<&Seal>) -> Result<Reply, IoFailure> {
        self.reader
            .get_mut()
            .write_all(request.as_bytes())
            .map_err(IoFailure::Io)?;
        let mut reader = ReplyReader::new(seal.is_some());
        loop {
            let line = self.read_line()?;
            if reader.push(&line).map_err(IoFailure::Garbage)? {
                break;
            }
        }
        let plain = reader.open(seal).map_err(|e| IoFailure::Unauthenticated {
            reason: e.to_string(),
            answer: auth::unsigned_answer(reader.text()),
        })?;
        Reply::decode(plain).map_err(IoFailure::Garbage)
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

#[cfg(test)]
mod tests {
    //! Fake fairds on 127.0.0.1, each in a thread that serves one scripted
    //! exchange. Socket timeouts bound every wait, so a broken client fails
    //! the test instead of hanging it.

    use super::*;
    use failover::proto::{ErrorCode, Item, Status};
    use failover::{Record, State};
    use std::net::TcpListener;
    use std::thread;

    const SERVER_PATIENCE: Duration = Duration::from_secs(5);

    fn client(addr: SocketAddr, transport: Transport, timeout: Duration) -> Client {
        let target = Target::new(&addr.ip().to_string(), addr.port());
        Client::new(target, transport, "public".into(), timeout)
    }

    fn get(name: &str) -> Op {
        Op::Get(vec![name.into()])
    }

    /// What faild would answer to a GET: every name found, in `state`.
    fn found(request: &Request, id: u64, state: State) -> Reply {
        let Op::Get(names) = &request.op else {
            panic!("expected a GET, got {request:?}")
        };
        let record = Record::new(state, None, UNIX_EPOCH, 1);
        Reply::Items {
            id,
            status: Status::Ok,
            items: names
                .iter()
                .map(|n| Item::Found(n.clone(), record.clone()))
                .collect(),
        }
    }

    fn states(reply: &Reply) -> Vec<(String, State)> {
        let Reply::Items { items, .. } = reply else {
            panic!("expected items, got {reply:?}")
        };
        items
            .iter()
            .map(|i| match i {
                Item::Found(n, r) => (n.clone(), r.state),
                Item::Missing(..) => panic!("unexpected {i:?}"),
            })
            .collect()
    }

    /// Accepts `connections` connections in turn and answers each request
    /// line with `answer(request)`, until the client closes the connection.
    fn tcp_server(
        connections: usize,
        answer: impl Fn(&Request) -> String + Send + 'static,
    ) -> (SocketAddr, thread::JoinHandle<Vec<Vec<Request>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = thread::spawn(move || {
            let mut seen = Vec::new();
            for _ in 0..connections {
                let (stream, _) = listener.accept().unwrap();
                stream.set_read_timeout(Some(SERVER_PATIENCE)).unwrap();
                let mut writer = stream.try_clone().unwrap();
                let mut requests = Vec::new();
                for line in BufReader::new(stream).lines() {
                    // A signed request's plain line (not verified).
                    let line = line.unwrap();
                    let plain = failover::auth::decode_request(line.as_bytes())
                        .unwrap()
                        .map_or(line.as_bytes(), |signed| signed.inner);
                    let request = Request::parse(plain).unwrap();
                    writer.write_all(answer(&request).as_bytes()).unwrap();
                    requests.push(request);
                }
                seen.push(requests);
            }
            seen
        });
        (addr, handle)
    }

    #[test]
    fn tcp_carries_several_requests_on_one_connection() {
        let (addr, server) = tcp_server(1, |r| found(r, r.id, State::Up).encode());
        let mut c = client(addr, Transport::Tcp, Duration::from_secs(2));
        let first = c.call(Op::Get(vec!["vip".into(), "www".into()])).unwrap();
        assert_eq!(
            states(&first),
            [
                ("vip".to_string(), State::Up),
                ("www".to_string(), State::Up)
            ]
        );
        let second = c.call(get("db")).unwrap();
        assert_eq!(states(&second), [("db".to_string(), State::Up)]);
        drop(c);
        let seen = server.join().unwrap();
        assert_eq!(seen.len(), 1, "one connection");
        let ids: Vec<u64> = seen[0].iter().map(|r| r.id).collect();
        assert_eq!(ids, [ids[0], ids[0].wrapping_add(1)]);
        assert_eq!(first.id(), Some(ids[0]));
        assert_eq!(seen[0][0].community, "public");
    }

    #[test]
    fn tcp_reply_to_another_id_is_garbage_and_drops_the_connection() {
        // The first connection answers with the wrong id, the second rightly.
        let count = std::sync::atomic::AtomicUsize::new(0);
        let (addr, server) = tcp_server(2, move |r| {
            let n = count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let id = if n == 0 { r.id.wrapping_add(1) } else { r.id };
            found(r, id, State::Fail).encode()
        });
        let mut c = client(addr, Transport::Tcp, Duration::from_secs(2));
        let err = c.call(get("vip")).unwrap_err();
        assert!(
            matches!(&err, ClientError::Protocol { reason, .. } if reason.contains("does not match")),
            "{err}"
        );
        assert_eq!(
            states(&c.call(get("vip")).unwrap()),
            [("vip".to_string(), State::Fail)]
        );
        drop(c);
        let seen = server.join().unwrap();
        assert_eq!(seen.iter().map(Vec::len).collect::<Vec<_>>(), [1, 1]);
    }

    #[test]
    fn tcp_reply_cut_short_is_closed() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            stream.set_read_timeout(Some(SERVER_PATIENCE)).unwrap();
            let mut line = String::new();
            BufReader::new(&stream).read_line(&mut line).unwrap();
            let request = Request::parse(line.as_bytes()).unwrap();
            let whole = found(&request, request.id, State::Up).encode();
            // The header announces two items; only the first is sent, then
            // the connection is closed.
            let cut: String = whole.lines().take(2).map(|l| format!("{l}\n")).collect();
            (&stream).write_all(cut.as_bytes()).unwrap();
        });
        let mut c = client(addr, Transport::Tcp, Duration::from_secs(2));
        let err = c.call(Op::Get(vec!["a".into(), "b".into()])).unwrap_err();
        assert!(matches!(err, ClientError::Closed { .. }), "{err}");
        server.join().unwrap();
    }

    #[test]
    fn tcp_silence_times_out() {
        let (addr, server) = tcp_server(1, |_| String::new());
        let timeout = Duration::from_millis(200);
        let mut c = client(addr, Transport::Tcp, timeout);
        let start = Instant::now();
        let err = c.call(get("vip")).unwrap_err();
        let took = start.elapsed();
        assert!(matches!(err, ClientError::Timeout { .. }), "{err}");
        assert!(err.to_string().ends_with(": no reply within 0.2s"), "{err}");
        assert!(took >= timeout && took < Duration::from_secs(2), "{took:?}");
        drop(c);
        server.join().unwrap();
    }

    /// faild's unsigned refusal is shown beside the authentication error,
    /// but anyone can send one: its control characters (a terminal escape,
    /// a carriage return that would overwrite the line) are escaped.
    #[test]
    fn an_unsigned_answer_is_shown_escaped() {
        let (addr, server) = tcp_server(1, |r| {
            format!("FAIL/1 {} ERR DENIED \x1b[2J\rall is well\n", r.id)
        });
        let mut c = client(addr, Transport::Tcp, Duration::from_secs(2));
        let key = failover::auth::Key::new("k1", None, &[1; 16]).unwrap();
        c.sign_with(Signer::new(key, [0; 16]));
        let err = c.call(get("vip")).unwrap_err();
        assert!(matches!(err, ClientError::Unauthenticated { .. }), "{err}");
        let err = err.to_string();
        assert!(
            err.ends_with("ERR DENIED \\u{1b}[2J\\rall is well"),
            "{err}"
        );
        assert!(!err.chars().any(char::is_control), "{err:?}");
        drop(c);
        server.join().unwrap();
    }

    #[test]
    fn tcp_nobody_listening_is_refused() {
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let mut c = client(addr, Transport::Tcp, Duration::from_secs(2));
        let err = c.call(get("vip")).unwrap_err();
        assert!(matches!(err, ClientError::Refused { .. }), "{err}");
        assert_eq!(err.to_string(), format!("{addr}: connection refused"));
    }

    fn udp_server() -> UdpSocket {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(SERVER_PATIENCE)).unwrap();
        socket
    }

    fn recv_request(socket: &UdpSocket) -> (Vec<u8>, SocketAddr) {
        let mut buf = [0; 2048];
        let (n, peer) = socket.recv_from(&mut buf).unwrap();
        (buf[..n].to_vec(), peer)
    }

    #[test]
    fn udp_resends_the_same_request_and_skips_other_replies() {
        let server = udp_server();
        let addr = server.local_addr().unwrap();
        let stranger = udp_server();
        let handle = thread::spawn(move || {
            let (first, peer) = recv_request(&server);
            let (again, peer_again) = recv_request(&server);
            assert_eq!(
                (&first, peer),
                (&again, peer_again),
                "same request, same socket"
            );
            let request = Request::parse(&first).unwrap();
            let id = request.id;
            // Right id, wrong address; then right address, wrong id.
            let wrong = [
                (&stranger, found(&request, id, State::Fail)),
                (&server, found(&request, id.wrapping_sub(1), State::Recover)),
                (&server, found(&request, id, State::Up)),
            ];
            for (socket, reply) in wrong {
                socket.send_to(reply.encode().as_bytes(), peer).unwrap();
            }
        });
        let mut c = client(addr, Transport::Udp, Duration::from_secs(2));
        let start = Instant::now();
        let reply = c.call(get("vip")).unwrap();
        assert_eq!(states(&reply), [("vip".to_string(), State::Up)]);
        assert!(
            start.elapsed() >= Duration::from_millis(500),
            "resent after timeout/4"
        );
        handle.join().unwrap();
    }

    #[test]
    fn udp_error_replies_are_replies() {
        let server = udp_server();
        let addr = server.local_addr().unwrap();
        let handle = thread::spawn(move || {
            let (request, peer) = recv_request(&server);
            let id = Request::parse(&request).unwrap().id;
            let reply = Reply::error(
                Some(id),
                ErrorCode::TooBig,
                "reply too big for UDP; use TCP",
            );
            server.send_to(reply.encode().as_bytes(), peer).unwrap();
        });
        let mut c = client(addr, Transport::Udp, Duration::from_secs(2));
        let Reply::Error(e) = c.call(Op::List).unwrap() else {
            panic!("expected an error reply")
        };
        assert_eq!(e.code, ErrorCode::TooBig);
        assert_eq!(e.message, "reply too big for UDP; use TCP");
        handle.join().unwrap();
    }

    #[test]
    fn udp_silence_times_out_after_resending() {
        let server = udp_server();
        let addr = server.local_addr().unwrap();
        let timeout = Duration::from_millis(200);
        let mut c = client(addr, Transport::Udp, timeout);
        let start = Instant::now();
        let err = c.call(get("vip")).unwrap_err();
        let took = start.elapsed();
        assert!(matches!(err, ClientError::Timeout { .. }), "{err}");
        assert!(took >= timeout && took < Duration::from_secs(2), "{took:?}");

        server.set_nonblocking(true).unwrap();
        let mut sent = Vec::new();
        let mut buf = [0; 2048];
        while let Ok(n) = server.recv(&mut buf) {
            sent.push(buf[..n].to_vec());
        }
        assert!(sent.len() >= 2, "resent: {}", sent.len());
        assert!(
            sent.iter().all(|d| d == &sent[0]),
            "always the same request"
        );
    }

    #[test]
    fn udp_nobody_listening_is_refused() {
        let addr = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let mut c = client(addr, Transport::Udp, Duration::from_secs(2));
        let err = c.call(get("vip")).unwrap_err();
        assert!(matches!(err, ClientError::Refused { .. }), "{err}");
    }
}
