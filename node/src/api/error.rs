//! JSON errors of the HTTP API: a message for people, a reason for machines, a
//! proper status code, and a count in `x0tta_api_rejected_total{reason}`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::de::DeserializeOwned;
use x0tta6bl4_actors::libp2p::PeerId;
use x0tta6bl4_actors::router::forwarder::SendError;
use x0tta6bl4_actors::router::frame::RejectReason;

const API_REJECTED: &str = "x0tta_api_rejected_total";

/// Registers the help text of the API metrics.
pub fn describe() {
    metrics::describe_counter!(API_REJECTED, "API requests rejected, by reason");
}

/// An API request that could not be served.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    status: StatusCode,
    reason: &'static str,
    message: String,
}

impl ApiError {
    /// Builds and counts an error.
    pub fn new(status: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        metrics::counter!(API_REJECTED, "reason" => reason).increment(1);
        Self {
            status,
            reason,
            message: message.into(),
        }
    }

    /// 400 with `reason`.
    pub fn bad_request(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, reason, message)
    }

    /// 503: a subsystem is stopping or restarting.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(serde_json::json!({
            "error": self.message,
            "reason": self.reason,
        }))
    }
}

impl From<SendError> for ApiError {
    fn from(error: SendError) -> Self {
        let status = match &error {
            SendError::Rejected(RejectReason::UnknownDestination) => StatusCode::NOT_FOUND,
            SendError::Rejected(RejectReason::QueueFull) | SendError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            SendError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            SendError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            SendError::Rejected(_) => StatusCode::BAD_GATEWAY,
            // The destination cannot have a session this node's policy accepts.
            SendError::Session(_) => StatusCode::FORBIDDEN,
        };
        let reason = match &error {
            SendError::Rejected(r) => r.label(),
            SendError::PayloadTooLarge { .. } => "payload_too_large",
            SendError::Busy => "busy",
            SendError::Timeout(_) => "timeout",
            SendError::Session(reject) => reject.label(),
        };
        let message = match &error {
            SendError::Rejected(RejectReason::UnknownDestination) => "no route to the destination".to_string(),
            other => other.to_string(),
        };
        Self::new(status, reason, message)
    }
}

/// Parses a JSON request body, telling invalid UTF-8 apart from bad JSON.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| ApiError::bad_request("invalid_utf8", format!("request body is not valid UTF-8: {e}")))?;
    serde_json::from_str(text).map_err(|e| ApiError::bad_request("bad_json", format!("invalid JSON body: {e}")))
}

/// Parses a peer id given by a client.
pub fn parse_peer(text: &str) -> Result<PeerId, ApiError> {
    text.trim()
        .parse()
        .map_err(|_| ApiError::bad_request("bad_peer_id", format!("'{text}' is not a valid peer id")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    struct Body {
        #[allow(dead_code)]
        text: String,
    }

    #[test]
    fn invalid_utf8_and_bad_json_have_distinct_reasons() {
        let err = parse_json::<Body>(b"{\"text\":\"\xff\"}").expect_err("invalid utf8");
        assert_eq!((err.status, err.reason), (StatusCode::BAD_REQUEST, "invalid_utf8"));
        let err = parse_json::<Body>(b"{\"text\":").expect_err("bad json");
        assert_eq!(err.reason, "bad_json");
        assert!(parse_json::<Body>(b"{\"text\":\"ok\"}").is_ok());
        assert_eq!(parse_peer("nope").expect_err("bad id").reason, "bad_peer_id");
    }
}
