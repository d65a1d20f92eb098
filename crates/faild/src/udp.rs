//! The UDP side: one request per datagram, one reply datagram.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use failover::auth::Seal;
use failover::proto::{ErrorCode, Header, MAX_UDP_REPLY, Op, Reply};
use tokio::net::UdpSocket;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

use crate::access::{Admitted, Refused};
use crate::store::Store;

/// Most changes waiting for the disk at once per socket; a datagram beyond
/// that is dropped (its sender resends) instead of queueing without bound.
const MAX_PENDING_WRITES: usize = 64;

/// Serves one socket until shutdown. Reads are answered inline (they never
/// wait); changes wait for the disk, so each runs in its own task and a slow
/// write never holds up the polls behind it.
pub async fn serve(
    socket: UdpSocket,
    store: Arc<Store>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let socket = Arc::new(socket);
    let writes = Arc::new(Semaphore::new(MAX_PENDING_WRITES));
    let recent = Arc::new(Mutex::new(RecentWrites::default()));
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, peer) = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            r = socket.recv_from(&mut buf) => match r {
                Ok(r) => r,
                Err(e) => {
                    debug!(target: "net", "udp receive failed: {e}");
                    continue;
                }
            },
        };
        let datagram = &buf[..n];
        // Only a datagram that looks like ours gets an answer; with replies
        // capped (see `reply_to`), faild is no use for reflecting traffic at
        // a forged source address.
        if !(datagram.starts_with(b"FAIL/") || datagram.starts_with(b"AUTH/")) {
            debug!(target: "proto", "{peer}: ignored a {n}-byte datagram that is not a request");
            continue;
        }
        let admitted = match datagram.strip_suffix(b"\n").unwrap_or(datagram) {
            one if one.contains(&b'\n') => Err(Box::new(Refused {
                reply: Reply::error(None, ErrorCode::BadRequest, "one request per datagram"),
                seal: None,
                auth: None,
            })),
            one => store.admit(one, peer),
        };
        let (req, seal) = match admitted {
            Ok(Admitted { request, seal }) => (request, seal),
            Err(refused) => {
                let Refused { reply, seal, .. } = *refused;
                reply_to(&socket, peer, &reply, n, seal.as_ref()).await;
                continue;
            }
        };
        match &req.op {
            Op::List => {
                let msg = "LIST is served over TCP only (its reply can be large)";
                let reply = Reply::error(Some(req.id), ErrorCode::TooBig, msg);
                reply_to(&socket, peer, &reply, n, seal.as_ref()).await;
            }
            op if op.writes() => {
                // A resent write (same source, same id) gets the first
                // answer again instead of being done twice.
                let key = (peer, req.id);
                let seen = recent
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .check_in(key);
                match seen {
                    Seen::Answered(text) => send(&socket, peer, &text, seal.as_ref()).await,
                    Seen::InFlight => {}
                    Seen::New => {
                        let Ok(permit) = writes.clone().try_acquire_owned() else {
                            debug!(target: "net", "{peer}: {MAX_PENDING_WRITES} writes pending; dropped one");
                            recent.lock().unwrap_or_else(|p| p.into_inner()).forget(key);
                            continue;
                        };
                        let (socket, store, recent) =
                            (socket.clone(), store.clone(), recent.clone());
                        tracker.spawn(async move {
                            let reply = store.handle(&req, peer).await;
                            let text = capped(&reply, n);
                            recent
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .answer(key, text.clone());
                            send(&socket, peer, &text, seal.as_ref()).await;
                            drop(permit);
                        });
                    }
                }
            }
            _ => {
                let reply = store.handle(&req, peer).await;
                reply_to(&socket, peer, &reply, n, seal.as_ref()).await;
            }
        }
    }
}

/// The reply as sent over UDP: at most [`MAX_UDP_REPLY`] bytes, and an error
/// carries its message only when that keeps it within three times the
/// request's size, so a forged request cannot be amplified much.
fn capped(reply: &Reply, request_len: usize) -> String {
    let text = reply.encode();
    match reply {
        Reply::Items { id, .. } if text.len() > MAX_UDP_REPLY => Reply::error(
            Some(*id),
            ErrorCode::TooBig,
            "reply too large for UDP; use TCP",
        )
        .encode(),
        Reply::Error(e) if text.len() > 3 * request_len => Reply::error(e.id, e.code, "").encode(),
        _ => text,
    }
}

async fn reply_to(
    socket: &UdpSocket,
    peer: SocketAddr,
    reply: &Reply,
    request_len: usize,
    seal: Option<&Seal>,
) {
    send(socket, peer, &capped(reply, request_len), seal).await;
}

/// Sends a reply (the text of [`capped`]), sealed for a signed request.
/// The auth line must not push a reply past one datagram: then it is TOOBIG.
async fn send(socket: &UdpSocket, peer: SocketAddr, text: &str, seal: Option<&Seal>) {
    let text = match seal {
        None => text.to_string(),
        Some(seal) => match seal.seal_reply(text) {
            big if big.len() > MAX_UDP_REPLY => {
                let id = Header::parse(text.lines().next().unwrap_or("")).ok();
                let id = match id {
                    Some(Header::Items { id, .. }) => Some(id),
                    Some(Header::Error(e)) => e.id,
                    None => None,
                };
                let msg = "reply too large for UDP; use TCP";
                seal.seal_reply(&Reply::error(id, ErrorCode::TooBig, msg).encode())
            }
            sealed => sealed,
        },
    };
    if let Err(e) = socket.send_to(text.as_bytes(), peer).await {
        debug!(target: "net", "udp reply to {peer} failed: {e}");
    }
}

/// What faild knows of a write request it may have seen before.
enum Seen {
    New,
    InFlight,
    Answered(String),
}

/// Writes answered lately, by (source, request id): UDP clients resend until
/// they get a reply, and a resent SET or DEL must not be done twice (a late
/// duplicate could undo another client's newer change).
#[derive(Default)]
struct RecentWrites {
    answers: HashMap<(SocketAddr, u64), (Instant, Option<String>)>,
    order: VecDeque<(SocketAddr, u64)>,
}

impl RecentWrites {
    const KEEP: usize = 4096;
    const FOR: Duration = Duration::from_secs(60);

    fn check_in(&mut self, key: (SocketAddr, u64)) -> Seen {
        let now = Instant::now();
        while let Some(old) = self.order.front() {
            let expired = self
                .answers
                .get(old)
                .is_none_or(|(at, _)| now.duration_since(*at) > Self::FOR);
            if !expired && self.order.len() <= Self::KEEP {
                break;
            }
            let old = self.order.pop_front().expect("front exists");
            self.answers.remove(&old);
        }
        match self.answers.get(&key) {
            Some((_, Some(text))) => Seen::Answered(text.clone()),
            Some((_, None)) => Seen::InFlight,
            None => {
                self.answers.insert(key, (now, None));
                self.order.push_back(key);
                Seen::New
            }
        }
    }

    fn answer(&mut self, key: (SocketAddr, u64), text: String) {
        if let Some(entry) = self.answers.get_mut(&key) {
            entry.1 = Some(text);
        }
    }

    fn forget(&mut self, key: (SocketAddr, u64)) {
        self.answers.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resent_write_is_answered_once_done() {
        let mut r = RecentWrites::default();
        let a: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        assert!(matches!(r.check_in((a, 1)), Seen::New));
        assert!(matches!(r.check_in((a, 1)), Seen::InFlight));
        r.answer((a, 1), "reply".into());
        assert!(matches!(r.check_in((a, 1)), Seen::Answered(t) if t == "reply"));
        assert!(
            matches!(r.check_in((a, 2)), Seen::New),
            "another id is another request"
        );
        let b: SocketAddr = "127.0.0.2:5000".parse().unwrap();
        assert!(
            matches!(r.check_in((b, 1)), Seen::New),
            "another source too"
        );
    }

    #[test]
    fn remembers_a_bounded_number() {
        let mut r = RecentWrites::default();
        let a: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        for id in 0..(RecentWrites::KEEP as u64 * 3) {
            r.check_in((a, id));
        }
        assert!(r.answers.len() <= RecentWrites::KEEP + 1);
        assert_eq!(r.answers.len(), r.order.len());
    }

    #[test]
    fn udp_replies_are_capped() {
        use failover::proto::{Item, Status};
        use failover::{Record, State};
        let record = Record::new(State::Up, None, std::time::UNIX_EPOCH, 1);
        let big = Reply::Items {
            id: 9,
            status: Status::Ok,
            items: (0..100)
                .map(|i| Item::Found(format!("service{i}"), record.clone()))
                .collect(),
        };
        assert!(capped(&big, 30).starts_with("FAIL/1 9 ERR TOOBIG"));
        let err = Reply::error(
            Some(3),
            ErrorCode::BadRequest,
            "a long explanation of what went wrong",
        );
        assert_eq!(capped(&err, 10), "FAIL/1 3 ERR BADREQ \n");
        assert!(capped(&err, 100).contains("explanation"));
    }
}
