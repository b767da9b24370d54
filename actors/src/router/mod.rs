//! The router actor: link-state control plane over a lock-free data plane.
//!
//! The actor keeps the freshest beacon of every node, rebuilds the [`graph::Graph`]
//! when something changed, and installs a new routing table (primary and backup
//! next hop per destination) into the [`forwarder::Forwarder`], which moves frames
//! on the network runtime without waiting for the actor. A link-down event
//! recomputes at once; the forwarder has already switched to the backup hop by then.

mod admission;
pub mod byzantine;
pub mod config;
pub mod fair_share;
pub mod forwarder;
pub mod frame;
pub mod graph;
pub mod inbox;
mod metrics;
pub mod reliable;
#[cfg(test)]
mod sybil_tests;

use std::collections::{HashMap, HashSet};
use std::fmt::Display;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, AsyncContext, Context, Handler, Message, MessageResult, Supervised};
use libp2p::PeerId;
use serde::Serialize;

pub use config::RouterConfig;
pub use forwarder::Forwarder;

use crate::mesh::MeshEvent;
use crate::policy::Policy;
use graph::{quality_cost, Cost, Graph};

/// Serializes a value through its `Display` form (peer ids as base58 text).
pub fn serialize_display<S: serde::Serializer, T: Display>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

/// Serializes values through their `Display` forms, as a list.
pub fn serialize_display_all<S: serde::Serializer, T: Display>(values: &[T], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(values.iter().map(ToString::to_string))
}

/// Serializes an optional value through its `Display` form (`null` when absent).
pub fn serialize_option_display<S: serde::Serializer, T: Display>(value: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}

/// The cost of each link, in peer order, so that two reports of the same
/// links compare equal whatever order they were listed in.
fn link_costs(links: &[crate::mesh::LinkQuality]) -> Vec<(PeerId, Cost)> {
    let mut costs: Vec<(PeerId, Cost)> = links.iter().map(|link| (link.peer, quality_cost(link))).collect();
    costs.sort_unstable_by_key(|(peer, _)| *peer);
    costs
}

/// A node's links as far as they decide at once where traffic may go: which
/// neighbours it has and which of them its healer avoids, in peer order. A
/// change here is recomputed within `recompute_interval_ms`; a change of RTT
/// or loss alone within [`DRIFT_REFRESH`], since every ping moves them a little
/// and a recompute per beacon cost a 21-node mesh's nodes a sixth of their idle CPU.
fn link_shape(links: &[crate::mesh::LinkQuality]) -> Vec<(PeerId, bool)> {
    let mut shape: Vec<(PeerId, bool)> = links.iter().map(|link| (link.peer, link.avoided)).collect();
    shape.sort_unstable_by_key(|(peer, _)| *peer);
    shape
}

/// Longest a recompute waits for link costs (RTT, loss) that changed.
const DRIFT_REFRESH: Duration = Duration::from_secs(1);

/// What the router knows about another node from its beacons.
struct NodeInfo {
    name: String,
    addrs: Vec<String>,
    seq: u64,
    links: Vec<(PeerId, Cost)>,
    /// Its neighbours and which of them its healer avoids (see [`link_shape`]).
    shape: Vec<(PeerId, bool)>,
    /// Its healer routes around its link to this node.
    avoids_local: bool,
    received: Instant,
    /// The policy bars this node from relaying (decided when its name is first
    /// seen, and again after every policy reload).
    transit_barred: bool,
}

/// The router actor.
pub struct RouterActor {
    local: PeerId,
    config: RouterConfig,
    forwarder: Arc<Forwarder>,
    nodes: HashMap<PeerId, NodeInfo>,
    local_links: Vec<(PeerId, Cost)>,
    local_shape: Vec<(PeerId, bool)>,
    graph: Graph,
    dirty: bool,
    /// Some link costs changed since the last recompute (taken in within
    /// [`DRIFT_REFRESH`]; a change of links or of avoided links is at once).
    drifted: bool,
    judge: byzantine::Judge,
    /// Who may enter the database when it is full.
    admission: admission::Admission,
    policy: Arc<Policy>,
    policy_reload: Duration,
}

impl RouterActor {
    /// A router for node `local` that installs its tables into `forwarder`
    /// and keeps traffic off nodes `policy` bars from transit (re-reading the
    /// policy every `policy_reload`).
    pub fn new(
        local: PeerId,
        config: RouterConfig,
        forwarder: Arc<Forwarder>,
        policy: Arc<Policy>,
        policy_reload: Duration,
    ) -> Self {
        Self {
            local,
            config,
            forwarder,
            nodes: HashMap::new(),
            local_links: Vec::new(),
            local_shape: Vec::new(),
            graph: Graph::default(),
            dirty: false,
            drifted: false,
            judge: byzantine::Judge::default(),
            admission: admission::Admission::default(),
            policy,
            policy_reload,
        }
    }

    fn expire(&mut self) {
        let expiry = Duration::from_millis(self.config.beacon_expiry_ms);
        let before = self.nodes.len();
        let (judge, admission) = (&mut self.judge, &mut self.admission);
        self.nodes.retain(|peer, n| {
            let fresh = n.received.elapsed() < expiry;
            if !fresh {
                judge.forget_claims(peer);
                admission.forget(peer);
            }
            fresh
        });
        self.dirty |= self.nodes.len() != before;
    }

    fn recompute(&mut self) {
        let started = Instant::now();
        self.expire();
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
        let previous = self.forwarder.table();
        let table = self.graph.routing_table(self.local, Some(&previous));
        let changed = table
            .iter()
            .filter(|(dest, route)| previous.get(*dest).is_some_and(|old| old.next != route.next))
            .count();
        metrics::routes(table.len(), changed, started.elapsed().as_secs_f64());
        self.admission.rebuild(&table);
        self.forwarder.install_table(table);
        self.dirty = false;
        self.drifted = false;
    }

    fn on_beacon(&mut self, beacon: crate::mesh::beacon::ValidBeacon) {
        // A node already known under this name passed the policy in force
        // (a reload re-judges every node), so only new names are evaluated.
        let judged = self
            .nodes
            .get(&beacon.peer)
            .filter(|n| n.name == beacon.name)
            .map(|n| n.transit_barred);
        if judged.is_none() && self.policy.admission_denied(&beacon.peer, &beacon.name) {
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
        } else if self.nodes.len() >= self.config.max_nodes && !self.make_room(&beacon) {
            return;
        }
        if let (Some(binding), Some(sessions)) = (&beacon.binding, self.forwarder.sessions()) {
            sessions.learn(beacon.peer, binding);
        }
        let links = link_costs(&beacon.links);
        let avoids_local = beacon.links.iter().any(|link| link.peer == self.local && link.avoided);
        if self.config.byzantine {
            self.judge_links(&beacon);
        }
        let transit_barred =
            judged.unwrap_or_else(|| self.policy.transit_denied(&self.local, &beacon.peer, &beacon.name));
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
                received: Instant::now(),
                transit_barred,
            },
        );
        self.dirty |= changed;
        self.drifted |= drifted;
    }

    /// Where a node not yet known attaches to the graph: the group (first hop)
    /// and hop count it would have through a link that both it and a known
    /// end report.
    fn attachment(&self, beacon: &crate::mesh::beacon::ValidBeacon) -> Option<(PeerId, u32)> {
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
    fn make_room(&mut self, beacon: &crate::mesh::beacon::ValidBeacon) -> bool {
        let attachment = self.attachment(beacon);
        let known = self.nodes.iter().map(|(peer, info)| (*peer, info.received));
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
    fn forget_node(&mut self, peer: &PeerId) -> bool {
        self.judge.forget_claims(peer);
        self.admission.forget(peer);
        self.nodes.remove(peer).is_some()
    }

    /// Counts links in `beacon` that their other end keeps denying.
    fn judge_links(&mut self, beacon: &crate::mesh::beacon::ValidBeacon) {
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
        for other in self
            .judge
            .check_links(claimant, &claimed, denies, Instant::now(), grace)
        {
            tracing::debug!(%claimant, %other, "link denied by its other end");
        }
    }

    fn state(&self) -> RouterState {
        let table = self.forwarder.table();
        let route_of = |peer: &PeerId| {
            table.get(peer).map(|r| RouteView {
                destination: peer.to_string(),
                next_hop: r.next.to_string(),
                backup: r.backup.map(|b| b.to_string()),
                cost: r.cost,
                hops: r.hops,
            })
        };
        let mut nodes: Vec<NodeView> = self
            .nodes
            .iter()
            .map(|(peer, info)| NodeView {
                peer_id: peer.to_string(),
                name: info.name.clone(),
                addrs: info.addrs.clone(),
                seq: info.seq,
                beacon_age_ms: info.received.elapsed().as_millis() as u64,
                avoids_link_to_us: info.avoids_local,
                route: route_of(peer),
            })
            .collect();
        nodes.sort_by(|a, b| a.name.cmp(&b.name).then(a.peer_id.cmp(&b.peer_id)));
        let mut routes: Vec<RouteView> = table.keys().filter_map(route_of).collect();
        routes.sort_by(|a, b| a.destination.cmp(&b.destination));
        let edges = self
            .graph
            .edges()
            .into_iter()
            .map(|(a, b, cost)| EdgeView {
                a: a.to_string(),
                b: b.to_string(),
                cost,
            })
            .collect();
        RouterState {
            local: self.local.to_string(),
            nodes,
            routes,
            edges,
            liars: self.judge.liars(),
        }
    }
}

impl Actor for RouterActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let interval = Duration::from_millis(self.config.recompute_interval_ms.max(10));
        ctx.run_interval(interval, |router, _| {
            if router.dirty {
                router.recompute();
            }
        });
        // New RTT and loss figures are taken in this often, so routes never
        // rest on costs older than that.
        ctx.run_interval(DRIFT_REFRESH, |router, _| {
            if router.drifted {
                router.recompute();
            }
        });
        ctx.run_interval(self.policy_reload.max(Duration::from_millis(50)), |router, _| {
            if router.policy.reload_if_changed() {
                let (policy, local) = (router.policy.clone(), router.local);
                router
                    .nodes
                    .retain(|peer, info| !policy.admission_denied(peer, &info.name));
                for (peer, info) in &mut router.nodes {
                    info.transit_barred = policy.transit_denied(&local, peer, &info.name);
                }
                router.dirty = true;
            }
        });
        ctx.run_interval(
            Duration::from_millis(self.config.beacon_expiry_ms.max(100) / 2),
            |router, _| {
                router.expire();
            },
        );
    }
}

impl Supervised for RouterActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        // The link-state database survives (it lives in the actor struct); the
        // table is rebuilt so a restart never leaves a half-updated one behind.
        self.dirty = true;
    }
}

impl Handler<MeshEvent> for RouterActor {
    type Result = ();

    fn handle(&mut self, event: MeshEvent, _: &mut Context<Self>) {
        match event {
            MeshEvent::Beacon(beacon) => self.on_beacon(beacon),
            MeshEvent::LocalLinks(links) => {
                let shape = link_shape(&links);
                let links = link_costs(&links);
                if shape != self.local_shape {
                    self.local_shape = shape;
                    self.dirty = true;
                }
                if links != self.local_links {
                    self.local_links = links;
                    self.drifted = true;
                }
            }
            MeshEvent::LinkDown(peer) => {
                self.local_links.retain(|(p, _)| *p != peer);
                self.local_shape.retain(|(p, _)| *p != peer);
                self.recompute();
            }
            MeshEvent::Excluded(peer) => {
                // Its links count only while it reports them too: without
                // its beacon, no edge reaches it.
                if self.forget_node(&peer) {
                    tracing::info!(%peer, "node excluded from the mesh: routes through and to it removed");
                    self.recompute();
                }
            }
        }
    }
}

/// Route to one destination, for the API.
#[derive(Debug, Clone, Serialize)]
pub struct RouteView {
    /// Destination peer id.
    pub destination: String,
    /// Primary next hop.
    pub next_hop: String,
    /// Loop-free backup next hop, if any.
    pub backup: Option<String>,
    /// Path cost (1,000 units = 1 ms).
    pub cost: Cost,
    /// Links on the path.
    pub hops: u32,
}

/// A node known from beacons, for the API.
#[derive(Debug, Clone, Serialize)]
pub struct NodeView {
    /// Peer id.
    pub peer_id: String,
    /// Node name from its beacon.
    pub name: String,
    /// Listen addresses from its beacon.
    pub addrs: Vec<String>,
    /// Last beacon sequence number.
    pub seq: u64,
    /// Age of its last beacon.
    pub beacon_age_ms: u64,
    /// Its last beacon says its healer routes around its link to this node.
    pub avoids_link_to_us: bool,
    /// How to reach it, if reachable.
    pub route: Option<RouteView>,
}

/// An edge of the link-state graph, for the API.
#[derive(Debug, Clone, Serialize)]
pub struct EdgeView {
    /// One end.
    pub a: String,
    /// Other end.
    pub b: String,
    /// Link cost.
    pub cost: Cost,
}

/// Snapshot of the router for the API and dashboard.
#[derive(Debug, Clone, Serialize)]
pub struct RouterState {
    /// This node.
    pub local: String,
    /// Other nodes known from beacons.
    pub nodes: Vec<NodeView>,
    /// The routing table.
    pub routes: Vec<RouteView>,
    /// Edges of the graph.
    pub edges: Vec<EdgeView>,
    /// Nodes caught lying in their beacons (Byzantine checks on).
    pub liars: Vec<byzantine::Liar>,
}

/// Asks the router for a [`RouterState`].
#[derive(Message)]
#[rtype(result = "RouterState")]
pub struct GetState;

impl Handler<GetState> for RouterActor {
    type Result = MessageResult<GetState>;

    fn handle(&mut self, _: GetState, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.state())
    }
}

crate::supervised_actor!(RouterActor);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::beacon::ValidBeacon;
    use crate::mesh::LinkQuality;
    use crate::policy::PolicyConfig;

    pub(super) fn router() -> RouterActor {
        let local = PeerId::random();
        let forwarder = Arc::new(Forwarder::new(local, RouterConfig::default(), Arc::default()));
        let policy = Arc::new(Policy::load(&PolicyConfig::default()).expect("built-in policy"));
        RouterActor::new(
            local,
            RouterConfig::default(),
            forwarder,
            policy,
            Duration::from_secs(60),
        )
    }

    pub(super) fn beacon(peer: PeerId, seq: u64, links: &[(PeerId, f64, bool)]) -> ValidBeacon {
        ValidBeacon {
            peer,
            name: "a".into(),
            addrs: Vec::new(),
            seq,
            timestamp_ms: 0,
            links: links
                .iter()
                .map(|&(peer, rtt_ms, avoided)| LinkQuality {
                    peer,
                    rtt_ms,
                    loss: 0.0,
                    avoided,
                })
                .collect(),
            binding: None,
            pq_signed: None,
            svid_chain: Vec::new(),
        }
    }

    #[test]
    fn new_rtts_wait_for_the_drift_refresh_and_changed_links_do_not() {
        let mut router = router();
        let (a, b, local) = (PeerId::random(), PeerId::random(), router.local);
        router.on_beacon(beacon(a, 1, &[(local, 1.0, false)]));
        assert!(router.dirty, "a new node");
        router.recompute();
        assert!(!router.dirty && !router.drifted);

        router.on_beacon(beacon(a, 2, &[(local, 40.0, false)]));
        assert!(!router.dirty, "an RTT change alone waits");
        assert!(router.drifted, "and is taken in by the drift refresh");
        router.recompute();

        router.on_beacon(beacon(a, 3, &[(local, 40.0, true)]));
        assert!(router.dirty, "an avoided link moves routes at once");
        router.recompute();
        // The same links listed in another order are the same links.
        router.on_beacon(beacon(a, 4, &[(b, 1.0, false), (local, 40.0, true)]));
        router.recompute();
        router.on_beacon(beacon(a, 5, &[(local, 40.0, true), (b, 1.0, false)]));
        assert!(!router.dirty && !router.drifted);
        router.on_beacon(beacon(a, 6, &[(local, 40.0, true)]));
        assert!(router.dirty, "a link that went moves routes at once");
    }
}
