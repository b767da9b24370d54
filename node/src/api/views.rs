//! Read-only views: status, peers, routes, topology.

use std::sync::atomic::Ordering;

use actix_web::{web, HttpResponse};
use serde::Serialize;
use x0tta6bl4_actors::mesh::MeshStatus;
use x0tta6bl4_actors::router::{GetState, RouterState};

use super::error::ApiError;
use super::AppState;

pub(super) async fn router_state(state: &AppState) -> Result<RouterState, ApiError> {
    state
        .router
        .send(GetState)
        .await
        .map_err(|_| ApiError::unavailable("router is restarting"))
}

async fn mesh_status(state: &AppState) -> Result<MeshStatus, ApiError> {
    state
        .mesh
        .status()
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))
}

/// `GET /api/v1/status`
pub async fn status(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let mesh = mesh_status(&state).await?;
    let counters = state.forwarder.counters();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "name": state.name,
        "version": env!("CARGO_PKG_VERSION"),
        "peer_id": mesh.peer_id.to_string(),
        "listen_addrs": mesh.listen_addrs,
        "ready": state.mesh.is_ready(),
        "uptime_s": state.started.elapsed().as_secs(),
        "peers_connected": mesh.peers.len(),
        "light_peers": mesh.light.len(),
        "pq_epoch": state.keys.epoch(),
        "routes": state.forwarder.table().len(),
        "messages": {
            "sent": counters.sent.load(Ordering::Relaxed),
            "forwarded": counters.forwarded.load(Ordering::Relaxed),
            "delivered": counters.delivered.load(Ordering::Relaxed),
            "rejected": counters.rejected.load(Ordering::Relaxed),
            "reliable_pending": state.forwarder.reliable_pending(),
        },
        // Who relays how much through this node, and what fair sharing under
        // overload dropped of it (heaviest recent sender first).
        "senders": state.forwarder.fair_shares(),
    })))
}

/// One peer as the API shows it: what beacons said, plus the live link if any.
#[derive(Serialize)]
struct PeerView {
    peer_id: String,
    name: String,
    addrs: Vec<String>,
    connected: bool,
    /// `neighbour` (a link of the mesh), `light` (connected for gossip only)
    /// or `remote` (known from beacons, not connected).
    role: &'static str,
    /// Its gossipsub score here, when connected and scored.
    gossip_score: Option<f64>,
    rtt_ms: Option<f64>,
    loss: Option<f64>,
    /// This node's healer routes around the link to the peer.
    avoided_by_us: bool,
    /// The peer's healer routes around its link to this node (its beacon says).
    avoided_by_peer: bool,
    /// The epoch of the peer's post-quantum keys as this node knows them.
    pq_epoch: Option<u64>,
    beacon_age_ms: Option<u64>,
    next_hop: Option<String>,
    hops: Option<u32>,
}

/// `GET /api/v1/peers`: every node known from beacons and every live neighbour.
pub async fn peers(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let mesh = mesh_status(&state).await?;
    let router = router_state(&state).await?;
    let mut views: Vec<PeerView> = router
        .nodes
        .iter()
        .map(|node| {
            let link = mesh.peers.iter().find(|l| l.peer.to_string() == node.peer_id);
            PeerView {
                peer_id: node.peer_id.clone(),
                name: node.name.clone(),
                addrs: node.addrs.clone(),
                connected: link.is_some(),
                role: if link.is_some() { "neighbour" } else { "remote" },
                gossip_score: link.and_then(|l| l.gossip_score),
                rtt_ms: link.map(|l| l.rtt_ms),
                loss: link.map(|l| l.loss),
                avoided_by_us: mesh.avoided.iter().any(|p| p.to_string() == node.peer_id),
                avoided_by_peer: node.avoids_link_to_us,
                pq_epoch: node.peer_id.parse().ok().and_then(|peer| pq_epoch(&state, &peer)),
                beacon_age_ms: Some(node.beacon_age_ms),
                next_hop: node.route.as_ref().map(|r| r.next_hop.clone()),
                hops: node.route.as_ref().map(|r| r.hops),
            }
        })
        .collect();
    for link in &mesh.peers {
        let id = link.peer.to_string();
        if !views.iter().any(|v| v.peer_id == id) {
            views.push(PeerView {
                peer_id: id,
                name: String::new(),
                addrs: Vec::new(),
                connected: true,
                role: "neighbour",
                gossip_score: link.gossip_score,
                rtt_ms: Some(link.rtt_ms),
                loss: Some(link.loss),
                avoided_by_us: mesh.avoided.contains(&link.peer),
                avoided_by_peer: false,
                pq_epoch: pq_epoch(&state, &link.peer),
                beacon_age_ms: None,
                next_hop: None,
                hops: None,
            });
        }
    }
    views.extend(mesh.light.iter().map(|light| PeerView {
        peer_id: light.peer.to_string(),
        name: String::new(),
        addrs: light.remote_addrs.iter().map(ToString::to_string).collect(),
        connected: true,
        role: "light",
        gossip_score: light.gossip_score,
        rtt_ms: None,
        loss: None,
        avoided_by_us: false,
        avoided_by_peer: false,
        pq_epoch: None,
        beacon_age_ms: None,
        next_hop: None,
        hops: None,
    }));
    Ok(HttpResponse::Ok().json(serde_json::json!({ "peers": views })))
}

/// The epoch of `peer`'s post-quantum keys, as the sessions know it.
fn pq_epoch(state: &AppState, peer: &x0tta6bl4_actors::libp2p::PeerId) -> Option<u64> {
    state.forwarder.sessions()?.peer_epoch(peer)
}

/// `GET /api/v1/routes`
pub async fn routes(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let router = router_state(&state).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "routes": router.routes })))
}

/// `GET /api/v1/topology`: the link-state graph as this node sees it.
pub async fn topology(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let router = router_state(&state).await?;
    let nodes: Vec<_> = router
        .nodes
        .iter()
        .map(|n| serde_json::json!({ "peer_id": n.peer_id, "name": n.name }))
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "local": router.local,
        "name": state.name,
        "nodes": nodes,
        "edges": router.edges,
        "liars": router.liars,
    })))
}

/// `GET /api/v1/breakers`: every circuit breaker and the action rate limit.
pub async fn breakers(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let view = state
        .breaker
        .send(x0tta6bl4_actors::breaker::ListBreakers)
        .await
        .map_err(|_| ApiError::unavailable("breaker is restarting"))?;
    Ok(HttpResponse::Ok().json(view))
}

/// `GET /api/v1/policy`: the version and files of the policies in force, and
/// why the latest change was not taken if it was not.
pub async fn policy(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.policy.view()))
}

/// `GET /api/v1/identity`: the node's SPIFFE ID, its SVID's serial and
/// expiry, and the renewal counts.
pub async fn identity(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let Some(svid) = &state.svid else {
        return Ok(HttpResponse::Ok().json(serde_json::json!({ "enabled": false })));
    };
    let now = std::time::SystemTime::now();
    let (renewals, failures) = svid.counts();
    let body = match svid.last() {
        None => serde_json::json!({ "enabled": true, "svid": null, "renewals": renewals, "failures": failures }),
        Some(held) => serde_json::json!({
            "enabled": true,
            "spiffe_id": held.svid.id.to_string(),
            "serial": held.svid.serial,
            // The certificate is public (peers see it in every handshake and
            // beacon); an operator revokes it with it (`openssl ca -revoke`).
            "cert_pem": held.svid.cert_pem,
            "not_after_unix": x0tta6bl4_actors::svid::unix_secs(held.svid.not_after),
            "expires_in_secs": held.svid.not_after.duration_since(now).map_or(0, |d| d.as_secs()),
            "expired": held.svid.not_after <= now,
            "lifetime_secs": held.lifetime().as_secs(),
            "renewals": renewals,
            "failures": failures,
        }),
    };
    Ok(HttpResponse::Ok().json(body))
}

/// `GET /api/v1/healing`: the healer's history (newest first), symptoms and actions in force.
pub async fn healing(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let view = state
        .healer
        .send(x0tta6bl4_actors::healer::GetHealing)
        .await
        .map_err(|_| ApiError::unavailable("healer is restarting"))?;
    Ok(HttpResponse::Ok().json(view))
}

/// `POST /api/v1/healing/rollback`: undoes the newest action on the rollback stack.
pub async fn rollback_last_action(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let undone = state
        .healer
        .send(x0tta6bl4_actors::healer::RollbackLast)
        .await
        .map_err(|_| ApiError::unavailable("healer is restarting"))?
        .map_err(|e| ApiError::new(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR, "store_error", e))?;
    match undone {
        Some(record) => Ok(HttpResponse::Ok().json(serde_json::json!({ "rolled_back": record }))),
        None => Err(ApiError::new(
            actix_web::http::StatusCode::NOT_FOUND,
            "nothing_to_roll_back",
            "the rollback stack is empty",
        )),
    }
}

/// `POST /api/v1/keys/rotate`: new post-quantum keys of a later epoch, used
/// for new handshakes and announced from the next beacon.
pub async fn rotate_keys(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let rotated = state
        .keys
        .rotate()
        .map_err(|e| ApiError::unavailable(format!("cannot store the new keys: {e}")))?;
    Ok(HttpResponse::Ok().json(rotated))
}
