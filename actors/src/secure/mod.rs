//! End-to-end sessions between the source and the destination of routed
//! messages (see `x0tta6bl4-pqc` for the handshake and frame format).
//!
//! [`Sessions`] sits beside the forwarder: an outgoing message to a peer with
//! an established session is sealed at once; otherwise it waits in a small
//! per-peer queue while a handshake runs (Init, Reply, Finish travel as
//! `Handshake` frames over the same routes). Transit nodes see the routing
//! header and an opaque payload; the header's source, destination and message
//! id are authenticated with the payload. Every table here is bounded and
//! least recently used entries go first.
//!
//! Sessions end: a rekey starts a new handshake after `rekey_after_secs`, the
//! previous session still opens frames for `handshake_timeout_ms`, and a
//! session past three rekey intervals neither seals nor opens (a path that
//! drops handshake frames cannot keep one key in use). Peers' key bindings are
//! kept in sled ([`bindings`]), newest epoch only.

pub mod bindings;
pub mod config;
mod metrics;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use libp2p::identity::PublicKey;
use libp2p::PeerId;
use lru::LruCache;
use parking_lot::Mutex;
use x0tta6bl4_pqc::cookie::CookieJar;
use x0tta6bl4_pqc::handshake::finish_session_id;
use x0tta6bl4_pqc::session::frame_header;
use x0tta6bl4_pqc::{
    Initiator, KeyBinding, MessageKind, PeerKeys, PqIdentity, PqcMode, Reject, RekeyPolicy, Responder, Response,
    Session,
};

use bindings::BindingBook;

pub use config::PqcConfig;
pub use metrics::describe;

use crate::alert::{Alert, Severity, SharedAlertSink};
use crate::buckets::{capacity, PeerBuckets};
use crate::router::frame::FrameKind;

/// A message waiting for its session: inner kind, message id, payload.
type Queued = (FrameKind, u64, Bytes);

/// Why an outgoing message was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    /// No session this node's policy accepts can be had with the destination.
    #[error(transparent)]
    Session(#[from] Reject),
    /// Too much is already waiting for handshakes to finish.
    #[error("too many messages wait for the handshake with the destination")]
    QueueFull,
}

/// What to send for an outgoing message.
#[derive(Debug, Default)]
pub struct Outbound {
    /// The sealed message, when a session exists.
    pub sealed: Option<Bytes>,
    /// A handshake message (an Init) to send to the destination.
    pub handshake: Option<Bytes>,
}

/// What a received handshake message calls for.
#[derive(Debug, Default)]
pub struct HandshakeStep {
    /// The answer to send back (Reply, Finish, Cookie or the Init again).
    pub answer: Option<Bytes>,
    /// Messages that waited for the new session, sealed: `(message id, payload)`.
    pub flush: Vec<(u64, Bytes)>,
    /// Sealed messages that overtook the Finish, now opened.
    pub opened: Vec<Opened>,
}

/// A sealed message opened: frame id and hops from its routing header, inner
/// kind and payload.
#[derive(Debug)]
pub struct Opened {
    /// Frame id.
    pub id: u64,
    /// Links the frame crossed.
    pub hops: u8,
    /// Inner message kind.
    pub kind: FrameKind,
    /// Inner payload.
    pub payload: Bytes,
}

/// A sealed message that arrived before its session was complete.
struct Early {
    id: u64,
    hops: u8,
    sealed: Bytes,
}

/// Sealed messages held per handshake until its Finish arrives.
const MAX_EARLY: usize = 64;

/// How often unfinished handshakes and replaced sessions are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// A handshake this node answered, waiting for the Finish.
struct Responding {
    responder: Box<Responder>,
    at: Instant,
    early: Vec<Early>,
}

/// A handshake this node started.
struct Pending {
    initiator: Initiator,
    init: Bytes,
    started: Instant,
    last_sent: Instant,
    queue: VecDeque<Queued>,
    /// The responder already sent its binding once for this handshake.
    answered_capability: bool,
}

struct State {
    bindings: BindingBook,
    sessions: LruCache<u64, Session>,
    current: LruCache<PeerId, u64>,
    /// Sessions replaced by a newer one with the same peer, and when they go.
    retiring: VecDeque<(u64, Instant)>,
    initiating: LruCache<PeerId, Pending>,
    responding: LruCache<u64, Responding>,
    unconfirmed: LruCache<u64, Unconfirmed>,
    cookies: CookieJar,
    recent_inits: VecDeque<Instant>,
    /// Payload bytes in every pending queue.
    queued_bytes: usize,
    last_sweep: Instant,
}

/// A Finish this node sent whose session the responder has not yet shown
/// to be complete (no frame from it opened yet): sent again with traffic and
/// on the retransmission tick, in case it was lost.
struct Unconfirmed {
    peer: PeerId,
    finish: Bytes,
    installed: Instant,
    last_sent: Instant,
}

/// This node's end-to-end sessions.
pub struct Sessions {
    /// This node's keys; replaced whole when they rotate (sessions already
    /// made keep theirs).
    identity: parking_lot::RwLock<Arc<PqIdentity>>,
    /// Its peer id (the same across rotations).
    local: PeerId,
    mode: PqcMode,
    config: PqcConfig,
    rekey: RekeyPolicy,
    alerts: SharedAlertSink,
    handshake_buckets: PeerBuckets,
    state: Mutex<State>,
}

impl Sessions {
    /// Sessions for `identity` under `config` (its mode already validated);
    /// peers' bindings persist in `bindings` when given (the node's sled tree
    /// [`bindings::TREE`]).
    pub fn new(
        identity: Arc<PqIdentity>,
        mode: PqcMode,
        config: PqcConfig,
        alerts: SharedAlertSink,
        bindings: Option<sled::Tree>,
    ) -> Self {
        metrics::describe();
        let now = Instant::now();
        let state = State {
            bindings: BindingBook::new(config.max_sessions, bindings),
            sessions: LruCache::new(capacity(config.max_sessions)),
            current: LruCache::new(capacity(config.max_sessions)),
            retiring: VecDeque::new(),
            initiating: LruCache::new(capacity(config.max_pending)),
            responding: LruCache::new(capacity(config.max_pending)),
            unconfirmed: LruCache::new(capacity(config.max_pending)),
            cookies: CookieJar::new(now, Duration::from_secs(config.cookie_rotate_secs.max(1))),
            recent_inits: VecDeque::new(),
            queued_bytes: 0,
            last_sweep: now,
        };
        let handshake_buckets = PeerBuckets::new(
            config.handshakes_per_sec_per_peer,
            config.handshake_burst,
            config.max_pending,
        );
        Self {
            local: identity.peer_id(),
            identity: parking_lot::RwLock::new(identity),
            mode,
            handshake_buckets,
            rekey: config.rekey(),
            config,
            alerts,
            state: Mutex::new(state),
        }
    }

    /// The key binding to announce in beacons; `None` under `off`, where this
    /// node presents itself as classical-only.
    pub fn announced_binding(&self) -> Option<KeyBinding> {
        (self.mode != PqcMode::Off).then(|| self.identity().binding().clone())
    }

    /// The epoch of `peer`'s post-quantum keys, if this node knows them.
    pub fn peer_epoch(&self, peer: &PeerId) -> Option<u64> {
        self.state.lock().bindings.epoch(peer)
    }

    /// This node's current keys.
    pub fn identity(&self) -> Arc<PqIdentity> {
        self.identity.read().clone()
    }

    /// Takes `identity` (new keys of a later epoch, same peer id) for every
    /// handshake from now on. Sessions already made keep their keys; an Init
    /// made with the old binding is answered with the new one.
    pub fn rotate_identity(&self, identity: Arc<PqIdentity>) {
        tracing::info!(epoch = identity.epoch(), "post-quantum keys rotated");
        *self.identity.write() = identity;
    }

    /// Learns `peer`'s keys from a beacon's binding (verified once per change;
    /// one older than the newest seen is refused).
    pub fn learn(&self, peer: PeerId, binding: &KeyBinding) {
        if let Err(reason) = self.state.lock().bindings.learn(peer, binding) {
            metrics::binding_rejected(&reason);
            tracing::warn!(%peer, %reason, "key binding in beacon refused");
        }
    }

    /// Seals a message of `kind` for `dst`, or queues it and starts (or
    /// repeats) a handshake.
    pub fn outbound(&self, dst: PeerId, kind: FrameKind, id: u64, payload: Bytes) -> Result<Outbound, OutboundError> {
        let now = Instant::now();
        let context = self.context(self.local, dst, id);
        let mut state = self.state.lock();
        let current = state.current.get(&dst).copied();
        if let Some(session) = current.and_then(|local| state.sessions.get_mut(&local)) {
            match session.seal(&inner(kind, &payload), &context, now) {
                Ok(sealed) => {
                    let stale = session.needs_rekey(&self.rekey, now);
                    let local = session.local_id;
                    let handshake = match stale && !state.initiating.contains(&dst) {
                        true => Some(self.initiate(&mut state, dst, now)?),
                        false => self.finish_due(&mut state, local, now),
                    };
                    return Ok(Outbound {
                        sealed: Some(Bytes::from(sealed)),
                        handshake,
                    });
                }
                // Past its lifetime: gone; the message waits for a new handshake.
                Err(_) => {
                    tracing::info!(peer = %dst, "session past its lifetime: no longer used");
                    metrics::session_expired();
                    let local = session.local_id;
                    state.sessions.pop(&local);
                    state.current.pop(&dst);
                }
            }
        }
        if state.initiating.peek(&dst).is_some_and(|p| self.timed_out(p, now)) {
            expire(&mut state, &dst);
        }
        let handshake = match state.initiating.contains(&dst) {
            true => None,
            false => Some(self.initiate(&mut state, dst, now)?),
        };
        let resend = Duration::from_millis(self.config.init_resend_ms);
        let total_full = state.queued_bytes + payload.len() > self.config.queue_bytes_total;
        let Some(pending) = state.initiating.get_mut(&dst) else {
            return Err(Reject::UnknownHandshake.into());
        };
        if total_full || pending.queue.len() >= self.config.queue_per_peer {
            metrics::frame_rejected("queue_full");
            return Err(OutboundError::QueueFull);
        }
        let size = payload.len();
        pending.queue.push_back((kind, id, payload));
        let handshake = handshake.or_else(|| {
            (now.duration_since(pending.last_sent) >= resend).then(|| {
                pending.last_sent = now;
                pending.init.clone()
            })
        });
        state.queued_bytes += size;
        Ok(Outbound {
            sealed: None,
            handshake,
        })
    }

    /// Handshake messages to send again, with their destinations: the Init
    /// of a handshake still waiting for its Reply (it or its answer was lost,
    /// or the responder had not learnt this node's keys yet), and the Finish
    /// of a session the responder has not confirmed (a lost Finish would leave
    /// it holding this node's frames), each once per `init_resend_ms`.
    /// Handshakes past their timeout are dropped with their queues; Finishes
    /// are repeated for that long at most. Called on a timer, it also sweeps
    /// (once a second) answered handshakes whose Finish never came and
    /// replaced sessions past their grace.
    pub fn due_handshakes(&self) -> Vec<(PeerId, Bytes)> {
        let now = Instant::now();
        let resend = Duration::from_millis(self.config.init_resend_ms);
        let mut state = self.state.lock();
        if now.duration_since(state.last_sweep) >= SWEEP_EVERY {
            self.sweep(&mut state, now);
        }
        let expired: Vec<PeerId> = state
            .initiating
            .iter()
            .filter(|(_, pending)| self.timed_out(pending, now))
            .map(|(dst, _)| *dst)
            .collect();
        for dst in &expired {
            expire(&mut state, dst);
        }
        let timeout = Duration::from_millis(self.config.handshake_timeout_ms);
        let given_up: Vec<u64> = state
            .unconfirmed
            .iter()
            .filter(|(_, u)| now.duration_since(u.installed) > timeout)
            .map(|(local, _)| *local)
            .collect();
        for local in given_up {
            state.unconfirmed.pop(&local);
        }
        let finishes = state
            .unconfirmed
            .iter_mut()
            .filter(|(_, u)| now.duration_since(u.last_sent) >= resend)
            .map(|(_, u)| {
                u.last_sent = now;
                (u.peer, u.finish.clone())
            });
        let mut due: Vec<(PeerId, Bytes)> = finishes.collect();
        due.extend(
            state
                .initiating
                .iter_mut()
                .filter(|(_, pending)| now.duration_since(pending.last_sent) >= resend)
                .map(|(dst, pending)| {
                    pending.last_sent = now;
                    (*dst, pending.init.clone())
                }),
        );
        due
    }

    /// Drops answered handshakes older than `handshake_timeout_ms` (with the
    /// keys they derived) and replaced sessions past their grace.
    fn sweep(&self, state: &mut State, now: Instant) {
        state.last_sweep = now;
        let timeout = Duration::from_millis(self.config.handshake_timeout_ms);
        let unfinished: Vec<u64> = state
            .responding
            .iter()
            .filter(|(_, r)| now.duration_since(r.at) > timeout)
            .map(|(local, _)| *local)
            .collect();
        for local in unfinished {
            state.responding.pop(&local);
            metrics::handshake_refused(&Reject::UnknownHandshake);
        }
        while let Some(&(local, until)) = state.retiring.front() {
            if until > now {
                break;
            }
            state.retiring.pop_front();
            state.sessions.pop(&local);
        }
        metrics::sessions(state.sessions.len());
    }

    /// Answered handshakes waiting for their Finish.
    #[cfg(test)]
    fn responding(&self) -> usize {
        self.state.lock().responding.len()
    }

    /// The suite of the current session with `peer`.
    #[cfg(test)]
    fn suite_with(&self, peer: &PeerId) -> Option<x0tta6bl4_pqc::Suite> {
        let mut state = self.state.lock();
        let local = *state.current.get(peer)?;
        state.sessions.peek(&local).map(|s| s.suite)
    }

    /// The associated data of a sealed message beside its frame header: the
    /// routing header's source, destination and message id, and the kind.
    fn context(&self, src: PeerId, dst: PeerId, id: u64) -> Vec<u8> {
        let mut context = Vec::with_capacity(96);
        context.extend_from_slice(&src.to_bytes());
        context.extend_from_slice(&dst.to_bytes());
        context.extend_from_slice(&id.to_be_bytes());
        context.push(FrameKind::Sealed as u8);
        context
    }

    /// The Finish of session `local` when it is unconfirmed and was last sent
    /// `init_resend_ms` ago or more.
    fn finish_due(&self, state: &mut State, local: u64, now: Instant) -> Option<Bytes> {
        let resend = Duration::from_millis(self.config.init_resend_ms);
        let unconfirmed = state.unconfirmed.get_mut(&local)?;
        (now.duration_since(unconfirmed.last_sent) >= resend).then(|| {
            unconfirmed.last_sent = now;
            unconfirmed.finish.clone()
        })
    }

    fn timed_out(&self, pending: &Pending, now: Instant) -> bool {
        now.duration_since(pending.started) > Duration::from_millis(self.config.handshake_timeout_ms)
    }

    /// Starts a handshake with `dst`; returns the Init.
    fn initiate(&self, state: &mut State, dst: PeerId, now: Instant) -> Result<Bytes, Reject> {
        let keys = peer_keys(&mut state.bindings, &dst).ok_or(Reject::BadBinding)?;
        let (initiator, init) =
            Initiator::start(&self.identity(), keys, self.mode).inspect_err(metrics::handshake_refused)?;
        let init = Bytes::from(init);
        let pending = Pending {
            initiator,
            init: init.clone(),
            started: now,
            last_sent: now,
            queue: VecDeque::new(),
            answered_capability: false,
        };
        // Replacing or evicting a handshake drops its queue.
        if let Some((_, dropped)) = state.initiating.push(dst, pending) {
            state.queued_bytes = state.queued_bytes.saturating_sub(queued_bytes(&dropped.queue));
        }
        Ok(init)
    }

    /// Opens a sealed frame `(id, hops)` from `src`. A frame for a session whose
    /// Finish has not arrived yet (it overtook it) is held and comes back
    /// opened with that Finish: `Ok(None)`.
    pub fn open(&self, src: PeerId, id: u64, hops: u8, sealed: Bytes) -> Result<Option<Opened>, Reject> {
        let result = (|| {
            let (local, _) = frame_header(&sealed)?;
            let context = self.context(src, self.local, id);
            let mut state = self.state.lock();
            if let Some(session) = state.sessions.get_mut(&local) {
                let opened = open_with(session, src, id, hops, &sealed, &context)?;
                state.unconfirmed.pop(&local);
                return Ok(Some(opened));
            }
            let waiting = state.responding.get_mut(&local).filter(|r| *r.responder.peer() == src);
            match waiting {
                Some(responding) if responding.early.len() < MAX_EARLY => {
                    responding.early.push(Early { id, hops, sealed });
                    Ok(None)
                }
                _ => Err(Reject::UnknownSession),
            }
        })();
        if let Err(reason) = &result {
            metrics::frame_rejected(reason.label());
        }
        result
    }

    /// Inits for `dst` that belong to no handshake of ours: a test-only flood
    /// (the caller checks that fault injection is on).
    pub fn forge_inits(&self, dst: PeerId, count: usize) -> Result<Vec<Bytes>, Reject> {
        let keys = peer_keys(&mut self.state.lock().bindings, &dst).ok_or(Reject::BadBinding)?;
        (0..count)
            .map(|_| Initiator::start(&self.identity(), keys.clone(), self.mode).map(|(_, init)| Bytes::from(init)))
            .collect()
    }

    /// Counts a plaintext message that should have been sealed.
    pub fn refuse_unsealed(&self, src: PeerId) {
        metrics::frame_rejected("unsealed");
        tracing::debug!(%src, "unsealed message refused");
    }

    /// Handles a handshake message from `src` (every kind under the peer's
    /// handshake token bucket). Only failures of an authenticated Reply raise
    /// alerts; the rest (anyone can send a frame claiming any source) are
    /// counted.
    pub fn on_handshake(&self, src: PeerId, message: &[u8]) -> Result<HandshakeStep, Reject> {
        let now = Instant::now();
        let kind = MessageKind::of(message);
        let result = match kind {
            Ok(_) if !self.handshake_buckets.allow(src) => Err(Reject::RateLimited),
            Ok(MessageKind::Init) => self.on_init(src, message, now),
            Ok(MessageKind::Reply) => self.on_reply(src, message, now),
            Ok(MessageKind::Finish) => self.on_finish(src, message, now),
            Ok(MessageKind::Cookie) => self.on_cookie(src, message),
            Ok(MessageKind::Capability) => self.on_capability(src, message, now),
            Err(reason) => Err(reason),
        };
        if let Err(reason) = &result {
            metrics::handshake_refused(reason);
            if kind == Ok(MessageKind::Reply) {
                self.alert_authenticated_refusal(src, reason);
            }
        }
        result
    }

    fn on_init(&self, src: PeerId, message: &[u8], now: Instant) -> Result<HandshakeStep, Reject> {
        let mut state = self.state.lock();
        let state = &mut *state;
        let window = Duration::from_secs(1);
        while state
            .recent_inits
            .front()
            .is_some_and(|t| now.duration_since(*t) > window)
        {
            state.recent_inits.pop_front();
        }
        let under_load = state.recent_inits.len() >= self.config.cookie_above_per_sec;
        if !under_load {
            state.recent_inits.push_back(now);
        }
        let bindings = &mut state.bindings;
        let lookup = |peer: &PeerId| peer_keys(bindings, peer);
        let cookies = under_load.then_some(&mut state.cookies);
        let response = Responder::respond(&self.identity(), &src, message, self.mode, lookup, cookies, now)?;
        let answer = match response {
            Response::Reply { responder, reply } => {
                state.responding.put(
                    responder.local_id(),
                    Responding {
                        responder,
                        at: now,
                        early: Vec::new(),
                    },
                );
                reply
            }
            Response::Cookie { message, reason } => {
                metrics::handshake_refused(&reason);
                message
            }
            Response::Capability { message } => {
                metrics::capability_sent();
                message
            }
        };
        Ok(HandshakeStep {
            answer: Some(Bytes::from(answer)),
            ..HandshakeStep::default()
        })
    }

    /// The responder sent its binding (this node asked, or used an old one):
    /// learn it and start again, hybrid, keeping the queued messages.
    fn on_capability(&self, src: PeerId, message: &[u8], now: Instant) -> Result<HandshakeStep, Reject> {
        let mut state = self.state.lock();
        let pending = state.initiating.peek(&src).ok_or(Reject::UnknownHandshake)?;
        if pending.answered_capability {
            return Err(Reject::UnknownHandshake);
        }
        let binding = pending.initiator.capability(message)?;
        state
            .bindings
            .learn(src, &binding)
            .inspect_err(metrics::binding_rejected)?;
        let keys = peer_keys(&mut state.bindings, &src).ok_or(Reject::BadBinding)?;
        let (initiator, init) = Initiator::start(&self.identity(), keys, self.mode)?;
        let init = Bytes::from(init);
        let pending = state.initiating.get_mut(&src).ok_or(Reject::UnknownHandshake)?;
        pending.initiator = initiator;
        pending.init = init.clone();
        pending.last_sent = now;
        pending.answered_capability = true;
        tracing::debug!(peer = %src, "learnt the peer's post-quantum keys from its answer; handshake again");
        Ok(HandshakeStep {
            answer: Some(init),
            ..HandshakeStep::default()
        })
    }

    fn on_reply(&self, src: PeerId, message: &[u8], now: Instant) -> Result<HandshakeStep, Reject> {
        let mut state = self.state.lock();
        // Checked in place: a Reply that fails (anyone can claim to be `src`)
        // leaves the pending handshake and its queued frames alone.
        let (mut session, finish) = state
            .initiating
            .peek_mut(&src)
            .ok_or(Reject::UnknownHandshake)?
            .initiator
            .finish(&self.identity(), message, now)?;
        let pending = state.initiating.pop(&src).ok_or(Reject::UnknownHandshake)?;
        state.queued_bytes = state.queued_bytes.saturating_sub(queued_bytes(&pending.queue));
        let finish = Bytes::from(finish);
        metrics::duration(now.duration_since(pending.started));
        state.unconfirmed.put(
            session.local_id,
            Unconfirmed {
                peer: src,
                finish: finish.clone(),
                installed: now,
                last_sent: now,
            },
        );
        session.limit_lifetime(&self.rekey);
        let local = self.local;
        let flush = pending
            .queue
            .into_iter()
            .filter_map(|(kind, id, payload)| {
                let sealed = session.seal(&inner(kind, &payload), &self.context(local, src, id), now);
                Some((id, Bytes::from(sealed.ok()?)))
            })
            .collect();
        self.install(&mut state, session, now);
        Ok(HandshakeStep {
            answer: Some(finish),
            flush,
            ..HandshakeStep::default()
        })
    }

    fn on_finish(&self, src: PeerId, message: &[u8], now: Instant) -> Result<HandshakeStep, Reject> {
        let local = finish_session_id(message)?;
        let mut state = self.state.lock();
        if !state.responding.contains(&local) && state.sessions.peek(&local).is_some_and(|s| s.peer == src) {
            // A repeated Finish (the first one arrived after all): nothing to do.
            return Ok(HandshakeStep::default());
        }
        let timeout = Duration::from_millis(self.config.handshake_timeout_ms);
        let waiting = state.responding.peek_mut(&local).ok_or(Reject::UnknownHandshake)?;
        if *waiting.responder.peer() != src {
            // A Finish claiming another source, or one that fails below, leaves
            // the handshake waiting for the initiator's own (sources are not
            // authenticated; only the signature is).
            return Err(Reject::UnknownHandshake);
        }
        if now.duration_since(waiting.at) > timeout {
            state.responding.pop(&local);
            return Err(Reject::UnknownHandshake);
        }
        let mut session = waiting.responder.complete(message, now)?;
        session.limit_lifetime(&self.rekey);
        let waiting = state.responding.pop(&local).ok_or(Reject::UnknownHandshake)?;
        let me = self.local;
        let opened = waiting
            .early
            .into_iter()
            .filter_map(|early| {
                let context = self.context(src, me, early.id);
                open_with(&mut session, src, early.id, early.hops, &early.sealed, &context)
                    .inspect_err(|reason| metrics::frame_rejected(reason.label()))
                    .ok()
            })
            .collect();
        self.install(&mut state, session, now);
        Ok(HandshakeStep {
            opened,
            ..HandshakeStep::default()
        })
    }

    fn on_cookie(&self, src: PeerId, message: &[u8]) -> Result<HandshakeStep, Reject> {
        let mut state = self.state.lock();
        let pending = state.initiating.get_mut(&src).ok_or(Reject::UnknownHandshake)?;
        let init = Bytes::from(pending.initiator.init_with_cookie(message)?);
        pending.init = init.clone();
        Ok(HandshakeStep {
            answer: Some(init),
            ..HandshakeStep::default()
        })
    }

    /// Makes `session` the current one with its peer (unless a handshake
    /// the peer started at the same time wins, see below); the one left out
    /// still opens frames for `handshake_timeout_ms`.
    fn install(&self, state: &mut State, session: Session, now: Instant) {
        metrics::established(session.suite);
        if self.mode.is_fallback(session.suite) {
            metrics::fallback();
            tracing::warn!(peer = %session.peer, "session without post-quantum key exchange (peer proved classical-only)");
            self.alerts.emit(
                Alert::new(
                    "PQC_FALLBACK",
                    Severity::Warning,
                    format!("session with {} uses X25519 only", session.peer),
                )
                .label("peer", session.peer.to_string()),
            );
        }
        let grace = Duration::from_millis(self.config.handshake_timeout_ms);
        // Both ends may start a handshake at once and each end up with two new
        // sessions: both must keep the same one (the one whose initiator has
        // the smaller peer id), or each seals with the one the other retires.
        let current = state.current.peek(&session.peer).copied();
        let keep_current = current.and_then(|id| state.sessions.peek(&id)).is_some_and(|held| {
            now.duration_since(held.established) < grace
                && self.initiator_of(held).to_bytes() < self.initiator_of(&session).to_bytes()
        });
        let retired = match keep_current {
            true => Some(session.local_id),
            false => state.current.put(session.peer, session.local_id),
        };
        if let Some(retired) = retired {
            state.retiring.push_back((retired, now + grace));
        }
        state.sessions.put(session.local_id, session);
        metrics::sessions(state.sessions.len());
    }

    /// The peer that started `session`'s handshake.
    fn initiator_of(&self, session: &Session) -> PeerId {
        match session.initiated {
            true => self.local,
            false => session.peer,
        }
    }

    /// Alerts on a refusal of a Reply that passed its key confirmation or
    /// signature (a downgrade, or a classical-only peer under `required`);
    /// forged Replies fail before that and are only counted.
    fn alert_authenticated_refusal(&self, peer: PeerId, reason: &Reject) {
        let severity = match reason {
            Reject::Downgrade => Severity::Critical,
            Reject::PqRequired => Severity::Warning,
            _ => return,
        };
        self.alerts.emit(
            Alert::new(
                "PQC_HANDSHAKE_FAILURE",
                severity,
                format!("handshake with {peer} refused: {reason}"),
            )
            .label("peer", peer.to_string())
            .label("reason", reason.label()),
        );
    }
}

/// Drops the handshake with `dst` that took too long, with its queue.
fn expire(state: &mut State, dst: &PeerId) {
    if let Some(expired) = state.initiating.pop(dst) {
        state.queued_bytes = state.queued_bytes.saturating_sub(queued_bytes(&expired.queue));
        metrics::handshake_refused(&Reject::UnknownHandshake);
        tracing::debug!(peer = %dst, dropped = expired.queue.len(), "handshake timed out");
    }
}

fn queued_bytes(queue: &VecDeque<Queued>) -> usize {
    queue.iter().map(|(_, _, payload)| payload.len()).sum()
}

/// Opens `sealed` with `session`, which must be `src`'s.
fn open_with(
    session: &mut Session,
    src: PeerId,
    id: u64,
    hops: u8,
    sealed: &[u8],
    context: &[u8],
) -> Result<Opened, Reject> {
    if session.peer != src {
        return Err(Reject::UnknownSession);
    }
    let plaintext = session.open(sealed, context, Instant::now())?;
    let (&kind, payload) = plaintext.split_first().ok_or(Reject::Malformed("sealed message"))?;
    let kind = FrameKind::from_u8(kind)
        .filter(|k| k.is_sealable())
        .ok_or(Reject::Malformed("sealed message kind"))?;
    Ok(Opened {
        id,
        hops,
        kind,
        payload: Bytes::copy_from_slice(payload),
    })
}

/// The inner plaintext of a sealed message: kind, then payload.
fn inner(kind: FrameKind, payload: &[u8]) -> Vec<u8> {
    let mut plaintext = Vec::with_capacity(1 + payload.len());
    plaintext.push(kind as u8);
    plaintext.extend_from_slice(payload);
    plaintext
}

/// Keys of `peer`: from its verified binding, else its libp2p key alone.
fn peer_keys(bindings: &mut BindingBook, peer: &PeerId) -> Option<PeerKeys> {
    bindings.keys(peer).or_else(|| classical_keys(peer))
}

/// A peer id of an ed25519 key carries the key itself (identity multihash).
fn classical_keys(peer: &PeerId) -> Option<PeerKeys> {
    let multihash = peer.as_ref();
    (multihash.code() == 0)
        .then(|| PublicKey::try_decode_protobuf(multihash.digest()).ok())
        .flatten()
        .map(PeerKeys::classical)
}

#[cfg(test)]
mod tests;
