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
        ];
        let capacities = [
            ("mesh.max_peers", mesh.max_peers),
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
        if let Some(&(key, _)) = secs.iter().find(|(_, value)| *value > MAX_SECS) {
            return invalid(key, format!("must be at most a week ({MAX_SECS})"));
        }
        if let Some(&(key, _)) = millis.iter().find(|(_, value)| *value > MAX_SECS * 1_000) {
            return invalid(key, format!("must be at most a week ({})", MAX_SECS * 1_000));
        }
        if let Some(&(key, _)) = capacities.iter().find(|(_, value)| *value > MAX_CAPACITY) {
            return invalid(key, format!("must be at most {MAX_CAPACITY}"));
        }
        if mesh.max_frame_bytes > MAX_CAPACITY {
            return invalid(
                "mesh.max_frame_bytes",
                format!("must be at most {MAX_CAPACITY} (4 MiB)"),
            );
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

fn invalid(key: &'static str, problem: String) -> Result<(), ConfigError> {
    Err(ConfigError::Invalid { key, problem })
}
