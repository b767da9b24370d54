//! The breaker actor: a circuit breaker per (action kind, target), one sliding
//! window rate limit over all actions, and the retry delay policy.
//!
//! Callers ask [`Acquire`] before acting and send [`Report`] with the outcome.
//! An open breaker refuses without using rate budget. A breaker that opens
//! raises an alert through the [`AlertSink`](crate::alert::AlertSink).

pub mod backoff;
pub mod circuit;
mod config;
pub mod window;

use std::time::{Duration, Instant};

use actix::{Actor, Context, Handler, Message, MessageResult};
use lru::LruCache;
use serde::Serialize;

pub use circuit::{BreakerState, CircuitBreaker};
pub use config::BreakerConfig;
use window::SlidingWindow;

use crate::alert::{Alert, Severity, SharedAlertSink};
use crate::buckets::capacity;

const STATE_GAUGE: &str = "x0tta_breaker_state";
const RATE_REJECTED: &str = "x0tta_ratelimit_rejected_total";
const OPEN_REJECTED: &str = "x0tta_breaker_rejected_total";

/// Asks permission for one attempt of `kind` on `target`.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), Refusal>")]
pub struct Acquire {
    /// Action kind (`redial`, `quarantine`, …).
    pub kind: &'static str,
    /// What it acts on (a peer id, an actor name).
    pub target: String,
    /// A retry of an action that already holds its slot of the rate limit:
    /// only the breaker is asked.
    pub retry: bool,
}

/// Why an attempt may not go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The breaker for this kind and target is open.
    #[error("breaker open for another {0:?}")]
    Open(Duration),
    /// The action budget of the window is used up.
    #[error("rate limit reached; a slot frees in {0:?}")]
    RateLimited(Duration),
}

/// The outcome of an attempt that was allowed.
#[derive(Message, Debug, Clone)]
#[rtype(result = "BreakerState")]
pub struct Report {
    /// Action kind.
    pub kind: &'static str,
    /// Target.
    pub target: String,
    /// Whether it worked.
    pub success: bool,
}

/// Lists breakers and the rate limit.
#[derive(Message)]
#[rtype(result = "BreakersView")]
pub struct ListBreakers;

/// One breaker as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct BreakerView {
    /// Action kind.
    pub kind: String,
    /// Target.
    pub target: String,
    /// Current state.
    pub state: BreakerState,
    /// Consecutive failures while closed.
    pub consecutive_failures: u32,
}

/// All breakers and the rate limit.
#[derive(Debug, Clone, Serialize)]
pub struct BreakersView {
    /// Every tracked (kind, target), most recently used first.
    pub breakers: Vec<BreakerView>,
    /// Actions in the current window.
    pub rate_used: usize,
    /// Actions allowed per window.
    pub rate_limit: usize,
    /// The window in seconds.
    pub rate_window_secs: u64,
}

/// The breaker actor.
pub struct BreakerActor {
    config: BreakerConfig,
    breakers: LruCache<(&'static str, String), CircuitBreaker>,
    limiter: SlidingWindow,
    alerts: SharedAlertSink,
}

impl BreakerActor {
    /// Breakers and limiter from `config`; opened breakers alert through `alerts`.
    pub fn new(config: BreakerConfig, alerts: SharedAlertSink) -> Self {
        metrics::describe_gauge!(
            STATE_GAUGE,
            "Circuit breaker state by action kind and target: 0 closed, 1 half-open, 2 open"
        );
        metrics::describe_counter!(RATE_REJECTED, "Healing actions refused by the rate limiter");
        metrics::describe_counter!(OPEN_REJECTED, "Healing actions refused by an open breaker, by kind");
        metrics::counter!(RATE_REJECTED).absolute(0);
        let capacity = capacity(config.max_breakers);
        Self {
            limiter: SlidingWindow::new(config.rate_limit, config.rate_window()),
            breakers: LruCache::new(capacity),
            config,
            alerts,
        }
    }

    fn breaker(&mut self, kind: &'static str, target: &str) -> &mut CircuitBreaker {
        let circuit = self.config.circuit();
        self.breakers
            .get_or_insert_mut((kind, target.to_string()), || CircuitBreaker::new(circuit))
    }

    fn acquire(&mut self, Acquire { kind, target, retry }: Acquire, now: Instant) -> Result<(), Refusal> {
        let breaker = self.breaker(kind, &target);
        if let Err(wait) = breaker.allow(now) {
            metrics::counter!(OPEN_REJECTED, "kind" => kind).increment(1);
            return Err(Refusal::Open(wait));
        }
        let state = breaker.state(now);
        export(kind, &target, state);
        if retry {
            return Ok(());
        }
        self.limiter.try_acquire(now).map_err(|wait| {
            metrics::counter!(RATE_REJECTED).increment(1);
            Refusal::RateLimited(wait)
        })
    }

    fn report(&mut self, Report { kind, target, success }: Report, now: Instant) -> BreakerState {
        let breaker = self.breaker(kind, &target);
        let before = breaker.state(now);
        if success {
            breaker.on_success(now);
        } else {
            breaker.on_failure(now);
        }
        let after = breaker.state(now);
        export(kind, &target, after);
        if after != before {
            tracing::info!(kind, %target, from = before.label(), to = after.label(), "breaker changed state");
        }
        if after == BreakerState::Open && before != BreakerState::Open {
            self.alerts.emit(
                Alert::new(
                    "HEALER_BREAKER_OPEN",
                    Severity::Warning,
                    format!(
                        "{kind} on {target} failed {} times in a row; paused for {} s",
                        self.config.failures_to_open, self.config.open_secs
                    ),
                )
                .label("kind", kind)
                .label("target", target),
            );
        }
        after
    }

    fn view(&mut self, now: Instant) -> BreakersView {
        let breakers = self
            .breakers
            .iter()
            .map(|((kind, target), b)| BreakerView {
                kind: kind.to_string(),
                target: target.clone(),
                state: b.state(now),
                consecutive_failures: b.failures(),
            })
            .collect();
        BreakersView {
            breakers,
            rate_used: self.limiter.used(now),
            rate_limit: self.limiter.limit(),
            rate_window_secs: self.limiter.window().as_secs(),
        }
    }
}

/// Publishes the state of the breaker for `kind` and `target` in `x0tta_breaker_state`.
pub fn export(kind: &'static str, target: &str, state: BreakerState) {
    metrics::gauge!(STATE_GAUGE, "kind" => kind, "target" => target.to_string()).set(state.gauge());
}

impl Actor for BreakerActor {
    type Context = Context<Self>;
}

/// Breakers and the rate window live in the struct and survive a restart.
impl actix::Supervised for BreakerActor {}

crate::supervised_actor!(BreakerActor);

impl Handler<Acquire> for BreakerActor {
    type Result = Result<(), Refusal>;

    fn handle(&mut self, request: Acquire, _: &mut Context<Self>) -> Self::Result {
        self.acquire(request, Instant::now())
    }
}

impl Handler<Report> for BreakerActor {
    type Result = MessageResult<Report>;

    fn handle(&mut self, report: Report, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.report(report, Instant::now()))
    }
}

impl Handler<ListBreakers> for BreakerActor {
    type Result = MessageResult<ListBreakers>;

    fn handle(&mut self, _: ListBreakers, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.view(Instant::now()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use parking_lot::Mutex;

    use super::*;
    use crate::alert::AlertSink;

    #[derive(Default)]
    struct Recorded(Mutex<Vec<Alert>>);

    impl AlertSink for Recorded {
        fn emit(&self, alert: Alert) {
            self.0.lock().push(alert);
        }
    }

    fn actor(config: BreakerConfig) -> (BreakerActor, Arc<Recorded>) {
        let alerts = Arc::new(Recorded::default());
        (BreakerActor::new(config, alerts.clone()), alerts)
    }

    fn acquire(target: &str) -> Acquire {
        Acquire {
            kind: "redial",
            target: target.into(),
            retry: false,
        }
    }

    fn failure(target: &str) -> Report {
        Report {
            kind: "redial",
            target: target.into(),
            success: false,
        }
    }

    #[test]
    fn five_failures_open_one_target_only_and_alert_once() {
        let (mut a, alerts) = actor(BreakerConfig::default());
        let t = Instant::now();
        for _ in 0..5 {
            assert!(a.acquire(acquire("p1"), t).is_ok());
            a.report(failure("p1"), t);
        }
        assert!(matches!(a.acquire(acquire("p1"), t), Err(Refusal::Open(_))));
        assert!(a.acquire(acquire("p2"), t).is_ok(), "other targets are unaffected");
        a.report(failure("p1"), t);
        let raised = alerts.0.lock();
        assert_eq!(raised.len(), 1);
        assert_eq!(raised[0].name, "HEALER_BREAKER_OPEN");
        assert_eq!(raised[0].labels.get("target").map(String::as_str), Some("p1"));
    }

    #[test]
    fn the_rate_limit_spans_all_targets_and_open_refusals_cost_nothing() {
        let config = BreakerConfig {
            rate_limit: 3,
            failures_to_open: 1,
            ..BreakerConfig::default()
        };
        let (mut a, _) = actor(config);
        let t = Instant::now();
        assert!(a.acquire(acquire("p1"), t).is_ok());
        a.report(failure("p1"), t);
        for _ in 0..10 {
            assert!(matches!(a.acquire(acquire("p1"), t), Err(Refusal::Open(_))));
        }
        assert!(a.acquire(acquire("p2"), t).is_ok());
        assert!(a.acquire(acquire("p3"), t).is_ok());
        assert_eq!(
            a.acquire(acquire("p4"), t),
            Err(Refusal::RateLimited(Duration::from_secs(60)))
        );
        let view = a.view(t);
        assert_eq!((view.rate_used, view.rate_limit), (3, 3));
        assert_eq!(view.breakers.len(), 4);
        // Retries of an action already counted take no further slot, but
        // still ask the breaker.
        let retry = Acquire {
            retry: true,
            ..acquire("p2")
        };
        assert!(a.acquire(retry, t).is_ok());
        assert!(matches!(
            a.acquire(
                Acquire {
                    retry: true,
                    ..acquire("p1")
                },
                t
            ),
            Err(Refusal::Open(_))
        ));
        assert_eq!(a.view(t).rate_used, 3);
    }
}
