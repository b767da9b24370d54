//! SVIDs in TLS (rustls, TLS 1.3 only): the server presents the node's current
//! SVID, picked per handshake so a renewed one reaches the next connection
//! without a restart; clients and servers are checked by the SPIFFE
//! [`Trust`] (chain, SPIFFE rules, revocation) rather than by host name,
//! as SPIFFE peers are named by their SPIFFE ID.

use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwapOption;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, SignatureScheme};

use super::actor::SvidHandle;
use super::ca::IssuedSvid;
use super::spiffe_id::SpiffeId;
use super::trust::Trust;
use super::validate::{Refusal, Usage, VerifiedSvid};

/// The crypto provider of every SVID TLS config (aws-lc-rs, as the rest of
/// the node's rustls).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A server config that presents the node's current SVID and asks clients
/// for theirs (optional at the handshake: reads need none; the API checks
/// that changes come with one).
pub fn server_config(svid: Arc<SvidHandle>, trust: Arc<Trust>) -> Result<rustls::ServerConfig, rustls::Error> {
    let provider = provider();
    let verifier = SvidVerifier {
        trust,
        expect: None,
        provider: provider.clone(),
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_cert_resolver(Arc::new(CurrentSvid {
            svid,
            provider,
            cached: ArcSwapOption::empty(),
        }));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    // No resumption: every connection gets a full handshake, so it sees the
    // SVID current now and its client's SVID is checked against the CRL
    // in force now (a resumed session would carry both over).
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(config)
}

/// A client config that presents `svid` and accepts a server whose SVID
/// the `trust` validates and, when `expect` is given, names that SPIFFE ID.
pub fn client_config(
    svid: &IssuedSvid,
    trust: Arc<Trust>,
    expect: Option<SpiffeId>,
) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = provider();
    let key = PrivateKeyDer::from_pem_slice(svid.key_pem.as_bytes())
        .map_err(|e| rustls::Error::General(format!("the SVID's key: {e}")))?;
    rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(SvidVerifier {
            trust,
            expect,
            provider,
        }))
        .with_client_auth_cert(vec![CertificateDer::from(svid.cert_der.clone())], key)
}

/// The TLS error a refusal is reported as: the alert the peer sees names
/// revocation, expiry or an unknown CA where TLS has a word for it.
fn tls_error(refusal: Refusal) -> rustls::Error {
    let certificate = match refusal {
        Refusal::Revoked | Refusal::OcspRevoked => CertificateError::Revoked,
        Refusal::Expired => CertificateError::Expired,
        Refusal::NotYetValid => CertificateError::NotValidYet,
        Refusal::UnknownIssuer | Refusal::BundleExpired => CertificateError::UnknownIssuer,
        Refusal::Malformed(_) | Refusal::Oversized(_) => CertificateError::BadEncoding,
        other => CertificateError::Other(OtherError(Arc::new(other))),
    };
    rustls::Error::InvalidCertificate(certificate)
}

/// The chain a peer presented, leaf first, as owned DER.
fn owned_chain(end_entity: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>]) -> Vec<Vec<u8>> {
    std::iter::once(end_entity)
        .chain(intermediates)
        .map(|c| c.as_ref().to_vec())
        .collect()
}

/// Presents the SVID current at each handshake; the certified key is made
/// once per SVID.
struct CurrentSvid {
    svid: Arc<SvidHandle>,
    provider: Arc<CryptoProvider>,
    /// The serial and key last made.
    cached: ArcSwapOption<(String, Arc<CertifiedKey>)>,
}

impl std::fmt::Debug for CurrentSvid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurrentSvid").finish_non_exhaustive()
    }
}

impl ResolvesServerCert for CurrentSvid {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // No valid SVID, no handshake: the node never presents an expired one.
        let held = self.svid.current(SystemTime::now())?;
        if let Some(cached) = self.cached.load().as_ref().filter(|c| c.0 == held.svid.serial) {
            return Some(cached.1.clone());
        }
        let key = PrivateKeyDer::from_pem_slice(held.svid.key_pem.as_bytes())
            .map_err(|e| rustls::Error::General(e.to_string()))
            .and_then(|key| {
                CertifiedKey::from_der(
                    vec![CertificateDer::from(held.svid.cert_der.clone())],
                    key,
                    &self.provider,
                )
            });
        match key {
            Ok(key) => {
                let key = Arc::new(key);
                self.cached
                    .store(Some(Arc::new((held.svid.serial.clone(), key.clone()))));
                Some(key)
            }
            Err(error) => {
                tracing::error!(%error, serial = %held.svid.serial, "cannot present the SVID in TLS");
                None
            }
        }
    }
}

/// Checks a peer's SVID with the [`Trust`]: a server's check of its clients
/// (any SVID of the trust domain; the API decides what each may do) and a
/// client's check of its server (also its SPIFFE ID, when one is expected).
#[derive(Debug)]
struct SvidVerifier {
    trust: Arc<Trust>,
    expect: Option<SpiffeId>,
    provider: Arc<CryptoProvider>,
}

impl SvidVerifier {
    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        usage: Usage,
    ) -> Result<VerifiedSvid, rustls::Error> {
        let verified = self
            .trust
            .validate(&owned_chain(end_entity, intermediates), usage)
            .and_then(|verified| match &self.expect {
                Some(expected) if *expected != verified.id => {
                    Err(Refusal::UnexpectedId(verified.id.to_string(), expected.to_string()))
                }
                _ => Ok(verified),
            });
        verified.map_err(|refusal| {
            tracing::info!(reason = refusal.reason(), %refusal, ?usage, "peer SVID refused at the handshake");
            tls_error(refusal)
        })
    }
}

/// The handshake-signature methods both verifier traits ask for, the same
/// in each: the provider's algorithms over the peer's certificate key.
macro_rules! handshake_signatures {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.provider
                .signature_verification_algorithms
                .supported_schemes()
        }
    };
}

impl ClientCertVerifier for SvidVerifier {
    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity, intermediates, Usage::Client)
            .map(|_| ClientCertVerified::assertion())
    }

    handshake_signatures!();
}

impl ServerCertVerifier for SvidVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity, intermediates, Usage::Server)
            .map(|_| ServerCertVerified::assertion())
    }

    handshake_signatures!();
}
