//! Upper bounds on every duration and capacity setting. A zero is refused by
//! the checks in `validate`; these refuse the other end: a duration so long
//! that `Instant` arithmetic overflows (a panic in an actor stops the node),
//! or a capacity so large that an eagerly allocated queue or cache aborts at
//! start. Both are typing mistakes, never what was meant.

use super::{ConfigError, NodeConfig};

/// Longest duration any setting may name: a week.
pub const MAX_SECS: u64 = 7 * 24 * 3_600;
/// Largest capacity any setting may name: 4 Mi entries.
pub const MAX_CAPACITY: usize = 1 << 22;
/// Longest pause of an alert sink: a day.
const DAY_SECS: u64 = 24 * 3_600;

impl NodeConfig {
    /// Checks every duration and capacity against its bound, and the timers
    /// that only work in a certain order.
    pub(super) fn validate_limits(&self) -> Result<(), ConfigError> {
        let (mesh, router, healer, breaker, pqc) = (&self.mesh, &self.router, &self.healer, &self.breaker, &self.pqc);
        let (telemetry, alerter) = (&self.telemetry, &self.alerter);
        let secs = [
            ("healer.flap_window_secs", healer.flap_window_secs),
            ("healer.quarantine_secs", healer.quarantine_secs),
            ("healer.cooldown_secs", healer.cooldown_secs),
            ("healer.restore_after_secs", healer.restore_after_secs),
            ("breaker.open_secs", breaker.open_secs),
            ("breaker.rate_window_secs", breaker.rate_window_secs),
            ("pqc.rekey_after_secs", pqc.rekey_after_secs),
            ("pqc.cookie_rotate_secs", pqc.cookie_rotate_secs),
            ("telemetry.quarantine_ttl_secs", telemetry.quarantine_ttl_secs),
            ("alerter.repeat_after_secs", alerter.repeat_after_secs),
            ("alerter.firing_ttl_secs", alerter.firing_ttl_secs),
            ("supervision.within_secs", self.supervision.within_secs),
        ];
        let millis = [
            ("mesh.beacon_interval_ms", mesh.beacon_interval_ms),
            ("mesh.ping_interval_ms", mesh.ping_interval_ms),
            ("mesh.ping_timeout_ms", mesh.ping_timeout_ms),
            ("mesh.keepalive_interval_ms", mesh.keepalive_interval_ms),
            ("mesh.link_timeout_ms", mesh.link_timeout_ms),
            ("router.beacon_expiry_ms", router.beacon_expiry_ms),
            ("router.queue_timeout_ms", router.queue_timeout_ms),
            ("router.recompute_interval_ms", router.recompute_interval_ms),
            ("router.fair_share_window_ms", router.fair_share_window_ms),
            ("healer.cycle_ms", healer.cycle_ms),
            ("healer.silent_after_ms", healer.silent_after_ms),
            ("healer.verify_ms", healer.verify_ms),
            ("healer.probe_timeout_ms", healer.probe_timeout_ms),
            ("healer.dial_timeout_ms", healer.dial_timeout_ms),
            ("breaker.retry_base_ms", breaker.retry_base_ms),
            ("breaker.retry_cap_ms", breaker.retry_cap_ms),
            ("pqc.handshake_timeout_ms", pqc.handshake_timeout_ms),
            ("pqc.init_resend_ms", pqc.init_resend_ms),
            ("telemetry.interval_ms", telemetry.interval_ms),
            ("alerter.timeout_ms", alerter.timeout_ms),
            ("alerter.tick_ms", alerter.tick_ms),
            ("alerter.retry_base_ms", alerter.retry_base_ms),
            ("alerter.retry_cap_ms", alerter.retry_cap_ms),
            ("supervision.stuck_after_ms", self.supervision.stuck_after_ms),
        ];
        let capacities = [
            ("mesh.max_peers", mesh.max_peers),
            ("mesh.max_light_peers", mesh.max_light_peers),
            ("mesh.frame_queue", mesh.frame_queue),
            ("mesh.peer_book_limit", mesh.peer_book_limit),
            ("router.inbox_capacity", router.inbox_capacity),
            ("router.seen_capacity", router.seen_capacity),
            ("router.max_nodes", router.max_nodes),
            ("healer.history_limit", healer.history_limit),
            ("breaker.rate_limit", breaker.rate_limit),
            ("breaker.max_breakers", breaker.max_breakers),
            ("pqc.queue_per_peer", pqc.queue_per_peer),
            ("pqc.max_sessions", pqc.max_sessions),
            ("pqc.max_pending", pqc.max_pending),
            ("telemetry.top_talkers", telemetry.top_talkers),
            ("alerter.max_outbox", alerter.max_outbox),
            ("alerter.max_firing", alerter.max_firing),
        ];
        let bounded = secs
            .iter()
            .map(|&(key, value)| (key, value, MAX_SECS, "a week"))
            .chain(
                millis
                    .iter()
                    .map(|&(key, value)| (key, value, MAX_SECS * 1_000, "a week")),
            )
            .chain(
                capacities
                    .iter()
                    .map(|&(key, value)| (key, count(value), count(MAX_CAPACITY), "4 Mi")),
            )
            .chain([
                (
                    "mesh.max_frame_bytes",
                    count(mesh.max_frame_bytes),
                    count(MAX_CAPACITY),
                    "4 MiB",
                ),
                // Alert sinks pause for these: a day is already long silence.
                ("alerter.open_secs", alerter.open_secs, DAY_SECS, "a day"),
                (
                    "alerter.alertmanager_refresh_secs",
                    alerter.alertmanager_refresh_secs,
                    DAY_SECS,
                    "a day",
                ),
            ]);
        for (key, value, max, named) in bounded {
            if value > max {
                return invalid(key, format!("must be at most {named} ({max})"));
            }
        }
        if mesh.link_timeout_ms <= mesh.keepalive_interval_ms {
            // Every link would be closed on every liveness check.
            return invalid("mesh.link_timeout_ms", "must exceed mesh.keepalive_interval_ms".into());
        }
        if pqc.handshake_timeout_ms < 100 {
            return invalid("pqc.handshake_timeout_ms", "must be at least 100".into());
        }
        Ok(())
    }
}

/// A count as `u64`, for comparing with the other bounds.
fn count(value: usize) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}

fn invalid(key: &'static str, problem: String) -> Result<(), ConfigError> {
    Err(ConfigError::Invalid { key, problem })
}
