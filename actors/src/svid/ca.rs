//! The built-in trust-domain CA: a self-signed ECDSA P-256 root that issues
//! X.509-SVIDs by the SPIFFE X.509-SVID standard (one URI SAN, `cA=false`,
//! critical keyUsage digitalSignature, EKU serverAuth + clientAuth, a short
//! lifetime) and signs CRLs of the serials it revoked. Built on `rcgen`.

use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, Ia5String, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SanType, SerialNumber,
};
use thiserror::Error;
use time::OffsetDateTime;

use super::spiffe_id::{check_trust_domain, SpiffeId, SpiffeIdError};

/// How far back a new certificate's validity starts, for clocks a little behind.
const BACKDATE: Duration = Duration::from_secs(60);

/// Errors of the CA.
#[derive(Debug, Error)]
pub enum CaError {
    /// The trust domain or the SPIFFE ID to issue is not valid.
    #[error("invalid SPIFFE ID: {0}")]
    Id(#[from] SpiffeIdError),
    /// rcgen could not make or sign a certificate or CRL.
    #[error("cannot make the certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// The stored CA key and certificate do not belong together.
    #[error("the CA certificate does not match its key, or is not this trust domain's CA: {0}")]
    Mismatch(String),
    /// A lifetime that cannot be a certificate's.
    #[error("invalid lifetime: {0}")]
    Lifetime(String),
}

/// One revoked certificate: its serial and when it was revoked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Revoked {
    /// Serial number, lowercase hex of its DER content bytes.
    pub serial: String,
    /// Revocation time, seconds since the Unix epoch.
    pub at_unix: u64,
}

/// An issued X.509-SVID with its private key.
#[derive(Debug, Clone)]
pub struct IssuedSvid {
    /// The SPIFFE ID it names.
    pub id: SpiffeId,
    /// The leaf certificate, PEM.
    pub cert_pem: String,
    /// The leaf certificate, DER.
    pub cert_der: Vec<u8>,
    /// Its private key, PKCS#8 PEM.
    pub key_pem: String,
    /// Serial number, lowercase hex.
    pub serial: String,
    /// End of validity.
    pub not_after: SystemTime,
}

/// A trust domain's CA: its key and its certificate (the trust bundle).
pub struct TrustDomainCa {
    trust_domain: String,
    key: KeyPair,
    /// The certificate as rcgen rebuilt it from the key: what leaves are signed with.
    signer: rcgen::Certificate,
    /// The certificate as first made and stored: the trust anchor peers hold.
    cert_pem: String,
}

impl TrustDomainCa {
    /// A new CA for `trust_domain`, valid for `lifetime` from now.
    pub fn generate(trust_domain: &str, lifetime: Duration) -> Result<Self, CaError> {
        check_trust_domain(trust_domain)?;
        let key = KeyPair::generate()?;
        let now = SystemTime::now();
        let mut params = ca_params(trust_domain)?;
        params.not_before = at(now - BACKDATE)?;
        params.not_after = at(now + lifetime)?;
        params.serial_number = Some(random_serial());
        let cert = params.self_signed(&key)?;
        let cert_pem = cert.pem();
        Ok(Self {
            trust_domain: trust_domain.to_string(),
            signer: ca_params(trust_domain)?.self_signed(&key)?,
            key,
            cert_pem,
        })
    }

    /// The CA of `trust_domain` from its stored key and certificate (PEM).
    pub fn from_pem(trust_domain: &str, key_pem: &str, cert_pem: &str) -> Result<Self, CaError> {
        check_trust_domain(trust_domain)?;
        let key = KeyPair::from_pem(key_pem)?;
        let signer = ca_params(trust_domain)?.self_signed(&key)?;
        let stored = pem_der(cert_pem).ok_or_else(|| CaError::Mismatch("the certificate is not PEM".into()))?;
        let (_, parsed) = x509_parser::parse_x509_certificate(&stored)
            .map_err(|e| CaError::Mismatch(format!("the certificate does not parse: {e}")))?;
        let (_, rebuilt) = x509_parser::parse_x509_certificate(signer.der())
            .map_err(|e| CaError::Mismatch(format!("the rebuilt certificate does not parse: {e}")))?;
        if parsed.subject().as_raw() != rebuilt.subject().as_raw() {
            return Err(CaError::Mismatch(format!(
                "its subject is {}, not the one of {trust_domain}'s CA",
                parsed.subject()
            )));
        }
        if parsed.public_key().raw != rebuilt.public_key().raw {
            return Err(CaError::Mismatch("the certificate holds another public key".into()));
        }
        Ok(Self {
            trust_domain: trust_domain.to_string(),
            key,
            signer,
            cert_pem: cert_pem.to_string(),
        })
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The CA certificate, PEM: the trust bundle.
    pub fn bundle_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA's private key, PKCS#8 PEM (keep it 0600).
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// Issues an X.509-SVID for `id` with a new key, valid for `ttl` from now.
    pub fn issue(&self, id: &SpiffeId, ttl: Duration) -> Result<IssuedSvid, CaError> {
        if id.trust_domain() != self.trust_domain {
            return Err(CaError::Mismatch(format!(
                "{id} is not in the trust domain {}",
                self.trust_domain
            )));
        }
        if ttl < Duration::from_secs(1) {
            return Err(CaError::Lifetime("an SVID lives at least a second".into()));
        }
        let now = SystemTime::now();
        let not_after = now + ttl;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::OrganizationName, self.trust_domain.as_str());
        name.push(DnType::CommonName, id.path().trim_start_matches('/'));
        params.distinguished_name = name;
        params.subject_alt_names = vec![SanType::URI(Ia5String::try_from(id.to_string())?)];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = at(now - BACKDATE)?;
        params.not_after = at(not_after)?;
        let serial = random_serial();
        params.serial_number = Some(serial.clone());
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.signer, &self.key)?;
        Ok(IssuedSvid {
            id: id.clone(),
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            key_pem: key.serialize_pem(),
            serial: hex(&serial.to_bytes()),
            not_after,
        })
    }

    /// A CRL of `revoked`, number `number`, valid until `next_update` from now; PEM.
    pub fn crl_pem(&self, revoked: &[Revoked], number: u64, next_update: Duration) -> Result<String, CaError> {
        let now = SystemTime::now();
        let revoked_certs = revoked
            .iter()
            .map(|r| {
                let serial = unhex(&r.serial).ok_or_else(|| CaError::Mismatch(format!("bad serial {}", r.serial)))?;
                Ok(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&serial),
                    revocation_time: at(SystemTime::UNIX_EPOCH + Duration::from_secs(r.at_unix))?,
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
            })
            .collect::<Result<Vec<_>, CaError>>()?;
        let crl = CertificateRevocationListParams {
            this_update: at(now - BACKDATE)?,
            next_update: at(now + next_update)?,
            crl_number: SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&self.signer, &self.key)?;
        Ok(crl.pem()?)
    }
}

#[cfg(test)]
impl TrustDomainCa {
    /// Signs arbitrary `params` for `key` (tests make SVIDs that break a rule).
    pub(crate) fn sign(&self, params: CertificateParams, key: &KeyPair) -> Result<rcgen::Certificate, CaError> {
        Ok(params.signed_by(key, &self.signer, &self.key)?)
    }
}

/// The CA's parameters that signing depends on; the same on every load, so a
/// reloaded CA signs as the stored certificate's subject and key identifier.
fn ca_params(trust_domain: &str) -> Result<CertificateParams, CaError> {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, trust_domain);
    name.push(DnType::CommonName, "x0tta6bl4 trust domain CA");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    // The SPIFFE standard: a signing certificate has keyCertSign (and cRLSign), never digitalSignature.
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.subject_alt_names = vec![SanType::URI(Ia5String::try_from(format!("spiffe://{trust_domain}"))?)];
    params.key_identifier_method = KeyIdMethod::Sha256;
    Ok(params)
}

/// A random positive serial of 16 bytes whose first byte is not zero, so its
/// bytes are the same in rcgen, the certificate's DER and a CRL.
fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] = (bytes[0] & 0x7f).max(1);
    SerialNumber::from_slice(&bytes)
}

fn at(time: SystemTime) -> Result<OffsetDateTime, CaError> {
    let secs = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|_| CaError::Lifetime("before 1970".into()))?
        .as_secs();
    OffsetDateTime::from_unix_timestamp(i64::try_from(secs).unwrap_or(i64::MAX))
        .map_err(|e| CaError::Lifetime(e.to_string()))
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes of lowercase or uppercase hex; `None` if it is not hex.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    let text = text.trim().trim_start_matches("0x");
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The DER of the first PEM block in `pem`.
pub fn pem_der(pem: &str) -> Option<Vec<u8>> {
    let (_, parsed) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
    Some(parsed.contents)
}

/// `der` as a PEM block labelled `label` (e.g. `CERTIFICATE`, `PRIVATE KEY`).
pub fn der_pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = encoded
        .as_bytes()
        .chunks(64)
        .filter_map(|line| std::str::from_utf8(line).ok())
        .collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}
