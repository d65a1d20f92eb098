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

/// Probes an idle client after this long, then every [`PROBE_EVERY`];
/// [`PROBES`] unanswered probes end the connection. A client whose host
/// vanished (a debug client following a quiet log) so frees its slot within
/// about a minute instead of hours.
const IDLE_BEFORE_PROBES: u32 = 30;
const PROBE_EVERY: u32 = 10;
const PROBES: u32 = 3;

fn keepalive(stream: &TcpStream) -> nix::Result<()> {
    use nix::sys::socket::{setsockopt, sockopt};
    setsockopt(stream, sockopt::KeepAlive, &true)?;
    setsockopt(stream, sockopt::TcpKeepIdle, &IDLE_BEFORE_PROBES)?;
    setsockopt(stream, sockopt::TcpKeepInterval, &PROBE_EVERY)?;
    setsockopt(stream, sockopt::TcpKeepCount, &PROBES)
}

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
        if let Err(e) = keepalive(&stream) {
            debug!(target: "monitor", "{what} port: {peer}: no TCP keepalive: {e}");
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{getsockopt, sockopt};

    #[tokio::test]
    async fn accepted_clients_are_probed_and_capped() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let hold = CancellationToken::new();
        let (h, s) = (hold.clone(), shutdown.clone());
        tokio::spawn(accept_loop(
            listener,
            "test",
            1,
            Some("busy\n".into()),
            s,
            move |stream, _| {
                let tx = tx.clone();
                let hold = h.clone();
                async move {
                    let probed = getsockopt(&stream, sockopt::KeepAlive).unwrap()
                        && getsockopt(&stream, sockopt::TcpKeepIdle).unwrap() == IDLE_BEFORE_PROBES;
                    tx.send(probed).unwrap();
                    hold.cancelled().await; // keep the one slot taken
                }
            },
        ));
        let _first = TcpStream::connect(addr).await.unwrap();
        assert_eq!(rx.recv().await, Some(true));
        // Over the cap: told so and closed.
        let mut second = TcpStream::connect(addr).await.unwrap();
        let mut answer = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut second, &mut answer)
            .await
            .unwrap();
        assert_eq!(answer, "busy\n");
        hold.cancel();
        shutdown.cancel();
    }
}
