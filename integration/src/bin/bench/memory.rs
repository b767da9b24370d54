//! `bench memory`: resident memory per node when every node has 20 peers
//! (a full mesh of 21 loopback nodes; 6 nodes with `--quick`), split into what
//! each node has to itself (anonymous: heap, stacks) and the file-backed pages
//! (the binary's code), which all nodes on one machine share; PSS charges each
//! node its share of those.

use std::time::{Duration, Instant};

use serde_json::json;
use x0tta6bl4_integration::{memory_of, wait_for, Memory, TestMesh};

/// The product's defaults where the test nodes differ (their faster beacons
/// and pings, bigger inbox, debug hooks): the bench measures a node as users run it.
const PRODUCT_DEFAULTS: [(&str, &str); 5] = [
    ("X0TTA6BL4_MESH__BEACON_INTERVAL_MS", "1000"),
    ("X0TTA6BL4_MESH__PING_INTERVAL_MS", "1000"),
    ("X0TTA6BL4_ROUTER__BEACON_EXPIRY_MS", "5000"),
    ("X0TTA6BL4_ROUTER__INBOX_CAPACITY", "1024"),
    ("X0TTA6BL4_ROUTER__FAULT_INJECTION", "false"),
];

/// One figure of a node's memory.
type Field = fn(&Memory) -> u64;

/// Starts the full mesh, waits until every node is linked to all others, and
/// prints RSS per node.
pub fn run(quick: bool) {
    let nodes = if quick { 6 } else { 21 };
    eprintln!("starting {nodes} nodes, each discovering the others from node 0");
    let mut mesh = TestMesh::new();
    for i in 0..nodes {
        let links: Vec<usize> = if i == 0 { vec![] } else { vec![0] };
        mesh.add_with(&format!("m{i}"), &links, true, &PRODUCT_DEFAULTS);
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
    let memory: Vec<Memory> = mesh.nodes.iter().filter_map(|n| n.pid().and_then(memory_of)).collect();
    let mib = |b: u64| b as f64 / 1_048_576.0;
    let mean = |f: Field| mib(memory.iter().map(f).sum::<u64>()) / memory.len().max(1) as f64;
    let max = |f: Field| memory.iter().map(f).max().map_or(0.0, mib);
    let rows: [(&str, Field); 4] = [
        ("RSS", |m| m.rss),
        ("anonymous (own)", |m| m.anon),
        ("file-backed (shared code)", |m| m.file),
        ("PSS", |m| m.pss),
    ];
    println!();
    println!("{nodes} nodes, {} peers each", nodes - 1);
    println!("memory per node              mean MiB   max MiB");
    for (name, f) in rows {
        println!("{name:<27} {:>9.1} {:>9.1}", mean(f), max(f));
    }
    println!(
        "{}",
        json!({
            "bench": "memory",
            "nodes": nodes,
            "peers_per_node": nodes - 1,
            "per_node": memory,
            "rss_mean_mib": mean(|m| m.rss),
            "rss_max_mib": max(|m| m.rss),
            "anon_mean_mib": mean(|m| m.anon),
            "file_mean_mib": mean(|m| m.file),
            "pss_mean_mib": mean(|m| m.pss),
        })
    );
}
