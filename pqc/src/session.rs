//! An established session: one ChaCha20-Poly1305 key per direction, a frame
//! counter as nonce, a replay window on receive, and a rekey deadline.
//!
//! Sealed frame: `receiver session id (8) | counter (8) | ciphertext | tag (16)`.
//! The first 16 bytes are authenticated as associated data.

use std::time::{Duration, Instant};

use chacha20poly1305::aead::{Aead as _, Payload};
use chacha20poly1305::{AeadInOut as _, ChaCha20Poly1305, KeyInit as _};
use libp2p::PeerId;

use crate::replay::ReplayWindow;
use crate::{Reject, Suite};

/// Bytes a sealed frame adds to its plaintext.
pub const SEAL_OVERHEAD: usize = HEADER_LEN + 16;
const HEADER_LEN: usize = 16;

/// When a session should be replaced by a fresh handshake.
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

/// Keys of one direction pair, from the handshake's key schedule.
pub(crate) struct SessionKeys {
    pub send: [u8; 32],
    pub recv: [u8; 32],
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
    /// When the handshake completed.
    pub established: Instant,
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
        now: Instant,
    ) -> Self {
        Self {
            local_id,
            remote_id,
            peer,
            suite,
            established: now,
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

    /// Seals `plaintext` into a frame for the peer.
    pub fn seal(&mut self, plaintext: &[u8]) -> Vec<u8> {
        let counter = self.sent;
        self.sent += 1;
        let header = header(self.remote_id, counter);
        let mut frame = Vec::with_capacity(SEAL_OVERHEAD + plaintext.len());
        frame.extend_from_slice(&header);
        frame.extend_from_slice(plaintext);
        // ChaCha20-Poly1305 refuses only messages over 256 GiB.
        if let Ok(tag) = self
            .send
            .encrypt_inout_detached(&nonce(counter), &header, frame[HEADER_LEN..].as_mut().into())
        {
            frame.extend_from_slice(&tag);
        }
        frame
    }

    /// Opens a frame from the peer: authenticates it, refuses replays and
    /// frames older than the window.
    pub fn open(&mut self, frame: &[u8]) -> Result<Vec<u8>, Reject> {
        let (receiver, counter) = frame_header(frame)?;
        if receiver != self.local_id {
            return Err(Reject::UnknownSession);
        }
        self.window.check(counter)?;
        let plaintext = self
            .recv
            .decrypt(
                &nonce(counter),
                Payload {
                    msg: &frame[HEADER_LEN..],
                    aad: &frame[..HEADER_LEN],
                },
            )
            .map_err(|_| Reject::DecryptFailed)?;
        self.window.accept(counter)?;
        Ok(plaintext)
    }
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
