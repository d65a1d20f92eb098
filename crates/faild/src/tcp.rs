//! The TCP side: accepting under a connection cap, and one task per
//! connection answering newline-framed requests in order.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use failover::proto::{ErrorCode, Reply};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::access::{Admitted, Refused, sealed};
use crate::connection::{LineError, LineReader};
use crate::store::Store;

/// Limits that keep one client from hurting the others.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub idle_timeout: Duration,
    /// A client that does not read its replies is dropped after this long.
    pub write_timeout: Duration,
}

/// The open connections, so that at the cap the longest-idle one can be
/// closed: a flood of idle sockets must not lock out a poller.
#[derive(Debug)]
pub struct Connections {
    epoch: Instant,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Slot>>,
}

#[derive(Debug)]
struct Slot {
    last_active: Arc<AtomicU64>,
    close: CancellationToken,
}

impl Connections {
    pub fn new() -> Arc<Connections> {
        Arc::new(Connections {
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Registers a new connection, first closing the longest-idle one when
    /// `cap` connections are already open.
    fn admit(self: &Arc<Self>, cap: usize, shutdown: &CancellationToken) -> Ticket {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.len() >= cap
            && let Some((&victim, _)) = open
                .iter()
                .min_by_key(|(_, s)| s.last_active.load(Ordering::Relaxed))
        {
            let slot = open.remove(&victim).expect("victim is in the map");
            slot.close.cancel();
            debug!(target: "net", "connection cap {cap} reached: closed the longest-idle connection");
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let last_active = Arc::new(AtomicU64::new(self.now_ms()));
        let close = shutdown.child_token();
        open.insert(
            id,
            Slot {
                last_active: last_active.clone(),
                close: close.clone(),
            },
        );
        Ticket {
            table: self.clone(),
            id,
            last_active,
            close,
        }
    }

    pub fn open_count(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// A connection's place in [`Connections`]; leaving it frees the place.
struct Ticket {
    table: Arc<Connections>,
    id: u64,
    last_active: Arc<AtomicU64>,
    close: CancellationToken,
}

impl Ticket {
    fn touch(&self) {
        self.last_active
            .store(self.table.now_ms(), Ordering::Relaxed);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.table
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

/// Accepts until shutdown; each connection runs in its own tracked task.
pub async fn serve(
    listener: TcpListener,
    store: Arc<Store>,
    conns: Arc<Connections>,
    limits: Limits,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                let ticket = conns.admit(limits.max_connections, &shutdown);
                tracker.spawn(handle(stream, peer, store.clone(), limits, ticket));
            }
            Err(e) => {
                // Out of file descriptors and the like: back off briefly
                // instead of spinning; clients already connected go on.
                warn!(target: "net", "accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn handle(
    stream: TcpStream,
    peer: SocketAddr,
    store: Arc<Store>,
    limits: Limits,
    ticket: Ticket,
) {
    let _ = stream.set_nodelay(true);
    let (rd, mut wr) = stream.into_split();
    let mut reader = LineReader::new(rd);
    loop {
        let line = tokio::select! {
            biased; // once closed (shutdown or eviction), pipelined requests are not started
            _ = ticket.close.cancelled() => break,
            r = tokio::time::timeout(limits.idle_timeout, reader.next_line()) => r,
        };
        let (text, last) = match line {
            Err(_) => {
                debug!(target: "net", "{peer}: idle for {:?}, closing", limits.idle_timeout);
                break;
            }
            Ok(Ok(None)) | Ok(Err(LineError::Io(_))) => break,
            Ok(Err(LineError::TooLong)) => {
                debug!(target: "proto", "{peer}: request too long, closing");
                let msg = format!("request longer than {} bytes", failover::proto::MAX_REQUEST);
                (Reply::error(None, ErrorCode::TooBig, msg).encode(), true)
            }
            Ok(Err(LineError::Unterminated)) => {
                debug!(target: "proto", "{peer}: connection ended inside a request; not executed");
                let msg = "request not ended by a newline; not executed";
                (
                    Reply::error(None, ErrorCode::BadRequest, msg).encode(),
                    true,
                )
            }
            Ok(Ok(Some(line))) if line.iter().all(u8::is_ascii_whitespace) => continue,
            Ok(Ok(Some(line))) => {
                ticket.touch();
                let text = match store.admit(&line, peer) {
                    Ok(Admitted { request, seal }) => {
                        debug!(target: "proto", "{peer}: {} {:?}", request.id, request.op);
                        sealed(seal.as_ref(), store.answer(request, peer).await)
                    }
                    Err(refused) => {
                        let Refused { reply, seal, .. } = *refused;
                        debug!(target: "proto", "{peer}: refused: {reply:?}");
                        sealed(seal.as_ref(), reply.encode())
                    }
                };
                (text, false)
            }
        };
        let sent = tokio::time::timeout(limits.write_timeout, wr.write_all(text.as_bytes())).await;
        if last || !matches!(sent, Ok(Ok(()))) {
            break;
        }
    }
}
