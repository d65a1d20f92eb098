//! Talking to a faild: batched GETs for polling, SETs for the local record.
//! One client per host, reused across polls (a TCP connection stays open).

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use failover::Record;
use failover::State;
use failover::auth::{self, AuthError, ReplyReader, Seal, SealRing, Signer};
use failover::proto::{
    ErrorCode, Item, MAX_GET_NAMES, Op, Origin, ProtoError, Reply, Request, get_batches, udp,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::Instant;

use crate::config::{HostConfig, Protocol};

/// Names per UDP GET: replies must fit in one 1,400-byte datagram.
const UDP_NAMES: usize = 12;

/// How often a host's authentication failures are logged at most (the
/// first one at once): they go on every poll until the keys are fixed.
const AUTH_WARNING_EVERY: Duration = Duration::from_secs(60);

/// Why a call got no usable answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// No answer in time, refused, or the connection broke: the host is
    /// INDOUBT.
    #[error("no answer: {0}")]
    NoAnswer(String),
    /// faild answered with an error: the host is alive.
    #[error("{0}")]
    Refused(ProtoError),
    /// Something answered, but not with a reply failsh can read (or not to
    /// this request): the host is alive, its state unknown.
    #[error("unreadable answer: {0}")]
    Garbled(String),
    /// Not asked: the host's address did not resolve when the config was
    /// loaded (why, naming the config line). A configuration error, not a
    /// sign of the host's state.
    #[error("{0}")]
    Unresolved(String),
    /// The request was signed and what came back from the host does not
    /// prove a key holder sent it: mostly faild refusing the signature
    /// (keys that do not match: no `-k` there, a key id it does not know,
    /// another secret), else a forger. Something answered, so the host is
    /// not silent: its state is unknown, which blocks starts and never
    /// times out into FAIL (taking it for silence would start the service
    /// here while the peer runs it). A forger can only block starts.
    #[error("{0}")]
    Unauthenticated(String),
}

/// The io error that carries a [`CallError::Unauthenticated`] out of a call.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct NotAuthentic(String);

impl From<io::Error> for CallError {
    fn from(e: io::Error) -> CallError {
        if let Some(why) = e.get_ref().and_then(|i| i.downcast_ref::<NotAuthentic>()) {
            return CallError::Unauthenticated(why.0.clone());
        }
        match e.kind() {
            io::ErrorKind::InvalidData => CallError::Garbled(e.to_string()),
            _ => CallError::NoAnswer(e.to_string()),
        }
    }
}

/// A faild, as one host's config describes it.
#[derive(Debug)]
pub struct Client {
    host: HostConfig,
    /// Its addresses as looked up when the config was loaded (never again
    /// until a reload: the resolver has no say in a failover).
    addresses: Result<Vec<SocketAddr>, String>,
    tcp: Option<BufReader<TcpStream>>,
    next_id: u64,
    /// Signs every request when the host has a key.
    signer: Option<Signer>,
    /// Replies that failed authentication (forged, or unsigned): never
    /// taken for a state.
    pub auth_failures: u64,
    /// When an authentication failure was last logged, and how many came
    /// since.
    auth_warned: Option<(Instant, u64)>,
}

impl Client {
    pub fn new(host: HostConfig, addresses: Result<Vec<SocketAddr>, String>) -> Client {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        let signer = host.key.clone().map(|key| {
            let random = failover_daemon::random::seed().unwrap_or_else(|_| {
                let mut s = [0; 16];
                s[..8].copy_from_slice(&seed.to_be_bytes());
                s[8..12].copy_from_slice(&std::process::id().to_be_bytes());
                s
            });
            Signer::new(key, random)
        });
        Client {
            host,
            addresses,
            tcp: None,
            next_id: seed ^ u64::from(std::process::id()) << 32,
            signer,
            auth_failures: 0,
            auth_warned: None,
        }
    }

    /// Whether requests to this host are signed.
    pub fn signs(&self) -> bool {
        self.signer.is_some()
    }

    /// The line to send for a request: signed, with the seal that opens its
    /// reply, when the host has a key.
    fn envelope(&mut self, plain: &str) -> (String, Option<Seal>) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        auth::envelope(self.signer.as_mut(), now, plain)
    }

    /// Counts a reply that failed authentication, logs it (the first at
    /// once, then at most every [`AUTH_WARNING_EVERY`]), and returns the
    /// error that makes it an error answer (UNKNOWN), never silence.
    fn unauthenticated(&mut self, e: AuthError, text: &str) -> io::Error {
        self.auth_failures += 1;
        let why = match auth::unsigned_answer(text) {
            Some(answer) => format!("reply not authenticated ({e}); unsigned answer: {answer}"),
            None => format!("reply not authenticated ({e})"),
        };
        let now = Instant::now();
        match &mut self.auth_warned {
            Some((at, since)) if now.duration_since(*at) < AUTH_WARNING_EVERY => *since += 1,
            warned => {
                let more = warned
                    .map(|(_, n)| format!(" ({n} more since the last warning)"))
                    .unwrap_or_default();
                tracing::warn!(
                    "host {}: {why}{more}: its state is UNKNOWN, which blocks starting, until its \
                     replies verify; check key_file/key_id here against faild -k there",
                    self.host.name
                );
                *warned = Some((now, 0));
            }
        }
        io::Error::new(io::ErrorKind::PermissionDenied, NotAuthentic(why))
    }

    /// Reads `names`; each answer in order. A whole-request failure is
    /// returned as the error for every name of that request; a GET whose
    /// reply would not fit one UDP datagram is asked again in halves.
    pub async fn get(
        &mut self,
        names: &[String],
        limit: Duration,
    ) -> Vec<(String, Result<Record, CallError>)> {
        if let Err(why) = &self.addresses {
            let unresolved = CallError::Unresolved(why.clone());
            return names
                .iter()
                .map(|n| (n.clone(), Err(unresolved.clone())))
                .collect();
        }
        let per = match self.host.protocol {
            Protocol::Tcp => MAX_GET_NAMES,
            Protocol::Udp => UDP_NAMES,
        };
        let mut out = Vec::with_capacity(names.len());
        let deadline = tokio::time::Instant::now() + limit;
        let mut pending: VecDeque<Vec<String>> =
            get_batches(names, &self.host.community, per).into();
        while let Some(batch) = pending.pop_front() {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let failed = |e: CallError| batch.iter().map(move |n| (n.clone(), Err(e.clone())));
            match self.call(Op::Get(batch.clone()), left).await {
                Ok(Reply::Items { items, .. }) => {
                    for item in items {
                        out.push(match item {
                            Item::Found(n, r) => (n, Ok(r)),
                            Item::Missing(n, code) => {
                                (n, Err(CallError::Refused(ProtoError::new(None, code, ""))))
                            }
                        });
                    }
                }
                Ok(Reply::Error(e)) if e.code == ErrorCode::TooBig && batch.len() > 1 => {
                    let (first, second) = batch.split_at(batch.len() / 2);
                    pending.push_front(second.to_vec());
                    pending.push_front(first.to_vec());
                }
                Ok(Reply::Error(e)) => out.extend(failed(CallError::Refused(e))),
                Err(e) => out.extend(failed(CallError::from(e))),
            }
        }
        out
    }

    /// Writes `state` for `service` as failsh (`origin` is
    /// [`Origin::Failsh`] or [`Origin::Claim`]).
    pub async fn set(
        &mut self,
        service: &str,
        state: State,
        origin: Origin,
        limit: Duration,
    ) -> Result<Record, CallError> {
        if let Err(why) = &self.addresses {
            return Err(CallError::Unresolved(why.clone()));
        }
        let op = Op::Set {
            service: service.to_string(),
            state,
            backup: None,
            origin,
        };
        match self.call(op, limit).await {
            Ok(Reply::Items { mut items, .. }) => match items.pop() {
                Some(Item::Found(_, r)) => Ok(r),
                _ => Err(CallError::NoAnswer("empty reply to SET".into())),
            },
            Ok(Reply::Error(e)) => Err(CallError::Refused(e)),
            Err(e) => Err(CallError::from(e)),
        }
    }

    async fn call(&mut self, op: Op, limit: Duration) -> io::Result<Reply> {
        self.next_id = self.next_id.wrapping_add(1);
        let req = Request {
            id: self.next_id,
            community: self.host.community.clone(),
            op,
        };
        let timed_out = || {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no reply within {limit:?}"),
            )
        };
        let result = match self.host.protocol {
            Protocol::Tcp => tokio::time::timeout(limit, async {
                let reused = self.tcp.is_some();
                match self.tcp_call(&req).await {
                    // A kept connection faild has closed meanwhile (idle
                    // timeout, connection cap): nothing was executed, as
                    // faild runs only complete lines; ask once more.
                    Err(e) if reused && stale(&e) => {
                        self.tcp = None;
                        self.tcp_call(&req).await
                    }
                    r => r,
                }
            })
            .await
            .unwrap_or_else(|_| Err(timed_out())),
            // It keeps its own time: what it got by then decides the error.
            Protocol::Udp => self
                .udp_call(&req, limit)
                .await
                .and_then(|reply| reply.ok_or_else(timed_out)),
        };
        if result.is_err() {
            self.tcp = None; // a half-read reply must not be taken for the next one
        }
        result
    }

    /// The addresses looked up at load time (checked non-empty by `get`
    /// and `set` before any call).
    fn targets(&self) -> &[SocketAddr] {
        self.addresses.as_deref().unwrap_or_default()
    }

    async fn tcp_call(&mut self, req: &Request) -> io::Result<Reply> {
        if self.tcp.is_none() {
            let stream = TcpStream::connect(self.targets()).await?;
            stream.set_nodelay(true)?;
            self.tcp = Some(BufReader::new(stream));
        }
        let (request, seal) = self.envelope(&req.encode());
        let conn = self.tcp.as_mut().expect("connected above");
        conn.get_mut().write_all(request.as_bytes()).await?;
        let garbled = |e: String| io::Error::new(io::ErrorKind::InvalidData, e);
        let mut reader = ReplyReader::new(seal.is_some());
        let mut line = String::new();
        loop {
            line.clear();
            if conn.read_line(&mut line).await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed",
                ));
            }
            if reader.push(&line).map_err(garbled)? {
                break;
            }
        }
        let plain = match reader.open(seal.as_ref()) {
            Ok(plain) => plain,
            Err(e) => return Err(self.unauthenticated(e, reader.text())),
        };
        let reply = Reply::decode(plain).map_err(garbled)?;
        check_id(&reply, req.id)?;
        Ok(reply)
    }

    /// Sends the request, resending every quarter of the limit until a reply
    /// with its id arrives; `None` when none did within the limit. When only
    /// datagrams that failed authentication came, the error says so: the
    /// host answered (faild refusing the signature), it is not silent.
    async fn udp_call(&mut self, req: &Request, limit: Duration) -> io::Result<Option<Reply>> {
        let deadline = Instant::now() + limit;
        let target = *self
            .targets()
            .first()
            .ok_or_else(|| io::Error::other("no address"))?;
        let bind = if target.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        let socket = UdpSocket::bind(bind).await?;
        socket.connect(target).await?;
        // faild answers at most three times the request's size over UDP: the
        // request is padded to allow the largest reply it can draw.
        let plain = udp::encode_padded(req);
        let resend = (limit / 4).max(Duration::from_millis(5));
        let mut buf = vec![0u8; 65_536];
        let mut seals = SealRing::default();
        let mut unauthenticated = None;
        while Instant::now() < deadline {
            let (text, seal) = self.envelope(&plain);
            if let Some(seal) = seal {
                seals.push(seal);
            }
            socket.send(text.as_bytes()).await?;
            // Everything that comes before the resend time is read; only
            // then is the request sent again (signed afresh), so a datagram
            // sent by a forger never makes this client send a request.
            let resend_at = (Instant::now() + resend).min(deadline);
            while let Ok(n) = tokio::time::timeout_at(resend_at, socket.recv(&mut buf)).await {
                let text = String::from_utf8_lossy(&buf[..n?]);
                let plain = match self.signer.is_some() {
                    false => &*text,
                    // Skipped, not fatal: anyone can send a datagram, and the
                    // real reply may still come.
                    true => match seals.open(&text) {
                        Ok(plain) => plain,
                        Err(e) => {
                            unauthenticated = Some(self.unauthenticated(e, &text));
                            continue;
                        }
                    },
                };
                let Ok(reply) = Reply::decode(plain) else {
                    continue;
                };
                if reply.id() == Some(req.id) || reply.id().is_none() {
                    // A GET too large for one datagram is refused whole
                    // (TOOBIG); `get` then asks again in halves.
                    return Ok(Some(reply));
                }
            }
        }
        unauthenticated.map_or(Ok(None), Err)
    }
}

/// Whether an error means the connection was already dead when used.
fn stale(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
    )
}

fn check_id(reply: &Reply, id: u64) -> io::Result<()> {
    match reply.id() {
        Some(got) if got != id => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("reply id {got} for request {id}"),
        )),
        _ => Ok(()),
    }
}

/// Whether an error answer means "that host never claimed the service".
pub fn is_no_such(e: &CallError) -> bool {
    matches!(e, CallError::Refused(p) if p.code == ErrorCode::NoSuch)
}

#[cfg(test)]
mod tests {
    //! Fake fairds on 127.0.0.1 that answer a signed failsh with what its
    //! key cannot verify. Every wait is bounded.

    use super::*;
    use failover::auth::Key;
    use std::sync::Arc;
    use std::time::Duration;

    fn host(port: u16, protocol: Protocol) -> HostConfig {
        let key = Key::new("k1", Some("genesis"), &[1; 32]).unwrap();
        HostConfig {
            name: "peer".into(),
            address: "127.0.0.1".into(),
            port,
            protocol,
            community: "genesis".into(),
            key_file: None,
            key_id: None,
            key: Some(Arc::new(key)),
        }
    }

    fn client(addr: SocketAddr, protocol: Protocol) -> Client {
        Client::new(host(addr.port(), protocol), Ok(vec![addr]))
    }

    /// What a faild without the key answers a signed request: unsigned.
    fn refusal(request: &str) -> String {
        let plain = &request[request.find("FAIL/1 ").expect("a request")..];
        let id = plain.split(' ').nth(1).unwrap();
        format!("FAIL/1 {id} ERR DENIED unknown key id \"k1\"\n")
    }

    /// A faild refusing the signature answered: an error answer (the peer
    /// is UNKNOWN), never no answer (INDOUBT, then FAIL).
    #[tokio::test]
    async fn an_unsigned_refusal_is_an_answer_not_silence() {
        // TCP.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            let mut s = BufReader::new(s);
            let mut line = String::new();
            s.read_line(&mut line).await.unwrap();
            s.get_mut()
                .write_all(refusal(&line).as_bytes())
                .await
                .unwrap();
            // Held open: the client must not wait for more.
            let _ = s.read_line(&mut line).await;
        });
        let mut c = client(addr, Protocol::Tcp);
        let got = c.get(&["vip".into()], Duration::from_secs(5)).await;
        assert!(
            matches!(&got[0].1, Err(CallError::Unauthenticated(why)) if why.contains("unknown key id")),
            "{got:?}"
        );
        assert_eq!(c.auth_failures, 1);
        drop(c);
        server.await.unwrap();

        // UDP: the refusal is skipped while the real reply may still come,
        // and is the error at the end.
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let mut buf = vec![0; 65_536];
            while let Ok(Ok((n, peer))) =
                tokio::time::timeout(Duration::from_secs(2), socket.recv_from(&mut buf)).await
            {
                let line = String::from_utf8_lossy(&buf[..n]).to_string();
                let _ = socket.send_to(refusal(&line).as_bytes(), peer).await;
            }
        });
        let mut c = client(addr, Protocol::Udp);
        let got = c.get(&["vip".into()], Duration::from_millis(400)).await;
        assert!(
            matches!(&got[0].1, Err(CallError::Unauthenticated(why)) if why.contains("unknown key id")),
            "{got:?}"
        );
        assert!(c.auth_failures >= 1);
        server.await.unwrap();
    }

    /// Forged datagrams make failsh neither send more requests (each one
    /// a nonce faild must remember) nor lose the real reply.
    #[tokio::test]
    async fn forged_datagrams_do_not_make_failsh_send() {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        const FORGED: usize = 200;
        let server = tokio::spawn(async move {
            let mut buf = vec![0; 65_536];
            let mut requests = 0;
            while let Ok(Ok((n, peer))) =
                tokio::time::timeout(Duration::from_millis(1500), socket.recv_from(&mut buf)).await
            {
                requests += 1;
                if requests == 1 {
                    let line = String::from_utf8_lossy(&buf[..n]).to_string();
                    let forged = format!("AUTH/1 k1 {}\n{}", "ab".repeat(32), refusal(&line));
                    for _ in 0..FORGED {
                        let _ = socket.send_to(forged.as_bytes(), peer).await;
                    }
                }
            }
            requests
        });
        let mut c = client(addr, Protocol::Udp);
        let limit = Duration::from_millis(800);
        let got = c.get(&["vip".into()], limit).await;
        assert!(
            matches!(&got[0].1, Err(CallError::Unauthenticated(why)) if why.contains("bad signature")),
            "{got:?}"
        );
        let requests = server.await.unwrap();
        println!("requests sent for {FORGED} forged datagrams: {requests}");
        assert!(
            (1..=5).contains(&requests),
            "one send per quarter of the limit, whatever arrives: {requests}"
        );
        assert!(c.auth_failures >= 1, "{}", c.auth_failures);
    }
}
