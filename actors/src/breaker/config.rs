//! Configuration of breakers, the action rate limit and retries.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::circuit::CircuitConfig;

/// Breaker, rate-limit and retry settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Consecutive failures that open a breaker.
    pub failures_to_open: u32,
    /// Successes in half-open that close it.
    pub successes_to_close: u32,
    /// Seconds an open breaker refuses before a trial.
    pub open_secs: u64,
    /// Actions allowed per window, over all targets.
    pub rate_limit: usize,
    /// The rate-limit window in seconds.
    pub rate_window_secs: u64,
    /// First retry delay ceiling (ms); doubles per retry, full jitter.
    pub retry_base_ms: u64,
    /// Largest retry delay (ms).
    pub retry_cap_ms: u64,
    /// Retries after the first attempt of one action.
    pub max_retries: u32,
    /// Most (kind, target) breakers kept; the least recently used closed one goes first.
    pub max_breakers: usize,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failures_to_open: 5,
            successes_to_close: 2,
            open_secs: 60,
            rate_limit: 10,
            rate_window_secs: 60,
            retry_base_ms: 200,
            retry_cap_ms: 5_000,
            max_retries: 4,
            max_breakers: 1_024,
        }
    }
}

impl BreakerConfig {
    /// The per-breaker thresholds.
    pub fn circuit(&self) -> CircuitConfig {
        CircuitConfig {
            failures_to_open: self.failures_to_open.max(1),
            successes_to_close: self.successes_to_close.max(1),
            open_for: Duration::from_secs(self.open_secs),
        }
    }

    /// The rate-limit window.
    pub fn rate_window(&self) -> Duration {
        Duration::from_secs(self.rate_window_secs)
    }

    /// Base and cap of retry delays.
    pub fn retry_delays(&self) -> (Duration, Duration) {
        (
            Duration::from_millis(self.retry_base_ms),
            Duration::from_millis(self.retry_cap_ms),
        )
    }
}
