//! Deltas: one write to one key, signed by its writer's libp2p key.
//!
//! A delta travels on the gossipsub topic `x0tta6bl4/sync/1` when written and in
//! anti-entropy answers later, relayed by anyone: its own signature (not the
//! relay's gossip signature) says who wrote it. Encoded with postcard.

use libp2p::identity::{Keypair, PublicKey};
use serde::{Deserialize, Serialize};

use super::crdt::{Change, Replica};
use super::SyncError;

/// Largest encoded delta accepted.
pub const MAX_DELTA_BYTES: usize = 16 * 1024;

/// What every delta's signature covers before its body (no signature made for
/// anything else can pass as a delta's).
const SIGNING_CONTEXT: &[u8] = b"x0tta6bl4/sync/1\0";

/// One write.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Delta {
    /// The writer's peer id.
    pub writer: Replica,
    /// The writer's count of its writes, from 1 with no gap: replicas apply
    /// each writer's deltas in this order.
    pub seq: u64,
    /// The writer's clock, Unix milliseconds.
    pub at_ms: u64,
    /// The key written.
    pub key: String,
    /// The operation.
    pub change: Change,
}

/// A delta with its writer's public key and signature, as it travels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedDelta {
    /// The postcard encoding of the [`Delta`].
    pub body: Vec<u8>,
    /// The writer's libp2p public key (protobuf encoding).
    pub public_key: Vec<u8>,
    /// Its signature over the signing context and `body`.
    pub signature: Vec<u8>,
}

impl SignedDelta {
    /// Signs `delta` with `keypair` (the writer's).
    pub fn sign(delta: &Delta, keypair: &Keypair) -> Result<Self, SyncError> {
        let body = postcard::to_allocvec(delta).map_err(|e| SyncError::Malformed(e.to_string()))?;
        let signature = keypair
            .sign(&[SIGNING_CONTEXT, &body].concat())
            .map_err(|e| SyncError::Malformed(format!("cannot sign: {e}")))?;
        let signed = Self {
            body,
            public_key: keypair.public().encode_protobuf(),
            signature,
        };
        let size = signed.encode().len();
        if size > MAX_DELTA_BYTES {
            return Err(SyncError::TooLarge(size));
        }
        Ok(signed)
    }

    /// The bytes on the wire.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Reads a delta off the wire: size, shape, signature, and that the key
    /// that signed it is its writer's.
    pub fn decode(bytes: &[u8]) -> Result<(Self, Delta), SyncError> {
        let signed = Self::parse(bytes)?;
        let delta = signed.open()?;
        Ok((signed, delta))
    }

    /// Reads the envelope off the wire (size and shape) without checking the
    /// signature: for a caller that [`open`](Self::open)s it next.
    pub fn parse(bytes: &[u8]) -> Result<Self, SyncError> {
        if bytes.len() > MAX_DELTA_BYTES {
            return Err(SyncError::TooLarge(bytes.len()));
        }
        postcard::from_bytes(bytes).map_err(|e| SyncError::Malformed(e.to_string()))
    }

    /// Checks the signature and the writer; the delta inside.
    pub fn open(&self) -> Result<Delta, SyncError> {
        let key = PublicKey::try_decode_protobuf(&self.public_key).map_err(|_| SyncError::BadSignature)?;
        if !key.verify(&[SIGNING_CONTEXT, &self.body].concat(), &self.signature) {
            return Err(SyncError::BadSignature);
        }
        let delta: Delta = postcard::from_bytes(&self.body).map_err(|e| SyncError::Malformed(e.to_string()))?;
        let signer = key.to_peer_id().to_string();
        if delta.writer != signer {
            return Err(SyncError::WrongSigner {
                writer: delta.writer,
                signer,
            });
        }
        Ok(delta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::crdt::Marker;

    fn delta(writer: &Keypair) -> Delta {
        let writer = writer.public().to_peer_id().to_string();
        Delta {
            writer: writer.clone(),
            seq: 1,
            at_ms: 5,
            key: "flag.x".into(),
            change: Change::Lww {
                value: "true".into(),
                marker: Marker { ms: 5, writer },
            },
        }
    }

    #[test]
    fn a_signed_delta_reads_back_and_a_tampered_one_does_not() {
        let key = Keypair::generate_ed25519();
        let signed = SignedDelta::sign(&delta(&key), &key).expect("signs");
        let (_, read) = SignedDelta::decode(&signed.encode()).expect("reads back");
        let encode = |d: &Delta| postcard::to_allocvec(d).expect("encodes");
        assert_eq!(encode(&read), encode(&delta(&key)));

        let mut tampered = signed.clone();
        let last = tampered.body.len() - 1;
        tampered.body[last] ^= 1;
        assert_eq!(
            SignedDelta::decode(&tampered.encode()).err(),
            Some(SyncError::BadSignature)
        );
    }

    #[test]
    fn a_delta_signed_by_someone_else_than_its_writer_is_refused() {
        let (writer, forger) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
        let forged = SignedDelta::sign(&delta(&writer), &forger).expect("signs");
        assert!(matches!(
            SignedDelta::decode(&forged.encode()),
            Err(SyncError::WrongSigner { .. })
        ));
    }

    #[test]
    fn garbage_and_oversized_bytes_are_refused_without_panic() {
        assert!(matches!(
            SignedDelta::decode(b"\xff\x01junk"),
            Err(SyncError::Malformed(_))
        ));
        assert_eq!(
            SignedDelta::decode(&vec![0u8; MAX_DELTA_BYTES + 1]).err(),
            Some(SyncError::TooLarge(MAX_DELTA_BYTES + 1))
        );
    }
}
