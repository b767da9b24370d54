//! The node's SPIFFE identity at start: the CA that issues its SVIDs (the
//! operator's, from `svid.ca_key_file` and `svid.ca_cert_file`, or the
//! node's own, kept in sled), the trust in force (the bundle, and the CRL
//! from `svid.crl`, kept fresh; OCSP for SVIDs that name a responder) and the
//! supervised renewer.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use anyhow::Context as _;
use x0tta6bl4_actors::alert::SharedAlertSink;
use x0tta6bl4_actors::store::Store;
use x0tta6bl4_actors::supervision::Supervision;
use x0tta6bl4_actors::svid::crl::{self, CrlSource};
use x0tta6bl4_actors::svid::local_ca::{self, LocalCa};
use x0tta6bl4_actors::svid::ocsp::{self, Ocsp};
use x0tta6bl4_actors::svid::{SpiffeId, SvidActor, SvidConfig, SvidHandle, Trust, TrustDomainCa};

/// The running identity.
pub struct Identity {
    /// The current SVID.
    pub handle: Arc<SvidHandle>,
    /// The bundle and CRL peers' SVIDs are checked against.
    pub trust: Arc<Trust>,
    /// The renewer.
    pub actor: Addr<SvidActor>,
}

/// Opens the CA, puts the trust in force and starts the renewer of
/// `peer_id`'s SVID under `supervision`.
pub fn start(
    config: &SvidConfig,
    store: &Store,
    peer_id: &libp2p::PeerId,
    supervision: &Supervision,
    alerts: SharedAlertSink,
) -> anyhow::Result<Identity> {
    let ca = open_ca(config, store)?;
    let skew = Duration::from_secs(config.clock_skew_secs);
    let pins = config.parsed_pins().map_err(anyhow::Error::msg)?;
    let (ocsp, queries) = Ocsp::new(ca.bundle_pem(), config.ocsp_unreachable, skew);
    actix_rt::spawn(ocsp::run_fetcher(ocsp.clone(), queries, alerts.clone()));
    let trust = Trust::new(&config.trust_domain, ca.bundle_pem(), skew, pins).context("the trust bundle")?;
    let trust = Arc::new(trust.with_ocsp(ocsp));
    if let Some(crl) = &config.crl {
        let source = CrlSource::parse(crl);
        tracing::info!(%source, every = config.crl_refresh_secs, "SVIDs are checked against this CRL");
        actix_rt::spawn(crl::keep_fresh(
            source,
            trust.clone(),
            Duration::from_secs(config.crl_refresh_secs),
        ));
    }
    let id = SpiffeId::for_node(&config.trust_domain, &peer_id.to_string())?;
    let handle = Arc::new(SvidHandle::default());
    let (actor_handle, renew_at, ttl) = (handle.clone(), config.renew_at, Duration::from_secs(config.ttl_secs));
    let actor = supervision.start("svid", move |_| {
        SvidActor::new(Box::new(LocalCa { ca, ttl }), id, actor_handle, renew_at, alerts)
    });
    Ok(Identity { handle, trust, actor })
}

/// The operator's CA when its files are configured, else the node's own.
fn open_ca(config: &SvidConfig, store: &Store) -> anyhow::Result<TrustDomainCa> {
    let (Some(key), Some(cert)) = (&config.ca_key_file, &config.ca_cert_file) else {
        let lifetime = Duration::from_secs(config.ca_days * 86_400);
        return local_ca::load_or_create(store, &config.trust_domain, lifetime)
            .context("cannot open the node's trust-domain CA");
    };
    let read = |path: &Path| std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()));
    TrustDomainCa::from_pem(&config.trust_domain, &read(key)?, &read(cert)?)
        .context("the operator's CA (svid.ca_key_file, svid.ca_cert_file) cannot be used")
}
