//! Monitor: one observation of everything the healer judges by.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use actix::Addr;
use libp2p::{Multiaddr, PeerId};

use crate::mesh::{MeshHandle, PeerLink};
use crate::router::{Forwarder, GetState, RouterActor};
use crate::supervision;
use crate::telemetry::TelemetrySnapshot;

/// What the healer saw in one cycle.
#[derive(Debug, Clone)]
pub struct Observation {
    /// When.
    pub at: Instant,
    /// Live links with RTT and loss; `None` when the mesh did not answer.
    pub links: Option<Vec<PeerLink>>,
    /// Destination → (next hop, backup).
    pub routes: HashMap<PeerId, (PeerId, Option<PeerId>)>,
    /// Nodes known from beacons and their announced addresses.
    pub known: HashMap<PeerId, Vec<Multiaddr>>,
    /// Protocol violations per neighbour since start.
    pub violations: HashMap<PeerId, u64>,
    /// Nodes the router caught lying in beacons: strikes and the latest lie.
    pub liars: HashMap<PeerId, (u32, &'static str)>,
    /// Actor restarts since start.
    pub restarts: u64,
    /// The latest telemetry snapshot.
    pub telemetry: Option<Arc<TelemetrySnapshot>>,
}

/// The handles the healer observes through.
#[derive(Clone)]
pub struct Sources {
    /// The mesh.
    pub mesh: MeshHandle,
    /// The router's control plane.
    pub router: Addr<RouterActor>,
    /// The router's data plane.
    pub forwarder: Arc<Forwarder>,
}

impl Sources {
    /// Gathers one observation (telemetry is added by the actor, which holds it).
    pub async fn observe(self) -> Observation {
        let links = self.mesh.status().await.ok().map(|s| s.peers);
        let mut routes = HashMap::new();
        let mut known = HashMap::new();
        let mut liars = HashMap::new();
        if let Ok(state) = self.router.send(GetState).await {
            for liar in state.liars {
                liars.insert(liar.peer, (liar.strikes, liar.last.label()));
            }
            for route in state.routes {
                if let (Ok(dst), Ok(next)) = (route.destination.parse(), route.next_hop.parse()) {
                    routes.insert(dst, (next, route.backup.and_then(|b| b.parse().ok())));
                }
            }
            for node in state.nodes {
                if let Ok(peer) = node.peer_id.parse() {
                    known.insert(peer, node.addrs.iter().filter_map(|a| a.parse().ok()).collect());
                }
            }
        }
        Observation {
            at: Instant::now(),
            links,
            routes,
            known,
            violations: self.forwarder.violations().into_iter().collect(),
            liars,
            restarts: supervision::restarts_total(),
            telemetry: None,
        }
    }
}
