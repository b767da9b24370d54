//! `SvidActor`, the SVID renewer: holds the node's current X.509-SVID and
//! renews it when `renew_at` of its lifetime is left (±10 % jitter); each
//! attempt goes through the circuit breaker (kind `svid_renewal`) when one is
//! given, and a failed or refused renewal is retried with full-jitter
//! backoff; within the last tenth of the lifetime without a renewal it raises
//! `SVID_NEAR_EXPIRY`; an expired SVID is never presented as current (`/ready` says so). With a Workload API the
//! actor renews nothing itself: SVIDs arrive as [`Pushed`] messages.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix::{
    Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, SpawnHandle, Supervised, WrapFuture,
};
use arc_swap::ArcSwapOption;

use super::ca::IssuedSvid;
use super::local_ca::SvidSource;
use super::renewal::{near_expiry, renew_after};
use super::spiffe_id::SpiffeId;
use crate::alert::{Alert, Severity, SharedAlertSink};
use crate::breaker::{Acquire, BreakerActor, Report};

const RENEWALS_TOTAL: &str = "x0tta_svid_renewals_total";
const EXPIRY_SECONDS: &str = "x0tta_svid_expiry_seconds";
/// How often the expiry gauge and the near-expiry check run.
const WATCH_EVERY: Duration = Duration::from_secs(1);
/// First retry delay after a failed renewal (doubling, full jitter).
const RETRY_BASE: Duration = Duration::from_millis(500);
/// The breaker kind of renewals.
const BREAKER_KIND: &str = "svid_renewal";

/// The SVID in use and when it was received.
#[derive(Debug, Clone)]
pub struct HeldSvid {
    /// The SVID and its key.
    pub svid: IssuedSvid,
    /// When this node received it.
    pub received: SystemTime,
}

impl HeldSvid {
    /// Its whole lifetime as seen from here.
    pub fn lifetime(&self) -> Duration {
        self.svid.not_after.duration_since(self.received).unwrap_or_default()
    }
}

/// What the rest of the node reads: the current SVID and the renewal counts.
#[derive(Default)]
pub struct SvidHandle {
    current: ArcSwapOption<HeldSvid>,
    renewals: AtomicU64,
    failures: AtomicU64,
}

impl SvidHandle {
    /// The current SVID, unless there is none or it has expired.
    pub fn current(&self, now: SystemTime) -> Option<Arc<HeldSvid>> {
        self.current.load_full().filter(|held| held.svid.not_after > now)
    }

    /// The last SVID received, expired or not.
    pub fn last(&self) -> Option<Arc<HeldSvid>> {
        self.current.load_full()
    }

    /// SVIDs received, and renewals that failed.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.renewals.load(Ordering::Relaxed),
            self.failures.load(Ordering::Relaxed),
        )
    }
}

/// A new SVID pushed by the Workload API.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Pushed(pub IssuedSvid);

/// The SVID renewer.
pub struct SvidActor {
    /// Where renewals come from; `None` when SVIDs are pushed.
    source: Option<Box<dyn SvidSource>>,
    id: SpiffeId,
    handle: Arc<SvidHandle>,
    renew_at: f64,
    alerts: SharedAlertSink,
    /// Failed attempts since the last success.
    attempt: u32,
    near_expiry_alerted: bool,
    renewal: Option<SpawnHandle>,
    breaker: Option<Addr<BreakerActor>>,
}

impl SvidActor {
    /// A renewer of `id`'s SVID from `source` (`None`: SVIDs are pushed
    /// as [`Pushed`]), published through `handle`.
    pub fn new(
        source: Option<Box<dyn SvidSource>>,
        id: SpiffeId,
        handle: Arc<SvidHandle>,
        renew_at: f64,
        alerts: SharedAlertSink,
    ) -> Self {
        metrics::describe_counter!(RENEWALS_TOTAL, "SVID renewals by result (ok, failed)");
        metrics::describe_gauge!(
            EXPIRY_SECONDS,
            "Seconds until the current SVID expires (negative: expired)"
        );
        Self {
            source,
            id,
            handle,
            renew_at,
            alerts,
            attempt: 0,
            near_expiry_alerted: false,
            renewal: None,
            breaker: None,
        }
    }

    /// Sends every renewal attempt through `breaker`: a source that keeps
    /// failing is left alone while its breaker is open.
    pub fn with_breaker(mut self, breaker: Addr<BreakerActor>) -> Self {
        self.breaker = Some(breaker);
        self
    }

    /// Makes `svid` the current SVID; returns its lifetime.
    fn install(&mut self, svid: IssuedSvid) -> Duration {
        metrics::counter!(RENEWALS_TOTAL, "result" => "ok").increment(1);
        let held = HeldSvid {
            svid,
            received: SystemTime::now(),
        };
        let lifetime = held.lifetime();
        tracing::info!(id = %held.svid.id, serial = %held.svid.serial, ?lifetime, "SVID received");
        self.handle.current.store(Some(Arc::new(held)));
        self.handle.renewals.fetch_add(1, Ordering::Relaxed);
        self.attempt = 0;
        if self.near_expiry_alerted {
            self.near_expiry_alerted = false;
            self.alerts.emit(self.near_expiry_alert().resolved());
        }
        lifetime
    }

    /// Renews now, asking the breaker first when there is one.
    fn renew(&mut self, ctx: &mut Context<Self>) {
        if self.source.is_none() {
            return;
        }
        let Some(breaker) = &self.breaker else {
            self.attempt_renewal(ctx);
            return;
        };
        // A renewal is not a healing action: it asks the breaker only, and
        // spends none of the healer's rate limit.
        let permit = breaker.send(Acquire {
            kind: BREAKER_KIND,
            target: self.id.to_string(),
            retry: true,
        });
        ctx.spawn(permit.into_actor(self).map(|permit, actor, ctx| match permit {
            Ok(Err(refusal)) => {
                let delay = actor.retry_delay();
                tracing::warn!(id = %actor.id, %refusal, ?delay, "SVID renewal held back by the breaker");
                actor.schedule(ctx, delay);
            }
            // Allowed, or the breaker is restarting: an identity must not
            // wait on it.
            Ok(Ok(())) | Err(_) => actor.attempt_renewal(ctx),
        }));
    }

    /// Fetches a new SVID, reports the outcome to the breaker and schedules
    /// the next renewal or retry.
    fn attempt_renewal(&mut self, ctx: &mut Context<Self>) {
        let Some(source) = &mut self.source else {
            return;
        };
        let fetched = source.fetch(&self.id);
        if let Some(breaker) = &self.breaker {
            breaker.do_send(Report {
                kind: BREAKER_KIND,
                target: self.id.to_string(),
                success: fetched.is_ok(),
            });
        }
        let delay = match fetched {
            Ok(svid) => {
                let lifetime = self.install(svid);
                renew_after(lifetime, self.renew_at, &mut rand::thread_rng())
            }
            Err(error) => {
                metrics::counter!(RENEWALS_TOTAL, "result" => "failed").increment(1);
                self.handle.failures.fetch_add(1, Ordering::Relaxed);
                let delay = self.retry_delay();
                tracing::warn!(id = %self.id, %error, ?delay, "SVID renewal failed; retrying");
                delay
            }
        };
        self.schedule(ctx, delay);
    }

    /// The next retry's delay (full jitter, doubling up to a tenth of the
    /// lifetime); counts the attempt.
    fn retry_delay(&mut self) -> Duration {
        let cap = self
            .handle
            .last()
            .map_or(Duration::from_secs(30), |held| (held.lifetime() / 10).max(RETRY_BASE));
        let delay = crate::breaker::backoff::full_jitter(self.attempt, RETRY_BASE, cap, &mut rand::thread_rng());
        self.attempt = self.attempt.saturating_add(1);
        delay
    }

    fn schedule(&mut self, ctx: &mut Context<Self>, delay: Duration) {
        if let Some(old) = self.renewal.replace(ctx.run_later(delay, Self::renew)) {
            ctx.cancel_future(old);
        }
    }

    fn watch(&mut self, _: &mut Context<Self>) {
        let Some(held) = self.handle.last() else {
            return;
        };
        let now = SystemTime::now();
        let left = held.svid.not_after.duration_since(now);
        let seconds = left
            .as_ref()
            .map_or_else(|e| -e.duration().as_secs_f64(), Duration::as_secs_f64);
        metrics::gauge!(EXPIRY_SECONDS).set(seconds);
        if !self.near_expiry_alerted && near_expiry(left.unwrap_or_default(), held.lifetime()) {
            self.near_expiry_alerted = true;
            tracing::error!(id = %self.id, seconds, "the SVID is about to expire and was not renewed");
            self.alerts.emit(self.near_expiry_alert());
        }
    }

    fn near_expiry_alert(&self) -> Alert {
        Alert::new(
            "SVID_NEAR_EXPIRY",
            Severity::Critical,
            format!(
                "{} expires within a tenth of its lifetime and could not be renewed",
                self.id
            ),
        )
        .label("spiffe_id", self.id.to_string())
    }
}

impl Actor for SvidActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.renew(ctx);
        ctx.run_interval(WATCH_EVERY, Self::watch);
    }
}

impl Handler<Pushed> for SvidActor {
    type Result = ();

    fn handle(&mut self, Pushed(svid): Pushed, _: &mut Context<Self>) {
        if svid.id != self.id {
            tracing::warn!(pushed = %svid.id, expected = %self.id, "the Workload API gave an SVID for another SPIFFE ID; peers requiring this node's ID will refuse it");
        }
        self.install(svid);
    }
}

impl Supervised for SvidActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        // The spawned timers are gone with the old context; `started` renews
        // at once, which a restart after a failure wants anyway.
        self.renewal = None;
    }
}

crate::supervised_actor!(SvidActor);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::svid::ca::TrustDomainCa;
    use crate::svid::local_ca::LocalCa;

    /// Fails its first `failures` fetches, then issues from a CA.
    struct Flaky {
        failures: u32,
        inner: LocalCa,
        calls: Arc<AtomicU64>,
    }

    impl SvidSource for Flaky {
        fn fetch(&mut self, id: &SpiffeId) -> Result<IssuedSvid, String> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            if self.failures > 0 {
                self.failures -= 1;
                return Err("the CA is away".into());
            }
            self.inner.fetch(id)
        }
    }

    struct Collect(parking_lot::Mutex<Vec<Alert>>);

    impl crate::alert::AlertSink for Collect {
        fn emit(&self, alert: Alert) {
            self.0.lock().push(alert);
        }
    }

    async fn until(what: &str, check: impl Fn() -> bool) {
        for _ in 0..600 {
            if check() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("timed out waiting for {what}");
    }

    fn source(failures: u32, ttl: Duration) -> Box<dyn SvidSource> {
        counted_source(failures, ttl, Arc::default())
    }

    fn counted_source(failures: u32, ttl: Duration, calls: Arc<AtomicU64>) -> Box<dyn SvidSource> {
        Box::new(Flaky {
            failures,
            inner: LocalCa {
                ca: TrustDomainCa::generate("mesh.test", Duration::from_secs(3600)).expect("CA"),
                ttl,
            },
            calls,
        })
    }

    #[actix_rt::test]
    async fn an_open_breaker_holds_renewals_back() {
        let alerts = Arc::new(Collect(Default::default()));
        let config = crate::breaker::BreakerConfig {
            failures_to_open: 2,
            open_secs: 3_600,
            ..Default::default()
        };
        let breaker = BreakerActor::new(config, alerts.clone()).start();
        let (handle, calls) = (Arc::new(SvidHandle::default()), Arc::new(AtomicU64::new(0)));
        let id = SpiffeId::for_node("mesh.test", "p").expect("id");
        let source = counted_source(u32::MAX, Duration::from_secs(3600), calls.clone());
        let _actor = SvidActor::new(Some(source), id, handle, 0.5, alerts)
            .with_breaker(breaker.clone())
            .start();
        until("two failed renewals", || calls.load(Ordering::Relaxed) >= 2).await;
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert_eq!(calls.load(Ordering::Relaxed), 2, "no attempt while the breaker is open");
        let view = breaker.send(crate::breaker::ListBreakers).await.expect("breakers");
        let renewal = view
            .breakers
            .iter()
            .find(|b| b.kind == BREAKER_KIND)
            .expect("a breaker for renewals");
        assert_eq!(
            renewal.state,
            crate::breaker::circuit::BreakerState::Open,
            "{renewal:?}"
        );
    }

    #[actix_rt::test]
    async fn short_lived_svids_are_renewed_before_they_expire() {
        let handle = Arc::new(SvidHandle::default());
        let id = SpiffeId::for_node("mesh.test", "p").expect("id");
        let alerts = Arc::new(Collect(Default::default()));
        let _actor = SvidActor::new(
            Some(source(0, Duration::from_secs(3))),
            id.clone(),
            handle.clone(),
            0.5,
            alerts.clone(),
        )
        .start();
        until("a first SVID", || handle.current(SystemTime::now()).is_some()).await;
        let mut serials = std::collections::HashSet::new();
        for _ in 0..600 {
            let held = handle.current(SystemTime::now()).expect("never without a current SVID");
            assert_eq!(held.svid.id, id);
            serials.insert(held.svid.serial.clone());
            if serials.len() >= 4 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(serials.len() >= 4, "three renewals seen");
        assert_eq!(handle.counts().1, 0);
        assert!(alerts.0.lock().is_empty(), "no near-expiry alert");
    }

    #[actix_rt::test]
    async fn failed_renewals_are_retried_until_one_succeeds() {
        let handle = Arc::new(SvidHandle::default());
        let id = SpiffeId::for_node("mesh.test", "p").expect("id");
        let alerts = Arc::new(Collect(Default::default()));
        let _actor = SvidActor::new(
            Some(source(3, Duration::from_secs(3600))),
            id,
            handle.clone(),
            0.5,
            alerts,
        )
        .start();
        until("an SVID after three failures", || handle.counts().0 == 1).await;
        assert_eq!(handle.counts(), (1, 3));
    }
}
