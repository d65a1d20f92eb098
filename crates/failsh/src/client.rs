//! Talking to a faild: batched GETs for polling, SETs for the local record.
//! One client per host, reused across polls (a TCP connection stays open).

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use failover::Record;
use failover::State;
use failover::auth::{Seal, Signer, open_reply_any};
use failover::proto::{
    ErrorCode, Header, Item, MAX_GET_NAMES, Op, Origin, ProtoError, Reply, Request, get_batches,
    udp,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UdpSocket};

use crate::config::{HostConfig, Protocol};

/// Names per UDP GET: replies must fit in one 1,400-byte datagram.
const UDP_NAMES: usize = 12;

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
}

impl From<io::Error> for CallError {
    fn from(e: io::Error) -> CallError {
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
    /// Replies that failed authentication (forged, or unsigned): each is
    /// taken as no answer, never as a state.
    pub auth_failures: u64,
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
        }
    }

    /// Whether requests to this host are signed.
    pub fn signs(&self) -> bool {
        self.signer.is_some()
    }

    /// The line to send for a request: signed, with the seal that opens its
    /// reply, when the host has a key.
    fn envelope(&mut self, plain: String) -> (String, Option<Seal>) {
        match &mut self.signer {
            None => (plain, None),
            Some(signer) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let (line, seal) = signer.sign(now, &plain);
                (line, Some(seal))
            }
        }
    }

    /// Counts a reply that failed authentication; the error says it was no
    /// answer (never a state).
    fn unauthenticated(&mut self, e: failover::auth::AuthError) -> io::Error {
        self.auth_failures += 1;
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("reply not authenticated: {e}"),
        )
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
        let result = tokio::time::timeout(limit, async {
            match self.host.protocol {
                Protocol::Tcp => {
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
                }
                Protocol::Udp => self.udp_call(&req, limit).await,
            }
        })
        .await
        .unwrap_or_else(|_| {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no reply within {limit:?}"),
            ))
        });
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
        let (request, seal) = self.envelope(req.encode());
        let conn = self.tcp.as_mut().expect("connected above");
        conn.get_mut().write_all(request.as_bytes()).await?;
        let mut line = String::new();
        if conn.read_line(&mut line).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        let mut text = line.clone();
        if seal.is_some() && line.starts_with("AUTH/") {
            line.clear();
            conn.read_line(&mut line).await?;
            text.push_str(&line);
        }
        let garbled = |e: String| io::Error::new(io::ErrorKind::InvalidData, e);
        if let Header::Items { count, .. } = Header::parse(&line).map_err(garbled)? {
            for _ in 0..count {
                line.clear();
                conn.read_line(&mut line).await?;
                text.push_str(&line);
            }
        }
        let plain = match &seal {
            None => text.as_str(),
            Some(seal) => match seal.open_reply(&text) {
                Ok(plain) => plain,
                Err(e) => return Err(self.unauthenticated(e)),
            },
        };
        let reply = Reply::decode(plain).map_err(garbled)?;
        check_id(&reply, req.id)?;
        Ok(reply)
    }

    /// Sends the request, resending every quarter of the limit until a reply
    /// with its id arrives.
    async fn udp_call(&mut self, req: &Request, limit: Duration) -> io::Result<Reply> {
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
        let mut buf = vec![0u8; 65_536];
        // Every resend is signed afresh (faild refuses a nonce twice); a late
        // reply to an earlier send opens with that send's seal. A datagram
        // that fails authentication is skipped: the real reply may follow.
        let mut seals: Vec<Seal> = Vec::new();
        loop {
            let (text, seal) = self.envelope(plain.clone());
            seals.extend(seal);
            socket.send(text.as_bytes()).await?;
            let wait = (limit / 4).max(Duration::from_millis(5));
            if let Ok(n) = tokio::time::timeout(wait, socket.recv(&mut buf)).await {
                let n = n?;
                let text = String::from_utf8_lossy(&buf[..n]);
                let plain = match self.signer.is_some() {
                    false => Ok(&*text),
                    true => open_reply_any(&seals, &text),
                };
                let plain = match plain {
                    Ok(plain) => plain,
                    Err(e) => {
                        let e = self.unauthenticated(e);
                        tracing::debug!("{}: {e}", self.host.name);
                        continue;
                    }
                };
                let Ok(reply) = Reply::decode(plain) else {
                    continue;
                };
                if reply.id() == Some(req.id) || reply.id().is_none() {
                    // A GET too large for one datagram is refused whole
                    // (TOOBIG); `get` then asks again in halves.
                    return Ok(reply);
                }
            }
        }
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
