//! The node's replica ([`SyncNode`], shared by the API, the mesh's event loop and
//! the actor) and the supervised [`SyncActor`] that runs anti-entropy, garbage
//! collection and the effects of the shared keys.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix::{Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, Recipient, Supervised, WrapFuture};
use libp2p::{gossipsub::MessageAcceptance, identity::Keypair, PeerId};
use rand::seq::SliceRandom;
use serde::Serialize;

use super::crdt::{Intent, Replica};
use super::delta::SignedDelta;
use super::effects::Effects;
use super::exchange::{self, Exchanged};
use super::replica::{Answer, Clock, Collected, Received, ReplicaState};
use super::{metrics as m, persist::Persist, SyncConfig, SyncError};
use crate::mesh::{unix_ms, MeshHandle, SyncHandler};
use crate::policy::Policy;
use crate::store::Store;

/// The path the policy's `admin` rule sees for writes to `key`, local or replicated.
pub fn state_path(key: &str) -> String {
    format!("/api/v1/state/{key}")
}

/// The node's replica and what it needs to check and sign deltas.
pub struct SyncNode {
    replica: parking_lot::Mutex<ReplicaState>,
    keypair: Keypair,
    me: PeerId,
    policy: Option<Arc<Policy>>,
    config: SyncConfig,
    mesh: MeshHandle,
    notices: OnceLock<Recipient<Notice>>,
}

impl SyncNode {
    /// The replica kept in `store` (in memory without one), writing as `keypair`
    /// and publishing over `mesh`, taking deltas only from writers `policy`
    /// lets write. Hand it to the mesh with [`MeshHandle::set_sync_handler`].
    pub fn open(
        config: SyncConfig,
        keypair: Keypair,
        store: Option<&Store>,
        policy: Option<Arc<Policy>>,
        mesh: MeshHandle,
    ) -> Result<Arc<Self>, SyncError> {
        m::describe();
        let me = keypair.public().to_peer_id();
        let replica = match store {
            Some(store) => ReplicaState::load(me.to_string(), config.limits(), Persist::open(store)?)?,
            None => ReplicaState::new(me.to_string(), config.limits()),
        };
        Ok(Arc::new(Self {
            replica: parking_lot::Mutex::new(replica),
            keypair,
            me,
            policy,
            config,
            mesh,
            notices: OnceLock::new(),
        }))
    }

    /// The configuration.
    pub fn config(&self) -> &SyncConfig {
        &self.config
    }

    /// Writes `intent` to `key` here and publishes the delta (one the gossip
    /// loses comes back by anti-entropy); the key's new value.
    pub fn write(&self, key: &str, intent: Intent) -> Result<EntryView, SyncError> {
        let signed = self.replica.lock().write(key, intent, unix_ms(), &self.keypair);
        match signed {
            Ok(signed) => {
                m::delta("out", "applied");
                if let Err(error) = self.mesh.publish_sync(signed.encode()) {
                    tracing::debug!(%error, "delta not published now; anti-entropy carries it");
                }
                self.notify(Notice::Changed(vec![key.to_string()]));
                self.entry(key).ok_or_else(|| SyncError::NotFound(key.to_string()))
            }
            Err(error) => {
                m::delta("out", error.reason());
                Err(error)
            }
        }
    }

    /// This replica's version vector.
    pub fn clock(&self) -> Clock {
        self.replica.lock().clock().clone()
    }

    /// Records `peer`'s version vector.
    pub fn heard(&self, peer: &str, clock: Clock) {
        self.replica.lock().heard(&peer.to_string(), clock, unix_ms());
    }

    /// What the replica with `clock` lacks.
    pub fn answer(&self, clock: &Clock) -> Answer {
        self.replica.lock().answer(clock, exchange::MAX_DELTAS_PER_ANSWER)
    }

    /// Applies what `from` sent in an exchange; the deltas applied.
    pub fn take(&self, from: &str, answer: Answer) -> usize {
        match answer {
            Answer::Deltas { deltas, .. } => deltas
                .into_iter()
                .filter(|signed| matches!(self.receive(signed.clone()), Ok(Received::Applied(_))))
                .count(),
            Answer::Full(snapshot) => {
                if let Err(error) = self.permits(from) {
                    m::exchange("refused", "full");
                    tracing::warn!(%from, %error, "state transfer refused");
                    return 0;
                }
                match self.replica.lock().install(snapshot, unix_ms()) {
                    Ok(changed) => {
                        tracing::info!(%from, changed = changed.len(), "whole state merged");
                        self.notify(Notice::Changed(changed));
                        1
                    }
                    Err(error) => {
                        m::exchange("refused", "full");
                        tracing::warn!(%from, %error, "state transfer refused");
                        0
                    }
                }
            }
        }
    }

    /// Takes a delta off the wire (gossip or an exchange): signature, writer,
    /// policy, then the replica; counted by result.
    pub fn receive(&self, signed: SignedDelta) -> Result<Received, SyncError> {
        let outcome = signed.open().and_then(|delta| {
            self.permits(&delta.writer)?;
            let (at_ms, writer) = (delta.at_ms, delta.writer.clone());
            let received = self.replica.lock().receive(signed, delta, unix_ms())?;
            if matches!(received, Received::Applied(_)) && writer != self.me.to_string() {
                m::lag(unix_ms().saturating_sub(at_ms) as f64 / 1_000.0);
            }
            Ok(received)
        });
        match &outcome {
            Ok(Received::Applied(changed)) => {
                m::delta("in", "applied");
                self.notify(Notice::Changed(changed.clone()));
            }
            Ok(Received::Duplicate) => m::delta("in", "duplicate"),
            Ok(Received::Buffered) => m::delta("in", "buffered"),
            Err(error) => {
                m::delta("in", error.reason());
                tracing::debug!(%error, "delta refused");
            }
        }
        outcome
    }

    /// Whether the policy lets `writer` write replicated state.
    fn permits(&self, writer: &str) -> Result<(), SyncError> {
        match &self.policy {
            Some(policy) if policy.admin_denied("PUT", &state_path("*"), writer, None) => {
                Err(SyncError::Denied(writer.to_string()))
            }
            _ => Ok(()),
        }
    }

    /// Garbage collection (see [`ReplicaState::collect`]).
    pub fn collect(&self) -> Result<Collected, SyncError> {
        let horizon = self.config.gc_horizon_secs.saturating_mul(1_000);
        self.replica.lock().collect(unix_ms(), horizon)
    }

    /// The state for the API.
    pub fn view(&self) -> StateView {
        let replica = self.replica.lock();
        let now = unix_ms();
        let entries: Vec<EntryView> = replica
            .entries()
            .iter()
            .map(|(key, entry)| EntryView::of(key, entry))
            .collect();
        StateView {
            replica: self.me.to_string(),
            clock: replica.clock().clone(),
            conflicts: entries.iter().filter(|e| e.conflict).map(|e| e.key.clone()).collect(),
            entries,
            log_deltas: replica.log_len(),
            pending_deltas: replica.pending_len(),
            state_bytes: replica.state_bytes(),
            replicas: replica
                .live_peers(now, self.config.gc_horizon_secs.saturating_mul(1_000))
                .into_iter()
                .map(|(peer, heard)| (peer, now.saturating_sub(heard)))
                .collect(),
        }
    }

    /// One key for the API.
    pub fn entry(&self, key: &str) -> Option<EntryView> {
        self.replica.lock().get(key).map(|entry| EntryView::of(key, entry))
    }

    /// A set's members (empty when the key is absent).
    pub fn members(&self, key: &str) -> Vec<String> {
        self.replica
            .lock()
            .get(key)
            .map(|e| e.crdt.members())
            .unwrap_or_default()
    }

    /// Who added `member` to set `key`.
    pub fn adders(&self, key: &str, member: &str) -> Vec<Replica> {
        self.replica
            .lock()
            .get(key)
            .map(|e| e.crdt.adders(member))
            .unwrap_or_default()
    }

    /// A register's value (the JSON of an LWW register).
    pub fn value(&self, key: &str) -> Option<serde_json::Value> {
        self.replica.lock().get(key).map(|e| e.crdt.view())
    }

    /// This node's replica name.
    pub fn me(&self) -> PeerId {
        self.me
    }

    fn notify(&self, notice: Notice) {
        if let Some(actor) = self.notices.get() {
            actor.do_send(notice);
        }
    }
}

impl SyncHandler for SyncNode {
    fn on_gossip(&self, source: Option<PeerId>, data: &[u8]) -> MessageAcceptance {
        // `receive` checks the signature: parsing is all that happens here.
        let signed = match SignedDelta::parse(data) {
            Ok(signed) => signed,
            Err(error) => {
                m::delta("in", error.reason());
                return MessageAcceptance::Reject;
            }
        };
        match self.receive(signed) {
            Ok(Received::Buffered) => {
                // A gap: what comes before is fetched from the one who relayed it.
                if let Some(peer) = source {
                    self.notify(Notice::Exchange(peer));
                }
                MessageAcceptance::Accept
            }
            Ok(_) => MessageAcceptance::Accept,
            Err(SyncError::Full(_) | SyncError::Store(_)) => MessageAcceptance::Ignore,
            Err(_) => MessageAcceptance::Reject,
        }
    }

    fn serve(self: Arc<Self>, peer: PeerId, mut stream: libp2p::Stream) {
        tokio::spawn(async move {
            let answered = tokio::time::timeout(
                EXCHANGE_TIMEOUT,
                exchange::respond(&self, &peer.to_string(), &mut stream),
            )
            .await;
            match answered {
                Ok(Ok(done)) => m::exchange("ok", if done.full_received > 0 { "full" } else { "deltas" }),
                Ok(Err(error)) => {
                    m::exchange("failed", "answer");
                    tracing::debug!(%peer, %error, "anti-entropy answer failed");
                }
                Err(_) => m::exchange("failed", "timeout"),
            }
        });
    }

    fn link_up(&self, peer: PeerId) {
        self.notify(Notice::Exchange(peer));
    }
}

/// Longest an exchange may take.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);

/// What the replica tells the actor.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub enum Notice {
    /// These keys changed.
    Changed(Vec<String>),
    /// Run anti-entropy with this peer (a new link, a gap).
    Exchange(PeerId),
}

/// The replicated state as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct StateView {
    /// This replica (its peer id).
    pub replica: String,
    /// Its version vector: writes applied per writer.
    pub clock: Clock,
    /// Keys whose concurrent values wait for an operator.
    pub conflicts: Vec<String>,
    /// Every key.
    pub entries: Vec<EntryView>,
    /// Deltas the log holds for anti-entropy.
    pub log_deltas: usize,
    /// Early deltas waiting for the ones before them.
    pub pending_deltas: usize,
    /// Bytes of the state.
    pub state_bytes: usize,
    /// Replicas heard within the GC horizon, with milliseconds since.
    pub replicas: Vec<(String, u64)>,
}

/// One key as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct EntryView {
    /// The key.
    pub key: String,
    /// How it merges.
    pub kind: super::KeyKind,
    /// The value (every concurrent value of a multi-value key; a set's members).
    pub value: serde_json::Value,
    /// More than one concurrent value.
    pub conflict: bool,
    /// The last write of each writer to it.
    pub dots: super::crdt::Dots,
}

impl EntryView {
    fn of(key: &str, entry: &super::replica::Entry) -> Self {
        Self {
            key: key.to_string(),
            kind: entry.crdt.kind(),
            value: entry.crdt.view(),
            conflict: entry.crdt.concurrent_values() > 1,
            dots: entry.dots.clone(),
        }
    }
}

/// The supervised actor: anti-entropy rounds, garbage collection, effects.
pub struct SyncActor {
    node: Arc<SyncNode>,
    mesh: MeshHandle,
    effects: Effects,
    exchanging: HashSet<PeerId>,
}

impl SyncActor {
    /// The actor of `node`, exchanging over `mesh`, putting keys in force with `effects`.
    pub fn new(node: Arc<SyncNode>, mesh: MeshHandle, effects: Effects) -> Self {
        Self {
            node,
            mesh,
            effects,
            exchanging: HashSet::new(),
        }
    }

    /// One anti-entropy exchange with `peer`, unless one runs already; another
    /// follows at once while the peer has more.
    fn exchange(&mut self, peer: PeerId, ctx: &mut Context<Self>) {
        if !self.exchanging.insert(peer) {
            return;
        }
        let (node, mesh) = (self.node.clone(), self.mesh.clone());
        let run = async move {
            let mut stream = mesh.open_sync_stream(peer).await.map_err(|e| e.to_string())?;
            tokio::time::timeout(
                EXCHANGE_TIMEOUT,
                exchange::initiate(&node, &peer.to_string(), &mut stream),
            )
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|e| e.to_string())
        };
        ctx.spawn(
            run.into_actor(self)
                .map(move |done: Result<Exchanged, String>, actor, ctx| {
                    actor.exchanging.remove(&peer);
                    match done {
                        Ok(done) => {
                            m::exchange("ok", if done.full_received > 0 { "full" } else { "deltas" });
                            tracing::debug!(%peer, ?done, "anti-entropy exchange");
                            if done.more {
                                actor.exchange(peer, ctx);
                            }
                        }
                        Err(error) => {
                            m::exchange("failed", "open");
                            tracing::debug!(%peer, %error, "anti-entropy exchange failed");
                        }
                    }
                }),
        );
    }

    /// A round: anti-entropy with one neighbour, garbage collection, expired
    /// quarantines, metrics.
    fn round(&mut self, ctx: &mut Context<Self>) {
        let neighbours = self.mesh.neighbours().peers();
        if let Some(peer) = neighbours.choose(&mut rand::thread_rng()) {
            self.exchange(*peer, ctx);
        }
        match self.node.collect() {
            Ok(collected) => {
                m::collected("deltas", collected.deltas);
                m::collected("keys", collected.keys);
            }
            Err(error) => tracing::warn!(%error, "garbage collection failed"),
        }
        self.effects.expire(&self.node);
        m::state_bytes(self.node.replica.lock().state_bytes());
    }
}

impl Actor for SyncActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let _ = self.node.notices.set(ctx.address().recipient());
        self.effects.apply(&self.node, None);
        let every = Duration::from_secs(self.node.config.anti_entropy_secs.max(1));
        ctx.run_interval(every, |actor, ctx| actor.round(ctx));
    }
}

impl Supervised for SyncActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.exchanging.clear();
    }
}

crate::supervised_actor!(SyncActor);

impl Handler<Notice> for SyncActor {
    type Result = ();

    fn handle(&mut self, notice: Notice, ctx: &mut Context<Self>) {
        match notice {
            Notice::Changed(keys) => self.effects.apply(&self.node, Some(&keys)),
            Notice::Exchange(peer) => self.exchange(peer, ctx),
        }
    }
}
