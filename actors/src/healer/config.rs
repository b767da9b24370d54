//! Configuration of the healer.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Thresholds and timers of the MAPE-K loop.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealerConfig {
    /// Run the loop at all.
    pub enabled: bool,
    /// Milliseconds between two cycles.
    pub cycle_ms: u64,
    /// Loss ratio (pings or delayed beats) at which a link counts as lossy.
    pub loss_threshold: f64,
    /// RTT z-score (against the link's own history) that counts as a spike.
    pub rtt_z_threshold: f64,
    /// An RTT spike must also exceed the link's mean by this many milliseconds.
    pub rtt_min_excess_ms: f64,
    /// A neighbour disconnected this long (ms) is redialled.
    pub silent_after_ms: u64,
    /// Up/down changes of one link within `flap_window_secs` that count as flapping.
    pub flap_changes: usize,
    /// Window of the flapping detector.
    pub flap_window_secs: u64,
    /// Protocol violations from one neighbour in one cycle that get it quarantined.
    pub violations_per_cycle: u64,
    /// XDP drops per second that raise a drop-spike finding.
    pub drop_spike_pps: f64,
    /// Quarantine length in seconds.
    pub quarantine_secs: u64,
    /// Milliseconds after an action before its effect is judged.
    pub verify_ms: u64,
    /// Routed echoes per destination when measuring delivery.
    pub probes: u32,
    /// Timeout of one echo (ms).
    pub probe_timeout_ms: u64,
    /// Share of echoes (0..=1) that must come back after an action for it to
    /// count as verified.
    pub verified_delivery: f64,
    /// Dial timeout of a redial (ms).
    pub dial_timeout_ms: u64,
    /// Seconds an action that was rolled back is not tried again on the same target.
    pub cooldown_secs: u64,
    /// Seconds an avoided link must be up without a symptom before routes may use it again.
    pub restore_after_secs: u64,
    /// Action records kept in sled.
    pub history_limit: usize,
}

impl Default for HealerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            cycle_ms: 1_000,
            loss_threshold: 0.3,
            rtt_z_threshold: 4.0,
            rtt_min_excess_ms: 20.0,
            silent_after_ms: 3_000,
            flap_changes: 4,
            flap_window_secs: 30,
            violations_per_cycle: 20,
            drop_spike_pps: 10_000.0,
            quarantine_secs: 60,
            verify_ms: 3_000,
            probes: 5,
            probe_timeout_ms: 500,
            verified_delivery: 0.8,
            dial_timeout_ms: 2_000,
            cooldown_secs: 60,
            restore_after_secs: 60,
            history_limit: 1_000,
        }
    }
}

impl HealerConfig {
    /// Cycle period.
    pub fn cycle(&self) -> Duration {
        Duration::from_millis(self.cycle_ms)
    }

    /// Verification delay.
    pub fn verify(&self) -> Duration {
        Duration::from_millis(self.verify_ms)
    }

    /// Quarantine length.
    pub fn quarantine(&self) -> Duration {
        Duration::from_secs(self.quarantine_secs)
    }

    /// How long an avoided link must stay healthy before it is used again.
    pub fn restore_after(&self) -> Duration {
        Duration::from_secs(self.restore_after_secs)
    }

    /// Cooldown after a rollback.
    pub fn cooldown(&self) -> Duration {
        Duration::from_secs(self.cooldown_secs)
    }
}
