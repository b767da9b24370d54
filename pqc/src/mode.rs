//! The key exchanges a node offers and accepts (`pqc.mode`).
//!
//! A node that wants post-quantum sessions never settles for a classical one
//! on its own guess: with the responder's key binding at hand it offers the
//! hybrid suite only; without one it asks ([`Offer::Ask`]), and a responder
//! that has post-quantum keys answers with its binding, so the handshake starts
//! again hybrid. Only a responder that signs, in its Reply, that it is
//! classical-only gets a classical session (`preferred`: counted and alerted;
//! `required`: refused).

use std::str::FromStr;

use crate::Reject;

/// The key exchange of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    /// X25519 alone, transcript signed with the libp2p (ed25519) keys.
    X25519,
    /// X-Wing (X25519 and ML-KEM-768), authenticated by decapsulation.
    X25519MlKem768,
}

impl Suite {
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
        match self {
            Suite::X25519 => 1,
            Suite::X25519MlKem768 => 2,
        }
    }
}

/// What an initiator offers in its Init.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// X25519 only: the initiator's own mode is `off`.
    Classical,
    /// X-Wing: the initiator holds the responder's binding.
    Hybrid,
    /// X25519 for now, from a responder that proves it is classical-only; a
    /// responder with post-quantum keys answers with its binding instead.
    Ask,
}

impl Offer {
    pub(crate) fn from_byte(byte: u8) -> Result<Self, Reject> {
        match byte {
            1 => Ok(Offer::Classical),
            2 => Ok(Offer::Hybrid),
            3 => Ok(Offer::Ask),
            _ => Err(Reject::Malformed("offer")),
        }
    }

    pub(crate) fn to_byte(self) -> u8 {
        match self {
            Offer::Classical => 1,
            Offer::Hybrid => 2,
            Offer::Ask => 3,
        }
    }
}

/// How a responder answers an offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// A session of this suite.
    Session(Suite),
    /// Its key binding, so the initiator starts again with the hybrid suite.
    Capability,
}

/// Which key exchanges a node accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PqcMode {
    /// Post-quantum sessions only.
    Required,
    /// Post-quantum sessions; classical ones only with peers that prove they
    /// are classical-only (counted and alerted).
    #[default]
    Preferred,
    /// Classical sessions only; no post-quantum keys announced.
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
    /// What to offer a peer whose binding this node holds or not.
    pub fn offer(self, has_binding: bool) -> Offer {
        match (self, has_binding) {
            (PqcMode::Off, _) => Offer::Classical,
            (_, true) => Offer::Hybrid,
            (_, false) => Offer::Ask,
        }
    }

    /// The responder's answer to `offer`.
    pub fn answer(self, offer: Offer) -> Result<Answer, Reject> {
        match (self, offer) {
            (PqcMode::Off, Offer::Hybrid) => Err(Reject::PqOff),
            (PqcMode::Off, Offer::Classical | Offer::Ask) => Ok(Answer::Session(Suite::X25519)),
            (PqcMode::Required, Offer::Classical) => Err(Reject::PqRequired),
            (PqcMode::Preferred, Offer::Classical) => Ok(Answer::Session(Suite::X25519)),
            (_, Offer::Ask) => Ok(Answer::Capability),
            (_, Offer::Hybrid) => Ok(Answer::Session(Suite::X25519MlKem768)),
        }
    }

    /// Whether the initiator takes a classical session from a responder that
    /// signed that it is classical-only.
    pub fn accept_classical(self) -> Result<(), Reject> {
        match self {
            PqcMode::Required => Err(Reject::PqRequired),
            PqcMode::Preferred | PqcMode::Off => Ok(()),
        }
    }

    /// Whether a session of `suite` is a fallback this mode counts and alerts.
    pub fn is_fallback(self, suite: Suite) -> bool {
        self == PqcMode::Preferred && !suite.is_hybrid()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_answers_and_acceptance_follow_the_mode() {
        use PqcMode::*;
        assert_eq!(Preferred.offer(true), Offer::Hybrid);
        assert_eq!(Preferred.offer(false), Offer::Ask, "no silent classical offer");
        assert_eq!(Required.offer(false), Offer::Ask);
        assert_eq!(Off.offer(true), Offer::Classical);
        assert_eq!(Preferred.answer(Offer::Ask), Ok(Answer::Capability));
        assert_eq!(Off.answer(Offer::Ask), Ok(Answer::Session(Suite::X25519)));
        assert_eq!(Off.answer(Offer::Hybrid), Err(Reject::PqOff));
        assert_eq!(Required.answer(Offer::Classical), Err(Reject::PqRequired));
        assert_eq!(Preferred.answer(Offer::Classical), Ok(Answer::Session(Suite::X25519)));
        assert_eq!(Required.accept_classical(), Err(Reject::PqRequired));
        assert!(Preferred.accept_classical().is_ok());
        for byte in 0..=255u8 {
            if let Ok(offer) = Offer::from_byte(byte) {
                assert_eq!(offer.to_byte(), byte);
            }
        }
    }
}
