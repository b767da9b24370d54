//! The routing protocol in virtual time. Every simulated node that is an
//! **observer** runs the router's own link-state database
//! ([`LinkState`]: beacon handling, the graph, route and backup computation,
//! hysteresis, expiry) on beacons encoded and validated by the node's own code
//! ([`Beacon::encode`], [`Beacon::validate`]); the others only send beacons.
//! With every node an observer (small meshes) the simulator also walks frames
//! hop by hop through the nodes' tables, which gives reroute times and frames
//! lost after a link cut.
//!
//! Timing follows the node's defaults: a beacon every `beacon_interval` (each
//! node at its own phase) and at once when a link goes; gossip carries a beacon
//! over the mesh's links, each hop costing half the link's RTT plus
//! `hop_delay`; a dirty table is recomputed at the node's next
//! `recompute_interval_ms` tick, cost drift at the next second; a cut link is
//! noticed by both ends after `link_timeout`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use x0tta6bl4_actors::libp2p::PeerId;
use x0tta6bl4_actors::mesh::beacon::{Beacon, LinkReport, ValidBeacon};
use x0tta6bl4_actors::policy::{Policy, PolicyConfig};
use x0tta6bl4_actors::router::graph::Route;
use x0tta6bl4_actors::router::lsdb::LinkState;
use x0tta6bl4_actors::router::RouterConfig;
use x0tta6bl4_pqc::{PqIdentity, PqSeeds};

use crate::net::Net;
use crate::topology::Topology;

/// Timers and scale of a simulation.
#[derive(Debug, Clone)]
pub struct ProtocolConfig {
    /// The router's configuration (recompute interval, expiry, `max_nodes`, hysteresis).
    pub router: RouterConfig,
    /// Between two beacons of a node (`mesh.beacon_interval_ms`).
    pub beacon_interval: Duration,
    /// Silence after which a neighbour is closed (`mesh.link_timeout_ms`).
    pub link_timeout: Duration,
    /// What a relay adds to a beacon's trip: validation and the gossip hop.
    pub hop_delay: Duration,
    /// Nodes that run a link-state database; all when at least the node count.
    pub observers: usize,
    /// Seed of the phases and of the observers chosen.
    pub seed: u64,
    /// Beacons carry a post-quantum key binding, as with the node's default
    /// `pqc.mode` (`preferred`). One real binding serves every node: its size
    /// and its parsing are what the simulation needs.
    pub pq_binding: bool,
}

impl Default for ProtocolConfig {
    /// The node's defaults: beacons every second, links closed after 1.5 s.
    fn default() -> Self {
        Self {
            router: RouterConfig::default(),
            beacon_interval: Duration::from_secs(1),
            link_timeout: Duration::from_millis(1_500),
            hop_delay: Duration::from_micros(200),
            observers: usize::MAX,
            seed: 1,
            pq_binding: true,
        }
    }
}

/// Virtual time since the start.
type At = Duration;

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// Node sends its periodic beacon.
    Tick(usize),
    /// A beacon reaches an observer.
    Deliver(usize, usize),
    /// An observer's recompute timer fires.
    Recompute(usize),
    /// Both ends of a cut link notice it.
    Detect(usize, usize),
}

/// One simulated node.
struct VirtualNode {
    peer: PeerId,
    /// Neighbours and their link RTT (ms).
    links: Vec<(usize, f64)>,
    seq: u64,
    /// Phase of its recompute timer.
    phase: Duration,
    /// Observers only.
    db: Option<LinkState>,
    table: HashMap<PeerId, Route>,
    recompute_pending: bool,
}

/// The simulator.
pub struct Simulation {
    config: ProtocolConfig,
    nodes: Vec<VirtualNode>,
    index: HashMap<PeerId, usize>,
    observers: Vec<usize>,
    /// Latency of a beacon from each node to each observer (µs), by gossip.
    latency: Vec<Vec<u64>>,
    /// The last beacon of each node, validated once, shared by the deliveries.
    sent: Vec<Option<(Arc<ValidBeacon>, usize)>>,
    queue: BinaryHeap<Reverse<(At, u64, Event)>>,
    order: u64,
    now: At,
    start: Instant,
    policy: Policy,
    /// Beacon bytes sent by all nodes (one copy each).
    beacon_bytes: u64,
    beacons: u64,
    /// Wall-clock time spent in recomputes, and how many.
    recompute_wall: Duration,
    recomputes: u64,
    cut: Option<(usize, usize)>,
    /// The key binding every beacon carries, base64, if any.
    binding: Option<String>,
    /// Links left out of beacons to keep them within `MAX_BEACON_BYTES`.
    links_left_out: u64,
}

/// Why a simulation could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The built-in policy did not load.
    #[error("policy: {0}")]
    Policy(String),
    /// Nothing to simulate.
    #[error("the topology has no nodes")]
    Empty,
}

impl Simulation {
    /// A simulation of `topology`; nothing has happened yet.
    pub fn new(topology: &Topology, config: ProtocolConfig) -> Result<Self, SimError> {
        let net = Net::new(topology);
        if net.is_empty() {
            return Err(SimError::Empty);
        }
        let policy = Policy::load(&PolicyConfig::default()).map_err(|e| SimError::Policy(e.to_string()))?;
        let mut rng = StdRng::seed_from_u64(config.seed);
        let n = net.len();
        let mut observers: Vec<usize> = (0..n).collect();
        if config.observers < n {
            for i in 0..config.observers {
                let j = rng.gen_range(i..n);
                observers.swap(i, j);
            }
            observers.truncate(config.observers);
            observers.sort_unstable();
        }
        let interval = Duration::from_millis(config.router.recompute_interval_ms.max(10));
        let mut nodes: Vec<VirtualNode> = (0..n)
            .map(|_| VirtualNode {
                peer: PeerId::random(),
                links: Vec::new(),
                seq: 0,
                phase: interval.mul_f64(rng.gen::<f64>()),
                db: None,
                table: HashMap::new(),
                recompute_pending: false,
            })
            .collect();
        for link in topology.links() {
            // A checked topology names only its own nodes.
            if let (Some(a), Some(b)) = (net.node(&link.a), net.node(&link.b)) {
                nodes[a.index()].links.push((b.index(), link.rtt_ms));
                nodes[b.index()].links.push((a.index(), link.rtt_ms));
            }
        }
        for &o in &observers {
            let mut db = LinkState::new(nodes[o].peer, config.router.clone());
            db.set_local_links(&local_links(&nodes, o));
            nodes[o].db = Some(db);
        }
        let index = nodes.iter().enumerate().map(|(i, v)| (v.peer, i)).collect();
        let mut sim = Self {
            config,
            nodes,
            index,
            observers,
            latency: Vec::new(),
            sent: vec![None; n],
            queue: BinaryHeap::new(),
            order: 0,
            now: Duration::ZERO,
            start: Instant::now(),
            policy,
            beacon_bytes: 0,
            beacons: 0,
            recompute_wall: Duration::ZERO,
            recomputes: 0,
            cut: None,
            binding: None,
            links_left_out: 0,
        };
        if sim.config.pq_binding {
            let keypair = x0tta6bl4_actors::libp2p::identity::Keypair::generate_ed25519();
            let identity = PqIdentity::new(keypair, &PqSeeds::generate());
            sim.binding = Some(base64::engine::general_purpose::STANDARD.encode(identity.binding().encode()));
        }
        sim.latency = sim.gossip_latency();
        for node in 0..n {
            let phase = sim.config.beacon_interval.mul_f64(rng.gen::<f64>());
            sim.schedule(phase, Event::Tick(node));
        }
        Ok(sim)
    }

    /// Nodes simulated.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when there are no nodes (never: [`Simulation::new`] refuses that).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Virtual time now.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// The nodes that run a link-state database.
    pub fn observers(&self) -> &[usize] {
        &self.observers
    }

    fn schedule(&mut self, at: At, event: Event) {
        self.order += 1;
        self.queue.push(Reverse((at, self.order, event)));
    }

    /// One-way latency (µs) of a beacon from every node to every observer:
    /// Dijkstra from each observer over half-RTTs plus the hop delay.
    fn gossip_latency(&self) -> Vec<Vec<u64>> {
        let hop = self.config.hop_delay.as_micros() as u64;
        self.observers
            .iter()
            .map(|&o| {
                let mut best = vec![u64::MAX; self.nodes.len()];
                let mut heap = BinaryHeap::from([Reverse((0u64, o))]);
                best[o] = 0;
                while let Some(Reverse((d, u))) = heap.pop() {
                    if d > best[u] {
                        continue;
                    }
                    for &(v, rtt) in &self.nodes[u].links {
                        if self.is_cut(u, v) {
                            continue;
                        }
                        let next = d + (rtt * 500.0) as u64 + hop;
                        if next < best[v] {
                            best[v] = next;
                            heap.push(Reverse((next, v)));
                        }
                    }
                }
                best
            })
            .collect()
    }

    fn is_cut(&self, a: usize, b: usize) -> bool {
        self.cut.is_some_and(|(x, y)| (x, y) == (a, b) || (x, y) == (b, a))
    }

    /// Runs events until virtual time `until`, calling `progress` with the
    /// share done now and then.
    pub fn run_until(&mut self, until: Duration, progress: &mut dyn FnMut(f64)) {
        let mut reported = self.now;
        while let Some(Reverse((at, _, _))) = self.queue.peek() {
            if *at > until {
                break;
            }
            let Some(Reverse((at, _, event))) = self.queue.pop() else {
                break;
            };
            self.now = at;
            self.handle(event);
            if self.now >= reported + Duration::from_millis(100) {
                reported = self.now;
                progress(self.now.as_secs_f64() / until.as_secs_f64().max(1e-9));
            }
        }
        self.now = self.now.max(until);
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Tick(node) => {
                self.send_beacon(node);
                let next = self.now + self.config.beacon_interval;
                self.schedule(next, Event::Tick(node));
            }
            Event::Deliver(observer, from) => self.deliver(observer, from),
            Event::Recompute(node) => self.recompute(node),
            Event::Detect(a, b) => {
                for (me, gone) in [(a, b), (b, a)] {
                    self.nodes[me].links.retain(|(n, _)| *n != gone);
                    let peer = self.nodes[gone].peer;
                    let links = local_links(&self.nodes, me);
                    if let Some(db) = self.nodes[me].db.as_mut() {
                        db.link_down(&peer);
                        db.set_local_links(&links);
                    }
                    // The router recomputes at once (the forwarder is on
                    // the backup hop already) and the mesh tells the others.
                    self.recompute(me);
                    self.send_beacon(me);
                }
            }
        }
    }

    /// Encodes `node`'s beacon as the mesh does, validates it once as a
    /// receiver does, and schedules its arrival at every observer.
    fn send_beacon(&mut self, node: usize) {
        self.nodes[node].seq += 1;
        let v = &self.nodes[node];
        let beacon = Beacon {
            peer_id: v.peer.to_string(),
            name: format!("n{node}"),
            addrs: Vec::new(),
            seq: v.seq,
            timestamp_ms: self.now.as_millis() as u64,
            links: v
                .links
                .iter()
                .map(|&(n, rtt_ms)| LinkReport {
                    peer_id: self.nodes[n].peer.to_string(),
                    rtt_ms,
                    loss: 0.0,
                    avoided: false,
                })
                .collect(),
            pq_binding: self.binding.clone(),
            pq_signature: None,
            svid_chain: Vec::new(),
        };
        // As the mesh sends it: past the size limit, the weakest links are left out.
        let (bytes, left_out) = beacon.encode_within_limits(None);
        self.links_left_out += left_out as u64;
        self.beacon_bytes += bytes.len() as u64;
        self.beacons += 1;
        let Ok(valid) = Beacon::validate(&bytes, Some(self.nodes[node].peer)) else {
            return;
        };
        self.sent[node] = Some((Arc::new(valid), bytes.len()));
        for i in 0..self.observers.len() {
            let observer = self.observers[i];
            let latency = self.latency[i][node];
            if observer != node && latency != u64::MAX {
                let at = self.now + Duration::from_micros(latency);
                self.schedule(at, Event::Deliver(observer, node));
            }
        }
    }

    fn deliver(&mut self, observer: usize, from: usize) {
        let Some((beacon, _)) = self.sent[from].clone() else {
            return;
        };
        let now = self.start + self.now;
        let policy = &self.policy;
        let Some(db) = self.nodes[observer].db.as_mut() else {
            return;
        };
        db.on_beacon((*beacon).clone(), now, policy, |_, _| {});
        let (dirty, drifted) = (db.dirty(), db.drifted());
        if (dirty || drifted) && !self.nodes[observer].recompute_pending {
            self.nodes[observer].recompute_pending = true;
            let interval = match dirty {
                true => Duration::from_millis(self.config.router.recompute_interval_ms.max(10)),
                false => Duration::from_secs(1),
            };
            let at = next_tick(self.now, self.nodes[observer].phase, interval);
            self.schedule(at, Event::Recompute(observer));
        }
    }

    fn recompute(&mut self, node: usize) {
        let now = self.start + self.now;
        let v = &mut self.nodes[node];
        v.recompute_pending = false;
        let Some(db) = v.db.as_mut() else { return };
        let started = Instant::now();
        v.table = db.recompute(now, &v.table);
        self.recompute_wall += started.elapsed();
        self.recomputes += 1;
    }

    /// Cuts the link `a`–`b` now: frames over it are lost at once, its ends
    /// notice after `link_timeout`. False when there is no such link.
    pub fn cut(&mut self, a: usize, b: usize) -> bool {
        if !self.nodes.get(a).is_some_and(|v| v.links.iter().any(|(n, _)| *n == b)) {
            return false;
        }
        self.cut = Some((a, b));
        self.latency = self.gossip_latency();
        let at = self.now + self.config.link_timeout;
        self.schedule(at, Event::Detect(a, b));
        true
    }

    /// The hops a frame from `src` to `dst` takes now through the nodes'
    /// tables, or `None` when it is lost (no route, a hop over the cut link
    /// before its ends noticed, or a loop).
    pub fn walk(&self, src: usize, dst: usize) -> Option<u32> {
        self.path(src, dst).map(|p| (p.len() - 1) as u32)
    }

    /// The nodes a frame from `src` to `dst` passes now, both ends included.
    pub fn path(&self, src: usize, dst: usize) -> Option<Vec<usize>> {
        let target = self.nodes.get(dst)?.peer;
        let mut path = vec![src];
        let mut at = src;
        while at != dst {
            let route = self.nodes[at].table.get(&target)?;
            let next = *self.index.get(&route.next)?;
            let linked = self.nodes[at].links.iter().any(|(n, _)| *n == next);
            if !linked || self.is_cut(at, next) || path.len() > usize::from(self.config.router.default_ttl) {
                return None;
            }
            path.push(next);
            at = next;
        }
        Some(path)
    }

    /// Whether the mesh stays connected without the link `a`–`b`.
    pub fn connected_without(&self, a: usize, b: usize) -> bool {
        let mut seen = vec![false; self.nodes.len()];
        let mut stack = vec![a];
        seen[a] = true;
        while let Some(u) = stack.pop() {
            for &(v, _) in &self.nodes[u].links {
                if !seen[v] && (u, v) != (a, b) && (u, v) != (b, a) {
                    seen[v] = true;
                    stack.push(v);
                }
            }
        }
        seen[b]
    }

    /// Routes each observer holds, as a share of the other nodes.
    pub fn coverage(&self) -> f64 {
        let others = self.nodes.len().saturating_sub(1).max(1) as f64;
        let total: f64 = self
            .observers
            .iter()
            .map(|&o| self.nodes[o].table.len() as f64 / others)
            .sum();
        total / self.observers.len().max(1) as f64
    }

    /// Every observer has a route to every other node.
    pub fn converged(&self) -> bool {
        let others = self.nodes.len() - 1;
        self.observers.iter().all(|&o| self.nodes[o].table.len() == others)
    }

    /// Figures so far.
    pub fn stats(&self) -> Stats {
        let seconds = self.now.as_secs_f64().max(1e-9);
        let per_beacon = self.beacon_bytes as f64 / self.beacons.max(1) as f64;
        Stats {
            nodes: self.nodes.len(),
            observers: self.observers.len(),
            virtual_seconds: self.now.as_secs_f64(),
            beacon_bytes_mean: per_beacon,
            binding_bytes: self.binding.as_ref().map_or(0, String::len),
            links_left_out_per_beacon: self.links_left_out as f64 / self.beacons.max(1) as f64,
            // Every node receives every node's beacon (gossip floods the topic).
            beacon_bytes_in_per_node_per_sec: self.beacon_bytes as f64 / seconds,
            beacon_bytes_out_per_node_per_sec: self.beacon_bytes as f64 / seconds / self.nodes.len() as f64,
            recompute_ms_mean: self.recompute_wall.as_secs_f64() * 1e3 / self.recomputes.max(1) as f64,
            recomputes_per_observer_per_sec: self.recomputes as f64 / self.observers.len().max(1) as f64 / seconds,
            coverage: self.coverage(),
            nodes_known_mean: self
                .observers
                .iter()
                .filter_map(|&o| self.nodes[o].db.as_ref())
                .map(|db| db.node_count() as f64)
                .sum::<f64>()
                / self.observers.len().max(1) as f64,
        }
    }

    /// Takes the link-state database and routing table out of observer
    /// `node` (what one node holds; the simulation goes on without it).
    pub fn take_database(&mut self, node: usize) -> Option<(LinkState, HashMap<PeerId, Route>)> {
        let v = self.nodes.get_mut(node)?;
        let db = v.db.take()?;
        Some((db, std::mem::take(&mut v.table)))
    }
}

/// Figures of a simulation.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Stats {
    /// Nodes simulated.
    pub nodes: usize,
    /// Of which run a link-state database.
    pub observers: usize,
    /// Virtual time simulated.
    pub virtual_seconds: f64,
    /// Mean size of a beacon as encoded (JSON, with the key binding when configured).
    pub beacon_bytes_mean: f64,
    /// Of which the key binding (base64), 0 without.
    pub binding_bytes: usize,
    /// Links left out of beacons (per beacon sent, mean): a node with more
    /// links than fit in `MAX_BEACON_BYTES` announces only the best ones.
    pub links_left_out_per_beacon: f64,
    /// Beacon bytes a node receives per second: every node's beacons, once
    /// each (gossip adds duplicates on top).
    pub beacon_bytes_in_per_node_per_sec: f64,
    /// Beacon bytes a node originates per second.
    pub beacon_bytes_out_per_node_per_sec: f64,
    /// Wall-clock milliseconds of one recompute (this machine).
    pub recompute_ms_mean: f64,
    /// Recomputes per observer per virtual second.
    pub recomputes_per_observer_per_sec: f64,
    /// Routes held as a share of the other nodes, mean over observers.
    pub coverage: f64,
    /// Nodes in an observer's link-state database, mean.
    pub nodes_known_mean: f64,
}

/// `node`'s live links as the mesh reports them to its router.
fn local_links(nodes: &[VirtualNode], node: usize) -> Vec<x0tta6bl4_actors::mesh::LinkQuality> {
    nodes[node]
        .links
        .iter()
        .map(|&(n, rtt_ms)| x0tta6bl4_actors::mesh::LinkQuality {
            peer: nodes[n].peer,
            rtt_ms,
            loss: 0.0,
            avoided: false,
        })
        .collect()
}

/// The first tick of a timer with `phase` and `interval` after `now`.
fn next_tick(now: Duration, phase: Duration, interval: Duration) -> Duration {
    let (now_us, phase_us, step) = (now.as_micros(), phase.as_micros(), interval.as_micros().max(1));
    let k = now_us.saturating_sub(phase_us) / step + 1;
    Duration::from_micros((phase_us + k * step) as u64)
}
