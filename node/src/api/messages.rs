//! Routed messages: send, read the inbox, ping.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use bytes::Bytes;
use serde::Deserialize;
use x0tta6bl4_actors::router::frame::FrameKind;

use super::error::{parse_json, parse_peer, ApiError};
use super::AppState;

/// Body of `POST /api/v1/messages`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SendRequest {
    to: String,
    text: String,
    /// Retransmit until the destination acknowledges.
    #[serde(default)]
    reliable: bool,
}

/// `POST /api/v1/messages`: sends a routed text message (retransmitted until
/// acknowledged when `reliable` is true); answers with its id.
pub async fn send(state: web::Data<AppState>, body: web::Bytes) -> Result<HttpResponse, ApiError> {
    let (to, request) = SendRequest::checked(&body)?;
    let id = if request.reliable {
        state.forwarder.send_reliable(to, request.text.as_bytes()).await?
    } else {
        state
            .forwarder
            .send(to, FrameKind::Data, Bytes::from(request.text.into_bytes()))
            .await?
    };
    Ok(HttpResponse::Accepted().json(serde_json::json!({ "id": id })))
}

impl SendRequest {
    /// The body parsed, with its destination.
    pub(super) fn checked(body: &[u8]) -> Result<(x0tta6bl4_actors::libp2p::PeerId, Self), ApiError> {
        let request: Self = parse_json(body)?;
        Ok((parse_peer(&request.to)?, request))
    }
}

/// `GET /api/v1/messages`: the bounded inbox and undeliverable reports.
pub async fn inbox(state: web::Data<AppState>) -> HttpResponse {
    let (messages, undeliverable) = state.forwarder.with_inbox(|i| (i.messages(), i.reports()));
    HttpResponse::Ok().json(serde_json::json!({
        "messages": messages,
        "undeliverable": undeliverable,
    }))
}

/// Body of `POST /api/v1/ping`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PingRequest {
    to: String,
    #[serde(default = "default_ping_timeout_ms")]
    timeout_ms: u64,
}

fn default_ping_timeout_ms() -> u64 {
    2_000
}

impl PingRequest {
    /// The destination and the timeout (1 ms to 60 s).
    pub(super) fn checked(body: &[u8]) -> Result<(x0tta6bl4_actors::libp2p::PeerId, Duration), ApiError> {
        let request: Self = parse_json(body)?;
        let timeout = Duration::from_millis(request.timeout_ms.clamp(1, 60_000));
        Ok((parse_peer(&request.to)?, timeout))
    }
}

/// `POST /api/v1/ping`: a routed echo; answers with the round-trip time and hops.
pub async fn ping(state: web::Data<AppState>, body: web::Bytes) -> Result<HttpResponse, ApiError> {
    let (to, timeout) = PingRequest::checked(&body)?;
    let reply = state.forwarder.echo(to, timeout).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "rtt_ms": reply.rtt.as_secs_f64() * 1_000.0,
        "hops": reply.hops,
    })))
}
