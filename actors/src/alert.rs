//! Alert events raised by subsystems, and the one interface they go through.
//!
//! Every subsystem holds a [`SharedAlertSink`] and calls
//! [`emit`](AlertSink::emit) with an [`Alert`]: a name
//! (`PQC_HANDSHAKE_FAILURE`), a severity, a summary, labels and annotations,
//! a start and, once resolved, an end. The alerter
//! ([`crate::alerter::Alerter`]) stores it durably and delivers it to
//! Alertmanager, Telegram and PagerDuty; [`LogAlertSink`] logs and counts
//! only (unit tests, tools).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::mesh::unix_ms;

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

/// One alert. Its identity is its name and labels ([`Alert::fingerprint`]):
/// the same alert firing again is the same alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Stable name, upper snake case.
    pub name: String,
    /// Urgency.
    pub severity: Severity,
    /// One line for people.
    pub summary: String,
    /// Labels identifying the instance (target, peer, kind).
    pub labels: BTreeMap<String, String>,
    /// Further text for people (description, runbook).
    pub annotations: BTreeMap<String, String>,
    /// When it started firing, Unix milliseconds.
    pub starts_at_ms: u64,
    /// When it was resolved, Unix milliseconds; `None` while firing.
    pub ends_at_ms: Option<u64>,
}

impl Alert {
    /// A firing alert, starting now, without labels.
    pub fn new(name: impl Into<String>, severity: Severity, summary: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            severity,
            summary: summary.into(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            starts_at_ms: unix_ms(),
            ends_at_ms: None,
        }
    }

    /// Adds a label.
    pub fn label(mut self, key: &str, value: impl Into<String>) -> Self {
        self.labels.insert(key.to_string(), value.into());
        self
    }

    /// Adds an annotation.
    pub fn annotation(mut self, key: &str, value: impl Into<String>) -> Self {
        self.annotations.insert(key.to_string(), value.into());
        self
    }

    /// The same alert, resolved now.
    pub fn resolved(mut self) -> Self {
        self.ends_at_ms = Some(unix_ms());
        self
    }

    /// Whether it has been resolved.
    pub fn is_resolved(&self) -> bool {
        self.ends_at_ms.is_some()
    }

    /// Identity of the alert: SHA-256 over its name and sorted labels, the
    /// first 8 bytes in hex. Stable across restarts and nodes.
    pub fn fingerprint(&self) -> String {
        let mut hash = Sha256::new();
        hash.update(self.name.as_bytes());
        for (key, value) in &self.labels {
            hash.update([0xff]);
            hash.update(key.as_bytes());
            hash.update([0xfe]);
            hash.update(value.as_bytes());
        }
        hash.finalize()[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Where alerts go.
pub trait AlertSink: Send + Sync {
    /// Takes an alert, firing or resolved; must not block for long.
    fn emit(&self, alert: Alert);
}

/// Shared handle to the sink in force.
pub type SharedAlertSink = Arc<dyn AlertSink>;

/// Counts an alert in `x0tta_alerts_total{name,severity}` and logs it.
pub fn log(alert: &Alert) {
    metrics::counter!(
        "x0tta_alerts_total",
        "name" => alert.name.clone(),
        "severity" => alert.severity.label()
    )
    .increment(1);
    let state = if alert.is_resolved() { "resolved" } else { "firing" };
    match alert.severity {
        Severity::Critical => tracing::error!(alert = %alert.name, state, labels = ?alert.labels, "{}", alert.summary),
        Severity::Warning => tracing::warn!(alert = %alert.name, state, labels = ?alert.labels, "{}", alert.summary),
        Severity::Info => tracing::info!(alert = %alert.name, state, labels = ?alert.labels, "{}", alert.summary),
    }
}

/// Logs every alert and counts it; delivers nowhere.
#[derive(Debug, Default)]
pub struct LogAlertSink;

impl AlertSink for LogAlertSink {
    fn emit(&self, alert: Alert) {
        log(&alert);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_is_name_and_labels_only() {
        let a = Alert::new("LINK_LOSS", Severity::Warning, "one").label("peer", "x");
        let b = Alert::new("LINK_LOSS", Severity::Critical, "two")
            .label("peer", "x")
            .annotation("runbook", "r")
            .resolved();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), a.clone().label("peer", "y").fingerprint());
        assert_ne!(
            a.fingerprint(),
            Alert::new("LINK_LOST", Severity::Warning, "")
                .label("peer", "x")
                .fingerprint()
        );
        assert_eq!(a.fingerprint().len(), 16);
    }

    #[test]
    fn label_boundaries_are_part_of_the_fingerprint() {
        let a = Alert::new("A", Severity::Info, "").label("ab", "c");
        let b = Alert::new("A", Severity::Info, "").label("a", "bc");
        assert_ne!(a.fingerprint(), b.fingerprint());
    }
}
