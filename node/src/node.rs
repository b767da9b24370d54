//! Wiring of one node: store, actors under supervisors, HTTP server.

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use actix_web::{web, App, HttpServer};
use anyhow::Context;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use x0tta6bl4_actors::alert::{Alert, Severity, SharedAlertSink};
use x0tta6bl4_actors::alerter::sinks::{NodeContext, Sink};
use x0tta6bl4_actors::alerter::{configured_sinks, Alerter, AlerterActor};
use x0tta6bl4_actors::breaker::BreakerActor;
use x0tta6bl4_actors::healer::execute::Effectors;
use x0tta6bl4_actors::healer::knowledge::Knowledge;
use x0tta6bl4_actors::healer::observe::Sources;
use x0tta6bl4_actors::healer::HealerActor;
use x0tta6bl4_actors::mesh::{self, MeshActor, MeshParts, MeshSvid, Neighbours};
use x0tta6bl4_actors::payments::{PaymentActor, Payments};
use x0tta6bl4_actors::policy::Policy;
use x0tta6bl4_actors::router::{Forwarder, RouterActor, RouterConfig};
use x0tta6bl4_actors::secure::Sessions;
use x0tta6bl4_actors::store::Store;
use x0tta6bl4_actors::supervision::{Escalation, Supervision, ESCALATION_EXIT_CODE};
use x0tta6bl4_actors::sync::{Effects, LiveFlags, SyncActor, SyncNode};
use x0tta6bl4_actors::telemetry::{Subscribe, TelemetryActor};
use x0tta6bl4_pqc::PqIdentity;

use crate::api::{self, AppState};
use crate::config::NodeConfig;

/// How often unacknowledged reliable messages are checked for retransmission.
const RETRANSMIT_TICK_MS: u64 = 20;

/// File in the data dir holding the bound HTTP address, for scripts and tests.
pub const HTTP_ADDR_FILE: &str = "http.addr";
/// File in the data dir holding the mTLS listener's address, when it is on.
pub const HTTPS_ADDR_FILE: &str = "https.addr";

/// Runs the node until SIGINT or SIGTERM.
pub fn run(config: NodeConfig) -> anyhow::Result<()> {
    let prometheus = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("x0tta_mttr_seconds".into()),
            &[0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0],
        )
        .context("MTTR buckets")?
        .set_buckets_for_metric(
            Matcher::Full("x0tta_mapek_cycle_seconds".into()),
            &[0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0],
        )
        .context("cycle buckets")?
        .set_buckets_for_metric(
            Matcher::Full("x0tta_pqc_handshake_duration_seconds".into()),
            &[0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0],
        )
        .context("handshake buckets")?
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    raise_open_file_limit(&config);
    // Networking gets its own runtime so a busy actor thread never delays frames.
    let network = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.network_threads)
        .thread_name("x0tta-net")
        .enable_all()
        .build()
        .context("cannot start the network runtime")?;
    let data_dir = config.data_dir();
    std::fs::create_dir_all(&data_dir).with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
    let store = Store::open_with_cache(&data_dir, config.store_cache_mib << 20)
        .with_context(|| format!("cannot open the store in {}", data_dir.display()))?;
    let keypair = store.load_or_create_identity()?;
    let pq_seeds = store.load_or_create_pq_seeds()?;
    let peer_id = keypair.public().to_peer_id();
    let pqc_mode = config.pqc.mode().map_err(anyhow::Error::msg)?;
    let policy = Arc::new(Policy::load(&config.policy)?);
    let policy_reload = std::time::Duration::from_millis(config.policy.reload_ms);
    tracing::info!(name = %config.name, %peer_id, data_dir = %data_dir.display(), "starting node");

    // Bound first: the address goes into alerts, and a taken port fails fast.
    let bind = |addr: std::net::SocketAddr| {
        std::net::TcpListener::bind(addr).with_context(|| format!("cannot bind the HTTP server to {addr}"))
    };
    let plain_listener = (!config.http.tls.no_plain_http)
        .then(|| bind(config.http.listen))
        .transpose()?;
    let tls_listener = config.http.tls.listen.map(bind).transpose()?;
    let address_of = |listener: &Option<std::net::TcpListener>| {
        listener
            .as_ref()
            .map(std::net::TcpListener::local_addr)
            .transpose()
            .context("an HTTP listener has no address")
    };
    let (plain_bound, tls_bound) = (address_of(&plain_listener)?, address_of(&tls_listener)?);
    let bound = plain_bound
        .or(tls_bound)
        .context("no HTTP listener: http.tls.no_plain_http needs http.tls.listen")?;
    let node_context = NodeContext {
        name: config.name.clone(),
        peer_id: peer_id.to_string(),
        dashboard_url: config
            .alerter
            .dashboard_url
            .clone()
            .unwrap_or_else(|| format!("http://{bound}/")),
    };

    let network_handle = network.handle().clone();
    let result = actix_rt::System::new().block_on(async move {
        let sinks = configured_sinks(&config.alerter, &node_context).context("cannot set up the alert sinks")?;
        let sink_kinds = sinks.iter().map(Sink::kind).collect();
        let alerter =
            Arc::new(Alerter::open(&store, &config.alerter, sink_kinds).context("cannot open the alert outbox")?);
        let alerts: SharedAlertSink = alerter.clone();
        x0tta6bl4_actors::errors::install(alerts.clone());
        let supervision = Supervision::new(config.supervision.clone(), escalation(alerts.clone(), store.clone()));
        let (actor_alerter, alerter_config) = (alerter.clone(), config.alerter.clone());
        let alerter_actor = supervision.start("alerter", move |_| {
            AlerterActor::new(actor_alerter, sinks, alerter_config)
        });
        let neighbours = Arc::new(Neighbours::default());
        let identity = Arc::new(PqIdentity::new(keypair.clone(), &pq_seeds));
        let pq_beacons = config.pqc_beacons.then(|| identity.clone());
        let bindings = store
            .tree(x0tta6bl4_actors::secure::bindings::TREE)
            .context("cannot open the key binding book")?;
        let sessions = Arc::new(Sessions::new(
            identity,
            pqc_mode,
            config.pqc.clone(),
            alerts.clone(),
            Some(bindings),
        ));
        let pq_binding = sessions.announced_binding();
        let forwarder = Arc::new(
            Forwarder::new(peer_id, config.router.clone(), neighbours.clone()).with_sessions(sessions.clone()),
        );
        network_handle.spawn(
            forwarder
                .clone()
                .run_retransmissions(std::time::Duration::from_millis(RETRANSMIT_TICK_MS)),
        );
        let router_config = RouterConfig {
            byzantine: config.byzantine,
            ..config.router.clone()
        };
        let router_forwarder = forwarder.clone();
        let router_policy = policy.clone();
        let router = supervision.start("router", move |_| {
            RouterActor::new(peer_id, router_config, router_forwarder, router_policy, policy_reload)
        });
        let breaker_config = config.breaker.clone();
        let breaker_alerts = alerts.clone();
        let breaker = supervision.start("breaker", move |_| BreakerActor::new(breaker_config, breaker_alerts));
        let identity = match config.svid.enabled {
            true => {
                let breaker = breaker.clone();
                let started =
                    crate::identity::start(&config.svid, &store, &peer_id, &supervision, alerts.clone(), breaker);
                Some(started.await?)
            }
            false => None,
        };
        let mesh_handle = mesh::handle(MeshParts {
            config: config.mesh.clone(),
            name: config.name.clone(),
            keypair: keypair.clone(),
            store: store.clone(),
            frames: forwarder.clone(),
            neighbours,
            pq_binding,
            pq_beacons,
            svid: identity.as_ref().map(|i| MeshSvid {
                handle: i.handle.clone(),
                trust: i.trust.clone(),
            }),
        });
        // The replicated state goes to the mesh before its loop starts (the
        // loop subscribes to the sync topic when it has one).
        let sync = config
            .sync
            .enabled
            .then(|| {
                SyncNode::open(
                    config.sync.clone(),
                    keypair.clone(),
                    Some(&store),
                    Some(policy.clone()),
                    mesh_handle.clone(),
                )
            })
            .transpose()
            .context("cannot open the replicated state")?;
        if let Some(sync) = &sync {
            mesh_handle.set_sync_handler(sync.clone());
        }
        let actor_handle = mesh_handle.clone();
        let recipient = router.clone().recipient();
        let mesh_actor = supervision.start("mesh", move |_| MeshActor::new(actor_handle, recipient, network_handle));

        let telemetry_config = config.telemetry.clone();
        let telemetry = supervision.start("telemetry", move |_| TelemetryActor::new(telemetry_config));

        let knowledge =
            Knowledge::open(&store, config.healer.history_limit).context("cannot open the healing history")?;
        let effectors = Effectors {
            sources: Sources {
                mesh: mesh_handle.clone(),
                router: router.clone(),
                forwarder: forwarder.clone(),
            },
            telemetry: telemetry.clone(),
            breaker: breaker.clone(),
            mesh_actor: mesh_actor.clone().recipient(),
            twin: Some(Arc::new(crate::twin::SimTwin)),
        };
        let (healer_config, retry) = (config.healer.clone(), config.breaker.clone());
        let healer_alerts = alerts.clone();
        let flags = LiveFlags::default();
        let healer_flags = flags.clone();
        let healer = supervision.start("healer", move |_| {
            HealerActor::new(healer_config, retry, effectors, knowledge, healer_alerts).with_flags(healer_flags)
        });
        let sync_actor = sync.as_ref().map(|node| {
            let (node, mesh, telemetry) = (node.clone(), mesh_handle.clone(), telemetry.clone());
            let trust = identity.as_ref().map(|i| i.trust.clone());
            supervision.start("sync", move |_| {
                let effects = Effects::new(Some(telemetry.clone()), mesh.clone(), trust.clone(), flags.clone());
                SyncActor::new(node.clone(), mesh.clone(), effects)
            })
        });
        telemetry.do_send(Subscribe(healer.clone().recipient()));
        let (payments, payments_actor) = match config.payments.enabled {
            true => {
                let payments = Payments::open(&store, config.payments.clone(), &format!("http://{bound}"))
                    .context("cannot open the order book")?;
                let actor = PaymentActor::new(payments.clone(), alerts.clone())
                    .map_err(anyhow::Error::msg)
                    .context("cannot start the payment checker")?;
                (Some(payments), Some(supervision.start("payments", move |_| actor)))
            }
            false => (None, None),
        };

        let faults = Arc::new(
            [
                ("alerter", alerter_actor.recipient()),
                ("router", router.clone().recipient()),
                ("mesh", mesh_actor.recipient()),
                ("telemetry", telemetry.clone().recipient()),
                ("breaker", breaker.clone().recipient()),
                ("healer", healer.clone().recipient()),
            ]
            .into_iter()
            .chain(identity.as_ref().map(|i| ("svid", i.actor.clone().recipient())))
            .chain(sync_actor.map(|a| ("sync", a.recipient())))
            .chain(payments_actor.map(|a| ("payments", a.recipient())))
            .collect(),
        );
        let state = AppState {
            name: config.name.clone(),
            mesh: mesh_handle.clone(),
            router,
            forwarder,
            telemetry,
            breaker,
            healer,
            prometheus,
            debug_hooks: config.router.fault_injection,
            faults,
            policy,
            alerter,
            keys: Arc::new(crate::keys::LiveKeys {
                store: store.clone(),
                keypair,
                sessions,
                mesh: mesh_handle.clone(),
            }),
            started: Instant::now(),
            svid: identity.as_ref().map(|i| i.handle.clone()),
            sync,
            payments,
        };
        let mut access = api::auth::Access::new(bound, config.http.api_token()?, config.http.protect_reads);
        let tls = match (tls_listener, tls_bound, &identity) {
            (Some(listener), Some(addr), Some(identity)) => {
                access = access.with_mtls(addr, identity.trust.clone());
                let tls = x0tta6bl4_actors::svid::tls::server_config(identity.handle.clone(), identity.trust.clone())
                    .context("cannot set up TLS for the mTLS listener")?;
                Some((listener, addr, tls))
            }
            _ => None,
        };
        tracing::info!("{}", access.describe());
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(state.clone()))
                .app_data(web::Data::new(access.clone()))
                .wrap(actix_web::middleware::from_fn(api::auth::require))
                .configure(api::configure)
        })
        .workers(config.http.workers)
        .on_connect(api::mtls::on_connect);
        if let Some(listener) = plain_listener {
            server = server
                .listen(listener)
                .with_context(|| format!("cannot serve HTTP on {bound}"))?;
        }
        if let Some((listener, addr, tls)) = tls {
            server = server
                .listen_rustls_0_23(listener, tls)
                .with_context(|| format!("cannot serve HTTPS on {addr}"))?;
        }
        let server = server.run();
        announce(&data_dir, plain_bound, tls_bound)?;
        server.await.context("HTTP server failed")?;
        tracing::info!("shutting down");
        anyhow::Ok(store)
    });
    let store = result?;
    network.shutdown_timeout(std::time::Duration::from_secs(2));
    store.flush().context("cannot flush the store")?;
    Ok(())
}

/// What the node does when an actor restarts more often than
/// `supervision.max_restarts` in `supervision.within_secs`: a critical alert
/// (stored in the durable outbox, so it is delivered after the restart too),
/// the store flushed, and an exit with [`ESCALATION_EXIT_CODE`] for the
/// service manager to start the node afresh.
fn escalation(alerts: SharedAlertSink, store: Store) -> Escalation {
    Arc::new(move |actor, reason| {
        alerts.emit(
            Alert::new(
                "NODE_RESTART_ESCALATION",
                Severity::Critical,
                format!(
                    "the {actor} actor kept failing (last: {}); the node exits with code {ESCALATION_EXIT_CODE} to be restarted",
                    reason.label()
                ),
            )
            .label("actor", actor)
            .label("reason", reason.label()),
        );
        if let Err(error) = store.flush() {
            tracing::error!(%error, "cannot flush the store before exiting");
        }
        tracing::error!(
            actor,
            reason = reason.label(),
            code = ESCALATION_EXIT_CODE,
            "node exits for a restart"
        );
        std::process::exit(ESCALATION_EXIT_CODE);
    })
}

/// Tells people (stdout) and scripts (`<data_dir>/http.addr`) where the HTTP server is.
fn announce(
    data_dir: &std::path::Path,
    plain: Option<std::net::SocketAddr>,
    tls: Option<std::net::SocketAddr>,
) -> anyhow::Result<()> {
    let write = |file: &str, addr: std::net::SocketAddr| -> anyhow::Result<()> {
        let (path, tmp) = (data_dir.join(file), data_dir.join(format!("{file}.tmp")));
        std::fs::write(&tmp, addr.to_string()).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))
    };
    let mut out = std::io::stdout().lock();
    if let Some(addr) = tls {
        write(HTTPS_ADDR_FILE, addr)?;
        writeln!(out, "admin API (mTLS): https://{addr}/")?;
    }
    if let Some(addr) = plain {
        write(HTTP_ADDR_FILE, addr)?;
        writeln!(out, "dashboard: http://{addr}/")?;
    }
    out.flush()?;
    Ok(())
}

/// Files and sockets a node holds besides its connections: sled, logs, the
/// HTTP server and its clients, netlink.
const OTHER_FILES: usize = 256;

/// Raises the soft open-file limit to the hard one (often 1,024 soft against
/// far more hard): every connection is a file descriptor, and a node is meant
/// to hold as many as its connection limits allow (plus its own files and
/// sockets). Says so when even the hard limit is lower.
fn raise_open_file_limit(config: &NodeConfig) {
    let wanted = config.mesh.max_connections().saturating_add(OTHER_FILES) as u64;
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < wanted => tracing::warn!(
            limit,
            wanted,
            "the open-file limit is below what the connection limits allow; raise it (ulimit -n, LimitNOFILE=)"
        ),
        Ok(limit) => tracing::debug!(limit, "open-file limit"),
        Err(error) => tracing::warn!(%error, "cannot raise the open-file limit"),
    }
}
