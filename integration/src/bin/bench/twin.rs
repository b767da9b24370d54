//! `bench twin`: the digital twin on generated meshes (Barabási–Albert, m = 2)
//! of 1k, 10k and 100k nodes (`--quick`: 1k and 10k).
//!
//! - **what-if**: a single-node failure answered by the twin and by networkx
//!   side by side in one run, the same answer (components, cut-off nodes,
//!   articulation points and bridges before and after), graph construction
//!   excluded on both sides, the answers checked equal; times, speed-up and
//!   the graph's heap bytes per node (jemalloc's count).
//! - **protocol**: the routing protocol in virtual time on the router's own
//!   code, with the node's default timers: convergence after a start, the
//!   reroute after a link cut (every node simulated in full, 1k), and past
//!   that, a few nodes in full with the default `max_nodes` (1,024) and with
//!   `max_nodes` raised to the mesh's size: routes held, beacon bytes, the
//!   recompute's time and one node's link-state database and table in bytes.
//!
//! Prints both tables, then a JSON line.

use std::time::Instant;

use serde_json::json;
use std::time::Duration;

use x0tta6bl4_sim::oracle::{self, Case};
use x0tta6bl4_sim::protocol::{ProtocolConfig, Simulation};
use x0tta6bl4_sim::scenario::converge_and_cut;
use x0tta6bl4_sim::{generate, what_if, Failure, Net, Shape, Topology};

/// Heap bytes allocated now, by jemalloc's count (the bench's allocator).
pub fn heap_bytes() -> usize {
    let _ = tikv_jemalloc_ctl::epoch::advance();
    tikv_jemalloc_ctl::stats::allocated::read().unwrap_or(0)
}

/// Runs of our what-if per size; the median is reported.
const RUNS: usize = 5;

/// Runs the benchmark.
pub fn run(quick: bool) {
    let sizes: &[usize] = if quick {
        &[1_000, 10_000]
    } else {
        &[1_000, 10_000, 100_000]
    };
    let whatif = what_if_rows(sizes);
    let protocol = protocol_rows(sizes);
    println!(
        "{}",
        json!({ "bench": "twin", "shape": "ba:N:2", "whatif": whatif, "protocol": protocol })
    );
}

/// The mesh of `n` nodes both parts run on.
fn mesh(n: usize) -> (Topology, u64) {
    let seed = 42 + n as u64;
    (generate(Shape::BarabasiAlbert(n, 2), seed).expect("generated"), seed)
}

fn what_if_rows(sizes: &[usize]) -> Vec<serde_json::Value> {
    let mut rows = Vec::new();
    println!(
        "{:>8} {:>9} {:>12} {:>12} {:>9} {:>13}",
        "nodes", "links", "sim ms", "networkx ms", "speed-up", "graph B/node"
    );
    for &n in sizes {
        let (topology, seed) = mesh(n);
        let before = heap_bytes();
        let net = Net::new(&topology);
        let net_bytes = heap_bytes().saturating_sub(before);
        drop(topology);
        // A node of middling degree: a hub's loss is not the common case.
        let failure = Failure::parse(&format!("n{}", n / 2));
        let mut times = Vec::new();
        let mut ours = None;
        for _ in 0..RUNS {
            let started = Instant::now();
            ours = Some(what_if(&net, &failure, None).expect("answer"));
            times.push(started.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        let sim_s = times[RUNS / 2];
        let ours = ours.expect("answered");
        let (version, answers) = oracle::ask(&[Case::new(&net, &failure, None)]).unwrap_or_else(|e| panic!("{e}"));
        let theirs = &answers[0];
        let ours_json = serde_json::to_value(&ours).expect("serializable");
        for field in [
            "cut_off",
            "articulation_points_after",
            "bridges_after",
            "connected_pairs_after",
        ] {
            assert_eq!(
                ours_json[field], theirs[field],
                "{n} nodes: {field} differs from networkx"
            );
        }
        let networkx_s = theirs["seconds"].as_f64().expect("networkx timing");
        let speedup = networkx_s / sim_s;
        println!(
            "{n:>8} {:>9} {:>12.2} {:>12.1} {:>8.0}x {:>13.0}",
            net.graph().edge_count(),
            sim_s * 1e3,
            networkx_s * 1e3,
            speedup,
            net_bytes as f64 / n as f64,
        );
        rows.push(json!({
            "nodes": n,
            "links": net.graph().edge_count(),
            "seed": seed,
            "sim_ms": sim_s * 1e3,
            "networkx_ms": networkx_s * 1e3,
            "speedup": speedup,
            "net_bytes_per_node": net_bytes as f64 / n as f64,
            "networkx": version,
        }));
    }
    rows
}

/// Nodes simulated in full past 1k (each holds the link state of the whole mesh).
const OBSERVERS: usize = 4;

/// Virtual seconds a start is followed.
const LIMIT: Duration = Duration::from_secs(5);

fn protocol_rows(sizes: &[usize]) -> Vec<serde_json::Value> {
    let mut rows = Vec::new();
    println!(
        "{:>8} {:>9} {:>9} {:>11} {:>8} {:>10} {:>8} {:>11} {:>12} {:>10} {:>12}",
        "nodes",
        "observers",
        "max_nodes",
        "converge ms",
        "routes",
        "outage ms",
        "lost",
        "beacon B",
        "beacons B/s",
        "recomp ms",
        "db B/node"
    );
    for &n in sizes {
        let (topology, seed) = mesh(n);
        let runs: Vec<(usize, usize)> = match n {
            n if n <= 2_000 => vec![(n, 1_024)],
            n => vec![(OBSERVERS, 1_024), (OBSERVERS, n)],
        };
        for (observers, max_nodes) in runs {
            let mut config = ProtocolConfig {
                observers,
                seed,
                ..ProtocolConfig::default()
            };
            config.router.max_nodes = max_nodes;
            let started = Instant::now();
            let report = converge_and_cut(&topology, config.clone(), LIMIT, &mut |_, _| {}).expect("simulated");
            let wall = started.elapsed().as_secs_f64();
            let db_bytes = database_bytes(&topology, config);
            let s = &report.stats;
            let reroute = report.reroute.as_ref();
            println!(
                "{n:>8} {observers:>9} {max_nodes:>9} {:>11} {:>7.1}% {:>10} {:>8} {:>11.0} {:>12.0} {:>10.2} {:>12.0}",
                report
                    .converged_after_ms
                    .map_or("never".into(), |ms| format!("{ms:.0}")),
                s.coverage * 100.0,
                reroute
                    .and_then(|r| r.outage_ms)
                    .map_or("-".into(), |ms| format!("{ms:.0}")),
                reroute.map_or("-".into(), |r| r.frames_lost.to_string()),
                s.beacon_bytes_mean,
                s.beacon_bytes_in_per_node_per_sec,
                s.recompute_ms_mean,
                db_bytes as f64 / max_nodes.min(n) as f64,
            );
            rows.push(json!({
                "nodes": n,
                "observers": observers.min(n),
                "max_nodes": max_nodes,
                "converged_ms": report.converged_after_ms,
                "coverage": s.coverage,
                "reroute_outage_ms": reroute.and_then(|r| r.outage_ms),
                "frames_lost": reroute.map(|r| r.frames_lost),
                "beacon_bytes": s.beacon_bytes_mean,
                "of_which_key_binding": s.binding_bytes,
                "links_left_out_per_beacon": s.links_left_out_per_beacon,
                "beacon_bytes_per_node_per_sec": s.beacon_bytes_in_per_node_per_sec,
                "recompute_ms": s.recompute_ms_mean,
                "db_bytes": db_bytes,
                "db_bytes_per_known_node": db_bytes as f64 / max_nodes.min(n) as f64,
                "wall_s": wall,
            }));
        }
    }
    rows
}

/// Heap bytes of one node's link-state database and routing table once it
/// has heard every beacon of `topology`.
fn database_bytes(topology: &Topology, mut config: ProtocolConfig) -> usize {
    config.observers = 1;
    let base = heap_bytes();
    let mut sim = Simulation::new(topology, config).expect("simulated");
    let observer = sim.observers()[0];
    sim.run_until(Duration::from_secs(2), &mut |_| {});
    let held = sim.take_database(observer).expect("an observer");
    drop(sim);
    let bytes = heap_bytes().saturating_sub(base);
    drop(held);
    bytes
}
