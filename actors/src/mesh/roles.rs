//! What a connected peer is to this node.
//!
//! A peer becomes a **routing neighbour** once it shows it speaks the frame
//! protocol: its identify lists [`FRAME_PROTOCOL`], it opens a frame stream,
//! or it announces itself in a valid beacon. Only neighbours carry frames, are
//! watched for silence, redialled and reported to the router and healer. Any
//! other peer is a **light peer** (an observer, a monitoring probe, a client
//! written with another libp2p): it may stay connected, receive gossip and use
//! the request/response protocols, up to `mesh.max_light_peers` of them.

use std::collections::HashMap;
use std::time::Instant;

use libp2p::{PeerId, StreamProtocol};

use super::streams::FRAME_PROTOCOL;

/// The role of a connected peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Carries routed frames: a link of the mesh.
    Neighbour,
    /// Connected for gossip and requests only.
    Light,
}

impl Role {
    /// The role a peer's identify announcement shows: a neighbour if it
    /// lists the frame protocol.
    pub fn from_protocols(protocols: &[StreamProtocol]) -> Self {
        if protocols.contains(&FRAME_PROTOCOL) {
            Self::Neighbour
        } else {
            Self::Light
        }
    }
}

/// The light peer limit is reached; the newcomer is disconnected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("already {0} light peers (mesh.max_light_peers)")]
pub struct TooManyLight(pub usize);

/// The connected light peers and when each was classified.
#[derive(Debug)]
pub struct LightPeers {
    since: HashMap<PeerId, Instant>,
    max: usize,
}

impl LightPeers {
    /// No light peers yet; at most `max` at once.
    pub fn new(max: usize) -> Self {
        Self {
            since: HashMap::new(),
            max,
        }
    }

    /// Records `peer` as a light peer, unless the limit is reached.
    pub fn admit(&mut self, peer: PeerId) -> Result<(), TooManyLight> {
        if self.since.contains_key(&peer) {
            return Ok(());
        }
        if self.since.len() >= self.max {
            return Err(TooManyLight(self.since.len()));
        }
        self.since.insert(peer, Instant::now());
        Ok(())
    }

    /// Forgets `peer` (disconnected, or it turned out to be a neighbour);
    /// whether it was a light peer.
    pub fn remove(&mut self, peer: &PeerId) -> bool {
        self.since.remove(peer).is_some()
    }

    /// Whether `peer` is a connected light peer.
    pub fn contains(&self, peer: &PeerId) -> bool {
        self.since.contains_key(peer)
    }

    /// The light peers and how long each has been connected as one.
    pub fn iter(&self) -> impl Iterator<Item = (PeerId, std::time::Duration)> + '_ {
        self.since.iter().map(|(peer, since)| (*peer, since.elapsed()))
    }

    /// Number of connected light peers.
    pub fn len(&self) -> usize {
        self.since.len()
    }

    /// Whether no light peer is connected.
    pub fn is_empty(&self) -> bool {
        self.since.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_peer_that_lists_the_frame_protocol_is_a_neighbour() {
        let ping = StreamProtocol::new("/ipfs/ping/1.0.0");
        assert_eq!(Role::from_protocols(&[ping.clone(), FRAME_PROTOCOL]), Role::Neighbour);
        assert_eq!(Role::from_protocols(&[ping]), Role::Light);
        assert_eq!(Role::from_protocols(&[]), Role::Light);
    }

    #[test]
    fn light_peers_are_admitted_up_to_the_limit_and_make_room_when_they_leave() {
        let mut light = LightPeers::new(2);
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        assert_eq!(light.admit(a), Ok(()));
        assert_eq!(light.admit(a), Ok(()), "admitting twice takes one place");
        assert_eq!(light.admit(b), Ok(()));
        assert_eq!(light.admit(c), Err(TooManyLight(2)));
        assert!(light.remove(&a) && !light.remove(&a));
        assert_eq!(light.admit(c), Ok(()));
        assert!(light.contains(&c) && !light.contains(&a));
        assert_eq!(light.len(), 2);
    }
}
