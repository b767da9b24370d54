//! The live links: one bounded frame queue and one liveness stamp per connected
//! neighbour.
//!
//! The mesh event loop adds an entry when the first connection to a peer is
//! established and removes it when the last one closes, so the router's data
//! plane sees a dead neighbour disappear immediately and falls back to its backup
//! hop. Stream readers stamp [`Liveness`] on every frame or keepalive; the event
//! loop closes links that stay silent too long.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use libp2p::PeerId;
use parking_lot::RwLock;
use tokio::sync::mpsc;

/// When a neighbour was last heard from, in milliseconds since process start.
#[derive(Debug, Default)]
pub struct Liveness(AtomicU64);

impl Liveness {
    /// Records that the neighbour was heard from now.
    pub fn heard(&self) {
        self.0.store(now_ms(), Ordering::Relaxed);
    }

    fn silent_for(&self) -> Duration {
        Duration::from_millis(now_ms().saturating_sub(self.0.load(Ordering::Relaxed)))
    }
}

fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

struct Neighbour {
    queue: mpsc::Sender<Bytes>,
    liveness: Arc<Liveness>,
}

/// Live neighbours, their frame queues and liveness. Shared between the mesh and
/// the router.
#[derive(Default)]
pub struct Neighbours {
    entries: RwLock<HashMap<PeerId, Neighbour>>,
}

impl Neighbours {
    /// Registers the queue of a newly connected neighbour, heard from now.
    pub fn insert(&self, peer: PeerId, queue: mpsc::Sender<Bytes>) {
        let liveness = Arc::new(Liveness::default());
        liveness.heard();
        self.entries.write().insert(peer, Neighbour { queue, liveness });
    }

    /// Forgets a neighbour whose last connection closed; its writer task then ends.
    pub fn remove(&self, peer: &PeerId) {
        self.entries.write().remove(peer);
    }

    /// The frame queue towards `peer`, if it is connected.
    pub fn queue(&self, peer: &PeerId) -> Option<mpsc::Sender<Bytes>> {
        self.entries.read().get(peer).map(|n| n.queue.clone())
    }

    /// The liveness stamp of `peer` (a detached one if it is not a neighbour).
    pub fn liveness(&self, peer: &PeerId) -> Arc<Liveness> {
        self.entries
            .read()
            .get(peer)
            .map(|n| n.liveness.clone())
            .unwrap_or_default()
    }

    /// Neighbours not heard from within `timeout`.
    pub fn silent_for(&self, timeout: Duration) -> Vec<PeerId> {
        self.entries
            .read()
            .iter()
            .filter(|(_, n)| n.liveness.silent_for() > timeout)
            .map(|(p, _)| *p)
            .collect()
    }

    /// Whether `peer` is a live neighbour.
    pub fn contains(&self, peer: &PeerId) -> bool {
        self.entries.read().contains_key(peer)
    }

    /// Number of live neighbours.
    pub fn len(&self) -> usize {
        self.entries.read().len()
    }

    /// Whether there is no live neighbour.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_is_measured_from_the_last_stamp() {
        let neighbours = Neighbours::default();
        let peer = PeerId::random();
        let (tx, _rx) = mpsc::channel(1);
        neighbours.insert(peer, tx);
        assert!(neighbours.silent_for(Duration::from_secs(5)).is_empty());
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(neighbours.silent_for(Duration::from_millis(10)), vec![peer]);
        neighbours.liveness(&peer).heard();
        assert!(neighbours.silent_for(Duration::from_millis(10)).is_empty());
    }
}
