//! Which services are "present on a host", the original's service list.
//!
//! failmon talks to one failsh, whose snapshot lists the hosts of its config
//! (`localhost`, the pseudo-host naming the local faild, among them) and its
//! own services. So a service is present on
//! - `localhost`: every service (they all run, or may run, there); the list
//!   shows the local faild's state;
//! - any other host: the services that name it as a master or slave; the
//!   list shows that peer's state as failsh last saw it.

use failover::monitor::{PeerStatus, ServiceStatus, Snapshot};

/// failsh's name for the host it runs on.
pub const LOCALHOST: &str = "localhost";

/// Whether `host` (a name of `Snapshot.hosts`) is the host failsh runs on.
pub fn is_local(host: &str) -> bool {
    host == LOCALHOST
}

/// A service present on a host: with the host's peer record unless the host
/// is the local one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Presence<'a> {
    pub service: &'a ServiceStatus,
    pub peer: Option<&'a PeerStatus>,
}

/// The services present on `host`, in failsh's order.
pub fn services_on<'a>(snapshot: &'a Snapshot, host: &str) -> Vec<Presence<'a>> {
    snapshot
        .services
        .iter()
        .filter_map(|service| {
            if is_local(host) {
                return Some(Presence {
                    service,
                    peer: None,
                });
            }
            let peer = service.peers.iter().find(|p| p.host == host)?;
            Some(Presence {
                service,
                peer: Some(peer),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::sample;

    fn names(s: &Snapshot, host: &str) -> Vec<String> {
        services_on(s, host)
            .iter()
            .map(|p| format!("{}:{}", p.service.name, p.peer.map_or("-", |p| &p.state)))
            .collect()
    }

    #[test]
    fn localhost_has_every_service_and_peers_those_naming_them() {
        let s = sample();
        assert_eq!(names(&s, "localhost"), ["vip:-", "www:-"]);
        assert_eq!(names(&s, "macbeth"), ["vip:RECOVER", "www:FAIL"]);
        assert_eq!(names(&s, "ophelia"), ["www:INDOUBT"]);
        assert!(names(&s, "nobody").is_empty());
    }
}
