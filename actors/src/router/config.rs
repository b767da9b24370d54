//! Configuration of the router.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::graph::Hysteresis;

/// Routing and forwarding limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouterConfig {
    /// Hops a new message may take before it is dropped.
    pub default_ttl: u8,
    /// Largest payload of a message this node sends, in bytes.
    pub max_payload_bytes: usize,
    /// Delivered messages kept for `GET /api/v1/messages`.
    pub inbox_capacity: usize,
    /// Recent (source, id) pairs remembered to drop duplicates.
    pub seen_capacity: usize,
    /// A node whose last beacon is older than this (ms) leaves the graph.
    pub beacon_expiry_ms: u64,
    /// Most nodes kept in the link-state database.
    pub max_nodes: usize,
    /// Longest wait (ms) for room in a neighbour's queue before a frame is dropped.
    pub queue_timeout_ms: u64,
    /// Milliseconds between two route recomputations when the graph changed.
    pub recompute_interval_ms: u64,
    /// The path in use keeps its traffic while it costs at most this many
    /// percent more than the best path…
    pub hysteresis_percent: u64,
    /// …or at most this many microseconds of round trip more, whichever is larger.
    pub hysteresis_floor_us: u64,
    /// Window (ms) over which the senders' shares of a congested relay are
    /// counted (see `router::fair_share`).
    pub fair_share_window_ms: u64,
    /// Accept `POST /api/v1/debug/fault` (tests only).
    pub fault_injection: bool,
    /// Byzantine checks on beacons (set from the top-level `byzantine` key,
    /// `X0TTA6BL4_BYZANTINE`).
    #[serde(skip)]
    pub byzantine: bool,
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            // Twice the diameter of any mesh we expect, far below a loop's damage.
            default_ttl: 16,
            max_payload_bytes: 64 * 1024,
            inbox_capacity: 1_024,
            // About a minute of traffic at 1,000 msg/s.
            seen_capacity: 65_536,
            // Five missed beacons at the default one-second interval.
            beacon_expiry_ms: 5_000,
            max_nodes: 1_024,
            queue_timeout_ms: 100,
            // Quick enough that a topology change costs one tenth of a second.
            recompute_interval_ms: 100,
            hysteresis_percent: Hysteresis::default().percent,
            hysteresis_floor_us: Hysteresis::default().floor,
            // Long enough to count a few hundred frames of a busy link, short
            // enough that a sender that stops flooding is soon treated as light.
            fair_share_window_ms: 100,
            fault_injection: false,
            byzantine: false,
        }
    }
}

impl RouterConfig {
    /// The route hysteresis in routing cost units (1 µs of RTT = 1 unit).
    pub fn hysteresis(&self) -> Hysteresis {
        Hysteresis {
            percent: self.hysteresis_percent,
            floor: self.hysteresis_floor_us,
        }
    }

    /// The fair-share window as a duration.
    pub fn fair_share_window(&self) -> Duration {
        Duration::from_millis(self.fair_share_window_ms)
    }

    /// Queue timeout as a duration.
    pub fn queue_timeout(&self) -> Duration {
        Duration::from_millis(self.queue_timeout_ms)
    }
}
