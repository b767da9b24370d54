//! Alerts: the outbox and firing alerts, and raising or resolving an alert
//! by hand (an operator's test alert, or a script's).

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use x0tta6bl4_actors::alert::{Alert, Severity};
use x0tta6bl4_actors::alerter::outbox::Recorded;

use super::error::{parse_json, ApiError};
use super::AppState;

/// Longest alert name and summary accepted.
const MAX_NAME: usize = 128;
const MAX_TEXT: usize = 4_096;
const MAX_LABELS: usize = 32;

/// Body of `POST /api/v1/alerts` and `POST /api/v1/alerts/resolve`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AlertRequest {
    name: String,
    #[serde(default = "default_severity")]
    severity: Severity,
    #[serde(default)]
    summary: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// A Prometheus label name: Alertmanager refuses a whole batch over one
/// alert with another name.
fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn default_severity() -> Severity {
    Severity::Warning
}

impl AlertRequest {
    /// The body parsed and checked, as an alert.
    pub(super) fn checked(body: &[u8]) -> Result<Alert, ApiError> {
        parse_json::<Self>(body)?.into_alert()
    }

    fn into_alert(self) -> Result<Alert, ApiError> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= MAX_NAME
            && self.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !name_ok {
            return Err(ApiError::bad_request(
                "bad_alert",
                format!("alert name must be 1-{MAX_NAME} characters of A-Z, a-z, 0-9 and '_'"),
            ));
        }
        let bad_key = self
            .labels
            .keys()
            .chain(self.annotations.keys())
            .find(|k| !is_label_name(k));
        if let Some(key) = bad_key {
            return Err(ApiError::bad_request(
                "bad_alert",
                format!("label and annotation names must match [a-zA-Z_][a-zA-Z0-9_]* (Prometheus names): {key:?}"),
            ));
        }
        let fields = self.labels.len() + self.annotations.len();
        let too_long = self.summary.len() > MAX_TEXT
            || self
                .labels
                .iter()
                .chain(&self.annotations)
                .any(|(k, v)| k.len() > MAX_NAME || v.len() > MAX_TEXT);
        if fields > MAX_LABELS || too_long {
            return Err(ApiError::bad_request(
                "bad_alert",
                format!(
                    "at most {MAX_LABELS} labels and annotations, keys of {MAX_NAME} and texts of {MAX_TEXT} bytes"
                ),
            ));
        }
        let mut alert = Alert::new(self.name, self.severity, self.summary);
        alert.labels = self.labels;
        alert.annotations = self.annotations;
        Ok(alert)
    }
}

/// `GET /api/v1/alerts`: configured sinks, the outbox (with each sink's
/// attempts and last error) and the firing alerts.
pub async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let view = state
        .alerter
        .view()
        .map_err(|e| ApiError::unavailable(format!("alert outbox unreadable: {e}")))?;
    Ok(HttpResponse::Ok().json(view))
}

/// `POST /api/v1/alerts`: raises an alert; 202 once it is stored.
pub async fn fire(state: web::Data<AppState>, body: web::Bytes) -> Result<HttpResponse, ApiError> {
    let alert = AlertRequest::checked(&body)?;
    record(&state, alert)
}

/// `POST /api/v1/alerts/resolve`: resolves the alert with this name and labels.
pub async fn resolve(state: web::Data<AppState>, body: web::Bytes) -> Result<HttpResponse, ApiError> {
    let alert = AlertRequest::checked(&body)?.resolved();
    record(&state, alert)
}

fn record(state: &AppState, alert: Alert) -> Result<HttpResponse, ApiError> {
    let fingerprint = alert.fingerprint();
    let recorded = state
        .alerter
        .record(alert)
        .map_err(|e| ApiError::unavailable(format!("alert not stored: {e}")))?;
    let (outcome, id) = match recorded {
        Recorded::Queued(id) => ("queued", Some(id)),
        Recorded::Duplicate => ("duplicate", None),
        Recorded::NotFiring => ("not_firing", None),
        Recorded::NoSinks => ("no_sinks", None),
    };
    Ok(HttpResponse::Accepted().json(serde_json::json!({
        "outcome": outcome,
        "id": id,
        "fingerprint": fingerprint,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(labels: &[(&str, &str)]) -> AlertRequest {
        AlertRequest {
            name: "OPERATOR_TEST".into(),
            severity: Severity::Info,
            summary: "a test".into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            annotations: BTreeMap::new(),
        }
    }

    #[test]
    fn label_names_are_prometheus_names() {
        assert!(request(&[("peer", "a-b"), ("_x9", "")]).into_alert().is_ok());
        for bad in ["", "9lives", "peer-id", "näme", "a b"] {
            assert!(request(&[(bad, "v")]).into_alert().is_err(), "{bad:?} accepted");
        }
    }
}
