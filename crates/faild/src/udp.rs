//! The UDP side: one request per datagram, one reply datagram.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use failover::auth::Seal;
use failover::proto::udp::bounded_reply;
use failover::proto::{ErrorCode, Op, Reply};
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
        // bounded to three times the request (see `reply_to`), faild is no
        // use for reflecting traffic at a forged source address.
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
                    // Bounded by this datagram's size (and sealed for its
                    // nonce), not the first one's.
                    Seen::Answered(reply) => {
                        reply_to(&socket, peer, &reply, n, seal.as_ref()).await
                    }
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
                            reply_to(&socket, peer, &reply, n, seal.as_ref()).await;
                            recent
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .answer(key, reply);
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

/// Sends `reply` within the UDP size rule ([`bounded_reply`]): at most
/// three times the request's size, the auth line of a signed request's
/// reply included, or nothing at all.
async fn reply_to(
    socket: &UdpSocket,
    peer: SocketAddr,
    reply: &Reply,
    request_len: usize,
    seal: Option<&Seal>,
) {
    let overhead = seal.map_or(0, Seal::reply_overhead);
    match bounded_reply(reply, request_len, overhead) {
        Some(text) => {
            let text = match seal {
                Some(seal) => seal.seal_reply(&text),
                None => text,
            };
            if let Err(e) = socket.send_to(text.as_bytes(), peer).await {
                debug!(target: "net", "udp reply to {peer} failed: {e}");
            }
        }
        None => {
            debug!(target: "proto", "{peer}: no reply fits within 3 times a {request_len}-byte request")
        }
    }
}

/// What faild knows of a write request it may have seen before.
enum Seen {
    New,
    InFlight,
    Answered(Reply),
}

/// Writes answered lately, by (source, request id): UDP clients resend until
/// they get a reply, and a resent SET or DEL must not be done twice (a late
/// duplicate could undo another client's newer change).
#[derive(Default)]
struct RecentWrites {
    answers: HashMap<(SocketAddr, u64), (Instant, Option<Reply>)>,
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
            Some((_, Some(reply))) => Seen::Answered(reply.clone()),
            Some((_, None)) => Seen::InFlight,
            None => {
                self.answers.insert(key, (now, None));
                self.order.push_back(key);
                Seen::New
            }
        }
    }

    fn answer(&mut self, key: (SocketAddr, u64), reply: Reply) {
        if let Some(entry) = self.answers.get_mut(&key) {
            entry.1 = Some(reply);
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
        let reply = Reply::error(Some(1), ErrorCode::Busy, "");
        r.answer((a, 1), reply.clone());
        assert!(matches!(r.check_in((a, 1)), Seen::Answered(t) if t == reply));
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
}
