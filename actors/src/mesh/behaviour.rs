//! The libp2p behaviour of a node: one field per protocol.

// The derive generates `MeshBehaviourEvent`, whose variants cannot carry docs.
#![allow(missing_docs)]

use std::time::Duration;

use libp2p::swarm::{behaviour::toggle::Toggle, NetworkBehaviour};
use libp2p::{allow_block_list, connection_limits, gossipsub, identify, identity::Keypair, kad, ping, StreamProtocol};

use super::config::MeshConfig;

/// Kademlia protocol name, distinct from the public IPFS DHT.
pub const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/x0tta6bl4/kad/1.0.0");

/// Everything the mesh speaks with its peers.
#[derive(NetworkBehaviour)]
pub struct MeshBehaviour {
    /// Beacons: signed gossip of each node's addresses and links.
    pub gossipsub: gossipsub::Behaviour,
    /// Exchange of listen addresses and protocol versions on connect.
    pub identify: identify::Behaviour,
    /// RTT and loss per link.
    pub ping: ping::Behaviour,
    /// Peer routing for peers not (yet) seen in beacons. Off when the node keeps
    /// to its bootstrap links (`dial_discovered = false`), since its queries dial.
    pub kad: Toggle<kad::Behaviour<kad::store::MemoryStore>>,
    /// Caps on connections, total and per peer.
    pub limits: connection_limits::Behaviour,
    /// Peers refused while quarantined by the healer.
    pub blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    /// Raw streams carrying routed frames.
    pub streams: libp2p_stream::Behaviour,
}

/// Gossipsub mesh degree: target, low and high water marks.
const GOSSIP_MESH: (usize, usize, usize) = (4, 3, 6);

/// Why the behaviour could not be built.
pub type BehaviourError = Box<dyn std::error::Error + Send + Sync>;

impl MeshBehaviour {
    /// Builds the behaviour for `key` with the limits and timers of `config`.
    pub fn new(key: &Keypair, config: &MeshConfig) -> Result<Self, BehaviourError> {
        let peer_id = key.public().to_peer_id();
        // A smaller mesh than gossipsub's default (6, 5..12): every copy of a
        // beacon that arrives costs a signature check before it is known to be
        // a duplicate, and with 20 peers a node's mesh grew to about 10, which
        // made beacon signatures a fifth of an idle node's CPU. Beacons repeat
        // every second and gossip (IHAVE/IWANT) repairs a missed one.
        let gossip_config = gossipsub::ConfigBuilder::default()
            .mesh_n(GOSSIP_MESH.0)
            .mesh_n_low(GOSSIP_MESH.1)
            .mesh_n_high(GOSSIP_MESH.2)
            .mesh_outbound_min(GOSSIP_MESH.1 - 1)
            .heartbeat_interval(Duration::from_millis(500))
            .validation_mode(gossipsub::ValidationMode::Strict)
            // Nothing is forwarded before the node has checked it (see
            // `mesh::scoring`): junk stops at the first hop.
            .validate_messages()
            .max_transmit_size(super::beacon::MAX_BEACON_BYTES * 2)
            .build()?;
        let mut gossipsub =
            gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Signed(key.clone()), gossip_config)?;
        let beacons = gossipsub::IdentTopic::new(super::beacon::BEACON_TOPIC).hash();
        gossipsub.with_peer_score(super::scoring::params(beacons), super::scoring::thresholds())?;
        let identify = identify::Behaviour::new(identify::Config::new("/x0tta6bl4/id/1.0.0".into(), key.public()));
        let ping = ping::Behaviour::new(
            ping::Config::new()
                .with_interval(Duration::from_millis(config.ping_interval_ms))
                .with_timeout(Duration::from_millis(config.ping_timeout_ms)),
        );
        let kad = config.dial_discovered.then(|| {
            let mut kad = kad::Behaviour::with_config(
                peer_id,
                kad::store::MemoryStore::new(peer_id),
                kad::Config::new(KAD_PROTOCOL),
            );
            kad.set_mode(Some(kad::Mode::Server));
            kad
        });
        let max_total = u32::try_from(config.max_connections()).unwrap_or(u32::MAX);
        let limits = connection_limits::Behaviour::new(
            connection_limits::ConnectionLimits::default()
                .with_max_established_per_peer(Some(2))
                .with_max_established(Some(max_total))
                .with_max_pending_incoming(Some(max_total))
                // Beacons name addresses to dial; this bounds how many dials
                // forged beacons can have in flight at once.
                .with_max_pending_outgoing(Some(max_total)),
        );
        Ok(Self {
            gossipsub,
            identify,
            ping,
            kad: kad.into(),
            limits,
            blocked: allow_block_list::Behaviour::default(),
            streams: libp2p_stream::Behaviour::new(),
        })
    }
}
