//! An established session: one ChaCha20-Poly1305 key per direction, a frame
//! counter as nonce, a replay window on receive, a rekey deadline and a hard
//! lifetime.
//!
//! Sealed frame: `receiver session id (8) | counter (8) | ciphertext | tag (16)`.
//! The associated data is those 16 bytes and the caller's context (the node
//! puts the routing header's source, destination, message id and kind there),
//! so a frame moved to another header does not open.

use std::time::{Duration, Instant};

use chacha20poly1305::aead::{Aead as _, Payload};
use chacha20poly1305::{AeadInOut as _, ChaCha20Poly1305, KeyInit as _};
use libp2p::PeerId;
use zeroize::Zeroize as _;

use crate::replay::ReplayWindow;
use crate::{Reject, Suite};

/// Bytes a sealed frame adds to its plaintext.
pub const SEAL_OVERHEAD: usize = HEADER_LEN + 16;
const HEADER_LEN: usize = 16;

/// When a session should be replaced by a fresh handshake, and when it must
/// stop being used even if no new one could be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RekeyPolicy {
    /// Frames sealed with one key.
    pub after_frames: u64,
    /// Age of the session.
    pub after: Duration,
}

impl Default for RekeyPolicy {
    fn default() -> Self {
        Self {
            after_frames: 1 << 32,
            after: Duration::from_secs(120),
        }
    }
}

impl RekeyPolicy {
    /// The hard lifetime of a session: three rekey intervals (as WireGuard's
    /// reject-after-time is to its rekey-after-time), after which it neither
    /// seals nor opens.
    pub fn lifetime(&self) -> Duration {
        self.after.saturating_mul(3)
    }
}

/// Keys of one direction pair, from the handshake's key schedule; wiped when
/// dropped.
pub(crate) struct SessionKeys {
    send: [u8; 32],
    recv: [u8; 32],
}

impl SessionKeys {
    pub(crate) fn new(send: [u8; 32], recv: [u8; 32]) -> Self {
        Self { send, recv }
    }
}

impl Drop for SessionKeys {
    fn drop(&mut self) {
        self.send.zeroize();
        self.recv.zeroize();
    }
}

/// One end of an established session.
pub struct Session {
    /// Id the peer puts on frames for us.
    pub local_id: u64,
    /// Id we put on frames for the peer.
    pub remote_id: u64,
    /// The authenticated peer.
    pub peer: PeerId,
    /// The key exchange used.
    pub suite: Suite,
    /// Whether this end started the handshake.
    pub initiated: bool,
    /// When the handshake completed.
    pub established: Instant,
    /// Past this age the session neither seals nor opens.
    lifetime: Duration,
    send: ChaCha20Poly1305,
    recv: ChaCha20Poly1305,
    sent: u64,
    window: ReplayWindow,
}

impl Session {
    pub(crate) fn new(
        local_id: u64,
        remote_id: u64,
        peer: PeerId,
        suite: Suite,
        keys: SessionKeys,
        initiated: bool,
        now: Instant,
    ) -> Self {
        Self {
            local_id,
            remote_id,
            peer,
            suite,
            initiated,
            established: now,
            lifetime: RekeyPolicy::default().lifetime(),
            // The cipher states wipe their keys when dropped (feature `zeroize`).
            send: ChaCha20Poly1305::new(&keys.send.into()),
            recv: ChaCha20Poly1305::new(&keys.recv.into()),
            sent: 0,
            window: ReplayWindow::default(),
        }
    }

    /// Frames sealed so far.
    pub fn sealed(&self) -> u64 {
        self.sent
    }

    /// Whether `policy` says to replace this session now.
    pub fn needs_rekey(&self, policy: &RekeyPolicy, now: Instant) -> bool {
        self.sent >= policy.after_frames || now.duration_since(self.established) >= policy.after
    }

    /// Sets the hard lifetime from `policy` (the default policy's until then).
    pub fn limit_lifetime(&mut self, policy: &RekeyPolicy) {
        self.lifetime = policy.lifetime();
    }

    /// Whether the session is past its hard lifetime at `now`.
    pub fn expired(&self, now: Instant) -> bool {
        now.duration_since(self.established) >= self.lifetime
    }

    /// Seals `plaintext` into a frame for the peer, with `context` (not sent)
    /// authenticated beside the frame's header.
    pub fn seal(&mut self, plaintext: &[u8], context: &[u8], now: Instant) -> Result<Vec<u8>, Reject> {
        if self.expired(now) {
            return Err(Reject::SessionExpired);
        }
        let counter = self.sent;
        self.sent += 1;
        let header = header(self.remote_id, counter);
        let mut frame = Vec::with_capacity(SEAL_OVERHEAD + plaintext.len());
        frame.extend_from_slice(&header);
        frame.extend_from_slice(plaintext);
        let tag = self
            .send
            .encrypt_inout_detached(
                &nonce(counter),
                &associated_data(&header, context),
                frame[HEADER_LEN..].as_mut().into(),
            )
            .map_err(|_| Reject::Malformed("plaintext too long"))?;
        frame.extend_from_slice(&tag);
        Ok(frame)
    }

    /// Opens a frame from the peer sealed with `context`: authenticates it,
    /// refuses replays, frames older than the window, and every frame once
    /// the session is past its lifetime.
    pub fn open(&mut self, frame: &[u8], context: &[u8], now: Instant) -> Result<Vec<u8>, Reject> {
        let (receiver, counter) = frame_header(frame)?;
        if receiver != self.local_id {
            return Err(Reject::UnknownSession);
        }
        if self.expired(now) {
            return Err(Reject::SessionExpired);
        }
        self.window.check(counter)?;
        let plaintext = self
            .recv
            .decrypt(
                &nonce(counter),
                Payload {
                    msg: &frame[HEADER_LEN..],
                    aad: &associated_data(&frame[..HEADER_LEN], context),
                },
            )
            .map_err(|_| Reject::DecryptFailed)?;
        self.window.accept(counter)?;
        Ok(plaintext)
    }
}

/// A frame's header followed by its context.
fn associated_data(header: &[u8], context: &[u8]) -> Vec<u8> {
    [header, context].concat()
}

/// The receiver's session id and the counter of a sealed frame.
pub fn frame_header(frame: &[u8]) -> Result<(u64, u64), Reject> {
    if frame.len() < SEAL_OVERHEAD {
        return Err(Reject::Malformed("sealed frame"));
    }
    let mut id = [0u8; 8];
    let mut counter = [0u8; 8];
    id.copy_from_slice(&frame[..8]);
    counter.copy_from_slice(&frame[8..16]);
    Ok((u64::from_be_bytes(id), u64::from_be_bytes(counter)))
}

fn header(receiver: u64, counter: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(&receiver.to_be_bytes());
    h[8..].copy_from_slice(&counter.to_be_bytes());
    h
}

fn nonce(counter: u64) -> chacha20poly1305::Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_be_bytes());
    n.into()
}
