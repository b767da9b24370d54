//! A sliding-window rate limiter: at most `limit` events in any `window`.
//!
//! Not `governor`: its GCRA allows a burst and then one event per
//! `window / limit`, so 10 per 60 s lets 19 through in the first minute; the
//! design asks for a hard "10 in any 60 s". The log of at most `limit` instants
//! does exactly that in constant memory.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// At most `limit` events in any window of `window`.
#[derive(Debug, Clone)]
pub struct SlidingWindow {
    limit: usize,
    window: Duration,
    events: VecDeque<Instant>,
}

impl SlidingWindow {
    /// A limiter allowing `limit` events per `window`.
    pub fn new(limit: usize, window: Duration) -> Self {
        Self {
            limit,
            window,
            events: VecDeque::with_capacity(limit),
        }
    }

    /// Takes one slot at `now`, or says how long until one frees up.
    pub fn try_acquire(&mut self, now: Instant) -> Result<(), Duration> {
        self.evict(now);
        if self.events.len() < self.limit {
            self.events.push_back(now);
            return Ok(());
        }
        match self.events.front() {
            Some(oldest) => Err((*oldest + self.window).saturating_duration_since(now)),
            None => Err(self.window),
        }
    }

    /// Events counted in the window ending at `now`.
    pub fn used(&mut self, now: Instant) -> usize {
        self.evict(now);
        self.events.len()
    }

    /// The limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The window.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// An event at `t` counts while `now < t + window`.
    fn evict(&mut self, now: Instant) {
        while self.events.front().is_some_and(|t| *t + self.window <= now) {
            self.events.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn ten_pass_and_the_eleventh_waits_for_the_oldest_to_leave() {
        let t = Instant::now();
        let mut w = SlidingWindow::new(10, MINUTE);
        for i in 0..10 {
            assert!(w.try_acquire(t + Duration::from_secs(i)).is_ok(), "event {i}");
        }
        let at = t + Duration::from_secs(10);
        assert_eq!(w.try_acquire(at), Err(Duration::from_secs(50)));
        assert_eq!(w.used(at), 10);
    }

    #[test]
    fn the_window_edge_is_exclusive() {
        let t = Instant::now();
        let mut w = SlidingWindow::new(1, MINUTE);
        assert!(w.try_acquire(t).is_ok());
        let just_before = t + MINUTE - Duration::from_nanos(1);
        assert_eq!(w.try_acquire(just_before), Err(Duration::from_nanos(1)));
        assert!(
            w.try_acquire(t + MINUTE).is_ok(),
            "at exactly t + window the old event is gone"
        );
    }

    #[test]
    fn refusals_do_not_use_up_the_budget() {
        let t = Instant::now();
        let mut w = SlidingWindow::new(2, MINUTE);
        assert!(w.try_acquire(t).is_ok());
        assert!(w.try_acquire(t).is_ok());
        for s in 1..30 {
            assert!(w.try_acquire(t + Duration::from_secs(s)).is_err());
        }
        assert!(w.try_acquire(t + MINUTE).is_ok());
        assert!(w.try_acquire(t + MINUTE).is_ok());
        assert!(w.try_acquire(t + MINUTE).is_err());
    }

    #[test]
    fn never_more_than_the_limit_in_any_window() {
        let t = Instant::now();
        let mut w = SlidingWindow::new(10, MINUTE);
        let mut accepted = Vec::new();
        for ms in (0..300_000u64).step_by(700) {
            let now = t + Duration::from_millis(ms);
            if w.try_acquire(now).is_ok() {
                accepted.push(now);
            }
        }
        for (i, start) in accepted.iter().enumerate() {
            let in_window = accepted[i..].iter().take_while(|a| **a < *start + MINUTE).count();
            assert!(in_window <= 10, "{in_window} events in one window");
        }
        assert_eq!(accepted.len(), 50, "10 per minute for 5 minutes");
    }
}
