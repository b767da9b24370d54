//! Validation of X.509-SVIDs: the SPIFFE rules on the leaf (checked with
//! `x509-parser`: webpki does not look at a leaf's keyUsage or count its URI
//! SANs), then the chain to the trust bundle, the validity window with a
//! clock-skew allowance and revocation by CRL (`rustls-webpki`). Every
//! refusal has its own reason.

use std::time::{Duration, SystemTime};

use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use sha2::Digest as _;
use thiserror::Error;
use webpki::{
    CertRevocationList, EndEntityCert, ExpirationPolicy, KeyUsage, OwnedCertRevocationList, RevocationCheckDepth,
    RevocationOptionsBuilder, UnknownStatusPolicy,
};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use super::ca::hex;
use super::spiffe_id::{SpiffeId, SpiffeIdError};

/// Largest certificate accepted, in bytes: an SVID is well under 2 KiB.
pub const MAX_CERT_BYTES: usize = 16 * 1024;
/// Most certificates in a presented chain (the leaf and intermediates).
pub const MAX_CHAIN: usize = 4;

/// Signature algorithms accepted in a chain.
pub(crate) static ALGORITHMS: &[&dyn rustls_pki_types::SignatureVerificationAlgorithm] = &[
    webpki::ring::ECDSA_P256_SHA256,
    webpki::ring::ECDSA_P384_SHA384,
    webpki::ring::ED25519,
    webpki::ring::RSA_PKCS1_2048_8192_SHA256,
    webpki::ring::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
];

/// What the certificate is presented for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// A client (mTLS API, a peer dialling in).
    Client,
    /// A server.
    Server,
}

/// Why an SVID was refused. [`Refusal::reason`] is its metric label.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Refusal {
    /// No certificate at all.
    #[error("no certificate was presented")]
    NoCertificate,
    /// Over [`MAX_CERT_BYTES`] or [`MAX_CHAIN`].
    #[error("the certificate chain is too large ({0})")]
    Oversized(String),
    /// Not a DER X.509 certificate (garbage, truncated, another type).
    #[error("not an X.509 certificate: {0}")]
    Malformed(String),
    /// A CA certificate presented as an SVID.
    #[error("the certificate is a CA (basicConstraints cA=true), not an SVID")]
    CaAsLeaf,
    /// keyUsage missing, not critical, without digitalSignature, or with a signing use.
    #[error("keyUsage must be critical with digitalSignature and without keyCertSign or cRLSign: {0}")]
    KeyUsage(&'static str),
    /// An extended key usage without serverAuth and clientAuth.
    #[error("extendedKeyUsage lacks {0}")]
    ExtendedKeyUsage(&'static str),
    /// Not exactly one URI SAN.
    #[error("an SVID has exactly one URI SAN, this has {0}")]
    UriSanCount(usize),
    /// The URI SAN is not a valid SPIFFE ID.
    #[error("the URI SAN is not a SPIFFE ID: {0}")]
    Id(SpiffeIdError),
    /// A SPIFFE ID of another trust domain.
    #[error("{0} is not in the trust domain {1}")]
    WrongTrustDomain(String, String),
    /// Past its notAfter (beyond the skew allowance).
    #[error("the certificate expired")]
    Expired,
    /// Before its notBefore (beyond the skew allowance).
    #[error("the certificate is not valid yet")]
    NotYetValid,
    /// Not signed by a CA of the bundle.
    #[error("the certificate is not signed by the trust bundle")]
    UnknownIssuer,
    /// Signed by a CA of the bundle whose own certificate has expired.
    #[error("the trust bundle's CA certificate has expired")]
    BundleExpired,
    /// Listed in the CRL.
    #[error("the certificate is revoked")]
    Revoked,
    /// CRLs are configured but none is from the certificate's issuer.
    #[error("no CRL of the certificate's issuer is known")]
    RevocationUnknown,
    /// The CRL is past its nextUpdate.
    #[error("the CRL is out of date (past its nextUpdate)")]
    CrlExpired,
    /// The CRL is not signed by the bundle's CA.
    #[error("the CRL is not signed by the trust bundle's CA")]
    BadCrl,
    /// A signature in the chain does not verify or uses an algorithm not accepted.
    #[error("a signature does not verify: {0}")]
    BadSignature(String),
    /// A pinned SPIFFE ID presenting another public key than its pin.
    #[error("{0} presented a public key other than its pin")]
    PinMismatch(String),
    /// A valid SVID naming another workload than the one expected.
    #[error("the peer is {0}, not the expected {1}")]
    UnexpectedId(String, String),
    /// Its OCSP responder answered that it is revoked.
    #[error("the OCSP responder says the certificate is revoked")]
    OcspRevoked,
    /// Its OCSP responder does not know it.
    #[error("the OCSP responder does not know the certificate")]
    OcspUnknown,
    /// Its OCSP responder was asked and has not answered yet
    /// (`svid.ocsp_unreachable = closed`).
    #[error("the OCSP responder has not answered yet")]
    OcspPending,
    /// Its OCSP responder cannot be reached (`svid.ocsp_unreachable = closed`).
    #[error("the OCSP responder cannot be reached")]
    OcspUnreachable,
    /// Any other reason webpki gives.
    #[error("the certificate is invalid: {0}")]
    Invalid(String),
}

impl Refusal {
    /// Metric label (`x0tta_svid_validations_total{result="refused",reason}`).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NoCertificate => "no_certificate",
            Self::Oversized(_) => "oversized",
            Self::Malformed(_) => "malformed",
            Self::CaAsLeaf => "ca_as_leaf",
            Self::KeyUsage(_) => "key_usage",
            Self::ExtendedKeyUsage(_) => "extended_key_usage",
            Self::UriSanCount(_) => "uri_san_count",
            Self::Id(e) => e.reason(),
            Self::WrongTrustDomain(..) => "wrong_trust_domain",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::UnknownIssuer => "unknown_issuer",
            Self::BundleExpired => "bundle_expired",
            Self::Revoked => "revoked",
            Self::RevocationUnknown => "revocation_unknown",
            Self::CrlExpired => "crl_expired",
            Self::BadCrl => "bad_crl",
            Self::BadSignature(_) => "bad_signature",
            Self::UnexpectedId(..) => "unexpected_id",
            Self::PinMismatch(_) => "pin_mismatch",
            Self::OcspRevoked => "ocsp_revoked",
            Self::OcspUnknown => "ocsp_unknown",
            Self::OcspPending => "ocsp_pending",
            Self::OcspUnreachable => "ocsp_unreachable",
            Self::Invalid(_) => "invalid",
        }
    }
}

/// A trust bundle or CRL that cannot be used.
#[derive(Debug, Error)]
pub enum BundleError {
    /// No certificate in the bundle.
    #[error("the trust bundle holds no certificate")]
    Empty,
    /// A certificate of the bundle does not parse.
    #[error("a certificate of the trust bundle is unusable: {0}")]
    Certificate(String),
    /// The CRL does not parse.
    #[error("the CRL is unusable: {0}")]
    Crl(String),
}

/// An SVID that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSvid {
    /// Its SPIFFE ID.
    pub id: SpiffeId,
    /// Serial number, lowercase hex.
    pub serial: String,
    /// End of validity.
    pub not_after: SystemTime,
}

/// The validity window of a CA certificate of the bundle (webpki's trust
/// anchors carry none).
struct Window {
    not_before: SystemTime,
    not_after: SystemTime,
}

/// Validates SVIDs of one trust domain against its bundle and CRLs.
pub struct Validator {
    trust_domain: String,
    /// The bundle's CA certificates, parsed once.
    anchors: Vec<TrustAnchor<'static>>,
    /// Their validity, index for index.
    windows: Vec<Window>,
    crls: Vec<CertRevocationList<'static>>,
    skew: Duration,
    pins: Pins,
}

/// SPKI pins: a SPIFFE ID and the SHA-256 of the only public key (its DER
/// SubjectPublicKeyInfo) it may present.
pub type Pins = std::collections::BTreeMap<String, [u8; 32]>;

/// A pin as curl writes it, `sha256//<base64 of the SPKI's SHA-256>`.
pub fn parse_pin(text: &str) -> Result<[u8; 32], String> {
    use base64::Engine as _;
    let encoded = text
        .strip_prefix("sha256//")
        .ok_or_else(|| format!("{text:?} is not sha256//<base64>"))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| format!("{text:?}: {e}"))?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| format!("{text:?} is not 32 bytes"))
}

/// The pin of a certificate's public key, `sha256//<base64>`.
pub fn pin_of(cert_der: &[u8]) -> Option<String> {
    use base64::Engine as _;
    let (_, cert) = X509Certificate::from_der(cert_der).ok()?;
    Some(format!(
        "sha256//{}",
        base64::engine::general_purpose::STANDARD.encode(spki_sha256(&cert))
    ))
}

/// The SHA-256 of a certificate's DER SubjectPublicKeyInfo: what pins name.
fn spki_sha256(cert: &X509Certificate<'_>) -> [u8; 32] {
    sha2::Sha256::digest(cert.public_key().raw).into()
}

impl Validator {
    /// A validator for `trust_domain` trusting the CA certificates in
    /// `bundle_pem`, allowing clocks to differ by `skew`.
    pub fn new(trust_domain: &str, bundle_pem: &str, skew: Duration) -> Result<Self, BundleError> {
        let (mut anchors, mut windows) = (Vec::new(), Vec::new());
        for pem in x509_parser::pem::Pem::iter_from_buffer(bundle_pem.as_bytes()) {
            let pem = pem.map_err(|e| BundleError::Certificate(e.to_string()))?;
            let (_, cert) =
                X509Certificate::from_der(&pem.contents).map_err(|e| BundleError::Certificate(e.to_string()))?;
            let validity = cert.validity();
            windows.push(Window {
                not_before: system_time(validity.not_before),
                not_after: system_time(validity.not_after),
            });
            let der = CertificateDer::from(pem.contents.as_slice());
            let anchor = webpki::anchor_from_trusted_cert(&der).map_err(|e| BundleError::Certificate(e.to_string()))?;
            anchors.push(anchor.to_owned());
        }
        if anchors.is_empty() {
            return Err(BundleError::Empty);
        }
        Ok(Self {
            trust_domain: trust_domain.to_string(),
            anchors,
            windows,
            crls: Vec::new(),
            skew,
            pins: Pins::new(),
        })
    }

    /// Replaces the CRLs checked with those in `crl`: PEM (one or more) or a
    /// single DER CRL, as CRL distribution points serve them.
    pub fn set_crls(&mut self, crl: &[u8]) -> Result<(), BundleError> {
        let ders: Vec<Vec<u8>> = if crl.starts_with(b"-----BEGIN") {
            x509_parser::pem::Pem::iter_from_buffer(crl)
                .map(|pem| pem.map(|pem| pem.contents).map_err(|e| BundleError::Crl(e.to_string())))
                .collect::<Result<_, _>>()?
        } else {
            vec![crl.to_vec()]
        };
        let crls = ders
            .iter()
            .map(|der| {
                OwnedCertRevocationList::from_der(der)
                    .map(CertRevocationList::from)
                    .map_err(|e| BundleError::Crl(format!("{e:?}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if crls.is_empty() {
            return Err(BundleError::Crl("no CRL in the PEM".into()));
        }
        self.crls = crls;
        Ok(())
    }

    /// Pins SPIFFE IDs to the only public keys they may present.
    pub fn set_pins(&mut self, pins: Pins) {
        self.pins = pins;
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// Validates `chain` (leaf first, DER) presented for `usage` at `now`.
    pub fn validate(&self, chain: &[Vec<u8>], usage: Usage, now: SystemTime) -> Result<VerifiedSvid, Refusal> {
        let leaf = chain.first().ok_or(Refusal::NoCertificate)?;
        if chain.len() > MAX_CHAIN {
            return Err(Refusal::Oversized(format!("{} certificates", chain.len())));
        }
        if let Some(big) = chain.iter().find(|c| c.len() > MAX_CERT_BYTES) {
            return Err(Refusal::Oversized(format!("{} bytes", big.len())));
        }
        let (checked, spki_sha256) = check_leaf(leaf, &self.trust_domain)?;
        if let Some(pin) = self.pins.get(&checked.id.to_string()) {
            if *pin != spki_sha256 {
                return Err(Refusal::PinMismatch(checked.id.to_string()));
            }
        }
        let window = self.verify_chain(chain, usage, now)?;
        // webpki's trust anchors carry no validity: the CA's own is checked here.
        if now + self.skew < window.not_before || window.not_after + self.skew < now {
            return Err(Refusal::BundleExpired);
        }
        Ok(checked)
    }

    /// Checks the chain to the bundle at `now`, allowing the clock skew at
    /// the leaf's validity edges; the validity of the CA it chains to.
    fn verify_chain(&self, chain: &[Vec<u8>], usage: Usage, now: SystemTime) -> Result<&Window, Refusal> {
        let leaf = CertificateDer::from(chain[0].as_slice());
        let intermediates: Vec<CertificateDer<'_>> =
            chain[1..].iter().map(|c| CertificateDer::from(c.as_slice())).collect();
        let end_entity = EndEntityCert::try_from(&leaf).map_err(|e| Refusal::Malformed(e.to_string()))?;
        let crls: Vec<&CertRevocationList<'_>> = self.crls.iter().collect();
        let verify_at = |time: UnixTime| {
            let revocation = RevocationOptionsBuilder::new(&crls).ok().map(|b| {
                b.with_depth(RevocationCheckDepth::Chain)
                    .with_status_policy(UnknownStatusPolicy::Deny)
                    .with_expiration_policy(ExpirationPolicy::Enforce)
                    .build()
            });
            let eku = match usage {
                Usage::Client => KeyUsage::client_auth(),
                Usage::Server => KeyUsage::server_auth(),
            };
            end_entity
                .verify_for_usage(ALGORITHMS, &self.anchors, &intermediates, time, eku, revocation, None)
                .map(|path| path.anchor().subject_public_key_info.as_ref().to_vec())
        };
        let now_unix = super::unix_secs(now);
        let skew = self.skew.as_secs();
        let verified = match verify_at(UnixTime::since_unix_epoch(Duration::from_secs(now_unix))) {
            Err(webpki::Error::CertNotValidYet { not_before, .. }) if not_before.as_secs() <= now_unix + skew => {
                verify_at(not_before)
            }
            Err(webpki::Error::CertExpired { not_after, .. }) if not_after.as_secs() + skew >= now_unix => {
                verify_at(not_after)
            }
            other => other,
        };
        let spki = verified.map_err(refusal_of)?;
        self.anchors
            .iter()
            .position(|a| a.subject_public_key_info.as_ref() == spki.as_slice())
            .map(|at| &self.windows[at])
            .ok_or(Refusal::UnknownIssuer)
    }
}

/// The SPIFFE rules webpki does not check, the SPIFFE ID and the SHA-256 of
/// the leaf's SubjectPublicKeyInfo.
fn check_leaf(der: &[u8], trust_domain: &str) -> Result<(VerifiedSvid, [u8; 32]), Refusal> {
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| Refusal::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(Refusal::Malformed(format!(
            "{} bytes after the certificate",
            rest.len()
        )));
    }
    let malformed = |e: x509_parser::error::X509Error| Refusal::Malformed(e.to_string());
    if cert
        .basic_constraints()
        .map_err(malformed)?
        .is_some_and(|bc| bc.value.ca)
    {
        return Err(Refusal::CaAsLeaf);
    }
    let key_usage = cert
        .key_usage()
        .map_err(malformed)?
        .ok_or(Refusal::KeyUsage("missing"))?;
    if !key_usage.critical {
        return Err(Refusal::KeyUsage("not critical"));
    }
    if !key_usage.value.digital_signature() {
        return Err(Refusal::KeyUsage("no digitalSignature"));
    }
    if key_usage.value.key_cert_sign() || key_usage.value.crl_sign() {
        return Err(Refusal::KeyUsage("keyCertSign or cRLSign set"));
    }
    if let Some(eku) = cert.extended_key_usage().map_err(malformed)? {
        if !eku.value.server_auth {
            return Err(Refusal::ExtendedKeyUsage("serverAuth"));
        }
        if !eku.value.client_auth {
            return Err(Refusal::ExtendedKeyUsage("clientAuth"));
        }
    }
    let uris: Vec<&str> = cert
        .subject_alternative_name()
        .map_err(malformed)?
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::URI(uri) => Some(*uri),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let [uri] = uris.as_slice() else {
        return Err(Refusal::UriSanCount(uris.len()));
    };
    let id = SpiffeId::parse(uri).map_err(Refusal::Id)?;
    if id.trust_domain() != trust_domain {
        return Err(Refusal::WrongTrustDomain(id.to_string(), trust_domain.to_string()));
    }
    let verified = VerifiedSvid {
        id,
        serial: hex(cert.raw_serial()),
        not_after: system_time(cert.validity().not_after),
    };
    Ok((verified, spki_sha256(&cert)))
}

fn refusal_of(error: webpki::Error) -> Refusal {
    use webpki::Error as E;
    match error {
        E::CertExpired { .. } => Refusal::Expired,
        E::CertNotValidYet { .. } => Refusal::NotYetValid,
        E::UnknownIssuer => Refusal::UnknownIssuer,
        E::CertRevoked => Refusal::Revoked,
        E::UnknownRevocationStatus => Refusal::RevocationUnknown,
        E::CrlExpired { .. } => Refusal::CrlExpired,
        E::InvalidCrlSignatureForPublicKey | E::IssuerNotCrlSigner | E::UnsupportedCrlSignatureAlgorithmContext(_) => {
            Refusal::BadCrl
        }
        E::CaUsedAsEndEntity => Refusal::CaAsLeaf,
        E::InvalidSignatureForPublicKey
        | E::UnsupportedSignatureAlgorithmContext(_)
        | E::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => Refusal::BadSignature(format!("{error:?}")),
        E::BadDer | E::BadDerTime | E::TrailingData(_) | E::UnsupportedCertVersion => {
            Refusal::Malformed(format!("{error:?}"))
        }
        other => Refusal::Invalid(format!("{other:?}")),
    }
}

/// A certificate time as a `SystemTime` (times before 1970 as the epoch).
fn system_time(time: x509_parser::time::ASN1Time) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(time.timestamp()).unwrap_or(0))
}
