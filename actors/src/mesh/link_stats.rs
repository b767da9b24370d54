//! Per-link quality measured from libp2p ping: smoothed RTT and recent loss.

use std::collections::VecDeque;
use std::time::Duration;

/// Pings remembered per link for the loss estimate.
const LOSS_WINDOW: usize = 10;
/// Weight of a new RTT sample in the moving average.
const RTT_ALPHA: f64 = 0.3;

/// Quality of one link.
#[derive(Debug, Clone, Default)]
pub struct LinkStats {
    rtt_ms: Option<f64>,
    outcomes: VecDeque<bool>,
}

impl LinkStats {
    /// Records a ping that came back after `rtt`.
    pub fn record_success(&mut self, rtt: Duration) {
        let sample = rtt.as_secs_f64() * 1_000.0;
        self.rtt_ms = Some(match self.rtt_ms {
            Some(avg) => avg + RTT_ALPHA * (sample - avg),
            None => sample,
        });
        self.push(true);
    }

    /// Records a ping that timed out or failed.
    pub fn record_failure(&mut self) {
        self.push(false);
    }

    fn push(&mut self, ok: bool) {
        if self.outcomes.len() == LOSS_WINDOW {
            self.outcomes.pop_front();
        }
        self.outcomes.push_back(ok);
    }

    /// Smoothed RTT in milliseconds (0 until the first ping returns).
    pub fn rtt_ms(&self) -> f64 {
        self.rtt_ms.unwrap_or(0.0)
    }

    /// Share of the last pings that were lost.
    pub fn loss(&self) -> f64 {
        if self.outcomes.is_empty() {
            return 0.0;
        }
        let lost = self.outcomes.iter().filter(|ok| !**ok).count();
        lost as f64 / self.outcomes.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_is_a_sliding_window() {
        let mut stats = LinkStats::default();
        for _ in 0..4 {
            stats.record_failure();
        }
        for _ in 0..6 {
            stats.record_success(Duration::from_millis(2));
        }
        assert!((stats.loss() - 0.4).abs() < 1e-9);
        for _ in 0..4 {
            stats.record_success(Duration::from_millis(2));
        }
        assert_eq!(stats.loss(), 0.0);
        assert!((stats.rtt_ms() - 2.0).abs() < 1e-9);
    }
}
