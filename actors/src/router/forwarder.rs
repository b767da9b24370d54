//! The router's data plane: parses, deduplicates, delivers and forwards frames.
//!
//! It runs on the network runtime, called by every stream reader task, and never
//! waits for the router actor: it reads the routing table the actor last installed
//! (an `ArcSwap`, so lookups take no lock) and the live neighbour queues. When the
//! primary next hop is no longer a neighbour it uses the backup hop at once, before
//! the control plane has even recomputed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::{BufMut, Bytes, BytesMut};
use futures::future::BoxFuture;
use libp2p::PeerId;
use lru::LruCache;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::fair_share::{self, FairShare, SenderShare};
use super::frame::{Frame, FrameKind, RejectReason};
use super::graph::Route;
use super::inbox::{Delivered, Inbox, Undeliverable};
use super::metrics as m;
use super::reliable::{self, Reliable};
use super::RouterConfig;
use crate::buckets::capacity;
use crate::mesh::{unix_ms, FrameHandler, Neighbours};
use crate::secure::{OutboundError, Sessions};

/// Echo requests awaiting their reply.
const MAX_PENDING_ECHOES: usize = 1_024;
/// Neighbours whose protocol violations are counted.
const MAX_MISBEHAVING: usize = 1_024;
/// Relayed frames kept for the test-only transit view.
const TRANSIT_LOG: usize = 64;

/// Why a message from this node could not be sent.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SendError {
    /// The frame would have been rejected; see the reason.
    #[error("{0}")]
    Rejected(#[from] RejectReason),
    /// The payload exceeds the configured maximum.
    #[error("payload of {size} bytes exceeds the maximum of {max}")]
    PayloadTooLarge {
        /// Payload size.
        size: usize,
        /// Configured maximum.
        max: usize,
    },
    /// Too many echo requests outstanding, or too many messages waiting for
    /// a handshake.
    #[error("too many requests in flight")]
    Busy,
    /// No echo reply in time.
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    /// No end-to-end session can be had with the destination.
    #[error("no session with the destination: {0}")]
    Session(x0tta6bl4_pqc::Reject),
}

/// Counters shown by the status API.
#[derive(Debug, Default, serde::Serialize)]
pub struct ForwarderCounters {
    /// Messages originated here.
    pub sent: AtomicU64,
    /// Frames relayed for others.
    pub forwarded: AtomicU64,
    /// Messages delivered here.
    pub delivered: AtomicU64,
    /// Frames rejected for any reason.
    pub rejected: AtomicU64,
}

/// Result of an echo.
#[derive(Debug, Clone, Copy)]
pub struct EchoReply {
    /// Round-trip time.
    pub rtt: Duration,
    /// Links the reply crossed.
    pub hops: u8,
}

/// The data plane of one node.
pub struct Forwarder {
    local: PeerId,
    config: RouterConfig,
    table: ArcSwap<HashMap<PeerId, Route>>,
    neighbours: Arc<Neighbours>,
    seen: Mutex<LruCache<(PeerId, u64), ()>>,
    inbox: Mutex<Inbox>,
    pending_echoes: Mutex<HashMap<u64, oneshot::Sender<u8>>>,
    reliable: Mutex<Reliable>,
    next_id: AtomicU64,
    counters: ForwarderCounters,
    /// Protocol violations (undecodable frames, TTL 0) per sending neighbour.
    violations: Mutex<LruCache<PeerId, u64>>,
    /// Test-only gray failure: silently drop every frame to relay.
    /// Kinds of frames to relay that vanish (a bit per kind code; test hook).
    blackhole: AtomicU16,
    /// End-to-end sessions; `None` only in unit tests of forwarding itself.
    sessions: Option<Arc<Sessions>>,
    /// Who sends how much through this node, and who loses under overload.
    fair_share: FairShare,
    /// Test-only view of relayed frames: kind and the first payload bytes.
    transit: Mutex<std::collections::VecDeque<TransitSample>>,
}

/// A frame this node relayed, as the test-only transit view shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TransitSample {
    /// Frame kind.
    pub kind: String,
    /// Source.
    pub src: String,
    /// Destination.
    pub dst: String,
    /// The first 64 payload bytes, hex.
    pub payload_hex: String,
}

impl Forwarder {
    /// A forwarder for node `local` sending through `neighbours`.
    pub fn new(local: PeerId, config: RouterConfig, neighbours: Arc<Neighbours>) -> Self {
        m::describe();
        let seen = capacity(config.seen_capacity);
        let fair_share = FairShare::new(config.fair_share_window(), capacity(MAX_MISBEHAVING));
        Self {
            local,
            inbox: Mutex::new(Inbox::new(config.inbox_capacity)),
            table: ArcSwap::default(),
            neighbours,
            seen: Mutex::new(LruCache::new(seen)),
            pending_echoes: Mutex::new(HashMap::new()),
            reliable: Mutex::new(Reliable::new(seen.get())),
            // Random start: ids stay unique across restarts of this node.
            next_id: AtomicU64::new(rand::random::<u64>() >> 1),
            counters: ForwarderCounters::default(),
            violations: Mutex::new(LruCache::new(capacity(MAX_MISBEHAVING))),
            blackhole: AtomicU16::new(0),
            config,
            sessions: None,
            fair_share,
            transit: Mutex::new(std::collections::VecDeque::with_capacity(TRANSIT_LOG)),
        }
    }

    /// Seals `Data`, `Reliable` and `Ack` messages end to end with `sessions`.
    pub fn with_sessions(mut self, sessions: Arc<Sessions>) -> Self {
        self.sessions = Some(sessions);
        self
    }

    /// The end-to-end sessions, when on.
    pub fn sessions(&self) -> Option<&Arc<Sessions>> {
        self.sessions.as_ref()
    }

    /// Test-only flood: sends `count` Inits of no real handshake to `dst`.
    /// Refused unless `fault_injection`; returns how many left.
    pub async fn flood_handshakes(&self, dst: PeerId, count: usize) -> Result<usize, SendError> {
        let (true, Some(sessions)) = (self.config.fault_injection, self.sessions.as_ref()) else {
            return Err(SendError::Rejected(RejectReason::Session));
        };
        let inits = sessions.forge_inits(dst, count).map_err(SendError::Session)?;
        let mut sent = 0;
        for init in inits {
            if self
                .transmit(self.frame(FrameKind::Handshake, dst, None, init))
                .await
                .is_ok()
            {
                sent += 1;
            }
        }
        Ok(sent)
    }

    /// Frames relayed recently, when `fault_injection` is on (tests look at what
    /// a transit node can read); empty otherwise.
    pub fn transit_samples(&self) -> Vec<TransitSample> {
        self.transit.lock().iter().cloned().collect()
    }

    fn note_transit(&self, frame: &Frame) {
        if !self.config.fault_injection {
            return;
        }
        let mut transit = self.transit.lock();
        if transit.len() >= TRANSIT_LOG {
            transit.pop_front();
        }
        let head = &frame.payload[..frame.payload.len().min(64)];
        transit.push_back(TransitSample {
            kind: format!("{:?}", frame.kind),
            src: frame.src.to_string(),
            dst: frame.dst.to_string(),
            payload_hex: head.iter().map(|b| format!("{b:02x}")).collect(),
        });
    }

    /// Protocol violations counted per neighbour since start (undecodable
    /// frames, frames sent with TTL 0): evidence for quarantine.
    pub fn violations(&self) -> Vec<(PeerId, u64)> {
        self.violations.lock().iter().map(|(p, n)| (*p, *n)).collect()
    }

    /// Test-only gray failure: frames to relay of `kinds` vanish without a
    /// report while links and beacons stay healthy (none: off). Refused unless
    /// `fault_injection`.
    pub fn set_blackhole(&self, kinds: &[FrameKind]) -> Result<(), crate::supervision::FaultRefused> {
        if !self.config.fault_injection {
            return Err(crate::supervision::FaultRefused);
        }
        let mask = kinds.iter().fold(0u16, |mask, kind| mask | 1 << *kind as u8);
        self.blackhole.store(mask, Ordering::Relaxed);
        Ok(())
    }

    fn record_violation(&self, from: PeerId) {
        let mut violations = self.violations.lock();
        match violations.get_mut(&from) {
            Some(count) => *count += 1,
            None => {
                violations.put(from, 1);
            }
        }
    }

    /// Installs a new routing table (called by the router actor).
    pub fn install_table(&self, table: HashMap<PeerId, Route>) {
        self.table.store(Arc::new(table));
    }

    /// The routing table in force.
    pub fn table(&self) -> Arc<HashMap<PeerId, Route>> {
        self.table.load_full()
    }

    /// Counters for the status API.
    pub fn counters(&self) -> &ForwarderCounters {
        &self.counters
    }

    /// Runs `f` on the inbox.
    pub fn with_inbox<T>(&self, f: impl FnOnce(&mut Inbox) -> T) -> T {
        f(&mut self.inbox.lock())
    }

    /// A frame from this node with a fresh id (or `id` when given) and a full TTL.
    fn frame(&self, kind: FrameKind, dst: PeerId, id: Option<u64>, payload: Bytes) -> Frame {
        Frame {
            kind,
            ttl: self.config.default_ttl,
            hops: 0,
            id: id.unwrap_or_else(|| self.next_id.fetch_add(1, Ordering::Relaxed)),
            src: self.local,
            dst,
            payload,
        }
    }

    fn check_size(&self, payload: &[u8]) -> Result<(), SendError> {
        if payload.len() > self.config.max_payload_bytes {
            return Err(SendError::PayloadTooLarge {
                size: payload.len(),
                max: self.config.max_payload_bytes,
            });
        }
        Ok(())
    }

    /// Delivers locally or sends one hop on, as the destination asks.
    async fn originate(&self, frame: Frame) -> Result<(), RejectReason> {
        if frame.dst == self.local {
            self.deliver(frame).await;
            Ok(())
        } else {
            self.transmit_for(self.local, frame).await
        }
    }

    /// Sends `payload` to `dst` as a new message of `kind`; returns its id.
    pub async fn send(&self, dst: PeerId, kind: FrameKind, payload: Bytes) -> Result<u64, SendError> {
        self.check_size(&payload)?;
        self.counters.sent.fetch_add(1, Ordering::Relaxed);
        m::originated();
        self.originate_message(kind, dst, payload).await
    }

    /// Sends a new message of `kind` from this node; `Data`, `Reliable` and
    /// `Ack` messages to other nodes go sealed end to end (after a handshake,
    /// when none is established yet). Returns the message id.
    async fn originate_message(&self, kind: FrameKind, dst: PeerId, payload: Bytes) -> Result<u64, SendError> {
        let frame = self.frame(kind, dst, None, payload);
        let id = frame.id;
        let Some(sessions) = self
            .sessions
            .as_ref()
            .filter(|_| kind.is_sealable() && dst != self.local)
        else {
            self.originate(frame).await?;
            return Ok(id);
        };
        let out = sessions.outbound(dst, kind, id, frame.payload).map_err(|e| match e {
            OutboundError::Session(reject) => SendError::Session(reject),
            OutboundError::QueueFull => SendError::Busy,
        })?;
        if let Some(init) = out.handshake {
            self.transmit(self.frame(FrameKind::Handshake, dst, None, init)).await?;
        }
        if let Some(sealed) = out.sealed {
            self.transmit(self.frame(FrameKind::Sealed, dst, Some(id), sealed))
                .await?;
        }
        Ok(id)
    }

    /// Sends `data` to `dst` reliably: retransmitted until acknowledged (see
    /// [`super::reliable`]). Returns the message id once the first copy is out;
    /// a first copy that cannot leave yet is retried like a lost one.
    pub async fn send_reliable(&self, dst: PeerId, data: &[u8]) -> Result<u64, SendError> {
        self.check_size(&[data, &[0u8; 8]].concat())?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let payload = reliable::encode(id, data);
        if !self.reliable.lock().track(id, dst, payload.clone(), Instant::now()) {
            return Err(SendError::Busy);
        }
        self.counters.sent.fetch_add(1, Ordering::Relaxed);
        m::originated();
        if let Err(reason) = self.originate_message(FrameKind::Reliable, dst, payload).await {
            tracing::debug!(%reason, id, "first copy of a reliable message not sent; will retry");
        }
        Ok(id)
    }

    /// Retransmits unacknowledged reliable messages forever, every `every`.
    /// Spawned once per node on the network runtime.
    pub async fn run_retransmissions(self: Arc<Self>, every: Duration) {
        let mut timer = tokio::time::interval(every);
        loop {
            timer.tick().await;
            self.resend_handshakes().await;
            let tick = self.reliable.lock().tick(Instant::now());
            for (_, dst, payload) in tick.resend {
                m::retransmitted();
                if let Err(reason) = self.originate_message(FrameKind::Reliable, dst, payload).await {
                    tracing::debug!(%reason, "retransmission not sent");
                }
            }
            for id in tick.expired {
                m::report_received("no_ack");
                self.inbox.lock().push_report(Undeliverable {
                    id,
                    reporter: self.local,
                    reason: "no_ack",
                    received_ms: unix_ms(),
                });
            }
        }
    }

    /// Sends again the handshake messages that may have been lost (see
    /// [`Sessions::due_handshakes`]).
    async fn resend_handshakes(&self) {
        let Some(sessions) = &self.sessions else { return };
        for (dst, message) in sessions.due_handshakes() {
            if let Err(reason) = self
                .transmit(self.frame(FrameKind::Handshake, dst, None, message))
                .await
            {
                tracing::debug!(%reason, %dst, "handshake message not resent");
            }
        }
    }

    /// Reliable messages awaiting acknowledgement.
    pub fn reliable_pending(&self) -> usize {
        self.reliable.lock().pending()
    }

    /// Sends a benchmark probe stamped with the current time.
    pub async fn send_probe(&self, dst: PeerId, size: usize) -> Result<u64, SendError> {
        // Checked before the buffer is allocated, not only after.
        if size > self.config.max_payload_bytes {
            return Err(SendError::PayloadTooLarge {
                size,
                max: self.config.max_payload_bytes,
            });
        }
        let mut payload = BytesMut::with_capacity(size.max(16));
        payload.put_u128(unix_nanos());
        payload.resize(size.max(16), 0);
        self.send(dst, FrameKind::Probe, payload.freeze()).await
    }

    /// Sends an echo request to `dst` and waits for the reply.
    pub async fn echo(&self, dst: PeerId, timeout: Duration) -> Result<EchoReply, SendError> {
        let (tx, rx) = oneshot::channel();
        let frame = self.frame(FrameKind::Echo, dst, None, Bytes::new());
        let id = frame.id;
        {
            let mut pending = self.pending_echoes.lock();
            if pending.len() >= MAX_PENDING_ECHOES {
                return Err(SendError::Busy);
            }
            pending.insert(id, tx);
        }
        let started = Instant::now();
        let result = match self.originate(frame).await {
            Ok(()) => match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(hops)) => Ok(EchoReply {
                    rtt: started.elapsed(),
                    hops,
                }),
                _ => Err(SendError::Timeout(timeout)),
            },
            Err(reason) => Err(SendError::Rejected(reason)),
        };
        self.pending_echoes.lock().remove(&id);
        result
    }

    /// Handles one frame received from neighbour `from`.
    pub async fn on_frame(&self, from: PeerId, bytes: Bytes) {
        let frame = match Frame::decode(bytes) {
            Ok(frame) => frame,
            Err(reason) => {
                self.record_violation(from);
                return self.reject_from(from, reason);
            }
        };
        if frame.ttl == 0 {
            // A frame must never be sent with no hops left.
            self.record_violation(from);
            self.reject_from(from, RejectReason::TtlExpired);
            return self.report(&frame, RejectReason::TtlExpired).await;
        }
        if self.seen.lock().put((frame.src, frame.id), ()).is_some() {
            return self.reject_from(from, RejectReason::Duplicate);
        }
        if frame.dst == self.local {
            return self.deliver(frame).await;
        }
        if self.blackhole.load(Ordering::Relaxed) & 1 << frame.kind as u8 != 0 {
            return;
        }
        let mut frame = frame;
        frame.ttl -= 1;
        if frame.ttl == 0 {
            self.reject_from(from, RejectReason::TtlExpired);
            return self.report(&frame, RejectReason::TtlExpired).await;
        }
        self.note_transit(&frame);
        match self.transmit_for(from, frame.clone()).await {
            Ok(()) => {
                self.counters.forwarded.fetch_add(1, Ordering::Relaxed);
                m::forwarded();
            }
            Err(reason) => {
                self.reject_from(from, reason);
                self.report(&frame, reason).await;
            }
        }
    }

    fn reject_from(&self, from: PeerId, reason: RejectReason) {
        self.counters.rejected.fetch_add(1, Ordering::Relaxed);
        m::rejected(reason);
        tracing::debug!(%from, %reason, "frame rejected");
    }

    /// Sends `frame` one hop closer to its destination.
    async fn transmit(&self, frame: Frame) -> Result<(), RejectReason> {
        let queue = self.next_queue(&frame)?;
        self.enqueue(&queue, frame).await
    }

    /// Relays `frame`, received from `sender` (or originated here), unless its
    /// next hop is congested and `sender` is over its fair share.
    async fn transmit_for(&self, sender: PeerId, frame: Frame) -> Result<(), RejectReason> {
        let queue = self.next_queue(&frame)?;
        let queued = queue.max_capacity() - queue.capacity();
        if !self
            .fair_share
            .admit(sender, fair_share::congested(queued, queue.max_capacity()))
        {
            return Err(RejectReason::OverFairShare);
        }
        self.enqueue(&queue, frame).await
    }

    /// The queue of the next hop towards the frame's destination (the backup
    /// hop's when the primary is gone).
    fn next_queue(&self, frame: &Frame) -> Result<tokio::sync::mpsc::Sender<Bytes>, RejectReason> {
        let route = self
            .table
            .load()
            .get(&frame.dst)
            .copied()
            .ok_or(RejectReason::UnknownDestination)?;
        match self.neighbours.queue(&route.next) {
            Some(queue) => Ok(queue),
            None => {
                let backup = route.backup.and_then(|b| self.neighbours.queue(&b));
                m::backup_used();
                backup.ok_or(RejectReason::UnknownDestination)
            }
        }
    }

    async fn enqueue(&self, queue: &tokio::sync::mpsc::Sender<Bytes>, mut frame: Frame) -> Result<(), RejectReason> {
        frame.hops = frame.hops.saturating_add(1);
        queue
            .send_timeout(frame.encode(), self.config.queue_timeout())
            .await
            .map_err(|_| RejectReason::QueueFull)
    }

    /// What each sender sent through this node and lost to fair sharing.
    pub fn fair_shares(&self) -> Vec<SenderShare> {
        self.fair_share.shares()
    }

    /// Tells the source of `frame` that it was dropped here (never for reports,
    /// so two nodes cannot bounce reports at each other).
    async fn report(&self, frame: &Frame, reason: RejectReason) {
        if frame.kind == FrameKind::Undeliverable || frame.src == self.local {
            return;
        }
        let mut payload = BytesMut::with_capacity(9);
        payload.put_u8(reason.code());
        payload.put_u64(frame.id);
        let report = self.frame(FrameKind::Undeliverable, frame.src, None, payload.freeze());
        if let Err(reason) = self.transmit(report).await {
            tracing::debug!(%reason, "undeliverable report not sent");
        }
    }

    /// Delivers a frame addressed to this node: handshake messages and sealed
    /// messages go through the sessions; a message that should have been
    /// sealed but was not is refused.
    async fn deliver(&self, frame: Frame) {
        let Some(sessions) = self.sessions.clone() else {
            return self.deliver_plain(frame).await;
        };
        match frame.kind {
            FrameKind::Handshake => match sessions.on_handshake(frame.src, &frame.payload) {
                Ok(step) => self.answer_handshake(frame.src, step).await,
                Err(_) => self.reject_from(frame.src, RejectReason::Session),
            },
            FrameKind::Sealed => match sessions.open(frame.src, frame.id, frame.hops, frame.payload.clone()) {
                Ok(Some(opened)) => self.deliver_opened(frame.src, opened).await,
                // Held until the handshake's Finish arrives.
                Ok(None) => {}
                Err(_) => self.reject_from(frame.src, RejectReason::Session),
            },
            kind if kind.is_sealable() && frame.src != self.local => {
                sessions.refuse_unsealed(frame.src);
                self.reject_from(frame.src, RejectReason::Unsealed);
            }
            _ => self.deliver_plain(frame).await,
        }
    }

    /// Sends what a handshake step calls for to `peer`.
    async fn answer_handshake(&self, peer: PeerId, step: crate::secure::HandshakeStep) {
        let mut frames = Vec::with_capacity(1 + step.flush.len());
        if let Some(answer) = step.answer {
            frames.push(self.frame(FrameKind::Handshake, peer, None, answer));
        }
        for (id, sealed) in step.flush {
            frames.push(self.frame(FrameKind::Sealed, peer, Some(id), sealed));
        }
        for frame in frames {
            if let Err(reason) = self.transmit(frame).await {
                tracing::debug!(%reason, %peer, "handshake answer or queued message not sent");
            }
        }
        for opened in step.opened {
            self.deliver_opened(peer, opened).await;
        }
    }

    /// Delivers an opened sealed message from `src`.
    async fn deliver_opened(&self, src: PeerId, opened: crate::secure::Opened) {
        let frame = Frame {
            kind: opened.kind,
            ttl: 1,
            hops: opened.hops,
            id: opened.id,
            src,
            dst: self.local,
            payload: opened.payload,
        };
        Box::pin(self.deliver_plain(frame)).await;
    }

    async fn deliver_plain(&self, frame: Frame) {
        match frame.kind {
            FrameKind::Data => self.store_message(frame.id, frame.src, frame.hops, &frame.payload),
            FrameKind::Probe => {
                let now = unix_nanos();
                let sent = frame
                    .payload
                    .get(..16)
                    .and_then(|b| <[u8; 16]>::try_from(b).ok())
                    .map_or(now, u128::from_be_bytes);
                let latency_us = u64::try_from(now.saturating_sub(sent) / 1_000).unwrap_or(u64::MAX);
                self.inbox.lock().record_probe(latency_us, now as f64 / 1e6);
                self.counted_delivery();
            }
            FrameKind::Echo => {
                let reply = self.frame(FrameKind::EchoReply, frame.src, Some(frame.id), Bytes::new());
                if frame.src == self.local {
                    return self.answer_echo(&reply);
                }
                if let Err(reason) = self.transmit(reply).await {
                    tracing::debug!(%reason, "echo reply not sent");
                }
            }
            FrameKind::Reliable => {
                let Some((id, data)) = reliable::decode(&frame.payload) else {
                    return self.reject_from(frame.src, RejectReason::Malformed);
                };
                if self.reliable.lock().first_delivery(frame.src, id) {
                    self.store_message(id, frame.src, frame.hops, &data);
                }
                // Every copy is acknowledged: the first acknowledgement may be lost.
                let mut ack = BytesMut::with_capacity(8);
                ack.put_u64(id);
                if let Err(reason) = Box::pin(self.originate_message(FrameKind::Ack, frame.src, ack.freeze())).await {
                    tracing::debug!(%reason, id, "acknowledgement not sent");
                }
            }
            FrameKind::Ack => {
                let id = frame.payload.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok());
                match id {
                    Some(id) if self.reliable.lock().acknowledge(u64::from_be_bytes(id)) => m::acknowledged(),
                    Some(_) => {}
                    None => self.reject_from(frame.src, RejectReason::Malformed),
                }
            }
            FrameKind::EchoReply => self.answer_echo(&frame),
            // Only reachable without sessions: nothing here can open them.
            FrameKind::Handshake | FrameKind::Sealed => self.reject_from(frame.src, RejectReason::Session),
            FrameKind::Undeliverable => {
                let reason = frame.payload.first().and_then(|c| RejectReason::from_code(*c));
                let id = frame.payload.get(1..9).and_then(|b| <[u8; 8]>::try_from(b).ok());
                let (Some(reason), Some(id)) = (reason, id) else {
                    return self.reject_from(frame.src, RejectReason::Malformed);
                };
                m::report_received(reason.label());
                self.inbox.lock().push_report(Undeliverable {
                    id: u64::from_be_bytes(id),
                    reporter: frame.src,
                    reason: reason.label(),
                    received_ms: unix_ms(),
                });
            }
        }
    }

    /// Puts a delivered message in the inbox and counts it.
    fn store_message(&self, id: u64, from: PeerId, hops: u8, payload: &[u8]) {
        let text = String::from_utf8_lossy(payload);
        let utf8 = matches!(text, std::borrow::Cow::Borrowed(_));
        let message = Delivered {
            id,
            from,
            hops,
            text: text.into_owned(),
            utf8,
            received_ms: unix_ms(),
        };
        self.inbox.lock().push(message);
        self.counted_delivery();
    }

    fn counted_delivery(&self) {
        self.counters.delivered.fetch_add(1, Ordering::Relaxed);
        m::delivered();
    }

    fn answer_echo(&self, reply: &Frame) {
        if let Some(waiter) = self.pending_echoes.lock().remove(&reply.id) {
            let _ = waiter.send(reply.hops);
        }
    }
}

impl FrameHandler for Forwarder {
    fn handle_frame(&self, from: PeerId, frame: Bytes) -> BoxFuture<'_, ()> {
        Box::pin(self.on_frame(from, frame))
    }

    fn reject(&self, from: PeerId, reason: RejectReason) {
        self.reject_from(from, reason);
    }
}

fn unix_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

#[cfg(test)]
#[path = "forwarder_tests.rs"]
mod tests;
