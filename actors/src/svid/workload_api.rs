//! SVIDs from a SPIFFE Workload API (SPIRE's agent, `svid.workload_api` or
//! `SPIFFE_ENDPOINT_SOCKET`), through the `spiffe` crate's `X509Source`: it
//! follows the `FetchX509SVID` stream, so new SVIDs and bundles are pushed
//! and the node does not poll. [`follow`] hands each new SVID to the
//! [`SvidActor`](super::SvidActor), which installs it as it would a renewal,
//! and puts a rotated bundle in force in the [`Trust`].

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix::Recipient;
pub use spiffe::X509Source;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::actor::Pushed;
use super::ca::{der_pem, hex, IssuedSvid};
use super::spiffe_id::SpiffeId;
use super::trust::Trust;

/// Connects to the Workload API at `endpoint` (`unix:///path` or
/// `tcp://host:port`) and waits up to `timeout` for a first X.509 context.
pub async fn connect(endpoint: &str, timeout: Duration) -> Result<X509Source, String> {
    X509Source::builder()
        .endpoint(endpoint)
        .initial_sync_timeout(timeout)
        .build()
        .await
        .map_err(|e| format!("no X.509-SVID from the Workload API at {endpoint}: {e}"))
}

/// The source's current SVID, in the node's terms, and the PEM bundle of
/// its trust domain.
pub fn current(source: &X509Source) -> Result<(IssuedSvid, String), String> {
    let context = source.x509_context().map_err(|e| e.to_string())?;
    let svid = context.default_svid().ok_or("the Workload API sent no X.509-SVID")?;
    let id = SpiffeId::parse(&svid.spiffe_id().to_string()).map_err(|e| e.to_string())?;
    let bundle = context
        .bundle_set()
        .get(svid.spiffe_id().trust_domain())
        .ok_or_else(|| format!("the Workload API sent no bundle for {id}"))?;
    let bundle_pem: String = bundle
        .authorities()
        .iter()
        .map(|ca| der_pem("CERTIFICATE", ca.as_bytes()))
        .collect();
    let leaf = svid.leaf().as_bytes();
    let (_, parsed) = X509Certificate::from_der(leaf).map_err(|e| format!("the pushed SVID: {e}"))?;
    let not_after = SystemTime::UNIX_EPOCH
        + Duration::from_secs(u64::try_from(parsed.validity().not_after.timestamp()).unwrap_or(0));
    let issued = IssuedSvid {
        id,
        cert_pem: der_pem("CERTIFICATE", leaf),
        cert_der: leaf.to_vec(),
        key_pem: der_pem("PRIVATE KEY", svid.private_key().as_bytes()),
        serial: hex(parsed.raw_serial()),
        not_after,
    };
    Ok((issued, bundle_pem))
}

/// Hands every SVID the Workload API pushes to `actor`, and puts every new
/// bundle in force in `trust`, for as long as the source runs.
pub async fn follow(source: Arc<X509Source>, actor: Recipient<Pushed>, trust: Arc<Trust>) {
    let mut updates = source.updated();
    loop {
        if let Err(error) = updates.changed().await {
            tracing::error!(%error, "the Workload API source stopped; the SVID is no longer renewed");
            return;
        }
        match current(&source) {
            Ok((svid, bundle_pem)) => {
                if !trust.has_bundle(&bundle_pem) {
                    match trust.set_bundle(&bundle_pem) {
                        Ok(()) => tracing::info!("a new trust bundle from the Workload API is in force"),
                        Err(error) => {
                            tracing::warn!(%error, "the Workload API's new bundle cannot be used; the previous one stays")
                        }
                    }
                }
                actor.do_send(Pushed(svid));
            }
            Err(error) => tracing::warn!(%error, "an update from the Workload API could not be used"),
        }
    }
}
