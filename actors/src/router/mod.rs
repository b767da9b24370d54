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
pub mod lsdb;
mod metrics;
pub mod reliable;
#[cfg(test)]
mod sybil_tests;

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
use graph::Cost;
use lsdb::DRIFT_REFRESH;

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

/// The router actor.
pub struct RouterActor {
    local: PeerId,
    db: lsdb::LinkState,
    forwarder: Arc<Forwarder>,
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
            db: lsdb::LinkState::new(local, config),
            forwarder,
            policy,
            policy_reload,
        }
    }

    fn recompute(&mut self) {
        let started = Instant::now();
        let previous = self.forwarder.table();
        let table = self.db.recompute(started, &previous);
        let changed = table
            .iter()
            .filter(|(dest, route)| previous.get(*dest).is_some_and(|old| old.next != route.next))
            .count();
        metrics::routes(table.len(), changed, started.elapsed().as_secs_f64());
        self.forwarder.install_table(table);
    }

    fn on_beacon(&mut self, beacon: crate::mesh::beacon::ValidBeacon) {
        let sessions = self.forwarder.sessions();
        self.db
            .on_beacon(beacon, Instant::now(), &self.policy, |peer, binding| {
                if let Some(sessions) = sessions {
                    sessions.learn(peer, binding);
                }
            });
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
            .db
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
            .db
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
            liars: self.db.judge.liars(),
        }
    }
}

impl Actor for RouterActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let interval = Duration::from_millis(self.db.config.recompute_interval_ms.max(10));
        ctx.run_interval(interval, |router, _| {
            if router.db.dirty() {
                router.recompute();
            }
        });
        // New RTT and loss figures are taken in this often, so routes never
        // rest on costs older than that.
        ctx.run_interval(DRIFT_REFRESH, |router, _| {
            if router.db.drifted() {
                router.recompute();
            }
        });
        ctx.run_interval(self.policy_reload.max(Duration::from_millis(50)), |router, _| {
            if router.policy.reload_if_changed() {
                router.db.rejudge(&router.policy);
            }
        });
        ctx.run_interval(
            Duration::from_millis(self.db.config.beacon_expiry_ms.max(100) / 2),
            |router, _| {
                router.db.expire(Instant::now());
            },
        );
    }
}

impl Supervised for RouterActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        // The link-state database survives (it lives in the actor struct); the
        // table is rebuilt so a restart never leaves a half-updated one behind.
        self.db.mark_dirty();
    }
}

impl Handler<MeshEvent> for RouterActor {
    type Result = ();

    fn handle(&mut self, event: MeshEvent, _: &mut Context<Self>) {
        match event {
            MeshEvent::Beacon(beacon) => self.on_beacon(beacon),
            MeshEvent::LocalLinks(links) => self.db.set_local_links(&links),
            MeshEvent::LinkDown(peer) => {
                self.db.link_down(&peer);
                self.recompute();
            }
            MeshEvent::Excluded(peer) => {
                // Its links count only while it reports them too: without
                // its beacon, no edge reaches it.
                if self.db.forget_node(&peer) {
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
        assert!(router.db.dirty, "a new node");
        router.recompute();
        assert!(!router.db.dirty && !router.db.drifted);

        router.on_beacon(beacon(a, 2, &[(local, 40.0, false)]));
        assert!(!router.db.dirty, "an RTT change alone waits");
        assert!(router.db.drifted, "and is taken in by the drift refresh");
        router.recompute();

        router.on_beacon(beacon(a, 3, &[(local, 40.0, true)]));
        assert!(router.db.dirty, "an avoided link moves routes at once");
        router.recompute();
        // The same links listed in another order are the same links.
        router.on_beacon(beacon(a, 4, &[(b, 1.0, false), (local, 40.0, true)]));
        router.recompute();
        router.on_beacon(beacon(a, 5, &[(local, 40.0, true), (b, 1.0, false)]));
        assert!(!router.db.dirty && !router.db.drifted);
        router.on_beacon(beacon(a, 6, &[(local, 40.0, true)]));
        assert!(router.db.dirty, "a link that went moves routes at once");
    }
}
