//! Binding the sockets, and running the TCP and UDP servers until shutdown.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::store::Store;
use crate::tcp::{self, Connections, Limits};
use crate::udp;

/// Sockets bound before detaching and before dropping privileges, so that a
/// port below 1024 works and a bind error reaches the terminal.
#[derive(Debug)]
pub struct Listeners {
    tcp: Vec<std::net::TcpListener>,
    udp: Vec<std::net::UdpSocket>,
}

impl Listeners {
    /// Binds TCP and UDP on `port` at each address. With no address, binds
    /// the IPv6 wildcard (which also takes IPv4 on Linux) and falls back to
    /// the IPv4 wildcard where IPv6 is off.
    pub fn bind(addrs: &[IpAddr], port: u16) -> Result<Listeners> {
        if addrs.is_empty() {
            return Self::bind_all(&[Ipv6Addr::UNSPECIFIED.into()], port)
                .or_else(|_| Self::bind_all(&[Ipv4Addr::UNSPECIFIED.into()], port));
        }
        Self::bind_all(addrs, port)
    }

    fn bind_all(addrs: &[IpAddr], port: u16) -> Result<Listeners> {
        let mut l = Listeners {
            tcp: Vec::new(),
            udp: Vec::new(),
        };
        for ip in addrs {
            let addr = SocketAddr::new(*ip, port);
            let t = std::net::TcpListener::bind(addr)
                .with_context(|| format!("cannot listen on TCP {addr}"))?;
            let u = std::net::UdpSocket::bind(addr)
                .with_context(|| format!("cannot listen on UDP {addr}"))?;
            t.set_nonblocking(true)?;
            u.set_nonblocking(true)?;
            enlarge_receive_queue(&u);
            l.tcp.push(t);
            l.udp.push(u);
        }
        Ok(l)
    }

    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.tcp
            .iter()
            .filter_map(|t| t.local_addr().ok())
            .collect()
    }
}

/// A larger UDP receive queue rides out bursts (many pollers at one
/// interval tick, or a flood of junk) with fewer dropped requests. As root
/// the system limit (`net.core.rmem_max`) may be passed; otherwise the
/// kernel caps the size, which is fine.
fn enlarge_receive_queue(socket: &std::net::UdpSocket) {
    use nix::sys::socket::{setsockopt, sockopt};
    const SIZE: usize = 1 << 20;
    if setsockopt(socket, sockopt::RcvBufForce, &SIZE).is_err() {
        let _ = setsockopt(socket, sockopt::RcvBuf, &SIZE);
    }
}

/// Serves until `shutdown` is cancelled, then stops accepting, lets requests
/// in flight finish (a SET already being written is still acknowledged), and
/// returns.
pub async fn run(
    listeners: Listeners,
    store: Arc<Store>,
    limits: Limits,
    shutdown: CancellationToken,
) -> Result<()> {
    let tracker = TaskTracker::new();
    let conns = Connections::new();
    for l in listeners.tcp {
        let listener = tokio::net::TcpListener::from_std(l)?;
        tracker.spawn(tcp::serve(
            listener,
            store.clone(),
            conns.clone(),
            limits,
            shutdown.clone(),
            tracker.clone(),
        ));
    }
    for u in listeners.udp {
        let socket = tokio::net::UdpSocket::from_std(u)?;
        tracker.spawn(udp::serve(
            socket,
            store.clone(),
            shutdown.clone(),
            tracker.clone(),
        ));
    }
    shutdown.cancelled().await;
    info!(target: "net", "stopping: no new requests; finishing those in flight");
    tracker.close();
    if tokio::time::timeout(Duration::from_secs(10), tracker.wait())
        .await
        .is_err()
    {
        warn!(target: "net", "requests still in flight after 10 s ({} connections); exiting anyway", conns.open_count());
    }
    Ok(())
}
