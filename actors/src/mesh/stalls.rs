//! How late this node's own periodic liveness check runs: a measure of how long
//! the process went unscheduled (a busy host, a stopped VM, a long GC-like
//! pause of the runtime). Silence heard during such a stall says nothing about
//! the neighbours, so the link timeout is stretched by it (see
//! [`super::neighbours::SilenceTimeout`]).

use std::time::{Duration, Instant};

/// The longest recent lateness fades by 1/64 per check (a half-life of about
/// 44 checks: 11 s at the default 250 ms keepalive).
const FADE_DIVISOR: u32 = 64;

/// Lateness of a periodic check, remembered as its recent maximum.
#[derive(Debug)]
pub struct StallMeter {
    every: Duration,
    last: Option<Instant>,
    longest: Duration,
}

impl StallMeter {
    /// A meter for a check that should run every `every`.
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            last: None,
            longest: Duration::ZERO,
        }
    }

    /// The check ran at `now`; returns the longest recent lateness.
    pub fn observe(&mut self, now: Instant) -> Duration {
        self.longest -= self.longest / FADE_DIVISOR;
        if let Some(last) = self.last {
            let late = now.saturating_duration_since(last).saturating_sub(self.every);
            self.longest = self.longest.max(late);
        }
        self.last = Some(now);
        self.longest
    }

    /// The longest recent lateness, as of the last check.
    pub fn longest(&self) -> Duration {
        self.longest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_check_is_remembered_and_fades() {
        let every = Duration::from_millis(250);
        let mut meter = StallMeter::new(every);
        let t0 = Instant::now();
        assert_eq!(meter.observe(t0), Duration::ZERO);
        assert_eq!(meter.observe(t0 + every), Duration::ZERO, "on time");
        let stalled = t0 + every * 2 + Duration::from_millis(1_000);
        assert_eq!(meter.observe(stalled), Duration::from_millis(1_000));
        let mut at = stalled;
        for _ in 0..200 {
            at += every;
            meter.observe(at);
        }
        assert!(meter.observe(at + every) < Duration::from_millis(100), "fades");
    }
}
