//! The mesh actor: owns the libp2p swarm and the links to neighbours.
//!
//! Discovery runs over gossipsub: every node publishes a signed [`beacon::Beacon`]
//! each interval and dials the peers it learns from others' beacons (bounded by
//! `max_peers`). Link quality comes from ping. Routed frames travel over one
//! long-lived stream per neighbour ([`streams`]).
//!
//! The swarm lives in one event-loop task ([`event_loop`]) on the node's network
//! runtime. [`MeshActor`] supervises that task: if the loop fails, the actor stops,
//! its supervisor restarts it and a fresh swarm is built from the same identity.
//! Others reach the loop through a [`MeshHandle`] and hear from it via [`MeshEvent`].

pub mod beacon;
pub mod beats;
pub mod behaviour;
pub mod config;
mod event_loop;
pub mod link_stats;
mod listen;
mod metrics;
pub mod neighbours;
pub mod pq_beacons;
pub mod roles;
pub mod scoring;
mod stalls;
pub mod streams;
pub mod svid_admission;

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, AsyncContext, Context, Handler, Message, Recipient, Supervised};
use futures::FutureExt;
use libp2p::{identity::Keypair, Multiaddr, PeerId};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

pub use config::{is_quic, MeshConfig};
pub use event_loop::unix_ms;
pub use neighbours::Neighbours;
pub use streams::FrameHandler;

use crate::store::Store;
use crate::supervision;

/// Commands the event loop accepts; bounded so a stuck loop pushes back.
const COMMAND_QUEUE: usize = 256;

/// Errors of the mesh.
#[derive(Debug, Error)]
pub enum MeshError {
    /// The transport or a behaviour could not be set up.
    #[error("cannot build libp2p transport: {0}")]
    Transport(String),
    /// A listen address is unusable (port taken, bad address).
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The configured address.
        addr: String,
        /// What libp2p said.
        reason: String,
    },
    /// A gossipsub publish failed.
    #[error("cannot publish: {0}")]
    Publish(String),
    /// The event loop is not running (stopping or restarting).
    #[error("mesh event loop is not running")]
    Stopped,
    /// A dial failed or timed out.
    #[error("dial failed: {0}")]
    Dial(String),
}

/// A link's quality as its owner reports it, in beacons and to the router.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkQuality {
    /// The neighbour.
    pub peer: PeerId,
    /// Round-trip time routing weighs, in milliseconds: the smallest of the
    /// recent pings (`LinkStats::routing_rtt_ms`).
    pub rtt_ms: f64,
    /// Recent loss: of pings, or of beats delayed by a retransmission (`mesh::beats`), whichever is higher.
    pub loss: f64,
    /// The owner's healer routes around this link.
    pub avoided: bool,
}

/// Most links the healer may mark as avoided at once.
const MAX_AVOIDED: usize = 1_024;

/// What the mesh tells the router.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub enum MeshEvent {
    /// A valid beacon from another node.
    Beacon(beacon::ValidBeacon),
    /// The local node's live links.
    LocalLinks(Vec<LinkQuality>),
    /// The last connection to a neighbour closed.
    LinkDown(PeerId),
    /// A node is no longer admitted (`mesh.require_svid`: its SVID was
    /// refused, revoked or expired): its beacons and links are to go now.
    Excluded(PeerId),
}

/// One live link as seen by the mesh.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PeerLink {
    /// The neighbour.
    #[serde(serialize_with = "crate::router::serialize_display")]
    pub peer: PeerId,
    /// Smoothed round-trip time in milliseconds.
    pub rtt_ms: f64,
    /// Recent loss ratio (pings or beats, whichever is higher; see `LinkQuality::loss`).
    pub loss: f64,
    /// Remote addresses of its open connections, as this node sees them (what
    /// the peer really uses, unlike the addresses its beacons announce).
    pub remote_addrs: Vec<Multiaddr>,
    /// Its gossipsub score here (see [`scoring`]), once scored.
    pub gossip_score: Option<f64>,
}

/// A connected light peer (see [`roles`]).
#[derive(Debug, Clone, serde::Serialize)]
pub struct LightPeer {
    /// The peer.
    #[serde(serialize_with = "crate::router::serialize_display")]
    pub peer: PeerId,
    /// Remote addresses of its open connections.
    pub remote_addrs: Vec<Multiaddr>,
    /// Its gossipsub score here; below −80 it is graylisted (see [`scoring`]).
    pub gossip_score: Option<f64>,
    /// Milliseconds since it was classified as a light peer.
    pub connected_ms: u64,
}

/// Snapshot of the mesh for the API.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MeshStatus {
    /// This node's peer id.
    #[serde(serialize_with = "crate::router::serialize_display")]
    pub peer_id: PeerId,
    /// Addresses the swarm listens on.
    pub listen_addrs: Vec<Multiaddr>,
    /// Live links: the routing neighbours.
    pub peers: Vec<PeerLink>,
    /// Connected light peers.
    pub light: Vec<LightPeer>,
    /// Neighbours whose links this node's healer routes around (connected
    /// or not).
    #[serde(serialize_with = "crate::router::serialize_display_all")]
    pub avoided: Vec<PeerId>,
}

/// Requests to the event loop.
pub(crate) enum Command {
    Status(oneshot::Sender<MeshStatus>),
    Dial(Multiaddr),
    PublishRaw(Vec<u8>, oneshot::Sender<Result<(), MeshError>>),
    DialPeer(PeerId, Vec<Multiaddr>, oneshot::Sender<Result<(), MeshError>>),
    Block(PeerId, bool),
    Avoid(PeerId, bool),
    /// Test hook: the event loop panics (a fault in a network runtime task).
    Panic,
    /// Publishes a delta of the replicated state.
    PublishSync(Vec<u8>),
    /// A handle for opening streams on the running swarm.
    StreamControl(oneshot::Sender<libp2p_stream::Control>),
}

/// The replicated state's side of the mesh (see `crate::sync`): the event loop
/// hands it deltas from the sync topic, anti-entropy streams and new links.
pub trait SyncHandler: Send + Sync {
    /// A message on the sync topic, relayed by `source`: the verdict for gossipsub.
    fn on_gossip(&self, source: Option<PeerId>, data: &[u8]) -> libp2p::gossipsub::MessageAcceptance;
    /// An anti-entropy stream `peer` opened (served on a task of its own).
    fn serve(self: Arc<Self>, peer: PeerId, stream: libp2p::Stream);
    /// A link to neighbour `peer` came up.
    fn link_up(&self, peer: PeerId);
}

/// State shared by the actor, the event loop and handles.
pub(crate) struct MeshShared {
    config: MeshConfig,
    name: String,
    keypair: Keypair,
    local_peer_id: PeerId,
    store: Store,
    neighbours: Arc<Neighbours>,
    frames: Arc<dyn FrameHandler>,
    /// What beacons announce and sign with; replaced when keys rotate.
    pq: parking_lot::RwLock<PqAnnouncement>,
    ready: AtomicBool,
    commands: tokio::sync::Mutex<mpsc::Receiver<Command>>,
    /// Neighbours whose links the healer asked to avoid (kept across loop restarts).
    avoided: parking_lot::Mutex<std::collections::HashSet<PeerId>>,
    /// Ports the OS chose for wildcard-port listen addresses (kept across loop restarts).
    listen_pins: listen::ListenPins,
    /// This node's SPIFFE identity, if it has one.
    svid: Option<MeshSvid>,
    /// The replicated state, when it is on (set before the loop starts).
    sync: std::sync::OnceLock<Arc<dyn SyncHandler>>,
}

/// The post-quantum part of this node's beacons.
#[derive(Clone, Default)]
pub(crate) struct PqAnnouncement {
    /// The key binding announced, base64.
    pub(crate) binding: Option<String>,
    /// Signs beacons when post-quantum beacons are on.
    pub(crate) signer: Option<Arc<x0tta6bl4_pqc::PqIdentity>>,
}

impl PqAnnouncement {
    fn new(binding: Option<&x0tta6bl4_pqc::KeyBinding>, signer: Option<Arc<x0tta6bl4_pqc::PqIdentity>>) -> Self {
        use base64::Engine as _;
        Self {
            binding: binding.map(|b| base64::engine::general_purpose::STANDARD.encode(b.encode())),
            signer,
        }
    }
}

/// Cheap, cloneable access to the mesh from other actors and the API.
#[derive(Clone)]
pub struct MeshHandle {
    commands: mpsc::Sender<Command>,
    shared: Arc<MeshShared>,
}

impl MeshHandle {
    /// This node's peer id.
    pub fn local_peer_id(&self) -> PeerId {
        self.shared.local_peer_id
    }

    /// Announces `identity`'s keys from the next beacon on (after a key
    /// rotation): its binding when `announce` (the node's pqc.mode is not
    /// off), and signs with it when post-quantum beacons are on.
    pub fn announce_keys(&self, identity: &Arc<x0tta6bl4_pqc::PqIdentity>, announce: bool) {
        let mut pq = self.shared.pq.write();
        let signer = pq.signer.as_ref().map(|_| identity.clone());
        *pq = PqAnnouncement::new(announce.then(|| identity.binding()), signer);
    }

    /// Whether the swarm listens on at least one address.
    pub fn is_ready(&self) -> bool {
        self.shared.ready.load(Ordering::Acquire)
    }

    /// Live neighbours and their frame queues.
    pub fn neighbours(&self) -> Arc<Neighbours> {
        self.shared.neighbours.clone()
    }

    /// Current listen addresses and links.
    pub async fn status(&self) -> Result<MeshStatus, MeshError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Status(tx))
            .await
            .map_err(|_| MeshError::Stopped)?;
        rx.await.map_err(|_| MeshError::Stopped)
    }

    /// Dials an address.
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), MeshError> {
        self.commands
            .send(Command::Dial(addr))
            .await
            .map_err(|_| MeshError::Stopped)
    }

    /// Dials `peer` at `addrs` and waits until a connection is up (Ok at once if
    /// one already is), the dial fails, or `timeout` passes.
    pub async fn dial_peer(&self, peer: PeerId, addrs: Vec<Multiaddr>, timeout: Duration) -> Result<(), MeshError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::DialPeer(peer, addrs, tx))
            .await
            .map_err(|_| MeshError::Stopped)?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(answer) => answer.map_err(|_| MeshError::Stopped)?,
            Err(_) => Err(MeshError::Dial(format!("no connection within {timeout:?}"))),
        }
    }

    /// Refuses (`blocked: true`) every connection to and from `peer`, closing
    /// those open now, or accepts them again.
    pub async fn set_blocked(&self, peer: PeerId, blocked: bool) -> Result<(), MeshError> {
        self.commands
            .send(Command::Block(peer, blocked))
            .await
            .map_err(|_| MeshError::Stopped)
    }

    /// Test hook (the API refuses it unless `router.fault_injection`): makes
    /// the event loop, a task of the network runtime, panic.
    pub async fn inject_loop_panic(&self) -> Result<(), MeshError> {
        self.commands.send(Command::Panic).await.map_err(|_| MeshError::Stopped)
    }

    /// Marks the link to `peer` as avoided (or not) in this node's beacons and
    /// local links, so every node weighs it alike and routes stay loop free.
    pub async fn set_avoided(&self, peer: PeerId, avoided: bool) -> Result<(), MeshError> {
        self.commands
            .send(Command::Avoid(peer, avoided))
            .await
            .map_err(|_| MeshError::Stopped)
    }

    /// Hands the mesh the replicated state (before the mesh actor starts: the
    /// loop subscribes to its topic when it starts).
    pub fn set_sync_handler(&self, handler: Arc<dyn SyncHandler>) {
        let _ = self.shared.sync.set(handler);
    }

    /// Publishes a delta on the sync topic; a full command queue drops it
    /// (anti-entropy carries it later).
    pub fn publish_sync(&self, bytes: Vec<u8>) -> Result<(), MeshError> {
        self.commands
            .try_send(Command::PublishSync(bytes))
            .map_err(|e| MeshError::Publish(e.to_string()))
    }

    /// Opens an anti-entropy stream to `peer`.
    pub async fn open_sync_stream(&self, peer: PeerId) -> Result<libp2p::Stream, MeshError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::StreamControl(tx))
            .await
            .map_err(|_| MeshError::Stopped)?;
        let mut control = rx.await.map_err(|_| MeshError::Stopped)?;
        control
            .open_stream(peer, crate::sync::exchange::SYNC_PROTOCOL)
            .await
            .map_err(|e| MeshError::Dial(e.to_string()))
    }

    /// Publishes raw bytes on the beacon topic. Fault-injection hook for tests of
    /// how peers treat garbage beacons; the node never calls it on its own.
    pub async fn publish_raw_beacon(&self, bytes: Vec<u8>) -> Result<(), MeshError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::PublishRaw(bytes, tx))
            .await
            .map_err(|_| MeshError::Stopped)?;
        rx.await.map_err(|_| MeshError::Stopped)?
    }
}

/// What the mesh needs to start.
pub struct MeshParts {
    /// Mesh configuration.
    pub config: MeshConfig,
    /// Node name published in beacons.
    pub name: String,
    /// libp2p identity (from the store).
    pub keypair: Keypair,
    /// The node's database.
    pub store: Store,
    /// Where inbound frames go (the router's data plane).
    pub frames: Arc<dyn FrameHandler>,
    /// Neighbour queues, shared with the router.
    pub neighbours: Arc<Neighbours>,
    /// This node's post-quantum key binding to announce, if any.
    pub pq_binding: Option<x0tta6bl4_pqc::KeyBinding>,
    /// Post-quantum beacons: sign ours with this identity's ML-DSA-65 key and
    /// drop beacons without a valid signature.
    pub pq_beacons: Option<Arc<x0tta6bl4_pqc::PqIdentity>>,
    /// This node's SPIFFE identity: its SVID goes into beacons, and peers'
    /// SVIDs are checked against the trust when `require_svid` is set.
    pub svid: Option<MeshSvid>,
}

/// The SPIFFE identity the mesh presents and checks.
#[derive(Clone)]
pub struct MeshSvid {
    /// The current SVID, carried in beacons.
    pub handle: Arc<crate::svid::SvidHandle>,
    /// The bundle and CRL peers' SVIDs are checked against.
    pub trust: Arc<crate::svid::Trust>,
}

/// Creates the handle; the actor started with [`MeshActor::new`] runs the loop.
pub fn handle(parts: MeshParts) -> MeshHandle {
    self::metrics::describe();
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    let shared = Arc::new(MeshShared {
        local_peer_id: parts.keypair.public().to_peer_id(),
        config: parts.config,
        name: parts.name,
        keypair: parts.keypair,
        store: parts.store,
        neighbours: parts.neighbours,
        frames: parts.frames,
        pq: parking_lot::RwLock::new(PqAnnouncement::new(parts.pq_binding.as_ref(), parts.pq_beacons)),
        ready: AtomicBool::new(false),
        avoided: parking_lot::Mutex::new(std::collections::HashSet::new()),
        listen_pins: listen::ListenPins::default(),
        svid: parts.svid,
        sync: std::sync::OnceLock::new(),
        commands: tokio::sync::Mutex::new(rx),
    });
    MeshHandle { commands: tx, shared }
}

/// Supervised actor that runs the swarm event loop on the network runtime.
pub struct MeshActor {
    handle: MeshHandle,
    router: Recipient<MeshEvent>,
    runtime: tokio::runtime::Handle,
    task: Option<tokio::task::JoinHandle<()>>,
    last_failure: Option<String>,
    restarts: u32,
}

/// Delay before the event loop starts again after its `restarts`-th failure:
/// doubling from 100 ms up to 10 s, so a port that stays taken does not spin.
pub fn restart_backoff(restarts: u32) -> std::time::Duration {
    match restarts {
        0 => std::time::Duration::ZERO,
        n => std::time::Duration::from_millis(100u64.saturating_mul(1 << n.min(8).saturating_sub(1)).min(10_000)),
    }
}

impl MeshActor {
    /// The actor for `handle`, reporting to `router`, running the loop on `runtime`.
    pub fn new(handle: MeshHandle, router: Recipient<MeshEvent>, runtime: tokio::runtime::Handle) -> Self {
        Self {
            handle,
            router,
            runtime,
            task: None,
            last_failure: None,
            restarts: 0,
        }
    }
}

/// The event loop ended; an error stops the actor and a panic is resumed in
/// it, so its guardian restarts it.
#[derive(Message)]
#[rtype(result = "()")]
struct LoopEnded(std::thread::Result<Result<(), MeshError>>);

impl Actor for MeshActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let me = ctx.address();
        let shared = self.handle.shared.clone();
        let router = self.router.clone();
        let delay = restart_backoff(self.restarts);
        self.task = Some(self.runtime.spawn(async move {
            tokio::time::sleep(delay).await;
            // A panic in the loop (a task of the network runtime) is handed to
            // the actor, whose guardian restarts it like any other panic.
            let ended = AssertUnwindSafe(event_loop::run(shared, router)).catch_unwind().await;
            me.do_send(LoopEnded(ended));
        }));
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Supervised for MeshActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        self.handle.shared.ready.store(false, Ordering::Release);
        self.restarts = self.restarts.saturating_add(1);
        if let Some(reason) = self.last_failure.take() {
            tracing::warn!(%reason, "mesh actor restarting");
        }
    }
}

crate::supervised_actor!(MeshActor);

impl Handler<supervision::Restart> for MeshActor {
    type Result = ();

    fn handle(&mut self, msg: supervision::Restart, ctx: &mut Context<Self>) {
        tracing::warn!(reason = %msg.reason, "mesh restart requested");
        self.last_failure = Some(msg.reason);
        actix::ActorContext::stop(ctx);
    }
}

impl Handler<LoopEnded> for MeshActor {
    type Result = ();

    fn handle(&mut self, msg: LoopEnded, ctx: &mut Context<Self>) {
        match msg.0 {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(Ok(())) => tracing::info!("mesh event loop finished"),
            Ok(Err(error)) => {
                crate::errors::report(
                    "mesh",
                    "event_loop",
                    crate::alert::Severity::Critical,
                    &format!("mesh event loop failed: {error}"),
                );
                self.last_failure = Some(error.to_string());
                actix::ActorContext::stop(ctx);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::restart_backoff;
    use std::time::Duration;

    #[test]
    fn restart_backoff_doubles_and_caps() {
        let delays: Vec<u64> = (0..10).map(|n| restart_backoff(n).as_millis() as u64).collect();
        assert_eq!(delays, vec![0, 100, 200, 400, 800, 1_600, 3_200, 6_400, 10_000, 10_000]);
        assert!(restart_backoff(u32::MAX) <= Duration::from_secs(10));
    }
}
