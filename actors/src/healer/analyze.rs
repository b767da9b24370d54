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
use super::plan::PeerAddrs;
use crate::alert::Severity;
use crate::mesh::PeerLink;

/// What a detector found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SymptomKind {
    /// Loss on a link (pings or delayed beats) above `loss_threshold`.
    LinkLoss,
    /// RTT far above the link's own history.
    RttSpike,
    /// A neighbour gone for longer than `silent_after_ms`.
    PeerSilent,
    /// A link going up and down repeatedly.
    Flapping,
    /// A neighbour sending frames that break the protocol.
    Misbehaving,
    /// A node caught lying in its beacons (Byzantine checks).
    Byzantine,
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
            SymptomKind::Byzantine => "byzantine",
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
    /// Remote addresses of its last connections.
    connected_addrs: Vec<Multiaddr>,
    rtt_mean: f64,
    rtt_var: f64,
    rtt_samples: u32,
    /// Lowest RTT seen: what the link does when nothing is wrong.
    rtt_floor: f64,
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
    /// Addresses a neighbour announced (for redials) and was connected at
    /// (for quarantines).
    pub fn addrs_of(&self, peer: &PeerId) -> PeerAddrs {
        self.neighbours
            .get(peer)
            .map(|n| PeerAddrs {
                announced: n.addrs.clone(),
                connected: n.connected_addrs.clone(),
            })
            .unwrap_or_default()
    }

    /// Whether a live link looks like itself again: loss under half the
    /// threshold and RTT within `rtt_min_excess_ms` of the lowest ever seen.
    pub fn link_healthy(&self, link: &PeerLink, config: &HealerConfig) -> bool {
        let Some(entry) = self.neighbours.get(&link.peer) else {
            return false;
        };
        link.loss < config.loss_threshold / 2.0 && link.rtt_ms <= entry.rtt_floor + config.rtt_min_excess_ms
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
        self.forget_departed(obs, config);
        for link in links {
            let known = obs.known.get(&link.peer).cloned().unwrap_or_default();
            let entry = self.neighbours.entry(link.peer).or_insert_with(|| Neighbour {
                connected: false,
                last_connected: now,
                addrs: Vec::new(),
                connected_addrs: Vec::new(),
                rtt_mean: 0.0,
                rtt_var: 0.0,
                rtt_samples: 0,
                rtt_floor: f64::INFINITY,
                changes: VecDeque::new(),
                violations: 0,
            });
            if !known.is_empty() {
                entry.addrs = known;
            }
            if !link.remote_addrs.is_empty() {
                entry.connected_addrs.clone_from(&link.remote_addrs);
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
                        "loss {:.0} % (threshold {:.0} %)",
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
        for (peer, (strikes, last)) in &obs.liars {
            symptoms.push(Symptom {
                kind: SymptomKind::Byzantine,
                peer: Some(*peer),
                severity: Severity::Critical,
                evidence: format!("{strikes} lies in its beacons, the latest: {last}"),
            });
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

    /// Forgets neighbours that left: disconnected for longer than the flap
    /// window and no longer announced by any node, so a peer that went away
    /// is not reported silent (and redialled) for ever.
    fn forget_departed(&mut self, obs: &Observation, config: &HealerConfig) {
        let window = Duration::from_secs(config.flap_window_secs);
        self.neighbours.retain(|peer, n| {
            n.connected || obs.known.contains_key(peer) || obs.at.duration_since(n.last_connected) <= window
        });
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
    entry.rtt_floor = entry.rtt_floor.min(rtt_ms);
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn observation(at: Instant, links: Vec<PeerLink>) -> Observation {
        Observation {
            at,
            links: Some(links),
            routes: HashMap::new(),
            known: HashMap::new(),
            violations: HashMap::new(),
            liars: HashMap::new(),
            restarts: 0,
            telemetry: None,
        }
    }

    #[test]
    fn a_reported_liar_is_a_critical_symptom_with_its_evidence() {
        let liar = PeerId::random();
        let mut obs = observation(Instant::now(), Vec::new());
        obs.liars.insert(liar, (3, "fake_link"));
        let symptoms = Analyzer::default().analyze(&obs, &HealerConfig::default());
        let found = symptoms
            .iter()
            .find(|s| s.kind == SymptomKind::Byzantine)
            .expect("symptom");
        assert_eq!((found.peer, found.severity), (Some(liar), Severity::Critical));
        assert!(found.evidence.contains("3 lies") && found.evidence.contains("fake_link"));
    }

    fn link(peer: PeerId, rtt_ms: f64, loss: f64) -> PeerLink {
        PeerLink {
            peer,
            rtt_ms,
            loss,
            remote_addrs: vec!["/ip4/10.77.0.2/tcp/51234".parse().expect("multiaddr")],
            gossip_score: None,
        }
    }

    fn kinds(symptoms: &[Symptom]) -> Vec<SymptomKind> {
        symptoms.iter().map(|s| s.kind).collect()
    }

    #[test]
    fn loss_at_the_threshold_is_a_symptom_and_below_it_is_not() {
        let (mut analyzer, config, peer, t) = (
            Analyzer::default(),
            HealerConfig::default(),
            PeerId::random(),
            Instant::now(),
        );
        assert!(analyzer
            .analyze(&observation(t, vec![link(peer, 1.0, 0.29)]), &config)
            .is_empty());
        let found = analyzer.analyze(&observation(t, vec![link(peer, 1.0, 0.3)]), &config);
        assert_eq!(kinds(&found), [SymptomKind::LinkLoss]);
        assert_eq!(found[0].peer, Some(peer));
    }

    #[test]
    fn an_rtt_spike_needs_history_a_high_z_score_and_a_real_excess() {
        let (mut analyzer, config, peer, t) = (
            Analyzer::default(),
            HealerConfig::default(),
            PeerId::random(),
            Instant::now(),
        );
        let spike = observation(t, vec![link(peer, 200.0, 0.0)]);
        assert!(
            analyzer.analyze(&spike, &config).is_empty(),
            "no verdict before warm-up"
        );
        let mut fresh = Analyzer::default();
        for _ in 0..10 {
            assert!(fresh
                .analyze(&observation(t, vec![link(peer, 1.0, 0.0)]), &config)
                .is_empty());
        }
        assert!(
            fresh
                .analyze(&observation(t, vec![link(peer, 5.0, 0.0)]), &config)
                .is_empty(),
            "4 ms over is noise"
        );
        assert_eq!(kinds(&fresh.analyze(&spike, &config)), [SymptomKind::RttSpike]);
    }

    #[test]
    fn a_neighbour_is_silent_only_after_the_timeout_and_then_redialable() {
        let (mut analyzer, config, peer, t) = (
            Analyzer::default(),
            HealerConfig::default(),
            PeerId::random(),
            Instant::now(),
        );
        let mut first = observation(t, vec![link(peer, 1.0, 0.0)]);
        first
            .known
            .insert(peer, vec!["/ip4/10.77.0.2/tcp/4001".parse().expect("multiaddr")]);
        analyzer.analyze(&first, &config);
        let soon = observation(t + Duration::from_millis(config.silent_after_ms - 1), vec![]);
        assert!(!kinds(&analyzer.analyze(&soon, &config)).contains(&SymptomKind::PeerSilent));
        let later = observation(t + Duration::from_millis(config.silent_after_ms), vec![]);
        assert!(kinds(&analyzer.analyze(&later, &config)).contains(&SymptomKind::PeerSilent));
        let addrs = analyzer.addrs_of(&peer);
        assert_eq!(addrs.announced.len(), 1, "announced addresses kept for the redial");
        assert_eq!(addrs.connected.len(), 1, "connection addresses kept for a quarantine");
    }

    #[test]
    fn a_neighbour_that_left_and_is_no_longer_announced_is_forgotten_after_the_flap_window() {
        let (mut analyzer, config, peer, t) = (
            Analyzer::default(),
            HealerConfig::default(),
            PeerId::random(),
            Instant::now(),
        );
        analyzer.analyze(&observation(t, vec![link(peer, 1.0, 0.0)]), &config);
        let window = Duration::from_secs(config.flap_window_secs);
        let within = observation(t + window, vec![]);
        assert!(kinds(&analyzer.analyze(&within, &config)).contains(&SymptomKind::PeerSilent));
        let mut announced = observation(t + window + Duration::from_secs(1), vec![]);
        announced.known.insert(peer, Vec::new());
        assert!(
            kinds(&analyzer.analyze(&announced, &config)).contains(&SymptomKind::PeerSilent),
            "still announced by the mesh: still missed"
        );
        let gone = observation(t + window + Duration::from_secs(2), vec![]);
        assert!(analyzer.analyze(&gone, &config).is_empty(), "departed and forgotten");
        assert!(analyzer.addrs_of(&peer).connected.is_empty());
    }

    #[test]
    fn four_changes_in_the_window_are_flapping_and_old_ones_age_out() {
        let (mut analyzer, config, peer, t) = (
            Analyzer::default(),
            HealerConfig::default(),
            PeerId::random(),
            Instant::now(),
        );
        let up = |s: u64| observation(t + Duration::from_secs(s), vec![link(peer, 1.0, 0.0)]);
        let down = |s: u64| observation(t + Duration::from_secs(s), vec![]);
        analyzer.analyze(&up(0), &config);
        analyzer.analyze(&down(1), &config);
        analyzer.analyze(&up(2), &config);
        assert!(!kinds(&analyzer.analyze(&up(3), &config)).contains(&SymptomKind::Flapping));
        assert!(kinds(&analyzer.analyze(&down(4), &config)).contains(&SymptomKind::Flapping));
        assert!(!kinds(&analyzer.analyze(&down(60), &config)).contains(&SymptomKind::Flapping));
    }

    #[test]
    fn a_link_is_healthy_again_near_its_best_rtt_and_without_loss() {
        let (mut analyzer, config, peer, t) = (
            Analyzer::default(),
            HealerConfig::default(),
            PeerId::random(),
            Instant::now(),
        );
        analyzer.analyze(&observation(t, vec![link(peer, 0.5, 0.0)]), &config);
        analyzer.analyze(&observation(t, vec![link(peer, 250.0, 0.4)]), &config);
        assert!(
            !analyzer.link_healthy(&link(peer, 250.0, 0.0), &config),
            "RTT still inflated"
        );
        assert!(!analyzer.link_healthy(&link(peer, 0.6, 0.2), &config), "still lossy");
        assert!(analyzer.link_healthy(&link(peer, 0.6, 0.0), &config));
        assert!(
            !Analyzer::default().link_healthy(&link(peer, 0.6, 0.0), &config),
            "unknown link"
        );
    }

    #[test]
    fn violations_count_per_cycle_not_in_total() {
        let (mut analyzer, config, peer, t) = (
            Analyzer::default(),
            HealerConfig::default(),
            PeerId::random(),
            Instant::now(),
        );
        let with = |total: u64| {
            let mut obs = observation(t, vec![link(peer, 1.0, 0.0)]);
            obs.violations.insert(peer, total);
            obs
        };
        assert!(analyzer.analyze(&with(5), &config).is_empty());
        assert!(analyzer.analyze(&with(15), &config).is_empty(), "10 new is below 20");
        assert_eq!(kinds(&analyzer.analyze(&with(35), &config)), [SymptomKind::Misbehaving]);
        assert!(analyzer.analyze(&with(35), &config).is_empty(), "nothing new");
    }

    #[test]
    fn an_unanswering_mesh_and_isolation_are_critical() {
        let (mut analyzer, config, peer, t) = (
            Analyzer::default(),
            HealerConfig::default(),
            PeerId::random(),
            Instant::now(),
        );
        let mut silent = observation(t, vec![]);
        silent.links = None;
        assert!(analyzer.analyze(&silent, &config).is_empty());
        assert!(analyzer.analyze(&silent, &config).is_empty());
        let found = analyzer.analyze(&silent, &config);
        assert_eq!(kinds(&found), [SymptomKind::MeshUnresponsive]);
        assert_eq!(found[0].severity, Severity::Critical);

        analyzer.analyze(&observation(t, vec![link(peer, 1.0, 0.0)]), &config);
        let mut alone = observation(t + Duration::from_millis(10), vec![]);
        alone.known.insert(peer, Vec::new());
        assert!(kinds(&analyzer.analyze(&alone, &config)).contains(&SymptomKind::Isolated));
    }
}
