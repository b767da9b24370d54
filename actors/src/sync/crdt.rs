//! The replicated values: one CRDT from the `crdts` crate per key, its kind fixed
//! by the key's name so that no writer can change how a key merges.
//!
//! | key | kind | merge |
//! |---|---|---|
//! | `flag.<name>`, `config.<name>` | [`KeyKind::Lww`] (`LWWReg`) | last writer wins (marker: writer's clock, then writer id) |
//! | `note.<name>` | [`KeyKind::Multi`] (`MVReg`) | concurrent values all kept until a write that saw them resolves them |
//! | `quarantine`, `revoked_serials`, `denied_peers`, `set.<name>` | [`KeyKind::Set`] (`Orswot`) | merge-all, add wins over a concurrent remove |
//! | `counter.<name>` | [`KeyKind::Counter`] (`PNCounter`) | every increment and decrement counts |
//!
//! Values of registers are JSON texts; set members are strings.

use std::collections::BTreeMap;

use crdts::{lwwreg::LWWReg, mvreg, orswot, pncounter, CmRDT, CvRDT, MVReg, Orswot, PNCounter};
use serde::{Deserialize, Serialize};

use super::SyncError;

/// A replica's name in the CRDTs' clocks: its peer id, as text.
pub type Replica = String;

/// Longest key.
pub const MAX_KEY_BYTES: usize = 96;
/// Longest register value (JSON text) or set member.
pub const MAX_VALUE_BYTES: usize = 4 * 1024;

/// The set keys the node's subsystems read.
pub mod keys {
    /// Quarantined sources (members: [`crate::sync::QuarantineMember`] JSON).
    pub const QUARANTINE: &str = "quarantine";
    /// Serial numbers (lowercase hex) of revoked SVIDs.
    pub const REVOKED_SERIALS: &str = "revoked_serials";
    /// Peer ids refused as neighbours.
    pub const DENIED_PEERS: &str = "denied_peers";
}

/// How a key merges; fixed by its name (see the module table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// Last writer wins.
    Lww,
    /// Multi-value: concurrent values kept until resolved.
    Multi,
    /// Add-wins observed-remove set.
    Set,
    /// Positive-negative counter.
    Counter,
}

impl KeyKind {
    /// The kind of `key`, or why it is not a key.
    pub fn of(key: &str) -> Result<Self, SyncError> {
        if key.is_empty() || key.len() > MAX_KEY_BYTES {
            return Err(SyncError::BadKey(format!("a key has 1 to {MAX_KEY_BYTES} bytes")));
        }
        if !key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(SyncError::BadKey(format!(
                "{key:?}: a key uses a-z, 0-9, '.', '_', '-'"
            )));
        }
        if [keys::QUARANTINE, keys::REVOKED_SERIALS, keys::DENIED_PEERS].contains(&key) {
            return Ok(Self::Set);
        }
        let (prefix, name) = key.split_once('.').unwrap_or((key, ""));
        let kind = match prefix {
            "flag" | "config" => Self::Lww,
            "note" => Self::Multi,
            "set" => Self::Set,
            "counter" => Self::Counter,
            _ => {
                return Err(SyncError::BadKey(format!(
                    "{key:?}: not a replicated key (flag.*, config.*, note.*, set.*, counter.*, quarantine, revoked_serials, denied_peers)"
                )))
            }
        };
        if name.is_empty() {
            return Err(SyncError::BadKey(format!(
                "{key:?}: the name after {prefix:?} is empty"
            )));
        }
        Ok(kind)
    }
}

/// Orders last-writer-wins writes: the writer's clock (kept increasing by the
/// writer), then the writer's id, so two writes never tie.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Marker {
    /// Writer's clock, Unix milliseconds.
    pub ms: u64,
    /// The writer.
    pub writer: Replica,
}

/// One key's replicated value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Crdt {
    /// A last-writer-wins register of JSON text (`null` once deleted).
    Lww(LWWReg<String, Marker>),
    /// A multi-value register of JSON texts.
    Multi(MVReg<String, Replica>),
    /// An add-wins set of strings.
    Set(Orswot<String, Replica>),
    /// A counter.
    Counter(PNCounter<Replica>),
}

/// A change to one key: the CRDT operation a write produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Change {
    /// Sets a last-writer-wins register.
    Lww {
        /// JSON text; `null` deletes.
        value: String,
        /// Orders it against other writes.
        marker: Marker,
    },
    /// Writes a multi-value register (replacing every value the writer saw).
    Multi(mvreg::Op<String, Replica>),
    /// Adds to or removes from a set.
    Set(orswot::Op<String, Replica>),
    /// Increments or decrements a counter.
    Counter(pncounter::Op<Replica>),
}

/// What an operator asks for; [`Crdt::prepare`] turns it into a [`Change`].
#[derive(Debug, Clone, PartialEq)]
pub enum Intent {
    /// Writes a register (LWW or multi-value); JSON text.
    Put(String),
    /// Deletes a register's value (writes `null`) or empties a set.
    Delete,
    /// Adds a member to a set.
    Add(String),
    /// Removes a member from a set.
    Remove(String),
    /// Adds to a counter (negative: subtracts).
    Count(i64),
}

impl Crdt {
    /// An empty value of `kind`.
    pub fn empty(kind: KeyKind) -> Self {
        match kind {
            KeyKind::Lww => Self::Lww(LWWReg {
                val: "null".into(),
                marker: Marker::default(),
            }),
            KeyKind::Multi => Self::Multi(MVReg::new()),
            KeyKind::Set => Self::Set(Orswot::new()),
            KeyKind::Counter => Self::Counter(PNCounter::new()),
        }
    }

    /// Its kind.
    pub fn kind(&self) -> KeyKind {
        match self {
            Self::Lww(_) => KeyKind::Lww,
            Self::Multi(_) => KeyKind::Multi,
            Self::Set(_) => KeyKind::Set,
            Self::Counter(_) => KeyKind::Counter,
        }
    }

    /// The change `writer` makes with `intent`, seeing this value; `now_ms`
    /// is its clock (an LWW marker never goes back).
    pub fn prepare(&self, writer: &Replica, intent: Intent, now_ms: u64) -> Result<Change, SyncError> {
        let refuse = |what: &str| {
            Err(SyncError::BadValue(format!(
                "{what} does not apply to a {:?} key",
                self.kind()
            )))
        };
        match (self, intent) {
            (Self::Lww(reg), Intent::Put(value)) => Ok(lww(reg, writer, valid_json(value)?, now_ms)),
            (Self::Lww(reg), Intent::Delete) => Ok(lww(reg, writer, "null".into(), now_ms)),
            (Self::Multi(reg), Intent::Put(value)) => Ok(Change::Multi(
                reg.write(valid_json(value)?, reg.read_ctx().derive_add_ctx(writer.clone())),
            )),
            (Self::Multi(reg), Intent::Delete) => Ok(Change::Multi(
                reg.write("null".into(), reg.read_ctx().derive_add_ctx(writer.clone())),
            )),
            (Self::Set(set), Intent::Add(member)) => Ok(Change::Set(
                set.add(valid_member(member)?, set.read_ctx().derive_add_ctx(writer.clone())),
            )),
            (Self::Set(set), Intent::Remove(member)) => {
                let read = set.contains(&member);
                if !read.val {
                    return Err(SyncError::NotFound(format!("{member:?} is not in the set")));
                }
                Ok(Change::Set(set.rm(member, read.derive_rm_ctx())))
            }
            (Self::Set(set), Intent::Delete) => {
                let read = set.read();
                let (members, ctx) = read.split();
                Ok(Change::Set(set.rm_all(members, ctx.derive_rm_ctx())))
            }
            (Self::Counter(counter), Intent::Count(by)) if by != 0 => {
                let steps = by.unsigned_abs();
                Ok(Change::Counter(match by > 0 {
                    true => counter.inc_many(writer.clone(), steps),
                    false => counter.dec_many(writer.clone(), steps),
                }))
            }
            (_, Intent::Put(_)) => refuse("a value"),
            (_, Intent::Delete) => refuse("delete"),
            (_, Intent::Add(_) | Intent::Remove(_)) => refuse("add/remove"),
            (_, Intent::Count(_)) => refuse("a non-zero count"),
        }
    }

    /// Checks that `change`, written by `writer`, fits this value and speaks only
    /// for its writer: an operation witnessed by someone else's dot, a value out
    /// of bounds, or a change of another kind is refused.
    pub fn check(&self, writer: &Replica, change: &Change) -> Result<(), SyncError> {
        let foreign = || SyncError::BadValue("the change is witnessed by another replica's dot".into());
        match (self, change) {
            (Self::Lww(_), Change::Lww { value, marker }) => {
                if &marker.writer != writer {
                    return Err(foreign());
                }
                valid_json(value.clone()).map(drop)
            }
            (Self::Multi(_), Change::Multi(mvreg::Op::Put { clock, val })) => {
                if clock.get(writer) == 0 {
                    return Err(foreign());
                }
                valid_json(val.clone()).map(drop)
            }
            (Self::Set(_), Change::Set(orswot::Op::Add { dot, members })) => {
                if &dot.actor != writer {
                    return Err(foreign());
                }
                members.iter().try_for_each(|m| valid_member(m.clone()).map(drop))
            }
            (Self::Set(_), Change::Set(orswot::Op::Rm { .. })) => Ok(()),
            (Self::Counter(_), Change::Counter(op)) if &op.dot.actor == writer => Ok(()),
            (Self::Counter(_), Change::Counter(_)) => Err(foreign()),
            _ => Err(SyncError::BadValue(format!(
                "a change of another kind for a {:?} key",
                self.kind()
            ))),
        }
    }

    /// Applies a change already [`check`](Self::check)ed.
    pub fn apply(&mut self, change: Change) {
        match (self, change) {
            (Self::Lww(reg), Change::Lww { value, marker }) => reg.update(value, marker),
            (Self::Multi(reg), Change::Multi(op)) => reg.apply(op),
            (Self::Set(set), Change::Set(op)) => set.apply(op),
            (Self::Counter(counter), Change::Counter(op)) => counter.apply(op),
            _ => {}
        }
    }

    /// Merges another replica's value of the same key (state transfer).
    pub fn merge(&mut self, other: Self) {
        match (self, other) {
            (Self::Lww(reg), Self::Lww(other)) => reg.update(other.val, other.marker),
            (Self::Multi(reg), Self::Multi(other)) => reg.merge(other),
            (Self::Set(set), Self::Set(other)) => set.merge(other),
            (Self::Counter(counter), Self::Counter(other)) => counter.merge(other),
            _ => {}
        }
    }

    /// True when the value holds nothing (a deleted register, an empty set).
    pub fn is_void(&self) -> bool {
        match self {
            Self::Lww(reg) => reg.val == "null",
            Self::Multi(reg) => reg.read().val.iter().all(|v| v == "null"),
            Self::Set(set) => set.read().val.is_empty(),
            Self::Counter(_) => false,
        }
    }

    /// The value as JSON for the API: a register's value (or, for a multi-value
    /// register, every concurrent value), a set's sorted members, a counter.
    pub fn view(&self) -> serde_json::Value {
        let parse = |text: &str| serde_json::from_str(text).unwrap_or(serde_json::Value::Null);
        match self {
            Self::Lww(reg) => parse(&reg.val),
            Self::Multi(reg) => {
                let mut values: Vec<String> = reg.read().val;
                values.sort();
                values.dedup();
                serde_json::Value::Array(values.iter().map(|v| parse(v)).collect())
            }
            Self::Set(_) => serde_json::json!(self.members()),
            Self::Counter(counter) => serde_json::json!(counter.read().to_string().parse::<i64>().unwrap_or(0)),
        }
    }

    /// A set's members, sorted (empty for other kinds).
    pub fn members(&self) -> Vec<String> {
        match self {
            Self::Set(set) => {
                let mut members: Vec<String> = set.read().val.into_iter().collect();
                members.sort();
                members
            }
            _ => Vec::new(),
        }
    }

    /// The replicas whose adds keep `member` in a set.
    pub fn adders(&self, member: &str) -> Vec<Replica> {
        match self {
            Self::Set(set) => set
                .contains(&member.to_string())
                .rm_clock
                .iter()
                .map(|dot| dot.actor.clone())
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Concurrent values of a multi-value register (more than one: a conflict
    /// for an operator to resolve).
    pub fn concurrent_values(&self) -> usize {
        match self {
            Self::Multi(reg) => {
                let mut values = reg.read().val;
                values.sort();
                values.dedup();
                values.len()
            }
            _ => 0,
        }
    }
}

/// An LWW change by `writer` whose marker is later than both `now_ms` and the
/// register's current marker.
fn lww(reg: &LWWReg<String, Marker>, writer: &Replica, value: String, now_ms: u64) -> Change {
    let ms = now_ms.max(reg.marker.ms.saturating_add(1));
    Change::Lww {
        value,
        marker: Marker {
            ms,
            writer: writer.clone(),
        },
    }
}

/// `text` if it is JSON within [`MAX_VALUE_BYTES`].
fn valid_json(text: String) -> Result<String, SyncError> {
    if text.len() > MAX_VALUE_BYTES {
        return Err(SyncError::BadValue(format!(
            "a value has at most {MAX_VALUE_BYTES} bytes"
        )));
    }
    serde_json::from_str::<serde::de::IgnoredAny>(&text)
        .map_err(|e| SyncError::BadValue(format!("a value is JSON: {e}")))?;
    Ok(text)
}

/// `member` if it is a non-empty string within [`MAX_VALUE_BYTES`].
fn valid_member(member: String) -> Result<String, SyncError> {
    if member.is_empty() || member.len() > MAX_VALUE_BYTES {
        return Err(SyncError::BadValue(format!(
            "a set member has 1 to {MAX_VALUE_BYTES} bytes"
        )));
    }
    Ok(member)
}

/// The largest sequence number of each writer whose writes touched a key: what
/// tells a key removed after those writes from one that was never seen.
pub type Dots = BTreeMap<Replica, u64>;
