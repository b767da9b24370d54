//! Per-link quality measured from libp2p ping: smoothed RTT (for people and
//! the healer), the smallest recent RTT (for routing) and recent loss.

use std::collections::VecDeque;
use std::time::Duration;

/// Pings remembered per link for the loss and minimum RTT estimates.
const WINDOW: usize = 10;
/// Weight of a new RTT sample in the moving average.
const RTT_ALPHA: f64 = 0.3;

/// Quality of one link.
#[derive(Debug, Clone, Default)]
pub struct LinkStats {
    rtt_ms: Option<f64>,
    /// The last pings: the RTT of each that came back, `None` for a lost one.
    outcomes: VecDeque<Option<f64>>,
}

impl LinkStats {
    /// Records a ping that came back after `rtt`.
    pub fn record_success(&mut self, rtt: Duration) {
        let sample = rtt.as_secs_f64() * 1_000.0;
        self.rtt_ms = Some(match self.rtt_ms {
            Some(avg) => avg + RTT_ALPHA * (sample - avg),
            None => sample,
        });
        self.push(Some(sample));
    }

    /// Records a ping that timed out or failed.
    pub fn record_failure(&mut self) {
        self.push(None);
    }

    fn push(&mut self, outcome: Option<f64>) {
        if self.outcomes.len() == WINDOW {
            self.outcomes.pop_front();
        }
        self.outcomes.push_back(outcome);
    }

    /// Smoothed RTT in milliseconds (0 until the first ping returns).
    pub fn rtt_ms(&self) -> f64 {
        self.rtt_ms.unwrap_or(0.0)
    }

    /// The RTT routing weighs, in milliseconds: the smallest of the last
    /// pings that came back (0 until one does). Queueing and scheduling only
    /// ever add to a round trip, so the minimum tracks the path itself rather
    /// than every busy moment of either end: a faster path shows at once, a
    /// slower one after a whole window of pings. (The third-smallest, tried
    /// so one lucky ping could not make a mostly slow link look fast, flapped
    /// as much as the smoothed RTT in `bench stability`.)
    pub fn routing_rtt_ms(&self) -> f64 {
        self.outcomes.iter().flatten().copied().reduce(f64::min).unwrap_or(0.0)
    }

    /// Share of the last pings that were lost.
    pub fn loss(&self) -> f64 {
        if self.outcomes.is_empty() {
            return 0.0;
        }
        let lost = self.outcomes.iter().filter(|rtt| rtt.is_none()).count();
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

    #[test]
    fn routing_rtt_is_the_recent_minimum() {
        let mut stats = LinkStats::default();
        assert_eq!(stats.routing_rtt_ms(), 0.0);
        for ms in [3, 9, 2, 12, 4] {
            stats.record_success(Duration::from_millis(ms));
        }
        stats.record_failure();
        assert!((stats.routing_rtt_ms() - 2.0).abs() < 1e-9, "busy moments do not count");
        assert!(stats.rtt_ms() > 4.0, "the smoothed RTT follows them");
        for _ in 0..WINDOW {
            stats.record_success(Duration::from_millis(20));
        }
        assert!(
            (stats.routing_rtt_ms() - 20.0).abs() < 1e-9,
            "a slower path shows after a window"
        );
        stats.record_success(Duration::from_millis(5));
        assert!((stats.routing_rtt_ms() - 5.0).abs() < 1e-9, "a faster one at once");
    }
}
