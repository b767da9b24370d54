//! Metrics of the alerter.

use super::sinks::SinkKind;

/// Notifications by sink and outcome.
pub const NOTIFICATIONS: &str = "x0tta_alert_notifications_total";
/// Notifications waiting per sink (refused ones included).
pub const BACKLOG: &str = "x0tta_alert_outbox_backlog";
/// Alerts not sent again because they were already firing.
pub const DEDUPLICATED: &str = "x0tta_alerts_deduplicated_total";
/// Notifications (one per sink) dropped, by reason (`full`: the outbox was
/// full; `unconfigured`: their sink was removed from the configuration).
pub const DROPPED: &str = "x0tta_alert_outbox_dropped_total";
/// Alertmanager refreshes of firing alerts, by result.
pub const REFRESHES: &str = "x0tta_alert_refreshes_total";
/// Firing alerts resolved by the alerter because nothing raised them again.
pub const EXPIRED: &str = "x0tta_alerts_expired_total";

/// Describes the alerter's metrics.
pub fn describe() {
    metrics::describe_counter!(
        NOTIFICATIONS,
        "Alert notifications by sink and result (delivered, retry, throttled, refused)"
    );
    metrics::describe_gauge!(BACKLOG, "Alert notifications in the outbox not yet accepted, by sink");
    metrics::describe_counter!(
        DEDUPLICATED,
        "Alerts that fired again while firing and were not re-sent"
    );
    metrics::describe_counter!(
        DROPPED,
        "Alert notifications dropped, by reason (full outbox, sink no longer configured)"
    );
    metrics::describe_counter!(REFRESHES, "Posts of firing alerts to Alertmanager to keep them active");
    metrics::describe_counter!(
        EXPIRED,
        "Firing alerts resolved by the alerter after firing_ttl_secs without being raised again"
    );
    metrics::counter!(EXPIRED).absolute(0);
    metrics::counter!(DEDUPLICATED).absolute(0);
    for reason in ["full", "unconfigured"] {
        metrics::counter!(DROPPED, "reason" => reason).absolute(0);
    }
}

/// Counts `count` notifications dropped for `reason`.
pub fn dropped(reason: &'static str, count: usize) {
    metrics::counter!(DROPPED, "reason" => reason).increment(count as u64);
}

/// Counts `count` notifications to `sink` with `result`.
pub fn notified(sink: SinkKind, result: &'static str, count: usize) {
    metrics::counter!(NOTIFICATIONS, "sink" => sink.label(), "result" => result).increment(count as u64);
}

/// Sets the backlog of `sink`.
pub fn backlog(sink: SinkKind, count: usize) {
    metrics::gauge!(BACKLOG, "sink" => sink.label()).set(count as f64);
}
