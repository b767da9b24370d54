//! PagerDuty Events API v2: `POST /v2/enqueue` with a `trigger` event whose
//! `dedup_key` is the node's peer id and the alert's fingerprint, and a
//! `resolve` event with the same key. 202 is accepted, 400 is final, 429 and
//! 5xx are retried.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{post_json, rfc3339, shorten, DeliveryError, NodeContext};
use crate::alert::{Alert, Severity};

/// One event as PagerDuty takes it.
#[derive(Debug, Serialize, PartialEq)]
pub struct Event {
    /// Integration key of the service.
    pub routing_key: String,
    /// `trigger` or `resolve`.
    pub event_action: &'static str,
    /// Ties a resolve to its trigger (≤ 255 characters).
    pub dedup_key: String,
    /// Present on triggers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<Payload>,
    /// Who sends it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<&'static str>,
    /// The node's dashboard.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_url: Option<String>,
}

/// The body of a trigger.
#[derive(Debug, Serialize, PartialEq)]
pub struct Payload {
    /// ≤ 1024 characters.
    pub summary: String,
    /// The node.
    pub source: String,
    /// `critical`, `error`, `warning` or `info`.
    pub severity: &'static str,
    /// RFC 3339 start.
    pub timestamp: String,
    /// Always `x0tta6bl4`.
    pub component: &'static str,
    /// The alert name.
    pub class: String,
    /// Labels and annotations.
    pub custom_details: BTreeMap<String, String>,
}

/// PagerDuty's severity for ours (it has no separate level for our warnings
/// and errors, so `error` is not used).
pub fn severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "critical",
        Severity::Warning => "warning",
        Severity::Info => "info",
    }
}

/// The PagerDuty sink.
#[derive(Clone)]
pub struct PagerDuty {
    client: reqwest::Client,
    url: String,
    routing_key: String,
    node: NodeContext,
}

impl PagerDuty {
    /// A sink enqueueing at `url` for the service with `routing_key`.
    pub fn new(client: reqwest::Client, url: &str, routing_key: &str, node: NodeContext) -> Self {
        Self {
            client,
            url: url.to_string(),
            routing_key: routing_key.to_string(),
            node,
        }
    }

    /// The event for `alert`.
    pub fn event(&self, alert: &Alert) -> Event {
        let dedup_key = shorten(&format!("x0tta6bl4/{}/{}", self.node.peer_id, alert.fingerprint()), 250);
        if alert.is_resolved() {
            return Event {
                routing_key: self.routing_key.clone(),
                event_action: "resolve",
                dedup_key,
                payload: None,
                client: None,
                client_url: None,
            };
        }
        let mut custom_details = alert.annotations.clone();
        custom_details.extend(alert.labels.clone());
        custom_details.insert("node_name".into(), self.node.name.clone());
        Event {
            routing_key: self.routing_key.clone(),
            event_action: "trigger",
            dedup_key,
            payload: Some(Payload {
                summary: shorten(&format!("{}: {}", alert.name, alert.summary), 1_000),
                source: format!("{} ({})", self.node.name, self.node.peer_id),
                severity: severity(alert.severity),
                timestamp: rfc3339(alert.starts_at_ms),
                component: "x0tta6bl4",
                class: alert.name.clone(),
                custom_details,
            }),
            client: Some("x0tta6bl4"),
            client_url: Some(self.node.dashboard_url.clone()),
        }
    }

    /// Sends the event for `alert`.
    pub async fn enqueue(&self, alert: &Alert) -> Result<(), DeliveryError> {
        post_json(&self.client, &self.url, &self.event(alert)).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn sink() -> PagerDuty {
        let node = NodeContext {
            name: "alpha".into(),
            peer_id: "12D3KooWx".into(),
            dashboard_url: "http://127.0.0.1:8080/".into(),
        };
        let client = super::super::client(Duration::from_secs(1)).expect("client");
        PagerDuty::new(client, "http://127.0.0.1:1/v2/enqueue", &"k".repeat(32), node)
    }

    #[test]
    fn trigger_and_resolve_share_the_dedup_key() {
        let alert = Alert::new("BREAKER_OPEN", Severity::Warning, "redial of p").label("target", "p");
        let trigger = sink().event(&alert);
        let resolve = sink().event(&alert.clone().resolved());
        assert_eq!(trigger.event_action, "trigger");
        assert_eq!(resolve.event_action, "resolve");
        assert_eq!(trigger.dedup_key, resolve.dedup_key);
        assert_eq!(
            trigger.dedup_key,
            format!("x0tta6bl4/12D3KooWx/{}", alert.fingerprint())
        );
        assert!(resolve.payload.is_none());
        let payload = trigger.payload.expect("payload");
        assert_eq!(payload.severity, "warning");
        assert_eq!(payload.custom_details["target"], "p");
        assert_eq!(payload.class, "BREAKER_OPEN");
    }

    #[test]
    fn severities_map_to_pagerdutys_values() {
        let allowed = ["critical", "error", "warning", "info"];
        for s in [Severity::Critical, Severity::Warning, Severity::Info] {
            assert!(allowed.contains(&severity(s)));
        }
        assert_eq!(severity(Severity::Critical), "critical");
    }

    #[test]
    fn the_summary_is_cut_to_pagerdutys_limit() {
        let alert = Alert::new("X", Severity::Info, "y".repeat(5_000));
        let summary = sink().event(&alert).payload.expect("payload").summary;
        assert!(summary.chars().count() <= 1_024);
    }
}
