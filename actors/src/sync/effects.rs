//! The shared keys put in force on this node: each subsystem reads through the
//! replicated store, so a change made on any node acts on every node.
//!
//! - `quarantine` (members: [`QuarantineMember`] JSON) → the telemetry actor's
//!   quarantine list and so every XDP blocklist; a member leaves the set once
//!   expired (removed by whoever added it, or by anyone past the GC horizon);
//! - `revoked_serials` → [`Trust::set_replicated_revocations`](crate::svid::Trust);
//! - `denied_peers` → the swarm's block list;
//! - `flag.healer.paused` (`true`/`false`) → [`LiveFlags`], read by the healer.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use libp2p::PeerId;
use serde::{Deserialize, Serialize};

use super::crdt::{keys, Intent};
use super::node::SyncNode;
use crate::mesh::{unix_ms, MeshHandle};
use crate::svid::Trust;
use crate::telemetry::{Quarantine, Release, TelemetryActor};

/// The key of the healer's pause flag.
pub const HEALER_PAUSED: &str = "flag.healer.paused";

/// One quarantined source in the replicated `quarantine` set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineMember {
    /// The source address.
    pub addr: IpAddr,
    /// The peer it belongs to, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// Why.
    pub reason: String,
    /// Release time, Unix milliseconds.
    pub expires_ms: u64,
}

impl QuarantineMember {
    /// The set member (JSON with fields in a fixed order).
    pub fn member(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a member back; `None` for one that is not a quarantine entry.
    pub fn parse(member: &str) -> Option<Self> {
        serde_json::from_str(member).ok()
    }
}

/// Flags the replicated store switches live, read by subsystems.
#[derive(Debug, Clone, Default)]
pub struct LiveFlags {
    healer_paused: Arc<AtomicBool>,
}

impl LiveFlags {
    /// Whether the healer is paused (`flag.healer.paused`): it observes and
    /// reports, and takes no action.
    pub fn healer_paused(&self) -> bool {
        self.healer_paused.load(Ordering::Relaxed)
    }
}

/// Puts the shared keys in force on this node.
pub struct Effects {
    telemetry: Option<Addr<TelemetryActor>>,
    mesh: MeshHandle,
    trust: Option<Arc<Trust>>,
    flags: LiveFlags,
    /// Sources quarantined through the store, with their release time.
    quarantined: BTreeMap<IpAddr, u64>,
    denied: BTreeSet<PeerId>,
}

impl Effects {
    /// Effects on `telemetry`, `mesh`, `trust` and `flags`.
    pub fn new(
        telemetry: Option<Addr<TelemetryActor>>,
        mesh: MeshHandle,
        trust: Option<Arc<Trust>>,
        flags: LiveFlags,
    ) -> Self {
        Self {
            telemetry,
            mesh,
            trust,
            flags,
            quarantined: BTreeMap::new(),
            denied: BTreeSet::new(),
        }
    }

    /// Puts `changed` keys (every key with `None`) in force.
    pub fn apply(&mut self, node: &SyncNode, changed: Option<&[String]>) {
        let touched = |key: &str| changed.is_none_or(|keys| keys.iter().any(|k| k == key));
        if touched(keys::QUARANTINE) {
            self.quarantine(node);
        }
        if touched(keys::DENIED_PEERS) {
            self.deny(node);
        }
        if touched(keys::REVOKED_SERIALS) {
            if let Some(trust) = &self.trust {
                trust.set_replicated_revocations(node.members(keys::REVOKED_SERIALS).into_iter().collect());
            }
        }
        if touched(HEALER_PAUSED) {
            let paused = node.value(HEALER_PAUSED) == Some(serde_json::Value::Bool(true));
            if self.flags.healer_paused.swap(paused, Ordering::Relaxed) != paused {
                tracing::warn!(paused, "healer pause flag changed (replicated state)");
            }
        }
    }

    /// The live members of `quarantine` into the telemetry actor.
    fn quarantine(&mut self, node: &SyncNode) {
        let now = unix_ms();
        let mut wanted: BTreeMap<IpAddr, QuarantineMember> = BTreeMap::new();
        for member in node
            .members(keys::QUARANTINE)
            .iter()
            .filter_map(|m| QuarantineMember::parse(m))
        {
            if member.expires_ms > now
                && wanted
                    .get(&member.addr)
                    .is_none_or(|w| w.expires_ms < member.expires_ms)
            {
                wanted.insert(member.addr, member);
            }
        }
        let Some(telemetry) = &self.telemetry else {
            return;
        };
        let released: Vec<IpAddr> = self
            .quarantined
            .keys()
            .filter(|addr| !wanted.contains_key(addr))
            .copied()
            .collect();
        if !released.is_empty() {
            telemetry.do_send(Release(released));
        }
        for (addr, member) in &wanted {
            if self.quarantined.get(addr) != Some(&member.expires_ms) {
                telemetry.do_send(Quarantine {
                    addrs: vec![*addr],
                    peer: member.peer.clone(),
                    reason: format!("{} (replicated)", member.reason),
                    ttl: Some(Duration::from_millis(member.expires_ms - now)),
                });
            }
        }
        self.quarantined = wanted.into_iter().map(|(addr, m)| (addr, m.expires_ms)).collect();
    }

    /// The members of `denied_peers` into the swarm's block list.
    fn deny(&mut self, node: &SyncNode) {
        let wanted: BTreeSet<PeerId> = node
            .members(keys::DENIED_PEERS)
            .iter()
            .filter_map(|p| p.parse().ok())
            .filter(|p| *p != node.me())
            .collect();
        for (peer, blocked) in wanted
            .difference(&self.denied)
            .map(|p| (*p, true))
            .chain(self.denied.difference(&wanted).map(|p| (*p, false)))
        {
            let mesh = self.mesh.clone();
            actix::spawn(async move {
                if let Err(error) = mesh.set_blocked(peer, blocked).await {
                    tracing::warn!(%peer, %error, "cannot change the block list");
                }
            });
        }
        self.denied = wanted;
    }

    /// Removes expired quarantine members from the store: this node's own, and
    /// anyone's expired for longer than the GC horizon (their adder may be gone).
    pub fn expire(&mut self, node: &SyncNode) {
        let now = unix_ms();
        let horizon = node.config().gc_horizon_secs.saturating_mul(1_000);
        let me = node.me().to_string();
        for member in node.members(keys::QUARANTINE) {
            let Some(entry) = QuarantineMember::parse(&member) else {
                continue;
            };
            let mine = node.adders(keys::QUARANTINE, &member).contains(&me);
            let due = entry.expires_ms <= now && (mine || now - entry.expires_ms > horizon);
            if due {
                if let Err(error) = node.write(keys::QUARANTINE, Intent::Remove(member)) {
                    tracing::debug!(%error, "expired quarantine entry not removed");
                }
            }
        }
    }
}
