//! The questions asked of the protocol simulation: how long a mesh takes to
//! converge after it starts, and how long a flow is cut (and how many frames
//! it loses) when a link on its path fails.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::protocol::{ProtocolConfig, SimError, Simulation, Stats};
use crate::topology::Topology;

/// Virtual time between two checks of the convergence and of a flow.
const STEP: Duration = Duration::from_millis(1);

/// Pairs tried when looking for a flow whose path can be cut without a partition.
const FLOW_TRIES: usize = 1_000;

/// A flow cut by a link failure.
#[derive(Debug, Clone, Serialize)]
pub struct Reroute {
    /// Source and destination.
    pub flow: [String; 2],
    /// The link cut, on the flow's path.
    pub cut: [String; 2],
    /// Hops of the path before the cut.
    pub hops_before: u32,
    /// Hops of the path at the end, if the flow was delivered again.
    pub hops_after: Option<u32>,
    /// From the cut until the last frame lost, if the flow came back.
    pub outage_ms: Option<f64>,
    /// Frames lost at one frame per millisecond.
    pub frames_lost: u64,
}

/// What `sim converge` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Virtual time until every observer had a route to every node, if it did.
    pub converged_after_ms: Option<f64>,
    /// Figures at the end of the start phase.
    pub stats: Stats,
    /// The link cut, when every node is an observer.
    pub reroute: Option<Reroute>,
}

/// Starts a mesh of `topology`, runs until it converges or `limit` passes,
/// then (every node an observer) cuts a link on a random multi-hop flow's
/// path and follows the flow for the link timeout plus `limit`.
/// `progress` gets the phase and its share done.
pub fn converge_and_cut(
    topology: &Topology,
    config: ProtocolConfig,
    limit: Duration,
    progress: &mut dyn FnMut(&str, f64),
) -> Result<Report, SimError> {
    let seed = config.seed;
    let link_timeout = config.link_timeout;
    let mut sim = Simulation::new(topology, config)?;
    let mut converged = None;
    while sim.now() < limit {
        let next = sim.now() + STEP;
        sim.run_until(next, &mut |_| {});
        if sim.converged() {
            converged = Some(sim.now());
            break;
        }
        if sim.now().as_millis().is_multiple_of(100) {
            progress("converge", sim.now().as_secs_f64() / limit.as_secs_f64());
        }
    }
    let stats = sim.stats();
    let reroute = match (converged, sim.observers().len() == sim.len()) {
        (Some(_), true) => cut_a_flow(&mut sim, topology, seed, link_timeout + limit, progress),
        _ => None,
    };
    Ok(Report {
        converged_after_ms: converged.map(|d| d.as_secs_f64() * 1e3),
        stats,
        reroute,
    })
}

/// Picks a flow of at least three hops whose middle link is not a bridge,
/// cuts that link and samples the flow every millisecond for `follow`.
fn cut_a_flow(
    sim: &mut Simulation,
    topology: &Topology,
    seed: u64,
    follow: Duration,
    progress: &mut dyn FnMut(&str, f64),
) -> Option<Reroute> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let n = sim.len();
    let (flow, cut, hops_before) = (0..FLOW_TRIES).find_map(|_| {
        let (src, dst) = (rng.gen_range(0..n), rng.gen_range(0..n));
        let path = sim.path(src, dst).filter(|p| p.len() > 3)?;
        let (a, b) = (path[1], path[2]);
        sim.connected_without(a, b)
            .then_some(([src, dst], [a, b], (path.len() - 1) as u32))
    })?;
    let start = sim.now();
    sim.cut(cut[0], cut[1]);
    let (mut lost, mut last_lost) = (0u64, None);
    while sim.now() < start + follow {
        let next = sim.now() + STEP;
        sim.run_until(next, &mut |_| {});
        if sim.walk(flow[0], flow[1]).is_none() {
            lost += 1;
            last_lost = Some(sim.now());
        }
        if sim.now().as_millis().is_multiple_of(100) {
            progress("reroute", (sim.now() - start).as_secs_f64() / follow.as_secs_f64());
        }
    }
    let hops_after = sim.walk(flow[0], flow[1]);
    let id = |i: usize| topology.nodes()[i].id.clone();
    Some(Reroute {
        flow: [id(flow[0]), id(flow[1])],
        cut: [id(cut[0]), id(cut[1])],
        hops_before,
        hops_after,
        outage_ms: hops_after.map(|_| last_lost.map_or(0.0, |t| (t - start).as_secs_f64() * 1e3)),
        frames_lost: lost,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{generate, Shape};

    #[test]
    fn a_ring_converges_within_a_beacon_round_and_reroutes_once_the_cut_is_noticed() {
        let topology = generate(Shape::Ring(12), 1).expect("ring");
        let config = ProtocolConfig::default();
        let (timeout, tick) = (
            config.link_timeout.as_secs_f64() * 1e3,
            config.router.recompute_interval_ms as f64,
        );
        let report = converge_and_cut(&topology, config, Duration::from_secs(10), &mut |_, _| {}).expect("simulated");
        let converged = report.converged_after_ms.expect("a ring converges");
        // Every node's first beacon within the first second, a recompute tick later.
        assert!(converged <= 1_000.0 + 2.0 * tick, "converged after {converged} ms");
        let reroute = report.reroute.expect("a flow was cut");
        let outage = reroute.outage_ms.expect("the flow came back");
        // Lost until the cut's ends notice it; back once the others heard.
        assert!(
            outage >= timeout && outage <= timeout + 3.0 * tick,
            "outage {outage} ms"
        );
        assert!(reroute.frames_lost as f64 >= timeout, "{reroute:?}");
        assert!(
            reroute.hops_after.is_some_and(|h| h >= reroute.hops_before),
            "{reroute:?}"
        );
    }
}
