//! Configuration of the alerter: which sinks are on, where they are, and how
//! hard to try. Each sink is off until its address or key is set; the usual
//! environment variables `ALERTMANAGER_URL`, `TELEGRAM_BOT_TOKEN`,
//! `TELEGRAM_CHAT_ID` and `PAGERDUTY_ROUTING_KEY` set them too.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::breaker::circuit::CircuitConfig;

/// A Telegram chat: a numeric id or an `@channel` name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TelegramChat {
    /// Numeric chat id (negative for groups).
    Id(i64),
    /// `@channelusername`.
    Name(String),
}

/// Alerter settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlerterConfig {
    /// Alertmanager base URL (`http://127.0.0.1:9093`); off when unset.
    pub alertmanager_url: Option<String>,
    /// Telegram bot token; Telegram is on when this and the chat are set.
    pub telegram_bot_token: Option<String>,
    /// Telegram chat alerts go to.
    pub telegram_chat_id: Option<TelegramChat>,
    /// Telegram Bot API base URL.
    pub telegram_api_url: String,
    /// PagerDuty Events v2 routing key; off when unset.
    pub pagerduty_routing_key: Option<String>,
    /// PagerDuty Events v2 enqueue URL.
    pub pagerduty_url: String,
    /// Dashboard address put into alerts (`generatorURL`, links); the
    /// node's own HTTP address when unset.
    pub dashboard_url: Option<String>,
    /// Timeout of one delivery request (ms).
    pub timeout_ms: u64,
    /// How often the outbox is looked at (ms).
    pub tick_ms: u64,
    /// First retry delay ceiling (ms); doubles per attempt, full jitter.
    pub retry_base_ms: u64,
    /// Largest retry delay (ms).
    pub retry_cap_ms: u64,
    /// Consecutive failed deliveries that open a sink's breaker.
    pub failures_to_open: u32,
    /// Seconds an open sink breaker waits before a trial delivery.
    pub open_secs: u64,
    /// Deliveries per minute per sink (Telegram allows ~20/min in a group,
    /// PagerDuty ~120/min per key).
    pub per_minute: u32,
    /// A firing alert that fires again within this many seconds is not sent
    /// again.
    pub repeat_after_secs: u64,
    /// Firing alerts are posted to Alertmanager again this often (seconds),
    /// and stay valid there for four times as long.
    pub alertmanager_refresh_secs: u64,
    /// A firing alert not raised again for this many seconds is resolved by
    /// the alerter: most alerts are events (a refused handshake, a breaker
    /// that opened) that nothing else resolves. 0: never.
    pub firing_ttl_secs: u64,
    /// Most alerts kept in the outbox; beyond it the oldest go (counted).
    pub max_outbox: usize,
    /// Most distinct firing alerts remembered for dedupe.
    pub max_firing: usize,
}

impl Default for AlerterConfig {
    fn default() -> Self {
        Self {
            alertmanager_url: None,
            telegram_bot_token: None,
            telegram_chat_id: None,
            telegram_api_url: "https://api.telegram.org".into(),
            pagerduty_routing_key: None,
            pagerduty_url: "https://events.pagerduty.com/v2/enqueue".into(),
            dashboard_url: None,
            timeout_ms: 10_000,
            tick_ms: 100,
            retry_base_ms: 500,
            retry_cap_ms: 60_000,
            failures_to_open: 5,
            open_secs: 30,
            per_minute: 20,
            repeat_after_secs: 4 * 3600,
            alertmanager_refresh_secs: 60,
            firing_ttl_secs: 3_600,
            max_outbox: 10_000,
            max_firing: 10_000,
        }
    }
}

impl AlerterConfig {
    /// Timeout of one request.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.max(1))
    }

    /// Thresholds of each sink's breaker.
    pub fn circuit(&self) -> CircuitConfig {
        CircuitConfig::consecutive(self.failures_to_open, self.open_secs)
    }

    /// Base and cap of retry delays.
    pub fn retry_delays(&self) -> (Duration, Duration) {
        (
            Duration::from_millis(self.retry_base_ms),
            Duration::from_millis(self.retry_cap_ms),
        )
    }
}
