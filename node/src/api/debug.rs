//! Test and benchmark hooks, refused unless `router.fault_injection = true`.
//!
//! They let integration tests make a node misbehave (fail its router, publish a
//! garbage beacon, send raw bytes as a frame) and let the benchmark drive probe
//! traffic without going through HTTP per message.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use x0tta6bl4_actors::router::frame::FrameKind;
use x0tta6bl4_actors::supervision::InjectFault;

use super::error::{parse_json, parse_peer, ApiError};
use super::AppState;

/// Most probes one benchmark request may send.
const MAX_PROBES: u64 = 10_000_000;

fn require_hooks(state: &AppState) -> Result<(), ApiError> {
    if state.debug_hooks {
        Ok(())
    } else {
        Err(ApiError::new(
            actix_web::http::StatusCode::FORBIDDEN,
            "debug_disabled",
            "debug endpoints are disabled (set router.fault_injection = true)",
        ))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FaultRequest {
    actor: String,
    #[serde(default = "stop")]
    kind: InjectFault,
}

impl FaultRequest {
    /// The body parsed.
    pub(super) fn checked(body: &[u8]) -> Result<Self, ApiError> {
        parse_json(body)
    }
}

fn stop() -> InjectFault {
    InjectFault::Stop
}

/// Name of the mesh event loop (a task of the network runtime) as a fault target.
pub const MESH_LOOP: &str = "mesh_loop";

/// `POST /api/v1/debug/fault {"actor": <a supervised actor or "mesh_loop">,
/// "kind": "stop" | "panic" | "stall"}`: makes the actor fail that way
/// (`mesh_loop` only panics). Answers once the fault is delivered, not
/// once the actor is back.
pub async fn fault(state: web::Data<AppState>, body: web::Bytes) -> Result<HttpResponse, ApiError> {
    require_hooks(&state)?;
    let request = FaultRequest::checked(&body)?;
    if request.actor == MESH_LOOP {
        state
            .mesh
            .inject_loop_panic()
            .await
            .map_err(|e| ApiError::unavailable(e.to_string()))?;
    } else {
        let actor = state.faults.get(request.actor.as_str()).ok_or_else(|| {
            let known: Vec<&str> = state.faults.keys().copied().chain([MESH_LOOP]).collect();
            ApiError::bad_request(
                "unknown_actor",
                format!(
                    "no fault hook for actor '{}' (known: {})",
                    request.actor,
                    known.join(", ")
                ),
            )
        })?;
        // A panicking or stalled handler never answers: delivery is enough.
        actor
            .try_send(request.kind)
            .map_err(|e| ApiError::unavailable(format!("{}: {e}", request.actor)))?;
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({ "injected": request.actor, "kind": request.kind })))
}

/// `POST /api/v1/debug/beacon` with raw bytes: publishes them on the beacon topic.
pub async fn raw_beacon(state: web::Data<AppState>, body: web::Bytes) -> Result<HttpResponse, ApiError> {
    require_hooks(&state)?;
    state
        .mesh
        .publish_raw_beacon(body.to_vec())
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "published": body.len() })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFrameRequest {
    peer: String,
    hex: String,
    /// Times to send it (a flood, for quarantine tests).
    #[serde(default = "one")]
    count: u32,
}

fn one() -> u32 {
    1
}

/// Most copies one raw-frame request may send.
const MAX_RAW_COPIES: u32 = 100_000;

/// `POST /api/v1/debug/frame {"peer", "hex"}`: queues raw bytes as one frame to a neighbour.
pub async fn raw_frame(state: web::Data<AppState>, body: web::Bytes) -> Result<HttpResponse, ApiError> {
    require_hooks(&state)?;
    let (peer, bytes, count) = RawFrameRequest::checked(&body)?;
    let queue = state.mesh.neighbours().queue(&peer).ok_or_else(|| {
        ApiError::new(
            actix_web::http::StatusCode::NOT_FOUND,
            "not_neighbour",
            "peer is not a neighbour",
        )
    })?;
    let bytes = bytes::Bytes::from(bytes);
    for queued in 0..count {
        match tokio::time::timeout(RAW_FRAME_WAIT, queue.send(bytes.clone())).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                return Err(ApiError::unavailable(format!(
                    "neighbour disconnected after {queued} of {count} frames"
                )))
            }
            Err(_) => {
                return Err(ApiError::unavailable(format!(
                    "neighbour's frame queue stayed full for {RAW_FRAME_WAIT:?} after {queued} of {count} frames"
                )))
            }
        }
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({ "queued": count })))
}

impl RawFrameRequest {
    /// The neighbour, the frame's bytes and how many copies (1 to [`MAX_RAW_COPIES`]).
    pub(super) fn checked(body: &[u8]) -> Result<(x0tta6bl4_actors::libp2p::PeerId, Vec<u8>, u32), ApiError> {
        let request: Self = parse_json(body)?;
        let peer = parse_peer(&request.peer)?;
        let bytes = decode_hex(&request.hex)
            .ok_or_else(|| ApiError::bad_request("bad_hex", "hex must be pairs of hex digits"))?;
        Ok((peer, bytes, request.count.clamp(1, MAX_RAW_COPIES)))
    }
}

/// How long a raw-frame request waits for room in a full neighbour queue
/// before it gives up (a link that stopped draining must not hang the request).
const RAW_FRAME_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BlackholeRequest {
    enabled: bool,
    /// Frame kinds to drop (`"Handshake"`, `"Sealed"`, …); every kind when absent.
    #[serde(default)]
    kinds: Option<Vec<String>>,
}

/// `POST /api/v1/debug/blackhole {"enabled": true, "kinds": [...]}`: a gray
/// failure — this node silently drops the frames it should relay (of `kinds`,
/// or all) while its links look healthy.
pub async fn blackhole(state: web::Data<AppState>, body: web::Bytes) -> Result<HttpResponse, ApiError> {
    require_hooks(&state)?;
    let kinds = BlackholeRequest::checked(&body)?;
    state
        .forwarder
        .set_blackhole(&kinds)
        .map_err(|e| ApiError::bad_request("debug_disabled", e.to_string()))?;
    let names: Vec<String> = kinds.iter().map(|k| format!("{k:?}")).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "blackhole": names })))
}

impl BlackholeRequest {
    /// The frame kinds to drop (none when disabled).
    pub(super) fn checked(body: &[u8]) -> Result<Vec<FrameKind>, ApiError> {
        let request: Self = parse_json(body)?;
        let every_kind: Vec<FrameKind> = (0..=u8::MAX).map_while(FrameKind::from_u8).collect();
        match (request.enabled, request.kinds) {
            (false, _) => Ok(Vec::new()),
            (true, None) => Ok(every_kind),
            (true, Some(names)) => names
                .iter()
                .map(|name| {
                    every_kind
                        .iter()
                        .copied()
                        .find(|kind| format!("{kind:?}") == *name)
                        .ok_or_else(|| ApiError::bad_request("bad_kind", format!("no frame kind {name:?}")))
                })
                .collect(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HandshakeFloodRequest {
    peer: String,
    count: usize,
}

/// Handshake Inits sent per flood request at most.
const MAX_FLOOD_INITS: usize = 10_000;

/// `POST /api/v1/debug/handshakes {"peer", "count"}`: sends `count` Inits that
/// belong to no handshake (a flood, for DoS tests).
pub async fn handshake_flood(state: web::Data<AppState>, body: web::Bytes) -> Result<HttpResponse, ApiError> {
    require_hooks(&state)?;
    let (peer, count) = HandshakeFloodRequest::checked(&body)?;
    let sent = state.forwarder.flood_handshakes(peer, count).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "sent": sent })))
}

impl HandshakeFloodRequest {
    /// The peer and how many Inits (1 to [`MAX_FLOOD_INITS`]).
    pub(super) fn checked(body: &[u8]) -> Result<(x0tta6bl4_actors::libp2p::PeerId, usize), ApiError> {
        let request: Self = parse_json(body)?;
        Ok((parse_peer(&request.peer)?, request.count.clamp(1, MAX_FLOOD_INITS)))
    }
}

/// `GET /api/v1/debug/transit`: frames this node relayed lately, with the first
/// payload bytes, so tests can check what a transit node gets to see.
pub async fn transit(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    require_hooks(&state)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "relayed": state.forwarder.transit_samples() })))
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| text.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ProbeRequest {
    to: String,
    count: u64,
    #[serde(default = "default_probe_size")]
    size: usize,
    #[serde(default)]
    kind: BenchKind,
}

/// What a benchmark request sends.
#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum BenchKind {
    /// Timestamped probes in plain frames (latency measured at the receiver).
    #[default]
    Probe,
    /// `Data` messages, sealed end to end like a user's, of `size` bytes of text.
    Data,
}

fn default_probe_size() -> usize {
    1024
}

/// `POST /api/v1/bench/probes {"to", "count", "size", "kind"}`: sends timestamped
/// probes (or sealed `Data` messages, `"kind": "data"`) as fast as the path accepts
impl ProbeRequest {
    /// The destination and the request, at most [`MAX_PROBES`] probes.
    pub(super) fn checked(body: &[u8]) -> Result<(x0tta6bl4_actors::libp2p::PeerId, Self), ApiError> {
        let request: Self = parse_json(body)?;
        if request.count > MAX_PROBES {
            return Err(ApiError::bad_request("too_many", format!("count above {MAX_PROBES}")));
        }
        Ok((parse_peer(&request.to)?, request))
    }
}

/// them; answers with how many went out and how fast.
pub async fn send_probes(state: web::Data<AppState>, body: web::Bytes) -> Result<HttpResponse, ApiError> {
    require_hooks(&state)?;
    let (to, request) = ProbeRequest::checked(&body)?;
    let forwarder = state.forwarder.clone();
    let started = std::time::Instant::now();
    let mut sent = 0u64;
    let mut failed = 0u64;
    let text = bytes::Bytes::from(vec![b'x'; request.size]);
    for _ in 0..request.count {
        let outcome = match request.kind {
            BenchKind::Probe => forwarder.send_probe(to, request.size).await,
            BenchKind::Data => {
                forwarder
                    .send(to, x0tta6bl4_actors::router::frame::FrameKind::Data, text.clone())
                    .await
            }
        };
        match outcome {
            Ok(_) => sent += 1,
            Err(_) => failed += 1,
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "sent": sent,
        "failed": failed,
        "seconds": seconds,
    })))
}

/// `GET /api/v1/bench/probes`: latency summary of probes received here, and
/// the count and arrival span of messages delivered here.
pub async fn probe_summary(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    require_hooks(&state)?;
    let summary = state.forwarder.with_inbox(|i| i.probe_summary());
    Ok(HttpResponse::Ok().json(summary))
}

/// `DELETE /api/v1/bench/probes`: forgets probe results and message counts.
pub async fn reset_probes(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    require_hooks(&state)?;
    state.forwarder.with_inbox(|i| i.reset_probes());
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::decode_hex;

    #[test]
    fn hex_decoding() {
        assert_eq!(decode_hex("00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(decode_hex("0"), None);
        assert_eq!(decode_hex("zz"), None);
        assert_eq!(decode_hex("é0"), None);
    }
}
