//! The replica in sled: one tree of entries, one of the delta log, one of clocks.
//! Every applied delta writes its key, the version vector and the log entry in one
//! transaction, so a crash never leaves a key ahead of the clock that says so.

use std::collections::BTreeMap;

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use super::crdt::Replica;
use super::delta::SignedDelta;
use super::replica::{Clock, Entry};
use super::SyncError;
use crate::store::Store;

const APPLIED: &[u8] = b"applied";
const FLOOR: &[u8] = b"floor";

/// The sled trees of the replica.
#[derive(Clone)]
pub struct Persist {
    entries: sled::Tree,
    log: sled::Tree,
    meta: sled::Tree,
}

/// What a replica finds at start.
pub struct Loaded {
    /// Every key.
    pub entries: BTreeMap<String, Entry>,
    /// The version vector.
    pub applied: Clock,
    /// Where each writer's log starts.
    pub floor: Clock,
    /// The delta log.
    pub log: BTreeMap<(Replica, u64), SignedDelta>,
}

fn store_error(e: impl std::fmt::Display) -> SyncError {
    SyncError::Store(e.to_string())
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, SyncError> {
    postcard::to_allocvec(value).map_err(store_error)
}

/// The log key of `writer`'s delta `seq`: the writer, a zero byte, the seq big-endian.
fn log_key(writer: &str, seq: u64) -> Vec<u8> {
    [writer.as_bytes(), &[0], &seq.to_be_bytes()].concat()
}

impl Persist {
    /// The replica's trees in `store`.
    pub fn open(store: &Store) -> Result<Self, SyncError> {
        Ok(Self {
            entries: store.tree("sync_entries").map_err(store_error)?,
            log: store.tree("sync_log").map_err(store_error)?,
            meta: store.tree("sync_meta").map_err(store_error)?,
        })
    }

    /// Reads everything back.
    pub fn load(&self) -> Result<Loaded, SyncError> {
        let clock = |name: &[u8]| -> Result<Clock, SyncError> {
            match self.meta.get(name).map_err(store_error)? {
                Some(bytes) => postcard::from_bytes(&bytes).map_err(store_error),
                None => Ok(Clock::new()),
            }
        };
        let mut entries = BTreeMap::new();
        for item in self.entries.iter() {
            let (key, value) = item.map_err(store_error)?;
            let key = String::from_utf8(key.to_vec()).map_err(store_error)?;
            entries.insert(key, postcard::from_bytes(&value).map_err(store_error)?);
        }
        let mut log = BTreeMap::new();
        for item in self.log.iter() {
            let (_, value) = item.map_err(store_error)?;
            let signed: SignedDelta = postcard::from_bytes(&value).map_err(store_error)?;
            let delta = signed.open()?;
            log.insert((delta.writer, delta.seq), signed);
        }
        Ok(Loaded {
            entries,
            applied: clock(APPLIED)?,
            floor: clock(FLOOR)?,
            log,
        })
    }

    /// Records one applied delta.
    pub fn applied(
        &self,
        key: &str,
        entry: &Entry,
        applied: &Clock,
        writer: &str,
        seq: u64,
        signed: &SignedDelta,
    ) -> Result<(), SyncError> {
        let (entry, applied, signed) = (encode(entry)?, encode(applied)?, encode(signed)?);
        (&self.entries, &self.log, &self.meta)
            .transaction(|(entries, log, meta)| {
                entries.insert(key.as_bytes(), entry.as_slice())?;
                log.insert(log_key(writer, seq), signed.as_slice())?;
                meta.insert(APPLIED, applied.as_slice())?;
                Ok::<(), ConflictableTransactionError<()>>(())
            })
            .map_err(transaction_error)
    }

    /// Replaces everything (after a state transfer), in one transaction.
    pub fn replace(
        &self,
        entries: &BTreeMap<String, Entry>,
        applied: &Clock,
        floor: &Clock,
        log: &BTreeMap<(Replica, u64), SignedDelta>,
    ) -> Result<(), SyncError> {
        let new_entries = entries
            .iter()
            .map(|(key, entry)| Ok((key.as_bytes().to_vec(), encode(entry)?)))
            .collect::<Result<BTreeMap<Vec<u8>, Vec<u8>>, SyncError>>()?;
        let new_log = log
            .iter()
            .map(|((writer, seq), signed)| Ok((log_key(writer, *seq), encode(signed)?)))
            .collect::<Result<BTreeMap<Vec<u8>, Vec<u8>>, SyncError>>()?;
        let stale = |tree: &sled::Tree, keep: &BTreeMap<Vec<u8>, Vec<u8>>| -> Result<Vec<sled::IVec>, SyncError> {
            let keys = tree.iter().keys().collect::<Result<Vec<_>, _>>().map_err(store_error)?;
            Ok(keys.into_iter().filter(|k| !keep.contains_key(k.as_ref())).collect())
        };
        let (stale_entries, stale_log) = (stale(&self.entries, &new_entries)?, stale(&self.log, &new_log)?);
        let (applied, floor) = (encode(applied)?, encode(floor)?);
        (&self.entries, &self.log, &self.meta)
            .transaction(|(entries, log, meta)| {
                for (tree, stale, new) in [(entries, &stale_entries, &new_entries), (log, &stale_log, &new_log)] {
                    for key in stale {
                        tree.remove(key)?;
                    }
                    for (key, value) in new {
                        tree.insert(key.as_slice(), value.as_slice())?;
                    }
                }
                meta.insert(APPLIED, applied.as_slice())?;
                meta.insert(FLOOR, floor.as_slice())?;
                Ok::<(), ConflictableTransactionError<()>>(())
            })
            .map_err(transaction_error)
    }

    /// Records a garbage collection.
    pub fn collected(&self, pruned: &[(Replica, u64)], dead: &[String], floor: &Clock) -> Result<(), SyncError> {
        for (writer, seq) in pruned {
            self.log.remove(log_key(writer, *seq)).map_err(store_error)?;
        }
        for key in dead {
            self.entries.remove(key.as_bytes()).map_err(store_error)?;
        }
        self.meta.insert(FLOOR, encode(floor)?).map_err(store_error)?;
        Ok(())
    }
}

fn transaction_error(e: TransactionError<()>) -> SyncError {
    store_error(format!("{e:?}"))
}
