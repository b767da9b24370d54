//! Restart accounting shared by every supervised actor.
//!
//! Actors run under [`actix::Supervisor`]: when an actor stops because of a fatal
//! error, the supervisor calls [`actix::Supervised::restarting`] and starts it again
//! with the same address. Each actor calls [`record_restart`] from that hook so
//! operators see `x0tta_actor_restarts_total{actor}` rise and a log line with the
//! reason.

/// Name of the restart counter, labelled by `actor`.
pub const ACTOR_RESTARTS_TOTAL: &str = "x0tta_actor_restarts_total";

/// Registers the restart counter's help text and makes it visible at zero for `actor`.
pub fn describe_actor(actor: &'static str) {
    metrics::describe_counter!(
        ACTOR_RESTARTS_TOTAL,
        "Restarts of supervised actors after a fatal error, by actor"
    );
    metrics::counter!(ACTOR_RESTARTS_TOTAL, "actor" => actor).absolute(0);
}

/// Restarts of all actors since the process started (the healer watches it).
static RESTARTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Restarts of all actors since the process started.
pub fn restarts_total() -> u64 {
    RESTARTS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Counts one restart of `actor` and logs why it stopped.
pub fn record_restart(actor: &'static str, reason: &str) {
    RESTARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    metrics::counter!(ACTOR_RESTARTS_TOTAL, "actor" => actor).increment(1);
    tracing::warn!(actor, reason, "supervised actor restarting");
}

/// Test-only fault hook: makes an actor fail as if it hit a fatal error.
#[derive(actix::Message)]
#[rtype(result = "Result<(), FaultRefused>")]
pub struct InjectFault;

/// Fault injection is off in this node's configuration.
#[derive(Debug, thiserror::Error)]
#[error("fault injection is disabled (set router.fault_injection = true)")]
pub struct FaultRefused;

/// Asks a supervised actor to restart (the healer's `restart_actor` action).
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct Restart {
    /// Why, for the restart log and counter.
    pub reason: String,
}
