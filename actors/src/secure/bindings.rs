//! The newest key binding seen of each peer, kept in memory (bounded, least
//! recently used first out) and in sled, so that a node never forgets that a
//! peer has post-quantum keys (it will not speak to it classically after an
//! eviction or a restart) and never goes back to an older binding (an old
//! signed beacon republished does not restore old keys).

use libp2p::PeerId;
use lru::LruCache;
use x0tta6bl4_pqc::{KeyBinding, PeerKeys, Reject};

use crate::buckets::capacity;

/// The sled tree of persisted bindings: peer id bytes → encoded binding.
pub const TREE: &str = "pq-bindings";

/// A peer's verified binding and the keys it gave.
struct Known {
    binding: KeyBinding,
    keys: PeerKeys,
}

/// Peers' newest bindings.
pub struct BindingBook {
    known: LruCache<PeerId, Known>,
    persisted: Option<sled::Tree>,
    /// Peers persisted at most (a new peer past it is kept in memory only).
    limit: usize,
}

impl BindingBook {
    /// A book keeping `limit` peers in memory and in `persisted`, if given.
    pub fn new(limit: usize, persisted: Option<sled::Tree>) -> Self {
        Self {
            known: LruCache::new(capacity(limit)),
            persisted,
            limit,
        }
    }

    /// Takes `binding` as `peer`'s if it verifies and is newer than any seen:
    /// `Ok(true)` when it replaced another (or was the first), `Ok(false)` when
    /// it is the one already held.
    pub fn learn(&mut self, peer: PeerId, binding: &KeyBinding) -> Result<bool, Reject> {
        // Every beacon brings the binding again: the common case is a
        // comparison in memory, no clone and no verification.
        let stored = match self.known.peek(&peer) {
            Some(known) if known.binding == *binding => return Ok(false),
            Some(known) if binding.epoch <= known.binding.epoch => return Err(Reject::StaleBinding),
            Some(_) => None,
            None => self.stored(&peer),
        };
        let persisted = stored.as_ref() == Some(binding);
        if stored.is_some_and(|held| !persisted && binding.epoch <= held.epoch) {
            return Err(Reject::StaleBinding);
        }
        let keys = binding.verify(&peer)?;
        if !persisted {
            self.persist(&peer, binding);
        }
        self.known.put(
            peer,
            Known {
                binding: binding.clone(),
                keys,
            },
        );
        Ok(!persisted)
    }

    /// `peer`'s post-quantum keys, if a binding of it is known (read back
    /// from sled after an eviction or a restart).
    pub fn keys(&mut self, peer: &PeerId) -> Option<PeerKeys> {
        if let Some(known) = self.known.get(peer) {
            return Some(known.keys.clone());
        }
        let binding = self.stored(peer)?;
        let keys = binding.verify(peer).ok()?;
        self.known.put(
            *peer,
            Known {
                binding,
                keys: keys.clone(),
            },
        );
        Some(keys)
    }

    /// The epoch of `peer`'s binding, if one is known (in memory or in sled).
    pub fn epoch(&self, peer: &PeerId) -> Option<u64> {
        match self.known.peek(peer) {
            Some(known) => Some(known.binding.epoch),
            None => self.stored(peer).map(|binding| binding.epoch),
        }
    }

    fn stored(&self, peer: &PeerId) -> Option<KeyBinding> {
        let bytes = self.persisted.as_ref()?.get(peer.to_bytes()).ok()??;
        KeyBinding::decode(&bytes).ok()
    }

    fn persist(&self, peer: &PeerId, binding: &KeyBinding) {
        let Some(tree) = &self.persisted else {
            return;
        };
        let key = peer.to_bytes();
        let is_new = !tree.contains_key(&key).unwrap_or(false);
        if is_new && tree.len() >= self.limit {
            tracing::debug!(%peer, "binding book on disk full: kept in memory only");
            return;
        }
        if let Err(error) = tree.insert(key, binding.encode()) {
            tracing::warn!(%peer, %error, "cannot persist key binding");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::identity::Keypair;
    use x0tta6bl4_pqc::{PqIdentity, PqSeeds};

    #[test]
    fn a_newer_binding_replaces_an_older_one_which_is_then_refused_even_after_a_restart() {
        let store = crate::store::Store::temporary().expect("store");
        let key = Keypair::generate_ed25519();
        let peer = key.public().to_peer_id();
        let old_seeds = PqSeeds::generate();
        let old = PqIdentity::new(key.clone(), &old_seeds).binding().clone();
        let new = PqIdentity::new(key, &old_seeds.rotate()).binding().clone();
        let mut book = BindingBook::new(16, Some(store.tree(TREE).expect("tree")));
        assert_eq!(book.learn(peer, &old), Ok(true));
        assert_eq!(book.learn(peer, &old), Ok(false), "the same again");
        assert_eq!(book.learn(peer, &new), Ok(true), "a later epoch");
        // v1 took whichever binding came last: an old beacon restored old keys.
        assert_eq!(book.learn(peer, &old), Err(Reject::StaleBinding));
        let mut restarted = BindingBook::new(16, Some(store.tree(TREE).expect("tree")));
        assert_eq!(restarted.learn(peer, &old), Err(Reject::StaleBinding), "persisted");
        let keys = restarted.keys(&peer).expect("read back from sled");
        assert_eq!(keys.pq.map(|pq| pq.epoch), Some(new.epoch));
        let mut forged = new.clone();
        forged.epoch += 1;
        assert_eq!(restarted.learn(peer, &forged), Err(Reject::BadBinding));
    }

    #[test]
    fn the_disk_book_is_bounded_and_memory_keeps_what_it_cannot_hold() {
        let store = crate::store::Store::temporary().expect("store");
        let mut book = BindingBook::new(1, Some(store.tree(TREE).expect("tree")));
        let (a, b) = (
            PqIdentity::new(Keypair::generate_ed25519(), &PqSeeds::generate()),
            PqIdentity::new(Keypair::generate_ed25519(), &PqSeeds::generate()),
        );
        assert_eq!(book.learn(a.peer_id(), a.binding()), Ok(true));
        assert_eq!(book.learn(b.peer_id(), b.binding()), Ok(true));
        assert!(book.keys(&b.peer_id()).is_some(), "in memory");
        assert_eq!(store.tree(TREE).expect("tree").len(), 1, "one on disk");
        assert!(
            book.keys(&a.peer_id()).is_some(),
            "evicted from memory, read back from disk"
        );
    }
}
