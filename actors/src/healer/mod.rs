//! The healer: a MAPE-K loop that repairs the mesh without an operator.
//!
//! Every `cycle_ms`: **Monitor** gathers an [`observe::Observation`] (links with
//! RTT and loss, routes, known nodes, protocol violations per neighbour, actor
//! restarts, the latest telemetry snapshot); **Analyze** runs the detectors of
//! [`analyze::Analyzer`]; **Plan** ([`plan::plan`]) picks at most one action per
//! target; **Execute** ([`execute::execute`]) runs it through the breaker and
//! rate limiter with retries, after pushing it on the rollback stack; after
//! `verify_ms` the effect is judged and an action that made delivery worse is
//! rolled back. **Knowledge** ([`knowledge::Knowledge`]) keeps the history and
//! the rollback stack in sled.

pub mod analyze;
mod config;
pub mod execute;
pub mod knowledge;
pub mod observe;
pub mod plan;
pub mod twin;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, MessageResult, WrapFuture};
use libp2p::PeerId;
use serde::Serialize;

use analyze::{Analyzer, Symptom};
pub use config::HealerConfig;
use execute::{Effectors, Execution, Verdict};
use knowledge::{Knowledge, Outcome, Record};
use plan::{Action, Constraints, Planned};

use crate::alert::{Alert, Severity, SharedAlertSink};
use crate::breaker::BreakerConfig;
use crate::errors::Reported;
use crate::telemetry::{TelemetrySnapshot, TelemetryUpdate};

const CYCLE_SECONDS: &str = "x0tta_mapek_cycle_seconds";
const ACTIONS_TOTAL: &str = "x0tta_healing_actions_total";
const MTTR_SECONDS: &str = "x0tta_mttr_seconds";
const SYMPTOMS_TOTAL: &str = "x0tta_healing_symptoms_total";

/// Records listed by [`GetHealing`].
const HISTORY_SHOWN: usize = 100;

/// Asks for the history (newest first), current symptoms and actions in force.
#[derive(Message)]
#[rtype(result = "HealingView")]
pub struct GetHealing;

/// Undoes the newest action on the rollback stack (`rollback_last_action`).
#[derive(Message)]
#[rtype(result = "Result<Option<Record>, String>")]
pub struct RollbackLast;

/// The healer's state for the API.
#[derive(Debug, Clone, Serialize)]
pub struct HealingView {
    /// Whether the loop runs.
    pub enabled: bool,
    /// Whether it is paused by the replicated `flag.healer.paused`: it
    /// observes and reports, and takes no action.
    pub paused: bool,
    /// Findings of the last cycle.
    pub symptoms: Vec<Symptom>,
    /// Neighbours routed around.
    pub avoided: Vec<String>,
    /// Neighbours quarantined, with time left.
    pub quarantined: Vec<QuarantinedView>,
    /// Actions being executed or verified.
    pub in_flight: Vec<String>,
    /// Action history, newest first.
    pub history: Vec<Record>,
}

/// A quarantined neighbour.
#[derive(Debug, Clone, Serialize)]
pub struct QuarantinedView {
    /// Peer id.
    pub peer: String,
    /// Milliseconds until release.
    pub remaining_ms: u64,
}

struct QuarantineState {
    until: Instant,
    planned: Planned,
}

/// A link routed around, waiting to be healthy long enough to be used again.
struct AvoidState {
    planned: Planned,
    healthy_since: Option<Instant>,
}

/// An action between execution and verdict.
struct Pending {
    planned: Planned,
    affected: Vec<PeerId>,
    rollback_key: Option<u64>,
    onset: Instant,
}

/// The healer actor.
pub struct HealerActor {
    config: HealerConfig,
    retry: BreakerConfig,
    effectors: Effectors,
    knowledge: Knowledge,
    alerts: SharedAlertSink,
    analyzer: Analyzer,
    telemetry: Option<Arc<TelemetrySnapshot>>,
    cycle_running: bool,
    symptoms: Vec<Symptom>,
    /// First cycle each (symptom kind, target) was seen in its current episode.
    onsets: HashMap<String, Instant>,
    avoided: HashMap<PeerId, AvoidState>,
    quarantined: HashMap<PeerId, QuarantineState>,
    in_flight: HashSet<(&'static str, String)>,
    cooling: HashMap<(&'static str, String), Instant>,
    refusal_noted: HashSet<(&'static str, String)>,
    /// When each (destination, next hop) pair was last in the routing table.
    carried: HashMap<(PeerId, PeerId), Instant>,
    /// Live switches from the replicated state (`flag.healer.paused`).
    flags: crate::sync::LiveFlags,
}

/// A connected link counts as carrying traffic this long after its last route left it:
/// the router's own metric may move traffic off a lossy link for a moment and
/// back again when the loss estimate dips; the healer pins such a link.
const CARRY_MEMORY: std::time::Duration = std::time::Duration::from_secs(10);

/// Destinations probed before and after an actor restart.
const RESTART_PROBED: usize = 8;

impl HealerActor {
    /// A healer acting through `effectors`, remembering in `knowledge`.
    pub fn new(
        config: HealerConfig,
        retry: BreakerConfig,
        effectors: Effectors,
        knowledge: Knowledge,
        alerts: SharedAlertSink,
    ) -> Self {
        metrics::describe_histogram!(CYCLE_SECONDS, "Duration of one MAPE-K cycle (monitor to plan)");
        metrics::describe_counter!(ACTIONS_TOTAL, "Healing actions by action and result");
        metrics::describe_histogram!(MTTR_SECONDS, "Time from a symptom to its verified recovery");
        metrics::describe_counter!(SYMPTOMS_TOTAL, "Symptoms found, by kind (counted once per episode)");
        Self {
            config,
            retry,
            effectors,
            knowledge,
            alerts,
            analyzer: Analyzer::default(),
            telemetry: None,
            cycle_running: false,
            symptoms: Vec::new(),
            onsets: HashMap::new(),
            avoided: HashMap::new(),
            quarantined: HashMap::new(),
            in_flight: HashSet::new(),
            cooling: HashMap::new(),
            refusal_noted: HashSet::new(),
            carried: HashMap::new(),
            flags: crate::sync::LiveFlags::default(),
        }
    }

    /// Reads `flags` (the replicated state's live switches) each cycle.
    pub fn with_flags(mut self, flags: crate::sync::LiveFlags) -> Self {
        self.flags = flags;
        self
    }

    fn cycle(&mut self, ctx: &mut Context<Self>) {
        if self.cycle_running {
            return;
        }
        self.cycle_running = true;
        let started = Instant::now();
        let observe = self.effectors.sources.clone().observe();
        ctx.spawn(observe.into_actor(self).map(move |mut obs, healer, ctx| {
            healer.cycle_running = false;
            obs.telemetry = healer.telemetry.clone();
            for (dst, (next, _)) in &obs.routes {
                healer.carried.insert((*dst, *next), obs.at);
            }
            healer.carried.retain(|_, at| obs.at.duration_since(*at) < CARRY_MEMORY);
            let symptoms = healer.analyzer.analyze(&obs, &healer.config);
            healer.track_onsets(&symptoms, obs.at);
            healer.release_expired(obs.at, ctx);
            healer.restore_healthy(&obs, &symptoms, ctx);
            healer.cooling.retain(|_, until| *until > obs.at);
            let constraints = Constraints {
                avoided: healer.avoided.keys().copied().collect(),
                quarantined: healer.quarantined.keys().copied().collect(),
                in_flight: healer.in_flight.clone(),
                cooling: healer.cooling.keys().cloned().collect(),
                // Only a connected link has traffic to move off it.
                carrying: obs
                    .links
                    .iter()
                    .flatten()
                    .map(|l| l.peer)
                    .filter(|peer| healer.carried.keys().any(|(_, next)| next == peer))
                    .collect(),
            };
            let analyzer = &healer.analyzer;
            let planned = plan::plan(&symptoms, &constraints, |p| analyzer.addrs_of(p), &obs.known);
            healer.symptoms = symptoms;
            if healer.flags.healer_paused() {
                if !planned.is_empty() {
                    tracing::info!(
                        actions = planned.len(),
                        "healer paused (flag.healer.paused): no action taken"
                    );
                }
            } else {
                for action in planned {
                    healer.start(action, ctx);
                }
            }
            metrics::histogram!(CYCLE_SECONDS).record(started.elapsed().as_secs_f64());
        }));
    }

    /// Remembers when each symptom episode began; alerts on critical ones once.
    fn track_onsets(&mut self, symptoms: &[Symptom], now: Instant) {
        let current: HashSet<String> = symptoms.iter().map(episode).collect();
        self.onsets.retain(|key, _| current.contains(key));
        for symptom in symptoms {
            let key = episode(symptom);
            if self.onsets.contains_key(&key) {
                continue;
            }
            self.onsets.insert(key, now);
            metrics::counter!(SYMPTOMS_TOTAL, "kind" => symptom.kind.label()).increment(1);
            tracing::warn!(kind = symptom.kind.label(), peer = ?symptom.peer, evidence = %symptom.evidence, "symptom");
            if symptom.severity == Severity::Critical {
                let mut alert = Alert::new(
                    "HEALER_CRITICAL_SYMPTOM",
                    Severity::Critical,
                    format!("{}: {}", symptom.kind.label(), symptom.evidence),
                )
                .label("symptom", symptom.kind.label());
                if let Some(peer) = symptom.peer {
                    alert = alert.label("peer", peer.to_string());
                }
                self.alerts.emit(alert);
            }
        }
    }

    fn onset_of(&self, planned: &Planned) -> Instant {
        self.onsets
            .get(&episode(&planned.symptom))
            .copied()
            .unwrap_or_else(Instant::now)
    }

    fn start(&mut self, planned: Planned, ctx: &mut Context<Self>) {
        let key = (planned.action.kind(), planned.action.target());
        self.in_flight.insert(key);
        let affected = self.affected_by(&planned.action);
        let rollback_key =
            self.knowledge
                .push_rollback(&planned.action)
                .or_report("healer", "rollback_push", Severity::Critical);
        let pending = Pending {
            onset: self.onset_of(&planned),
            planned,
            affected,
            rollback_key,
        };
        let run = execute::execute(
            self.effectors.clone(),
            pending.planned.action.clone(),
            pending.affected.clone(),
            self.config.clone(),
            self.retry.clone(),
        );
        ctx.spawn(run.into_actor(self).map(move |execution, healer, ctx| {
            healer.executed(pending, execution, ctx);
        }));
    }

    /// The destinations whose delivery shows whether `action` worked: those
    /// whose routes used an avoided link lately; the redialled or failed-over
    /// peers themselves; for a restart, destinations routed lately (up to
    /// [`RESTART_PROBED`]). A quarantine is judged without probes.
    fn affected_by(&self, action: &Action) -> Vec<PeerId> {
        let carried_over = |hop: Option<&str>| -> Vec<PeerId> {
            let destinations: HashSet<PeerId> = self
                .carried
                .keys()
                .filter(|(_, next)| hop.is_none_or(|hop| next.to_string() == hop))
                .map(|(dst, _)| *dst)
                .collect();
            destinations.into_iter().collect()
        };
        match action {
            Action::SwitchRoute { peer } => carried_over(Some(peer)),
            Action::Redial { peer, .. } => peer.parse().into_iter().collect(),
            Action::Failover { peers } => peers.iter().filter_map(|(p, _)| p.parse().ok()).collect(),
            Action::RestartActor { .. } => carried_over(None).into_iter().take(RESTART_PROBED).collect(),
            Action::Quarantine { .. } => Vec::new(),
        }
    }

    fn executed(&mut self, pending: Pending, execution: Execution, ctx: &mut Context<Self>) {
        let action = pending.planned.action.clone();
        let key = (action.kind(), action.target());
        let attempts = execution.failures.len() + usize::from(execution.success.is_some());
        for (i, error) in execution.failures.iter().enumerate() {
            self.note(
                &pending.planned,
                Outcome::Failed,
                format!("attempt {} of {}: {error}", i + 1, self.retry.max_retries + 1),
                None,
            );
        }
        if let Some(reason) = execution.vetoed.as_ref().or(execution.refused.as_ref()) {
            if self.refusal_noted.insert(key.clone()) {
                self.note(&pending.planned, Outcome::Refused, reason.clone(), None);
                if execution.vetoed.is_some() {
                    let alert = Alert::new("HEALING_VETOED_PARTITION", Severity::Warning, reason.clone())
                        .label("action", action.kind())
                        .label("target", action.target());
                    self.alerts.emit(alert);
                }
            } else {
                metrics::counter!(ACTIONS_TOTAL, "action" => action.kind(), "result" => "refused").increment(1);
            }
        }
        let Some(detail) = execution.success else {
            self.in_flight.remove(&key);
            if let Some(k) = pending.rollback_key {
                self.knowledge
                    .take_rollback(k)
                    .or_report("healer", "rollback_pop", Severity::Warning);
            }
            return;
        };
        self.refusal_noted.remove(&key);
        let baseline = execution
            .baseline
            .map(|b| format!(", delivery before {:.0} %", b * 100.0))
            .unwrap_or_default();
        self.note(
            &pending.planned,
            Outcome::Executed,
            format!("{detail} (attempt {attempts}){baseline}"),
            None,
        );
        match &action {
            Action::SwitchRoute { peer } => {
                if let Ok(peer) = peer.parse() {
                    self.avoided.insert(
                        peer,
                        AvoidState {
                            planned: pending.planned.clone(),
                            healthy_since: None,
                        },
                    );
                }
            }
            Action::Quarantine { peer, .. } => {
                if let Ok(peer) = peer.parse() {
                    self.quarantined.insert(
                        peer,
                        QuarantineState {
                            until: Instant::now() + self.config.quarantine(),
                            planned: pending.planned.clone(),
                        },
                    );
                }
            }
            _ => {}
        }
        let verify = execute::verify(
            self.effectors.clone(),
            action,
            pending.affected.clone(),
            execution.baseline,
            self.config.clone(),
        );
        ctx.run_later(self.config.verify(), move |healer, ctx| {
            ctx.spawn(verify.into_actor(healer).map(move |verdict, healer, ctx| {
                healer.judged(pending, verdict, ctx);
            }));
        });
    }

    fn judged(&mut self, pending: Pending, verdict: Verdict, ctx: &mut Context<Self>) {
        let action = pending.planned.action.clone();
        let key = (action.kind(), action.target());
        self.in_flight.remove(&key);
        match verdict {
            Verdict::Recovered(at, detail) => {
                let mttr = at.saturating_duration_since(pending.onset);
                metrics::histogram!(MTTR_SECONDS).record(mttr.as_secs_f64());
                self.note(&pending.planned, Outcome::Verified, detail, Some(mttr));
            }
            Verdict::NotRecovered(detail) => self.note(&pending.planned, Outcome::Failed, detail, None),
            Verdict::Unverified(detail) => self.note(&pending.planned, Outcome::Unverified, detail, None),
            Verdict::Worse(detail) => {
                self.cooling.insert(key, Instant::now() + self.config.cooldown());
                let taken = pending
                    .rollback_key
                    .and_then(|k| self.knowledge.take_rollback(k).ok().flatten());
                let undo_action = taken.unwrap_or_else(|| action.clone());
                self.rollback(undo_action, Some(pending.planned), detail, ctx);
            }
        }
    }

    /// Undoes `action` and records it; `planned` is the plan it came from, if known.
    fn rollback(&mut self, action: Action, planned: Option<Planned>, why: String, ctx: &mut Context<Self>) {
        self.forget(&action);
        let effectors = self.effectors.clone();
        let undo_action = action.clone();
        let undo = async move { execute::undo(&effectors, &undo_action).await };
        ctx.spawn(undo.into_actor(self).map(move |result, healer, _| {
            let detail = match result {
                Ok(done) => format!("{why}; {done}"),
                Err(error) => format!("{why}; undo failed: {error}"),
            };
            let planned = planned.unwrap_or_else(|| operator_plan(action));
            healer.note(&planned, Outcome::RolledBack, detail, None);
        }));
    }

    /// Drops what the healer believes is in force for `action`.
    fn forget(&mut self, action: &Action) {
        match action {
            Action::SwitchRoute { peer } | Action::Quarantine { peer, .. } => {
                if let Ok(peer) = peer.parse::<PeerId>() {
                    self.avoided.remove(&peer);
                    self.quarantined.remove(&peer);
                }
            }
            _ => {}
        }
    }

    fn release_expired(&mut self, now: Instant, ctx: &mut Context<Self>) {
        let expired: Vec<PeerId> = self
            .quarantined
            .iter()
            .filter(|(_, q)| q.until <= now)
            .map(|(p, _)| *p)
            .collect();
        for peer in expired {
            if let Some(state) = self.quarantined.remove(&peer) {
                self.release(state.planned, "quarantine ended".into(), ctx);
            }
        }
    }

    /// Lets routes use an avoided link again once it has been up without a
    /// symptom for `restore_after_secs`.
    fn restore_healthy(&mut self, obs: &observe::Observation, symptoms: &[Symptom], ctx: &mut Context<Self>) {
        let restore_after = self.config.restore_after();
        let links: HashMap<PeerId, &crate::mesh::PeerLink> = obs.links.iter().flatten().map(|l| (l.peer, l)).collect();
        let mut healthy = Vec::new();
        for (peer, state) in &mut self.avoided {
            let troubled = symptoms.iter().any(|s| s.peer == Some(*peer));
            let fine = links
                .get(peer)
                .is_some_and(|l| self.analyzer.link_healthy(l, &self.config));
            if troubled || !fine {
                state.healthy_since = None;
                continue;
            }
            let since = *state.healthy_since.get_or_insert(obs.at);
            if obs.at.duration_since(since) >= restore_after {
                healthy.push(*peer);
            }
        }
        for peer in healthy {
            if let Some(state) = self.avoided.remove(&peer) {
                let detail = format!(
                    "link healthy for {} s; routes may use it again",
                    restore_after.as_secs()
                );
                self.release(state.planned, detail, ctx);
            }
        }
    }

    /// Undoes an action whose time is over and records it as released.
    fn release(&mut self, planned: Planned, detail: String, ctx: &mut Context<Self>) {
        let effectors = self.effectors.clone();
        let action = planned.action.clone();
        ctx.spawn(
            async move { execute::undo(&effectors, &action).await }
                .into_actor(self)
                .map(move |result, healer, _| {
                    let detail = match result {
                        Ok(_) => detail,
                        Err(e) => format!("{detail}; undo failed: {e}"),
                    };
                    healer.note(&planned, Outcome::Released, detail, None);
                }),
        );
    }

    fn note(&mut self, planned: &Planned, result: Outcome, detail: String, mttr: Option<Duration>) {
        let action = &planned.action;
        metrics::counter!(ACTIONS_TOTAL, "action" => action.kind(), "result" => result.label()).increment(1);
        tracing::info!(action = action.kind(), target = %action.target(), result = result.label(), %detail, "healing");
        let record = Record {
            seq: 0,
            at_unix_ms: crate::mesh::unix_ms(),
            action: action.kind().to_string(),
            target: action.target(),
            symptom: planned.symptom.kind.label().to_string(),
            evidence: planned.symptom.evidence.clone(),
            result,
            detail,
            mttr_ms: mttr.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        };
        self.knowledge
            .record(record)
            .or_report("healer", "history_write", Severity::Warning);
    }

    fn view(&self) -> HealingView {
        let now = Instant::now();
        HealingView {
            enabled: self.config.enabled,
            paused: self.flags.healer_paused(),
            symptoms: self.symptoms.clone(),
            avoided: self.avoided.keys().map(PeerId::to_string).collect(),
            quarantined: self
                .quarantined
                .iter()
                .map(|(p, q)| QuarantinedView {
                    peer: p.to_string(),
                    remaining_ms: u64::try_from(q.until.saturating_duration_since(now).as_millis()).unwrap_or(u64::MAX),
                })
                .collect(),
            in_flight: self.in_flight.iter().map(|(k, t)| format!("{k} {t}")).collect(),
            history: self.knowledge.history(HISTORY_SHOWN),
        }
    }
}

/// The record key of a symptom episode: kind plus target.
fn episode(symptom: &Symptom) -> String {
    match symptom.peer {
        Some(peer) => format!("{}:{peer}", symptom.kind.label()),
        None => symptom.kind.label().to_string(),
    }
}

/// A plan for an action an operator asked to roll back.
fn operator_plan(action: Action) -> Planned {
    Planned {
        action,
        symptom: Symptom {
            kind: analyze::SymptomKind::OperatorRequest,
            peer: None,
            severity: Severity::Info,
            evidence: String::new(),
        },
        benefit: 0.0,
    }
}

impl Actor for HealerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if !self.config.enabled {
            tracing::info!("healer disabled by configuration");
            return;
        }
        ctx.run_interval(self.config.cycle().max(Duration::from_millis(10)), |healer, ctx| {
            healer.cycle(ctx);
        });
    }
}

impl actix::Supervised for HealerActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.cycle_running = false;
        self.in_flight.clear();
    }
}

crate::supervised_actor!(HealerActor);

impl Handler<TelemetryUpdate> for HealerActor {
    type Result = ();

    fn handle(&mut self, TelemetryUpdate(snapshot): TelemetryUpdate, _: &mut Context<Self>) {
        self.telemetry = Some(snapshot);
    }
}

impl Handler<GetHealing> for HealerActor {
    type Result = MessageResult<GetHealing>;

    fn handle(&mut self, _: GetHealing, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.view())
    }
}

impl Handler<RollbackLast> for HealerActor {
    type Result = Result<Option<Record>, String>;

    fn handle(&mut self, _: RollbackLast, ctx: &mut Context<Self>) -> Self::Result {
        let Some((_, action)) = self.knowledge.pop_rollback().map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        let planned = operator_plan(action.clone());
        self.rollback(action, Some(planned.clone()), "operator request".into(), ctx);
        Ok(Some(Record {
            seq: 0,
            at_unix_ms: crate::mesh::unix_ms(),
            action: planned.action.kind().to_string(),
            target: planned.action.target(),
            symptom: String::new(),
            evidence: String::new(),
            result: Outcome::RolledBack,
            detail: "operator request".into(),
            mttr_ms: None,
        }))
    }
}
