//! The places alerts go: Prometheus Alertmanager (API v2), Telegram (Bot API
//! `sendMessage`, MarkdownV2) and PagerDuty (Events API v2). Each sink turns
//! alerts into one request and the answer into accepted, retry (when), or
//! refused for good.

pub mod alertmanager;
pub mod markdown;
pub mod pagerduty;
pub mod telegram;

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::alert::Alert;

/// Which sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkKind {
    /// Prometheus Alertmanager.
    Alertmanager,
    /// Telegram chat.
    Telegram,
    /// PagerDuty service.
    Pagerduty,
}

impl SinkKind {
    /// Label and API name.
    pub fn label(self) -> &'static str {
        match self {
            SinkKind::Alertmanager => "alertmanager",
            SinkKind::Telegram => "telegram",
            SinkKind::Pagerduty => "pagerduty",
        }
    }
}

/// Why a delivery did not go through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// The service asked us to slow down (429); try again after the wait it
    /// named, or after the usual backoff when it named none.
    #[error("throttled: {detail}")]
    Throttled {
        /// `retry_after` / `Retry-After`, when given.
        retry_after: Option<Duration>,
        /// What the service said.
        detail: String,
    },
    /// Worth another try: 5xx, timeout, connection refused.
    #[error("{0}")]
    Transient(String),
    /// Refused for good (4xx): retrying the same request cannot succeed.
    #[error("refused: {0}")]
    Permanent(String),
}

/// Who is alerting: put into every alert.
#[derive(Debug, Clone)]
pub struct NodeContext {
    /// Node name.
    pub name: String,
    /// Peer id, base58.
    pub peer_id: String,
    /// The node's dashboard.
    pub dashboard_url: String,
}

/// One configured sink.
#[derive(Clone)]
pub enum Sink {
    /// Alertmanager.
    Alertmanager(alertmanager::Alertmanager),
    /// Telegram.
    Telegram(telegram::Telegram),
    /// PagerDuty.
    Pagerduty(pagerduty::PagerDuty),
}

impl Sink {
    /// Which sink this is.
    pub fn kind(&self) -> SinkKind {
        match self {
            Sink::Alertmanager(_) => SinkKind::Alertmanager,
            Sink::Telegram(_) => SinkKind::Telegram,
            Sink::Pagerduty(_) => SinkKind::Pagerduty,
        }
    }

    /// Alerts one request may carry.
    pub fn batch(&self) -> usize {
        match self {
            Sink::Alertmanager(_) => alertmanager::BATCH,
            Sink::Telegram(_) | Sink::Pagerduty(_) => 1,
        }
    }

    /// Delivers `alerts` (at most [`Sink::batch`]) in one request.
    pub async fn deliver(&self, alerts: &[Alert]) -> Result<(), DeliveryError> {
        match self {
            Sink::Alertmanager(sink) => sink.post(alerts).await,
            Sink::Telegram(sink) => match alerts {
                [alert] => sink.send(alert).await,
                _ => Err(DeliveryError::Permanent("telegram takes one alert per message".into())),
            },
            Sink::Pagerduty(sink) => match alerts {
                [alert] => sink.enqueue(alert).await,
                _ => Err(DeliveryError::Permanent("pagerduty takes one event per request".into())),
            },
        }
    }
}

/// An HTTP client with `timeout` per request (connect included): the
/// alert sinks' and the payment checker's.
pub fn client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("x0tta6bl4/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Sorts a plain HTTP answer: 2xx accepted, 429 throttled (with
/// `Retry-After` seconds when present), 408 and 5xx transient, other 4xx
/// permanent. `body` is kept (shortened) for the error.
pub fn classify(status: StatusCode, headers: &HeaderMap, body: &str) -> Result<(), DeliveryError> {
    if status.is_success() {
        return Ok(());
    }
    let detail = format!("HTTP {}: {}", status.as_u16(), shorten(body.trim(), 300));
    if status == StatusCode::TOO_MANY_REQUESTS {
        let retry_after = headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        return Err(DeliveryError::Throttled { retry_after, detail });
    }
    if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
        return Err(DeliveryError::Transient(detail));
    }
    Err(DeliveryError::Permanent(detail))
}

/// POSTs `body` as JSON to `url` and sorts the answer ([`classify`]).
pub async fn post_json(client: &reqwest::Client, url: &str, body: &impl Serialize) -> Result<(), DeliveryError> {
    let response = client.post(url).json(body).send().await.map_err(|e| unanswered(&e))?;
    let (status, headers) = (response.status(), response.headers().clone());
    let text = response.text().await.unwrap_or_default();
    classify(status, &headers, &text)
}

/// A request that got no answer: timeout, refused connection, reset.
pub fn unanswered(error: &reqwest::Error) -> DeliveryError {
    let what = match () {
        _ if error.is_timeout() => "timed out",
        _ if error.is_connect() => "cannot connect",
        _ => "request failed",
    };
    DeliveryError::Transient(format!("{what}: {}", error_chain(error)))
}

/// An error and its causes, one line.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// At most `max` characters of `text`, with an ellipsis when cut.
pub fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// RFC 3339 time of Unix milliseconds `ms`.
pub fn rfc3339(ms: u64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_sorted_by_what_a_retry_can_change() {
        let none = HeaderMap::new();
        assert_eq!(classify(StatusCode::OK, &none, ""), Ok(()));
        assert_eq!(classify(StatusCode::ACCEPTED, &none, ""), Ok(()));
        assert!(matches!(
            classify(StatusCode::BAD_REQUEST, &none, "\"bad\""),
            Err(DeliveryError::Permanent(d)) if d.contains("400") && d.contains("bad")
        ));
        assert!(matches!(
            classify(StatusCode::BAD_GATEWAY, &none, ""),
            Err(DeliveryError::Transient(_))
        ));
        let mut retry = HeaderMap::new();
        retry.insert(RETRY_AFTER, "7".parse().expect("header"));
        assert!(matches!(
            classify(StatusCode::TOO_MANY_REQUESTS, &retry, ""),
            Err(DeliveryError::Throttled { retry_after: Some(d), .. }) if d == Duration::from_secs(7)
        ));
        assert!(matches!(
            classify(StatusCode::TOO_MANY_REQUESTS, &none, ""),
            Err(DeliveryError::Throttled { retry_after: None, .. })
        ));
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_764_067_200_123), "2025-11-25T10:40:00.123Z");
    }

    #[test]
    fn long_bodies_are_shortened_on_a_character_boundary() {
        assert_eq!(shorten("abc", 5), "abc");
        assert_eq!(shorten("ééééé", 2), "éé…");
    }
}
