//! The durable outbox: every notification is written to sled in one
//! transaction (and flushed before [`Outbox::record`] returns) before it is
//! handed to any sink, and leaves only when each of its sinks has accepted
//! it. A second tree remembers firing alerts by fingerprint, so an alert that
//! fires again is not sent again, and a resolve is sent only for an alert
//! that fired. Notifications about one alert reach a sink in the order they
//! were recorded: a resolve never overtakes a firing notification waiting
//! for a retry. A sink never sees a notification before it is on disk:
//! lanes read the outbox only between writes, never inside one.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

use super::sinks::SinkKind;
use crate::alert::{Alert, Severity};
use crate::errors::report;
use crate::store::{Store, StoreError};

const ENTRIES_TREE: &str = "alert_outbox";
const FIRING_TREE: &str = "alert_firing";

/// Where one notification stands with one sink.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Delivery attempts so far.
    pub attempts: u32,
    /// Not before this Unix millisecond.
    pub next_attempt_ms: u64,
    /// What went wrong last time.
    pub last_error: Option<String>,
    /// Refused for good (a 4xx other than 429): kept for people to see, not retried.
    pub failed: bool,
}

/// One notification waiting for one or more sinks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Outbox id, increasing.
    pub id: u64,
    /// The alert, firing or resolved.
    pub alert: Alert,
    /// Sinks that have not accepted it yet.
    pub sinks: BTreeMap<SinkKind, Progress>,
}

/// A firing alert as remembered for dedupe and resolves.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Firing {
    alert: Alert,
    /// When it was last sent.
    notified_ms: u64,
    /// When it was last raised (sent or deduplicated); 0 in records written
    /// before this was kept, read as `notified_ms`.
    #[serde(default)]
    seen_ms: u64,
}

impl Firing {
    fn last_seen_ms(&self) -> u64 {
        self.seen_ms.max(self.notified_ms)
    }
}

/// What a sink may try now.
#[derive(Debug, Default)]
pub struct Due {
    /// Entries to try, oldest first.
    pub entries: Vec<Entry>,
    /// When nothing is due: the earliest retry time of those waiting.
    pub next_ms: Option<u64>,
}

/// What [`Outbox::record`] did with an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Stored under this id for delivery.
    Queued(u64),
    /// Already firing and notified recently: not sent again.
    Duplicate,
    /// A resolve for an alert that is not firing: nothing to tell.
    NotFiring,
    /// No sink is configured: only logged.
    NoSinks,
}

/// Errors of the outbox.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// sled failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// sled failed inside a transaction.
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    /// A stored record does not decode.
    #[error("unreadable outbox record: {0}")]
    Corrupt(#[from] serde_json::Error),
}

impl From<TransactionError<serde_json::Error>> for OutboxError {
    fn from(error: TransactionError<serde_json::Error>) -> Self {
        match error {
            TransactionError::Abort(e) => OutboxError::Corrupt(e),
            TransactionError::Storage(e) => OutboxError::Sled(e),
        }
    }
}

/// The outbox and the firing set.
#[derive(Clone)]
pub struct Outbox {
    store: Store,
    entries: sled::Tree,
    firing: sled::Tree,
    max_entries: usize,
    max_firing: usize,
    /// Held for writing while [`Outbox::record`] commits, trims and
    /// flushes, and for reading by [`Outbox::due`]: what a lane sends is
    /// already durable, so a crash cannot forget an alert a sink has seen.
    publishing: Arc<parking_lot::RwLock<()>>,
}

impl Outbox {
    /// Opens the outbox trees of `store`.
    pub fn open(store: &Store, max_entries: usize, max_firing: usize) -> Result<Self, OutboxError> {
        Ok(Self {
            store: store.clone(),
            entries: store.tree(ENTRIES_TREE)?,
            firing: store.tree(FIRING_TREE)?,
            max_entries: max_entries.max(1),
            max_firing: max_firing.max(1),
            publishing: Arc::default(),
        })
    }

    /// Records `alert` for `sinks` at `now_ms`, durably (flushed) before it
    /// returns. A firing alert already notified less than `repeat_after_ms`
    /// ago is a [`Recorded::Duplicate`]; a resolve takes the start time of
    /// the firing alert and forgets it.
    pub fn record(
        &self,
        alert: Alert,
        sinks: &[SinkKind],
        now_ms: u64,
        repeat_after_ms: u64,
    ) -> Result<Recorded, OutboxError> {
        if sinks.is_empty() {
            return Ok(Recorded::NoSinks);
        }
        let fingerprint = alert.fingerprint();
        let id = self.store.generate_id()?;
        let _publishing = self.publishing.write();
        let recorded = (&self.entries, &self.firing).transaction(|(entries, firing)| {
            let known: Option<Firing> = firing
                .get(fingerprint.as_bytes())?
                .map(|bytes| serde_json::from_slice(&bytes))
                .transpose()
                .map_err(ConflictableTransactionError::Abort)?;
            let mut alert = alert.clone();
            match (alert.is_resolved(), known) {
                (false, Some(known)) if now_ms.saturating_sub(known.notified_ms) < repeat_after_ms => {
                    let seen = Firing {
                        seen_ms: now_ms,
                        ..known
                    };
                    let bytes = serde_json::to_vec(&seen).map_err(ConflictableTransactionError::Abort)?;
                    firing.insert(fingerprint.as_bytes(), bytes)?;
                    return Ok(Recorded::Duplicate);
                }
                (false, known) => {
                    if let Some(known) = known {
                        alert.starts_at_ms = known.alert.starts_at_ms;
                    }
                    let remembered = Firing {
                        alert: alert.clone(),
                        notified_ms: now_ms,
                        seen_ms: now_ms,
                    };
                    let bytes = serde_json::to_vec(&remembered).map_err(ConflictableTransactionError::Abort)?;
                    firing.insert(fingerprint.as_bytes(), bytes)?;
                }
                (true, None) => return Ok(Recorded::NotFiring),
                (true, Some(known)) => {
                    alert = Alert {
                        ends_at_ms: alert.ends_at_ms,
                        ..known.alert
                    };
                    firing.remove(fingerprint.as_bytes())?;
                }
            }
            let entry = Entry {
                id,
                alert,
                sinks: sinks.iter().map(|sink| (*sink, Progress::default())).collect(),
            };
            let bytes = serde_json::to_vec(&entry).map_err(ConflictableTransactionError::Abort)?;
            entries.insert(&id.to_be_bytes(), bytes)?;
            Ok(Recorded::Queued(id))
        })?;
        if recorded == Recorded::Queued(id) {
            self.trim()?;
            self.store.flush()?;
        }
        Ok(recorded)
    }

    /// Drops the oldest entries and firing alerts beyond the bounds; returns
    /// how many notifications (one per sink) were dropped.
    fn trim(&self) -> Result<usize, OutboxError> {
        let mut dropped = 0;
        while self.entries.len() > self.max_entries {
            let Some((key, value)) = self.entries.pop_min()? else {
                break;
            };
            dropped += serde_json::from_slice::<Entry>(&value).map_or(1, |e| e.sinks.len());
            tracing::warn!(id = ?key, "alert outbox full: oldest notification dropped");
        }
        if dropped > 0 {
            super::metrics::dropped("full", dropped);
        }
        while self.firing.len() > self.max_firing {
            let oldest = self
                .firing_records()?
                .into_iter()
                .min_by_key(Firing::last_seen_ms)
                .map(|firing| firing.alert);
            let Some(oldest) = oldest else { break };
            tracing::warn!(alert = %oldest.name, "too many firing alerts: the one raised longest ago is forgotten (its resolve will not be sent)");
            self.firing.remove(oldest.fingerprint().as_bytes())?;
        }
        Ok(dropped)
    }

    /// Entries `sink` may try at `now_ms`, oldest first, at most `limit`;
    /// when none is, the earliest time one will be (`None`: nothing waits).
    /// At most one notification per alert is due at a time, the oldest: a
    /// later one (its resolve, say) waits until the earlier is accepted or
    /// refused for good.
    pub fn due(&self, sink: SinkKind, now_ms: u64, limit: usize) -> Result<Due, OutboxError> {
        let _published = self.publishing.read();
        let mut due = Due::default();
        let mut held = HashSet::new();
        for item in self.entries.iter() {
            let Some(entry) = readable::<Entry>(&self.entries, item)? else {
                continue;
            };
            let Some(progress) = entry.sinks.get(&sink).filter(|p| !p.failed) else {
                continue;
            };
            if !held.insert(entry.alert.fingerprint()) {
                continue;
            }
            if progress.next_attempt_ms > now_ms {
                let next = due
                    .next_ms
                    .map_or(progress.next_attempt_ms, |n| n.min(progress.next_attempt_ms));
                due.next_ms = Some(next);
                continue;
            }
            due.entries.push(entry);
            if due.entries.len() >= limit {
                break;
            }
        }
        Ok(due)
    }

    /// `sink` accepted entry `id`: it leaves that sink's list, and the
    /// outbox once no sink is left.
    pub fn delivered(&self, id: u64, sink: SinkKind) -> Result<(), OutboxError> {
        self.update(id, |entry| {
            entry.sinks.remove(&sink);
        })
    }

    /// `sink` did not accept entry `id`: record why, and when to try again
    /// (`None`: never, it was refused for good).
    pub fn failed(&self, id: u64, sink: SinkKind, error: &str, retry_at_ms: Option<u64>) -> Result<(), OutboxError> {
        self.update(id, |entry| {
            if let Some(progress) = entry.sinks.get_mut(&sink) {
                progress.attempts += 1;
                progress.last_error = Some(error.to_string());
                match retry_at_ms {
                    Some(at) => progress.next_attempt_ms = at,
                    None => progress.failed = true,
                }
            }
        })
    }

    /// Writes what the outbox holds to disk: after a batch's outcome, so a
    /// crash does not send an accepted notification again.
    pub fn flush(&self) -> Result<(), OutboxError> {
        Ok(self.store.flush()?)
    }

    /// Applies `change` to entry `id` atomically; removes it when no sink is left.
    fn update(&self, id: u64, change: impl Fn(&mut Entry)) -> Result<(), OutboxError> {
        let mut corrupt = None;
        self.entries.update_and_fetch(id.to_be_bytes(), |old| {
            let old = old?;
            match serde_json::from_slice::<Entry>(old) {
                Ok(mut entry) => {
                    change(&mut entry);
                    (!entry.sinks.is_empty()).then(|| serde_json::to_vec(&entry).unwrap_or_else(|_| old.to_vec()))
                }
                Err(e) => {
                    corrupt = Some(e);
                    Some(old.to_vec())
                }
            }
        })?;
        match corrupt {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// Forgets what waits for sinks not in `configured` (their configuration
    /// was removed, so nothing would ever deliver it); entries left with no
    /// sink leave the outbox. Returns how many notifications were forgotten.
    pub fn retain_sinks(&self, configured: &[SinkKind]) -> Result<usize, OutboxError> {
        let mut forgotten = 0;
        for entry in self.entries()? {
            let unconfigured = entry.sinks.keys().filter(|sink| !configured.contains(sink)).count();
            if unconfigured > 0 {
                forgotten += unconfigured;
                self.update(entry.id, |entry| {
                    entry.sinks.retain(|sink, _| configured.contains(sink))
                })?;
            }
        }
        if forgotten > 0 {
            self.store.flush()?;
        }
        Ok(forgotten)
    }

    /// Every entry, oldest first.
    pub fn entries(&self) -> Result<Vec<Entry>, OutboxError> {
        let mut entries = Vec::new();
        for item in self.entries.iter() {
            entries.extend(readable(&self.entries, item)?);
        }
        Ok(entries)
    }

    /// Notifications still waiting for `sink` (failed ones included).
    pub fn backlog(&self, sink: SinkKind) -> Result<usize, OutboxError> {
        Ok(self.entries()?.iter().filter(|e| e.sinks.contains_key(&sink)).count())
    }

    fn firing_records(&self) -> Result<Vec<Firing>, OutboxError> {
        let mut records = Vec::new();
        for item in self.firing.iter() {
            records.extend(readable(&self.firing, item)?);
        }
        Ok(records)
    }

    /// Alerts firing now.
    pub fn firing(&self) -> Result<Vec<Alert>, OutboxError> {
        Ok(self.firing_records()?.into_iter().map(|f| f.alert).collect())
    }

    /// Firing alerts not raised again since `now_ms - ttl_ms`: events (a
    /// refused handshake, a breaker that opened) that no one will resolve.
    pub fn stale(&self, now_ms: u64, ttl_ms: u64) -> Result<Vec<Alert>, OutboxError> {
        let cutoff = now_ms.saturating_sub(ttl_ms);
        Ok(self
            .firing_records()?
            .into_iter()
            .filter(|f| f.last_seen_ms() < cutoff)
            .map(|f| f.alert)
            .collect())
    }
}

/// Decodes one stored record. A record that does not decode (damaged, or
/// written by another version) can never be delivered: it is removed and
/// reported rather than left to stop every read of the outbox.
fn readable<T: DeserializeOwned>(
    tree: &sled::Tree,
    item: sled::Result<(sled::IVec, sled::IVec)>,
) -> Result<Option<T>, OutboxError> {
    let (key, bytes) = item?;
    match serde_json::from_slice(&bytes) {
        Ok(record) => Ok(Some(record)),
        Err(error) => {
            tree.remove(&key)?;
            let tree_name = String::from_utf8_lossy(&tree.name()).into_owned();
            report(
                "alerter",
                "unreadable_record",
                Severity::Warning,
                &format!("{tree_name} record of {} bytes removed: {error}", bytes.len()),
            );
            Ok(None)
        }
    }
}

#[cfg(test)]
#[path = "outbox_tests.rs"]
mod tests;
