//! Plan: symptoms become actions, ranked by expected benefit, at most one per
//! target per cycle, none that is already in force or cooling down after a
//! rollback.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};

use super::analyze::{Symptom, SymptomKind};

/// A healing action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Route around a neighbour: traffic takes the backup or another path.
    SwitchRoute {
        /// The neighbour to avoid.
        peer: String,
    },
    /// Dial a neighbour that went away.
    Redial {
        /// The neighbour.
        peer: String,
        /// Addresses to dial.
        addrs: Vec<String>,
    },
    /// Refuse a misbehaving neighbour for a while (XDP blocklist where present,
    /// libp2p block list always).
    Quarantine {
        /// The neighbour.
        peer: String,
        /// Its IP addresses for the XDP blocklist.
        addrs: Vec<IpAddr>,
    },
    /// Restart a supervised actor that stopped answering.
    RestartActor {
        /// Actor name.
        actor: String,
    },
    /// Dial every other known node when all links are gone.
    Failover {
        /// Peers and addresses to try.
        peers: Vec<(String, Vec<String>)>,
    },
}

impl Action {
    /// Kind label (`switch_route`, `redial`, …), also the breaker kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::SwitchRoute { .. } => "switch_route",
            Action::Redial { .. } => "redial",
            Action::Quarantine { .. } => "quarantine",
            Action::RestartActor { .. } => "restart_actor",
            Action::Failover { .. } => "failover",
        }
    }

    /// What it acts on.
    pub fn target(&self) -> String {
        match self {
            Action::SwitchRoute { peer } | Action::Redial { peer, .. } | Action::Quarantine { peer, .. } => {
                peer.clone()
            }
            Action::RestartActor { actor } => actor.clone(),
            Action::Failover { .. } => "known_peers".to_string(),
        }
    }
}

/// An action with the symptom that caused it and its expected benefit.
#[derive(Debug, Clone)]
pub struct Planned {
    /// What to do.
    pub action: Action,
    /// Why.
    pub symptom: Symptom,
    /// Higher goes first.
    pub benefit: f64,
}

/// Where a neighbour can be found.
#[derive(Debug, Clone, Default)]
pub struct PeerAddrs {
    /// What its beacons announce: dialled to reach it again (the dial's
    /// handshake proves who answers).
    pub announced: Vec<Multiaddr>,
    /// Where its connections came from or went to: the only addresses a
    /// quarantine blocks, since a peer can announce anybody's address.
    pub connected: Vec<Multiaddr>,
}

/// What is in force and what must not be repeated.
#[derive(Debug, Default)]
pub struct Constraints {
    /// Neighbours routed around now.
    pub avoided: HashSet<PeerId>,
    /// Neighbours quarantined now.
    pub quarantined: HashSet<PeerId>,
    /// (kind, target) pairs with an action still being executed or verified.
    pub in_flight: HashSet<(&'static str, String)>,
    /// (kind, target) pairs rolled back recently.
    pub cooling: HashSet<(&'static str, String)>,
    /// Neighbours that were the next hop of a route within the last few seconds.
    pub carrying: HashSet<PeerId>,
}

/// Chooses this cycle's actions.
pub fn plan(
    symptoms: &[Symptom],
    constraints: &Constraints,
    addrs_of: impl Fn(&PeerId) -> PeerAddrs,
    known: &HashMap<PeerId, Vec<Multiaddr>>,
) -> Vec<Planned> {
    let mut candidates: Vec<Planned> = symptoms
        .iter()
        .filter_map(|symptom| candidate(symptom, constraints, &addrs_of, known))
        .collect();
    candidates.sort_by(|a, b| b.benefit.total_cmp(&a.benefit));
    let mut targets = HashSet::new();
    candidates
        .into_iter()
        .filter(|p| {
            let key = (p.action.kind(), p.action.target());
            !constraints.in_flight.contains(&key)
                && !constraints.cooling.contains(&key)
                && targets.insert(p.action.target())
        })
        .collect()
}

fn candidate(
    symptom: &Symptom,
    constraints: &Constraints,
    addrs_of: &impl Fn(&PeerId) -> PeerAddrs,
    known: &HashMap<PeerId, Vec<Multiaddr>>,
) -> Option<Planned> {
    let planned = |action, benefit| {
        Some(Planned {
            action,
            symptom: symptom.clone(),
            benefit,
        })
    };
    let peer = symptom.peer;
    let quarantined = peer.is_some_and(|p| constraints.quarantined.contains(&p));
    match symptom.kind {
        SymptomKind::Misbehaving | SymptomKind::Byzantine => {
            let peer = peer?;
            if quarantined {
                return None;
            }
            let addrs = ips(&addrs_of(&peer).connected);
            planned(
                Action::Quarantine {
                    peer: peer.to_string(),
                    addrs,
                },
                100.0,
            )
        }
        SymptomKind::LinkLoss | SymptomKind::RttSpike | SymptomKind::Flapping => {
            let peer = peer?;
            // Nothing to switch while no route uses the link; the symptom is
            // judged again next cycle.
            if quarantined || constraints.avoided.contains(&peer) || !constraints.carrying.contains(&peer) {
                return None;
            }
            let benefit = match symptom.kind {
                SymptomKind::LinkLoss => 50.0,
                SymptomKind::Flapping => 40.0,
                _ => 30.0,
            };
            planned(Action::SwitchRoute { peer: peer.to_string() }, benefit)
        }
        SymptomKind::PeerSilent => {
            let peer = peer?;
            let addrs = addrs_of(&peer).announced;
            if quarantined || addrs.is_empty() {
                return None;
            }
            planned(
                Action::Redial {
                    peer: peer.to_string(),
                    addrs: addrs.iter().map(Multiaddr::to_string).collect(),
                },
                20.0,
            )
        }
        SymptomKind::MeshUnresponsive => planned(Action::RestartActor { actor: "mesh".into() }, 80.0),
        SymptomKind::Isolated => {
            let peers: Vec<(String, Vec<String>)> = known
                .iter()
                .filter(|(p, a)| !a.is_empty() && !constraints.quarantined.contains(p))
                .map(|(p, a)| (p.to_string(), a.iter().map(Multiaddr::to_string).collect()))
                .collect();
            if peers.is_empty() {
                return None;
            }
            planned(Action::Failover { peers }, 90.0)
        }
        SymptomKind::DropSpike | SymptomKind::ActorRestarts | SymptomKind::OperatorRequest => None,
    }
}

/// The routable IP addresses among multiaddrs.
pub fn ips(addrs: &[Multiaddr]) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = addrs
        .iter()
        .filter_map(|a| {
            a.iter().find_map(|p| match p {
                Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
                Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
                _ => None,
            })
        })
        .filter(|ip| !ip.is_unspecified() && !ip.is_loopback())
        .collect();
    ips.sort();
    ips.dedup();
    ips
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Severity;

    fn symptom(kind: SymptomKind, peer: PeerId) -> Symptom {
        Symptom {
            kind,
            peer: Some(peer),
            severity: Severity::Warning,
            evidence: String::new(),
        }
    }

    fn addrs(_: &PeerId) -> PeerAddrs {
        PeerAddrs {
            announced: vec!["/ip4/10.77.0.9/tcp/4001".parse().expect("multiaddr")],
            connected: vec!["/ip4/10.77.0.2/tcp/51234".parse().expect("multiaddr")],
        }
    }

    #[test]
    fn one_action_per_target_and_the_strongest_wins() {
        let peer = PeerId::random();
        let carrying = Constraints {
            carrying: HashSet::from([peer]),
            ..Constraints::default()
        };
        let symptoms = [
            symptom(SymptomKind::LinkLoss, peer),
            symptom(SymptomKind::Misbehaving, peer),
            symptom(SymptomKind::RttSpike, peer),
        ];
        let planned = plan(&symptoms, &carrying, addrs, &HashMap::new());
        assert_eq!(planned.len(), 1);
        assert_eq!(
            planned[0].action,
            Action::Quarantine {
                peer: peer.to_string(),
                addrs: vec!["10.77.0.2".parse().expect("ip")]
            }
        );
    }

    #[test]
    fn a_quarantine_blocks_where_the_peer_connected_from_not_what_it_announces() {
        let peer = PeerId::random();
        // It announces the gateway's address; its connection came from 10.77.0.2.
        let liar = |_: &PeerId| PeerAddrs {
            announced: vec!["/ip4/10.77.0.1/tcp/4001".parse().expect("multiaddr")],
            connected: vec!["/ip4/10.77.0.2/tcp/51234".parse().expect("multiaddr")],
        };
        let symptoms = [symptom(SymptomKind::Misbehaving, peer)];
        let planned = plan(&symptoms, &Constraints::default(), liar, &HashMap::new());
        let expected: Vec<IpAddr> = vec!["10.77.0.2".parse().expect("ip")];
        assert!(
            matches!(&planned[0].action, Action::Quarantine { addrs, .. } if *addrs == expected),
            "{planned:?}"
        );
        let never_connected = |_: &PeerId| PeerAddrs {
            announced: vec!["/ip4/10.77.0.1/tcp/4001".parse().expect("multiaddr")],
            connected: Vec::new(),
        };
        let planned = plan(&symptoms, &Constraints::default(), never_connected, &HashMap::new());
        assert!(
            matches!(&planned[0].action, Action::Quarantine { addrs, .. } if addrs.is_empty()),
            "only the libp2p block: {planned:?}"
        );
    }

    #[test]
    fn actions_in_force_in_flight_or_cooling_are_not_planned_again() {
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        let mut constraints = Constraints {
            carrying: HashSet::from([a, b, c]),
            ..Constraints::default()
        };
        constraints.avoided.insert(a);
        constraints.in_flight.insert(("switch_route", b.to_string()));
        constraints.cooling.insert(("switch_route", c.to_string()));
        let symptoms = [
            symptom(SymptomKind::LinkLoss, a),
            symptom(SymptomKind::LinkLoss, b),
            symptom(SymptomKind::LinkLoss, c),
        ];
        assert!(plan(&symptoms, &constraints, addrs, &HashMap::new()).is_empty());
    }

    #[test]
    fn a_link_no_route_uses_is_not_switched_away_from() {
        let peer = PeerId::random();
        let symptoms = [symptom(SymptomKind::LinkLoss, peer)];
        assert!(plan(&symptoms, &Constraints::default(), addrs, &HashMap::new()).is_empty());
        let carrying = Constraints {
            carrying: HashSet::from([peer]),
            ..Constraints::default()
        };
        assert_eq!(plan(&symptoms, &carrying, addrs, &HashMap::new()).len(), 1);
    }

    #[test]
    fn findings_without_a_remedy_plan_nothing() {
        let drop = Symptom {
            kind: SymptomKind::DropSpike,
            peer: None,
            severity: Severity::Warning,
            evidence: String::new(),
        };
        assert!(plan(&[drop], &Constraints::default(), addrs, &HashMap::new()).is_empty());
    }

    #[test]
    fn ips_skip_loopback_unspecified_and_names() {
        let addrs: Vec<Multiaddr> = [
            "/ip4/127.0.0.1/tcp/1",
            "/ip4/0.0.0.0/tcp/1",
            "/dns4/x.org/tcp/1",
            "/ip6/fd00::1/tcp/1",
            "/ip4/10.0.0.1/udp/1/quic-v1",
        ]
        .iter()
        .map(|a| a.parse().expect("multiaddr"))
        .collect();
        assert_eq!(
            ips(&addrs),
            vec![
                "10.0.0.1".parse::<IpAddr>().expect("ip"),
                "fd00::1".parse().expect("ip")
            ]
        );
    }
}
