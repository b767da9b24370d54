//! Post-quantum beacons (`X0TTA6BL4_PQC_BEACONS=true`): every beacon carries an
//! ML-DSA-65 signature by the sender's bound key, and beacons without one, or
//! with one that does not verify, are dropped and counted. Verified bindings
//! are cached per peer, so a binding is checked once, not once per beacon.

use crate::buckets::capacity;

use libp2p::PeerId;
use lru::LruCache;
use x0tta6bl4_pqc::{KeyBinding, PeerKeys};

use super::beacon::{BeaconError, ValidBeacon, PQ_BEACON_CONTEXT};

/// Peers whose verified bindings are kept.
const CACHE: usize = 1_024;

/// Checks beacon signatures.
pub struct PqBeaconCheck {
    verified: LruCache<PeerId, (KeyBinding, PeerKeys)>,
}

impl Default for PqBeaconCheck {
    fn default() -> Self {
        Self {
            verified: LruCache::new(capacity(CACHE)),
        }
    }
}

impl PqBeaconCheck {
    /// Accepts `beacon` only with a binding to its sender and a valid ML-DSA-65
    /// signature by the bound key.
    pub fn check(&mut self, beacon: &ValidBeacon) -> Result<(), BeaconError> {
        let (Some(binding), Some(signed)) = (&beacon.binding, &beacon.pq_signed) else {
            return Err(BeaconError::PqUnsigned);
        };
        let cached = self.verified.get(&beacon.peer).filter(|(b, _)| b == binding.as_ref());
        let keys = match cached {
            Some((_, keys)) => keys.clone(),
            None => {
                let keys = binding.verify(&beacon.peer).map_err(|_| BeaconError::PqBadSignature)?;
                self.verified.put(beacon.peer, ((**binding).clone(), keys.clone()));
                keys
            }
        };
        match keys.verify_pq(&signed.message, PQ_BEACON_CONTEXT, &signed.signature) {
            true => Ok(()),
            false => Err(BeaconError::PqBadSignature),
        }
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use libp2p::identity::Keypair;
    use x0tta6bl4_pqc::{PqIdentity, PqSeeds};

    use super::*;
    use crate::mesh::beacon::Beacon;

    fn node() -> PqIdentity {
        PqIdentity::new(Keypair::generate_ed25519(), &PqSeeds::generate())
    }

    fn beacon_of(identity: &PqIdentity) -> Beacon {
        Beacon {
            peer_id: identity.peer_id().to_string(),
            name: "n".into(),
            addrs: Vec::new(),
            seq: 7,
            timestamp_ms: 1_800_000_000_000,
            links: Vec::new(),
            pq_binding: Some(base64::engine::general_purpose::STANDARD.encode(identity.binding().encode())),
            pq_signature: None,
            svid_chain: Vec::new(),
        }
    }

    fn check(check: &mut PqBeaconCheck, beacon: &Beacon, signer: PeerId) -> Result<(), BeaconError> {
        check.check(&Beacon::validate(&beacon.encode(), Some(signer))?)
    }

    #[test]
    fn signed_beacons_pass_and_unsigned_altered_or_foreign_ones_do_not() {
        let (a, mallory) = (node(), node());
        let mut pq = PqBeaconCheck::default();
        let mut beacon = beacon_of(&a);
        assert_eq!(check(&mut pq, &beacon, a.peer_id()), Err(BeaconError::PqUnsigned));
        beacon.sign_pq(&a);
        assert_eq!(check(&mut pq, &beacon, a.peer_id()), Ok(()));
        assert_eq!(check(&mut pq, &beacon, a.peer_id()), Ok(()), "cached binding");
        let mut altered = beacon.clone();
        altered.seq += 1;
        assert_eq!(check(&mut pq, &altered, a.peer_id()), Err(BeaconError::PqBadSignature));
        // Signed by another key than the bound one.
        let mut forged = beacon_of(&a);
        forged.sign_pq(&mallory);
        assert_eq!(check(&mut pq, &forged, a.peer_id()), Err(BeaconError::PqBadSignature));
        // Without a binding there is no key to check against.
        let mut bare = beacon_of(&a);
        bare.pq_binding = None;
        bare.sign_pq(&a);
        assert_eq!(check(&mut pq, &bare, a.peer_id()), Err(BeaconError::PqUnsigned));
    }
}
