//! Telemetry and quarantine endpoints.

use std::net::IpAddr;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use x0tta6bl4_actors::healer::plan::ips;
use x0tta6bl4_actors::libp2p::Multiaddr;
use x0tta6bl4_actors::sync::{keys, Intent, QuarantineMember};
use x0tta6bl4_actors::telemetry::snapshot::QuarantineView;
use x0tta6bl4_actors::telemetry::{GetTelemetry, ListQuarantine, Quarantine, QuarantineError, Release};

use super::error::{parse_json, parse_peer, ApiError};
use super::views::router_state;
use super::AppState;

/// Longest quarantine an operator may ask for: one week.
const MAX_TTL_SECS: u64 = 7 * 24 * 3600;

fn restarting() -> ApiError {
    ApiError::unavailable("telemetry is restarting")
}

/// `GET /api/v1/telemetry`: the latest snapshot (XDP mode, counters, rates, or why XDP is off).
pub async fn snapshot(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    match state.telemetry.send(GetTelemetry).await.map_err(|_| restarting())? {
        Some(snapshot) => Ok(HttpResponse::Ok().json(&*snapshot)),
        None => Err(ApiError::unavailable("no telemetry reading yet")),
    }
}

/// `GET /api/v1/quarantine`: quarantined sources with remaining TTL and drop counts.
pub async fn list_quarantine(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let entries = state.telemetry.send(ListQuarantine).await.map_err(|_| restarting())?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "quarantine": entries })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct QuarantineRequest {
    #[serde(default)]
    addresses: Vec<String>,
    peer: Option<String>,
    ttl_secs: Option<u64>,
    reason: Option<String>,
}

/// `POST /api/v1/quarantine {"addresses": [...] | "peer": "...", "ttl_secs": 60, "reason": "..."}`.
pub async fn quarantine(state: web::Data<AppState>, body: web::Bytes) -> Result<HttpResponse, ApiError> {
    let (request, ttl, literal) = QuarantineRequest::checked(&body)?;
    let addrs = resolve(&state, literal, request.peer.as_deref()).await?;
    let views = state
        .telemetry
        .send(Quarantine {
            addrs,
            peer: request.peer,
            reason: request.reason.unwrap_or_else(|| "operator request".to_string()),
            ttl,
        })
        .await
        .map_err(|_| restarting())?
        .map_err(|e| match e {
            QuarantineError::Full(full) => ApiError::new(StatusCode::CONFLICT, "quarantine_full", full.to_string()),
            other => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "xdp_error", other.to_string()),
        })?;
    let replicated = replicate_quarantine(&state, &views);
    Ok(HttpResponse::Ok().json(serde_json::json!({ "quarantined": views, "replicated": replicated })))
}

/// Adds quarantined sources to the replicated `quarantine` set, so every node
/// of the mesh drops them too; whether it did (sync may be off).
fn replicate_quarantine(state: &AppState, views: &[QuarantineView]) -> bool {
    let Some(sync) = &state.sync else {
        return false;
    };
    let now = x0tta6bl4_actors::mesh::unix_ms();
    views.iter().all(|view| {
        let member = QuarantineMember {
            addr: view.addr,
            peer: view.peer.clone(),
            reason: view.reason.clone(),
            expires_ms: now + view.remaining_ms.unwrap_or(MAX_TTL_SECS * 1_000),
        };
        sync.write(keys::QUARANTINE, Intent::Add(member.member()))
            .map_err(|error| tracing::warn!(%error, addr = %view.addr, "quarantine not replicated"))
            .is_ok()
    })
}

/// Removes released sources from the replicated `quarantine` set.
fn replicate_release(state: &AppState, addrs: &[IpAddr]) {
    let Some(sync) = &state.sync else {
        return;
    };
    for member in sync.members(keys::QUARANTINE) {
        let listed = QuarantineMember::parse(&member).is_some_and(|m| addrs.contains(&m.addr));
        if listed {
            if let Err(error) = sync.write(keys::QUARANTINE, Intent::Remove(member)) {
                tracing::warn!(%error, "quarantine release not replicated");
            }
        }
    }
}

impl QuarantineRequest {
    /// The body parsed, with its TTL (1 s to [`MAX_TTL_SECS`]) and literal addresses.
    pub(super) fn checked(body: &[u8]) -> Result<(Self, Option<Duration>, Vec<IpAddr>), ApiError> {
        let request: Self = parse_json(body)?;
        let ttl = match request.ttl_secs {
            Some(0) => return Err(ApiError::bad_request("bad_ttl", "ttl_secs must be at least 1")),
            Some(secs) if secs > MAX_TTL_SECS => {
                return Err(ApiError::bad_request(
                    "bad_ttl",
                    format!("ttl_secs must be at most {MAX_TTL_SECS}"),
                ))
            }
            other => other.map(Duration::from_secs),
        };
        let literal = literal_addresses(&request.addresses, request.peer.as_deref())?;
        Ok((request, ttl, literal))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReleaseRequest {
    #[serde(default)]
    addresses: Vec<String>,
    peer: Option<String>,
}

/// `DELETE /api/v1/quarantine {"addresses": [...] | "peer": "..."}`: releases sources now.
pub async fn release(state: web::Data<AppState>, body: web::Bytes) -> Result<HttpResponse, ApiError> {
    let (request, literal) = ReleaseRequest::checked(&body)?;
    let mut addrs = resolve(&state, literal, request.peer.as_deref()).await?;
    if let Some(peer) = &request.peer {
        let listed = state.telemetry.send(ListQuarantine).await.map_err(|_| restarting())?;
        addrs.extend(
            listed
                .iter()
                .filter(|v| v.peer.as_deref() == Some(peer.trim()))
                .map(|v| v.addr),
        );
    }
    // Here first, then the mesh: the replicated remove makes this node's
    // sync effects release the sources too, and that release must not win
    // the race and leave this answer saying nothing was quarantined.
    let released = state
        .telemetry
        .send(Release(addrs.clone()))
        .await
        .map_err(|_| restarting())?;
    replicate_release(&state, &addrs);
    Ok(HttpResponse::Ok().json(serde_json::json!({ "released": released })))
}

impl ReleaseRequest {
    /// The body parsed, with its literal addresses.
    pub(super) fn checked(body: &[u8]) -> Result<(Self, Vec<IpAddr>), ApiError> {
        let request: Self = parse_json(body)?;
        let literal = literal_addresses(&request.addresses, request.peer.as_deref())?;
        Ok((request, literal))
    }
}

/// The IP addresses a request lists, after checking that its peer id (if any) is one.
fn literal_addresses(addresses: &[String], peer: Option<&str>) -> Result<Vec<IpAddr>, ApiError> {
    if let Some(peer) = peer {
        parse_peer(peer)?;
    }
    addresses
        .iter()
        .map(|text| {
            text.trim()
                .parse()
                .map_err(|_| ApiError::bad_request("bad_address", format!("'{text}' is not an IP address")))
        })
        .collect()
}

/// The addresses a request names: its literal addresses plus the IP addresses
/// the peer announces in its beacons.
async fn resolve(state: &AppState, mut addrs: Vec<IpAddr>, peer: Option<&str>) -> Result<Vec<IpAddr>, ApiError> {
    if let Some(peer) = peer {
        let peer_id = parse_peer(peer)?.to_string();
        let router = router_state(state).await?;
        let node = router.nodes.iter().find(|n| n.peer_id == peer_id).ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_peer",
                format!("no beacon from {peer_id}"),
            )
        })?;
        let multiaddrs: Vec<Multiaddr> = node.addrs.iter().filter_map(|a| a.parse().ok()).collect();
        let announced = ips(&multiaddrs);
        if announced.is_empty() {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "no_addresses",
                format!("{peer_id} announces no IP address"),
            ));
        }
        addrs.extend(announced);
    }
    if addrs.is_empty() {
        return Err(ApiError::bad_request("no_target", "name addresses or a peer"));
    }
    addrs.sort();
    addrs.dedup();
    Ok(addrs)
}
