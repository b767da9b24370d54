//! What the chain API clients share: one GET that reads at most a bounded
//! body and sorts every way it can fail, so a chain API's answer never
//! panics the node and every failure has a metric label.

use std::time::Duration;

use reqwest::header::RETRY_AFTER;
use reqwest::StatusCode;
use serde::de::DeserializeOwned;

use super::matching::Transfer;
use crate::alerter::sinks::{error_chain, shorten};

/// One page of a chain's transfers to our wallet, oldest first.
#[derive(Debug, Default)]
pub struct Page {
    /// Transfers, each with the cursor position it moves to (TRC-20: block
    /// time in ms; TON: logical time).
    pub transfers: Vec<(u64, Transfer)>,
    /// Where the next page starts, when there is one.
    pub next: Option<Next>,
}

/// Where the next page of a chain's history starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// TronGrid's `fingerprint`.
    Fingerprint(String),
    /// After this logical time (TON).
    After(u64),
}

/// Why a chain API call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 429: slow down, for this long when the API said.
    #[error("throttled (429){}", .0.map(|d| format!(", retry after {} s", d.as_secs())).unwrap_or_default())]
    Throttled(Option<Duration>),
    /// 403: the API refused the request or the key.
    #[error("forbidden (403): {0}")]
    Forbidden(String),
    /// The API suspended us for a while (TronGrid's 403 over its
    /// frequency limit).
    #[error("suspended for {} s: {detail}", .wait.as_secs())]
    Blocked {
        /// How long.
        wait: Duration,
        /// What it said.
        detail: String,
    },
    /// 5xx.
    #[error("server error: {0}")]
    Server(String),
    /// No answer in time.
    #[error("timed out")]
    Timeout,
    /// Could not connect or the connection broke.
    #[error("cannot reach the API: {0}")]
    Connect(String),
    /// The answer is not what the API documents.
    #[error("malformed answer: {0}")]
    Malformed(String),
    /// The answer is larger than `payments.max_body_bytes`.
    #[error("answer larger than {0} bytes")]
    TooLarge(usize),
    /// Another 4xx: the request is wrong (a bad address or key).
    #[error("refused: {0}")]
    Refused(String),
}

impl ApiError {
    /// The `kind` label of `x0tta_payments_api_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            ApiError::Throttled(_) => "throttled",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::Blocked { .. } => "blocked",
            ApiError::Server(_) => "server",
            ApiError::Timeout => "timeout",
            ApiError::Connect(_) => "connect",
            ApiError::Malformed(_) => "malformed",
            ApiError::TooLarge(_) => "too_large",
            ApiError::Refused(_) => "refused",
        }
    }

    /// How long the API asked us to stay away, if it did (a 429 without
    /// `Retry-After` waits `default`).
    pub fn pause(&self, default: Duration) -> Option<Duration> {
        match self {
            ApiError::Throttled(wait) => Some(wait.unwrap_or(default)),
            ApiError::Blocked { wait, .. } => Some(*wait),
            _ => None,
        }
    }
}

/// `base` with `query` appended (values escaped).
pub fn url<K: AsRef<str>, V: AsRef<str>>(base: &str, query: &[(K, V)]) -> Result<reqwest::Url, ApiError> {
    let pairs = query.iter().map(|(k, v)| (k.as_ref(), v.as_ref()));
    reqwest::Url::parse_with_params(base, pairs).map_err(|e| ApiError::Refused(format!("bad API URL {base:?}: {e}")))
}

/// Sends `request` and decodes a JSON answer of at most `max_bytes`.
pub async fn get_json<T: DeserializeOwned>(request: reqwest::RequestBuilder, max_bytes: usize) -> Result<T, ApiError> {
    let mut response = request.send().await.map_err(|e| unanswered(&e))?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    if response.content_length().is_some_and(|n| n > max_bytes as u64) {
        return Err(ApiError::TooLarge(max_bytes));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| unanswered(&e))? {
        if body.len() + chunk.len() > max_bytes {
            return Err(ApiError::TooLarge(max_bytes));
        }
        body.extend_from_slice(&chunk);
    }
    let text = || shorten(&String::from_utf8_lossy(&body), 300);
    match status {
        s if s.is_success() => {
            serde_json::from_slice(&body).map_err(|e| ApiError::Malformed(format!("{e} in {:?}", text())))
        }
        StatusCode::TOO_MANY_REQUESTS => Err(ApiError::Throttled(retry_after)),
        StatusCode::FORBIDDEN => Err(ApiError::Forbidden(text())),
        s if s.is_server_error() => Err(ApiError::Server(format!("HTTP {}: {}", s.as_u16(), text()))),
        s => Err(ApiError::Refused(format!("HTTP {}: {}", s.as_u16(), text()))),
    }
}

fn unanswered(error: &reqwest::Error) -> ApiError {
    if error.is_timeout() {
        return ApiError::Timeout;
    }
    ApiError::Connect(error_chain(error))
}

/// A decimal string of base units as an integer.
pub fn units(text: &str) -> Result<u64, ApiError> {
    text.trim()
        .parse()
        .map_err(|_| ApiError::Malformed(format!("value {text:?} is not an amount in base units")))
}
