//! The alerter: every alert of every subsystem goes through [`Alerter`]
//! (an [`AlertSink`]), is written to the durable [`outbox`] first, and is
//! delivered by [`AlerterActor`] to each configured sink (Alertmanager,
//! Telegram, PagerDuty).
//!
//! Per sink the actor runs one delivery at a time, through a circuit breaker
//! (consecutive failures pause the sink), a rate limit (deliveries per
//! minute) and retries with exponential backoff and full jitter; a 429 waits
//! exactly as long as the service asked. A notification leaves the outbox for
//! a sink only when that sink accepted it, so a crash or a restart loses
//! nothing (a crash between acceptance and removal sends it once more;
//! Alertmanager and PagerDuty merge that by fingerprint and dedup key).

pub mod config;
pub mod metrics;
pub mod outbox;
pub mod sinks;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, ActorFutureExt, AsyncContext, Context, WrapFuture};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::Serialize;

pub use config::AlerterConfig;
use outbox::{Entry, Outbox, OutboxError, Recorded};
use sinks::{DeliveryError, NodeContext, Sink, SinkKind};

use crate::alert::{self, Alert, AlertSink, Severity};
use crate::breaker::backoff::full_jitter;
use crate::breaker::circuit::BreakerState;
use crate::breaker::{self, CircuitBreaker};
use crate::errors::{report, Reported};
use crate::mesh::unix_ms;
use crate::store::Store;

/// Breaker kind of alert sinks in `x0tta_breaker_state`.
const BREAKER_KIND: &str = "alert_sink";

/// How often the backlog gauge is refreshed.
const BACKLOG_EVERY: Duration = Duration::from_secs(1);

/// Longest pause a 429 may impose: a bogus `Retry-After` must not silence a
/// sink for years.
const MAX_THROTTLE_WAIT: Duration = Duration::from_secs(3_600);

/// How often firing alerts are checked against `firing_ttl_secs`.
const EXPIRE_EVERY: Duration = Duration::from_secs(10);

/// Takes alerts from every subsystem and stores them for delivery.
pub struct Alerter {
    outbox: Outbox,
    sinks: Vec<SinkKind>,
    repeat_after_ms: u64,
    /// Bumped on every stored notification, so idle sinks look again.
    generation: AtomicU64,
}

/// The alerter as `GET /api/v1/alerts` shows it.
#[derive(Debug, Serialize)]
pub struct AlertsView {
    /// Configured sinks.
    pub sinks: Vec<SinkKind>,
    /// Notifications not yet accepted by every sink, oldest first, with each
    /// sink's attempts and last error (refused ones stay, `failed: true`).
    pub outbox: Vec<Entry>,
    /// Alerts firing now.
    pub firing: Vec<Alert>,
}

impl Alerter {
    /// The alerter over `store`, delivering to `sinks`.
    pub fn open(store: &Store, config: &AlerterConfig, sinks: Vec<SinkKind>) -> Result<Self, OutboxError> {
        metrics::describe();
        let outbox = Outbox::open(store, config.max_outbox, config.max_firing)?;
        let forgotten = outbox.retain_sinks(&sinks)?;
        if forgotten > 0 {
            tracing::warn!(forgotten, "alert notifications for sinks no longer configured dropped");
            metrics::dropped("unconfigured", forgotten);
        }
        Ok(Self {
            outbox,
            sinks,
            repeat_after_ms: config.repeat_after_secs.saturating_mul(1_000),
            generation: AtomicU64::new(0),
        })
    }

    /// Stores `alert` for every sink; says what became of it.
    pub fn record(&self, alert: Alert) -> Result<Recorded, OutboxError> {
        let recorded = self
            .outbox
            .record(alert.clone(), &self.sinks, unix_ms(), self.repeat_after_ms)?;
        match recorded {
            Recorded::Duplicate => ::metrics::counter!(metrics::DEDUPLICATED).increment(1),
            Recorded::Queued(_) => {
                self.generation.fetch_add(1, Ordering::Relaxed);
                alert::log(&alert);
            }
            Recorded::NoSinks | Recorded::NotFiring => alert::log(&alert),
        }
        Ok(recorded)
    }

    /// The outbox and the firing alerts.
    pub fn view(&self) -> Result<AlertsView, OutboxError> {
        Ok(AlertsView {
            sinks: self.sinks.clone(),
            outbox: self.outbox.entries()?,
            firing: self.outbox.firing()?,
        })
    }
}

impl AlertSink for Alerter {
    fn emit(&self, alert: Alert) {
        let name = alert.name.clone();
        if let Err(error) = self.record(alert) {
            report(
                "alerter",
                "outbox_write",
                Severity::Critical,
                &format!("alert {name} not stored: {error}"),
            );
        }
    }
}

/// Builds the configured sinks for `node`.
pub fn configured_sinks(config: &AlerterConfig, node: &NodeContext) -> Result<Vec<Sink>, reqwest::Error> {
    let client = sinks::client(config.timeout())?;
    let mut out = Vec::new();
    if let Some(url) = &config.alertmanager_url {
        let valid_for = Duration::from_secs(config.alertmanager_refresh_secs.max(1).saturating_mul(4));
        out.push(Sink::Alertmanager(sinks::alertmanager::Alertmanager::new(
            client.clone(),
            url,
            node.clone(),
            valid_for,
        )));
    }
    if let (Some(token), Some(chat)) = (&config.telegram_bot_token, &config.telegram_chat_id) {
        out.push(Sink::Telegram(sinks::telegram::Telegram::new(
            client.clone(),
            &config.telegram_api_url,
            token,
            chat,
            node.clone(),
        )));
    }
    if let Some(key) = &config.pagerduty_routing_key {
        out.push(Sink::Pagerduty(sinks::pagerduty::PagerDuty::new(
            client,
            &config.pagerduty_url,
            key,
            node.clone(),
        )));
    }
    Ok(out)
}

/// One sink's delivery state.
struct Lane {
    sink: Sink,
    breaker: CircuitBreaker,
    limiter: DefaultDirectRateLimiter,
    busy: bool,
    /// After a 429: nothing before this.
    paused_until: Option<Instant>,
    /// Nothing is due before this Unix millisecond, unless a new
    /// notification arrived (generation changed).
    idle_until_ms: u64,
    seen_generation: u64,
}

/// What becomes of the entries of a finished delivery.
#[derive(Debug, Clone, Copy)]
enum Next {
    /// Accepted: leaves the sink's list.
    Delivered,
    /// Refused for good: kept, never retried.
    Never,
    /// Try again after this wait (the service said so).
    After(Duration),
    /// Try again after a backoff for each entry's attempts.
    Backoff,
}

/// A delivery attempt in flight: entry ids and their attempts so far.
type Batch = Vec<(u64, u32)>;

/// Delivers the outbox, one lane per sink.
pub struct AlerterActor {
    alerter: Arc<Alerter>,
    lanes: Vec<Lane>,
    config: AlerterConfig,
    last_backlog: Option<Instant>,
}

impl AlerterActor {
    /// Delivers `alerter`'s outbox to `sinks`.
    pub fn new(alerter: Arc<Alerter>, sinks: Vec<Sink>, config: AlerterConfig) -> Self {
        let per_minute = std::num::NonZeroU32::new(config.per_minute.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
        let lanes = sinks
            .into_iter()
            .map(|sink| Lane {
                sink,
                breaker: CircuitBreaker::new(config.circuit()),
                limiter: RateLimiter::direct(Quota::per_minute(per_minute)),
                busy: false,
                paused_until: None,
                idle_until_ms: 0,
                seen_generation: u64::MAX,
            })
            .collect();
        Self {
            alerter,
            lanes,
            config,
            last_backlog: None,
        }
    }

    /// Starts what is due on every idle lane.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        let (now, now_ms) = (Instant::now(), unix_ms());
        let generation = self.alerter.generation.load(Ordering::Relaxed);
        for index in 0..self.lanes.len() {
            let lane = &mut self.lanes[index];
            let fresh = lane.seen_generation != generation;
            if lane.busy || lane.paused_until.is_some_and(|t| now < t) || (!fresh && now_ms < lane.idle_until_ms) {
                continue;
            }
            let kind = lane.sink.kind();
            let Some(due) = self.alerter.outbox.due(kind, now_ms, lane.sink.batch()).or_report(
                "alerter",
                "outbox_read",
                Severity::Critical,
            ) else {
                continue;
            };
            lane.seen_generation = generation;
            if due.entries.is_empty() {
                lane.idle_until_ms = due.next_ms.unwrap_or(u64::MAX);
                continue;
            }
            if lane.breaker.allow(now).is_err() || lane.limiter.check().is_err() {
                // Held back, not idle: look again on the next tick.
                lane.idle_until_ms = 0;
                continue;
            }
            breaker::export(BREAKER_KIND, kind.label(), lane.breaker.state(now));
            lane.busy = true;
            let batch: Batch = due
                .entries
                .iter()
                .map(|e| (e.id, e.sinks.get(&kind).map_or(0, |p| p.attempts)))
                .collect();
            let alerts: Vec<Alert> = due.entries.into_iter().map(|e| e.alert).collect();
            let sink = lane.sink.clone();
            let delivery = async move { sink.deliver(&alerts).await };
            ctx.spawn(delivery.into_actor(self).map(move |result, actor, ctx| {
                actor.finish(index, batch, result);
                actor.pump(ctx);
            }));
        }
        if self.last_backlog.is_none_or(|t| now.duration_since(t) >= BACKLOG_EVERY) {
            self.last_backlog = Some(now);
            self.export_backlog();
        }
    }

    /// Records the outcome of a delivery on lane `index`.
    fn finish(&mut self, index: usize, batch: Batch, result: Result<(), DeliveryError>) {
        let (now, now_ms) = (Instant::now(), unix_ms());
        let (base, cap) = self.config.retry_delays();
        let outbox = &self.alerter.outbox;
        let Some(lane) = self.lanes.get_mut(index) else { return };
        lane.busy = false;
        lane.idle_until_ms = 0;
        let kind = lane.sink.kind();
        let (label, next) = match &result {
            Ok(()) => {
                lane.breaker.on_success(now);
                ("delivered", Next::Delivered)
            }
            Err(DeliveryError::Throttled { retry_after, .. }) => {
                let attempts = batch.iter().map(|b| b.1).max().unwrap_or(0);
                let wait = retry_after
                    .unwrap_or_else(|| full_jitter(attempts, base, cap, &mut rand::thread_rng()))
                    .min(MAX_THROTTLE_WAIT);
                lane.paused_until = now.checked_add(wait);
                ("throttled", Next::After(wait))
            }
            Err(DeliveryError::Transient(_)) => {
                lane.breaker.on_failure(now);
                ("retry", Next::Backoff)
            }
            Err(DeliveryError::Permanent(_)) => {
                // The service answered: it is up, the request was at fault.
                lane.breaker.on_success(now);
                ("refused", Next::Never)
            }
        };
        let error = result.as_ref().err().map(ToString::to_string).unwrap_or_default();
        let at = |wait: Duration| now_ms.saturating_add(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX / 2));
        for (id, attempts) in &batch {
            let written = match next {
                Next::Delivered => outbox.delivered(*id, kind),
                Next::Never => outbox.failed(*id, kind, &error, None),
                Next::After(wait) => outbox.failed(*id, kind, &error, Some(at(wait))),
                Next::Backoff => {
                    let wait = full_jitter(*attempts, base, cap, &mut rand::thread_rng());
                    outbox.failed(*id, kind, &error, Some(at(wait)))
                }
            };
            written.or_report("alerter", "outbox_write", Severity::Critical);
        }
        if matches!(next, Next::Delivered | Next::Never) {
            // Retry times may be lost to a crash (an earlier retry follows);
            // an accepted or refused notification must not be sent again.
            outbox.flush().or_report("alerter", "outbox_write", Severity::Critical);
        }
        metrics::notified(kind, label, batch.len());
        if let Err(problem) = &result {
            let severity = match problem {
                DeliveryError::Throttled { .. } => Severity::Info,
                _ => Severity::Warning,
            };
            report("alerter", "delivery", severity, &format!("{}: {problem}", kind.label()));
        }
        breaker::export(BREAKER_KIND, kind.label(), lane.breaker.state(now));
    }

    /// Posts every firing alert to Alertmanager again, so none expires there
    /// while it still fires. The refresh takes the Alertmanager lane like a
    /// delivery (never beside one, so a stale firing post cannot land after
    /// the resolve; not while the sink is paused or its breaker is open). A
    /// failed refresh waits for the next one.
    fn refresh(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let Some(index) = self.lanes.iter().position(|l| l.sink.kind() == SinkKind::Alertmanager) else {
            return;
        };
        let lane = &mut self.lanes[index];
        let paused = lane.paused_until.is_some_and(|t| now < t);
        if lane.busy || paused || lane.breaker.state(now) != BreakerState::Closed {
            return;
        }
        let Sink::Alertmanager(alertmanager) = lane.sink.clone() else {
            return;
        };
        let Some(firing) = self
            .alerter
            .outbox
            .firing()
            .or_report("alerter", "outbox_read", Severity::Critical)
        else {
            return;
        };
        if firing.is_empty() {
            return;
        }
        lane.busy = true;
        let refresh = async move {
            for chunk in firing.chunks(sinks::alertmanager::BATCH) {
                alertmanager.post(chunk).await?;
            }
            Ok::<(), DeliveryError>(())
        };
        ctx.spawn(refresh.into_actor(self).map(move |result, actor, ctx| {
            if let Some(lane) = actor.lanes.get_mut(index) {
                lane.busy = false;
            }
            let label = if result.is_ok() { "ok" } else { "failed" };
            ::metrics::counter!(metrics::REFRESHES, "result" => label).increment(1);
            if let Err(error) = result {
                report("alerter", "refresh_failed", Severity::Info, &error);
            }
            actor.pump(ctx);
        }));
    }

    /// Resolves firing alerts nothing raised again for `firing_ttl_secs`.
    fn expire(&mut self, _: &mut Context<Self>) {
        let ttl_ms = self.config.firing_ttl_secs.saturating_mul(1_000);
        if ttl_ms == 0 {
            return;
        }
        let Some(stale) =
            self.alerter
                .outbox
                .stale(unix_ms(), ttl_ms)
                .or_report("alerter", "outbox_read", Severity::Critical)
        else {
            return;
        };
        for alert in stale {
            tracing::info!(alert = %alert.name, ttl_secs = self.config.firing_ttl_secs, "firing alert not raised again: resolved");
            ::metrics::counter!(metrics::EXPIRED).increment(1);
            self.alerter.emit(alert.resolved());
        }
    }

    fn export_backlog(&self) {
        let Some(entries) = self
            .alerter
            .outbox
            .entries()
            .or_report("alerter", "outbox_read", Severity::Critical)
        else {
            return;
        };
        for lane in &self.lanes {
            let kind = lane.sink.kind();
            metrics::backlog(kind, entries.iter().filter(|e| e.sinks.contains_key(&kind)).count());
        }
    }
}

impl Actor for AlerterActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(Duration::from_millis(self.config.tick_ms.max(1)), Self::pump);
        let refresh = Duration::from_secs(self.config.alertmanager_refresh_secs.max(1));
        ctx.run_interval(refresh, Self::refresh);
        ctx.run_interval(EXPIRE_EVERY, Self::expire);
        for lane in &self.lanes {
            tracing::info!(sink = lane.sink.kind().label(), "alert sink on");
        }
    }
}

impl actix::Supervised for AlerterActor {
    fn restarting(&mut self, _: &mut Self::Context) {
        for lane in &mut self.lanes {
            lane.busy = false;
        }
    }
}

crate::supervised_actor!(AlerterActor);
