//! Wire format of routed frames.
//!
//! Frames travel hop by hop over long-lived libp2p streams, each prefixed on the
//! stream by its length as a big-endian `u32` (see [`crate::mesh::streams`]). A frame is:
//!
//! ```text
//! version u8 | kind u8 | ttl u8 | hops u8 | id u64 | src_len u8 | src | dst_len u8 | dst | payload
//! ```
//!
//! `src` and `dst` are libp2p peer ids in their binary form. Transit hops read only
//! this header; the payload is opaque to them.

use bytes::{BufMut, Bytes, BytesMut};
use libp2p::PeerId;
use thiserror::Error;

/// Current frame format version.
pub const FRAME_VERSION: u8 = 1;
/// Fixed part of the header: version, kind, ttl, hops, id, and the two length bytes.
const FIXED_HEADER: usize = 1 + 1 + 1 + 1 + 8 + 1 + 1;
/// Longest peer id accepted in a header (identity multihash of a large key).
const MAX_PEER_ID_LEN: usize = 64;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// An application message, delivered to the destination's inbox.
    Data = 0,
    /// A benchmark probe: the payload starts with the send time, counted not stored.
    Probe = 1,
    /// An echo request; the destination answers with [`FrameKind::EchoReply`].
    Echo = 2,
    /// The answer to an echo request, carrying the request's id.
    EchoReply = 3,
    /// A report sent back to the source: its frame could not be delivered.
    Undeliverable = 4,
    /// A message the source retransmits until acknowledged; the payload starts
    /// with the end-to-end message id (each transmission has its own frame id).
    Reliable = 5,
    /// Acknowledges a [`FrameKind::Reliable`] message; the payload is its message id.
    Ack = 6,
    /// A message of the end-to-end handshake (see [`crate::secure`]).
    Handshake = 7,
    /// A `Data`, `Reliable` or `Ack` message sealed for its destination.
    Sealed = 8,
}

impl FrameKind {
    /// The kind with wire code `v`.
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => Self::Data,
            1 => Self::Probe,
            2 => Self::Echo,
            3 => Self::EchoReply,
            4 => Self::Undeliverable,
            5 => Self::Reliable,
            6 => Self::Ack,
            7 => Self::Handshake,
            8 => Self::Sealed,
            _ => return None,
        })
    }

    /// Whether messages of this kind travel sealed between nodes.
    pub fn is_sealable(self) -> bool {
        matches!(self, Self::Data | Self::Reliable | Self::Ack)
    }
}

/// Why a frame was rejected. Each variant is counted under its [`RejectReason::label`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RejectReason {
    /// Header truncated, unknown kind or unreadable peer id.
    #[error("malformed frame")]
    Malformed,
    /// Frame format version this node does not speak.
    #[error("unsupported frame version")]
    BadVersion,
    /// Length prefix above the configured maximum frame size.
    #[error("frame larger than the maximum frame size")]
    Oversized,
    /// The frame's time to live ran out.
    #[error("ttl expired")]
    TtlExpired,
    /// No route to the destination.
    #[error("unknown destination")]
    UnknownDestination,
    /// Same (source, id) seen before.
    #[error("duplicate message id")]
    Duplicate,
    /// The next hop's queue stayed full: dropped instead of blocking every other peer.
    #[error("next hop queue full")]
    QueueFull,
    /// A message that must travel sealed arrived in plain text.
    #[error("unsealed message")]
    Unsealed,
    /// The end-to-end session refused it (see `x0tta_pqc_*` for the reason).
    #[error("refused by the end-to-end session")]
    Session,
    /// Dropped under overload: the next hop's queue was congested and the
    /// sender had sent more than its fair share (see `router::fair_share`).
    #[error("sender over its fair share of a congested relay")]
    OverFairShare,
}

impl RejectReason {
    /// Stable metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::BadVersion => "bad_version",
            Self::Oversized => "oversized",
            Self::TtlExpired => "ttl_expired",
            Self::UnknownDestination => "unknown_destination",
            Self::Duplicate => "duplicate",
            Self::QueueFull => "queue_full",
            Self::Unsealed => "unsealed",
            Self::Session => "session",
            Self::OverFairShare => "over_fair_share",
        }
    }

    /// Code carried in an [`FrameKind::Undeliverable`] report.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// Inverse of [`RejectReason::code`].
    pub fn from_code(code: u8) -> Option<Self> {
        [
            Self::Malformed,
            Self::BadVersion,
            Self::Oversized,
            Self::TtlExpired,
            Self::UnknownDestination,
            Self::Duplicate,
            Self::QueueFull,
            Self::Unsealed,
            Self::Session,
            Self::OverFairShare,
        ]
        .into_iter()
        .find(|r| r.code() == code)
    }
}

/// A parsed frame header; the payload stays a slice of the received buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// What the payload is.
    pub kind: FrameKind,
    /// Hops left before the frame is dropped.
    pub ttl: u8,
    /// Links traversed so far.
    pub hops: u8,
    /// Message id, unique per source.
    pub id: u64,
    /// Originating node.
    pub src: PeerId,
    /// Final destination.
    pub dst: PeerId,
    /// Opaque payload.
    pub payload: Bytes,
}

impl Frame {
    /// Parses a frame received from the network. Never panics on any input.
    pub fn decode(mut buf: Bytes) -> Result<Self, RejectReason> {
        if buf.len() < FIXED_HEADER {
            return Err(RejectReason::Malformed);
        }
        if buf[0] != FRAME_VERSION {
            return Err(RejectReason::BadVersion);
        }
        let kind = FrameKind::from_u8(buf[1]).ok_or(RejectReason::Malformed)?;
        let ttl = buf[2];
        let hops = buf[3];
        let mut id = [0u8; 8];
        id.copy_from_slice(&buf[4..12]);
        let id = u64::from_be_bytes(id);
        let _ = buf.split_to(12);
        let src = take_peer_id(&mut buf)?;
        let dst = take_peer_id(&mut buf)?;
        Ok(Self {
            kind,
            ttl,
            hops,
            id,
            src,
            dst,
            payload: buf,
        })
    }

    /// Serializes the frame.
    pub fn encode(&self) -> Bytes {
        let src = self.src.to_bytes();
        let dst = self.dst.to_bytes();
        let mut out = BytesMut::with_capacity(FIXED_HEADER + src.len() + dst.len() + self.payload.len());
        out.put_u8(FRAME_VERSION);
        out.put_u8(self.kind as u8);
        out.put_u8(self.ttl);
        out.put_u8(self.hops);
        out.put_u64(self.id);
        put_peer_id(&mut out, &src);
        put_peer_id(&mut out, &dst);
        out.put_slice(&self.payload);
        out.freeze()
    }
}

fn take_peer_id(buf: &mut Bytes) -> Result<PeerId, RejectReason> {
    let len = *buf.first().ok_or(RejectReason::Malformed)? as usize;
    if len == 0 || len > MAX_PEER_ID_LEN || buf.len() < 1 + len {
        return Err(RejectReason::Malformed);
    }
    let id = PeerId::from_bytes(&buf[1..1 + len]).map_err(|_| RejectReason::Malformed)?;
    let _ = buf.split_to(1 + len);
    Ok(id)
}

fn put_peer_id(out: &mut BytesMut, id: &[u8]) {
    // Peer ids of the key types libp2p supports are far below 255 bytes.
    let len = u8::try_from(id.len()).unwrap_or(u8::MAX);
    out.put_u8(len);
    out.put_slice(&id[..len as usize]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Frame {
        Frame {
            kind: FrameKind::Data,
            ttl: 16,
            hops: 1,
            id: 42,
            src: PeerId::random(),
            dst: PeerId::random(),
            payload: Bytes::from_static(b"hello"),
        }
    }

    #[test]
    fn round_trip() {
        let frame = sample();
        assert_eq!(Frame::decode(frame.encode()), Ok(frame));
    }

    #[test]
    fn every_truncation_is_rejected_without_panic() {
        let bytes = sample().encode();
        let header_len = bytes.len() - 5;
        for cut in 0..header_len {
            assert_eq!(
                Frame::decode(bytes.slice(..cut)),
                Err(RejectReason::Malformed),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn unknown_version_and_kind_are_rejected() {
        let mut bytes = sample().encode().to_vec();
        bytes[0] = 9;
        assert_eq!(Frame::decode(bytes.clone().into()), Err(RejectReason::BadVersion));
        bytes[0] = FRAME_VERSION;
        bytes[1] = 200;
        assert_eq!(Frame::decode(bytes.into()), Err(RejectReason::Malformed));
    }

    #[test]
    fn random_garbage_never_panics() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..10_000 {
            let len = rng.gen_range(0..200);
            let mut buf: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            if let Some(b) = buf.first_mut() {
                *b = FRAME_VERSION;
            }
            let _ = Frame::decode(buf.into());
        }
    }

    #[test]
    fn reject_codes_round_trip() {
        for reason in [
            RejectReason::TtlExpired,
            RejectReason::UnknownDestination,
            RejectReason::QueueFull,
        ] {
            assert_eq!(RejectReason::from_code(reason.code()), Some(reason));
        }
    }
}
