//! Configuration of the telemetry actor.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use x0tta6bl4_bpf::XdpModeRequest;

/// What to watch and how.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Milliseconds between two readings of the counters.
    pub interval_ms: u64,
    /// Load the XDP program; when false, interface statistics are used.
    pub xdp: bool,
    /// `auto` (hardware, then native, then generic), `hardware`, `native` or `generic`.
    pub xdp_mode: String,
    /// Interfaces to watch; empty means the interface of the default route.
    pub interfaces: Vec<String>,
    /// Quarantine lifetime (seconds) when a request names none.
    pub quarantine_ttl_secs: u64,
    /// Sources listed per interface in the top-talkers view.
    pub top_talkers: usize,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            interval_ms: 1_000,
            xdp: true,
            xdp_mode: "auto".to_string(),
            interfaces: Vec::new(),
            quarantine_ttl_secs: 300,
            top_talkers: 10,
        }
    }
}

impl TelemetryConfig {
    /// The reading interval.
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms)
    }

    /// The parsed XDP mode request.
    pub fn mode_request(&self) -> Result<XdpModeRequest, String> {
        self.xdp_mode.parse()
    }

    /// The default quarantine lifetime.
    pub fn quarantine_ttl(&self) -> Duration {
        Duration::from_secs(self.quarantine_ttl_secs)
    }
}
