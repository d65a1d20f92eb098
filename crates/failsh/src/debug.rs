//! The debug port (`-D`, faildebug's): a client must send the community
//! first; then it gets the text snapshot.

use std::sync::Arc;
use std::time::Duration;

use failover::community::same_secret;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::engine::Engine;

/// Serves debug clients until shutdown.
pub async fn serve(
    listener: TcpListener,
    engine: Arc<Engine>,
    community: String,
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
            let mut line = String::new();
            let mut reader = BufReader::new(&mut stream);
            let read =
                tokio::time::timeout(Duration::from_secs(5), reader.read_line(&mut line)).await;
            if !matches!(read, Ok(Ok(_))) || !same_secret(line.trim_end(), &community) {
                debug!(target: "monitor", "{peer}: wrong community on the debug port");
                let _ = stream.write_all(b"denied\n").await;
                return;
            }
            let _ = stream
                .write_all(
                    engine
                        .snapshot(failover::monitor::Reason::Connect)
                        .text()
                        .as_bytes(),
                )
                .await;
        });
    }
}
