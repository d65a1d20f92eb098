//! The accept loop every failsh port shares (monitor, metrics, debug): a
//! cap on clients served at once, and nothing a client does can stop it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::debug;

/// Accepts connections until shutdown and runs `handle` for each, at most
/// `max` at once; a client over the cap gets `busy` (if any, best effort)
/// and is closed. Every handler ends at shutdown.
pub async fn accept_loop<F, Fut>(
    listener: TcpListener,
    what: &'static str,
    max: usize,
    busy: Option<String>,
    shutdown: CancellationToken,
    handle: F,
) where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(max));
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    // E.g. out of file descriptors: wait rather than spin.
                    debug!(target: "monitor", "{what} port: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            debug!(target: "monitor", "{what} port: {peer} turned away: {max} clients already");
            if let Some(msg) = &busy {
                // Never waits: the client may not read.
                let _ = stream.try_write(msg.as_bytes());
            }
            continue;
        };
        let session = handle(stream, peer);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _slot = slot;
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = session => {}
            }
        });
    }
}
