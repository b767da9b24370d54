//! `x0tta6bl4 keys rotate`: replaces the node's post-quantum keys (ML-DSA-65
//! and X-Wing) with new ones of a later epoch. A running node does it through
//! its API ([`LiveKeys`], `POST /api/v1/keys/rotate`): the next beacon carries
//! the new binding and peers then refuse the old one. A stopped node's keys
//! are rotated in its data dir ([`rotate`]) and announced when it starts.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use x0tta6bl4_actors::libp2p::identity::Keypair;
use x0tta6bl4_actors::mesh::MeshHandle;
use x0tta6bl4_actors::secure::Sessions;
use x0tta6bl4_actors::store::{Store, StoreError};
use x0tta6bl4_pqc::PqIdentity;

/// A running node's keys, rotated in place.
pub struct LiveKeys {
    /// Where the seeds are kept.
    pub store: Store,
    /// The node's libp2p key (it signs the new binding).
    pub keypair: Keypair,
    /// The sessions, which take the new keys for every new handshake.
    pub sessions: Arc<Sessions>,
    /// The mesh, whose beacons announce them.
    pub mesh: MeshHandle,
}

impl LiveKeys {
    /// The epoch of the keys in use.
    pub fn epoch(&self) -> u64 {
        self.sessions.identity().epoch()
    }

    /// New keys of a later epoch, stored, used and announced from now on.
    pub fn rotate(&self) -> Result<Rotated, StoreError> {
        let from = self.epoch();
        let seeds = self.store.rotate_pq_seeds()?;
        let identity = Arc::new(PqIdentity::new(self.keypair.clone(), &seeds));
        self.sessions.rotate_identity(identity.clone());
        self.mesh
            .announce_keys(&identity, self.sessions.announced_binding().is_some());
        Ok(Rotated { from, to: seeds.epoch })
    }
}

/// The epochs of the keys before and after a rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Rotated {
    /// Epoch of the replaced keys.
    pub from: u64,
    /// Epoch of the new keys.
    pub to: u64,
}

/// Rotates the post-quantum keys stored in `data_dir` (the node must be
/// stopped: sled holds its database locked while it runs; a running node
/// rotates through its API).
pub fn rotate(data_dir: &Path) -> anyhow::Result<Rotated> {
    let store = Store::open(data_dir).with_context(|| {
        format!(
            "cannot open the store in {} (a running node holds it: use --api to rotate its keys live, \
             or stop it first)",
            data_dir.display()
        )
    })?;
    let from = store.load_or_create_pq_seeds()?.epoch;
    let to = store.rotate_pq_seeds()?.epoch;
    Ok(Rotated { from, to })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rotation_moves_to_a_later_epoch_and_a_running_node_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = rotate(dir.path()).expect("rotates");
        assert!(first.to > first.from);
        let second = rotate(dir.path()).expect("rotates again");
        assert_eq!(second.from, first.to);
        assert!(second.to > second.from);
        let held = Store::open(dir.path()).expect("opens");
        let refused = rotate(dir.path()).expect_err("the store is in use");
        assert!(format!("{refused:#}").contains("--api"), "{refused:#}");
        drop(held);
    }
}
