//! `bench twin`: the digital twin's single-node what-if against networkx on the
//! same generated meshes (Barabási–Albert, m = 2) of 1k, 10k and 100k nodes
//! (`--quick`: 1k and 10k), side by side in one run. Both compute the same
//! answer (components, cut-off nodes, articulation points and bridges before
//! and after); graph construction is excluded on both sides, and the answers
//! are checked equal. Prints times, the speed-up and the graph's heap bytes
//! per node (jemalloc's count), then a JSON line.

use std::time::Instant;

use serde_json::json;
use x0tta6bl4_sim::oracle::{self, Case};
use x0tta6bl4_sim::{generate, what_if, Failure, Net, Shape};

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
    let mut rows = Vec::new();
    println!(
        "{:>8} {:>9} {:>12} {:>12} {:>9} {:>13}",
        "nodes", "links", "sim ms", "networkx ms", "speed-up", "graph B/node"
    );
    for &n in sizes {
        let seed = 42 + n as u64;
        let topology = generate(Shape::BarabasiAlbert(n, 2), seed).expect("generated");
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
    println!("{}", json!({ "bench": "twin", "shape": "ba:N:2", "whatif": rows }));
}
