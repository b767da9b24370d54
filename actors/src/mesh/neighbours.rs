//! The send side of every live link: one bounded frame queue per connected neighbour.
//!
//! The mesh event loop adds a queue when the first connection to a peer is
//! established and removes it when the last one closes, so the router's data plane
//! sees a dead neighbour disappear immediately and falls back to its backup hop.

use std::collections::HashMap;

use bytes::Bytes;
use libp2p::PeerId;
use parking_lot::RwLock;
use tokio::sync::mpsc;

/// Live neighbours and their frame queues. Shared between the mesh and the router.
#[derive(Default)]
pub struct Neighbours {
    queues: RwLock<HashMap<PeerId, mpsc::Sender<Bytes>>>,
}

impl Neighbours {
    /// Registers the queue of a newly connected neighbour.
    pub fn insert(&self, peer: PeerId, queue: mpsc::Sender<Bytes>) {
        self.queues.write().insert(peer, queue);
    }

    /// Forgets a neighbour whose last connection closed; its writer task then ends.
    pub fn remove(&self, peer: &PeerId) {
        self.queues.write().remove(peer);
    }

    /// The frame queue towards `peer`, if it is connected.
    pub fn queue(&self, peer: &PeerId) -> Option<mpsc::Sender<Bytes>> {
        self.queues.read().get(peer).cloned()
    }

    /// Whether `peer` is a live neighbour.
    pub fn contains(&self, peer: &PeerId) -> bool {
        self.queues.read().contains_key(peer)
    }

    /// Number of live neighbours.
    pub fn len(&self) -> usize {
        self.queues.read().len()
    }

    /// Whether there is no live neighbour.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
