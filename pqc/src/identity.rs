//! A node's post-quantum keys and the signed binding that ties them to its
//! libp2p peer id.
//!
//! Each node keeps an ML-DSA-65 signing key (post-quantum beacons) and a static
//! X-Wing key (the handshake), as seeds in sled, with the epoch they were made
//! in. Its libp2p key signs a [`KeyBinding`] of both public keys and the epoch
//! to the peer id; beacons carry the binding, and a peer verifies it
//! ([`KeyBinding::verify`]) before using the keys, and refuses one older than
//! the newest it has seen (see the sessions of the node).

use libcrux_ml_dsa::ml_dsa_65::{self as dsa, MLDSA65Signature, MLDSA65SigningKey, MLDSA65VerificationKey};
use libp2p::identity::{Keypair, PublicKey};
use libp2p::PeerId;
use zeroize::Zeroize as _;

use crate::wiped::Wiped;
use crate::wire::{Reader, Writer};
use crate::xwing::{self, XWingSecret};
use crate::Reject;

/// ML-DSA-65 public key length.
pub const DSA_PUBLIC_LEN: usize = 1952;
/// ML-DSA-65 signature length.
pub const DSA_SIGNATURE_LEN: usize = 3309;
/// X-Wing public key length.
pub const KEM_PUBLIC_LEN: usize = xwing::PUBLIC_LEN;
/// X-Wing ciphertext length.
pub const KEM_CIPHERTEXT_LEN: usize = xwing::CIPHERTEXT_LEN;

const BINDING_LABEL: &[u8] = b"x0tta6bl4/pq-binding/2";
/// Stored seeds: ML-DSA seed, X-Wing seed, epoch.
const SEEDS_LEN: usize = 72;
/// Seeds stored by version 1 (ML-DSA seed, ML-KEM seed), read once to migrate.
const SEEDS_V1_LEN: usize = 96;

/// Seeds of a node's post-quantum keys and their epoch: all that needs storing.
#[derive(Clone)]
pub struct PqSeeds {
    /// ML-DSA-65 key seed (ξ of FIPS 204).
    pub dsa: [u8; 32],
    /// X-Wing key seed.
    pub xwing: [u8; 32],
    /// When the keys were made (Unix seconds, or one more than the epoch they
    /// replaced): peers refuse a binding older than the newest they have seen.
    pub epoch: u64,
}

impl PqSeeds {
    /// Fresh random seeds, of the current epoch.
    pub fn generate() -> Self {
        Self {
            dsa: random(),
            xwing: random(),
            epoch: unix_secs(),
        }
    }

    /// New keys replacing these, of a later epoch (`x0tta6bl4 keys rotate`).
    pub fn rotate(&self) -> Self {
        let mut seeds = Self::generate();
        seeds.epoch = seeds.epoch.max(self.epoch + 1);
        seeds
    }

    /// The stored bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        [&self.dsa[..], &self.xwing[..], &self.epoch.to_be_bytes()].concat()
    }

    /// Seeds from stored bytes; version 1's (whose ML-KEM seed begins the
    /// X-Wing seed, epoch 1) are read too.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let mut seeds = Self {
            dsa: [0; 32],
            xwing: [0; 32],
            epoch: 1,
        };
        match bytes.len() {
            SEEDS_LEN => {
                let mut epoch = [0u8; 8];
                epoch.copy_from_slice(&bytes[64..]);
                seeds.epoch = u64::from_be_bytes(epoch);
            }
            SEEDS_V1_LEN => {}
            _ => return None,
        }
        seeds.dsa.copy_from_slice(&bytes[..32]);
        seeds.xwing.copy_from_slice(&bytes[32..64]);
        Some(seeds)
    }
}

impl Drop for PqSeeds {
    fn drop(&mut self) {
        self.dsa.zeroize();
        self.xwing.zeroize();
    }
}

/// A node's keys: its libp2p key (the binding, classical handshakes) and its
/// post-quantum key pairs (libcrux: the fastest of the well-kept
/// implementations in `bench pqc`, checked against the Wycheproof vectors).
pub struct PqIdentity {
    keypair: Keypair,
    peer_id: PeerId,
    dsa: Wiped<MLDSA65SigningKey>,
    xwing: XWingSecret,
    public: PqPublic,
    binding: KeyBinding,
}

impl PqIdentity {
    /// The identity of `keypair` with post-quantum keys from `seeds`; signs the binding.
    pub fn new(keypair: Keypair, seeds: &PqSeeds) -> Self {
        let dsa_pair = dsa::generate_key_pair(seeds.dsa);
        let (xwing, xwing_public) = XWingSecret::from_seed(&seeds.xwing);
        let peer_id = keypair.public().to_peer_id();
        let dsa_public = dsa_pair.verification_key.as_slice().to_vec();
        let message = binding_message(&peer_id, seeds.epoch, &dsa_public, &xwing_public[..]);
        // ed25519 signing cannot fail; an empty signature would only fail verification.
        let signature = keypair.sign(&message).unwrap_or_default();
        let binding = KeyBinding {
            public_key: keypair.public(),
            epoch: seeds.epoch,
            dsa_public,
            xwing_public: xwing_public.to_vec(),
            signature,
        };
        Self {
            keypair,
            peer_id,
            dsa: Wiped::new(dsa_pair.signing_key, MLDSA65SigningKey::zero),
            xwing,
            public: PqPublic {
                dsa: dsa_pair.verification_key,
                xwing: xwing_public,
                epoch: seeds.epoch,
            },
            binding,
        }
    }

    /// The peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The signed binding to put in beacons.
    pub fn binding(&self) -> &KeyBinding {
        &self.binding
    }

    /// The epoch of this node's keys.
    pub fn epoch(&self) -> u64 {
        self.binding.epoch
    }

    /// This node's own keys as a peer sees them.
    pub fn peer_keys(&self) -> PeerKeys {
        PeerKeys {
            peer_id: self.peer_id,
            public_key: self.keypair.public(),
            pq: Some(self.public.clone()),
        }
    }

    /// Signs `message` with ML-DSA-65 under `context`, hedged (fresh
    /// randomness in every signature, as FIPS 204 recommends).
    pub fn sign(&self, message: &[u8], context: &[u8]) -> Vec<u8> {
        // Signing fails only for a context over 255 bytes; ours are constants.
        dsa::sign(&self.dsa, message, context, random())
            .map(|s| s.as_slice().to_vec())
            .unwrap_or_default()
    }

    /// Signs `context ‖ message` with the libp2p key.
    pub(crate) fn sign_classical(&self, message: &[u8], context: &[u8]) -> Vec<u8> {
        self.keypair.sign(&[context, message].concat()).unwrap_or_default()
    }

    /// Decapsulates a ciphertext sent to the static X-Wing key.
    pub(crate) fn decapsulate(&self, ciphertext: &[u8]) -> Result<xwing::SharedSecret, Reject> {
        self.xwing.decapsulate(ciphertext)
    }
}

/// Fresh random bytes from the operating system.
pub(crate) fn random<const N: usize>() -> [u8; N] {
    use rand::RngCore;
    let mut bytes = [0; N];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_secs())
}

/// A peer's public keys, after its binding verified.
#[derive(Clone)]
pub struct PeerKeys {
    /// Its peer id.
    pub peer_id: PeerId,
    /// Its libp2p public key (classical signatures).
    pub public_key: PublicKey,
    /// Its post-quantum keys; `None` for a classical-only peer.
    pub pq: Option<PqPublic>,
}

impl PeerKeys {
    /// A peer known only by its libp2p key.
    pub fn classical(public_key: PublicKey) -> Self {
        Self {
            peer_id: public_key.to_peer_id(),
            public_key,
            pq: None,
        }
    }

    /// Verifies an ML-DSA-65 signature by this peer under `context`.
    pub fn verify_pq(&self, message: &[u8], context: &[u8], signature: &[u8]) -> bool {
        let Some(pq) = &self.pq else {
            return false;
        };
        <[u8; DSA_SIGNATURE_LEN]>::try_from(signature)
            .is_ok_and(|sig| dsa::verify(&pq.dsa, message, context, &MLDSA65Signature::new(sig)).is_ok())
    }

    /// Verifies a signature of `context ‖ message` by the libp2p key.
    pub(crate) fn verify_classical(&self, message: &[u8], context: &[u8], signature: &[u8]) -> bool {
        self.public_key.verify(&[context, message].concat(), signature)
    }
}

/// A peer's post-quantum public keys, checked.
#[derive(Clone)]
pub struct PqPublic {
    /// ML-DSA-65 verifying key.
    pub dsa: MLDSA65VerificationKey,
    /// Static X-Wing key (its ML-KEM part passed the FIPS 203 modulus check).
    pub xwing: Box<[u8; KEM_PUBLIC_LEN]>,
    /// The epoch of the binding they came from.
    pub epoch: u64,
}

/// The libp2p key's signature over a node's post-quantum public keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyBinding {
    /// The libp2p public key (its hash is the peer id).
    pub public_key: PublicKey,
    /// When the keys were made; a later binding replaces an earlier one.
    pub epoch: u64,
    /// ML-DSA-65 public key.
    pub dsa_public: Vec<u8>,
    /// Static X-Wing public key.
    pub xwing_public: Vec<u8>,
    /// Signature by `public_key` over the label, peer id, epoch and both keys.
    pub signature: Vec<u8>,
}

impl KeyBinding {
    /// Wire form.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(DSA_PUBLIC_LEN + KEM_PUBLIC_LEN + 256);
        w.var(&self.public_key.encode_protobuf())
            .u64(self.epoch)
            .var(&self.dsa_public)
            .var(&self.xwing_public)
            .var(&self.signature);
        w.finish()
    }

    /// Parses the wire form (does not verify; see [`KeyBinding::verify`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, Reject> {
        let mut r = Reader::new(bytes, "key binding");
        let public_key =
            PublicKey::try_decode_protobuf(r.var()?).map_err(|_| Reject::Malformed("key binding public key"))?;
        let binding = Self {
            public_key,
            epoch: r.u64()?,
            dsa_public: r.var()?.to_vec(),
            xwing_public: r.var()?.to_vec(),
            signature: r.var()?.to_vec(),
        };
        r.end()?;
        Ok(binding)
    }

    /// Checks that the binding belongs to `peer` and that its libp2p key signed
    /// it; returns the decoded keys.
    pub fn verify(&self, peer: &PeerId) -> Result<PeerKeys, Reject> {
        if self.public_key.to_peer_id() != *peer {
            return Err(Reject::BadBinding);
        }
        let message = binding_message(peer, self.epoch, &self.dsa_public, &self.xwing_public);
        if !self.public_key.verify(&message, &self.signature) {
            return Err(Reject::BadBinding);
        }
        let dsa = <[u8; DSA_PUBLIC_LEN]>::try_from(self.dsa_public.as_slice())
            .map(MLDSA65VerificationKey::new)
            .map_err(|_| Reject::BadBinding)?;
        let xwing = xwing::public_key(&self.xwing_public).ok_or(Reject::BadBinding)?;
        Ok(PeerKeys {
            peer_id: *peer,
            public_key: self.public_key.clone(),
            pq: Some(PqPublic {
                dsa,
                xwing,
                epoch: self.epoch,
            }),
        })
    }
}

fn binding_message(peer: &PeerId, epoch: u64, dsa_public: &[u8], xwing_public: &[u8]) -> Vec<u8> {
    let mut w = Writer::with_capacity(BINDING_LABEL.len() + DSA_PUBLIC_LEN + KEM_PUBLIC_LEN + 64);
    w.fixed(BINDING_LABEL)
        .var(&peer.to_bytes())
        .u64(epoch)
        .var(dsa_public)
        .var(xwing_public);
    w.finish()
}
