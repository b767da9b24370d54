//! `bench stability`: route stability of a 20-node random mesh in network
//! namespaces (a ring plus random chords, 30 links), right after it converged.
//! Counts next-hop changes per node and minute over a quiet window, and how many
//! unreliable datagrams between random pairs arrive; once with the hysteresis
//! floor off (percent only) and once with the default settings, in one run.

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use x0tta6bl4_integration::netns::{test_net_or_skip, TestNet};
use x0tta6bl4_integration::{inbox_ids, metric, metrics_text, wait_routes_to};

const NODES: usize = 20;
const LINKS: usize = 30;
const CHANGES: &str = "x0tta_router_next_hop_changes_total";

/// One configuration under test.
struct Setting {
    name: &'static str,
    env: &'static [(&'static str, &'static str)],
}

const SETTINGS: &[Setting] = &[
    Setting {
        name: "10 %, no floor",
        env: &[("X0TTA6BL4_ROUTER__HYSTERESIS_FLOOR_US", "0")],
    },
    Setting {
        name: "10 % or 1 ms (default)",
        env: &[],
    },
];

/// Next-hop changes summed over every node.
fn total_changes(net: &TestNet) -> f64 {
    (0..NODES)
        .map(|h| metric(&metrics_text(net.node(h)), CHANGES, &[]))
        .sum()
}

/// Waits until every node has a route to every other (60 s in all); returns
/// how long it took.
fn converge(net: &TestNet) -> Duration {
    let started = Instant::now();
    let peers: Vec<String> = (0..NODES).map(|h| net.node(h).peer_id.clone()).collect();
    for (h, own) in peers.iter().enumerate() {
        let others: Vec<String> = peers.iter().filter(|p| *p != own).cloned().collect();
        let left = Duration::from_secs(60).saturating_sub(started.elapsed());
        wait_routes_to(net.node(h), &others, left);
    }
    started.elapsed()
}

/// Sends `count` unreliable datagrams between random pairs, 10 ms apart; how
/// many arrived a second after the last.
fn datagrams(net: &TestNet, count: usize, rng: &mut impl Rng) -> usize {
    let mut sent: Vec<(usize, u64)> = Vec::with_capacity(count);
    for i in 0..count {
        let (from, to) = loop {
            let (a, b) = (rng.gen_range(0..NODES), rng.gen_range(0..NODES));
            if a != b {
                break (a, b);
            }
        };
        let body = json!({ "to": net.node(to).peer_id, "text": format!("datagram {i}") });
        if let Some(id) = net
            .node(from)
            .post("/api/v1/messages", &body)
            .ok()
            .and_then(|r| r["id"].as_u64())
        {
            sent.push((to, id));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_secs(1));
    let inboxes: Vec<_> = (0..NODES).map(|h| inbox_ids(net.node(h))).collect();
    sent.iter().filter(|(to, id)| inboxes[*to].contains(id)).count()
}

/// Runs one setting on a fresh mesh.
fn measure(setting: &Setting, window: Duration, count: usize) -> Value {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let (mut net, _) = TestNet::random_mesh(NODES, LINKS, &mut rng).expect("random mesh");
    net.start_all(setting.env).expect("nodes start");
    let converged = converge(&net);
    eprintln!("  {}: converged after {converged:?}", setting.name);
    let before = total_changes(&net);
    let delivered = datagrams(&net, count, &mut rng);
    let sending = total_changes(&net) - before;
    eprintln!(
        "  {}: {delivered}/{count} datagrams, then a quiet {window:?}",
        setting.name
    );
    let quiet_start = total_changes(&net);
    std::thread::sleep(window);
    let quiet = total_changes(&net) - quiet_start;
    let per_node_min = quiet / NODES as f64 / (window.as_secs_f64() / 60.0);
    json!({
        "setting": setting.name,
        "converged_ms": converged.as_millis() as u64,
        "datagrams_sent": count,
        "datagrams_delivered": delivered,
        "changes_while_sending": sending,
        "changes_quiet": quiet,
        "changes_per_node_per_min": per_node_min,
    })
}

/// Runs every setting and prints the comparison.
pub fn run(quick: bool) {
    let (window, count) = if quick {
        (Duration::from_secs(5), 100)
    } else {
        (Duration::from_secs(60), 300)
    };
    if test_net_or_skip().is_none() {
        return;
    }
    eprintln!("stability: {NODES} nodes, {LINKS} links, {count} datagrams, quiet window {window:?}");
    let results: Vec<Value> = SETTINGS.iter().map(|s| measure(s, window, count)).collect();
    println!();
    println!("hysteresis                  converged ms   datagrams   changes/node/min");
    for r in &results {
        println!(
            "{:<27} {:>12} {:>7}/{:<3} {:>18.2}",
            r["setting"].as_str().unwrap_or_default(),
            r["converged_ms"].as_u64().unwrap_or_default(),
            r["datagrams_delivered"].as_u64().unwrap_or_default(),
            r["datagrams_sent"].as_u64().unwrap_or_default(),
            r["changes_per_node_per_min"].as_f64().unwrap_or_default(),
        );
    }
    let rate = |i: usize| results[i]["changes_per_node_per_min"].as_f64().unwrap_or_default();
    let ratio = rate(1) / rate(0).max(f64::MIN_POSITIVE);
    println!("changes with the floor / without: {ratio:.3}");
    println!(
        "{}",
        json!({ "bench": "stability", "nodes": NODES, "links": LINKS, "quiet_window_s": window.as_secs(), "results": results, "changes_ratio_floor_over_none": ratio })
    );
}
