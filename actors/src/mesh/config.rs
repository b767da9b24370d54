//! Configuration of the mesh subsystem.

use libp2p::Multiaddr;
use serde::{Deserialize, Serialize};

/// How the node joins and keeps its place in the mesh.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MeshConfig {
    /// Addresses to listen on. Both TCP and QUIC so peers behind UDP-hostile
    /// networks still connect over TCP.
    pub listen: Vec<Multiaddr>,
    /// Peers dialled at start (full multiaddrs ending in `/p2p/<peer id>`).
    pub bootstrap: Vec<Multiaddr>,
    /// Dial peers learnt from beacons. Tests set `false` to build line and ring
    /// topologies out of bootstrap links only.
    pub dial_discovered: bool,
    /// Upper bound of connected peers; discovery stops dialling at this count.
    pub max_peers: usize,
    /// Light peers (connected without speaking the frame protocol: observers,
    /// probes, other libp2p clients; see `mesh::roles`) kept at once; more are
    /// disconnected.
    pub max_light_peers: usize,
    /// Milliseconds between two beacons.
    pub beacon_interval_ms: u64,
    /// Milliseconds between two pings on each connection (RTT and loss per link).
    pub ping_interval_ms: u64,
    /// Milliseconds before a ping counts as lost.
    pub ping_timeout_ms: u64,
    /// Milliseconds of idleness after which a keepalive goes over a frame stream.
    pub keepalive_interval_ms: u64,
    /// A neighbour silent this long (no frame, no keepalive) is closed, so traffic
    /// moves to the backup hop. Catches silent failures that TCP would sit on.
    /// The timeout of a steady link: one that showed long gaps gets up to four
    /// times it, and a stall of this node itself is added (see
    /// `neighbours::SilenceTimeout`).
    pub link_timeout_ms: u64,
    /// Milliseconds a beat may come later than the fastest recent one (or a
    /// neighbour stay silent past its cadence) before its stream counts as
    /// stalled by a loss (see `mesh::beats`): above scheduling noise, below
    /// the 200 ms a TCP retransmission takes.
    pub late_after_ms: u64,
    /// Largest routed frame accepted from a neighbour, in bytes.
    pub max_frame_bytes: usize,
    /// Frames queued per neighbour before the sender waits.
    pub frame_queue: usize,
    /// Peers kept in the durable peer book.
    pub peer_book_limit: usize,
    /// Build the QUIC transport. Without it the node speaks TCP only: it
    /// neither listens on nor dials QUIC addresses and keeps no UDP endpoint.
    pub quic: bool,
    /// Admit only nodes whose beacons carry a valid X.509-SVID of the trust
    /// domain naming their own peer id (needs `svid.enabled`; see
    /// `mesh::svid_admission`).
    pub require_svid: bool,
}

impl MeshConfig {
    /// Connections the swarm accepts at most: two per neighbour (both ends may
    /// dial at once), every light peer, and a few in passing.
    pub fn max_connections(&self) -> usize {
        self.max_peers
            .saturating_mul(2)
            .saturating_add(self.max_light_peers)
            .saturating_add(8)
    }
}

/// Whether `addr` is a QUIC address (`…/udp/<port>/quic-v1`).
pub fn is_quic(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| {
        matches!(
            p,
            libp2p::multiaddr::Protocol::QuicV1 | libp2p::multiaddr::Protocol::Quic
        )
    })
}

impl Default for MeshConfig {
    fn default() -> Self {
        Self {
            // Fixed default ports so an operator knows what to open in a firewall.
            listen: vec![
                "/ip4/0.0.0.0/tcp/4001".parse().expect("valid literal multiaddr"),
                "/ip4/0.0.0.0/udp/4001/quic-v1"
                    .parse()
                    .expect("valid literal multiaddr"),
            ],
            bootstrap: Vec::new(),
            dial_discovered: true,
            // Enough for a dense neighbourhood while keeping per-peer state small.
            max_peers: 32,
            max_light_peers: 64,
            // One beacon a second: topology changes spread within a second or two.
            beacon_interval_ms: 1_000,
            ping_interval_ms: 1_000,
            ping_timeout_ms: 2_000,
            keepalive_interval_ms: 250,
            // Six keepalives missed: a slow link survives, a dead one goes in 1.5 s.
            link_timeout_ms: 1_500,
            late_after_ms: 50,
            // 64 KiB payloads plus a generous header.
            max_frame_bytes: 64 * 1024 + 256,
            frame_queue: 1_024,
            peer_book_limit: 4_096,
            quic: true,
            require_svid: false,
        }
    }
}
