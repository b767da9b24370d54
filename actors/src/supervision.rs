//! Supervision as OTP does it, for actix actors.
//!
//! `actix::Supervisor` restarts an actor that *stops*, but a panic in a handler
//! unwinds through it and the actor is gone for good. [`Supervision::start`]
//! runs each actor inside a [`Guardian`] future that restarts it (same
//! address, same mailbox, [`actix::Supervised::restarting`] rebuilding its
//! state) when it
//!
//! - **panics** in a handler, a timer or a future it spawned (`reason="panic"`),
//! - **stops** (`reason="stopped"`), or
//! - is **stuck**: a [`Heartbeat`] sent every quarter of `stuck_after_ms` is not
//!   answered within `stuck_after_ms`, because the mailbox is not drained (a
//!   `ctx.wait` future that never ends, say; `reason="stuck"`).
//!
//! Each restart is counted in `x0tta_actor_restarts_total{actor,reason}`. More
//! than `max_restarts` restarts of one actor within `within_secs` is not
//! looped on: the guardian calls the node's escalation (a critical alert and a
//! clear log, then the process exits with [`ESCALATION_EXIT_CODE`] so its
//! service manager starts it afresh). A handler that blocks its thread cannot
//! be interrupted from the same thread; that is the escalation's job too (see
//! the README's supervision guarantees).

use std::any::Any;
use std::collections::VecDeque;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use actix::dev::ContextFut;
use actix::{Actor, Addr, AsyncContext, Context, Handler, Supervised};
use serde::{Deserialize, Serialize};

/// Name of the restart counter, labelled by `actor` and `reason`.
pub const ACTOR_RESTARTS_TOTAL: &str = "x0tta_actor_restarts_total";

/// Exit code of a node whose actor restarted too often (`EX_SOFTWARE`).
pub const ESCALATION_EXIT_CODE: i32 = 70;

/// Why a supervised actor was restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartReason {
    /// It panicked.
    Panic,
    /// It stopped itself (or was asked to restart).
    Stopped,
    /// Its mailbox was not drained for `stuck_after_ms`.
    Stuck,
}

impl RestartReason {
    /// Every reason, for exporting the counter at zero.
    pub const ALL: [RestartReason; 3] = [RestartReason::Panic, RestartReason::Stopped, RestartReason::Stuck];

    /// Label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            RestartReason::Panic => "panic",
            RestartReason::Stopped => "stopped",
            RestartReason::Stuck => "stuck",
        }
    }
}

/// Restart limits (config section `[supervision]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SupervisionConfig {
    /// Restarts of one actor allowed within `within_secs` before the node restarts.
    pub max_restarts: u32,
    /// Window of the restart limit, in seconds.
    pub within_secs: u64,
    /// An actor whose mailbox is not drained for this long (ms) is restarted.
    pub stuck_after_ms: u64,
}

impl Default for SupervisionConfig {
    fn default() -> Self {
        Self {
            max_restarts: 5,
            within_secs: 30,
            stuck_after_ms: 10_000,
        }
    }
}

/// What the node does when an actor exceeds its restart limit: given the
/// actor's name and the reason of the restart that was one too many.
pub type Escalation = Arc<dyn Fn(&'static str, RestartReason) + Send + Sync>;

/// Starts actors under [`Guardian`]s sharing one policy and escalation.
#[derive(Clone)]
pub struct Supervision {
    config: SupervisionConfig,
    escalate: Escalation,
}

impl Supervision {
    /// Supervision with `config`'s limits, calling `escalate` when one is exceeded.
    pub fn new(config: SupervisionConfig, escalate: Escalation) -> Self {
        Self { config, escalate }
    }

    /// Starts the actor made by `make` on the current arbiter under a
    /// [`Guardian`], and returns its address (which survives restarts).
    pub fn start<A, F>(&self, name: &'static str, make: F) -> Addr<A>
    where
        A: Supervised + Actor<Context = Context<A>> + Handler<Heartbeat>,
        F: FnOnce(&mut Context<A>) -> A,
    {
        describe_actor(name);
        let mut ctx = Context::new();
        let actor = make(&mut ctx);
        let addr = ctx.address();
        let stuck_after = Duration::from_millis(self.config.stuck_after_ms.max(40));
        let mut check = tokio::time::interval(stuck_after / 4);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        actix::spawn(Guardian {
            fut: ctx.into_future(actor),
            name,
            supervision: self.clone(),
            restarts: VecDeque::new(),
            check,
            stuck_after,
            heartbeat: None,
        });
        addr
    }
}

/// Answered by every supervised actor as soon as its mailbox reaches it.
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct Heartbeat;

/// Test-only fault hook (the API refuses it unless `router.fault_injection`).
#[derive(actix::Message, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[rtype(result = "()")]
#[serde(rename_all = "snake_case")]
pub enum InjectFault {
    /// The actor stops itself.
    Stop,
    /// The handler panics.
    Panic,
    /// The actor waits on a future that never ends, so its mailbox is not drained.
    Stall,
}

/// A test hook is off in this node's configuration.
#[derive(Debug, thiserror::Error)]
#[error("fault injection is disabled (set router.fault_injection = true)")]
pub struct FaultRefused;

/// Implements [`Heartbeat`] and [`InjectFault`] for a supervised actor.
#[macro_export]
macro_rules! supervised_actor {
    ($actor:ty) => {
        impl actix::Handler<$crate::supervision::Heartbeat> for $actor {
            type Result = ();

            fn handle(&mut self, _: $crate::supervision::Heartbeat, _: &mut actix::Context<Self>) {}
        }

        impl actix::Handler<$crate::supervision::InjectFault> for $actor {
            type Result = ();

            fn handle(&mut self, fault: $crate::supervision::InjectFault, ctx: &mut actix::Context<Self>) {
                $crate::supervision::inject(fault, ctx);
            }
        }
    };
}

/// Carries out an injected fault inside the actor's handler.
pub fn inject<A: Actor<Context = Context<A>>>(fault: InjectFault, ctx: &mut Context<A>) {
    use actix::{ActorContext, AsyncContext};
    tracing::error!(?fault, actor = std::any::type_name::<A>(), "fault injected");
    match fault {
        InjectFault::Stop => ctx.stop(),
        InjectFault::Panic => panic!("injected panic in {} (test hook)", std::any::type_name::<A>()),
        InjectFault::Stall => ctx.wait(actix::fut::wrap_future(std::future::pending::<()>())),
    }
}

/// The answer to a heartbeat, whatever it is (an error means the actor went away).
type Answer = Pin<Box<dyn Future<Output = ()>>>;

/// Runs one actor and restarts it when it panics, stops or is stuck.
pub struct Guardian<A>
where
    A: Supervised + Actor<Context = Context<A>> + Handler<Heartbeat>,
{
    fut: ContextFut<A, Context<A>>,
    name: &'static str,
    supervision: Supervision,
    /// Recent restarts, oldest first, within the window.
    restarts: VecDeque<Instant>,
    check: tokio::time::Interval,
    stuck_after: Duration,
    /// The heartbeat awaiting its answer, with when it was sent.
    heartbeat: Option<(Instant, Answer)>,
}

impl<A> Guardian<A>
where
    A: Supervised + Actor<Context = Context<A>> + Handler<Heartbeat>,
{
    /// Polls the heartbeat; sends one per check tick; says whether the
    /// actor is stuck.
    fn stuck(&mut self, cx: &mut TaskContext<'_>) -> bool {
        if let Some((_, answer)) = &mut self.heartbeat {
            if answer.as_mut().poll(cx).is_ready() {
                self.heartbeat = None;
            }
        }
        while self.check.poll_tick(cx).is_ready() {
            match &mut self.heartbeat {
                Some((sent, _)) if sent.elapsed() >= self.stuck_after => return true,
                Some(_) => {}
                None => {
                    let request = self.fut.address().send(Heartbeat);
                    let mut answer: Answer = Box::pin(async move {
                        let _ = request.await;
                    });
                    if answer.as_mut().poll(cx).is_pending() {
                        self.heartbeat = Some((Instant::now(), answer));
                    }
                }
            }
        }
        false
    }

    /// Counts a restart; false when the limit is exceeded.
    fn within_limit(&mut self, now: Instant) -> bool {
        let window = Duration::from_secs(self.supervision.config.within_secs);
        while self.restarts.front().is_some_and(|t| now.duration_since(*t) > window) {
            self.restarts.pop_front();
        }
        self.restarts.push_back(now);
        self.restarts.len() <= self.supervision.config.max_restarts as usize
    }
}

impl<A> Future for Guardian<A>
where
    A: Supervised + Actor<Context = Context<A>> + Handler<Heartbeat>,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            let polled = catch_unwind(AssertUnwindSafe(|| Pin::new(&mut this.fut).poll(cx)));
            let reason = match polled {
                Ok(Poll::Ready(())) => RestartReason::Stopped,
                Err(panic) => {
                    tracing::error!(
                        actor = this.name,
                        panic = panic_message(&*panic),
                        "supervised actor panicked"
                    );
                    RestartReason::Panic
                }
                Ok(Poll::Pending) if this.stuck(cx) => {
                    tracing::error!(
                        actor = this.name,
                        stuck_ms = this.stuck_after.as_millis() as u64,
                        "supervised actor stuck: its mailbox was not drained"
                    );
                    RestartReason::Stuck
                }
                Ok(Poll::Pending) => return Poll::Pending,
            };
            if !this.within_limit(Instant::now()) {
                let config = &this.supervision.config;
                tracing::error!(
                    actor = this.name,
                    reason = reason.label(),
                    max_restarts = config.max_restarts,
                    within_secs = config.within_secs,
                    "supervised actor restarted too often: escalating to a node restart"
                );
                (this.supervision.escalate)(this.name, reason);
                return Poll::Ready(());
            }
            let restarted = catch_unwind(AssertUnwindSafe(|| this.fut.restart()));
            match restarted {
                // Every address is gone: nobody can send it anything again.
                Ok(false) => return Poll::Ready(()),
                Ok(true) => {}
                Err(panic) => {
                    tracing::error!(
                        actor = this.name,
                        panic = panic_message(&*panic),
                        "restart hook panicked: escalating"
                    );
                    (this.supervision.escalate)(this.name, RestartReason::Panic);
                    return Poll::Ready(());
                }
            }
            this.heartbeat = None;
            record_restart(this.name, reason);
        }
    }
}

/// The text of a panic payload.
fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(not a string)")
}

/// Registers the restart counter's help text and makes it visible at zero for `actor`.
pub fn describe_actor(actor: &'static str) {
    metrics::describe_counter!(
        ACTOR_RESTARTS_TOTAL,
        "Restarts of supervised actors, by actor and reason (panic, stopped, stuck)"
    );
    for reason in RestartReason::ALL {
        metrics::counter!(ACTOR_RESTARTS_TOTAL, "actor" => actor, "reason" => reason.label()).absolute(0);
    }
}

/// Restarts of all actors since the process started (the healer watches it).
static RESTARTS: AtomicU64 = AtomicU64::new(0);

/// Restarts of all actors since the process started.
pub fn restarts_total() -> u64 {
    RESTARTS.load(Ordering::Relaxed)
}

/// Counts one restart of `actor` and logs why.
pub fn record_restart(actor: &'static str, reason: RestartReason) {
    RESTARTS.fetch_add(1, Ordering::Relaxed);
    metrics::counter!(ACTOR_RESTARTS_TOTAL, "actor" => actor, "reason" => reason.label()).increment(1);
    tracing::warn!(actor, reason = reason.label(), "supervised actor restarting");
}

/// Asks a supervised actor to restart (the healer's `restart_actor` action).
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct Restart {
    /// Why, for the restart log.
    pub reason: String,
}

#[cfg(test)]
#[path = "supervision_tests.rs"]
mod tests;
