//! Beacons: what every node tells the mesh about itself on `x0tta6bl4/beacons/1`.
//!
//! A beacon carries the node's peer id, name, listen addresses, a sequence number,
//! a timestamp and its links with measured RTT and loss. Beacons are gossipsub
//! messages signed by the node's libp2p key; [`Beacon::validate`] also checks that
//! the claimed peer id is the signer, so nobody can speak for another node.
//! A node with an SPIFFE identity also carries its current X.509-SVID chain,
//! which receivers that require one check (see [`super::svid_admission`]).

use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use base64::Engine as _;
use x0tta6bl4_pqc::KeyBinding;

use super::LinkQuality;

/// Gossipsub topic of beacons.
pub const BEACON_TOPIC: &str = "x0tta6bl4/beacons/1";
/// Largest encoded beacon accepted.
pub const MAX_BEACON_BYTES: usize = 16 * 1024;
/// Most addresses a beacon may list.
pub const MAX_ADDRS: usize = 16;
/// Most links a beacon may list.
pub const MAX_LINKS: usize = 256;
/// Longest node name.
pub const MAX_NAME: usize = 64;

/// A link as its owner measured it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkReport {
    /// The neighbour.
    pub peer_id: String,
    /// Round-trip time in milliseconds (the smallest of the recent pings).
    pub rtt_ms: f64,
    /// Share of recent pings lost, 0.0 ..= 1.0.
    pub loss: f64,
    /// The owner's healer routes around this link; everyone weighs it so.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub avoided: bool,
}

/// Beacon as it travels on the wire (JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Beacon {
    /// Sender's libp2p peer id.
    pub peer_id: String,
    /// Human-friendly node name.
    pub name: String,
    /// Addresses the sender listens on.
    pub addrs: Vec<String>,
    /// Increases with every beacon of the sender, across restarts.
    pub seq: u64,
    /// Sender's clock, Unix milliseconds.
    pub timestamp_ms: u64,
    /// Sender's live links.
    pub links: Vec<LinkReport>,
    /// The sender's post-quantum key binding, base64 (absent on classical-only nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pq_binding: Option<String>,
    /// ML-DSA-65 signature, base64, over this beacon encoded without it
    /// (post-quantum beacons only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pq_signature: Option<String>,
    /// The sender's current X.509-SVID, leaf first, each certificate DER in
    /// base64 (absent on nodes without an SPIFFE identity).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub svid_chain: Vec<String>,
}

/// A beacon that passed validation, with typed fields.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidBeacon {
    /// Sender (equal to the gossipsub signer).
    pub peer: PeerId,
    /// Node name.
    pub name: String,
    /// Dialable addresses.
    pub addrs: Vec<Multiaddr>,
    /// Sequence number.
    pub seq: u64,
    /// Sender's clock, Unix milliseconds.
    pub timestamp_ms: u64,
    /// The sender's links.
    pub links: Vec<LinkQuality>,
    /// The sender's post-quantum key binding (parsed, not yet verified).
    pub binding: Option<Box<KeyBinding>>,
    /// The ML-DSA-65 signature and the bytes it signs, when present.
    pub pq_signed: Option<PqSigned>,
    /// The sender's X.509-SVID chain, leaf first, DER (not yet validated).
    pub svid_chain: Vec<Vec<u8>>,
}

/// A beacon's post-quantum signature with the bytes it covers.
#[derive(Debug, Clone, PartialEq)]
pub struct PqSigned {
    /// The signature.
    pub signature: Vec<u8>,
    /// The beacon encoded without its signature.
    pub message: Vec<u8>,
}

/// ML-DSA context of beacon signatures.
pub const PQ_BEACON_CONTEXT: &[u8] = b"x0tta6bl4/beacon/1";

/// Why a beacon was dropped. Counted in `x0tta_beacons_rejected_total{reason}`.
#[derive(Debug, Error, PartialEq)]
pub enum BeaconError {
    /// Larger than [`MAX_BEACON_BYTES`].
    #[error("beacon of {0} bytes exceeds the limit")]
    TooLarge(usize),
    /// Not the JSON shape of a beacon.
    #[error("malformed beacon: {0}")]
    Malformed(String),
    /// Gossipsub message without an author.
    #[error("unsigned beacon")]
    Unsigned,
    /// Post-quantum beacons are required and this one has no ML-DSA signature
    /// or no key binding.
    #[error("beacon without a post-quantum signature")]
    PqUnsigned,
    /// The ML-DSA signature or the key binding does not verify.
    #[error("beacon with a bad post-quantum signature")]
    PqBadSignature,
    /// Peer id field does not match the signer.
    #[error("beacon claims peer {claimed} but was signed by {signer}")]
    SourceMismatch {
        /// Peer id written in the beacon.
        claimed: String,
        /// Peer that signed it.
        signer: PeerId,
    },
    /// Too many addresses or links, or a name too long.
    #[error("beacon lists too much: {0}")]
    TooMany(&'static str),
    /// An address, link peer id or measurement is not valid.
    #[error("invalid beacon field: {0}")]
    InvalidField(&'static str),
    /// SVIDs are required and this beacon carries none.
    #[error("beacon without an SVID")]
    SvidMissing,
    /// The beacon's SVID does not validate (the reason is counted in
    /// `x0tta_svid_validations_total`).
    #[error("beacon with a refused SVID: {0}")]
    SvidRefused(crate::svid::Refusal),
    /// The SVID is valid but names another node than the beacon's sender.
    #[error("the beacon's SVID names {0}, not its sender")]
    SvidNotOwn(String),
}

impl BeaconError {
    /// Stable metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Self::TooLarge(_) => "too_large",
            Self::Malformed(_) => "malformed",
            Self::Unsigned => "unsigned",
            Self::PqUnsigned => "pq_unsigned",
            Self::PqBadSignature => "pq_bad_signature",
            Self::SourceMismatch { .. } => "source_mismatch",
            Self::TooMany(_) => "too_many",
            Self::InvalidField(_) => "invalid_field",
            Self::SvidMissing => "svid_missing",
            Self::SvidRefused(_) => "svid_refused",
            Self::SvidNotOwn(_) => "svid_not_own",
        }
    }
}

impl Beacon {
    /// Signs the beacon with `identity`'s ML-DSA-65 key (post-quantum beacons).
    pub fn sign_pq(&mut self, identity: &x0tta6bl4_pqc::PqIdentity) {
        self.pq_signature = None;
        let signature = identity.sign(&self.encode(), PQ_BEACON_CONTEXT);
        self.pq_signature = Some(base64::engine::general_purpose::STANDARD.encode(signature));
    }

    /// Encodes the beacon for gossipsub, within the limits receivers check:
    /// at most [`MAX_LINKS`] links, and when the encoding (with a post-quantum
    /// signature by `pq`, if given) exceeds [`MAX_BEACON_BYTES`], the weakest
    /// links (most loss, then longest RTT) are left out until it fits. A node
    /// with more neighbours than a beacon can list must not send beacons that
    /// every receiver rejects (and scores against the relays). Returns the
    /// bytes and how many links were left out.
    pub fn encode_within_limits(mut self, pq: Option<&x0tta6bl4_pqc::PqIdentity>) -> (Vec<u8>, usize) {
        let listed = self.links.len();
        self.links
            .sort_by(|a, b| a.loss.total_cmp(&b.loss).then(a.rtt_ms.total_cmp(&b.rtt_ms)));
        self.links.truncate(MAX_LINKS);
        loop {
            if let Some(identity) = pq {
                self.sign_pq(identity);
            }
            let bytes = self.encode();
            if bytes.len() <= MAX_BEACON_BYTES || self.links.is_empty() {
                return (bytes, listed - self.links.len());
            }
            // Each link is about 100 bytes: drop enough at once to converge fast.
            let excess = (bytes.len() - MAX_BEACON_BYTES).div_ceil(80).max(1);
            self.links.truncate(self.links.len().saturating_sub(excess));
        }
    }

    /// Encodes the beacon for gossipsub.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses and checks a beacon received from `signer` (the gossipsub author).
    pub fn validate(bytes: &[u8], signer: Option<PeerId>) -> Result<ValidBeacon, BeaconError> {
        if bytes.len() > MAX_BEACON_BYTES {
            return Err(BeaconError::TooLarge(bytes.len()));
        }
        let signer = signer.ok_or(BeaconError::Unsigned)?;
        let mut beacon: Beacon = serde_json::from_slice(bytes).map_err(|e| BeaconError::Malformed(e.to_string()))?;
        let pq_signed = beacon
            .pq_signature
            .take()
            .map(|encoded| {
                let signature = base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .map_err(|_| BeaconError::InvalidField("pq_signature"))?;
                Ok(PqSigned {
                    signature,
                    message: beacon.encode(),
                })
            })
            .transpose()?;
        let peer: PeerId = beacon
            .peer_id
            .parse()
            .map_err(|_| BeaconError::InvalidField("peer_id"))?;
        if peer != signer {
            return Err(BeaconError::SourceMismatch {
                claimed: beacon.peer_id,
                signer,
            });
        }
        if beacon.addrs.len() > MAX_ADDRS {
            return Err(BeaconError::TooMany("addrs"));
        }
        if beacon.links.len() > MAX_LINKS {
            return Err(BeaconError::TooMany("links"));
        }
        if beacon.name.len() > MAX_NAME {
            return Err(BeaconError::TooMany("name"));
        }
        if beacon.svid_chain.len() > crate::svid::validate::MAX_CHAIN {
            return Err(BeaconError::TooMany("svid_chain"));
        }
        let addrs = beacon
            .addrs
            .iter()
            .map(|a| a.parse::<Multiaddr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| BeaconError::InvalidField("addrs"))?;
        let links = beacon
            .links
            .iter()
            .map(|l| {
                let id = l
                    .peer_id
                    .parse::<PeerId>()
                    .map_err(|_| BeaconError::InvalidField("links.peer_id"))?;
                let sane = l.rtt_ms.is_finite() && l.rtt_ms >= 0.0 && (0.0..=1.0).contains(&l.loss);
                if !sane {
                    return Err(BeaconError::InvalidField("links.rtt_ms/loss"));
                }
                Ok(LinkQuality {
                    peer: id,
                    rtt_ms: l.rtt_ms,
                    loss: l.loss,
                    avoided: l.avoided,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let binding = beacon
            .pq_binding
            .as_deref()
            .map(|encoded| {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .map_err(|_| BeaconError::InvalidField("pq_binding"))?;
                KeyBinding::decode(&bytes)
                    .map(Box::new)
                    .map_err(|_| BeaconError::InvalidField("pq_binding"))
            })
            .transpose()?;
        let svid_chain = beacon
            .svid_chain
            .iter()
            .map(|encoded| base64::engine::general_purpose::STANDARD.decode(encoded))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| BeaconError::InvalidField("svid_chain"))?;
        Ok(ValidBeacon {
            peer,
            name: beacon.name,
            addrs,
            seq: beacon.seq,
            timestamp_ms: beacon.timestamp_ms,
            links,
            binding,
            pq_signed,
            svid_chain,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beacon(peer: PeerId) -> Beacon {
        Beacon {
            peer_id: peer.to_string(),
            name: "a".into(),
            addrs: vec!["/ip4/127.0.0.1/tcp/4001".into()],
            seq: 1,
            timestamp_ms: 1,
            links: vec![LinkReport {
                peer_id: PeerId::random().to_string(),
                rtt_ms: 0.5,
                loss: 0.0,
                avoided: false,
            }],
            pq_binding: None,
            pq_signature: None,
            svid_chain: Vec::new(),
        }
    }

    #[test]
    fn a_key_binding_is_parsed_and_garbage_in_its_place_refused() {
        let key = libp2p::identity::Keypair::generate_ed25519();
        let peer = key.public().to_peer_id();
        let identity = x0tta6bl4_pqc::PqIdentity::new(key, &x0tta6bl4_pqc::PqSeeds::generate());
        let mut b = beacon(peer);
        b.pq_binding = Some(base64::engine::general_purpose::STANDARD.encode(identity.binding().encode()));
        let valid = Beacon::validate(&b.encode(), Some(peer)).expect("valid");
        assert_eq!(valid.binding.as_deref(), Some(identity.binding()));
        assert!(b.encode().len() < MAX_BEACON_BYTES / 2, "room left for links");
        b.pq_binding = Some("bm90IGEgYmluZGluZw==".into());
        assert_eq!(
            Beacon::validate(&b.encode(), Some(peer)).map(|_| ()),
            Err(BeaconError::InvalidField("pq_binding"))
        );
    }

    #[test]
    fn a_beacon_with_more_links_than_fit_leaves_out_the_weakest_and_still_validates() {
        let key = libp2p::identity::Keypair::generate_ed25519();
        let peer = key.public().to_peer_id();
        let identity = x0tta6bl4_pqc::PqIdentity::new(key, &x0tta6bl4_pqc::PqSeeds::generate());
        let mut b = beacon(peer);
        b.pq_binding = Some(base64::engine::general_purpose::STANDARD.encode(identity.binding().encode()));
        b.links = (0..120)
            .map(|i| LinkReport {
                peer_id: PeerId::random().to_string(),
                rtt_ms: 1.0 + f64::from(i),
                loss: if i % 2 == 0 { 0.0 } else { 0.5 },
                avoided: false,
            })
            .collect();
        let (bytes, left_out) = b.clone().encode_within_limits(Some(&identity));
        assert!(bytes.len() <= MAX_BEACON_BYTES, "{} bytes", bytes.len());
        assert!((1..120).contains(&left_out), "{left_out} left out");
        let valid = Beacon::validate(&bytes, Some(peer)).expect("valid");
        assert_eq!(valid.links.len(), 120 - left_out);
        assert!(valid.pq_signed.is_some(), "signed after trimming");
        let lossless = valid.links.iter().filter(|l| l.loss == 0.0).count();
        assert_eq!(
            lossless,
            valid.links.len().min(60),
            "the 60 lossless links are kept first"
        );
        b.links.truncate(3);
        let (small, none) = b.encode_within_limits(None);
        assert_eq!(none, 0);
        assert_eq!(Beacon::validate(&small, Some(peer)).expect("valid").links.len(), 3);
    }

    #[test]
    fn valid_beacon_round_trips() {
        let peer = PeerId::random();
        let valid = Beacon::validate(&beacon(peer).encode(), Some(peer)).expect("valid");
        assert_eq!(valid.peer, peer);
        assert_eq!(valid.links.len(), 1);
    }

    #[test]
    fn garbage_is_rejected_with_a_reason() {
        let peer = PeerId::random();
        let reason = |bytes: &[u8], signer| {
            Beacon::validate(bytes, signer)
                .map(|_| ())
                .expect_err("must be rejected")
                .label()
        };
        assert_eq!(reason(b"\xff\xfe not json", Some(peer)), "malformed");
        assert_eq!(reason(&vec![b' '; MAX_BEACON_BYTES + 1], Some(peer)), "too_large");
        assert_eq!(reason(&beacon(peer).encode(), None), "unsigned");
        assert_eq!(
            reason(&beacon(peer).encode(), Some(PeerId::random())),
            "source_mismatch"
        );

        let mut b = beacon(peer);
        b.links[0].loss = 7.0;
        assert_eq!(reason(&b.encode(), Some(peer)), "invalid_field");
        let mut b = beacon(peer);
        b.addrs = vec!["not an address".into()];
        assert_eq!(reason(&b.encode(), Some(peer)), "invalid_field");
        let mut b = beacon(peer);
        b.addrs = vec!["/ip4/127.0.0.1/tcp/1".into(); MAX_ADDRS + 1];
        assert_eq!(reason(&b.encode(), Some(peer)), "too_many");
        let mut b = beacon(peer);
        b.svid_chain = vec!["not base64!".into()];
        assert_eq!(reason(&b.encode(), Some(peer)), "invalid_field");
        b.svid_chain = vec!["AAAA".into(); crate::svid::validate::MAX_CHAIN + 1];
        assert_eq!(reason(&b.encode(), Some(peer)), "too_many");
    }
}
