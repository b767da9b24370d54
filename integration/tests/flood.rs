//! A flood, bounded in time, on loopback: a rogue neighbour sends junk frames
//! and handshake Inits as fast as it can while an honest neighbour keeps
//! talking to the same node. The victim's healer is off, so what holds is the
//! data plane's own protection: junk refused before any work (and counted
//! as the neighbour's violations), per-peer handshake buckets, cookies,
//! bounded tables, and stream readers that take turns.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use x0tta6bl4_integration::outage::percentile;
use x0tta6bl4_integration::{metric, metrics_text, poll_for, rss_bytes, NodeProcess, TestMesh};

/// The flood lasts at least this long…
const FLOOD_MIN: Duration = Duration::from_secs(8);
/// …and until the victim has refused this many junk frames and its handshake
/// bucket has engaged (a slower machine needs longer to get there)…
const JUNK_REFUSED: u64 = 2_000;
/// …but never longer than this.
const FLOOD_MAX: Duration = Duration::from_secs(120);
/// Junk frames per debug request: small enough that a request finishes while
/// the victim reads slowly.
const JUNK_PER_REQUEST: u32 = 500;
/// The victim's RSS may grow by at most this much during the flood.
const RSS_GROWTH_BOUND: u64 = 64 << 20;

/// What the victim has refused so far: junk frames (malformed),
/// Inits over the handshake rate, and Inits answered with a cookie.
#[derive(Debug, Clone, Copy)]
struct Refused {
    junk: u64,
    inits: u64,
    cookies: u64,
}

fn refused(victim: &NodeProcess) -> Refused {
    let text = metrics_text(victim);
    let count = |name: &str, label: &str| metric(&text, name, &[label]) as u64;
    Refused {
        junk: count("x0tta_router_frames_rejected_total", "reason=\"malformed\""),
        inits: count("x0tta_pqc_handshakes_total", "result=\"rate_limited\""),
        cookies: count("x0tta_pqc_handshakes_total", "result=\"cookie_required\""),
    }
}

/// Round-trip times (µs) of echoes from `from` to `to`, one every 50 ms, until
/// `done` says so; `None` for an echo that failed.
fn echoes_until(from: &NodeProcess, to: &NodeProcess, mut done: impl FnMut() -> bool) -> Vec<Option<u64>> {
    let mut rtts = Vec::new();
    while !done() {
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

/// Honest messages in `node`'s inbox.
fn honest_delivered(node: &NodeProcess) -> usize {
    node.get("/api/v1/messages").map_or(0, |inbox| {
        inbox["messages"].as_array().map_or(0, |m| {
            m.iter()
                .filter(|m| m["text"].as_str().is_some_and(|t| t.starts_with("honest ")))
                .count()
        })
    })
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
    let quiet = Instant::now();
    let before = summary(&echoes_until(honest, victim, || {
        quiet.elapsed() > Duration::from_secs(2)
    }));
    let rss_before = rss_bytes(pid).expect("rss");
    let refused_before = refused(victim);

    let stop = AtomicBool::new(false);
    let peak = AtomicU64::new(rss_before);
    let (junk_sent, inits_sent) = (AtomicU64::new(0), AtomicU64::new(0));
    let started = Instant::now();
    let (during, sent, refused_during) = std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let body = json!({ "peer": victim.peer_id, "hex": "ff00ff00", "count": JUNK_PER_REQUEST });
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
            while !stop.load(Ordering::Relaxed) {
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
        // Echoes run until the flood has done its work: a slower machine
        // takes longer to push the junk through, so the test waits for it
        // rather than measuring whatever fitted into a fixed window.
        let mut last_check = Instant::now();
        let mut refused_now = refused_before;
        let during = echoes_until(honest, victim, || {
            if last_check.elapsed() >= Duration::from_secs(1) {
                refused_now = refused(victim);
                last_check = Instant::now();
            }
            let enough =
                refused_now.junk - refused_before.junk >= JUNK_REFUSED && refused_now.inits > refused_before.inits;
            (started.elapsed() >= FLOOD_MIN && enough) || started.elapsed() >= FLOOD_MAX
        });
        stop.store(true, Ordering::Relaxed);
        let sent = messages.join().unwrap_or(0);
        (during, sent, refused_now)
    });
    let flood = started.elapsed();

    let arrived = poll_for(Duration::from_secs(20), || {
        let arrived = honest_delivered(victim);
        (arrived >= sent).then_some(arrived)
    })
    .unwrap_or_else(|| honest_delivered(victim));
    let (ok, total, p50, p99) = summary(&during);
    let peak = peak.load(Ordering::Relaxed);
    let after = refused(victim);
    println!(
        "flood {flood:.1?}: rogue queued {} junk frames and {} Inits; victim refused {} junk frames \
         ({} by the end of the flood), {} Inits over the handshake rate, answered {} with a cookie",
        junk_sent.load(Ordering::Relaxed),
        inits_sent.load(Ordering::Relaxed),
        after.junk - refused_before.junk,
        refused_during.junk - refused_before.junk,
        after.inits - refused_before.inits,
        after.cookies - refused_before.cookies,
    );
    println!(
        "honest echoes before: {}/{} p50 {} µs p99 {} µs; during: {ok}/{total} p50 {p50} µs p99 {p99} µs; \
         honest messages delivered {arrived}/{sent}",
        before.0, before.1, before.2, before.3
    );
    println!(
        "victim RSS {} MiB before, peak {} MiB (bound: +{} MiB)",
        rss_before >> 20,
        peak >> 20,
        RSS_GROWTH_BOUND >> 20
    );
    if arrived < sent {
        let report = |node: &NodeProcess| {
            metrics_text(node)
                .lines()
                .filter(|l| l.starts_with("x0tta_router_frames_rejected") || l.starts_with("x0tta_pqc_"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        println!("victim:\n{}\nhonest:\n{}", report(victim), report(honest));
        println!(
            "honest's reports: {}",
            honest
                .get("/api/v1/messages")
                .map(|m| m["undeliverable"].clone())
                .unwrap_or_default()
        );
    }
    assert!(
        peak < rss_before + RSS_GROWTH_BOUND,
        "RSS grew from {rss_before} to {peak}"
    );
    assert!(ok * 100 >= total * 95, "honest echoes answered: {ok} of {total}");
    assert!(after.inits > refused_before.inits, "the handshake bucket engaged");
    assert!(
        after.junk - refused_before.junk >= JUNK_REFUSED,
        "the junk reached the victim and was refused within {FLOOD_MAX:?}"
    );
    assert_eq!(arrived, sent, "every honest message arrived");
}
