//! Configuration of end-to-end sessions (`[pqc]`).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use x0tta6bl4_pqc::{PqcMode, RekeyPolicy};

/// Post-quantum session policy and limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PqcConfig {
    /// `required` (hybrid only), `preferred` (hybrid, else X25519 with an
    /// alert) or `off` (X25519 only; the node announces no post-quantum keys).
    pub mode: String,
    /// Frames sealed with one session before it is replaced.
    pub rekey_after_frames: u64,
    /// Age (s) at which a session is replaced.
    pub rekey_after_secs: u64,
    /// A handshake not finished within this (ms) is dropped with its queue.
    pub handshake_timeout_ms: u64,
    /// An unanswered Init is sent again after this (ms).
    pub init_resend_ms: u64,
    /// Messages queued per destination while its handshake runs; more are refused.
    pub queue_per_peer: usize,
    /// Bytes queued over all destinations while their handshakes run.
    pub queue_bytes_total: usize,
    /// Established sessions kept (least recently used dropped first).
    pub max_sessions: usize,
    /// Handshakes in progress kept, each way.
    pub max_pending: usize,
    /// Inits per second above which the responder demands a cookie round trip.
    pub cookie_above_per_sec: usize,
    /// Cookie secret rotation (s).
    pub cookie_rotate_secs: u64,
    /// Handshakes per second one peer may start (token bucket refill).
    pub handshakes_per_sec_per_peer: u32,
    /// Handshakes one peer may start in a burst.
    pub handshake_burst: u32,
}

impl Default for PqcConfig {
    fn default() -> Self {
        Self {
            mode: "preferred".into(),
            rekey_after_frames: 1 << 32,
            rekey_after_secs: 120,
            handshake_timeout_ms: 5_000,
            init_resend_ms: 500,
            queue_per_peer: 256,
            queue_bytes_total: 16 << 20,
            max_sessions: 4_096,
            max_pending: 1_024,
            cookie_above_per_sec: 50,
            cookie_rotate_secs: 120,
            handshakes_per_sec_per_peer: 20,
            handshake_burst: 40,
        }
    }
}

impl PqcConfig {
    /// The parsed mode.
    pub fn mode(&self) -> Result<PqcMode, String> {
        self.mode.parse()
    }

    /// When sessions are replaced.
    pub fn rekey(&self) -> RekeyPolicy {
        RekeyPolicy {
            after_frames: self.rekey_after_frames.max(1),
            after: Duration::from_secs(self.rekey_after_secs.max(1)),
        }
    }
}
