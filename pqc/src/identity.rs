//! A node's post-quantum keys and the signed binding that ties them to its
//! libp2p peer id.
//!
//! Each node keeps an ML-DSA-65 signing key and an ML-KEM-768 decapsulation
//! key (as seeds, in sled). Its libp2p key signs a [`KeyBinding`] of both
//! public keys to the peer id; beacons carry the binding, and a peer verifies
//! it ([`KeyBinding::verify`]) before using the keys.

use libcrux_ml_dsa::ml_dsa_65::{self as dsa, MLDSA65Signature, MLDSA65SigningKey, MLDSA65VerificationKey};
use libcrux_ml_kem::mlkem768::{self as kem, MlKem768Ciphertext, MlKem768PrivateKey, MlKem768PublicKey};
use libp2p::identity::{Keypair, PublicKey};
use libp2p::PeerId;

use crate::wiped::Wiped;
use crate::wire::{Reader, Writer};
use crate::Reject;

/// ML-DSA-65 public key length.
pub const DSA_PUBLIC_LEN: usize = 1952;
/// ML-DSA-65 signature length.
pub const DSA_SIGNATURE_LEN: usize = 3309;
/// ML-KEM-768 encapsulation key length.
pub const KEM_PUBLIC_LEN: usize = 1184;
/// ML-KEM-768 ciphertext length.
pub const KEM_CIPHERTEXT_LEN: usize = 1088;

const BINDING_LABEL: &[u8] = b"x0tta6bl4/pq-binding/1";

/// Seeds of a node's post-quantum keys: all that needs storing.
#[derive(Clone)]
pub struct PqSeeds {
    /// ML-DSA-65 key seed (ξ of FIPS 204).
    pub dsa: [u8; 32],
    /// ML-KEM-768 key seed (d ‖ z of FIPS 203).
    pub kem: [u8; 64],
}

impl PqSeeds {
    /// Fresh random seeds.
    pub fn generate() -> Self {
        Self {
            dsa: random(),
            kem: random(),
        }
    }

    /// The 96 stored bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        [&self.dsa[..], &self.kem[..]].concat()
    }

    /// Seeds from stored bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        (bytes.len() == 96).then(|| {
            let mut seeds = Self {
                dsa: [0; 32],
                kem: [0; 64],
            };
            seeds.dsa.copy_from_slice(&bytes[..32]);
            seeds.kem.copy_from_slice(&bytes[32..]);
            seeds
        })
    }
}

/// A node's keys: its libp2p key (classical signatures, the binding) and its
/// post-quantum key pairs (libcrux: the fastest of the well-kept
/// implementations in `bench pqc`, checked against the Wycheproof vectors).
pub struct PqIdentity {
    keypair: Keypair,
    peer_id: PeerId,
    dsa: Wiped<MLDSA65SigningKey>,
    kem: Wiped<MlKem768PrivateKey>,
    public: PqPublic,
    binding: KeyBinding,
}

impl PqIdentity {
    /// The identity of `keypair` with post-quantum keys from `seeds`; signs the binding.
    pub fn new(keypair: Keypair, seeds: &PqSeeds) -> Self {
        let dsa_pair = dsa::generate_key_pair(seeds.dsa);
        let (kem_secret, kem_public_key) = kem::generate_key_pair(seeds.kem).into_parts();
        let peer_id = keypair.public().to_peer_id();
        let dsa_public = dsa_pair.verification_key.as_slice().to_vec();
        let kem_public = kem_public_key.as_slice().to_vec();
        let message = binding_message(&peer_id, &dsa_public, &kem_public);
        // Signing with an ed25519 key cannot fail; other key types are not used.
        let signature = keypair.sign(&message).unwrap_or_default();
        let binding = KeyBinding {
            public_key: keypair.public(),
            dsa_public,
            kem_public,
            signature,
        };
        Self {
            keypair,
            peer_id,
            dsa: Wiped::new(dsa_pair.signing_key, MLDSA65SigningKey::zero),
            kem: Wiped::new(kem_secret, MlKem768PrivateKey::default),
            public: PqPublic {
                dsa: dsa_pair.verification_key,
                kem: kem_public_key,
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

    /// This node's own keys as a peer sees them.
    pub fn peer_keys(&self) -> PeerKeys {
        PeerKeys {
            peer_id: self.peer_id,
            public_key: self.keypair.public(),
            pq: Some(self.public.clone()),
        }
    }

    /// Signs `message` with ML-DSA-65 under `context` (beacons; the
    /// handshake uses its own contexts).
    pub fn sign(&self, message: &[u8], context: &[u8]) -> Vec<u8> {
        self.sign_pq(message, context)
    }

    /// Signs `message` with ML-DSA-65 under `context`.
    pub(crate) fn sign_pq(&self, message: &[u8], context: &[u8]) -> Vec<u8> {
        // Deterministic (no randomness), as FIPS 204 allows: the same bytes
        // RustCrypto's `sign_deterministic` gave before.
        dsa::sign(&self.dsa, message, context, [0; 32])
            .map(|s| s.as_slice().to_vec())
            .unwrap_or_default()
    }

    /// Signs `context ‖ message` with the libp2p key.
    pub(crate) fn sign_classical(&self, message: &[u8], context: &[u8]) -> Vec<u8> {
        self.keypair.sign(&[context, message].concat()).unwrap_or_default()
    }

    /// Decapsulates a ciphertext sent to the static ML-KEM key.
    pub(crate) fn decapsulate(&self, ciphertext: &[u8]) -> Result<[u8; 32], Reject> {
        decapsulate(&self.kem, ciphertext)
    }
}

/// Decapsulates `ciphertext` with `key`, refusing one of the wrong length.
pub(crate) fn decapsulate(key: &MlKem768PrivateKey, ciphertext: &[u8]) -> Result<[u8; 32], Reject> {
    let ciphertext = MlKem768Ciphertext::try_from(ciphertext).map_err(|_| Reject::Malformed("ML-KEM ciphertext"))?;
    Ok(kem::decapsulate(key, &ciphertext))
}

/// An ML-KEM-768 encapsulation key from its encoding, if it passes the
/// FIPS 203 input check (every coefficient below the modulus).
pub(crate) fn kem_public_key(bytes: &[u8]) -> Option<MlKem768PublicKey> {
    MlKem768PublicKey::try_from(bytes).ok().filter(kem::validate_public_key)
}

/// Fresh random bytes from the operating system.
pub(crate) fn random<const N: usize>() -> [u8; N] {
    use rand::RngCore;
    let mut bytes = [0; N];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
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
        self.verify(true, message, context, signature)
    }

    /// Verifies a transcript signature: ML-DSA-65 when `post_quantum`, else the
    /// libp2p key.
    pub(crate) fn verify(&self, post_quantum: bool, message: &[u8], context: &[u8], signature: &[u8]) -> bool {
        match (post_quantum, &self.pq) {
            (true, Some(pq)) => <[u8; DSA_SIGNATURE_LEN]>::try_from(signature)
                .is_ok_and(|sig| dsa::verify(&pq.dsa, message, context, &MLDSA65Signature::new(sig)).is_ok()),
            (true, None) => false,
            (false, _) => self.public_key.verify(&[context, message].concat(), signature),
        }
    }
}

/// A peer's post-quantum public keys, checked.
#[derive(Clone)]
pub struct PqPublic {
    /// ML-DSA-65 verifying key.
    pub dsa: MLDSA65VerificationKey,
    /// ML-KEM-768 encapsulation key (passed the FIPS 203 modulus check).
    pub kem: MlKem768PublicKey,
}

/// The libp2p key's signature over a node's post-quantum public keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyBinding {
    /// The libp2p public key (its hash is the peer id).
    pub public_key: PublicKey,
    /// ML-DSA-65 public key.
    pub dsa_public: Vec<u8>,
    /// ML-KEM-768 encapsulation key.
    pub kem_public: Vec<u8>,
    /// Signature by `public_key` over the label, peer id and both keys.
    pub signature: Vec<u8>,
}

impl KeyBinding {
    /// Wire form.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(DSA_PUBLIC_LEN + KEM_PUBLIC_LEN + 256);
        w.var(&self.public_key.encode_protobuf())
            .var(&self.dsa_public)
            .var(&self.kem_public)
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
            dsa_public: r.var()?.to_vec(),
            kem_public: r.var()?.to_vec(),
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
        let message = binding_message(peer, &self.dsa_public, &self.kem_public);
        if !self.public_key.verify(&message, &self.signature) {
            return Err(Reject::BadBinding);
        }
        let dsa = <[u8; DSA_PUBLIC_LEN]>::try_from(self.dsa_public.as_slice())
            .map(MLDSA65VerificationKey::new)
            .map_err(|_| Reject::BadBinding)?;
        let kem = kem_public_key(&self.kem_public).ok_or(Reject::BadBinding)?;
        Ok(PeerKeys {
            peer_id: *peer,
            public_key: self.public_key.clone(),
            pq: Some(PqPublic { dsa, kem }),
        })
    }
}

fn binding_message(peer: &PeerId, dsa_public: &[u8], kem_public: &[u8]) -> Vec<u8> {
    let mut w = Writer::with_capacity(BINDING_LABEL.len() + DSA_PUBLIC_LEN + KEM_PUBLIC_LEN + 64);
    w.fixed(BINDING_LABEL)
        .var(&peer.to_bytes())
        .var(dsa_public)
        .var(kem_public);
    w.finish()
}
