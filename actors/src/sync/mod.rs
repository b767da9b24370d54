//! Replicated mesh state: CRDTs over gossipsub with vector clocks, anti-entropy
//! and garbage collection.
//!
//! A small store of named keys ([`crdt`]: LWW registers, multi-value registers,
//! add-wins sets, counters from the `crdts` crate) that every node holds whole.
//! A write anywhere becomes a signed [`delta::Delta`], applied locally, kept in
//! sled ([`persist`]) and published on `x0tta6bl4/sync/1`. Each node applies
//! each writer's deltas in order ([`replica`]); what gossip missed (a partition,
//! a restart) comes back by anti-entropy ([`exchange`]): on every new link and
//! every `sync.anti_entropy_secs`, two nodes swap version vectors over a stream
//! and send each other only the deltas the other lacks, or the whole state
//! when the log no longer holds them. The [`SyncActor`] puts the shared keys in
//! force ([`effects`]): the quarantine list in every XDP blocklist, revoked SVID
//! serials in the trust, denied peers in the swarm's block list, live flags.

pub mod crdt;
pub mod delta;
mod effects;
pub mod exchange;
mod metrics;
mod node;
pub mod persist;
pub mod replica;
#[cfg(test)]
mod tests;

use serde::Deserialize;
use thiserror::Error;

pub use crdt::{keys, Intent, KeyKind};
pub use effects::{Effects, LiveFlags, QuarantineMember, HEALER_PAUSED};
pub use node::{StateView, SyncActor, SyncNode};
pub use replica::{Clock, Limits, ReplicaState};

/// Gossipsub topic of deltas.
pub const SYNC_TOPIC: &str = "x0tta6bl4/sync/1";

/// Why a write or a delta was refused; [`SyncError::reason`] labels it in
/// `x0tta_sync_deltas_total{direction="in",result}`.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum SyncError {
    /// Not a replicated key.
    #[error("bad key: {0}")]
    BadKey(String),
    /// A value, member or change that does not fit its key.
    #[error("bad value: {0}")]
    BadValue(String),
    /// A member to remove that is not there.
    #[error("not found: {0}")]
    NotFound(String),
    /// Larger than the limit.
    #[error("delta of {0} bytes exceeds the limit")]
    TooLarge(usize),
    /// Not the encoding of a delta.
    #[error("malformed delta: {0}")]
    Malformed(String),
    /// The signature does not verify.
    #[error("delta with a bad signature")]
    BadSignature,
    /// Signed by another key than its writer's.
    #[error("delta of writer {writer} signed by {signer}")]
    WrongSigner {
        /// Who it claims wrote it.
        writer: String,
        /// Whose key signed it.
        signer: String,
    },
    /// The policy does not let its writer write.
    #[error("the policy denies writes by {0}")]
    Denied(String),
    /// Its clock is this many ms ahead of this node's, past `sync.max_skew_ms`.
    #[error("delta clock {0} ms ahead")]
    ClockAhead(u64),
    /// A bound was reached.
    #[error("too many {0}")]
    Full(&'static str),
    /// sled failed.
    #[error("store: {0}")]
    Store(String),
}

impl SyncError {
    /// The metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::BadKey(_) => "bad_key",
            Self::BadValue(_) => "bad_value",
            Self::NotFound(_) => "not_found",
            Self::TooLarge(_) => "too_large",
            Self::Malformed(_) => "malformed",
            Self::BadSignature => "bad_signature",
            Self::WrongSigner { .. } => "wrong_signer",
            Self::Denied(_) => "policy",
            Self::ClockAhead(_) => "clock_ahead",
            Self::Full(_) => "full",
            Self::Store(_) => "store",
        }
    }
}

/// `[sync]`: replication of shared state.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncConfig {
    /// Replicate at all.
    pub enabled: bool,
    /// Seconds between two anti-entropy rounds (with one neighbour each).
    pub anti_entropy_secs: u64,
    /// A replica silent this long no longer holds garbage collection back;
    /// coming back later, it takes the whole state.
    pub gc_horizon_secs: u64,
    /// How far ahead of this node's clock a delta's clock may be (ms).
    pub max_skew_ms: u64,
    /// Most keys.
    pub max_keys: usize,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            anti_entropy_secs: 10,
            gc_horizon_secs: 600,
            max_skew_ms: 60_000,
            max_keys: 4_096,
        }
    }
}

impl SyncConfig {
    /// Checks the values.
    pub fn validate(&self) -> Result<(), String> {
        if self.anti_entropy_secs == 0 || self.gc_horizon_secs == 0 || self.max_keys == 0 {
            return Err("sync.anti_entropy_secs, sync.gc_horizon_secs and sync.max_keys must be positive".into());
        }
        if self.gc_horizon_secs < 2 * self.anti_entropy_secs {
            return Err("sync.gc_horizon_secs must be at least twice sync.anti_entropy_secs".into());
        }
        Ok(())
    }

    /// The replica's bounds.
    pub fn limits(&self) -> Limits {
        Limits {
            max_keys: self.max_keys,
            max_skew_ms: self.max_skew_ms,
            ..Limits::default()
        }
    }
}
