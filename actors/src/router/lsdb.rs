//! The link-state database: the freshest beacon of every node, the graph
//! built from them and the routing table computed on it. No actor and no clock
//! of its own: the router actor drives it in real time, the digital twin
//! (`x0tta6bl4-sim`) with many of them in virtual time.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use libp2p::PeerId;

use super::admission;
use super::byzantine;
use super::config::RouterConfig;
use super::graph::{quality_cost, Cost, Graph, Route};
use super::metrics;
use crate::mesh::beacon::ValidBeacon;
use crate::policy::Policy;
use x0tta6bl4_pqc::KeyBinding;

/// The cost of each link, in peer order, so that two reports of the same
/// links compare equal whatever order they were listed in.
pub(super) fn link_costs(links: &[crate::mesh::LinkQuality]) -> Vec<(PeerId, Cost)> {
    let mut costs: Vec<(PeerId, Cost)> = links.iter().map(|link| (link.peer, quality_cost(link))).collect();
    costs.sort_unstable_by_key(|(peer, _)| *peer);
    costs
}

/// A node's links as far as they decide at once where traffic may go: which
/// neighbours it has and which of them its healer avoids, in peer order. A
/// change here is recomputed within `recompute_interval_ms`; a change of RTT
/// or loss alone within [`DRIFT_REFRESH`], since every ping moves them a little
/// and a recompute per beacon cost a 21-node mesh's nodes a sixth of their idle CPU.
pub(super) fn link_shape(links: &[crate::mesh::LinkQuality]) -> Vec<(PeerId, bool)> {
    let mut shape: Vec<(PeerId, bool)> = links.iter().map(|link| (link.peer, link.avoided)).collect();
    shape.sort_unstable_by_key(|(peer, _)| *peer);
    shape
}

/// Longest a recompute waits for link costs (RTT, loss) that changed.
pub(super) const DRIFT_REFRESH: Duration = Duration::from_secs(1);

/// What the router knows about another node from its beacons.
pub(super) struct NodeInfo {
    pub(super) name: String,
    pub(super) addrs: Vec<String>,
    pub(super) seq: u64,
    pub(super) links: Vec<(PeerId, Cost)>,
    /// Its neighbours and which of them its healer avoids (see [`link_shape`]).
    pub(super) shape: Vec<(PeerId, bool)>,
    /// Its healer routes around its link to this node.
    pub(super) avoids_local: bool,
    pub(super) received: Instant,
    /// The policy bars this node from relaying (decided when its name is first
    /// seen, and again after every policy reload).
    pub(super) transit_barred: bool,
}

/// One node's link-state database.
pub struct LinkState {
    pub(super) local: PeerId,
    pub(super) config: RouterConfig,
    pub(super) nodes: HashMap<PeerId, NodeInfo>,
    pub(super) local_links: Vec<(PeerId, Cost)>,
    pub(super) local_shape: Vec<(PeerId, bool)>,
    pub(super) graph: Graph,
    /// Links or avoided links changed: recompute within `recompute_interval_ms`.
    pub(super) dirty: bool,
    /// Some link costs changed since the last recompute (taken in within
    /// [`DRIFT_REFRESH`]; a change of links or of avoided links is at once).
    pub(super) drifted: bool,
    pub(super) judge: byzantine::Judge,
    /// Who may enter the database when it is full.
    pub(super) admission: admission::Admission,
}

impl LinkState {
    /// An empty database of node `local`.
    pub fn new(local: PeerId, config: RouterConfig) -> Self {
        Self {
            local,
            config,
            nodes: HashMap::new(),
            local_links: Vec::new(),
            local_shape: Vec::new(),
            graph: Graph::default(),
            dirty: false,
            drifted: false,
            judge: byzantine::Judge::default(),
            admission: admission::Admission::default(),
        }
    }

    /// The node's own live links changed (new RTT, loss, avoided links or neighbours).
    pub fn set_local_links(&mut self, links: &[crate::mesh::LinkQuality]) {
        let shape = link_shape(links);
        let links = link_costs(links);
        if shape != self.local_shape {
            self.local_shape = shape;
            self.dirty = true;
        }
        if links != self.local_links {
            self.local_links = links;
            self.drifted = true;
        }
    }

    /// The link to `peer` went down: it leaves the local links at once.
    pub fn link_down(&mut self, peer: &PeerId) {
        self.local_links.retain(|(p, _)| p != peer);
        self.local_shape.retain(|(p, _)| p != peer);
    }

    /// Whether the links changed in a way that moves routes at once.
    pub fn dirty(&self) -> bool {
        self.dirty
    }

    /// Whether only link costs changed since the last recompute.
    pub fn drifted(&self) -> bool {
        self.drifted
    }

    /// Marks the table as in need of a recompute.
    pub fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// Nodes known from beacons.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The graph of the last recompute.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Applies a reloaded `policy`: nodes it no longer admits leave, and
    /// every node's transit is judged again.
    pub fn rejudge(&mut self, policy: &Policy) {
        self.nodes
            .retain(|peer, info| !policy.admission_denied(peer, &info.name));
        for (peer, info) in &mut self.nodes {
            info.transit_barred = policy.transit_denied(&self.local, peer, &info.name);
        }
        self.dirty = true;
    }

    /// Drops nodes whose last beacon is older than `beacon_expiry_ms` at `now`.
    pub fn expire(&mut self, now: Instant) {
        let expiry = Duration::from_millis(self.config.beacon_expiry_ms);
        let before = self.nodes.len();
        let (judge, admission) = (&mut self.judge, &mut self.admission);
        self.nodes.retain(|peer, n| {
            let fresh = now.saturating_duration_since(n.received) < expiry;
            if !fresh {
                judge.forget_claims(peer);
                admission.forget(peer);
            }
            fresh
        });
        self.dirty |= self.nodes.len() != before;
    }

    /// Rebuilds the graph and computes the routing table at `now`, keeping
    /// `previous` next hops where the hysteresis allows.
    pub fn recompute(&mut self, now: Instant, previous: &HashMap<PeerId, Route>) -> HashMap<PeerId, Route> {
        self.expire(now);
        let reports: HashMap<PeerId, Vec<(PeerId, Cost)>> =
            self.nodes.iter().map(|(p, n)| (*p, n.links.clone())).collect();
        let barred: HashSet<PeerId> = self
            .nodes
            .iter()
            .filter(|(_, info)| info.transit_barred)
            .map(|(peer, _)| *peer)
            .collect();
        self.graph = Graph::build(self.local, &self.local_links, &reports)
            .without_transit_through(barred)
            .with_hysteresis(self.config.hysteresis());
        let table = self.graph.routing_table(self.local, Some(previous));
        self.admission.rebuild(&table);
        self.dirty = false;
        self.drifted = false;
        table
    }

    /// Takes in a validated beacon received at `now`, judged by `policy`;
    /// `learn` sees its key binding once the beacon is accepted as new.
    pub fn on_beacon(
        &mut self,
        beacon: ValidBeacon,
        now: Instant,
        policy: &Policy,
        learn: impl FnOnce(PeerId, &KeyBinding),
    ) {
        // A node already known under this name passed the policy in force
        // (a reload re-judges every node), so only new names are evaluated.
        let judged = self
            .nodes
            .get(&beacon.peer)
            .filter(|n| n.name == beacon.name)
            .map(|n| n.transit_barred);
        if judged.is_none() && policy.admission_denied(&beacon.peer, &beacon.name) {
            tracing::debug!(peer = %beacon.peer, "beacon of a node the policy does not admit ignored");
            return;
        }
        if self.config.byzantine {
            let checked = self
                .judge
                .check_clock(beacon.peer, beacon.seq, beacon.timestamp_ms, crate::mesh::unix_ms());
            if let Err(lie) = checked {
                tracing::debug!(peer = %beacon.peer, lie = lie.label(), "beacon ignored");
                return;
            }
        }
        if let Some(known) = self.nodes.get(&beacon.peer) {
            if beacon.seq <= known.seq {
                // Gossip can deliver an older beacon after a newer one.
                return;
            }
        } else if self.nodes.len() >= self.config.max_nodes && !self.make_room(&beacon, now) {
            return;
        }
        if let Some(binding) = &beacon.binding {
            learn(beacon.peer, binding);
        }
        let links = link_costs(&beacon.links);
        let avoids_local = beacon.links.iter().any(|link| link.peer == self.local && link.avoided);
        if self.config.byzantine {
            self.judge_links(&beacon, now);
        }
        let transit_barred = judged.unwrap_or_else(|| policy.transit_denied(&self.local, &beacon.peer, &beacon.name));
        let shape = link_shape(&beacon.links);
        let (changed, drifted) = match self.nodes.get(&beacon.peer) {
            Some(known) => (
                known.transit_barred != transit_barred || known.shape != shape,
                known.links != links,
            ),
            None => (true, true),
        };
        self.nodes.insert(
            beacon.peer,
            NodeInfo {
                name: beacon.name,
                addrs: beacon.addrs.iter().map(ToString::to_string).collect(),
                seq: beacon.seq,
                links,
                shape,
                avoids_local,
                received: now,
                transit_barred,
            },
        );
        self.dirty |= changed;
        self.drifted |= drifted;
    }

    /// Where a node not yet known attaches to the graph: the group (first hop)
    /// and hop count it would have through a link that both it and a known
    /// end report.
    fn attachment(&self, beacon: &ValidBeacon) -> Option<(PeerId, u32)> {
        let newcomer = beacon.peer;
        beacon.links.iter().find_map(|link| {
            if link.peer == self.local {
                let ours = self.local_links.iter().any(|(p, _)| *p == newcomer);
                return ours.then_some((newcomer, 1));
            }
            let (group, hops) = self.admission.placement(&link.peer)?;
            let confirmed = self.nodes.get(&link.peer)?.links.iter().any(|(p, _)| *p == newcomer);
            confirmed.then_some((group, hops + 1))
        })
    }

    /// The database is full: lets `beacon`'s node in by evicting another one
    /// if [`admission`] allows it, and says whether it did.
    fn make_room(&mut self, beacon: &ValidBeacon, now: Instant) -> bool {
        let attachment = self.attachment(beacon);
        let known = self.nodes.iter().map(|(peer, info)| (*peer, info.received.min(now)));
        let decision = self.admission.decide(attachment.map(|(group, _)| group), known);
        metrics::admission(decision.label());
        let (admission::Decision::EvictUnreachable(victim) | admission::Decision::EvictFromLargest(victim)) = decision
        else {
            tracing::debug!(peer = %beacon.peer, why = decision.label(), max = self.config.max_nodes, "link-state database full, beacon ignored");
            return false;
        };
        self.forget_node(&victim);
        if let Some((group, hops)) = attachment {
            self.admission.place(beacon.peer, group, hops);
        }
        self.dirty = true;
        true
    }

    /// Takes `peer` out of the link-state database; whether it was in.
    pub fn forget_node(&mut self, peer: &PeerId) -> bool {
        self.judge.forget_claims(peer);
        self.admission.forget(peer);
        self.nodes.remove(peer).is_some()
    }

    /// Counts links in `beacon` that their other end keeps denying.
    fn judge_links(&mut self, beacon: &ValidBeacon, now: Instant) {
        let claimant = beacon.peer;
        let claimed: Vec<PeerId> = beacon.links.iter().map(|l| l.peer).collect();
        let (local, local_links, nodes) = (self.local, &self.local_links, &self.nodes);
        let denies = |other: &PeerId| {
            if *other == local {
                return !local_links.iter().any(|(p, _)| *p == claimant);
            }
            nodes
                .get(other)
                .is_some_and(|n| !n.links.iter().any(|(p, _)| *p == claimant))
        };
        let grace = Duration::from_millis(self.config.beacon_expiry_ms);
        for other in self.judge.check_links(claimant, &claimed, denies, now, grace) {
            tracing::debug!(%claimant, %other, "link denied by its other end");
        }
    }
}
