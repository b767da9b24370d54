//! The node's HTTP server: dashboard, JSON API, `/health`, `/ready`, `/metrics`.

mod alerts;
pub mod auth;
pub mod bodies;
mod debug;
pub mod error;
mod messages;
pub mod mtls;
mod orders;
mod state;
mod telemetry;
mod twin;
mod views;

use std::sync::Arc;
use std::time::Instant;

use actix::Addr;
use actix_web::{web, HttpResponse};
use metrics_exporter_prometheus::PrometheusHandle;
use x0tta6bl4_actors::breaker::BreakerActor;
use x0tta6bl4_actors::healer::HealerActor;
use x0tta6bl4_actors::mesh::MeshHandle;
use x0tta6bl4_actors::router::{Forwarder, RouterActor};
use x0tta6bl4_actors::telemetry::TelemetryActor;

/// Largest request body accepted (debug frame injection needs ~150 KB of hex).
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// Node name.
    pub name: String,
    /// The mesh.
    pub mesh: MeshHandle,
    /// The router's control plane.
    pub router: Addr<RouterActor>,
    /// The router's data plane.
    pub forwarder: Arc<Forwarder>,
    /// XDP counters and the quarantine.
    pub telemetry: Addr<TelemetryActor>,
    /// Circuit breakers and the action rate limit.
    pub breaker: Addr<BreakerActor>,
    /// The self-healing loop.
    pub healer: Addr<HealerActor>,
    /// Renders `/metrics`.
    pub prometheus: PrometheusHandle,
    /// Whether test-only debug endpoints are on.
    pub debug_hooks: bool,
    /// Fault hooks of every supervised actor, by name.
    pub faults:
        Arc<std::collections::BTreeMap<&'static str, actix::Recipient<x0tta6bl4_actors::supervision::InjectFault>>>,
    /// The Rego policies in force.
    pub policy: Arc<x0tta6bl4_actors::policy::Policy>,
    /// The alerter (outbox, firing alerts).
    pub alerter: Arc<x0tta6bl4_actors::alerter::Alerter>,
    /// The post-quantum keys, rotated live.
    pub keys: Arc<crate::keys::LiveKeys>,
    /// Start time, for uptime.
    pub started: Instant,
    /// The node's SVID, when `svid.enabled`.
    pub svid: Option<Arc<x0tta6bl4_actors::svid::SvidHandle>>,
    /// The replicated state, when `sync.enabled`.
    pub sync: Option<Arc<x0tta6bl4_actors::sync::SyncNode>>,
    /// The shop, when `payments.enabled`.
    pub payments: Option<x0tta6bl4_actors::payments::Payments>,
}

/// Requests that change the node's state (everything but reads and the
/// traffic endpoints) go through the policy's `admin` decision first.
async fn admin_policy(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let traffic = ["/api/v1/messages", "/api/v1/ping"].contains(&req.path());
    let changes_state =
        !traffic && [actix_web::http::Method::POST, actix_web::http::Method::DELETE].contains(req.method());
    if changes_state {
        if let Some(state) = req.app_data::<web::Data<AppState>>() {
            use actix_web::HttpMessage as _;
            let client = req.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default();
            let spiffe_id = req.extensions().get::<auth::ClientSvid>().map(|c| c.0.id.to_string());
            if state
                .policy
                .admin_denied(req.method().as_str(), req.path(), &client, spiffe_id.as_deref())
            {
                return Err(error::ApiError::new(
                    actix_web::http::StatusCode::FORBIDDEN,
                    "policy_denied",
                    format!(
                        "{} {} is denied by policy {}",
                        req.method(),
                        req.path(),
                        state.policy.view().version
                    ),
                )
                .into());
            }
        }
    }
    next.call(req).await
}

/// Registers every route on `cfg`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    error::describe();
    cfg.app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
        .route("/", web::get().to(dashboard))
        .route("/health", web::get().to(health))
        .route("/ready", web::get().to(ready))
        .route("/metrics", web::get().to(prometheus))
        .route("/download/{token}", web::get().to(orders::download))
        .service(
            web::scope("/api/v1")
                .wrap(actix_web::middleware::from_fn(admin_policy))
                .route("/status", web::get().to(views::status))
                .route("/peers", web::get().to(views::peers))
                .route("/routes", web::get().to(views::routes))
                .route("/topology", web::get().to(views::topology))
                .route("/twin/whatif", web::get().to(twin::what_if))
                .route("/messages", web::get().to(messages::inbox))
                .route("/messages", web::post().to(messages::send))
                .route("/ping", web::post().to(messages::ping))
                .route("/telemetry", web::get().to(telemetry::snapshot))
                .route("/breakers", web::get().to(views::breakers))
                .route("/policy", web::get().to(views::policy))
                .route("/identity", web::get().to(views::identity))
                .route("/healing", web::get().to(views::healing))
                .route("/alerts", web::get().to(alerts::list))
                .route("/alerts", web::post().to(alerts::fire))
                .route("/alerts/resolve", web::post().to(alerts::resolve))
                .route("/healing/rollback", web::post().to(views::rollback_last_action))
                .route("/keys/rotate", web::post().to(views::rotate_keys))
                .route("/quarantine", web::get().to(telemetry::list_quarantine))
                .route("/quarantine", web::post().to(telemetry::quarantine))
                .route("/quarantine", web::delete().to(telemetry::release))
                .route("/orders", web::get().to(orders::list))
                .route("/orders", web::post().to(orders::create))
                .route("/orders/{id}", web::get().to(orders::show))
                .route("/state", web::get().to(state::list))
                .route("/state/{key}", web::get().to(state::get))
                .route("/state/{key}", web::put().to(state::put))
                .route("/state/{key}", web::delete().to(state::delete))
                .route("/debug/fault", web::post().to(debug::fault))
                .route("/debug/beacon", web::post().to(debug::raw_beacon))
                .route("/debug/frame", web::post().to(debug::raw_frame))
                .route("/debug/blackhole", web::post().to(debug::blackhole))
                .route("/debug/transit", web::get().to(debug::transit))
                .route("/debug/handshakes", web::post().to(debug::handshake_flood))
                .route("/bench/probes", web::post().to(debug::send_probes))
                .route("/bench/probes", web::get().to(debug::probe_summary))
                .route("/bench/probes", web::delete().to(debug::reset_probes)),
        )
        .default_service(web::to(not_found));
}

async fn dashboard() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(include_str!("dashboard.html"))
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let no_svid = state
        .svid
        .as_ref()
        .is_some_and(|svid| svid.current(std::time::SystemTime::now()).is_none());
    if no_svid {
        return HttpResponse::ServiceUnavailable().json(serde_json::json!({
            "ready": false,
            "reason": "no valid SVID: the node's identity expired or was never issued (see /api/v1/identity)",
        }));
    }
    if state.mesh.is_ready() {
        HttpResponse::Ok().json(serde_json::json!({ "ready": true }))
    } else {
        HttpResponse::ServiceUnavailable().json(serde_json::json!({
            "ready": false,
            "reason": "mesh is not listening yet",
        }))
    }
}

async fn prometheus(state: web::Data<AppState>) -> HttpResponse {
    state.prometheus.run_upkeep();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.prometheus.render())
}

async fn not_found() -> Result<HttpResponse, error::ApiError> {
    Err(error::ApiError::new(
        actix_web::http::StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint",
    ))
}
