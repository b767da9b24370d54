//! The one place errors are reported: a structured log line,
//! `x0tta_errors_total{context,kind,severity}`, and an alert for critical
//! ones. Code that cannot return an error (a background task, an actor's
//! timer, a best-effort cleanup) hands it here instead of dropping it.
//!
//! The alert sink is installed once per process ([`install`]); until then
//! (unit tests, tools) critical errors are logged and counted only.

use std::cell::Cell;
use std::fmt::Display;
use std::sync::OnceLock;

use crate::alert::{Alert, Severity, SharedAlertSink};

/// Counter of reported errors.
pub const ERRORS_TOTAL: &str = "x0tta_errors_total";

static SINK: OnceLock<SharedAlertSink> = OnceLock::new();

thread_local! {
    /// Set while an error is being turned into an alert, so an error inside
    /// the alerter itself is logged and counted but cannot loop.
    static ALERTING: Cell<bool> = const { Cell::new(false) };
}

/// Sends critical errors to `sink` from now on (the first call wins).
pub fn install(sink: SharedAlertSink) {
    metrics::describe_counter!(
        ERRORS_TOTAL,
        "Errors reported, by subsystem (context), kind and severity"
    );
    if SINK.set(sink).is_err() {
        tracing::debug!("error alert sink already installed");
    }
}

/// Reports `error` from `context` (the subsystem: `alerter`, `mesh`, …) of
/// `kind` (a stable snake_case word).
pub fn report(context: &'static str, kind: &'static str, severity: Severity, error: &dyn Display) {
    metrics::counter!(ERRORS_TOTAL, "context" => context, "kind" => kind, "severity" => severity.label()).increment(1);
    match severity {
        Severity::Critical => tracing::error!(context, kind, "{error}"),
        Severity::Warning => tracing::warn!(context, kind, "{error}"),
        Severity::Info => tracing::info!(context, kind, "{error}"),
    }
    if severity != Severity::Critical || ALERTING.with(Cell::get) {
        return;
    }
    if let Some(sink) = SINK.get() {
        ALERTING.with(|a| a.set(true));
        sink.emit(
            Alert::new("SUBSYSTEM_ERROR", Severity::Critical, format!("{context}: {error}"))
                .label("context", context)
                .label("kind", kind),
        );
        ALERTING.with(|a| a.set(false));
    }
}

/// Reports the error of a `Result` that has nowhere else to go.
pub trait Reported<T> {
    /// The value, or `None` after reporting the error.
    fn or_report(self, context: &'static str, kind: &'static str, severity: Severity) -> Option<T>;
}

impl<T, E: Display> Reported<T> for Result<T, E> {
    fn or_report(self, context: &'static str, kind: &'static str, severity: Severity) -> Option<T> {
        self.map_err(|error| report(context, kind, severity, &error)).ok()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::alert::AlertSink;

    /// Records alerts, and reports a critical error of its own on each one,
    /// as an alerter whose store fails would.
    struct Recording(Mutex<Vec<Alert>>);

    impl AlertSink for Recording {
        fn emit(&self, alert: Alert) {
            self.0.lock().expect("lock").push(alert);
            report("alerter", "outbox_write", Severity::Critical, &"disk full");
        }
    }

    #[test]
    fn critical_errors_alert_once_and_errors_in_the_alerter_do_not_loop() {
        let sink = Arc::new(Recording(Mutex::new(Vec::new())));
        install(sink.clone());
        report("mesh", "dial", Severity::Warning, &"refused");
        assert!(sink.0.lock().expect("lock").is_empty(), "warnings do not alert");
        let value: Option<u8> = Err::<u8, _>("sled: io error").or_report("store", "flush", Severity::Critical);
        assert_eq!(value, None);
        let alerts = sink.0.lock().expect("lock").clone();
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].name, "SUBSYSTEM_ERROR");
        assert_eq!(alerts[0].labels["context"], "store");
        assert_eq!(alerts[0].labels["kind"], "flush");
        assert!(alerts[0].summary.contains("sled: io error"));
        assert_eq!(Ok::<u8, String>(3).or_report("x", "y", Severity::Critical), Some(3));
    }
}
