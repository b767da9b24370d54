//! Why a handshake message or a sealed frame was refused. Every reason has a
//! stable label for `x0tta_pqc_handshakes_total{result}` and
//! `x0tta_pqc_frames_rejected_total{reason}`.

use thiserror::Error;

/// A refused handshake message or frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Reject {
    /// Too short, too long, or a field out of range.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// A protocol version this node does not speak (1: a node from before
    /// handshake version 2, which must be upgraded).
    #[error("unsupported handshake version {0} (this node speaks version 2; a version 1 peer must be upgraded)")]
    UnsupportedVersion(u8),
    /// The Init names another initiator than the frame's source (refused
    /// before any KEM work).
    #[error("the init names another initiator than its source")]
    SourceMismatch,
    /// The peer offered post-quantum key exchange only and this node has it off.
    #[error("the peer offers post-quantum key exchange only and pqc.mode is off here")]
    PqOff,
    /// A key confirmation MAC did not check: the peer does not hold the
    /// static key it claims, or the messages were altered.
    #[error("key confirmation failed")]
    BadConfirmation,
    /// A key binding older than the newest one seen for the peer.
    #[error("key binding older than the newest one seen for the peer")]
    StaleBinding,
    /// The session is older than its hard lifetime (three rekey intervals).
    #[error("session past its lifetime")]
    SessionExpired,
    /// The policy requires post-quantum key exchange and the peer did not offer
    /// or choose it.
    #[error("post-quantum key exchange required, peer offered classical only")]
    PqRequired,
    /// The responder saw a different offer than the initiator sent: someone
    /// between them stripped or changed it.
    #[error("downgrade: the offer was changed in transit")]
    Downgrade,
    /// A classical transcript signature did not verify with the peer's libp2p key.
    #[error("bad transcript signature")]
    BadSignature,
    /// The peer's key binding is missing or does not verify.
    #[error("no valid post-quantum key binding for the peer")]
    BadBinding,
    /// The responder has not learnt the initiator's post-quantum keys yet (its
    /// beacon has not arrived); the initiator sends its Init again.
    #[error("the peer's post-quantum keys are not known yet")]
    BindingUnknown,
    /// Handshake message for a handshake this node does not have.
    #[error("unknown or expired handshake")]
    UnknownHandshake,
    /// The responder is under load and wants a cookie round trip first.
    #[error("cookie required")]
    CookieRequired,
    /// The cookie does not match (forged, or from another address or key).
    #[error("bad cookie")]
    BadCookie,
    /// A frame for a session this node does not have.
    #[error("unknown session")]
    UnknownSession,
    /// Authentication of a frame failed (tampered or wrong key).
    #[error("frame failed authentication")]
    DecryptFailed,
    /// A frame counter already seen.
    #[error("replayed frame")]
    Replayed,
    /// A frame counter older than the replay window.
    #[error("frame older than the replay window")]
    TooOld,
    /// The peer started handshakes faster than its token bucket allows.
    #[error("too many handshakes from this peer")]
    RateLimited,
}

impl Reject {
    /// Metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Reject::Malformed(_) => "malformed",
            Reject::UnsupportedVersion(_) => "unsupported_version",
            Reject::SourceMismatch => "source_mismatch",
            Reject::PqOff => "pq_off",
            Reject::BadConfirmation => "bad_confirmation",
            Reject::StaleBinding => "stale_binding",
            Reject::SessionExpired => "session_expired",
            Reject::PqRequired => "pq_required",
            Reject::Downgrade => "downgrade",
            Reject::BadSignature => "bad_signature",
            Reject::BadBinding => "bad_binding",
            Reject::BindingUnknown => "binding_unknown",
            Reject::UnknownHandshake => "unknown_handshake",
            Reject::CookieRequired => "cookie_required",
            Reject::BadCookie => "bad_cookie",
            Reject::UnknownSession => "unknown_session",
            Reject::DecryptFailed => "decrypt_failed",
            Reject::Replayed => "replayed",
            Reject::TooOld => "too_old",
            Reject::RateLimited => "rate_limited",
        }
    }
}
