//! Analyze: detectors with clear thresholds turn observations into symptoms.
//!
//! Per-neighbour history (RTT mean and variance, up/down changes, last time
//! connected, violation count) lives here between cycles.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use libp2p::{Multiaddr, PeerId};
use serde::Serialize;

use super::config::HealerConfig;
use super::observe::Observation;
use crate::alert::Severity;

/// What a detector found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SymptomKind {
    /// Ping loss on a link above `loss_threshold`.
    LinkLoss,
    /// RTT far above the link's own history.
    RttSpike,
    /// A neighbour gone for longer than `silent_after_ms`.
    PeerSilent,
    /// A link going up and down repeatedly.
    Flapping,
    /// A neighbour sending frames that break the protocol.
    Misbehaving,
    /// XDP dropping packets fast.
    DropSpike,
    /// Supervised actors restarted.
    ActorRestarts,
    /// The mesh event loop did not answer.
    MeshUnresponsive,
    /// No neighbour left while other nodes are known.
    Isolated,
    /// Not found by a detector: an operator asked (e.g. for a rollback).
    OperatorRequest,
}

impl SymptomKind {
    /// Label for metrics and records.
    pub fn label(self) -> &'static str {
        match self {
            SymptomKind::LinkLoss => "link_loss",
            SymptomKind::RttSpike => "rtt_spike",
            SymptomKind::PeerSilent => "peer_silent",
            SymptomKind::Flapping => "flapping",
            SymptomKind::Misbehaving => "misbehaving",
            SymptomKind::DropSpike => "drop_spike",
            SymptomKind::ActorRestarts => "actor_restarts",
            SymptomKind::MeshUnresponsive => "mesh_unresponsive",
            SymptomKind::Isolated => "isolated",
            SymptomKind::OperatorRequest => "operator_request",
        }
    }
}

/// One finding with its evidence.
#[derive(Debug, Clone, Serialize)]
pub struct Symptom {
    /// What.
    pub kind: SymptomKind,
    /// The neighbour concerned, if any.
    #[serde(serialize_with = "crate::router::serialize_option_display")]
    pub peer: Option<PeerId>,
    /// How bad.
    pub severity: Severity,
    /// The numbers behind it, for people.
    pub evidence: String,
}

/// History of one neighbour.
#[derive(Debug, Clone)]
struct Neighbour {
    connected: bool,
    last_connected: Instant,
    addrs: Vec<Multiaddr>,
    rtt_mean: f64,
    rtt_var: f64,
    rtt_samples: u32,
    changes: VecDeque<Instant>,
    violations: u64,
}

/// Samples before an RTT history is trusted for z-scores.
const RTT_WARMUP: u32 = 5;
/// Weight of a new RTT sample in the running mean and variance.
const RTT_ALPHA: f64 = 0.1;
/// Neighbours remembered (silent ones are forgotten oldest first).
const MAX_NEIGHBOURS: usize = 1_024;

/// The detectors and their memory.
#[derive(Debug, Default)]
pub struct Analyzer {
    neighbours: HashMap<PeerId, Neighbour>,
    restarts: Option<u64>,
    unanswered: u32,
}

impl Analyzer {
    /// Addresses a neighbour was known by (for redials).
    pub fn addrs_of(&self, peer: &PeerId) -> Vec<Multiaddr> {
        self.neighbours.get(peer).map(|n| n.addrs.clone()).unwrap_or_default()
    }

    /// Runs every detector on `obs`.
    pub fn analyze(&mut self, obs: &Observation, config: &HealerConfig) -> Vec<Symptom> {
        let mut symptoms = Vec::new();
        self.restart_findings(obs, &mut symptoms);
        self.drop_findings(obs, config, &mut symptoms);
        let Some(links) = &obs.links else {
            self.unanswered += 1;
            if self.unanswered >= 3 {
                symptoms.push(Symptom {
                    kind: SymptomKind::MeshUnresponsive,
                    peer: None,
                    severity: Severity::Critical,
                    evidence: format!("mesh status unanswered {} cycles in a row", self.unanswered),
                });
            }
            return symptoms;
        };
        self.unanswered = 0;
        let now = obs.at;
        for link in links {
            let known = obs.known.get(&link.peer).cloned().unwrap_or_default();
            let entry = self.neighbours.entry(link.peer).or_insert_with(|| Neighbour {
                connected: false,
                last_connected: now,
                addrs: Vec::new(),
                rtt_mean: 0.0,
                rtt_var: 0.0,
                rtt_samples: 0,
                changes: VecDeque::new(),
                violations: 0,
            });
            if !known.is_empty() {
                entry.addrs = known;
            }
            if !entry.connected {
                entry.connected = true;
                entry.changes.push_back(now);
            }
            entry.last_connected = now;
            if link.loss >= config.loss_threshold {
                symptoms.push(Symptom {
                    kind: SymptomKind::LinkLoss,
                    peer: Some(link.peer),
                    severity: Severity::Warning,
                    evidence: format!(
                        "ping loss {:.0} % (threshold {:.0} %)",
                        link.loss * 100.0,
                        config.loss_threshold * 100.0
                    ),
                });
            }
            if let Some(z) = rtt_spike(entry, link.rtt_ms, config) {
                symptoms.push(Symptom {
                    kind: SymptomKind::RttSpike,
                    peer: Some(link.peer),
                    severity: Severity::Warning,
                    evidence: format!("RTT {:.1} ms, mean {:.1} ms, z = {z:.1}", link.rtt_ms, entry.rtt_mean),
                });
            }
            learn_rtt(entry, link.rtt_ms);
        }
        for (peer, entry) in &mut self.neighbours {
            let up = links.iter().any(|l| l.peer == *peer);
            if entry.connected && !up {
                entry.connected = false;
                entry.changes.push_back(now);
            }
            let window = Duration::from_secs(config.flap_window_secs);
            while entry.changes.front().is_some_and(|t| now.duration_since(*t) > window) {
                entry.changes.pop_front();
            }
            if entry.changes.len() >= config.flap_changes {
                symptoms.push(Symptom {
                    kind: SymptomKind::Flapping,
                    peer: Some(*peer),
                    severity: Severity::Warning,
                    evidence: format!(
                        "{} up/down changes in {} s",
                        entry.changes.len(),
                        config.flap_window_secs
                    ),
                });
            }
            let silent = now.duration_since(entry.last_connected);
            if !up && silent >= Duration::from_millis(config.silent_after_ms) {
                symptoms.push(Symptom {
                    kind: SymptomKind::PeerSilent,
                    peer: Some(*peer),
                    severity: Severity::Warning,
                    evidence: format!("disconnected for {} ms", silent.as_millis()),
                });
            }
            let total = obs.violations.get(peer).copied().unwrap_or(entry.violations);
            let fresh = total.saturating_sub(entry.violations);
            entry.violations = total;
            if fresh >= config.violations_per_cycle {
                symptoms.push(Symptom {
                    kind: SymptomKind::Misbehaving,
                    peer: Some(*peer),
                    severity: Severity::Critical,
                    evidence: format!(
                        "{fresh} protocol violations in one cycle (threshold {})",
                        config.violations_per_cycle
                    ),
                });
            }
        }
        if links.is_empty() && obs.known.keys().any(|p| self.neighbours.contains_key(p)) {
            symptoms.push(Symptom {
                kind: SymptomKind::Isolated,
                peer: None,
                severity: Severity::Critical,
                evidence: format!("no live link; {} nodes known", obs.known.len()),
            });
        }
        self.forget_oldest();
        symptoms
    }

    fn restart_findings(&mut self, obs: &Observation, symptoms: &mut Vec<Symptom>) {
        let before = self.restarts.replace(obs.restarts).unwrap_or(obs.restarts);
        if obs.restarts > before {
            symptoms.push(Symptom {
                kind: SymptomKind::ActorRestarts,
                peer: None,
                severity: Severity::Warning,
                evidence: format!("{} actor restarts since the last cycle", obs.restarts - before),
            });
        }
    }

    fn drop_findings(&self, obs: &Observation, config: &HealerConfig, symptoms: &mut Vec<Symptom>) {
        let Some(telemetry) = &obs.telemetry else { return };
        for iface in &telemetry.interfaces {
            let pps: f64 = iface.dropped.iter().map(|d| d.packets_per_sec).sum();
            if pps >= config.drop_spike_pps {
                symptoms.push(Symptom {
                    kind: SymptomKind::DropSpike,
                    peer: None,
                    severity: Severity::Warning,
                    evidence: format!("XDP drops {pps:.0} packets/s on {}", iface.iface),
                });
            }
        }
    }

    fn forget_oldest(&mut self) {
        while self.neighbours.len() > MAX_NEIGHBOURS {
            let oldest = self
                .neighbours
                .iter()
                .filter(|(_, n)| !n.connected)
                .min_by_key(|(_, n)| n.last_connected)
                .map(|(p, _)| *p);
            match oldest {
                Some(peer) => self.neighbours.remove(&peer),
                None => break,
            };
        }
    }
}

/// The z-score of `rtt_ms` when it is a spike against the link's history.
fn rtt_spike(entry: &Neighbour, rtt_ms: f64, config: &HealerConfig) -> Option<f64> {
    if entry.rtt_samples < RTT_WARMUP || rtt_ms <= 0.0 {
        return None;
    }
    // A floor on the deviation: 0.1 ms, so a perfectly steady link is not
    // flagged for a few microseconds of jitter.
    let sd = entry.rtt_var.sqrt().max(0.1);
    let z = (rtt_ms - entry.rtt_mean) / sd;
    (z >= config.rtt_z_threshold && rtt_ms - entry.rtt_mean >= config.rtt_min_excess_ms).then_some(z)
}

fn learn_rtt(entry: &mut Neighbour, rtt_ms: f64) {
    if rtt_ms <= 0.0 {
        return;
    }
    if entry.rtt_samples == 0 {
        entry.rtt_mean = rtt_ms;
        entry.rtt_var = 0.0;
    } else {
        let diff = rtt_ms - entry.rtt_mean;
        entry.rtt_mean += RTT_ALPHA * diff;
        entry.rtt_var = (1.0 - RTT_ALPHA) * (entry.rtt_var + RTT_ALPHA * diff * diff);
    }
    entry.rtt_samples = entry.rtt_samples.saturating_add(1);
}
