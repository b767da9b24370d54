//! `bench mesh`: routed throughput and latency over loopback, RSS per node:
//! plain probes (one-way latency at the receiver), then sealed `Data`
//! messages of 64 B, 1 KiB and 16 KiB as users send them, every loss counted.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use x0tta6bl4_integration::{node_binary, rss_bytes, wait_for, TestMesh};

/// Throughput and latency over 1 and 3 hops (probes, then sealed messages), RSS per node.
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
    // Measured before the sealed runs: their inboxes then hold large messages.
    let rss: Vec<u64> = mesh.nodes.iter().filter_map(|n| n.pid().and_then(rss_bytes)).collect();
    let rss_mean = rss.iter().sum::<u64>() as f64 / rss.len().max(1) as f64;
    let mut sealed = Vec::new();
    for (hops, dst) in [(1u64, 1usize), (3, 3)] {
        for size in SEALED_SIZES {
            let count = if size > 4_096 { probes / 5 } else { probes };
            eprintln!("{hops} hop(s): {count} sealed Data messages of {size} B");
            let mut flow = blast_data(&mesh, dst, count, size);
            flow["hops"] = json!(hops);
            sealed.push(flow);
        }
    }

    println!();
    println!("probes hops   msg/s (rx)   p50 ms   p95 ms   p99 ms   delivered/sent   echo p50 ms   echo p99 ms");
    for r in &results {
        let f = &r["flow"];
        println!(
            "{:>11} {:>12.0} {:>8.2} {:>8.2} {:>8.2} {:>9}/{:<6} {:>13.3} {:>13.3}",
            r["hops"].as_u64().unwrap_or_default(),
            f["msgs_per_s"].as_f64().unwrap_or_default(),
            f["p50_ms"].as_f64().unwrap_or_default(),
            f["p95_ms"].as_f64().unwrap_or_default(),
            f["p99_ms"].as_f64().unwrap_or_default(),
            f["delivered"].as_u64().unwrap_or_default(),
            f["sent"].as_u64().unwrap_or_default(),
            r["echo_rtt_ms"]["p50"].as_f64().unwrap_or_default(),
            r["echo_rtt_ms"]["p99"].as_f64().unwrap_or_default(),
        );
    }
    println!();
    println!("sealed Data   hops   msg/s (rx)     MB/s   delivered/sent   send failures");
    for f in &sealed {
        println!(
            "{:>9} B {:>6} {:>12.0} {:>8.1} {:>9}/{:<6} {:>15}",
            f["payload_bytes"].as_u64().unwrap_or_default(),
            f["hops"].as_u64().unwrap_or_default(),
            f["msgs_per_s"].as_f64().unwrap_or_default(),
            f["mb_per_s"].as_f64().unwrap_or_default(),
            f["delivered"].as_u64().unwrap_or_default(),
            f["sent"].as_u64().unwrap_or_default(),
            f["send_failures"].as_u64().unwrap_or_default(),
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
            "sealed_data": sealed,
            "rss_bytes_per_node": rss,
            "rss_mean_mib": rss_mean / 1048576.0,
        })
    );
}

/// Sends `count` probes from node 0 to `dst` as fast as the path takes them.
fn blast(mesh: &TestMesh, dst: usize, count: u64) -> Value {
    let (src, dst) = (&mesh.nodes[0], &mesh.nodes[dst]);
    let reset = dst.client().request("DELETE", "/api/v1/bench/probes").call();
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

/// Payload sizes of the sealed `Data` runs.
const SEALED_SIZES: [usize; 3] = [64, 1_024, 16_384];

/// Sends `count` sealed `Data` messages of `size` bytes from node 0 to `dst`
/// after one that sets up the session; counts what arrived and how fast.
fn blast_data(mesh: &TestMesh, dst: usize, count: u64, size: usize) -> Value {
    let (src, dst) = (&mesh.nodes[0], &mesh.nodes[dst]);
    let send = |count: u64| {
        src.post(
            "/api/v1/bench/probes",
            &json!({ "to": dst.peer_id, "count": count, "size": size, "kind": "data" }),
        )
        .expect("data sent")
    };
    let reset = || {
        let reset = dst.client().request("DELETE", "/api/v1/bench/probes").call();
        assert!(reset.is_ok(), "cannot reset message counts: {reset:?}");
    };
    reset();
    // The first message waits for the end-to-end handshake; the run starts after it.
    send(1);
    wait_for(Duration::from_secs(30), "the session to carry a message", || {
        (dst.get("/api/v1/bench/probes").ok()?["messages"].as_u64()? >= 1).then_some(())
    });
    reset();
    let sent = send(count);
    let sent_ok = sent["sent"].as_u64().unwrap_or_default();
    let mut last = 0;
    let summary = wait_for(Duration::from_secs(120), "messages to drain", || {
        std::thread::sleep(Duration::from_millis(300));
        let summary = dst.get("/api/v1/bench/probes").ok()?;
        let received = summary["messages"].as_u64()?;
        let done = received >= sent_ok || (received == last && received > 0);
        last = received;
        done.then_some(summary)
    });
    let delivered = summary["messages"].as_u64().unwrap_or_default();
    let span_s = summary["messages_span_ms"].as_f64().unwrap_or_default() / 1_000.0;
    let rate = if span_s > 0.0 { delivered as f64 / span_s } else { 0.0 };
    json!({
        "payload_bytes": size,
        "sent": sent_ok,
        "send_failures": sent["failed"],
        "sender_seconds": sent["seconds"],
        "delivered": delivered,
        "msgs_per_s": rate,
        "mb_per_s": rate * size as f64 / 1e6,
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
