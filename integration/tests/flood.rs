//! A flood, bounded in time, on loopback: a rogue neighbour sends junk frames
//! and handshake Inits as fast as it can while an honest neighbour keeps
//! talking to the same node. The victim's healer is off, so what holds is the
//! data plane's own protection: per-neighbour frame buckets, per-peer
//! handshake buckets, cookies, bounded tables.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use x0tta6bl4_integration::outage::percentile;
use x0tta6bl4_integration::{metric, metrics_text, rss_bytes, wait_for, NodeProcess, TestMesh};

/// How long the flood lasts.
const FLOOD: Duration = Duration::from_secs(8);
/// The victim's RSS may grow by at most this much during the flood.
const RSS_GROWTH_BOUND: u64 = 64 << 20;

/// Round-trip times (µs) of echoes from `from` to `to`, one every 50 ms, for
/// `window`; `None` for an echo that failed.
fn echoes(from: &NodeProcess, to: &NodeProcess, window: Duration) -> Vec<Option<u64>> {
    let started = Instant::now();
    let mut rtts = Vec::new();
    while started.elapsed() < window {
        let reply = from.post("/api/v1/ping", &json!({ "to": to.peer_id, "timeout_ms": 1000 }));
        rtts.push(
            reply
                .ok()
                .and_then(|r| r["rtt_ms"].as_f64())
                .map(|ms| (ms * 1000.0) as u64),
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    rtts
}

fn summary(rtts: &[Option<u64>]) -> (usize, usize, u64, u64) {
    let ok: Vec<u64> = rtts.iter().flatten().copied().collect();
    (ok.len(), rtts.len(), percentile(&ok, 0.5), percentile(&ok, 0.99))
}

#[test]
fn a_flood_of_junk_and_handshakes_leaves_memory_bounded_and_honest_traffic_flowing() {
    let mut mesh = TestMesh::new();
    let v = mesh.add_with("victim", &[], false, &[("X0TTA6BL4_HEALER__ENABLED", "false")]);
    let h = mesh.add("honest", &[v], false);
    let r = mesh.add("rogue", &[v], false);
    for (from, to) in [(h, v), (r, v), (v, r)] {
        mesh.wait_route(from, to, 1, Duration::from_secs(20));
    }
    let (victim, honest, rogue) = (&mesh.nodes[v], &mesh.nodes[h], &mesh.nodes[r]);
    let pid = victim.pid().expect("victim runs");
    let before = summary(&echoes(honest, victim, Duration::from_secs(2)));
    let rss_before = rss_bytes(pid).expect("rss");

    let stop = AtomicBool::new(false);
    let peak = AtomicU64::new(rss_before);
    let (junk_sent, inits_sent) = (AtomicU64::new(0), AtomicU64::new(0));
    let (during, sent) = std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let body = json!({ "peer": victim.peer_id, "hex": "ff00ff00", "count": 5000 });
                if let Ok(reply) = rogue.post("/api/v1/debug/frame", &body) {
                    junk_sent.fetch_add(reply["queued"].as_u64().unwrap_or(0), Ordering::Relaxed);
                }
            }
        });
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let body = json!({ "peer": victim.peer_id, "count": 200 });
                if let Ok(reply) = rogue.post("/api/v1/debug/handshakes", &body) {
                    inits_sent.fetch_add(reply["sent"].as_u64().unwrap_or(0), Ordering::Relaxed);
                }
            }
        });
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(rss_bytes(pid).unwrap_or(0), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let messages = scope.spawn(|| {
            let mut sent = 0;
            let started = Instant::now();
            while started.elapsed() < FLOOD {
                let text = format!("honest {sent}");
                if honest
                    .post("/api/v1/messages", &json!({ "to": victim.peer_id, "text": text }))
                    .is_ok()
                {
                    sent += 1;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            sent
        });
        let during = echoes(honest, victim, FLOOD);
        let sent = messages.join().unwrap_or(0);
        stop.store(true, Ordering::Relaxed);
        (during, sent)
    });

    let delivered = || {
        victim.get("/api/v1/messages").expect("inbox")["messages"]
            .as_array()
            .map(|m| {
                m.iter()
                    .filter(|m| m["text"].as_str().is_some_and(|t| t.starts_with("honest ")))
                    .count()
            })
            .unwrap_or(0)
    };
    wait_for(Duration::from_secs(10), "every honest message to arrive", || {
        (delivered() >= sent).then_some(())
    });
    let (ok, total, p50, p99) = summary(&during);
    let peak = peak.load(Ordering::Relaxed);
    let text = metrics_text(victim);
    let count = |name: &str, label: &str| metric(&text, name, &[label]) as u64;
    let frames_limited = count("x0tta_router_frames_rejected_total", "reason=\"rate_limited\"");
    let junk_rejected = count("x0tta_router_frames_rejected_total", "reason=\"malformed\"");
    let inits_limited = count("x0tta_pqc_handshakes_total", "result=\"rate_limited\"");
    let cookies = count("x0tta_pqc_handshakes_total", "result=\"cookie_required\"");
    println!(
        "flood {FLOOD:?}: rogue queued {} junk frames and {} Inits; victim rejected {junk_rejected} malformed, \
         {frames_limited} over the frame rate, {inits_limited} Inits over the handshake rate, answered {cookies} with a cookie",
        junk_sent.load(Ordering::Relaxed),
        inits_sent.load(Ordering::Relaxed),
    );
    println!(
        "honest echoes before: {}/{} p50 {} µs p99 {} µs; during: {ok}/{total} p50 {p50} µs p99 {p99} µs; \
         {sent} honest messages all delivered",
        before.0, before.1, before.2, before.3
    );
    println!(
        "victim RSS {} MiB before, peak {} MiB (bound: +{} MiB)",
        rss_before >> 20,
        peak >> 20,
        RSS_GROWTH_BOUND >> 20
    );
    assert!(
        peak < rss_before + RSS_GROWTH_BOUND,
        "RSS grew from {rss_before} to {peak}"
    );
    assert!(ok * 100 >= total * 95, "honest echoes answered: {ok} of {total}");
    assert!(inits_limited > 0, "the handshake bucket engaged");
    assert!(
        junk_rejected + frames_limited > 1000,
        "the junk reached the victim and was refused"
    );
}
