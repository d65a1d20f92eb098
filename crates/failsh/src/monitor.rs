//! The monitor port (failmon's) and the metrics endpoint.
//!
//! Monitor protocol (`docs/monitor-protocol.md`): failsh pushes one JSON
//! [`Snapshot`](failover::monitor::Snapshot) per line — on connect, after
//! every change, and otherwise once a second so that ages and round-trip
//! times stay fresh. Clients send nothing.
//!
//! Both ports share [`accept_loop`]'s bounds: a monitor client that does
//! not read what it is pushed, or a metrics client that does not finish its
//! request, is pushed out for a newcomer, and dropped anyway after
//! [`WRITE_LIMIT`] or [`REQUEST_LIMIT`]. A monitor client that has kept up
//! with [`SETTLE_PUSHES`] pushes is never pushed out while it keeps up.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use failover::monitor::Reason;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, timeout};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::engine::Engine;
use crate::listen::{Port, Slot, accept_loop};
use crate::slots::Limits;
use crate::unread::{Window, advertised};

/// Clients served at once per port, in all and per address (an IPv6 /48;
/// the loopback has no per-address limit, see [`crate::slots`]).
pub const LIMITS: Limits = Limits {
    max: 64,
    per_source: 8,
    grace: GRACE,
};
/// How long a client may owe the port something (a request, reading a
/// push) before a newcomer may push it out.
const GRACE: Duration = Duration::from_millis(250);
/// A monitor client proves it reads once it has taken this many pushes
/// without being seen behind: from then on (while it keeps up) no newcomer
/// may push it out. A client that does not read is seen behind after about
/// 5 pushes (`unread`'s test), so it never gets that far; until then a
/// newcomer may push it out.
pub const SETTLE_PUSHES: u32 = 10;
/// A monitor client that has not read its pushes for this long (seen from
/// its receive window, see [`crate::unread`]) or takes longer than this to
/// take one push is dropped.
pub const WRITE_LIMIT: Duration = Duration::from_secs(5);
/// A metrics client must send its request line and headers within this.
pub const REQUEST_LIMIT: Duration = Duration::from_secs(5);
/// Told to a metrics client when every slot is held by clients that may
/// not be pushed out.
const METRICS_BUSY: &str = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
/// At most one refresh push a second.
const REFRESH: Duration = Duration::from_secs(1);
/// Changes are pushed at most this often (those in between are coalesced),
/// so that busy services cannot make monitors cost failsh much.
const MIN_GAP: Duration = Duration::from_millis(250);

/// Serves failmon clients until shutdown.
pub async fn serve(listener: TcpListener, engine: Arc<Engine>, shutdown: CancellationToken) {
    let port = Port {
        what: "monitor",
        limits: LIMITS,
        busy: None,
    };
    accept_loop(listener, port, shutdown, move |stream, peer, slot| {
        push(stream, peer, slot, engine.clone())
    })
    .await;
}

/// Pushes snapshots to one client until it goes away or falls behind.
async fn push(stream: TcpStream, peer: SocketAddr, slot: Slot, engine: Arc<Engine>) {
    let (mut read, mut write) = stream.into_split();
    // Clients send nothing: what they send is read and ignored, and the end
    // of it means the client left — its slot is free at once, not after the
    // next push or two fail.
    let gone = async move {
        let mut scratch = [0u8; 512];
        while matches!(read.read(&mut scratch).await, Ok(n) if n > 0) {}
    };
    tokio::pin!(gone);
    let mut changes = engine.subscribe();
    changes.mark_unchanged();
    let mut reason = Reason::Connect;
    let mut window = Window::default();
    let mut behind_since = None;
    let mut last_push = 0;
    let mut pushes = 0;
    loop {
        let mut line = match serde_json::to_string(&engine.snapshot(reason)) {
            Ok(l) => l,
            Err(e) => {
                debug!(target: "monitor", "snapshot not encoded: {e}");
                return;
            }
        };
        line.push('\n');
        if advertised(write.as_ref()).is_some_and(|now| window.behind(now, last_push)) {
            slot.stalled();
            let since = *behind_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= WRITE_LIMIT {
                debug!(target: "monitor", "monitor port: {peer} dropped: has not read its snapshots for {WRITE_LIMIT:?}");
                return;
            }
        } else {
            behind_since = None;
            if pushes >= SETTLE_PUSHES {
                slot.progressing();
            }
        }
        if !matches!(
            timeout(WRITE_LIMIT, write.write_all(line.as_bytes())).await,
            Ok(Ok(()))
        ) {
            debug!(target: "monitor", "monitor port: {peer} dropped: a snapshot not taken within {WRITE_LIMIT:?}");
            return;
        }
        last_push = line.len();
        pushes += 1;
        let sent = Instant::now();
        reason = tokio::select! {
            _ = &mut gone => return,
            r = changes.changed() => match r {
                Ok(()) => Reason::Change,
                Err(_) => return,
            },
            _ = tokio::time::sleep_until(sent + REFRESH) => Reason::Refresh,
        };
        tokio::select! {
            _ = &mut gone => return,
            _ = tokio::time::sleep_until(sent + MIN_GAP) => {}
        }
        changes.mark_unchanged(); // the next snapshot includes them
    }
}

/// Serves `GET /metrics` (Prometheus text format) until shutdown.
pub async fn serve_metrics(
    listener: TcpListener,
    engine: Arc<Engine>,
    shutdown: CancellationToken,
) {
    let port = Port {
        what: "metrics",
        limits: LIMITS,
        busy: Some(METRICS_BUSY.into()),
    };
    accept_loop(listener, port, shutdown, move |stream, _, _| {
        metrics(stream, engine.clone())
    })
    .await;
}

/// One HTTP/1.x request, answered and closed. The client owes the port
/// its request and then reading the answer, so it owes something for its
/// whole session (as from its admission): a scraper is done well within the
/// grace, a slow or idle one makes way for a newcomer.
async fn metrics(mut stream: TcpStream, engine: Arc<Engine>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    let read = timeout(REQUEST_LIMIT, async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        true
    })
    .await;
    if read != Ok(true) {
        return;
    }
    let request = String::from_utf8_lossy(&head);
    let mut words = request.split_whitespace();
    let (status, kind, body) = match (words.next(), words.next()) {
        (Some("GET"), Some("/metrics")) => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            engine.snapshot(Reason::Refresh).prometheus(),
        ),
        (Some("GET"), _) => ("404 Not Found", "text/plain", "try /metrics\n".into()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "GET /metrics only\n".into(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = timeout(WRITE_LIMIT, stream.write_all(response.as_bytes())).await;
}
