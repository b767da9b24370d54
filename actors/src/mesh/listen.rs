//! Listen addresses that stay put across restarts of the event loop.
//!
//! A configured address with port 0 (`/ip4/0.0.0.0/tcp/0`) lets the OS pick a
//! port. Peers learn that port (bootstrap lists, beacons, the peer book), so a
//! restarted event loop must listen on it again rather than on a new one, or
//! every peer that dials this node would dial a dead port. The port can stay
//! taken for a while after a restart (a QUIC endpoint lives until the last
//! connection of the old loop has closed), so the loop keeps trying it.

use std::collections::HashMap;

use libp2p::multiaddr::Protocol;
use libp2p::Multiaddr;

/// Where each configured listen address was bound by an earlier run of the
/// event loop: the port the OS chose for a port-0 address.
#[derive(Debug, Default)]
pub(crate) struct ListenPins {
    pins: parking_lot::Mutex<HashMap<Multiaddr, Multiaddr>>,
}

impl ListenPins {
    /// Where an earlier run of the event loop listened for `configured`
    /// (`configured` itself if it names its port); `None` if none did.
    pub(crate) fn address_for(&self, configured: &Multiaddr) -> Option<Multiaddr> {
        self.pins.lock().get(configured).cloned()
    }

    /// Records that the listener for `configured` got `bound`.
    pub(crate) fn record(&self, configured: &Multiaddr, bound: &Multiaddr) {
        let pinned = pinned(configured, bound).unwrap_or_else(|| configured.clone());
        self.pins.lock().entry(configured.clone()).or_insert(pinned);
    }

    /// Forgets where `configured` listened (its port stayed taken).
    pub(crate) fn forget(&self, configured: &Multiaddr) {
        self.pins.lock().remove(configured);
    }
}

/// `configured` with its port 0 replaced by the port of `bound`; `None` when
/// `configured` names its port or `bound` has no port of the same transport.
fn pinned(configured: &Multiaddr, bound: &Multiaddr) -> Option<Multiaddr> {
    let port_of = |addr: &Multiaddr| {
        addr.iter().find_map(|p| match p {
            Protocol::Tcp(port) => Some((true, port)),
            Protocol::Udp(port) => Some((false, port)),
            _ => None,
        })
    };
    let (tcp, wanted) = port_of(configured)?;
    let (bound_tcp, port) = port_of(bound)?;
    if wanted != 0 || tcp != bound_tcp || port == 0 {
        return None;
    }
    Some(
        configured
            .iter()
            .map(|p| match p {
                Protocol::Tcp(0) => Protocol::Tcp(port),
                Protocol::Udp(0) => Protocol::Udp(port),
                other => other,
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().expect("multiaddr")
    }

    #[test]
    fn a_wildcard_port_is_pinned_to_the_one_bound_and_reused() {
        let pins = ListenPins::default();
        let tcp = addr("/ip4/0.0.0.0/tcp/0");
        let quic = addr("/ip4/0.0.0.0/udp/0/quic-v1");
        assert_eq!(pins.address_for(&tcp), None);
        pins.record(&tcp, &addr("/ip4/10.0.0.1/tcp/4101"));
        pins.record(&tcp, &addr("/ip4/127.0.0.1/tcp/4101"));
        pins.record(&quic, &addr("/ip4/127.0.0.1/udp/5202/quic-v1"));
        assert_eq!(pins.address_for(&tcp), Some(addr("/ip4/0.0.0.0/tcp/4101")));
        assert_eq!(pins.address_for(&quic), Some(addr("/ip4/0.0.0.0/udp/5202/quic-v1")));
        pins.forget(&tcp);
        assert_eq!(pins.address_for(&tcp), None);
    }

    #[test]
    fn named_ports_are_kept_and_mismatched_transports_pin_nothing() {
        let pins = ListenPins::default();
        let fixed = addr("/ip4/127.0.0.1/tcp/4001");
        pins.record(&fixed, &addr("/ip4/127.0.0.1/tcp/4001"));
        assert_eq!(pins.address_for(&fixed), Some(fixed));
        let tcp = addr("/ip4/0.0.0.0/tcp/0");
        assert_eq!(pinned(&tcp, &addr("/ip4/127.0.0.1/udp/5202/quic-v1")), None);
        assert_eq!(pinned(&tcp, &addr("/memory/7")), None);
    }
}
