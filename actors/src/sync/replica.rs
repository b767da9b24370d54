//! One node's replica of the shared state: entries, the version vector of what
//! it applied, the log of deltas it can hand on, and what it knows of the other
//! replicas (for garbage collection). No I/O but its sled trees.
//!
//! Each writer's deltas are applied in the order of their `seq` (what the
//! `crdts` operations need); one arriving early waits in a bounded buffer until
//! the gap before it is filled by gossip or anti-entropy.
//!
//! Garbage collection: a delta every live replica has applied is *causally
//! stable* and leaves the log; so does a deleted key (a `null` register, an
//! empty set) whose writes are all stable. A replica asking for deltas older
//! than what the log still holds gets the whole state instead, merged key by
//! key with observed-remove semantics: a key absent there whose writes the
//! sender has all seen was removed, and does not come back.

use std::collections::{BTreeMap, HashMap};

use libp2p::identity::Keypair;
use serde::{Deserialize, Serialize};

use super::crdt::{Crdt, Dots, Intent, KeyKind, Replica};
use super::delta::{Delta, SignedDelta};
use super::SyncError;

/// A version vector: the highest contiguous `seq` applied, per writer.
pub type Clock = BTreeMap<Replica, u64>;

/// Most writers a clock from another replica may name.
pub const MAX_CLOCK_WRITERS: usize = 4_096;

/// One key's value and the writes that made it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The value.
    pub crdt: Crdt,
    /// The last write of each writer to this key.
    pub dots: Dots,
}

/// A whole replica's state, for a full transfer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Every key.
    pub entries: BTreeMap<String, Entry>,
    /// What those entries contain.
    pub applied: Clock,
}

/// What became of a received delta.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// Applied, with any buffered deltas it unblocked: the keys changed.
    Applied(Vec<String>),
    /// Already applied (or included in a state transfer).
    Duplicate,
    /// Early: waits for the writer's deltas before it.
    Buffered,
}

/// An answer to another replica's clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Answer {
    /// The deltas it lacks, each writer's in order; `more` when cut at the limit.
    Deltas {
        /// The deltas.
        deltas: Vec<SignedDelta>,
        /// Whether more remain.
        more: bool,
    },
    /// The whole state: it lacks deltas this log no longer holds.
    Full(Snapshot),
}

/// Bounds of a replica.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most keys.
    pub max_keys: usize,
    /// Most early deltas buffered.
    pub max_pending: usize,
    /// How far ahead of this node's clock a delta's clock may be, ms.
    pub max_skew_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_keys: 4_096,
            max_pending: 4_096,
            max_skew_ms: 60_000,
        }
    }
}

/// What garbage collection did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Collected {
    /// Deltas dropped from the log.
    pub deltas: usize,
    /// Deleted keys dropped.
    pub keys: usize,
}

/// Another replica as this one knows it.
#[derive(Debug, Clone)]
struct Peer {
    clock: Clock,
    heard_ms: u64,
}

/// The replica.
pub struct ReplicaState {
    me: Replica,
    limits: Limits,
    entries: BTreeMap<String, Entry>,
    applied: Clock,
    /// The log holds each writer's deltas after `floor` up to `applied`.
    floor: Clock,
    log: BTreeMap<(Replica, u64), SignedDelta>,
    pending: BTreeMap<(Replica, u64), (SignedDelta, Delta)>,
    peers: HashMap<Replica, Peer>,
    persist: Option<super::persist::Persist>,
}

impl ReplicaState {
    /// An empty replica named `me` (a peer id), kept in memory only.
    pub fn new(me: Replica, limits: Limits) -> Self {
        Self {
            me,
            limits,
            entries: BTreeMap::new(),
            applied: Clock::new(),
            floor: Clock::new(),
            log: BTreeMap::new(),
            pending: BTreeMap::new(),
            peers: HashMap::new(),
            persist: None,
        }
    }

    /// The replica `me` kept in `persist`, with what it holds.
    pub fn load(me: Replica, limits: Limits, persist: super::persist::Persist) -> Result<Self, SyncError> {
        let mut replica = Self::new(me, limits);
        let loaded = persist.load()?;
        (replica.entries, replica.applied, replica.floor, replica.log) =
            (loaded.entries, loaded.applied, loaded.floor, loaded.log);
        replica.persist = Some(persist);
        Ok(replica)
    }

    /// This replica's name.
    pub fn me(&self) -> &Replica {
        &self.me
    }

    /// What it applied.
    pub fn clock(&self) -> &Clock {
        &self.applied
    }

    /// One key.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.get(key)
    }

    /// Every key.
    pub fn entries(&self) -> &BTreeMap<String, Entry> {
        &self.entries
    }

    /// Deltas in the log.
    pub fn log_len(&self) -> usize {
        self.log.len()
    }

    /// Early deltas waiting.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// The whole state.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            entries: self.entries.clone(),
            applied: self.applied.clone(),
        }
    }

    /// Writes `intent` to `key` as this replica, signed with `keypair`: the
    /// delta to publish.
    pub fn write(
        &mut self,
        key: &str,
        intent: Intent,
        now_ms: u64,
        keypair: &Keypair,
    ) -> Result<SignedDelta, SyncError> {
        let kind = KeyKind::of(key)?;
        let current = self.entries.get(key).map(|e| &e.crdt);
        let empty = Crdt::empty(kind);
        let change = current.unwrap_or(&empty).prepare(&self.me, intent, now_ms)?;
        let delta = Delta {
            writer: self.me.clone(),
            seq: self.applied.get(&self.me).copied().unwrap_or(0) + 1,
            at_ms: now_ms,
            key: key.to_string(),
            change,
        };
        let signed = SignedDelta::sign(&delta, keypair)?;
        self.check(&delta, now_ms)?;
        self.apply(signed.clone(), delta)?;
        Ok(signed)
    }

    /// Takes a delta from another replica (already opened: signature and writer
    /// checked, and allowed by the policy).
    pub fn receive(&mut self, signed: SignedDelta, delta: Delta, now_ms: u64) -> Result<Received, SyncError> {
        let next = self.applied.get(&delta.writer).copied().unwrap_or(0) + 1;
        if delta.seq < next {
            return Ok(Received::Duplicate);
        }
        self.check(&delta, now_ms)?;
        if delta.seq > next {
            if self.pending.len() >= self.limits.max_pending {
                return Err(SyncError::Full("early deltas"));
            }
            self.pending.insert((delta.writer.clone(), delta.seq), (signed, delta));
            return Ok(Received::Buffered);
        }
        let writer = delta.writer.clone();
        let mut changed = vec![self.apply(signed, delta)?];
        changed.extend(self.drain(&writer, now_ms));
        Ok(Received::Applied(changed))
    }

    /// Refuses a delta that cannot be applied: an unknown key, a clock far
    /// ahead, a change that does not fit the key or speaks for another
    /// replica, a key too many.
    fn check(&self, delta: &Delta, now_ms: u64) -> Result<(), SyncError> {
        let kind = KeyKind::of(&delta.key)?;
        if delta.at_ms > now_ms.saturating_add(self.limits.max_skew_ms) {
            return Err(SyncError::ClockAhead(delta.at_ms - now_ms));
        }
        if let super::crdt::Change::Lww { marker, .. } = &delta.change {
            if marker.ms > now_ms.saturating_add(self.limits.max_skew_ms) {
                return Err(SyncError::ClockAhead(marker.ms - now_ms));
            }
        }
        match self.entries.get(&delta.key) {
            Some(entry) => entry.crdt.check(&delta.writer, &delta.change),
            None if self.entries.len() >= self.limits.max_keys => Err(SyncError::Full("keys")),
            None => Crdt::empty(kind).check(&delta.writer, &delta.change),
        }
    }

    /// Applies the writer's next delta; the key changed.
    fn apply(&mut self, signed: SignedDelta, delta: Delta) -> Result<String, SyncError> {
        let kind = KeyKind::of(&delta.key)?;
        let entry = self.entries.entry(delta.key.clone()).or_insert_with(|| Entry {
            crdt: Crdt::empty(kind),
            dots: Dots::new(),
        });
        entry.crdt.apply(delta.change);
        entry.dots.insert(delta.writer.clone(), delta.seq);
        self.applied.insert(delta.writer.clone(), delta.seq);
        if let Some(persist) = &self.persist {
            persist.applied(&delta.key, entry, &self.applied, &delta.writer, delta.seq, &signed)?;
        }
        self.log.insert((delta.writer, delta.seq), signed);
        Ok(delta.key)
    }

    /// Applies `writer`'s buffered deltas that are now next in line.
    fn drain(&mut self, writer: &Replica, now_ms: u64) -> Vec<String> {
        let mut changed = Vec::new();
        loop {
            let next = self.applied.get(writer).copied().unwrap_or(0) + 1;
            self.pending.retain(|(w, seq), _| w != writer || *seq >= next);
            let Some((signed, delta)) = self.pending.remove(&(writer.clone(), next)) else {
                return changed;
            };
            match self.check(&delta, now_ms).and_then(|()| self.apply(signed, delta)) {
                Ok(key) => changed.push(key),
                Err(error) => {
                    tracing::warn!(%writer, seq = next, %error, "buffered delta refused");
                    return changed;
                }
            }
        }
    }

    /// Applies the buffered deltas that a state transfer made next in line.
    fn drain_all(&mut self, now_ms: u64) -> Vec<String> {
        let writers: Vec<Replica> = self.pending.keys().map(|(w, _)| w.clone()).collect();
        let mut changed = Vec::new();
        for writer in writers {
            changed.extend(self.drain(&writer, now_ms));
        }
        changed
    }

    /// What `clock`'s replica lacks: the deltas, at most `max`, or the whole
    /// state when this log no longer holds them.
    pub fn answer(&self, clock: &Clock, max: usize) -> Answer {
        let collected = self
            .floor
            .iter()
            .any(|(writer, floor)| clock.get(writer).copied().unwrap_or(0) < *floor);
        if collected {
            return Answer::Full(self.snapshot());
        }
        let mut deltas = Vec::new();
        for (writer, applied) in &self.applied {
            let from = clock.get(writer).copied().unwrap_or(0);
            if from >= *applied {
                continue;
            }
            for (_, signed) in self.log.range((writer.clone(), from + 1)..=(writer.clone(), *applied)) {
                if deltas.len() == max {
                    return Answer::Deltas { deltas, more: true };
                }
                deltas.push(signed.clone());
            }
        }
        Answer::Deltas { deltas, more: false }
    }

    /// Merges another replica's whole state (see the module docs); the keys
    /// changed.
    pub fn install(&mut self, snapshot: Snapshot, now_ms: u64) -> Result<Vec<String>, SyncError> {
        if snapshot.applied.len() > MAX_CLOCK_WRITERS || snapshot.entries.len() > self.limits.max_keys {
            return Err(SyncError::Full("keys or writers of a state transfer"));
        }
        // Checked whole before anything changes: a bad key refuses the transfer.
        for (key, theirs) in &snapshot.entries {
            if theirs.crdt.kind() != KeyKind::of(key)? {
                return Err(SyncError::BadValue(format!("{key}: a value of another kind")));
            }
        }
        let mut changed = Vec::new();
        let mut mine = std::mem::take(&mut self.entries);
        let theirs_applied = &snapshot.applied;
        // Keys only here: kept unless the sender has seen every write to them.
        mine.retain(|key, entry| {
            let removed = !snapshot.entries.contains_key(key) && covered(&entry.dots, theirs_applied);
            if removed {
                changed.push(key.clone());
            }
            !removed
        });
        for (key, theirs) in snapshot.entries {
            match mine.get_mut(&key) {
                Some(entry) => {
                    let before = entry.crdt.clone();
                    entry.crdt.merge(theirs.crdt);
                    join(&mut entry.dots, &theirs.dots);
                    if entry.crdt != before {
                        changed.push(key);
                    }
                }
                // Not here: removed here after those writes, or never seen.
                None if covered(&theirs.dots, &self.applied) => {}
                None => {
                    mine.insert(key.clone(), theirs);
                    changed.push(key);
                }
            }
        }
        if mine.len() > self.limits.max_keys {
            self.entries = mine;
            return Err(SyncError::Full("keys"));
        }
        self.entries = mine;
        // The log misses the sender's deltas this replica had not applied:
        // what asks for them from here gets the whole state too.
        for (writer, seq) in theirs_applied {
            if *seq > self.applied.get(writer).copied().unwrap_or(0) {
                self.floor.insert(writer.clone(), *seq);
                self.applied.insert(writer.clone(), *seq);
                self.log.retain(|(w, _), _| w != writer);
            }
        }
        if let Some(persist) = &self.persist {
            persist.replace(&self.entries, &self.applied, &self.floor, &self.log)?;
        }
        changed.extend(self.drain_all(now_ms));
        changed.sort();
        changed.dedup();
        Ok(changed)
    }

    /// Records what `peer` has applied (from its digest or answer), heard at `now_ms`.
    pub fn heard(&mut self, peer: &Replica, clock: Clock, now_ms: u64) {
        if peer != &self.me && clock.len() <= MAX_CLOCK_WRITERS {
            self.peers.insert(
                peer.clone(),
                Peer {
                    clock,
                    heard_ms: now_ms,
                },
            );
        }
    }

    /// Replicas heard within `horizon_ms`, and when each was heard.
    pub fn live_peers(&self, now_ms: u64, horizon_ms: u64) -> Vec<(Replica, u64)> {
        let mut live: Vec<(Replica, u64)> = self
            .peers
            .iter()
            .filter(|(_, p)| now_ms.saturating_sub(p.heard_ms) <= horizon_ms)
            .map(|(r, p)| (r.clone(), p.heard_ms))
            .collect();
        live.sort();
        live
    }

    /// Garbage collection: forgets replicas silent past `horizon_ms`, then drops
    /// the deltas and deleted keys every remaining replica has seen. Nothing is
    /// collected while no other replica is live (this one may be cut off).
    pub fn collect(&mut self, now_ms: u64, horizon_ms: u64) -> Result<Collected, SyncError> {
        self.peers
            .retain(|_, p| now_ms.saturating_sub(p.heard_ms) <= horizon_ms);
        if self.peers.is_empty() {
            return Ok(Collected::default());
        }
        let stable: Clock = self
            .applied
            .iter()
            .map(|(writer, applied)| {
                let seen = self
                    .peers
                    .values()
                    .map(|p| p.clock.get(writer).copied().unwrap_or(0))
                    .min()
                    .unwrap_or(0);
                (writer.clone(), seen.min(*applied))
            })
            .collect();
        let before = self.log.len();
        let pruned: Vec<(Replica, u64)> = self
            .log
            .keys()
            .filter(|(w, seq)| *seq <= stable.get(w).copied().unwrap_or(0))
            .cloned()
            .collect();
        for (writer, seq) in &pruned {
            self.log.remove(&(writer.clone(), *seq));
            let floor = self.floor.entry(writer.clone()).or_insert(0);
            *floor = (*floor).max(*seq);
        }
        let dead: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.crdt.is_void() && covered(&e.dots, &stable))
            .map(|(k, _)| k.clone())
            .collect();
        for key in &dead {
            self.entries.remove(key);
        }
        if let Some(persist) = &self.persist {
            persist.collected(&pruned, &dead, &self.floor)?;
        }
        Ok(Collected {
            deltas: before - self.log.len(),
            keys: dead.len(),
        })
    }

    /// Bytes of the state (postcard encoding of the entries).
    pub fn state_bytes(&self) -> usize {
        postcard::to_allocvec(&self.entries).map(|b| b.len()).unwrap_or(0)
    }
}

/// Whether every write in `dots` is included in `clock`.
fn covered(dots: &Dots, clock: &Clock) -> bool {
    dots.iter().all(|(w, seq)| clock.get(w).copied().unwrap_or(0) >= *seq)
}

/// `into` raised to `other` writer by writer.
fn join(into: &mut Dots, other: &Dots) {
    for (writer, seq) in other {
        let mine = into.entry(writer.clone()).or_insert(0);
        *mine = (*mine).max(*seq);
    }
}
