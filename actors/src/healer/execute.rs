//! Execute: carry out an action through the breaker and rate limiter with
//! retries, undo it, and judge its effect after the verification window.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Addr, Recipient};
use futures::future::join_all;
use libp2p::{Multiaddr, PeerId};

use super::config::HealerConfig;
use super::observe::Sources;
use super::plan::Action;
use crate::alert::Severity;
use crate::breaker::backoff::full_jitter;
use crate::breaker::{Acquire, BreakerActor, BreakerConfig, Report};
use crate::errors::Reported;
use crate::router::{Forwarder, GetState};
use crate::supervision::Restart;
use crate::telemetry::{Quarantine, Release, TelemetryActor};

/// Everything actions act through.
#[derive(Clone)]
pub struct Effectors {
    /// Mesh, router and forwarder.
    pub sources: Sources,
    /// XDP blocklist.
    pub telemetry: Addr<TelemetryActor>,
    /// Breakers and the rate limit.
    pub breaker: Addr<BreakerActor>,
    /// Restarts the mesh actor.
    pub mesh_actor: Recipient<Restart>,
    /// Vetoes a quarantine that would partition the mesh (none: no veto).
    pub twin: Option<super::twin::SharedTwin>,
}

/// What happened when an action was carried out.
#[derive(Debug)]
pub struct Execution {
    /// Error of each failed attempt, in order.
    pub failures: Vec<String>,
    /// Detail of the successful attempt, if one succeeded.
    pub success: Option<String>,
    /// Why no (further) attempt was made, if refused.
    pub refused: Option<String>,
    /// The twin's reason for not acting at all: the action would partition the mesh.
    pub vetoed: Option<String>,
    /// Delivery to the affected destinations before the action (0..=1).
    pub baseline: Option<f64>,
}

/// The verdict after the verification window.
#[derive(Debug)]
pub enum Verdict {
    /// Delivery to the affected destinations, probed before and after, is
    /// healthy after: recovery observed at this instant.
    Recovered(Instant, String),
    /// The action made delivery worse: undo it.
    Worse(String),
    /// The action did not take (e.g. the redialled link dropped again).
    NotRecovered(String),
    /// Carried out, but there was nothing to probe: no evidence either way.
    Unverified(String),
}

/// Carries out `action`: one attempt per breaker permit, retried with full-jitter
/// backoff up to `retry.max_retries` times. The baseline probes to the
/// affected destinations leave before the action but are not awaited (on a
/// lossy link that took up to `probes × probe_timeout_ms`, all of it added to
/// the outage).
pub async fn execute(
    effectors: Effectors,
    action: Action,
    affected: Vec<PeerId>,
    config: HealerConfig,
    retry: BreakerConfig,
) -> Execution {
    let baseline = delivery(&effectors.sources.forwarder, &affected, &config);
    // `join!` polls the baseline first, so its probes leave before the action.
    let (baseline, mut execution) = futures::join!(baseline, attempt(&effectors, &action, &config, &retry));
    execution.baseline = baseline;
    execution
}

/// The attempts of [`execute`], without the baseline.
async fn attempt(effectors: &Effectors, action: &Action, config: &HealerConfig, retry: &BreakerConfig) -> Execution {
    let mut execution = Execution {
        failures: Vec::new(),
        success: None,
        refused: None,
        vetoed: None,
        baseline: None,
    };
    if let Some(reason) = veto(effectors, action).await {
        execution.vetoed = Some(reason);
        return execution;
    }
    let (base, cap) = retry.retry_delays();
    for attempt in 0..=retry.max_retries {
        let permit = effectors
            .breaker
            .send(Acquire {
                kind: action.kind(),
                target: action.target(),
                retry: attempt > 0,
            })
            .await;
        match permit {
            Ok(Ok(())) => {}
            Ok(Err(refusal)) => {
                execution.refused = Some(refusal.to_string());
                return execution;
            }
            Err(_) => {
                execution.refused = Some("breaker actor unavailable".into());
                return execution;
            }
        }
        let result = perform(effectors, action, config).await;
        let report = Report {
            kind: action.kind(),
            target: action.target(),
            success: result.is_ok(),
        };
        effectors
            .breaker
            .send(report)
            .await
            .or_report("healer", "breaker_report", Severity::Warning);
        match result {
            Ok(detail) => {
                execution.success = Some(detail);
                return execution;
            }
            Err(error) => execution.failures.push(error),
        }
        if attempt < retry.max_retries {
            tokio::time::sleep(full_jitter(attempt, base, cap, &mut rand::thread_rng())).await;
        }
    }
    execution
}

/// The twin's reason not to quarantine: losing the peer would partition the
/// mesh as the router sees it. Other actions cut nothing off.
async fn veto(effectors: &Effectors, action: &Action) -> Option<String> {
    let (Some(twin), Action::Quarantine { peer, .. }) = (&effectors.twin, action) else {
        return None;
    };
    let state = effectors.sources.router.send(GetState).await.ok()?;
    twin.partition_if_lost(&state.edges, peer)
        .map(|why| format!("twin: quarantining {peer} would partition the mesh: {why}"))
}

async fn perform(effectors: &Effectors, action: &Action, config: &HealerConfig) -> Result<String, String> {
    let sources = &effectors.sources;
    match action {
        Action::SwitchRoute { peer } => {
            let peer = parse(peer)?;
            sources.mesh.set_avoided(peer, true).await.map_err(|e| e.to_string())?;
            Ok("link announced as avoided; routes move off it".into())
        }
        Action::Redial { peer, addrs } => {
            let peer = parse(peer)?;
            sources
                .mesh
                .dial_peer(peer, multiaddrs(addrs), Duration::from_millis(config.dial_timeout_ms))
                .await
                .map(|()| "connected".to_string())
                .map_err(|e| e.to_string())
        }
        Action::Quarantine { peer, addrs } => {
            let peer_id = parse(peer)?;
            sources
                .mesh
                .set_blocked(peer_id, true)
                .await
                .map_err(|e| e.to_string())?;
            if addrs.is_empty() {
                return Ok("blocked in libp2p; no IP address for XDP".into());
            }
            let views = effectors
                .telemetry
                .send(Quarantine {
                    addrs: addrs.clone(),
                    peer: Some(peer.clone()),
                    reason: "healer: protocol violations".into(),
                    ttl: Some(config.quarantine()),
                })
                .await
                .map_err(|_| "telemetry unavailable".to_string())?
                .map_err(|e| e.to_string())?;
            let enforced = views.iter().filter(|v| v.enforced).count();
            Ok(format!(
                "blocked in libp2p; {enforced} of {} addresses dropped by XDP",
                addrs.len()
            ))
        }
        Action::RestartActor { actor } => {
            effectors
                .mesh_actor
                .send(Restart {
                    reason: format!("healer: {actor} unresponsive"),
                })
                .await
                .map_err(|_| format!("{actor} actor unavailable"))?;
            Ok(format!("{actor} restarted"))
        }
        Action::Failover { peers } => {
            let timeout = Duration::from_millis(config.dial_timeout_ms);
            let dials = peers.iter().filter_map(|(peer, addrs)| {
                let peer = peer.parse().ok()?;
                Some(sources.mesh.dial_peer(peer, multiaddrs(addrs), timeout))
            });
            let connected = join_all(dials).await.into_iter().filter(Result::is_ok).count();
            if connected > 0 {
                Ok(format!("connected to {connected} of {} known peers", peers.len()))
            } else {
                Err(format!("none of {} known peers answered", peers.len()))
            }
        }
    }
}

/// Undoes `action` (rollback). Actions that cannot make things worse have nothing to undo.
pub async fn undo(effectors: &Effectors, action: &Action) -> Result<String, String> {
    match action {
        Action::SwitchRoute { peer } => {
            let peer = parse(peer)?;
            effectors
                .sources
                .mesh
                .set_avoided(peer, false)
                .await
                .map_err(|e| e.to_string())?;
            Ok("previous routes restored".into())
        }
        Action::Quarantine { peer, addrs } => {
            let peer = parse(peer)?;
            effectors
                .sources
                .mesh
                .set_blocked(peer, false)
                .await
                .map_err(|e| e.to_string())?;
            effectors
                .telemetry
                .send(Release(addrs.clone()))
                .await
                .map_err(|_| "telemetry unavailable".to_string())?;
            Ok("released".into())
        }
        Action::Redial { .. } | Action::RestartActor { .. } | Action::Failover { .. } => Ok("nothing to undo".into()),
    }
}

/// Judges an action after the verification window. A quarantine is judged by
/// what it does (the peer is cut off); every other action by delivery to the
/// destinations it affects, probed before and after ([`judge`]), plus, for a
/// redial or failover, the links it was meant to bring up.
pub async fn verify(
    effectors: Effectors,
    action: Action,
    affected: Vec<PeerId>,
    baseline: Option<f64>,
    config: HealerConfig,
) -> Verdict {
    let sources = &effectors.sources;
    let connected = || async {
        sources
            .mesh
            .status()
            .await
            .map(|s| s.peers.iter().map(|l| l.peer).collect::<HashSet<PeerId>>())
            .unwrap_or_default()
    };
    match &action {
        Action::Quarantine { peer, .. } => {
            return match peer.parse() {
                Ok(peer) if !connected().await.contains(&peer) => {
                    Verdict::Recovered(Instant::now(), "peer cut off".into())
                }
                _ => Verdict::NotRecovered("peer still connected".into()),
            };
        }
        Action::Redial { peer, .. } => {
            let up = match peer.parse() {
                Ok(peer) => connected().await.contains(&peer),
                Err(_) => false,
            };
            if !up {
                return Verdict::NotRecovered("link dropped again".into());
            }
        }
        Action::Failover { .. } => {
            if connected().await.is_empty() {
                return Verdict::NotRecovered("still isolated".into());
            }
        }
        Action::SwitchRoute { .. } | Action::RestartActor { .. } => {}
    }
    let after = delivery(&sources.forwarder, &affected, &config).await;
    let undoable = matches!(action, Action::SwitchRoute { .. });
    judge(baseline, after, undoable, config.verified_delivery)
}

/// The verdict from delivery before and after an action (shares of echoes
/// answered, `None` when nothing was probed). Verified only with both
/// measurements and at least `healthy` delivered after. An undoable action
/// that clearly lowered delivery, or left none, is `Worse`.
pub fn judge(before: Option<f64>, after: Option<f64>, undoable: bool, healthy: f64) -> Verdict {
    let (Some(before), Some(after)) = (before, after) else {
        return Verdict::Unverified("no affected destination to probe".into());
    };
    let detail = format!("delivery {:.0} % before, {:.0} % after", before * 100.0, after * 100.0);
    if undoable && (after + 0.2 < before || after == 0.0) {
        Verdict::Worse(detail)
    } else if after >= healthy {
        Verdict::Recovered(Instant::now(), detail)
    } else {
        Verdict::NotRecovered(detail)
    }
}

/// Share of routed echoes to `destinations` that came back in time; `None`
/// when there is no destination (nothing measured is no evidence).
pub async fn delivery(forwarder: &Arc<Forwarder>, destinations: &[PeerId], config: &HealerConfig) -> Option<f64> {
    let total = config
        .probes
        .saturating_mul(u32::try_from(destinations.len()).unwrap_or(u32::MAX));
    if total == 0 {
        return None;
    }
    let timeout = Duration::from_millis(config.probe_timeout_ms);
    // All probes leave at once: each waits for its own answer only.
    let probes = destinations
        .iter()
        .flat_map(|dst| (0..config.probes).map(move |_| forwarder.echo(*dst, timeout)));
    let ok = join_all(probes).await.iter().filter(|reply| reply.is_ok()).count() as u32;
    Some(f64::from(ok) / f64::from(total))
}

fn parse(peer: &str) -> Result<PeerId, String> {
    peer.parse().map_err(|_| format!("'{peer}' is not a peer id"))
}

fn multiaddrs(addrs: &[String]) -> Vec<Multiaddr> {
    addrs.iter().filter_map(|a| a.parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::{judge, Verdict};

    #[test]
    fn nothing_probed_is_unverified_never_recovered() {
        for (before, after) in [(None, None), (Some(1.0), None), (None, Some(1.0))] {
            assert!(
                matches!(judge(before, after, true, 0.8), Verdict::Unverified(_)),
                "{before:?} → {after:?}"
            );
        }
    }

    #[test]
    fn healthy_delivery_after_is_recovered_with_both_figures() {
        let Verdict::Recovered(_, detail) = judge(Some(0.4), Some(1.0), true, 0.8) else {
            panic!("40 % → 100 % is a recovery");
        };
        assert_eq!(detail, "delivery 40 % before, 100 % after");
    }

    #[test]
    fn weak_delivery_after_is_not_recovered() {
        assert!(matches!(
            judge(Some(0.0), Some(0.6), false, 0.8),
            Verdict::NotRecovered(_)
        ));
        assert!(matches!(
            judge(Some(0.7), Some(0.6), true, 0.8),
            Verdict::NotRecovered(_)
        ));
    }

    #[test]
    fn an_undoable_action_that_lowered_delivery_is_worse() {
        assert!(matches!(judge(Some(1.0), Some(0.6), true, 0.5), Verdict::Worse(_)));
        assert!(matches!(judge(Some(0.0), Some(0.0), true, 0.8), Verdict::Worse(_)));
        // Nothing to undo: the same figures are only a failure.
        assert!(matches!(
            judge(Some(1.0), Some(0.0), false, 0.8),
            Verdict::NotRecovered(_)
        ));
    }
}
