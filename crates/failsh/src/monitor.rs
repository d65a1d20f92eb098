//! The monitor port (failmon's) and the debug port: a text snapshot of every
//! service per connection.

use std::sync::Arc;
use std::time::Duration;

use failover::community::same_secret;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::engine::Engine;

/// Serves the snapshot to every client; with a community, only to a client
/// whose first line is that community (the debug port).
pub async fn serve(
    listener: TcpListener,
    engine: Arc<Engine>,
    community: Option<String>,
    shutdown: CancellationToken,
) {
    loop {
        let (mut stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    debug!(target: "monitor", "accept failed: {e}");
                    continue;
                }
            },
        };
        let engine = engine.clone();
        let community = community.clone();
        tokio::spawn(async move {
            if let Some(expected) = community {
                let mut line = String::new();
                let mut reader = BufReader::new(&mut stream);
                let read =
                    tokio::time::timeout(Duration::from_secs(5), reader.read_line(&mut line)).await;
                let same = same_secret(line.trim_end(), &expected);
                if !matches!(read, Ok(Ok(_))) || !same {
                    debug!(target: "monitor", "{peer}: wrong community on the debug port");
                    let _ = stream.write_all(b"denied\n").await;
                    return;
                }
            }
            let _ = stream.write_all(engine.snapshot().as_bytes()).await;
        });
    }
}
