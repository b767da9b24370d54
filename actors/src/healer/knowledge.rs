//! Knowledge: the action history and the rollback stack, kept in sled so they
//! survive restarts. Both are bounded.

use serde::{Deserialize, Serialize};

use super::plan::Action;
use crate::store::{Store, StoreError};

const HISTORY_TREE: &str = "healing_history";
const ROLLBACK_TREE: &str = "healing_rollback";

/// How an action ended (so far).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Carried out; verification pending.
    Executed,
    /// Verified: delivery to the affected destinations was probed before and
    /// after, and is healthy after.
    Verified,
    /// Carried out, but nothing could show whether it helped (no destination
    /// to probe); never counted in MTTR.
    Unverified,
    /// The attempt failed.
    Failed,
    /// The breaker or the rate limiter refused it.
    Refused,
    /// Made things worse, so it was undone.
    RolledBack,
    /// A quarantine ended, or an avoided link was let back in.
    Released,
}

impl Outcome {
    /// Label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Executed => "executed",
            Outcome::Verified => "verified",
            Outcome::Unverified => "unverified",
            Outcome::Failed => "failed",
            Outcome::Refused => "refused",
            Outcome::RolledBack => "rolled_back",
            Outcome::Released => "released",
        }
    }
}

/// One entry of the history.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    /// Sequence number, increasing.
    pub seq: u64,
    /// Wall-clock time, Unix ms.
    pub at_unix_ms: u64,
    /// Action kind.
    pub action: String,
    /// Target.
    pub target: String,
    /// The symptom that caused it.
    pub symptom: String,
    /// Its evidence.
    pub evidence: String,
    /// Outcome.
    pub result: Outcome,
    /// Details (errors, measurements).
    pub detail: String,
    /// Symptom to verified recovery, when verified.
    pub mttr_ms: Option<u64>,
}

/// History and rollback stack.
#[derive(Clone)]
pub struct Knowledge {
    history: sled::Tree,
    rollback: sled::Tree,
    limit: usize,
}

impl Knowledge {
    /// Opens both trees, keeping at most `limit` records of each.
    pub fn open(store: &Store, limit: usize) -> Result<Self, StoreError> {
        Ok(Self {
            history: store.tree(HISTORY_TREE)?,
            rollback: store.tree(ROLLBACK_TREE)?,
            limit: limit.max(1),
        })
    }

    fn next_seq(tree: &sled::Tree) -> u64 {
        tree.last()
            .ok()
            .flatten()
            .and_then(|(key, _)| key.as_ref().try_into().ok().map(u64::from_be_bytes))
            .map_or(1, |last| last + 1)
    }

    fn trim(&self, tree: &sled::Tree) -> Result<(), StoreError> {
        while tree.len() > self.limit {
            if tree.pop_min()?.is_none() {
                break;
            }
        }
        Ok(())
    }

    /// Appends a record (its `seq` is assigned here) and returns it.
    pub fn record(&self, mut record: Record) -> Result<Record, StoreError> {
        record.seq = Self::next_seq(&self.history);
        let bytes = serde_json::to_vec(&record).unwrap_or_default();
        self.history.insert(record.seq.to_be_bytes(), bytes)?;
        self.trim(&self.history)?;
        Ok(record)
    }

    /// Up to `limit` records, newest first.
    pub fn history(&self, limit: usize) -> Vec<Record> {
        self.history
            .iter()
            .rev()
            .filter_map(Result::ok)
            .filter_map(|(_, v)| serde_json::from_slice(&v).ok())
            .take(limit)
            .collect()
    }

    /// Pushes an action about to run; returns its stack key.
    pub fn push_rollback(&self, action: &Action) -> Result<u64, StoreError> {
        let key = Self::next_seq(&self.rollback);
        let bytes = serde_json::to_vec(action).unwrap_or_default();
        self.rollback.insert(key.to_be_bytes(), bytes)?;
        self.trim(&self.rollback)?;
        Ok(key)
    }

    /// Removes and returns the entry `key` (the action to undo), if still there.
    pub fn take_rollback(&self, key: u64) -> Result<Option<Action>, StoreError> {
        Ok(self
            .rollback
            .remove(key.to_be_bytes())?
            .and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// Removes and returns the newest entry: `rollback_last_action`.
    pub fn pop_rollback(&self) -> Result<Option<(u64, Action)>, StoreError> {
        Ok(self.rollback.pop_max()?.and_then(|(k, v)| {
            let key = u64::from_be_bytes(k.as_ref().try_into().ok()?);
            serde_json::from_slice(&v).ok().map(|a| (key, a))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(target: &str) -> Record {
        Record {
            seq: 0,
            at_unix_ms: 1,
            action: "redial".into(),
            target: target.into(),
            symptom: "peer_silent".into(),
            evidence: String::new(),
            result: Outcome::Failed,
            detail: String::new(),
            mttr_ms: None,
        }
    }

    #[test]
    fn history_is_newest_first_bounded_and_survives_reopening() {
        let store = Store::temporary().expect("store");
        let knowledge = Knowledge::open(&store, 3).expect("open");
        for i in 0..5 {
            knowledge.record(record(&format!("p{i}"))).expect("record");
        }
        let targets: Vec<String> = knowledge.history(10).into_iter().map(|r| r.target).collect();
        assert_eq!(targets, ["p4", "p3", "p2"]);
        let reopened = Knowledge::open(&store, 3).expect("reopen");
        assert_eq!(reopened.history(1)[0].seq, 5);
    }

    #[test]
    fn rollback_pops_newest_and_take_removes_a_given_entry() {
        let store = Store::temporary().expect("store");
        let knowledge = Knowledge::open(&store, 10).expect("open");
        let first = Action::SwitchRoute { peer: "a".into() };
        let second = Action::SwitchRoute { peer: "b".into() };
        let k1 = knowledge.push_rollback(&first).expect("push");
        let _k2 = knowledge.push_rollback(&second).expect("push");
        assert_eq!(knowledge.take_rollback(k1).expect("take"), Some(first));
        assert_eq!(knowledge.take_rollback(k1).expect("take"), None, "taken once");
        assert_eq!(knowledge.pop_rollback().expect("pop").map(|(_, a)| a), Some(second));
        assert_eq!(knowledge.pop_rollback().expect("pop"), None);
    }
}
