//! Supervision and persistence: a failing router actor is restarted and counted
//! while `/health` keeps answering; a restarted node keeps its peer id.

use std::time::Duration;

use serde_json::json;
use x0tta6bl4_integration::{metric, metrics_text, wait_for, NodeProcess, TestMesh};

fn restarts(node: &NodeProcess) -> f64 {
    metric(&metrics_text(node), "x0tta_actor_restarts_total", &["actor=\"router\""])
}

#[test]
fn failed_router_is_restarted_counted_and_health_stays_up() {
    let mut mesh = TestMesh::new();
    mesh.add("a", &[], false);
    mesh.add("b", &[0], false);
    mesh.wait_route(0, 1, 1, Duration::from_secs(20));
    let node = &mesh.nodes[0];
    assert_eq!(restarts(node), 0.0, "counter is exported at zero before any failure");

    for round in 1..=3 {
        node.post("/api/v1/debug/fault", &json!({ "actor": "router" }))
            .expect("fault injected");
        assert_eq!(node.get("/health").expect("health answers")["status"], "ok");
        wait_for(Duration::from_secs(5), "restart counted", || {
            (restarts(node) >= f64::from(round)).then_some(())
        });
    }
    assert_eq!(restarts(node), 3.0);
    // The restarted router still serves state and routes.
    let routes = node.get("/api/v1/routes").expect("router answers after restart");
    assert_eq!(routes["routes"].as_array().map(Vec::len), Some(1));
    mesh.wait_route(0, 1, 1, Duration::from_secs(5));
}

#[test]
fn fault_hook_is_refused_unless_enabled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = x0tta6bl4_integration::test_spec(dir.path(), "plain").with("X0TTA6BL4_ROUTER__FAULT_INJECTION", "false");
    let node = NodeProcess::spawn(spec).expect("node starts");
    let err = node
        .post("/api/v1/debug/fault", &json!({ "actor": "router" }))
        .expect_err("refused");
    assert!(err.to_string().contains("403"), "{err}");
    assert_eq!(restarts(&node), 0.0);
}

#[test]
fn restarted_node_keeps_its_peer_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = x0tta6bl4_integration::test_spec(dir.path(), "same");
    let mut first = NodeProcess::spawn(spec.clone()).expect("first start");
    let peer_id = first.peer_id.clone();
    first.kill();
    let second = NodeProcess::spawn(spec).expect("second start");
    assert_eq!(second.peer_id, peer_id);
}
