//! End-to-end post-quantum sessions between real node processes on loopback:
//! what a transit node sees, and how `pqc.mode` treats a classical-only node.

use std::time::Duration;

use serde_json::json;
use x0tta6bl4_integration::{metric, metrics_text, wait_for, NodeProcess, TestMesh};

fn mode(value: &str) -> [(&'static str, &str); 1] {
    [("X0TTA6BL4_PQC__MODE", value)]
}

fn send(from: &NodeProcess, to: &NodeProcess, text: &str) -> Result<serde_json::Value, String> {
    from.post("/api/v1/messages", &json!({ "to": to.peer_id, "text": text }))
        .map_err(|e| e.to_string())
}

fn inbox_texts(node: &NodeProcess) -> Vec<String> {
    node.get("/api/v1/messages").expect("inbox")["messages"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(|m| m["text"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn wait_delivered(node: &NodeProcess, text: &str) {
    wait_for(
        Duration::from_secs(15),
        &format!("{text:?} delivered to {}", node.name()),
        || inbox_texts(node).iter().any(|t| t == text).then_some(()),
    );
}

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn required_sessions_cross_a_transit_node_that_cannot_read_them() {
    let mut mesh = TestMesh::new();
    let a = mesh.add_with("a", &[], false, &mode("required"));
    let t = mesh.add_with("t", &[a], false, &mode("required"));
    let c = mesh.add_with("c", &[t], false, &mode("required"));
    mesh.wait_route(a, c, 2, Duration::from_secs(20));
    mesh.wait_route(c, a, 2, Duration::from_secs(20));

    let secret = "the eagle lands at midnight";
    send(&mesh.nodes[a], &mesh.nodes[c], secret).expect("accepted");
    wait_delivered(&mesh.nodes[c], secret);
    send(&mesh.nodes[c], &mesh.nodes[a], "reply over the same session").expect("accepted");
    wait_delivered(&mesh.nodes[a], "reply over the same session");

    let relayed = mesh.nodes[t].get("/api/v1/debug/transit").expect("transit view")["relayed"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let kinds: Vec<&str> = relayed.iter().filter_map(|r| r["kind"].as_str()).collect();
    println!("the transit node relayed: {kinds:?}");
    assert!(kinds.contains(&"Handshake") && kinds.contains(&"Sealed"), "{kinds:?}");
    assert!(!kinds.contains(&"Data"), "no plaintext message crossed T: {kinds:?}");
    assert!(
        relayed.iter().all(|r| !r["payload_hex"]
            .as_str()
            .unwrap_or_default()
            .contains(&hex("the eagle"))),
        "the payload is not readable in transit"
    );
    let text = metrics_text(&mesh.nodes[a]);
    assert!(metric(&text, "x0tta_pqc_handshakes_total", &["result=\"x25519_mlkem768\""]) >= 1.0);
    assert_eq!(metric(&text, "x0tta_pqc_fallbacks_total", &[]), 0.0);
    assert_eq!(
        metric(&metrics_text(&mesh.nodes[t]), "x0tta_pqc_sessions", &[]),
        0.0,
        "T is no end of any session"
    );
}

#[test]
fn a_classical_only_node_is_refused_under_required_and_falls_back_under_preferred() {
    let mut mesh = TestMesh::new();
    let r = mesh.add_with("strict", &[], false, &mode("required"));
    let k = mesh.add_with("classical", &[r], false, &mode("off"));
    let p = mesh.add_with("lenient", &[k], false, &mode("preferred"));
    for (from, to) in [(r, k), (k, r), (k, p), (p, k)] {
        mesh.wait_route(from, to, 1, Duration::from_secs(20));
    }

    // The strict node has no binding of the classical one: it asks, and the
    // classical node's signed Reply says it has no post-quantum keys. The
    // strict node refuses the session (an authenticated refusal: a warning).
    send(&mesh.nodes[r], &mesh.nodes[k], "to a classical node").expect("queued while asking");
    wait_for(
        Duration::from_secs(10),
        "the strict node to refuse the classical Reply",
        || {
            let text = metrics_text(&mesh.nodes[r]);
            (metric(&text, "x0tta_alerts_total", &["name=\"PQC_HANDSHAKE_FAILURE\""]) >= 1.0).then_some(())
        },
    );
    assert!(
        inbox_texts(&mesh.nodes[k]).is_empty(),
        "nothing reached the classical node"
    );

    send(&mesh.nodes[k], &mesh.nodes[r], "classical offer").expect("queued at the sender");
    // Two refusals at the strict node: the classical Reply above, and the Init from the classical node.
    wait_for(
        Duration::from_secs(10),
        "the strict node to refuse the classical Init",
        || {
            let text = metrics_text(&mesh.nodes[r]);
            (metric(&text, "x0tta_pqc_handshakes_total", &["result=\"pq_required\""]) >= 2.0).then_some(())
        },
    );
    assert!(
        inbox_texts(&mesh.nodes[r]).is_empty(),
        "nothing from the classical node got through"
    );

    send(&mesh.nodes[k], &mesh.nodes[p], "classical but accepted").expect("accepted");
    wait_delivered(&mesh.nodes[p], "classical but accepted");
    send(&mesh.nodes[p], &mesh.nodes[k], "and back").expect("accepted");
    wait_delivered(&mesh.nodes[k], "and back");
    let text = metrics_text(&mesh.nodes[p]);
    assert!(metric(&text, "x0tta_pqc_handshakes_total", &["result=\"x25519\""]) >= 1.0);
    assert!(metric(&text, "x0tta_pqc_fallbacks_total", &[]) >= 1.0);
    assert!(metric(&text, "x0tta_alerts_total", &["name=\"PQC_FALLBACK\""]) >= 1.0);
}

#[test]
fn with_pqc_beacons_unsigned_beacons_are_dropped_and_counted() {
    let pq = [("X0TTA6BL4_PQC_BEACONS", "true")];
    let mut mesh = TestMesh::new();
    let a = mesh.add_with("a", &[], false, &pq);
    let b = mesh.add_with("b", &[a], false, &pq);
    let plain = mesh.add_with("plain", &[b], false, &[]);
    mesh.wait_route(a, b, 1, Duration::from_secs(20));
    // The plain node accepts signed beacons; the others drop its unsigned ones.
    mesh.wait_route(plain, a, 2, Duration::from_secs(20));
    wait_for(Duration::from_secs(10), "B to drop the plain node's beacons", || {
        let text = metrics_text(&mesh.nodes[b]);
        (metric(&text, "x0tta_beacons_rejected_total", &["reason=\"pq_unsigned\""]) >= 3.0).then_some(())
    });
    let plain_id = mesh.nodes[plain].peer_id.clone();
    for node in [a, b] {
        let routes = mesh.nodes[node].get("/api/v1/routes").expect("routes");
        assert!(
            !routes.to_string().contains(&plain_id),
            "{} knows no route to the node with unsigned beacons",
            mesh.nodes[node].name()
        );
    }
}

#[test]
fn a_transit_node_that_drops_handshakes_cannot_keep_a_session_in_use_past_its_lifetime() {
    // Rekey every second: the session's hard lifetime is three seconds.
    let env = [
        ("X0TTA6BL4_PQC__MODE", "required"),
        ("X0TTA6BL4_PQC__REKEY_AFTER_SECS", "1"),
    ];
    let mut mesh = TestMesh::new();
    let a = mesh.add_with("a", &[], false, &env);
    let t = mesh.add_with("t", &[a], false, &env);
    let c = mesh.add_with("c", &[t], false, &env);
    mesh.wait_route(a, c, 2, Duration::from_secs(20));
    send(&mesh.nodes[a], &mesh.nodes[c], "first").expect("accepted");
    wait_delivered(&mesh.nodes[c], "first");

    // T now relays everything but handshake messages: no rekey gets through.
    let drop_handshakes = json!({ "enabled": true, "kinds": ["Handshake"] });
    mesh.nodes[t]
        .post("/api/v1/debug/blackhole", &drop_handshakes)
        .expect("blackhole on");
    let expired = || metric(&metrics_text(&mesh.nodes[a]), "x0tta_pqc_sessions_expired_total", &[]);
    let mut sent = 0;
    wait_for(Duration::from_secs(20), "A's session to reach its lifetime", || {
        sent += 1;
        let _ = send(&mesh.nodes[a], &mesh.nodes[c], &format!("while stale {sent}"));
        std::thread::sleep(Duration::from_millis(100));
        (expired() >= 1.0).then_some(())
    });
    // v1 kept sealing with the stale key for as long as T dropped handshakes.
    send(&mesh.nodes[a], &mesh.nodes[c], "after the lifetime").expect("queued");
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !inbox_texts(&mesh.nodes[c]).iter().any(|t| t == "after the lifetime"),
        "nothing is sealed with the expired session"
    );
    assert!(
        inbox_texts(&mesh.nodes[c]).iter().any(|t| t.starts_with("while stale")),
        "the session worked while within its lifetime"
    );

    // Handshakes pass again: a new session, and messages flow.
    mesh.nodes[t]
        .post("/api/v1/debug/blackhole", &json!({ "enabled": false }))
        .expect("blackhole off");
    wait_for(Duration::from_secs(20), "a new session after the blackhole", || {
        let _ = send(&mesh.nodes[a], &mesh.nodes[c], "recovered");
        std::thread::sleep(Duration::from_millis(300));
        inbox_texts(&mesh.nodes[c])
            .iter()
            .any(|t| t == "recovered")
            .then_some(())
    });
}

/// The epoch of `peer`'s post-quantum keys as `node` knows them.
fn known_epoch(node: &NodeProcess, peer: &NodeProcess) -> Option<u64> {
    node.get("/api/v1/peers").ok()?["peers"]
        .as_array()?
        .iter()
        .find(|p| p["peer_id"] == peer.peer_id.as_str())?["pq_epoch"]
        .as_u64()
}

#[test]
fn keys_rotated_live_are_announced_in_beacons_and_used_by_new_handshakes() {
    let env = mode("required");
    let mut mesh = TestMesh::new();
    let a = mesh.add_with("a", &[], false, &env);
    let b = mesh.add_with("b", &[a], false, &env);
    mesh.wait_route(b, a, 1, Duration::from_secs(20));
    send(&mesh.nodes[b], &mesh.nodes[a], "before").expect("accepted");
    wait_delivered(&mesh.nodes[a], "before");
    let before = mesh.nodes[a].get("/api/v1/status").expect("status")["pq_epoch"].as_u64();
    assert_eq!(known_epoch(&mesh.nodes[b], &mesh.nodes[a]), before);

    let rotated = mesh.nodes[a].post("/api/v1/keys/rotate", &json!({})).expect("rotated");
    let to = rotated["to"].as_u64().expect("new epoch");
    assert_eq!(rotated["from"].as_u64(), before);
    assert!(Some(to) > before);
    assert_eq!(mesh.nodes[a].get("/api/v1/status").expect("status")["pq_epoch"], to);
    // B learns the new binding from A's beacons, and the old one is now stale.
    wait_for(Duration::from_secs(10), "B to learn A's new keys", || {
        (known_epoch(&mesh.nodes[b], &mesh.nodes[a]) == Some(to)).then_some(())
    });
    // A node that joins now knows only the new keys: its handshake needs A's
    // new static key (with the old one A could not finish it).
    let c = mesh.add_with("c", &[a], false, &env);
    mesh.wait_route(c, a, 1, Duration::from_secs(20));
    send(&mesh.nodes[c], &mesh.nodes[a], "after the rotation").expect("accepted");
    wait_delivered(&mesh.nodes[a], "after the rotation");
    // B's session, made with the old keys, goes on until its rekey.
    send(&mesh.nodes[b], &mesh.nodes[a], "still").expect("accepted");
    wait_delivered(&mesh.nodes[a], "still");
}
