//! One circuit breaker: closed → open after consecutive failures, half-open
//! after a pause, closed again after enough successes. Time is passed in, so
//! tests drive it with a made-up clock.

use std::time::{Duration, Instant};

use serde::Serialize;

/// Thresholds of a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitConfig {
    /// Consecutive failures that open a closed breaker.
    pub failures_to_open: u32,
    /// Successes in half-open that close it.
    pub successes_to_close: u32,
    /// How long an open breaker refuses before it lets a trial through.
    pub open_for: Duration,
}

impl CircuitConfig {
    /// Opens after `failures_to_open` failures in a row (at least one), for
    /// `open_secs`; one success in half-open closes it.
    pub fn consecutive(failures_to_open: u32, open_secs: u64) -> Self {
        Self {
            failures_to_open: failures_to_open.max(1),
            successes_to_close: 1,
            open_for: Duration::from_secs(open_secs),
        }
    }
}

impl Default for CircuitConfig {
    fn default() -> Self {
        Self {
            failures_to_open: 5,
            successes_to_close: 2,
            open_for: Duration::from_secs(60),
        }
    }
}

/// The state as reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls are refused until the pause ends.
    Open,
    /// Trial calls go through; successes close it, a failure opens it again.
    HalfOpen,
}

impl BreakerState {
    /// Gauge value: 0 closed, 1 half-open, 2 open.
    pub fn gauge(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::HalfOpen => 1.0,
            BreakerState::Open => 2.0,
        }
    }

    /// Label for logs and the API.
    pub fn label(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

/// Longest pause of an open breaker, whatever the configuration says.
const MAX_OPEN: Duration = Duration::from_secs(24 * 3_600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inner {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { successes: u32 },
}

/// A circuit breaker for one (action kind, target).
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    config: CircuitConfig,
    inner: Inner,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(config: CircuitConfig) -> Self {
        Self {
            config,
            inner: Inner::Closed { failures: 0 },
        }
    }

    /// The state at `now` (an open breaker whose pause ended reads half-open).
    pub fn state(&self, now: Instant) -> BreakerState {
        match self.inner {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { until } if now >= until => BreakerState::HalfOpen,
            Inner::Open { .. } => BreakerState::Open,
            Inner::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Consecutive failures counted while closed.
    pub fn failures(&self) -> u32 {
        match self.inner {
            Inner::Closed { failures } => failures,
            _ => 0,
        }
    }

    /// Lets a call through, or says how long until it would.
    pub fn allow(&mut self, now: Instant) -> Result<(), Duration> {
        match self.inner {
            Inner::Open { until } if now < until => Err(until - now),
            Inner::Open { .. } => {
                self.inner = Inner::HalfOpen { successes: 0 };
                Ok(())
            }
            Inner::Closed { .. } | Inner::HalfOpen { .. } => Ok(()),
        }
    }

    /// Records a successful call.
    pub fn on_success(&mut self, now: Instant) {
        self.inner = match self.inner {
            Inner::Closed { .. } => Inner::Closed { failures: 0 },
            Inner::HalfOpen { successes } if successes + 1 >= self.config.successes_to_close => {
                Inner::Closed { failures: 0 }
            }
            Inner::HalfOpen { successes } => Inner::HalfOpen {
                successes: successes + 1,
            },
            // A late answer to a call let through before it opened: still open,
            // unless the pause is over.
            Inner::Open { until } if now >= until => Inner::HalfOpen { successes: 1 },
            open @ Inner::Open { .. } => open,
        };
    }

    /// Records a failed call.
    pub fn on_failure(&mut self, now: Instant) {
        let open = Inner::Open {
            until: now.checked_add(self.config.open_for.min(MAX_OPEN)).unwrap_or(now),
        };
        self.inner = match self.inner {
            Inner::Closed { failures } if failures + 1 >= self.config.failures_to_open => open,
            Inner::Closed { failures } => Inner::Closed { failures: failures + 1 },
            Inner::HalfOpen { .. } => open,
            Inner::Open { until } => Inner::Open { until },
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> (CircuitBreaker, Instant) {
        (CircuitBreaker::new(CircuitConfig::default()), Instant::now())
    }

    #[test]
    fn opens_after_five_consecutive_failures_not_four() {
        let (mut b, t) = breaker();
        for _ in 0..4 {
            assert!(b.allow(t).is_ok());
            b.on_failure(t);
        }
        assert_eq!(b.state(t), BreakerState::Closed);
        assert_eq!(b.failures(), 4);
        b.on_failure(t);
        assert_eq!(b.state(t), BreakerState::Open);
        assert_eq!(b.allow(t), Err(Duration::from_secs(60)));
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let (mut b, t) = breaker();
        for _ in 0..4 {
            b.on_failure(t);
        }
        b.on_success(t);
        for _ in 0..4 {
            b.on_failure(t);
        }
        assert_eq!(b.state(t), BreakerState::Closed, "4 + reset + 4 is not 5 in a row");
    }

    #[test]
    fn refuses_while_open_and_half_opens_exactly_after_the_pause() {
        let (mut b, t) = breaker();
        for _ in 0..5 {
            b.on_failure(t);
        }
        let almost = t + Duration::from_secs(60) - Duration::from_millis(1);
        assert_eq!(b.allow(almost), Err(Duration::from_millis(1)));
        let after = t + Duration::from_secs(60);
        assert_eq!(b.state(after), BreakerState::HalfOpen);
        assert!(b.allow(after).is_ok());
        assert_eq!(b.state(after), BreakerState::HalfOpen);
    }

    /// Opens the breaker at `t` with five failures and lets the trial through
    /// 61 s later; returns that moment.
    fn open_then_try(b: &mut CircuitBreaker, t: Instant) -> Instant {
        for _ in 0..5 {
            b.on_failure(t);
        }
        let later = t + Duration::from_secs(61);
        assert!(b.allow(later).is_ok(), "half-open lets one trial through");
        later
    }

    #[test]
    fn half_open_closes_after_two_successes() {
        let (mut b, t) = breaker();
        let later = open_then_try(&mut b, t);
        b.on_success(later);
        assert_eq!(b.state(later), BreakerState::HalfOpen, "one success is not enough");
        b.on_success(later);
        assert_eq!(b.state(later), BreakerState::Closed);
        assert_eq!(b.failures(), 0);
    }

    #[test]
    fn a_failure_in_half_open_opens_again_for_a_full_pause() {
        let (mut b, t) = breaker();
        let later = open_then_try(&mut b, t);
        b.on_success(later);
        b.on_failure(later);
        assert_eq!(b.state(later), BreakerState::Open);
        assert_eq!(b.allow(later + Duration::from_secs(59)), Err(Duration::from_secs(1)));
        assert!(b.allow(later + Duration::from_secs(60)).is_ok());
    }

    #[test]
    fn failures_reported_while_open_do_not_extend_the_pause() {
        let (mut b, t) = breaker();
        for _ in 0..5 {
            b.on_failure(t);
        }
        b.on_failure(t + Duration::from_secs(30));
        assert!(b.allow(t + Duration::from_secs(60)).is_ok());
    }

    #[test]
    fn thresholds_are_configurable() {
        let config = CircuitConfig {
            failures_to_open: 1,
            successes_to_close: 1,
            open_for: Duration::from_millis(10),
        };
        let (mut b, t) = (CircuitBreaker::new(config), Instant::now());
        b.on_failure(t);
        assert_eq!(b.state(t), BreakerState::Open);
        let later = t + Duration::from_millis(10);
        assert!(b.allow(later).is_ok());
        b.on_success(later);
        assert_eq!(b.state(later), BreakerState::Closed);
    }
}
