//! `bench memory`: resident memory per node when every node has 20 peers
//! (a full mesh of 21 loopback nodes; 6 nodes with `--quick`).

use std::time::{Duration, Instant};

use serde_json::json;
use x0tta6bl4_integration::{rss_bytes, wait_for, TestMesh};

/// Starts the full mesh, waits until every node is linked to all others, and
/// prints RSS per node.
pub fn run(quick: bool) {
    let nodes = if quick { 6 } else { 21 };
    eprintln!("starting {nodes} nodes, each discovering the others from node 0");
    let mut mesh = TestMesh::new();
    for i in 0..nodes {
        let links: Vec<usize> = if i == 0 { vec![] } else { vec![0] };
        mesh.add(&format!("m{i}"), &links, true);
    }
    let started = Instant::now();
    wait_for(Duration::from_secs(120), "every node linked to every other", || {
        mesh.nodes
            .iter()
            .all(|n| {
                n.get("/api/v1/status")
                    .ok()
                    .and_then(|s| s["peers_connected"].as_u64())
                    .is_some_and(|p| p as usize == nodes - 1)
            })
            .then_some(())
    });
    eprintln!(
        "full mesh after {:.1} s; letting it settle",
        started.elapsed().as_secs_f64()
    );
    std::thread::sleep(Duration::from_secs(if quick { 2 } else { 10 }));
    let rss: Vec<u64> = mesh.nodes.iter().filter_map(|n| n.pid().and_then(rss_bytes)).collect();
    let mib = |b: u64| b as f64 / 1_048_576.0;
    let mean = rss.iter().sum::<u64>() as f64 / rss.len().max(1) as f64 / 1_048_576.0;
    let max = rss.iter().copied().max().map_or(0.0, mib);
    println!();
    println!("nodes  peers each  RSS mean MiB  RSS max MiB");
    println!("{nodes:>5} {:>11} {mean:>13.1} {max:>12.1}", nodes - 1);
    println!(
        "{}",
        json!({ "bench": "memory", "nodes": nodes, "peers_per_node": nodes - 1, "rss_bytes": rss, "rss_mean_mib": mean, "rss_max_mib": max })
    );
}
