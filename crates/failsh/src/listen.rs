//! The accept loop every failsh port shares (monitor, metrics, debug): the
//! clients served at once are bounded, in all and per address, a newcomer
//! pushes out a client that owes the port something rather than be refused
//! but never one that progresses ([`crate::slots`] decides whom), and
//! nothing a client does can stop it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::slots::{Id, Limits, Refused, Slots, Source};

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

/// One port's name (for the log), bounds and busy answer.
pub struct Port {
    pub what: &'static str,
    pub limits: Limits,
    /// Told (best effort) to a client turned away.
    pub busy: Option<String>,
}

type Table = Arc<Mutex<Slots<CancellationToken>>>;

/// A client's hold on its slot: the session tells the table when the
/// client owes the port something (see [`crate::slots`]). A client owes
/// something from its admission until [`Slot::progressing`].
#[derive(Clone)]
pub struct Slot {
    id: Id,
    table: Table,
}

impl Slot {
    fn with<R>(&self, f: impl FnOnce(&mut Slots<CancellationToken>) -> R) -> R {
        f(&mut self.table.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The client owes the port something from now on (e.g. reading what
    /// it was sent); kept from the first call until [`Slot::progressing`].
    pub fn stalled(&self) {
        self.with(|t| t.stall(self.id, Instant::now()));
    }

    /// The client owes the port nothing: it is not pushed out for a
    /// newcomer until it is [`Slot::stalled`] again.
    pub fn progressing(&self) {
        self.with(|t| t.unstall(self.id));
    }
}

/// Accepts connections until shutdown and runs `handle` for each, within
/// `port.limits`; a newcomer that finds no room pushes out a client that
/// owes the port something (see [`crate::slots`]), or else gets
/// `port.busy` and is closed. Every handler ends at shutdown, or when its
/// client is pushed out.
pub async fn accept_loop<F, Fut>(
    listener: TcpListener,
    port: Port,
    shutdown: CancellationToken,
    handle: F,
) where
    F: Fn(TcpStream, SocketAddr, Slot) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let what = port.what;
    let table: Table = Arc::new(Mutex::new(Slots::new(port.limits)));
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
        let ended = CancellationToken::new();
        let admitted = table.lock().unwrap_or_else(PoisonError::into_inner).admit(
            Source::of(peer.ip()),
            Instant::now(),
            ended.clone(),
        );
        let id = match admitted {
            Ok((id, evicted)) => {
                if let Some(out) = evicted {
                    debug!(target: "monitor", "{what} port: a client from {} pushed out for {peer}: {}", out.source, out.why);
                    out.payload.cancel();
                }
                id
            }
            Err(why) => {
                let limits = port.limits;
                match why {
                    Refused::Full => {
                        debug!(target: "monitor", "{what} port: {peer} turned away: {} clients already, none stalled", limits.max)
                    }
                    Refused::SourceFull => {
                        debug!(target: "monitor", "{what} port: {peer} turned away: {} clients from its address already, all progressing", limits.per_source)
                    }
                }
                if let Some(msg) = &port.busy {
                    // Never waits: the client may not read.
                    let _ = stream.try_write(msg.as_bytes());
                }
                continue;
            }
        };
        if let Err(e) = keepalive(&stream) {
            debug!(target: "monitor", "{what} port: {peer}: no TCP keepalive: {e}");
        }
        let slot = Slot {
            id,
            table: table.clone(),
        };
        let session = handle(stream, peer, slot);
        let shutdown = shutdown.clone();
        let table = table.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = ended.cancelled() => {}
                _ = session => {}
            }
            table
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .release(id);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{getsockopt, sockopt};
    use tokio::io::AsyncReadExt;

    /// One slot (all clients come from the loopback, which has no
    /// per-address limit; `crate::slots` tests that).
    fn port(grace: Duration) -> Port {
        Port {
            what: "test",
            limits: Limits {
                max: 1,
                per_source: 2,
                grace,
            },
            busy: Some("busy\n".into()),
        }
    }

    async fn answer(mut s: TcpStream) -> String {
        let mut text = String::new();
        s.read_to_string(&mut text).await.unwrap();
        text
    }

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
            port(Duration::ZERO),
            s,
            move |stream, _, slot| {
                let tx = tx.clone();
                let hold = h.clone();
                async move {
                    slot.progressing();
                    let probed = getsockopt(&stream, sockopt::KeepAlive).unwrap()
                        && getsockopt(&stream, sockopt::TcpKeepIdle).unwrap() == IDLE_BEFORE_PROBES;
                    tx.send(probed).unwrap();
                    hold.cancelled().await; // keep the one slot taken
                }
            },
        ));
        let _first = TcpStream::connect(addr).await.unwrap();
        assert_eq!(rx.recv().await, Some(true));
        // Over the cap, the one client progressing: told so and closed.
        let second = TcpStream::connect(addr).await.unwrap();
        assert_eq!(answer(second).await, "busy\n");
        hold.cancel();
        shutdown.cancel();
    }

    #[tokio::test]
    async fn a_stalled_client_is_pushed_out_for_a_newcomer() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(accept_loop(
            listener,
            port(Duration::ZERO),
            shutdown.clone(),
            move |mut stream, _, slot| {
                let tx = tx.clone();
                async move {
                    // Owes a line (from its admission); says hello once it
                    // came.
                    tx.send(()).unwrap();
                    let mut b = [0u8; 1];
                    if matches!(stream.read(&mut b).await, Ok(1)) {
                        slot.progressing();
                        let _ = tokio::io::AsyncWriteExt::write_all(&mut stream, b"hello\n").await;
                    }
                    std::future::pending::<()>().await;
                }
            },
        ));
        let staller = TcpStream::connect(addr).await.unwrap();
        rx.recv().await.unwrap();
        // A newcomer takes the stalled client's slot (no grace here).
        let mut newcomer = TcpStream::connect(addr).await.unwrap();
        rx.recv().await.unwrap();
        assert_eq!(answer(staller).await, "", "the staller is closed");
        tokio::io::AsyncWriteExt::write_all(&mut newcomer, b"x")
            .await
            .unwrap();
        let mut hello = [0u8; 6];
        newcomer.read_exact(&mut hello).await.unwrap();
        assert_eq!(&hello, b"hello\n");
        // The newcomer no longer owes anything: the next one is refused.
        let third = TcpStream::connect(addr).await.unwrap();
        assert_eq!(answer(third).await, "busy\n");
        shutdown.cancel();
    }
}
