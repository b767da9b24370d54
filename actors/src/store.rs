//! The node's embedded sled database: one database per data dir, one tree per subsystem.
//!
//! It holds the node identity (so a restarted node keeps its peer id), the peer book
//! (addresses learnt from beacons, used to rejoin after a restart), and the healer's
//! action history and rollback stack.

use std::path::Path;

use libp2p::{identity::Keypair, Multiaddr, PeerId};
use thiserror::Error;

const IDENTITY_TREE: &str = "identity";
const PEERS_TREE: &str = "peers";
const LIBP2P_KEY: &[u8] = b"libp2p-ed25519";
const PQ_SEEDS: &[u8] = b"pq-seeds";

/// Errors of the store.
#[derive(Debug, Error)]
pub enum StoreError {
    /// sled could not open or write the database.
    #[error("sled database error: {0}")]
    Sled(#[from] sled::Error),
    /// A stored identity key could not be decoded: the data dir is corrupt or foreign.
    #[error("stored identity key is unreadable ({0}); move the data dir aside to start with a new identity")]
    BadIdentity(String),
}

/// Handle to the node's sled database. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
}

/// Bytes of sled's page cache unless configured (sled's own default is 1 GiB,
/// which a node's few MiB of state would let grow for hours).
pub const DEFAULT_CACHE_BYTES: u64 = 8 << 20;

impl Store {
    /// Opens (or creates) the database under `dir` with the default cache.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with_cache(dir, DEFAULT_CACHE_BYTES)
    }

    /// Opens (or creates) the database under `dir`, its page cache bounded to
    /// `cache_bytes`.
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(dir.join("db"))
            .cache_capacity(cache_bytes)
            .open()?;
        Ok(Self { db })
    }

    /// Opens a throw-away database that lives in memory only (tests, benchmarks).
    pub fn temporary() -> Result<Self, StoreError> {
        Ok(Self {
            db: sled::Config::new().temporary(true).open()?,
        })
    }

    /// Opens (or creates) the tree a subsystem keeps its records in.
    pub fn tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        Ok(self.db.open_tree(name)?)
    }

    /// Returns the stored libp2p identity, creating and storing a new one on first start.
    pub fn load_or_create_identity(&self) -> Result<Keypair, StoreError> {
        let tree = self.db.open_tree(IDENTITY_TREE)?;
        if let Some(bytes) = tree.get(LIBP2P_KEY)? {
            return Keypair::from_protobuf_encoding(&bytes).map_err(|e| StoreError::BadIdentity(e.to_string()));
        }
        let keypair = Keypair::generate_ed25519();
        let encoded = keypair
            .to_protobuf_encoding()
            .map_err(|e| StoreError::BadIdentity(e.to_string()))?;
        tree.insert(LIBP2P_KEY, encoded)?;
        tree.flush()?;
        Ok(keypair)
    }

    /// Returns the stored seeds of the post-quantum keys (ML-DSA-65, X-Wing)
    /// and their epoch, creating and storing new ones on first start (and
    /// rewriting version 1's in the current form).
    pub fn load_or_create_pq_seeds(&self) -> Result<x0tta6bl4_pqc::PqSeeds, StoreError> {
        let tree = self.db.open_tree(IDENTITY_TREE)?;
        if let Some(bytes) = tree.get(PQ_SEEDS)? {
            let seeds = x0tta6bl4_pqc::PqSeeds::from_bytes(&bytes).ok_or_else(|| {
                StoreError::BadIdentity(format!("post-quantum seeds of {} bytes, not 72 (or 96)", bytes.len()))
            })?;
            if seeds.to_bytes() != bytes.as_ref() {
                self.store_pq_seeds(&seeds)?;
            }
            return Ok(seeds);
        }
        let seeds = x0tta6bl4_pqc::PqSeeds::generate();
        self.store_pq_seeds(&seeds)?;
        Ok(seeds)
    }

    /// Replaces the post-quantum keys with new ones of a later epoch; returns
    /// the new seeds (a running node announces them at once, see
    /// `x0tta6bl4::keys`; a stopped one when it starts).
    pub fn rotate_pq_seeds(&self) -> Result<x0tta6bl4_pqc::PqSeeds, StoreError> {
        let seeds = self.load_or_create_pq_seeds()?.rotate();
        self.store_pq_seeds(&seeds)?;
        Ok(seeds)
    }

    fn store_pq_seeds(&self, seeds: &x0tta6bl4_pqc::PqSeeds) -> Result<(), StoreError> {
        let tree = self.db.open_tree(IDENTITY_TREE)?;
        tree.insert(PQ_SEEDS, seeds.to_bytes())?;
        tree.flush()?;
        Ok(())
    }

    /// Remembers the addresses of `peer`, keeping at most `limit` peers in the book.
    ///
    /// Returns whether anything changed. A full book keeps its entries: new peers
    /// are learnt again from beacons, so refusing them loses nothing durable.
    pub fn remember_peer(&self, peer: &PeerId, addrs: &[Multiaddr], limit: usize) -> Result<bool, StoreError> {
        let tree = self.db.open_tree(PEERS_TREE)?;
        let key = peer.to_bytes();
        let value: Vec<String> = addrs.iter().map(ToString::to_string).collect();
        let encoded = serde_json::to_vec(&value).unwrap_or_default();
        match tree.get(&key)? {
            Some(old) if old.as_ref() == encoded.as_slice() => Ok(false),
            None if tree.len() >= limit => Ok(false),
            _ => {
                tree.insert(key, encoded)?;
                Ok(true)
            }
        }
    }

    /// Whether `peer` is in the book (it announced itself in a valid beacon).
    pub fn knows_peer(&self, peer: &PeerId) -> Result<bool, StoreError> {
        Ok(self.db.open_tree(PEERS_TREE)?.contains_key(peer.to_bytes())?)
    }

    /// Every peer in the book with its addresses; unreadable entries are skipped.
    pub fn peer_book(&self) -> Result<Vec<(PeerId, Vec<Multiaddr>)>, StoreError> {
        let tree = self.db.open_tree(PEERS_TREE)?;
        let mut peers = Vec::new();
        for entry in tree.iter() {
            let (key, value) = entry?;
            let Ok(peer) = PeerId::from_bytes(&key) else {
                continue;
            };
            let addrs: Vec<String> = serde_json::from_slice(&value).unwrap_or_default();
            let addrs = addrs.iter().filter_map(|a| a.parse().ok()).collect();
            peers.push((peer, addrs));
        }
        Ok(peers)
    }

    /// Writes everything buffered to disk.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// A new id, unique and increasing over the life of the database
    /// (restarts included).
    pub fn generate_id(&self) -> Result<u64, StoreError> {
        Ok(self.db.generate_id()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = Store::open(dir.path())
            .and_then(|s| s.load_or_create_identity())
            .expect("first open");
        let second = Store::open(dir.path())
            .and_then(|s| s.load_or_create_identity())
            .expect("second open");
        assert_eq!(
            first.public().to_peer_id(),
            second.public().to_peer_id(),
            "peer id must survive a restart"
        );
    }

    #[test]
    fn peer_book_is_bounded_and_round_trips() {
        let store = Store::temporary().expect("store");
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/4001".parse().expect("addr");
        let a = PeerId::random();
        let b = PeerId::random();
        assert!(store.remember_peer(&a, std::slice::from_ref(&addr), 1).expect("insert"));
        assert!(!store.remember_peer(&a, std::slice::from_ref(&addr), 1).expect("same"));
        assert!(!store.remember_peer(&b, std::slice::from_ref(&addr), 1).expect("full"));
        assert!(store.knows_peer(&a).expect("read"));
        let seeds = store.load_or_create_pq_seeds().expect("seeds");
        let rotated = store.rotate_pq_seeds().expect("rotated");
        assert!(rotated.epoch > seeds.epoch && rotated.xwing != seeds.xwing);
        assert_eq!(store.load_or_create_pq_seeds().expect("seeds").epoch, rotated.epoch);
        assert!(!store.knows_peer(&b).expect("read"));
        let book = store.peer_book().expect("book");
        assert_eq!(book, vec![(a, vec![addr])]);
    }
}
