//! The monitor port (failmon's) and the metrics endpoint.
//!
//! Monitor protocol (`docs/monitor-protocol.md`): failsh pushes one JSON
//! [`Snapshot`](failover::monitor::Snapshot) per line — on connect, after
//! every change, and otherwise once a second so that ages and round-trip
//! times stay fresh. Clients send nothing.

use std::sync::Arc;
use std::time::Duration;

use failover::monitor::Reason;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, timeout};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::engine::Engine;
use crate::listen::accept_loop;

/// Clients served at once per port; more are turned away.
const MAX_CLIENTS: usize = 64;
/// A client that takes longer than this to take one push is dropped.
const WRITE_LIMIT: Duration = Duration::from_secs(5);
/// At most one refresh push a second.
const REFRESH: Duration = Duration::from_secs(1);
/// Changes are pushed at most this often (those in between are coalesced),
/// so that busy services cannot make monitors cost failsh much.
const MIN_GAP: Duration = Duration::from_millis(250);

/// Serves failmon clients until shutdown.
pub async fn serve(listener: TcpListener, engine: Arc<Engine>, shutdown: CancellationToken) {
    accept_loop(
        listener,
        "monitor",
        MAX_CLIENTS,
        None,
        shutdown,
        move |stream, _| push(stream, engine.clone()),
    )
    .await;
}

/// Pushes snapshots to one client until it goes away or falls behind.
async fn push(mut stream: TcpStream, engine: Arc<Engine>) {
    let mut changes = engine.subscribe();
    changes.mark_unchanged();
    let mut reason = Reason::Connect;
    loop {
        let mut line = match serde_json::to_string(&engine.snapshot(reason)) {
            Ok(l) => l,
            Err(e) => {
                debug!(target: "monitor", "snapshot not encoded: {e}");
                return;
            }
        };
        line.push('\n');
        if !matches!(
            timeout(WRITE_LIMIT, stream.write_all(line.as_bytes())).await,
            Ok(Ok(()))
        ) {
            return;
        }
        let sent = Instant::now();
        reason = tokio::select! {
            r = changes.changed() => match r {
                Ok(()) => Reason::Change,
                Err(_) => return,
            },
            _ = tokio::time::sleep_until(sent + REFRESH) => Reason::Refresh,
        };
        tokio::time::sleep_until(sent + MIN_GAP).await;
        changes.mark_unchanged(); // the next snapshot includes them
    }
}

/// Serves `GET /metrics` (Prometheus text format) until shutdown.
pub async fn serve_metrics(
    listener: TcpListener,
    engine: Arc<Engine>,
    shutdown: CancellationToken,
) {
    accept_loop(
        listener,
        "metrics",
        MAX_CLIENTS,
        None,
        shutdown,
        move |stream, _| metrics(stream, engine.clone()),
    )
    .await;
}

/// One HTTP/1.x request, answered and closed.
async fn metrics(mut stream: TcpStream, engine: Arc<Engine>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    let read = timeout(Duration::from_secs(5), async {
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
