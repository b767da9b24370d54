//! Mesh admission by SVID (`mesh.require_svid`): a node takes part in the
//! mesh only while the X.509-SVID its beacons carry validates against the
//! trust bundle and CRL in force and its SPIFFE ID
//! (`spiffe://<td>/node/<peer-id>`) names the beacon's sender.
//!
//! The beacon is signed by the sender's libp2p key (gossipsub checks it and
//! [`super::beacon::Beacon::validate`] ties the peer id to the signer), and
//! the CA vouched for that peer id by naming it in the SVID: together they
//! show the sender is the node the trust domain admitted. A copied SVID names
//! another peer and is refused.
//!
//! Verdicts are kept per peer with the chain, so a beacon costs a
//! comparison, not a chain validation; a new chain (a renewal), the end of the
//! SVID's validity or a new CRL ([`Trust::generation`]) sends it through the
//! validator again. [`SvidAdmission::recheck`] finds the admitted peers a new
//! CRL or the clock has turned away, so they leave the mesh without waiting
//! for their next beacon.

use std::sync::Arc;
use std::time::SystemTime;

use libp2p::PeerId;
use lru::LruCache;

use super::beacon::{BeaconError, ValidBeacon};
use crate::buckets::capacity;
use crate::svid::{Refusal, Trust, Usage};

/// Peers whose verdicts are kept (the link-state database's default size).
const ADMITTED: usize = 1_024;

/// A peer admitted with this chain, valid until then.
struct Admitted {
    chain: Vec<Vec<u8>>,
    not_after: SystemTime,
}

/// Who is admitted to the mesh by SVID.
pub struct SvidAdmission {
    trust: Arc<Trust>,
    admitted: LruCache<PeerId, Admitted>,
    generation: u64,
}

impl SvidAdmission {
    /// Admission checked against `trust`.
    pub fn new(trust: Arc<Trust>) -> Self {
        let generation = trust.generation();
        Self {
            trust,
            admitted: LruCache::new(capacity(ADMITTED)),
            generation,
        }
    }

    /// Whether `peer` is admitted (its last beacon's SVID was valid).
    pub fn is_admitted(&self, peer: &PeerId) -> bool {
        self.admitted.contains(peer)
    }

    /// Admits `beacon`'s sender if its SVID chain validates and names it;
    /// otherwise forgets it and says why.
    pub fn check(&mut self, beacon: &ValidBeacon, now: SystemTime) -> Result<(), BeaconError> {
        let verdict = self.judge(beacon, now);
        if verdict.is_err() {
            self.admitted.pop(&beacon.peer);
        }
        verdict
    }

    fn judge(&mut self, beacon: &ValidBeacon, now: SystemTime) -> Result<(), BeaconError> {
        if beacon.svid_chain.is_empty() {
            return Err(BeaconError::SvidMissing);
        }
        let current = self.generation == self.trust.generation();
        let known = self.admitted.get(&beacon.peer);
        if current && known.is_some_and(|a| a.chain == beacon.svid_chain && a.not_after > now) {
            return Ok(());
        }
        let verified = self
            .trust
            .validate(&beacon.svid_chain, Usage::Client)
            .map_err(BeaconError::SvidRefused)?;
        if verified.id.node_peer_id() != Some(beacon.peer.to_string().as_str()) {
            return Err(BeaconError::SvidNotOwn(verified.id.to_string()));
        }
        self.admitted.put(
            beacon.peer,
            Admitted {
                chain: beacon.svid_chain.clone(),
                not_after: verified.not_after,
            },
        );
        Ok(())
    }

    /// Takes out the admitted peers whose SVID has expired by `now` or, after
    /// a new CRL, no longer validates, and returns them with the reason.
    /// Peers are checked again only when the trust or the clock moved them:
    /// on a quiet tick this only compares times.
    pub fn recheck(&mut self, now: SystemTime) -> Vec<(PeerId, Refusal)> {
        let generation = self.trust.generation();
        let renewed_trust = generation != self.generation;
        self.generation = generation;
        let mut turned_away = Vec::new();
        for (peer, admitted) in &self.admitted {
            if admitted.not_after <= now {
                turned_away.push((*peer, Refusal::Expired));
            } else if renewed_trust {
                if let Err(refusal) = self.trust.validate(&admitted.chain, Usage::Client) {
                    turned_away.push((*peer, refusal));
                }
            }
        }
        for (peer, _) in &turned_away {
            self.admitted.pop(peer);
        }
        turned_away
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::svid::{Revoked, SpiffeId, TrustDomainCa};

    const TD: &str = "mesh.test";

    fn ca() -> TrustDomainCa {
        TrustDomainCa::generate(TD, Duration::from_secs(86_400)).expect("CA")
    }

    fn trust_in(ca: &TrustDomainCa) -> Arc<Trust> {
        Arc::new(Trust::new(TD, ca.bundle_pem(), Duration::ZERO, Default::default()).expect("trust"))
    }

    /// A beacon of `peer` carrying an SVID for `named` from `ca`.
    fn beacon(ca: &TrustDomainCa, peer: PeerId, named: PeerId, ttl: Duration) -> (ValidBeacon, String) {
        let id = SpiffeId::for_node(TD, &named.to_string()).expect("id");
        let svid = ca.issue(&id, ttl).expect("SVID");
        let beacon = ValidBeacon {
            peer,
            name: "n".into(),
            addrs: Vec::new(),
            seq: 1,
            timestamp_ms: 1,
            links: Vec::new(),
            binding: None,
            pq_signed: None,
            svid_chain: vec![svid.cert_der],
        };
        (beacon, svid.serial)
    }

    const HOUR: Duration = Duration::from_secs(3_600);

    #[test]
    fn a_node_is_admitted_only_with_a_valid_svid_that_names_it() {
        let (ours, theirs) = (ca(), ca());
        let mut admission = SvidAdmission::new(trust_in(&ours));
        let (peer, now) = (PeerId::random(), SystemTime::now());

        let (mut bare, _) = beacon(&ours, peer, peer, HOUR);
        bare.svid_chain.clear();
        assert_eq!(admission.check(&bare, now), Err(BeaconError::SvidMissing));

        // Another CA of the same trust domain name: the name matches the
        // bundle's, the signature does not.
        let (self_made, _) = beacon(&theirs, peer, peer, HOUR);
        assert!(matches!(
            admission.check(&self_made, now),
            Err(BeaconError::SvidRefused(Refusal::BadSignature(_)))
        ));

        let other = PeerId::random();
        let (copied, _) = beacon(&ours, peer, other, HOUR);
        let Err(BeaconError::SvidNotOwn(named)) = admission.check(&copied, now) else {
            panic!("an SVID naming another peer must be refused");
        };
        assert!(named.ends_with(&other.to_string()), "{named}");

        let (mut garbage, _) = beacon(&ours, peer, peer, HOUR);
        garbage.svid_chain = vec![b"not a certificate".to_vec()];
        assert!(matches!(
            admission.check(&garbage, now),
            Err(BeaconError::SvidRefused(Refusal::Malformed(_)))
        ));
        assert!(!admission.is_admitted(&peer));

        let (good, _) = beacon(&ours, peer, peer, HOUR);
        assert_eq!(admission.check(&good, now), Ok(()));
        assert!(admission.is_admitted(&peer));
        // A later refusal takes the admission back.
        assert!(admission.check(&self_made, now).is_err());
        assert!(!admission.is_admitted(&peer));
    }

    #[test]
    fn a_new_crl_or_the_end_of_validity_turns_admitted_peers_away() {
        let ca = ca();
        let trust = trust_in(&ca);
        let mut admission = SvidAdmission::new(trust.clone());
        let (a, b, now) = (PeerId::random(), PeerId::random(), SystemTime::now());
        let (beacon_a, serial_a) = beacon(&ca, a, a, HOUR);
        let (beacon_b, _) = beacon(&ca, b, b, Duration::from_secs(60));
        assert_eq!(admission.check(&beacon_a, now), Ok(()));
        assert_eq!(admission.check(&beacon_b, now), Ok(()));
        assert!(admission.recheck(now).is_empty(), "nothing changed");

        let revoked = [Revoked {
            serial: serial_a,
            at_unix: crate::svid::unix_secs(now) - 1,
        }];
        let crl = ca.crl_pem(&revoked, 1, HOUR).expect("CRL");
        trust.set_crls(crl.as_bytes()).expect("CRL in force");
        assert_eq!(admission.recheck(now), vec![(a, Refusal::Revoked)]);
        assert!(!admission.is_admitted(&a) && admission.is_admitted(&b));
        assert_eq!(
            admission.check(&beacon_a, now),
            Err(BeaconError::SvidRefused(Refusal::Revoked)),
            "its next beacon is refused too"
        );

        let later = now + Duration::from_secs(61);
        assert_eq!(admission.recheck(later), vec![(b, Refusal::Expired)]);
        assert!(!admission.is_admitted(&b));
    }

    #[test]
    fn a_renewed_svid_replaces_the_old_one() {
        let ca = ca();
        let mut admission = SvidAdmission::new(trust_in(&ca));
        let (peer, now) = (PeerId::random(), SystemTime::now());
        let (first, _) = beacon(&ca, peer, peer, Duration::from_secs(60));
        let (renewed, _) = beacon(&ca, peer, peer, HOUR);
        assert_eq!(admission.check(&first, now), Ok(()));
        assert_eq!(admission.check(&renewed, now), Ok(()));
        let later = now + Duration::from_secs(61);
        assert!(
            admission.recheck(later).is_empty(),
            "the renewed SVID's validity counts, not the first one's"
        );
        assert!(admission.is_admitted(&peer));
    }
}
