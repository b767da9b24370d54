//! OCSP on the wire (RFC 6960, with the `x509-ocsp` types): which responder a
//! certificate names, the request for its status, and the reading of an
//! answer — signed by the issuing CA or by a responder the CA delegated to
//! (`id-kp-OCSPSigning`) — down to one status and how long it holds.

use std::time::{Duration, SystemTime};

use rustls_pki_types::{CertificateDer, SignatureVerificationAlgorithm, UnixTime};
use sha2::Digest as _;
use webpki::{EndEntityCert, KeyUsage};
use x509_cert::der::asn1::{ObjectIdentifier, OctetString};
use x509_cert::der::{Decode, Encode};
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspGeneralizedTime, OcspRequest, OcspResponse, OcspResponseStatus, Request,
    TbsRequest,
};
use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509Certificate};

use super::ca::hex;

/// SHA-256, the hash of the CertIDs this node asks with.
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
/// `id-pkix-ocsp-basic`, the only response type there is.
const OCSP_BASIC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");
/// `id-kp-OCSPSigning` (1.3.6.1.5.5.7.3.9), DER contents: a delegated responder's EKU.
const OCSP_SIGNING_EKU: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x09];
/// Largest answer read, in bytes.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// A certificate whose status can be asked: its responder and CertID.
#[derive(Debug, Clone)]
pub struct Query {
    /// The responder (`authorityInfoAccess` OCSP URI).
    pub url: String,
    /// The certificate's serial, lowercase hex.
    pub serial: String,
    cert_id: CertId,
    issuer_der: Vec<u8>,
}

/// What the responder said of the certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertState {
    /// Not revoked.
    Good,
    /// Revoked.
    Revoked,
    /// The responder does not know it.
    Unknown,
}

/// A verified answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// The status.
    pub state: CertState,
    /// Until when it holds (the response's `nextUpdate`), if it says.
    pub next_update: Option<SystemTime>,
}

impl Query {
    /// The query for `leaf_der` when it names an OCSP responder over HTTP
    /// and one of `issuers` (DER CA certificates) issued it.
    pub fn for_leaf(leaf_der: &[u8], issuers: &[Vec<u8>]) -> Option<Self> {
        let (_, leaf) = X509Certificate::from_der(leaf_der).ok()?;
        let url = leaf.extensions().iter().find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::AuthorityInfoAccess(aia) => aia.iter().find_map(|desc| {
                let ocsp = desc.access_method == x509_parser::oid_registry::OID_PKIX_ACCESS_DESCRIPTOR_OCSP;
                match &desc.access_location {
                    GeneralName::URI(uri) if ocsp && uri.starts_with("http://") => Some(uri.to_string()),
                    _ => None,
                }
            }),
            _ => None,
        })?;
        let (issuer_der, issuer) = issuers.iter().find_map(|der| {
            let (_, ca) = X509Certificate::from_der(der).ok()?;
            (ca.subject().as_raw() == leaf.issuer().as_raw()).then(|| (der.clone(), ca))
        })?;
        let cert_id = CertId {
            hash_algorithm: AlgorithmIdentifierOwned {
                oid: SHA256,
                parameters: None,
            },
            issuer_name_hash: OctetString::new(sha2::Sha256::digest(issuer.subject().as_raw()).to_vec()).ok()?,
            issuer_key_hash: OctetString::new(
                sha2::Sha256::digest(&issuer.public_key().subject_public_key.data).to_vec(),
            )
            .ok()?,
            serial_number: SerialNumber::new(leaf.raw_serial()).ok()?,
        };
        Some(Self {
            url,
            serial: hex(leaf.raw_serial()),
            cert_id,
            issuer_der,
        })
    }

    /// The DER `OCSPRequest` (unsigned, no nonce: answers are cached anyway).
    pub fn request_der(&self) -> Result<Vec<u8>, String> {
        let request = OcspRequest {
            tbs_request: TbsRequest {
                version: x509_ocsp::Version::V1,
                requestor_name: None,
                request_list: vec![Request {
                    req_cert: self.cert_id.clone(),
                    single_request_extensions: None,
                }],
                request_extensions: None,
            },
            optional_signature: None,
        };
        request
            .to_der()
            .map_err(|e| format!("cannot encode the OCSP request: {e}"))
    }

    /// Reads `response`: its signature, then the status of this query's
    /// certificate, current at `now` within `skew`.
    pub fn read(&self, response: &[u8], now: SystemTime, skew: Duration) -> Result<Answer, String> {
        if response.len() > MAX_RESPONSE_BYTES {
            return Err(format!("an answer of {} bytes", response.len()));
        }
        let response = OcspResponse::from_der(response).map_err(|e| format!("not an OCSP response: {e}"))?;
        if response.response_status != OcspResponseStatus::Successful {
            return Err(format!("the responder answered {:?}", response.response_status));
        }
        let bytes = response
            .response_bytes
            .ok_or("a successful answer without a response")?;
        if bytes.response_type != OCSP_BASIC {
            return Err(format!("a response of type {}", bytes.response_type));
        }
        let basic = BasicOcspResponse::from_der(bytes.response.as_bytes())
            .map_err(|e| format!("not a basic OCSP response: {e}"))?;
        self.check_signature(&basic, now)?;
        let single = basic
            .tbs_response_data
            .responses
            .iter()
            .find(|r| same_certificate(&r.cert_id, &self.cert_id))
            .ok_or("the answer is about another certificate")?;
        if system_time(&single.this_update) > now + skew {
            return Err("the answer's thisUpdate is in the future".into());
        }
        let next_update = single.next_update.as_ref().map(system_time);
        if next_update.is_some_and(|next| next + skew < now) {
            return Err("the answer's nextUpdate has passed".into());
        }
        let state = match single.cert_status {
            CertStatus::Good(_) => CertState::Good,
            CertStatus::Revoked(_) => CertState::Revoked,
            CertStatus::Unknown(_) => CertState::Unknown,
        };
        Ok(Answer { state, next_update })
    }

    /// The answer is signed by the issuing CA, or by a certificate in it
    /// that the CA issued for OCSP signing.
    fn check_signature(&self, basic: &BasicOcspResponse, now: SystemTime) -> Result<(), String> {
        let signed = basic
            .tbs_response_data
            .to_der()
            .map_err(|e| format!("cannot re-encode the response data: {e}"))?;
        let signature = basic.signature.as_bytes().ok_or("a signature of partial bytes")?;
        let algorithms = algorithms_for(&basic.signature_algorithm.oid);
        let issuer_der = CertificateDer::from(self.issuer_der.as_slice());
        let verifies = |signer: &EndEntityCert<'_>| {
            algorithms
                .iter()
                .any(|alg| signer.verify_signature(*alg, &signed, signature).is_ok())
        };
        if EndEntityCert::try_from(&issuer_der).is_ok_and(|ca| verifies(&ca)) {
            return Ok(());
        }
        let anchor = webpki::anchor_from_trusted_cert(&issuer_der).map_err(|e| e.to_string())?;
        let time = UnixTime::since_unix_epoch(now.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default());
        for cert in basic.certs.iter().flatten() {
            let Ok(der) = cert.to_der() else { continue };
            let der = CertificateDer::from(der);
            let Ok(responder) = EndEntityCert::try_from(&der) else {
                continue;
            };
            let delegated = responder
                .verify_for_usage(
                    super::validate::ALGORITHMS,
                    std::slice::from_ref(&anchor),
                    &[],
                    time,
                    KeyUsage::required(OCSP_SIGNING_EKU),
                    None,
                    None,
                )
                .is_ok();
            if delegated && verifies(&responder) {
                return Ok(());
            }
        }
        Err("the answer is not signed by the CA or a responder it delegated to".into())
    }
}

/// Two CertIDs name the same certificate (the hash parameters may be written
/// as absent or as NULL).
fn same_certificate(a: &CertId, b: &CertId) -> bool {
    a.hash_algorithm.oid == b.hash_algorithm.oid
        && a.issuer_name_hash == b.issuer_name_hash
        && a.issuer_key_hash == b.issuer_key_hash
        && a.serial_number == b.serial_number
}

/// The algorithms a signature of `oid` may be checked with (the key decides
/// which one applies).
fn algorithms_for(oid: &ObjectIdentifier) -> Vec<&'static dyn SignatureVerificationAlgorithm> {
    match oid.to_string().as_str() {
        "1.2.840.10045.4.3.2" => vec![webpki::ring::ECDSA_P256_SHA256, webpki::ring::ECDSA_P384_SHA256],
        "1.2.840.10045.4.3.3" => vec![webpki::ring::ECDSA_P384_SHA384, webpki::ring::ECDSA_P256_SHA384],
        "1.3.101.112" => vec![webpki::ring::ED25519],
        "1.2.840.113549.1.1.11" => vec![webpki::ring::RSA_PKCS1_2048_8192_SHA256],
        "1.2.840.113549.1.1.12" => vec![webpki::ring::RSA_PKCS1_2048_8192_SHA384],
        "1.2.840.113549.1.1.13" => vec![webpki::ring::RSA_PKCS1_2048_8192_SHA512],
        _ => Vec::new(),
    }
}

fn system_time(time: &OcspGeneralizedTime) -> SystemTime {
    time.0.to_system_time()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::svid::{SpiffeId, TrustDomainCa};

    #[test]
    fn a_certificate_without_a_responder_asks_nothing_and_bad_answers_are_refused() {
        let ca = TrustDomainCa::generate("mesh.test", Duration::from_secs(3600)).expect("CA");
        let id = SpiffeId::for_node("mesh.test", "p").expect("id");
        let svid = ca.issue(&id, Duration::from_secs(60)).expect("SVID");
        let issuer = crate::svid::ca::pem_der(ca.bundle_pem()).expect("CA DER");
        assert!(
            Query::for_leaf(&svid.cert_der, std::slice::from_ref(&issuer)).is_none(),
            "no AIA, no OCSP"
        );
        assert!(Query::for_leaf(b"garbage", &[]).is_none());

        let query = Query {
            url: "http://127.0.0.1:1/".into(),
            serial: svid.serial.clone(),
            cert_id: CertId {
                hash_algorithm: AlgorithmIdentifierOwned {
                    oid: SHA256,
                    parameters: None,
                },
                issuer_name_hash: OctetString::new(vec![1; 32]).expect("octets"),
                issuer_key_hash: OctetString::new(vec![2; 32]).expect("octets"),
                serial_number: SerialNumber::new(&[7]).expect("serial"),
            },
            issuer_der: issuer,
        };
        assert!(query.request_der().is_ok_and(|der| OcspRequest::from_der(&der).is_ok()));
        let now = SystemTime::now();
        let refused = |bytes: &[u8]| query.read(bytes, now, Duration::ZERO).expect_err("refused");
        assert!(refused(b"garbage").contains("not an OCSP response"));
        // OCSPResponse { responseStatus tryLater }
        assert!(refused(&[0x30, 0x03, 0x0a, 0x01, 0x03]).contains("TryLater"));
        assert!(refused(&vec![0; MAX_RESPONSE_BYTES + 1]).contains("bytes"));
    }
}
