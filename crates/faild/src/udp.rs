//! The UDP side: one request per datagram, one reply datagram.

use std::net::SocketAddr;
use std::sync::Arc;

use failover::proto::{ErrorCode, MAX_UDP_REPLY, Reply, Request};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

use crate::store::Store;

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
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, peer) = tokio::select! {
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
        // Only a datagram that looks like ours gets an answer, so faild can't
        // be used to reflect traffic at a forged source address.
        if !datagram.starts_with(b"FAIL/") {
            debug!(target: "proto", "{peer}: ignored a {n}-byte datagram that is not a request");
            continue;
        }
        match Request::parse(datagram) {
            Ok(req) if req.op.writes() => {
                let (socket, store) = (socket.clone(), store.clone());
                tracker.spawn(async move {
                    let reply = store.handle(req, peer).await;
                    reply_to(&socket, peer, &reply).await;
                });
            }
            Ok(req) => {
                let reply = store.handle(req, peer).await;
                reply_to(&socket, peer, &reply).await;
            }
            Err(e) => {
                debug!(target: "proto", "{peer}: bad request: {e}");
                reply_to(&socket, peer, &Reply::Error(e)).await;
            }
        }
    }
}

async fn reply_to(socket: &UdpSocket, peer: SocketAddr, reply: &Reply) {
    let mut text = reply.encode();
    if text.len() > MAX_UDP_REPLY {
        text = Reply::error(
            reply.id(),
            ErrorCode::TooBig,
            "reply too large for UDP; use TCP",
        )
        .encode();
    }
    if let Err(e) = socket.send_to(text.as_bytes(), peer).await {
        debug!(target: "net", "udp reply to {peer} failed: {e}");
    }
}
