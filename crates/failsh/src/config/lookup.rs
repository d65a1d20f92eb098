//! Resolving the hosts' addresses, once per load.
//!
//! Why once: a name resolved at every poll makes the resolver part of the
//! failover decision. A typo (or a DNS outage) then reads as "the peer does
//! not answer", which times out into FAIL and starts a second instance. A
//! name is looked up when the config is loaded (at start and at each
//! reload); what it resolved to is used until the next reload, and a name
//! that did not resolve stays a configuration error until then.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{HostConfig, Lookup};

/// How long the lookups of one load may take in all: a resolver that does
/// not answer must not hold a reload (or a start) for its own timeouts.
pub const LOOKUP_LIMIT: Duration = Duration::from_secs(5);

/// Looks up every host's address at once, each on a thread of its own (the
/// system resolver blocks); a host whose lookup has not ended within
/// `limit` counts as not resolved. `named_at` says where the config names
/// each host (`file:line`), `fallback` is used for hosts it does not name.
pub(super) fn resolve(
    hosts: &BTreeMap<String, HostConfig>,
    mut named_at: BTreeMap<String, String>,
    fallback: &str,
    limit: Duration,
) -> BTreeMap<String, Lookup> {
    let (tx, rx) = mpsc::channel();
    for host in hosts.values() {
        let tx = tx.clone();
        let (name, address, port) = (host.name.clone(), host.address.clone(), host.port);
        // Detached: a lookup still running past the limit ends on its own.
        std::thread::spawn(move || {
            let result = (address.as_str(), port)
                .to_socket_addrs()
                .map(Iterator::collect::<Vec<SocketAddr>>);
            let _ = tx.send((name, result));
        });
    }
    drop(tx);
    let deadline = Instant::now() + limit;
    let mut found = BTreeMap::new();
    while found.len() < hosts.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((name, result)) => {
                found.insert(name, result);
            }
            Err(_) => break,
        }
    }
    hosts
        .values()
        .map(|host| {
            let at = named_at
                .remove(&host.name)
                .unwrap_or_else(|| fallback.to_string());
            let what = if host.address == host.name {
                format!("host {:?}", host.name)
            } else {
                format!("host {:?}: address {:?}", host.name, host.address)
            };
            let addresses = match found.remove(&host.name) {
                Some(Ok(list)) if !list.is_empty() => Ok(list),
                Some(Ok(_)) => Err(format!("{at}: {what} resolves to no address")),
                Some(Err(e)) => Err(format!("{at}: {what} does not resolve ({e})")),
                None => Err(format!(
                    "{at}: {what}: the resolver did not answer within {} s",
                    limit.as_secs_f64()
                )),
            };
            (host.name.clone(), Lookup { at, addresses })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_resolve_at_once_and_typos_name_their_line() {
        let mut hosts = BTreeMap::new();
        let mut ip = HostConfig::implicit("a");
        ip.address = "::1".into();
        hosts.insert("a".into(), ip);
        hosts.insert(
            "lukertia.invalid".into(),
            HostConfig::implicit("lukertia.invalid"),
        );
        let at = BTreeMap::from([("lukertia.invalid".to_string(), "x.lua:7".to_string())]);
        let found = resolve(&hosts, at, "x.lua", LOOKUP_LIMIT);
        let a = &found["a"];
        assert_eq!(a.at, "x.lua");
        assert_eq!(
            a.addresses,
            Ok(vec![SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], 1291))])
        );
        let typo = found["lukertia.invalid"].addresses.as_ref().unwrap_err();
        assert!(
            typo.starts_with("x.lua:7: host \"lukertia.invalid\" does not resolve ("),
            "{typo}"
        );
        assert!(!typo.contains('\n'));
    }
}
