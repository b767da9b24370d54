//! Prometheus Alertmanager, API v2: `POST /api/v2/alerts` with a JSON array
//! of `{labels, annotations, startsAt, endsAt, generatorURL}`. Firing alerts
//! are valid for a while (`endsAt` in the future) and posted again before
//! that runs out; a resolve posts `endsAt` = the resolve time.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::{post_json, rfc3339, DeliveryError, NodeContext};
use crate::alert::Alert;
use crate::mesh::unix_ms;

/// Alerts per request.
pub const BATCH: usize = 64;

/// One alert as Alertmanager takes it.
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PostableAlert {
    /// `alertname`, `severity`, `service`, `node`, `node_name` and the alert's labels.
    pub labels: BTreeMap<String, String>,
    /// `summary`, `description` and the alert's annotations.
    pub annotations: BTreeMap<String, String>,
    /// RFC 3339.
    pub starts_at: String,
    /// RFC 3339: the resolve time, or how long a firing alert stays valid.
    pub ends_at: String,
    /// The node's dashboard.
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
}

/// The Alertmanager sink.
#[derive(Clone)]
pub struct Alertmanager {
    client: reqwest::Client,
    url: String,
    node: NodeContext,
    valid_for: Duration,
}

impl Alertmanager {
    /// A sink posting to the Alertmanager at `base_url`; firing alerts stay
    /// valid for `valid_for` after each post.
    pub fn new(client: reqwest::Client, base_url: &str, node: NodeContext, valid_for: Duration) -> Self {
        Self {
            client,
            url: format!("{}/api/v2/alerts", base_url.trim_end_matches('/')),
            node,
            valid_for,
        }
    }

    /// The alert as posted now.
    pub fn postable(&self, alert: &Alert) -> PostableAlert {
        let mut labels = alert.labels.clone();
        labels.insert("alertname".into(), alert.name.clone());
        labels.insert("severity".into(), alert.severity.label().into());
        labels.insert("service".into(), "x0tta6bl4".into());
        labels.insert("node".into(), self.node.peer_id.clone());
        labels.insert("node_name".into(), self.node.name.clone());
        let mut annotations = alert.annotations.clone();
        annotations.insert("summary".into(), alert.summary.clone());
        annotations.entry("description".into()).or_insert_with(|| {
            format!(
                "{} on node {} ({}): {}",
                alert.name, self.node.name, self.node.peer_id, alert.summary
            )
        });
        let valid_until = unix_ms() + u64::try_from(self.valid_for.as_millis()).unwrap_or(u64::MAX / 2);
        PostableAlert {
            labels,
            annotations,
            starts_at: rfc3339(alert.starts_at_ms),
            ends_at: rfc3339(alert.ends_at_ms.unwrap_or(valid_until)),
            generator_url: self.node.dashboard_url.clone(),
        }
    }

    /// Posts `alerts` in one request.
    pub async fn post(&self, alerts: &[Alert]) -> Result<(), DeliveryError> {
        let body: Vec<PostableAlert> = alerts.iter().map(|a| self.postable(a)).collect();
        post_json(&self.client, &self.url, &body).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Severity;

    fn sink() -> Alertmanager {
        let node = NodeContext {
            name: "alpha".into(),
            peer_id: "12D3KooWx".into(),
            dashboard_url: "http://127.0.0.1:8080/".into(),
        };
        let client = super::super::client(Duration::from_secs(1)).expect("client");
        Alertmanager::new(client, "http://127.0.0.1:9093/", node, Duration::from_secs(240))
    }

    #[test]
    fn labels_and_annotations_carry_name_severity_service_and_node() {
        let alert = Alert::new("PQC_HANDSHAKE_FAILURE", Severity::Critical, "refused").label("peer", "p");
        let posted = sink().postable(&alert);
        assert_eq!(posted.labels["alertname"], "PQC_HANDSHAKE_FAILURE");
        assert_eq!(posted.labels["severity"], "critical");
        assert_eq!(posted.labels["service"], "x0tta6bl4");
        assert_eq!(posted.labels["node"], "12D3KooWx");
        assert_eq!(posted.labels["node_name"], "alpha");
        assert_eq!(posted.labels["peer"], "p");
        assert_eq!(posted.annotations["summary"], "refused");
        assert!(posted.annotations["description"].contains("alpha"));
        assert_eq!(posted.generator_url, "http://127.0.0.1:8080/");
        assert!(posted.ends_at > posted.starts_at, "a firing alert is valid for a while");
        assert_eq!(sink().url, "http://127.0.0.1:9093/api/v2/alerts");
    }

    #[test]
    fn a_resolved_alert_ends_when_it_was_resolved() {
        let mut alert = Alert::new("X", Severity::Info, "s");
        alert.starts_at_ms = 1_000;
        alert.ends_at_ms = Some(2_000);
        let posted = sink().postable(&alert);
        assert_eq!(posted.starts_at, "1970-01-01T00:00:01Z");
        assert_eq!(posted.ends_at, "1970-01-01T00:00:02Z");
        let json = serde_json::to_value(&posted).expect("json");
        assert!(json.get("generatorURL").is_some() && json.get("startsAt").is_some());
    }
}
