//! A line of five nodes A–B–C–D–E (bootstrap links only): 1,000 messages from A
//! to E all arrive exactly once, each after 4 hops.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;
use x0tta6bl4_integration::{metrics_text, TestMesh};

#[test]
fn thousand_messages_cross_a_line_of_five_exactly_once() {
    let mesh = TestMesh::line(5);
    let (a, e) = (&mesh.nodes[0], &mesh.nodes[4]);
    // Every hop must know the way before the first message leaves A.
    for (from, hops) in [(0, 4), (1, 3), (2, 2), (3, 1)] {
        mesh.wait_route(from, 4, hops, Duration::from_secs(20));
    }

    let mut sent = HashSet::new();
    for i in 0..1_000 {
        let reply = a
            .post(
                "/api/v1/messages",
                &json!({ "to": e.peer_id, "text": format!("message {i}") }),
            )
            .expect("send");
        sent.insert(reply["id"].as_u64().expect("id"));
    }
    assert_eq!(sent.len(), 1_000, "ids are unique");

    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let inbox = loop {
        let messages = e.get("/api/v1/messages").expect("inbox")["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if messages.len() >= 1_000 || std::time::Instant::now() > deadline {
            break messages;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if inbox.len() < 1_000 {
        let reports = a.get("/api/v1/messages").expect("A's inbox")["undeliverable"].clone();
        let rejected: Vec<String> = mesh.nodes[1..4]
            .iter()
            .map(|n| {
                metrics_text(n)
                    .lines()
                    .filter(|l| l.contains("frames_rejected"))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .collect();
        let sessions = |n: &x0tta6bl4_integration::NodeProcess| {
            metrics_text(n)
                .lines()
                .filter(|l| l.starts_with("x0tta_pqc") && !l.contains("bucket"))
                .collect::<Vec<_>>()
                .join("; ")
        };
        panic!(
            "only {} of 1,000 messages reached E; A's undeliverable reports: {reports}; transit rejections: {rejected:?}; sessions at A: {}; at E: {}",
            inbox.len(),
            sessions(a),
            sessions(e)
        );
    }
    assert_eq!(inbox.len(), 1_000, "no message arrives twice");
    let received: HashSet<u64> = inbox.iter().map(|m| m["id"].as_u64().expect("id")).collect();
    assert_eq!(received, sent, "every message arrives");
    assert!(inbox.iter().all(|m| m["hops"] == 4), "every message took 4 hops");
    assert!(inbox.iter().all(|m| m["from"] == a.peer_id.as_str()));
    let texts: HashSet<&str> = inbox.iter().filter_map(|m| m["text"].as_str()).collect();
    assert!(texts.contains("message 0") && texts.contains("message 999"));
}
