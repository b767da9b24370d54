//! The one task that owns the libp2p `Swarm`.
//!
//! It runs `tokio::select!` over swarm events, the bounded command channel, inbound
//! frame streams and the beacon timer. Other parts of the node talk to it through
//! [`super::MeshHandle`] and hear from it through [`super::MeshEvent`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::Recipient;
use futures::StreamExt;
use libp2p::core::transport::ListenerId;
use libp2p::swarm::{
    dial_opts::{DialOpts, PeerCondition},
    ConnectionId, SwarmEvent,
};
use libp2p::{gossipsub, identify, noise, ping, tcp, yamux, Multiaddr, PeerId, Swarm};
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;

use super::beacon::{Beacon, BeaconError, LinkReport, ValidBeacon, BEACON_TOPIC};
use super::behaviour::{MeshBehaviour, MeshBehaviourEvent};
use super::link_stats::LinkStats;
use super::neighbours::SilenceTimeout;
use super::roles::{LightPeers, Role};
use super::stalls::StallMeter;
use super::streams::{read_frames, write_frames, FRAME_PROTOCOL};
use super::svid_admission::SvidAdmission;
use super::{metrics as m, Command, LightPeer, LinkQuality, MeshError, MeshEvent, MeshShared, MeshStatus, PeerLink};

/// Minimum pause between a redial of the same peer.
const REDIAL_BACKOFF: Duration = Duration::from_secs(2);

/// State of the running event loop.
struct EventLoop {
    swarm: Swarm<MeshBehaviour>,
    shared: Arc<MeshShared>,
    router: Recipient<MeshEvent>,
    topic: gossipsub::IdentTopic,
    /// The replicated state's topic, when it is on.
    sync_topic: Option<gossipsub::IdentTopic>,
    links: HashMap<PeerId, LinkStats>,
    last_dial: HashMap<PeerId, Instant>,
    bootstrap_peers: HashSet<PeerId>,
    seq: u64,
    /// Dials whose outcome someone awaits (the healer), by connection id.
    awaited_dials: HashMap<ConnectionId, oneshot::Sender<Result<(), MeshError>>>,
    /// Open connections: the peer and its address as seen from here (bounded
    /// by the swarm's connection limits).
    connections: HashMap<ConnectionId, (PeerId, Multiaddr)>,
    /// Signature checks of post-quantum beacons, when they are on.
    pq_check: Option<super::pq_beacons::PqBeaconCheck>,
    /// How late the liveness checks ran lately (this node's own stalls).
    stalls: StallMeter,
    /// Peers whose link was closed for silence and whose connections have not
    /// all closed yet (over a dead path the muxer's goodbye can take seconds).
    closing: HashSet<PeerId>,
    /// Connected peers that do not speak the frame protocol (see [`super::roles`]).
    light: LightPeers,
    /// The configured address behind each listener (to pin its port).
    listeners: HashMap<ListenerId, Multiaddr>,
    /// Configured addresses whose previous listen address is still taken,
    /// and since when it is tried again.
    relisten: Vec<(Multiaddr, Instant)>,
    /// The running readers of inbound frame streams.
    inbound: InboundStreams,
    /// Who is admitted by SVID, when `mesh.require_svid` is set.
    svid_check: Option<SvidAdmission>,
}

/// Inbound frame streams read at once per neighbour. Each side keeps one
/// (a writer whose stream failed opens another, and the old one may not have
/// ended here yet); every reader holds a buffer, so a peer opening hundreds of
/// streams only ever has this many read.
const MAX_INBOUND_STREAMS_PER_PEER: usize = 4;

/// The running inbound stream readers of each neighbour, oldest first.
#[derive(Default)]
struct InboundStreams {
    readers: HashMap<PeerId, VecDeque<AbortHandle>>,
}

impl InboundStreams {
    /// Records a new reader of `peer`; over the limit, stops its oldest (the
    /// newest stream is the one its writer uses).
    fn add(&mut self, peer: PeerId, reader: AbortHandle) {
        self.readers.retain(|_, readers| {
            readers.retain(|r| !r.is_finished());
            !readers.is_empty()
        });
        let readers = self.readers.entry(peer).or_default();
        readers.push_back(reader);
        while readers.len() > MAX_INBOUND_STREAMS_PER_PEER {
            if let Some(oldest) = readers.pop_front() {
                tracing::debug!(%peer, "inbound frame streams over the per-peer limit: the oldest stopped");
                oldest.abort();
            }
        }
    }

    /// Stops every reader of `peer`'s frame streams.
    fn stop(&mut self, peer: &PeerId) {
        for reader in self.readers.remove(peer).into_iter().flatten() {
            reader.abort();
        }
    }
}

/// How long a restarted loop keeps trying the port-0 listen port peers know
/// (held until the last connection of the previous run has closed: up to the
/// QUIC idle timeout) before it takes a new one.
const RELISTEN_PATIENCE: Duration = Duration::from_secs(30);

/// Dials awaited at once; more are refused (each healer action awaits one).
const MAX_AWAITED_DIALS: usize = 256;

/// Builds the swarm and runs the loop until the command channel closes or the
/// swarm fails.
pub async fn run(shared: Arc<MeshShared>, router: Recipient<MeshEvent>) -> Result<(), MeshError> {
    let mut commands = shared.commands.lock().await;
    let config = shared.config.clone();
    let transport_error = |e: &dyn std::fmt::Display| MeshError::Transport(e.to_string());
    let swarm_config = |c: libp2p::swarm::Config| c.with_idle_connection_timeout(Duration::from_secs(60));
    let tcp = libp2p::SwarmBuilder::with_existing_identity(shared.keypair.clone())
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| transport_error(&e))?;
    // The same swarm type either way: the builder boxes the transport.
    let swarm = if config.quic {
        tcp.with_quic()
            .with_behaviour(|key| MeshBehaviour::new(key, &config))
            .map_err(|e| transport_error(&e))?
            .with_swarm_config(swarm_config)
            .build()
    } else {
        tcp.with_behaviour(|key| MeshBehaviour::new(key, &config))
            .map_err(|e| transport_error(&e))?
            .with_swarm_config(swarm_config)
            .build()
    };
    let liveness_every = Duration::from_millis(config.keepalive_interval_ms.max(10));
    let svid_check = match (&shared.svid, config.require_svid) {
        (Some(svid), true) => Some(SvidAdmission::new(svid.trust.clone())),
        (None, true) => {
            return Err(MeshError::Transport(
                "mesh.require_svid needs an SVID (svid.enabled)".into(),
            ))
        }
        (_, false) => None,
    };
    let mut event_loop = EventLoop {
        swarm,
        shared: shared.clone(),
        router,
        topic: gossipsub::IdentTopic::new(BEACON_TOPIC),
        sync_topic: shared
            .sync
            .get()
            .map(|_| gossipsub::IdentTopic::new(crate::sync::SYNC_TOPIC)),
        links: HashMap::new(),
        last_dial: HashMap::new(),
        bootstrap_peers: HashSet::new(),
        awaited_dials: HashMap::new(),
        connections: HashMap::new(),
        seq: unix_ms(),
        pq_check: shared.pq.read().signer.as_ref().map(|_| Default::default()),
        stalls: StallMeter::new(liveness_every),
        closing: HashSet::new(),
        light: LightPeers::new(config.max_light_peers),
        listeners: HashMap::new(),
        relisten: Vec::new(),
        inbound: InboundStreams::default(),
        svid_check,
    };
    event_loop.start()?;

    let mut control = event_loop.swarm.behaviour().streams.new_control();
    let mut incoming = control
        .accept(FRAME_PROTOCOL)
        .map_err(|e| MeshError::Transport(e.to_string()))?;
    let mut sync_incoming: futures::stream::BoxStream<'static, (PeerId, libp2p::Stream)> = match shared.sync.get() {
        Some(_) => control
            .accept(crate::sync::exchange::SYNC_PROTOCOL)
            .map_err(|e| MeshError::Transport(e.to_string()))?
            .boxed(),
        None => futures::stream::pending().boxed(),
    };
    let mut beacon_timer = tokio::time::interval(Duration::from_millis(config.beacon_interval_ms.max(50)));
    let mut kad_timer = tokio::time::interval(Duration::from_secs(30));
    let mut liveness_timer = tokio::time::interval(liveness_every);
    let mut redial_timer = tokio::time::interval(REDIAL_BACKOFF);

    loop {
        tokio::select! {
            event = event_loop.swarm.select_next_some() => event_loop.on_swarm_event(event),
            command = commands.recv() => match command {
                Some(command) => event_loop.on_command(command),
                None => return Ok(()),
            },
            Some((peer, stream)) = incoming.next() => event_loop.on_inbound_stream(peer, stream),
            Some((peer, stream)) = sync_incoming.next() => event_loop.on_sync_stream(peer, stream),
            _ = beacon_timer.tick() => event_loop.on_beacon_tick(),
            _ = liveness_timer.tick() => {
                event_loop.close_silent_links();
                event_loop.relisten();
            }
            _ = redial_timer.tick() => event_loop.redial_bootstrap(),
            _ = kad_timer.tick() => {
                // Refreshes the routing table; "no known peers" just means we are alone.
                if let Some(kad) = event_loop.swarm.behaviour_mut().kad.as_mut() {
                    let _ = kad.bootstrap();
                }
            }
        }
    }
}

impl EventLoop {
    fn start(&mut self) -> Result<(), MeshError> {
        self.swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(&self.topic)
            .map_err(|e| MeshError::Transport(e.to_string()))?;
        if let Some(topic) = &self.sync_topic {
            self.swarm
                .behaviour_mut()
                .gossipsub
                .subscribe(topic)
                .map_err(|e| MeshError::Transport(e.to_string()))?;
        }
        for configured in self.shared.config.listen.clone() {
            match self.shared.listen_pins.address_for(&configured) {
                Some(_) => self.relisten.push((configured, Instant::now())),
                None => self.listen_as(&configured, configured.clone())?,
            }
        }
        self.relisten();
        for addr in self.shared.config.bootstrap.clone() {
            if let Some(peer) = peer_of(&addr) {
                self.bootstrap_peers.insert(peer);
                if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
                    kad.add_address(&peer, addr.clone());
                }
            }
            self.dial_addr(addr);
        }
        if self.shared.config.dial_discovered {
            let book = self.shared.store.peer_book().unwrap_or_default();
            for (peer, addrs) in book.into_iter().take(self.shared.config.max_peers) {
                self.dial_peer(peer, addrs);
            }
        }
        Ok(())
    }

    /// Listens on `addr`; the listener is remembered as `configured`'s.
    fn listen_as(&mut self, configured: &Multiaddr, addr: Multiaddr) -> Result<(), MeshError> {
        let id = self.swarm.listen_on(addr.clone()).map_err(|e| MeshError::Listen {
            addr: addr.to_string(),
            reason: e.to_string(),
        })?;
        self.listeners.insert(id, configured.clone());
        Ok(())
    }

    /// Tries again the listen addresses an earlier run of the loop held and
    /// that were still taken. A port-0 address whose port stays taken past
    /// [`RELISTEN_PATIENCE`] gets a new port from the OS; a named port is
    /// tried for as long as it takes.
    fn relisten(&mut self) {
        for (configured, since) in std::mem::take(&mut self.relisten) {
            let earlier = self.shared.listen_pins.address_for(&configured);
            let addr = earlier.clone().unwrap_or_else(|| configured.clone());
            let Err(error) = self.listen_as(&configured, addr.clone()) else {
                continue;
            };
            if since.elapsed() < RELISTEN_PATIENCE {
                tracing::debug!(%addr, %error, "the listen address of the previous run is still taken");
                self.relisten.push((configured, since));
            } else if earlier.is_some_and(|pinned| pinned != configured) {
                tracing::warn!(%addr, "the listen port peers know stayed taken; listening on a new one");
                self.shared.listen_pins.forget(&configured);
                self.relisten.push((configured, Instant::now()));
            } else {
                tracing::warn!(%addr, %error, "cannot listen again; still trying");
                self.relisten.push((configured, Instant::now()));
            }
        }
    }

    fn dial_addr(&mut self, addr: Multiaddr) {
        if let Err(error) = self.swarm.dial(addr.clone()) {
            m::dial_failed();
            tracing::warn!(%addr, %error, "cannot dial");
        }
    }

    fn dial_peer(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        if peer == self.shared.local_peer_id || addrs.is_empty() {
            return;
        }
        if self.last_dial.get(&peer).is_some_and(|t| t.elapsed() < REDIAL_BACKOFF) {
            return;
        }
        self.last_dial.insert(peer, Instant::now());
        let opts = DialOpts::peer_id(peer)
            .addresses(addrs)
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        if let Err(error) = self.swarm.dial(opts) {
            tracing::debug!(%peer, %error, "dial refused");
        }
    }

    /// Dials `peer` and answers `reply` once the outcome is known.
    fn dial_awaited(&mut self, peer: PeerId, addrs: Vec<Multiaddr>, reply: oneshot::Sender<Result<(), MeshError>>) {
        if self.closing.contains(&peer) {
            let _ = reply.send(Err(MeshError::Dial(
                "the link was closed for silence and its connection is still closing; it is dialled again once closed"
                    .into(),
            )));
            return;
        }
        if self.swarm.is_connected(&peer) {
            let _ = reply.send(Ok(()));
            return;
        }
        self.awaited_dials.retain(|_, waiting| !waiting.is_closed());
        if self.awaited_dials.len() >= MAX_AWAITED_DIALS {
            let _ = reply.send(Err(MeshError::Dial("too many dials in flight".into())));
            return;
        }
        let opts = DialOpts::peer_id(peer)
            .addresses(addrs)
            .condition(PeerCondition::Always)
            .build();
        let id = opts.connection_id();
        match self.swarm.dial(opts) {
            Ok(()) => {
                self.awaited_dials.insert(id, reply);
            }
            Err(error) => {
                m::dial_failed();
                let _ = reply.send(Err(MeshError::Dial(error.to_string())));
            }
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Command::Dial(addr) => self.dial_addr(addr),
            Command::DialPeer(peer, addrs, reply) => self.dial_awaited(peer, addrs, reply),
            Command::Block(peer, blocked) => {
                let list = &mut self.swarm.behaviour_mut().blocked;
                if blocked {
                    list.block_peer(peer);
                } else {
                    list.unblock_peer(peer);
                }
                tracing::info!(%peer, blocked, "peer block list changed");
            }
            Command::Panic => panic!("injected panic in the mesh event loop (test hook)"),
            Command::Avoid(peer, avoid) => {
                let changed = {
                    let mut avoided = self.shared.avoided.lock();
                    match avoid {
                        true if avoided.len() < super::MAX_AVOIDED => avoided.insert(peer),
                        true => false,
                        false => avoided.remove(&peer),
                    }
                };
                if changed {
                    tracing::info!(%peer, avoid, "link preference changed; announcing it");
                    self.notify_links();
                    self.publish_beacon();
                }
            }
            Command::PublishSync(bytes) => {
                if let Some(topic) = self.sync_topic.clone() {
                    match self.swarm.behaviour_mut().gossipsub.publish(topic, bytes) {
                        Ok(_) | Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {}
                        Err(error) => tracing::debug!(%error, "delta not published"),
                    }
                }
            }
            Command::StreamControl(reply) => {
                let _ = reply.send(self.swarm.behaviour().streams.new_control());
            }
            Command::PublishRaw(bytes, reply) => {
                let result = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .publish(self.topic.clone(), bytes)
                    .map(|_| ())
                    .map_err(|e| MeshError::Publish(e.to_string()));
                let _ = reply.send(result);
            }
        }
    }

    fn status(&self) -> MeshStatus {
        let losses = self.link_losses();
        let mut peers: Vec<PeerLink> = self
            .links
            .iter()
            .map(|(peer, stats)| PeerLink {
                peer: *peer,
                rtt_ms: stats.rtt_ms(),
                loss: losses.get(peer).copied().unwrap_or(0.0),
                remote_addrs: self.remote_addrs(peer),
                gossip_score: self.swarm.behaviour().gossipsub.peer_score(peer),
            })
            .collect();
        peers.sort_by_key(|p| p.peer);
        let mut light: Vec<LightPeer> = self
            .light
            .iter()
            .map(|(peer, since)| LightPeer {
                peer,
                remote_addrs: self.remote_addrs(&peer),
                gossip_score: self.swarm.behaviour().gossipsub.peer_score(&peer),
                connected_ms: since.as_millis() as u64,
            })
            .collect();
        light.sort_by_key(|p| p.peer);
        MeshStatus {
            peer_id: self.shared.local_peer_id,
            listen_addrs: self.swarm.listeners().cloned().collect(),
            peers,
            light,
            avoided: self.shared.avoided.lock().iter().copied().collect(),
        }
    }

    /// The remote addresses of the open connections to `peer`.
    fn remote_addrs(&self, peer: &PeerId) -> Vec<Multiaddr> {
        self.connections
            .values()
            .filter(|(owner, _)| owner == peer)
            .map(|(_, addr)| addr.clone())
            .collect()
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<MeshBehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { listener_id, address } => {
                tracing::info!(%address, "listening");
                if let Some(configured) = self.listeners.get(&listener_id) {
                    self.shared.listen_pins.record(configured, &address);
                }
                self.shared.ready.store(true, Ordering::Release);
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                connection_id,
                ..
            } => {
                if let Some(reply) = self.awaited_dials.remove(&connection_id) {
                    let _ = reply.send(Ok(()));
                }
                self.connections
                    .insert(connection_id, (peer_id, endpoint.get_remote_address().clone()));
                if self.closing.contains(&peer_id) {
                    // The peer dialled us again while our old connection still
                    // closes. Gossipsub sends its subscriptions on a peer's
                    // first connection only, and the peer's side already counts
                    // this one as first: close it too and start clean.
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                }
                tracing::debug!(peer = %peer_id, addr = %endpoint.get_remote_address(), "connected");
                // A peer known as a mesh node is a link at once: waiting for its
                // identify would keep a link that drops and comes back over a
                // lossy path out of routing and beacons for seconds. Any other
                // peer's link comes up once it shows it speaks the frame
                // protocol (identify, a frame stream or a beacon): see `promote`.
                if self.is_known_node(&peer_id) {
                    self.promote(peer_id);
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                connection_id,
                cause,
                ..
            } => {
                self.connections.remove(&connection_id);
                if num_established == 0 {
                    if self.forget_light(&peer_id) {
                        tracing::debug!(peer = %peer_id, "light peer left");
                    } else if self.shared.neighbours.contains(&peer_id) || self.closing.contains(&peer_id) {
                        tracing::info!(peer = %peer_id, cause = ?cause, "link down");
                        self.link_down(peer_id);
                    }
                }
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id,
                error,
                connection_id,
            } => {
                if let Some(reply) = self.awaited_dials.remove(&connection_id) {
                    let _ = reply.send(Err(MeshError::Dial(error.to_string())));
                }
                m::dial_failed();
                tracing::debug!(peer = ?peer_id, %error, "dial failed");
                // A peer that cannot be reached leaves Kademlia's table (it is
                // added again from its identify if it comes back), so peer
                // queries stop dialling it. Beacons and bootstrap still can.
                if let Some(peer) = peer_id.filter(|p| !self.swarm.is_connected(p)) {
                    if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
                        kad.remove_peer(&peer);
                    }
                }
            }
            SwarmEvent::Behaviour(MeshBehaviourEvent::Gossipsub(gossipsub::Event::Message {
                message,
                message_id,
                propagation_source,
            })) => {
                let on_sync = self.sync_topic.as_ref().is_some_and(|t| t.hash() == message.topic);
                let verdict = match (on_sync, self.shared.sync.get()) {
                    (true, Some(sync)) => sync.on_gossip(message.source, &message.data),
                    _ => self.on_beacon(&message),
                };
                m::gossip_verdict(verdict_label(&verdict));
                self.swarm.behaviour_mut().gossipsub.report_message_validation_result(
                    &message_id,
                    &propagation_source,
                    verdict,
                );
            }
            SwarmEvent::Behaviour(MeshBehaviourEvent::Ping(ping::Event { peer, result, .. })) => {
                // Only live links: a ping failing on a connection that just closed
                // must not bring the link back as a ghost.
                if let Some(stats) = self.links.get_mut(&peer) {
                    match result {
                        Ok(rtt) => stats.record_success(rtt),
                        Err(_) => stats.record_failure(),
                    }
                }
            }
            SwarmEvent::Behaviour(MeshBehaviourEvent::Identify(identify::Event::Received {
                peer_id, info, ..
            })) => {
                // Only peers that serve our Kademlia go into its table: a light
                // peer's addresses there would be dialled long after it left.
                if info.protocols.contains(&super::behaviour::KAD_PROTOCOL) {
                    if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
                        for addr in &info.listen_addrs {
                            kad.add_address(&peer_id, addr.clone());
                        }
                    }
                }
                match Role::from_protocols(&info.protocols) {
                    Role::Neighbour => self.promote(peer_id),
                    Role::Light => self.admit_light(peer_id),
                }
            }
            _ => {}
        }
    }

    /// Makes connected `peer` a routing neighbour, if it is not one already
    /// (and not closing).
    fn promote(&mut self, peer: PeerId) {
        if !self.admits(&peer) {
            return;
        }
        if self.shared.neighbours.contains(&peer) || self.closing.contains(&peer) || !self.swarm.is_connected(&peer) {
            return;
        }
        self.forget_light(&peer);
        self.link_up(peer);
    }

    /// Whether `peer` may carry frames: always, unless `mesh.require_svid`
    /// is set and its SVID has not been accepted (yet, or any more).
    fn admits(&self, peer: &PeerId) -> bool {
        self.svid_check.as_ref().is_none_or(|check| check.is_admitted(peer))
    }

    /// Reads frames from `peer`'s new inbound stream, if it is admitted
    /// (a refused stream is reset; its writer opens another later).
    fn on_inbound_stream(&mut self, peer: PeerId, stream: libp2p::Stream) {
        if !self.admits(&peer) {
            tracing::debug!(%peer, "frame stream of a node without an accepted SVID refused");
            return;
        }
        self.promote(peer);
        let heard = self.shared.neighbours.liveness(&peer);
        let (frames, max_bytes) = (self.shared.frames.clone(), self.shared.config.max_frame_bytes);
        let reader = read_frames(peer, stream, frames, heard, max_bytes);
        self.inbound.add(peer, tokio::spawn(reader).abort_handle());
    }

    /// Hands an anti-entropy stream of a routing neighbour to the replicated
    /// state (a light peer's would hold garbage collection back as a replica).
    fn on_sync_stream(&mut self, peer: PeerId, stream: libp2p::Stream) {
        match self.shared.sync.get() {
            Some(sync) if self.admits(&peer) && self.shared.neighbours.contains(&peer) => {
                sync.clone().serve(peer, stream)
            }
            _ => tracing::debug!(%peer, "anti-entropy stream refused"),
        }
    }

    /// Takes `peer`, no longer admitted, out of the mesh: its frame streams
    /// stop, its link goes and the router forgets it.
    fn exclude(&mut self, peer: PeerId) {
        self.inbound.stop(&peer);
        if self.shared.neighbours.contains(&peer) {
            self.link_gone(peer);
        }
        self.notify(MeshEvent::Excluded(peer));
    }

    /// Checks the SVID of `beacon`'s sender when SVIDs are required; a
    /// refused sender is excluded.
    fn check_svid(&mut self, beacon: ValidBeacon) -> Result<ValidBeacon, BeaconError> {
        let Some(check) = &mut self.svid_check else {
            return Ok(beacon);
        };
        let was_admitted = check.is_admitted(&beacon.peer);
        let Err(error) = check.check(&beacon, SystemTime::now()) else {
            return Ok(beacon);
        };
        if was_admitted {
            let reason = match &error {
                BeaconError::SvidRefused(refusal) => refusal.reason(),
                other => other.label(),
            };
            tracing::warn!(peer = %beacon.peer, %error, "node excluded from the mesh");
            m::svid_excluded(reason);
        }
        self.exclude(beacon.peer);
        Err(error)
    }

    /// Excludes the admitted nodes whose SVID a new CRL revoked or that
    /// expired.
    fn recheck_svids(&mut self) {
        let Some(check) = &mut self.svid_check else {
            return;
        };
        for (peer, refusal) in check.recheck(SystemTime::now()) {
            tracing::warn!(%peer, %refusal, "node excluded from the mesh: its SVID no longer validates");
            m::svid_excluded(refusal.reason());
            self.exclude(peer);
        }
    }

    /// Whether `peer` is a bootstrap peer or announced itself in a valid beacon
    /// (now or before: the peer book keeps them).
    fn is_known_node(&self, peer: &PeerId) -> bool {
        self.bootstrap_peers.contains(peer) || self.shared.store.knows_peer(peer).unwrap_or(false)
    }

    /// Forgets `peer` as a light peer (it left or turned out to be a
    /// neighbour); whether it was one.
    fn forget_light(&mut self, peer: &PeerId) -> bool {
        let was = self.light.remove(peer);
        if was {
            m::light_peers(self.light.len());
        }
        was
    }

    /// Keeps connected `peer`, which does not speak the frame protocol, as a
    /// light peer, or disconnects it when `mesh.max_light_peers` are connected.
    fn admit_light(&mut self, peer: PeerId) {
        if self.shared.neighbours.contains(&peer) {
            return;
        }
        match self.light.admit(peer) {
            Ok(()) => {
                tracing::debug!(%peer, "light peer");
                m::light_peers(self.light.len());
            }
            Err(full) => {
                tracing::info!(%peer, %full, "light peer refused");
                m::light_refused();
                let _ = self.swarm.disconnect_peer_id(peer);
            }
        }
    }

    fn link_up(&mut self, peer: PeerId) {
        self.links.entry(peer).or_default();
        let (tx, rx) = mpsc::channel(self.shared.config.frame_queue.max(1));
        self.shared.neighbours.insert(peer, tx);
        let control = self.swarm.behaviour().streams.new_control();
        let keepalive = Duration::from_millis(self.shared.config.keepalive_interval_ms.max(10));
        let liveness = self.shared.neighbours.liveness(&peer);
        tokio::spawn(write_frames(peer, control, rx, keepalive, liveness));
        m::peers_connected(self.shared.neighbours.len());
        self.notify_links();
        if let Some(sync) = self.shared.sync.get() {
            sync.link_up(peer);
        }
    }

    /// The last connection to `peer` closed: the link is gone (if a silence
    /// close had not already taken it out) and is dialled again.
    fn link_down(&mut self, peer: PeerId) {
        if !self.closing.remove(&peer) {
            self.link_gone(peer);
        }
        if self.bootstrap_peers.contains(&peer) || self.shared.config.dial_discovered {
            if let Some(addrs) = self.known_addrs(&peer) {
                self.dial_peer(peer, addrs);
            }
        }
    }

    /// Takes the link to `peer` out of the data plane and the routes, and
    /// tells the mesh.
    fn link_gone(&mut self, peer: PeerId) {
        self.shared.neighbours.remove(&peer);
        self.links.remove(&peer);
        m::link_loss(&peer, 0.0);
        m::peers_connected(self.shared.neighbours.len());
        self.notify(MeshEvent::LinkDown(peer));
        self.notify_links();
        // Tell the mesh at once instead of waiting for the next beacon round.
        self.publish_beacon();
    }

    fn known_addrs(&self, peer: &PeerId) -> Option<Vec<Multiaddr>> {
        let from_bootstrap: Vec<Multiaddr> = self
            .shared
            .config
            .bootstrap
            .iter()
            .filter(|a| peer_of(a) == Some(*peer))
            .cloned()
            .collect();
        if !from_bootstrap.is_empty() {
            return Some(from_bootstrap);
        }
        self.shared
            .store
            .peer_book()
            .ok()?
            .into_iter()
            .find(|(p, _)| p == peer)
            .map(|(_, addrs)| addrs)
    }

    /// Checks a beacon and hands a valid one on; the verdict goes back to
    /// gossipsub, which forwards only accepted messages.
    fn on_beacon(&mut self, message: &gossipsub::Message) -> gossipsub::MessageAcceptance {
        let checked = Beacon::validate(&message.data, message.source)
            .and_then(|beacon| match &mut self.pq_check {
                Some(check) => check.check(&beacon).map(|()| beacon),
                None => Ok(beacon),
            })
            .and_then(|beacon| self.check_svid(beacon));
        let beacon = match checked {
            Ok(beacon) => beacon,
            Err(error) => {
                m::beacon_rejected(error.label());
                tracing::warn!(source = ?message.source, %error, "beacon rejected");
                return match error {
                    // A classical beacon is honest where post-quantum beacons
                    // are not required: not forwarded here, but no penalty for
                    // the relay (a mesh in the middle of turning them on).
                    BeaconError::PqUnsigned => gossipsub::MessageAcceptance::Ignore,
                    // Another node may judge an SVID before a new CRL reaches
                    // it, or not require SVIDs: its relaying is no offence.
                    BeaconError::SvidMissing | BeaconError::SvidRefused(_) | BeaconError::SvidNotOwn(_) => {
                        gossipsub::MessageAcceptance::Ignore
                    }
                    _ => gossipsub::MessageAcceptance::Reject,
                };
            }
        };
        if beacon.peer == self.shared.local_peer_id {
            return gossipsub::MessageAcceptance::Ignore;
        }
        // A connected peer that announces itself is a node of the mesh.
        self.promote(beacon.peer);
        m::beacon_received();
        let config = &self.shared.config;
        if let Err(error) = self
            .shared
            .store
            .remember_peer(&beacon.peer, &beacon.addrs, config.peer_book_limit)
        {
            tracing::warn!(%error, "cannot store peer book entry");
        }
        let wants_dial = config.dial_discovered
            && !self.shared.neighbours.contains(&beacon.peer)
            && self.shared.neighbours.len() < config.max_peers;
        if wants_dial {
            self.dial_peer(beacon.peer, beacon.addrs.clone());
        }
        self.notify(MeshEvent::Beacon(beacon));
        gossipsub::MessageAcceptance::Accept
    }

    /// Dials bootstrap peers that are not connected: a partition that heals, or a
    /// first dial lost on a bad link, must not leave a node cut off for good.
    fn redial_bootstrap(&mut self) {
        // A dial older than the backoff no longer holds anything back; without
        // this, every peer id ever announced would stay here.
        self.last_dial.retain(|_, at| at.elapsed() < REDIAL_BACKOFF);
        let missing: Vec<(PeerId, Multiaddr)> = self
            .shared
            .config
            .bootstrap
            .iter()
            .filter_map(|addr| Some((peer_of(addr)?, addr.clone())))
            .filter(|(peer, _)| !self.shared.neighbours.contains(peer))
            .collect();
        for (peer, addr) in missing {
            self.dial_peer(peer, vec![addr]);
        }
    }

    /// Closes links whose neighbour has been silent past its timeout
    /// (`link_timeout_ms`, stretched by the link's jitter and this node's own
    /// stalls: see [`SilenceTimeout`]).
    fn close_silent_links(&mut self) {
        let timeout = SilenceTimeout {
            base: Duration::from_millis(self.shared.config.link_timeout_ms),
            local_stall: self.stalls.observe(Instant::now()),
        };
        for (peer, timeout) in self.shared.neighbours.silent_for(timeout) {
            tracing::info!(%peer, ?timeout, "neighbour silent, closing link");
            m::link_closed_silent(&peer);
            let _ = self.swarm.disconnect_peer_id(peer);
            // Closing waits for the muxer's goodbye, which a dead path can hold
            // up for seconds: frames and routes leave the link now, and it is
            // dialled again once every connection to the peer has closed.
            self.closing.insert(peer);
            self.link_gone(peer);
        }
        // Keeps the stalled shares the beats send back current.
        self.shared.neighbours.stalled_shares(self.late_after());
    }

    /// How late a beat must come to count as held up by a loss: the configured
    /// `late_after_ms` plus this node's own recent stalls, which delay reading
    /// every neighbour's beats alike.
    fn late_after(&self) -> Duration {
        Duration::from_millis(self.shared.config.late_after_ms) + self.stalls.longest()
    }

    /// Each link's loss: recent ping loss or the share of the last half second its
    /// stream stood stalled by losses (either way), whichever is higher.
    fn link_losses(&self) -> HashMap<PeerId, f64> {
        let late = self.shared.neighbours.stalled_shares(self.late_after());
        self.links
            .iter()
            .map(|(peer, stats)| (*peer, stats.loss().max(late.get(peer).copied().unwrap_or(0.0))))
            .collect()
    }

    fn on_beacon_tick(&mut self) {
        self.recheck_svids();
        self.notify_links();
        self.publish_beacon();
    }

    fn link_reports(&self) -> Vec<LinkQuality> {
        let losses = self.link_losses();
        let avoided = self.shared.avoided.lock();
        self.links
            .iter()
            .filter(|(peer, _)| self.shared.neighbours.contains(peer))
            .map(|(peer, stats)| {
                let loss = losses.get(peer).copied().unwrap_or(0.0);
                m::link_loss(peer, loss);
                LinkQuality {
                    peer: *peer,
                    rtt_ms: stats.routing_rtt_ms(),
                    loss,
                    avoided: avoided.contains(peer),
                }
            })
            .collect()
    }

    fn notify_links(&mut self) {
        let links = self.link_reports();
        self.notify(MeshEvent::LocalLinks(links));
    }

    fn notify(&self, event: MeshEvent) {
        if self.router.try_send(event).is_err() {
            m::event_dropped();
        }
    }

    /// This node's current SVID chain for beacons, base64 (empty without one).
    fn svid_chain(&self) -> Vec<String> {
        use base64::Engine as _;
        let held = self
            .shared
            .svid
            .as_ref()
            .and_then(|svid| svid.handle.current(SystemTime::now()));
        held.map(|held| vec![base64::engine::general_purpose::STANDARD.encode(&held.svid.cert_der)])
            .unwrap_or_default()
    }

    fn publish_beacon(&mut self) {
        let pq = self.shared.pq.read().clone();
        self.seq += 1;
        let beacon = Beacon {
            peer_id: self.shared.local_peer_id.to_string(),
            name: self.shared.name.clone(),
            addrs: self
                .swarm
                .listeners()
                .take(super::beacon::MAX_ADDRS)
                .map(ToString::to_string)
                .collect(),
            seq: self.seq,
            timestamp_ms: unix_ms(),
            links: self
                .link_reports()
                .into_iter()
                .map(|link| LinkReport {
                    peer_id: link.peer.to_string(),
                    rtt_ms: link.rtt_ms,
                    loss: link.loss,
                    avoided: link.avoided,
                })
                .collect(),
            pq_binding: pq.binding,
            pq_signature: None,
            svid_chain: self.svid_chain(),
        };
        let (bytes, left_out) = beacon.encode_within_limits(pq.signer.as_deref());
        if left_out > 0 {
            tracing::warn!(left_out, "more links than a beacon can list: the weakest left out");
        }
        match self.swarm.behaviour_mut().gossipsub.publish(self.topic.clone(), bytes) {
            Ok(_) => m::beacon_published(),
            // Alone in the mesh: nobody to tell yet.
            Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {}
            Err(error) => tracing::debug!(%error, "beacon not published"),
        }
    }
}

/// The metric label of a gossip verdict.
fn verdict_label(verdict: &gossipsub::MessageAcceptance) -> &'static str {
    match verdict {
        gossipsub::MessageAcceptance::Accept => "accept",
        gossipsub::MessageAcceptance::Reject => "reject",
        gossipsub::MessageAcceptance::Ignore => "ignore",
    }
}

/// The peer id at the end of a `/p2p/<id>` multiaddr.
fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        libp2p::multiaddr::Protocol::P2p(peer) => Some(peer),
        _ => None,
    })
}

/// Current Unix time in milliseconds.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn over_the_per_peer_limit_the_oldest_inbound_reader_is_stopped() {
        let (mut inbound, peer, other) = (InboundStreams::default(), PeerId::random(), PeerId::random());
        let idle = || tokio::spawn(std::future::pending::<()>()).abort_handle();
        let readers: Vec<AbortHandle> = (0..=MAX_INBOUND_STREAMS_PER_PEER).map(|_| idle()).collect();
        for reader in &readers {
            inbound.add(peer, reader.clone());
        }
        inbound.add(other, idle());
        tokio::task::yield_now().await;
        assert!(readers[0].is_finished(), "the oldest of one too many is stopped");
        assert!(readers[1..].iter().all(|r| !r.is_finished()), "the newest keep reading");
        assert_eq!(inbound.readers[&peer].len(), MAX_INBOUND_STREAMS_PER_PEER);
        assert_eq!(inbound.readers[&other].len(), 1, "another peer has its own share");
    }
}
