//! Alert events raised by subsystems, and the one interface they go through.
//!
//! The alerter (Alertmanager, Telegram, PagerDuty) implements [`AlertSink`];
//! until it is configured, [`LogAlertSink`] logs and counts every alert so none
//! is lost silently.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Someone must act now.
    Critical,
    /// Needs attention soon.
    Warning,
    /// For the record.
    Info,
}

impl Severity {
    /// Label value.
    pub fn label(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// One alert: a name (`HEALER_BREAKER_OPEN`), a severity, a summary and labels.
#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    /// Stable name, upper snake case.
    pub name: &'static str,
    /// Urgency.
    pub severity: Severity,
    /// One line for people.
    pub summary: String,
    /// Labels identifying the instance (target, peer, kind).
    pub labels: BTreeMap<String, String>,
}

impl Alert {
    /// An alert without labels.
    pub fn new(name: &'static str, severity: Severity, summary: impl Into<String>) -> Self {
        Self {
            name,
            severity,
            summary: summary.into(),
            labels: BTreeMap::new(),
        }
    }

    /// Adds a label.
    pub fn label(mut self, key: &str, value: impl Into<String>) -> Self {
        self.labels.insert(key.to_string(), value.into());
        self
    }
}

/// Where alerts go.
pub trait AlertSink: Send + Sync {
    /// Takes an alert; must not block.
    fn emit(&self, alert: Alert);
}

/// Shared handle to the sink in force.
pub type SharedAlertSink = Arc<dyn AlertSink>;

/// Logs every alert and counts it in `x0tta_alerts_total{name,severity}`.
#[derive(Debug, Default)]
pub struct LogAlertSink;

impl AlertSink for LogAlertSink {
    fn emit(&self, alert: Alert) {
        metrics::counter!("x0tta_alerts_total", "name" => alert.name, "severity" => alert.severity.label())
            .increment(1);
        match alert.severity {
            Severity::Critical => tracing::error!(alert = alert.name, labels = ?alert.labels, "{}", alert.summary),
            Severity::Warning => tracing::warn!(alert = alert.name, labels = ?alert.labels, "{}", alert.summary),
            Severity::Info => tracing::info!(alert = alert.name, labels = ?alert.labels, "{}", alert.summary),
        }
    }
}
