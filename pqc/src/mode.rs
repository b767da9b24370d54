//! The key exchanges a node offers and accepts (`pqc.mode`).

use std::str::FromStr;

use crate::identity::PeerKeys;
use crate::Reject;

/// The key exchange of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    /// X25519 alone, transcript signed with the libp2p (ed25519) key.
    X25519,
    /// X25519 and ML-KEM-768, transcript signed with ML-DSA-65.
    X25519MlKem768,
}

impl Suite {
    fn bit(self) -> u8 {
        match self {
            Suite::X25519 => 1,
            Suite::X25519MlKem768 => 2,
        }
    }

    /// Whether the session is post-quantum.
    pub fn is_hybrid(self) -> bool {
        self == Suite::X25519MlKem768
    }

    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Suite::X25519 => "x25519",
            Suite::X25519MlKem768 => "x25519_mlkem768",
        }
    }

    pub(crate) fn from_byte(byte: u8) -> Result<Self, Reject> {
        match byte {
            1 => Ok(Suite::X25519),
            2 => Ok(Suite::X25519MlKem768),
            _ => Err(Reject::Malformed("suite")),
        }
    }

    pub(crate) fn to_byte(self) -> u8 {
        self.bit()
    }
}

/// The suites an initiator offers, as a bit set (part of the signed transcript).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offer(u8);

impl Offer {
    const ALL: u8 = 3;

    /// Whether `suite` is offered.
    pub fn has(self, suite: Suite) -> bool {
        self.0 & suite.bit() != 0
    }

    pub(crate) fn from_byte(byte: u8) -> Result<Self, Reject> {
        match byte != 0 && byte & !Self::ALL == 0 {
            true => Ok(Offer(byte)),
            false => Err(Reject::Malformed("offer")),
        }
    }

    pub(crate) fn to_byte(self) -> u8 {
        self.0
    }
}

/// Policy for post-quantum key exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PqcMode {
    /// Hybrid only: classical-only peers are refused.
    Required,
    /// Hybrid when the peer can; otherwise X25519 alone, with a warning,
    /// a metric and an alert.
    #[default]
    Preferred,
    /// X25519 alone (tests, and peers without post-quantum support).
    Off,
}

impl FromStr for PqcMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "required" => Ok(PqcMode::Required),
            "preferred" => Ok(PqcMode::Preferred),
            "off" => Ok(PqcMode::Off),
            other => Err(format!("pqc.mode must be required, preferred or off, not {other:?}")),
        }
    }
}

impl PqcMode {
    /// What to offer `peer`.
    pub fn offer(self, peer: &PeerKeys) -> Result<Offer, Reject> {
        let hybrid = Suite::X25519MlKem768.bit();
        let classical = Suite::X25519.bit();
        match (self, peer.pq.is_some()) {
            (PqcMode::Required, true) => Ok(Offer(hybrid)),
            (PqcMode::Required, false) => Err(Reject::PqRequired),
            (PqcMode::Preferred, true) => Ok(Offer(hybrid | classical)),
            (PqcMode::Preferred, false) | (PqcMode::Off, _) => Ok(Offer(classical)),
        }
    }

    /// The responder's choice from `offer`.
    pub fn choose(self, offer: Offer) -> Result<Suite, Reject> {
        match self {
            PqcMode::Required if offer.has(Suite::X25519MlKem768) => Ok(Suite::X25519MlKem768),
            PqcMode::Required => Err(Reject::PqRequired),
            PqcMode::Preferred if offer.has(Suite::X25519MlKem768) => Ok(Suite::X25519MlKem768),
            PqcMode::Preferred | PqcMode::Off if offer.has(Suite::X25519) => Ok(Suite::X25519),
            PqcMode::Preferred | PqcMode::Off => Err(Reject::PqRequired),
        }
    }

    /// The initiator's check of the responder's choice.
    pub fn accept(self, offer: Offer, chosen: Suite) -> Result<(), Reject> {
        if !offer.has(chosen) {
            return Err(Reject::Malformed("suite not offered"));
        }
        match (self, chosen) {
            (PqcMode::Required, Suite::X25519) => Err(Reject::PqRequired),
            _ => Ok(()),
        }
    }

    /// Whether a session with `suite` is a fallback this node should warn about.
    pub fn is_fallback(self, suite: Suite) -> bool {
        self == PqcMode::Preferred && !suite.is_hybrid()
    }
}
