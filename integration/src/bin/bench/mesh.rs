//! `bench mesh`: routed throughput and latency over loopback, RSS per node.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use x0tta6bl4_integration::{node_binary, rss_bytes, wait_for, TestMesh};

/// Throughput and latency of routed 1 KiB messages over 1 and 3 hops, RSS per node.
pub fn run(quick: bool) {
    let probes: u64 = if quick { 2_000 } else { 50_000 };
    let pings = if quick { 50 } else { 500 };
    eprintln!("node binary: {}", node_binary().display());
    eprintln!("starting a line of 4 nodes");
    let mesh = TestMesh::line(4);
    mesh.wait_route(0, 3, 3, Duration::from_secs(30));
    mesh.wait_route(3, 0, 3, Duration::from_secs(30));

    let mut results = Vec::new();
    for (hops, dst) in [(1u64, 1usize), (3, 3)] {
        eprintln!("{hops} hop(s): {probes} probes of 1 KiB, then {pings} echoes");
        let flow = blast(&mesh, dst, probes);
        let rtt = echo_rtts(&mesh, dst, pings);
        results.push(json!({ "hops": hops, "flow": flow, "echo_rtt_ms": rtt }));
    }
    let rss: Vec<u64> = mesh.nodes.iter().filter_map(|n| n.pid().and_then(rss_bytes)).collect();
    let rss_mean = rss.iter().sum::<u64>() as f64 / rss.len().max(1) as f64;

    println!();
    println!("hops   msg/s (rx)   p50 ms   p95 ms   p99 ms   delivered   echo p50 ms   echo p99 ms");
    for r in &results {
        let f = &r["flow"];
        println!(
            "{:>4} {:>12.0} {:>8.2} {:>8.2} {:>8.2} {:>11} {:>13.3} {:>13.3}",
            r["hops"].as_u64().unwrap_or_default(),
            f["msgs_per_s"].as_f64().unwrap_or_default(),
            f["p50_ms"].as_f64().unwrap_or_default(),
            f["p95_ms"].as_f64().unwrap_or_default(),
            f["p99_ms"].as_f64().unwrap_or_default(),
            f["delivered"].as_u64().unwrap_or_default(),
            r["echo_rtt_ms"]["p50"].as_f64().unwrap_or_default(),
            r["echo_rtt_ms"]["p99"].as_f64().unwrap_or_default(),
        );
    }
    println!("RSS per node: {:.1} MiB (mean of {})", rss_mean / 1048576.0, rss.len());
    println!(
        "{}",
        json!({
            "bench": "mesh",
            "payload_bytes": 1024,
            "probes": probes,
            "results": results,
            "rss_bytes_per_node": rss,
            "rss_mean_mib": rss_mean / 1048576.0,
        })
    );
}

/// Sends `count` probes from node 0 to `dst` as fast as the path takes them.
fn blast(mesh: &TestMesh, dst: usize, count: u64) -> Value {
    let (src, dst) = (&mesh.nodes[0], &mesh.nodes[dst]);
    let reset = ureq::delete(&format!("{}/api/v1/bench/probes", dst.api)).call();
    assert!(reset.is_ok(), "cannot reset probe stats: {reset:?}");
    let started = Instant::now();
    let sent = src
        .post(
            "/api/v1/bench/probes",
            &json!({ "to": dst.peer_id, "count": count, "size": 1024 }),
        )
        .expect("probes sent");
    // Wait until the receiver's count stops growing.
    let mut last = 0;
    let summary = wait_for(Duration::from_secs(120), "probes to drain", || {
        std::thread::sleep(Duration::from_millis(300));
        let summary = dst.get("/api/v1/bench/probes").ok()?;
        let received = summary["count"].as_u64()?;
        let done = received >= sent["sent"].as_u64().unwrap_or(count) || (received == last && received > 0);
        last = received;
        done.then_some(summary)
    });
    let delivered = summary["count"].as_u64().unwrap_or_default();
    let span_s = summary["span_ms"].as_f64().unwrap_or_default() / 1_000.0;
    let us = |k: &str| summary[k].as_f64().unwrap_or_default() / 1_000.0;
    json!({
        "sent": sent["sent"],
        "send_failures": sent["failed"],
        "sender_seconds": sent["seconds"],
        "delivered": delivered,
        "msgs_per_s": if span_s > 0.0 { delivered as f64 / span_s } else { 0.0 },
        "p50_ms": us("p50_us"),
        "p95_ms": us("p95_us"),
        "p99_ms": us("p99_us"),
        "max_ms": us("max_us"),
        "wall_seconds": started.elapsed().as_secs_f64(),
    })
}

/// Round-trip times of routed echoes with no other load, in milliseconds.
fn echo_rtts(mesh: &TestMesh, dst: usize, count: usize) -> Value {
    let peer = &mesh.nodes[dst].peer_id;
    let mut rtts: Vec<f64> = (0..count)
        .filter_map(|_| mesh.nodes[0].post("/api/v1/ping", &json!({ "to": peer })).ok())
        .filter_map(|r| r["rtt_ms"].as_f64())
        .collect();
    rtts.sort_by(f64::total_cmp);
    let at = |q: f64| {
        rtts.get(((rtts.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    json!({ "count": rtts.len(), "p50": at(0.5), "p95": at(0.95), "p99": at(0.99) })
}
