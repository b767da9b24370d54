//! Byzantine checks between real node processes on loopback: a node that
//! announces a link nobody confirms, or a sequence number from the future, is
//! ignored, reported and quarantined by the healer.

use std::time::Duration;

use serde_json::{json, Value};
use x0tta6bl4_integration::detour::FAST_HEALER;
use x0tta6bl4_integration::{metric, metrics_text, unix_ms, wait_for, NodeProcess, TestMesh};

fn byzantine_env() -> Vec<(&'static str, &'static str)> {
    let mut env = vec![("X0TTA6BL4_BYZANTINE", "true")];
    env.extend_from_slice(FAST_HEALER);
    env
}

/// A beacon from `liar` claiming links to `claims`.
fn forged_beacon(liar: &NodeProcess, claims: &[&NodeProcess], seq: u64) -> Vec<u8> {
    let links: Vec<Value> = claims
        .iter()
        .map(|n| json!({ "peer_id": n.peer_id, "rtt_ms": 0.1, "loss": 0.0 }))
        .collect();
    json!({
        "peer_id": liar.peer_id,
        "name": "liar",
        "addrs": [],
        "seq": seq,
        "timestamp_ms": unix_ms(),
        "links": links,
    })
    .to_string()
    .into_bytes()
}

/// Publishes raw beacon bytes from `liar`; false when it has nobody to
/// publish to (cut off).
fn publish(liar: &NodeProcess, bytes: Vec<u8>) -> bool {
    liar.client()
        .request("POST", "/api/v1/debug/beacon")
        .send_bytes(&bytes)
        .is_ok()
}

fn has_edge(node: &NodeProcess, x: &str, y: &str) -> bool {
    node.get("/api/v1/topology").expect("topology")["edges"]
        .as_array()
        .is_some_and(|edges| {
            edges
                .iter()
                .any(|e| (e["a"] == x && e["b"] == y) || (e["a"] == y && e["b"] == x))
        })
}

#[test]
fn a_node_announcing_a_fake_link_is_ignored_reported_and_quarantined() {
    let env = byzantine_env();
    let mut mesh = TestMesh::new();
    let a = mesh.add_with("a", &[], false, &env);
    let b = mesh.add_with("b", &[a], false, &env);
    let c = mesh.add_with("c", &[b], false, &env);
    let m = mesh.add_with("m", &[a], false, &env);
    mesh.wait_route(a, c, 2, Duration::from_secs(20));
    mesh.wait_route(c, m, 3, Duration::from_secs(20));
    let (liar, victim, neighbour) = (&mesh.nodes[m], &mesh.nodes[c], &mesh.nodes[a]);

    // A sequence number from the future would freeze M's state everywhere.
    wait_for(Duration::from_secs(5), "the liar to publish", || {
        publish(liar, forged_beacon(liar, &[neighbour], u64::MAX)).then_some(())
    });
    // M claims a direct link to C, which C never had, beacon after beacon,
    // until its only neighbour A cuts it off.
    let mut quarantine = None;
    for _ in 0..80 {
        publish(liar, forged_beacon(liar, &[neighbour, victim], unix_ms()));
        for node in &mesh.nodes[..3] {
            assert!(
                !has_edge(node, &liar.peer_id, &victim.peer_id),
                "the fake link never enters a graph"
            );
        }
        let healing = neighbour.get("/api/v1/healing").expect("healing");
        quarantine = healing["history"].as_array().and_then(|h| {
            h.iter()
                .find(|r| r["action"] == "quarantine" && r["target"] == liar.peer_id.as_str())
                .cloned()
        });
        if quarantine.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let record = quarantine.expect("A's healer quarantines the liar");
    println!(
        "A's healer: {} {} ({})",
        record["action"], record["result"], record["evidence"]
    );
    assert_eq!(record["symptom"], "byzantine");
    let liars = neighbour.get("/api/v1/topology").expect("topology")["liars"].clone();
    println!("A's liars: {liars}");
    assert!(
        liars.as_array().is_some_and(|l| l
            .iter()
            .any(|x| x["peer"] == liar.peer_id.as_str() && x["about"] == victim.peer_id.as_str())),
        "{liars}"
    );
    // Three strikes: the sequence jump and two periods of the denied link.
    let text = metrics_text(neighbour);
    let (fake, jump) = (
        metric(&text, "x0tta_byzantine_lies_total", &["lie=\"fake_link\""]),
        metric(&text, "x0tta_byzantine_lies_total", &["lie=\"seq_jump\""]),
    );
    assert!(fake >= 2.0 && jump >= 1.0, "fake_link {fake}, seq_jump {jump}");
    wait_for(Duration::from_secs(10), "the liar to be cut off", || {
        (liar.get("/api/v1/status").ok()?["peers_connected"] == 0).then_some(())
    });
    let route = mesh.wait_route(a, c, 2, Duration::from_secs(5));
    assert_eq!(
        route["next_hop"],
        mesh.nodes[b].peer_id.as_str(),
        "A still reaches C over B"
    );
}
