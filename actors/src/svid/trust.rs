//! The trust bundle and revocation list in force, shared by every place that
//! checks an SVID (the mTLS API's handshakes and its requests, the mesh's
//! admission): a new CRL swaps in a whole new [`Validator`], so a check never
//! sees half an update. With [`Trust::with_ocsp`], a certificate that names
//! an OCSP responder is also checked against its answers.
//! Every check is counted in `x0tta_svid_validations_total{result,reason}`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;

use super::ocsp::Ocsp;
use super::validate::{BundleError, Pins, Refusal, Usage, Validator, VerifiedSvid};

const VALIDATIONS_TOTAL: &str = "x0tta_svid_validations_total";

/// The trust domain's bundle and CRLs, swapped whole on a refresh.
pub struct Trust {
    trust_domain: String,
    /// The bundle and the CRL in force (the validator is rebuilt from both).
    sources: parking_lot::Mutex<(String, Option<Vec<u8>>)>,
    skew: Duration,
    pins: Pins,
    validator: ArcSwap<Validator>,
    generation: AtomicU64,
    ocsp: Option<Arc<Ocsp>>,
    /// Serials revoked through the replicated state (`revoked_serials`),
    /// lowercase hex, refused like a CRL's.
    replicated: parking_lot::RwLock<std::collections::HashSet<String>>,
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trust")
            .field("trust_domain", &self.trust_domain)
            .finish_non_exhaustive()
    }
}

impl Trust {
    /// Trust in `trust_domain`'s CA certificates in `bundle_pem`, with no
    /// CRL yet, allowing clocks to differ by `skew`, holding pinned SPIFFE
    /// IDs to their `pins`.
    pub fn new(trust_domain: &str, bundle_pem: &str, skew: Duration, pins: Pins) -> Result<Self, BundleError> {
        metrics::describe_counter!(
            VALIDATIONS_TOTAL,
            "SVIDs checked, by result (ok, refused) and reason of refusal"
        );
        let validator = validator(trust_domain, bundle_pem, skew, &pins)?;
        Ok(Self {
            trust_domain: trust_domain.to_string(),
            sources: parking_lot::Mutex::new((bundle_pem.to_string(), None)),
            skew,
            pins,
            validator: ArcSwap::from_pointee(validator),
            generation: AtomicU64::new(0),
            ocsp: None,
            replicated: Default::default(),
        })
    }

    /// Also checks certificates that name an OCSP responder with `ocsp`.
    pub fn with_ocsp(mut self, ocsp: Arc<Ocsp>) -> Self {
        self.ocsp = Some(ocsp);
        self
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// Puts the CRLs in `crl` (PEM or DER) in force for every later check; a
    /// CRL that does not parse leaves the previous one in force, and the one
    /// in force read again changes nothing.
    pub fn set_crls(&self, crl: &[u8]) -> Result<(), BundleError> {
        let mut sources = self.sources.lock();
        if sources.1.as_deref() == Some(crl) {
            // The same CRL re-read: nothing to rebuild, no verdict to revisit.
            return Ok(());
        }
        self.rebuild(&sources.0, Some(crl))?;
        sources.1 = Some(crl.to_vec());
        Ok(())
    }

    /// Puts a new trust bundle in force (a CA rotation the Workload API
    /// pushed), keeping the CRL; a bundle that does not parse leaves the
    /// previous one in force.
    pub fn set_bundle(&self, bundle_pem: &str) -> Result<(), BundleError> {
        let mut sources = self.sources.lock();
        self.rebuild(bundle_pem, sources.1.as_deref())?;
        sources.0 = bundle_pem.to_string();
        if let Some(ocsp) = &self.ocsp {
            ocsp.set_issuers(bundle_pem);
        }
        Ok(())
    }

    /// Puts the serials of the replicated `revoked_serials` set (lowercase
    /// hex) in force beside the CRL; a change moves the generation, so kept
    /// verdicts are checked again.
    pub fn set_replicated_revocations(&self, serials: std::collections::HashSet<String>) {
        let serials = serials.into_iter().map(|s| s.to_ascii_lowercase()).collect();
        let mut replicated = self.replicated.write();
        if *replicated != serials {
            *replicated = serials;
            self.generation.fetch_add(1, Ordering::Release);
        }
    }

    /// Whether `bundle_pem` is the bundle in force.
    pub fn has_bundle(&self, bundle_pem: &str) -> bool {
        self.sources.lock().0 == bundle_pem
    }

    fn rebuild(&self, bundle_pem: &str, crl: Option<&[u8]>) -> Result<(), BundleError> {
        let mut validator = validator(&self.trust_domain, bundle_pem, self.skew, &self.pins)?;
        if let Some(crl) = crl {
            validator.set_crls(crl)?;
        }
        self.validator.store(Arc::new(validator));
        self.generation.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// Changes with every CRL put in force and every OCSP answer that turns
    /// a certificate away: whoever keeps verdicts checks them again when it
    /// moves.
    pub fn generation(&self) -> u64 {
        let ocsp = self.ocsp.as_ref().map_or(0, |ocsp| ocsp.generation());
        self.generation.load(Ordering::Acquire).wrapping_add(ocsp)
    }

    /// Validates `chain` (leaf first, DER) presented for `usage` now, and
    /// counts the result.
    pub fn validate(&self, chain: &[Vec<u8>], usage: Usage) -> Result<VerifiedSvid, Refusal> {
        let result = self
            .validator
            .load()
            .validate(chain, usage, SystemTime::now())
            .and_then(|verified| match self.replicated.read().contains(&verified.serial) {
                true => Err(Refusal::Revoked),
                false => Ok(verified),
            })
            .and_then(|verified| match (&self.ocsp, chain.first()) {
                (Some(ocsp), Some(leaf)) => ocsp.status(leaf).map(|()| verified),
                _ => Ok(verified),
            });
        match &result {
            Ok(_) => metrics::counter!(VALIDATIONS_TOTAL, "result" => "ok", "reason" => "valid").increment(1),
            Err(refusal) => {
                metrics::counter!(VALIDATIONS_TOTAL, "result" => "refused", "reason" => refusal.reason()).increment(1);
            }
        }
        result
    }
}

/// A validator of the bundle with the pins and no CRL.
fn validator(trust_domain: &str, bundle_pem: &str, skew: Duration, pins: &Pins) -> Result<Validator, BundleError> {
    let mut validator = Validator::new(trust_domain, bundle_pem, skew)?;
    validator.set_pins(pins.clone());
    Ok(validator)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::svid::ca::TrustDomainCa;
    use crate::svid::SpiffeId;

    #[test]
    fn a_replicated_revocation_refuses_the_serial_and_moves_the_generation() {
        let hour = Duration::from_secs(3600);
        let ca = TrustDomainCa::generate("mesh.test", hour).expect("CA");
        let trust = Trust::new("mesh.test", ca.bundle_pem(), Duration::ZERO, Default::default()).expect("trust");
        let issue = |node: &str| {
            let svid = ca
                .issue(&SpiffeId::for_node("mesh.test", node).expect("id"), hour)
                .expect("SVID");
            (vec![svid.cert_der.clone()], svid.serial)
        };
        let ((stolen, serial), (other, _)) = (issue("stolen"), issue("other"));
        assert!(trust.validate(&stolen, Usage::Client).is_ok());
        let generation = trust.generation();

        trust.set_replicated_revocations([serial.to_ascii_uppercase()].into_iter().collect());
        let refused = trust.validate(&stolen, Usage::Client).map_err(|r| r.reason());
        assert_eq!(refused, Err("revoked"), "the serial is refused, whatever its case");
        assert!(trust.validate(&other, Usage::Client).is_ok(), "only that serial");
        assert_ne!(trust.generation(), generation, "kept verdicts are checked again");

        let generation = trust.generation();
        trust.set_replicated_revocations([serial.clone()].into_iter().collect());
        assert_eq!(trust.generation(), generation, "the same set moves nothing");
        trust.set_replicated_revocations(Default::default());
        assert!(
            trust.validate(&stolen, Usage::Client).is_ok(),
            "taken off the set, accepted again"
        );
    }
}
