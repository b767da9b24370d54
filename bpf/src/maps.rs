//! Map layouts shared with `c/x0tta_xdp.bpf.c`, and their Rust views.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Capacity of the blocklist map (`BLOCKLIST_CAPACITY` in the C source).
pub const BLOCKLIST_CAPACITY: u32 = 4096;

/// Map key of a source address: family, three zero bytes, address.
pub(crate) type SourceKey = [u8; 20];
/// Map value of two `u64`s: `{packets, bytes}` or `{expires_ns, dropped}`.
pub(crate) type Pair = [u64; 2];

/// Packet classes counted by the program; indices match `enum packet_class`.
///
/// A packet counts once in its network class (IPv4, IPv6, other) and, when it
/// is IP, once more in its transport class (TCP, UDP, ICMP/ICMPv6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// IPv4 packets.
    Ipv4,
    /// IPv6 packets.
    Ipv6,
    /// TCP over IPv4 or IPv6.
    Tcp,
    /// UDP over IPv4 or IPv6.
    Udp,
    /// ICMP or ICMPv6.
    Icmp,
    /// Neither IPv4 nor IPv6 (ARP, LLDP, runt frames).
    Other,
}

impl Class {
    /// Every class, in map order.
    pub const ALL: [Class; 6] = [
        Class::Ipv4,
        Class::Ipv6,
        Class::Tcp,
        Class::Udp,
        Class::Icmp,
        Class::Other,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Class::Ipv4 => "ipv4",
            Class::Ipv6 => "ipv6",
            Class::Tcp => "tcp",
            Class::Udp => "udp",
            Class::Icmp => "icmp",
            Class::Other => "other",
        }
    }
}

/// Why the program dropped a packet; indices match `enum drop_reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// The source address is on the blocklist.
    Quarantine,
}

impl DropReason {
    /// Every reason, in map order.
    pub const ALL: [DropReason; 1] = [DropReason::Quarantine];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            DropReason::Quarantine => "quarantine",
        }
    }
}

/// A packet and byte count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    /// Packets.
    pub packets: u64,
    /// Bytes, Ethernet header included.
    pub bytes: u64,
}

impl Counter {
    pub(crate) fn from_pair([packets, bytes]: Pair) -> Self {
        Counter { packets, bytes }
    }

    /// Adds another count (saturating).
    pub fn add(&mut self, other: Counter) {
        self.packets = self.packets.saturating_add(other.packets);
        self.bytes = self.bytes.saturating_add(other.bytes);
    }
}

/// Totals over all CPUs, read from the program's counter maps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct XdpCounters {
    /// Per class, in [`Class::ALL`] order.
    pub classes: [Counter; 6],
    /// Per drop reason, in [`DropReason::ALL`] order.
    pub drops: [Counter; 1],
}

impl XdpCounters {
    /// The count of one class.
    pub fn class(&self, class: Class) -> Counter {
        self.classes[class as usize]
    }

    /// The count of one drop reason.
    pub fn dropped(&self, reason: DropReason) -> Counter {
        self.drops[reason as usize]
    }
}

/// One blocklist entry as read back from the map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockEntry {
    /// The blocked source.
    pub addr: IpAddr,
    /// CLOCK_MONOTONIC nanoseconds at which the entry stops dropping; 0 = never.
    pub expires_ns: u64,
    /// Packets dropped because of this entry.
    pub dropped: u64,
}

/// One source from the top-talkers map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Talker {
    /// The source address.
    pub addr: IpAddr,
    /// Packets and bytes seen from it since it entered the map.
    pub count: Counter,
}

/// The map key of an address.
pub(crate) fn source_key(addr: IpAddr) -> SourceKey {
    let mut key = [0u8; 20];
    match addr {
        IpAddr::V4(v4) => {
            key[0] = 4;
            key[4..8].copy_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            key[0] = 6;
            key[4..20].copy_from_slice(&v6.octets());
        }
    }
    key
}

/// The address of a map key; `None` for a key the program never writes.
pub(crate) fn key_addr(key: &SourceKey) -> Option<IpAddr> {
    let addr = &key[4..20];
    match key[0] {
        4 => {
            let octets: [u8; 4] = addr[..4].try_into().ok()?;
            Some(IpAddr::V4(Ipv4Addr::from(octets)))
        }
        6 => {
            let octets: [u8; 16] = addr.try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(octets)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_both_families() {
        for addr in ["10.77.0.2", "255.255.255.255", "fd00::1", "::"] {
            let addr: IpAddr = addr.parse().expect("valid address");
            assert_eq!(key_addr(&source_key(addr)), Some(addr));
        }
    }

    #[test]
    fn ipv4_key_matches_the_c_layout() {
        let key = source_key(IpAddr::V4(Ipv4Addr::new(10, 77, 0, 2)));
        assert_eq!(&key[..8], &[4, 0, 0, 0, 10, 77, 0, 2]);
        assert!(key[8..].iter().all(|b| *b == 0));
    }

    #[test]
    fn unknown_family_is_not_an_address() {
        assert_eq!(key_addr(&[9; 20]), None);
    }
}
