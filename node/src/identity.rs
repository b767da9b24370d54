//! The node's SPIFFE identity at start: where its SVIDs come from (a SPIFFE
//! Workload API when `svid.workload_api` or `SPIFFE_ENDPOINT_SOCKET` names
//! one; else the operator's CA, from `svid.ca_key_file` and
//! `svid.ca_cert_file`; else the node's own CA, kept in sled), the trust in force (the bundle, and the CRL
//! from `svid.crl`, kept fresh; OCSP for SVIDs that name a responder) and the
//! supervised renewer.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use anyhow::Context as _;
use x0tta6bl4_actors::alert::SharedAlertSink;
use x0tta6bl4_actors::breaker::BreakerActor;
use x0tta6bl4_actors::store::Store;
use x0tta6bl4_actors::supervision::Supervision;
use x0tta6bl4_actors::svid::actor::Pushed;
use x0tta6bl4_actors::svid::crl::{self, CrlSource};
use x0tta6bl4_actors::svid::local_ca::{self, LocalCa, SvidSource};
use x0tta6bl4_actors::svid::ocsp::{self, Ocsp};
use x0tta6bl4_actors::svid::workload_api;
use x0tta6bl4_actors::svid::{IssuedSvid, SpiffeId, SvidActor, SvidConfig, SvidHandle, Trust, TrustDomainCa};

/// The running identity.
pub struct Identity {
    /// The current SVID.
    pub handle: Arc<SvidHandle>,
    /// The bundle and CRL peers' SVIDs are checked against.
    pub trust: Arc<Trust>,
    /// The renewer.
    pub actor: Addr<SvidActor>,
}

/// How long the node waits for a first SVID from a Workload API.
const WORKLOAD_API_WAIT: Duration = Duration::from_secs(30);

/// Where the SVIDs come from, and the trust bundle that goes with them.
struct Origin {
    /// Renewals from a CA; `None` when a Workload API pushes them.
    source: Option<Box<dyn SvidSource>>,
    bundle_pem: String,
    /// The Workload API's source and its first SVID.
    pushed: Option<(Arc<workload_api::X509Source>, IssuedSvid)>,
}

/// Finds the SVIDs' origin, puts the trust in force and starts the renewer
/// of `peer_id`'s SVID under `supervision`, its renewals through `breaker`.
pub async fn start(
    config: &SvidConfig,
    store: &Store,
    peer_id: &libp2p::PeerId,
    supervision: &Supervision,
    alerts: SharedAlertSink,
    breaker: Addr<BreakerActor>,
) -> anyhow::Result<Identity> {
    let origin = origin(config, store).await?;
    let skew = Duration::from_secs(config.clock_skew_secs);
    let pins = config.parsed_pins().map_err(anyhow::Error::msg)?;
    let (ocsp, queries) = Ocsp::new(&origin.bundle_pem, config.ocsp_unreachable, skew);
    actix_rt::spawn(ocsp::run_fetcher(ocsp.clone(), queries, alerts.clone()));
    let trust = Trust::new(&config.trust_domain, &origin.bundle_pem, skew, pins).context("the trust bundle")?;
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
    let (actor_handle, renew_at, source) = (handle.clone(), config.renew_at, origin.source);
    let actor = supervision.start("svid", move |_| {
        SvidActor::new(source, id, actor_handle, renew_at, alerts).with_breaker(breaker)
    });
    if let Some((x509, first)) = origin.pushed {
        actor.do_send(Pushed(first));
        actix_rt::spawn(workload_api::follow(x509, actor.clone().recipient(), trust.clone()));
    }
    Ok(Identity { handle, trust, actor })
}

/// A Workload API when one is named, else the operator's CA, else the node's own.
async fn origin(config: &SvidConfig, store: &Store) -> anyhow::Result<Origin> {
    let endpoint = config
        .workload_api
        .clone()
        .or_else(|| std::env::var("SPIFFE_ENDPOINT_SOCKET").ok());
    if let Some(endpoint) = endpoint {
        tracing::info!(%endpoint, "SVIDs come from the SPIFFE Workload API");
        let x509 = workload_api::connect(&endpoint, WORKLOAD_API_WAIT)
            .await
            .map_err(anyhow::Error::msg)?;
        let (first, bundle_pem) = workload_api::current(&x509).map_err(anyhow::Error::msg)?;
        return Ok(Origin {
            source: None,
            bundle_pem,
            pushed: Some((Arc::new(x509), first)),
        });
    }
    let ca = open_ca(config, store)?;
    let ttl = Duration::from_secs(config.ttl_secs);
    Ok(Origin {
        bundle_pem: ca.bundle_pem().to_string(),
        source: Some(Box::new(LocalCa { ca, ttl })),
        pushed: None,
    })
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
