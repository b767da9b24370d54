//! `x0tta6bl4 keys rotate`: replaces the node's post-quantum keys (ML-DSA-65
//! and X-Wing) with new ones of a later epoch. The node announces the new
//! binding in its beacons from its next start; peers then refuse the old one.

use std::path::Path;

use anyhow::Context;
use x0tta6bl4_actors::store::Store;

/// The epochs of the keys before and after a rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotated {
    /// Epoch of the replaced keys.
    pub from: u64,
    /// Epoch of the new keys.
    pub to: u64,
}

/// Rotates the post-quantum keys stored in `data_dir` (the node must be
/// stopped: sled holds its database locked while it runs).
pub fn rotate(data_dir: &Path) -> anyhow::Result<Rotated> {
    let store = Store::open(data_dir).with_context(|| {
        format!(
            "cannot open the store in {} (stop the node first: a running node holds it)",
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
        assert!(format!("{refused:#}").contains("stop the node first"), "{refused:#}");
        drop(held);
    }
}
