//! Supervision and persistence: every supervised actor (and the mesh event
//! loop on the network runtime) is restarted after a real panic while the node
//! keeps answering and routing; a stalled actor is restarted as stuck; an actor
//! that keeps failing escalates to a node exit instead of looping; a restarted
//! node keeps its peer id.

use std::time::Duration;

use serde_json::json;
use x0tta6bl4_integration::{metric, metrics_text, wait_for, NodeProcess, TestMesh};

fn restarts(node: &NodeProcess) -> f64 {
    metric(&metrics_text(node), "x0tta_actor_restarts_total", &["actor=\"router\""])
}

fn restarts_for(node: &NodeProcess, actor: &str, reason: &str) -> f64 {
    let (actor, reason) = (format!("actor=\"{actor}\""), format!("reason=\"{reason}\""));
    metric(&metrics_text(node), "x0tta_actor_restarts_total", &[&actor, &reason])
}

/// The middle node (1) answers pings to both ends, and node 0 reaches node 2
/// (over the middle, or directly once a failover dialled it while the middle's
/// mesh restarted).
fn still_routes(mesh: &TestMesh, what: &str) {
    for (from, to) in [(1, 0), (1, 2), (0, 2)] {
        let peer = &mesh.nodes[to].peer_id;
        let reply = wait_for(
            Duration::from_secs(30),
            &format!("{what}: a ping from {from} to {to}"),
            || {
                mesh.nodes[from]
                    .post("/api/v1/ping", &json!({ "to": peer, "timeout_ms": 1000 }))
                    .ok()
            },
        );
        assert!(reply["hops"].as_u64().is_some_and(|h| h >= 1), "{what}: {reply}");
    }
}

#[test]
fn every_supervised_actor_survives_a_real_panic_and_the_node_keeps_routing() {
    let mesh = TestMesh::line(3);
    mesh.wait_route(0, 2, 2, Duration::from_secs(30));
    let middle = &mesh.nodes[1];
    let listening = |node: &NodeProcess| {
        let status = node.get("/api/v1/status").expect("status");
        let mut addrs: Vec<String> = status["listen_addrs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| a.to_string())
            .collect();
        addrs.sort();
        addrs
    };
    let listened_before = listening(middle);
    // `mesh_loop` panics the mesh event loop, a task of the network runtime:
    // its actor (`mesh`) is what restarts.
    let targets = [
        ("router", "router"),
        ("telemetry", "telemetry"),
        ("breaker", "breaker"),
        ("healer", "healer"),
        ("alerter", "alerter"),
        ("mesh", "mesh"),
        ("mesh_loop", "mesh"),
    ];
    for (target, actor) in targets {
        let before = restarts_for(middle, actor, "panic");
        middle
            .post("/api/v1/debug/fault", &json!({ "actor": target, "kind": "panic" }))
            .unwrap_or_else(|e| panic!("panic injected into {target}: {e}"));
        assert_eq!(
            middle.get("/health").expect("health answers")["status"],
            "ok",
            "{target}"
        );
        wait_for(
            Duration::from_secs(10),
            &format!("{actor}'s restart after a panic in {target}"),
            || (restarts_for(middle, actor, "panic") == before + 1.0).then_some(()),
        );
        still_routes(&mesh, &format!("after a panic in {target}"));
        println!("{target}: panicked, restarted as {actor}, the node routes again");
    }
    // Node 2 knows the middle only by its bootstrap address: a restarted mesh
    // listens on the ports the OS gave it first (a QUIC port comes back once
    // the old loop's last connection has closed).
    wait_for(
        Duration::from_secs(40),
        "the mesh listening on its first ports again",
        || (listening(middle) == listened_before).then_some(()),
    );
    assert!(
        middle.log().contains("supervised actor panicked"),
        "the log names each panic"
    );
    // Only the injected panics: nothing restarted for another reason.
    for actor in ["router", "telemetry", "breaker", "healer", "alerter", "mesh"] {
        for reason in ["stopped", "stuck"] {
            assert_eq!(restarts_for(middle, actor, reason), 0.0, "{actor} {reason}");
        }
    }
}

#[test]
fn a_stalled_actor_is_restarted_as_stuck() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec =
        x0tta6bl4_integration::test_spec(dir.path(), "stall").with("X0TTA6BL4_SUPERVISION__STUCK_AFTER_MS", "500");
    let node = NodeProcess::spawn(spec).expect("node starts");
    node.post("/api/v1/debug/fault", &json!({ "actor": "breaker", "kind": "stall" }))
        .expect("stall injected");
    wait_for(Duration::from_secs(10), "the breaker restarted as stuck", || {
        (restarts_for(&node, "breaker", "stuck") == 1.0).then_some(())
    });
    let breakers = node.get("/api/v1/breakers").expect("the breaker answers again");
    assert!(breakers["breakers"].is_array(), "{breakers}");
    assert_eq!(restarts_for(&node, "breaker", "panic"), 0.0);
}

#[test]
fn an_actor_that_keeps_failing_escalates_to_a_node_exit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = x0tta6bl4_integration::test_spec(dir.path(), "escalate")
        .with("X0TTA6BL4_SUPERVISION__MAX_RESTARTS", "2")
        .with("X0TTA6BL4_SUPERVISION__WITHIN_SECS", "600");
    let mut node = NodeProcess::spawn(spec).expect("node starts");
    for round in 1..=2 {
        node.post("/api/v1/debug/fault", &json!({ "actor": "router", "kind": "panic" }))
            .expect("panic injected");
        wait_for(Duration::from_secs(10), "restart within the limit", || {
            (restarts_for(&node, "router", "panic") == f64::from(round)).then_some(())
        });
    }
    assert!(node.is_running(), "two restarts are within the limit");
    node.post("/api/v1/debug/fault", &json!({ "actor": "router", "kind": "panic" }))
        .expect("the third panic injected");
    let code = wait_for(Duration::from_secs(10), "the node to exit", || node.exit_code());
    assert_eq!(code, 70, "exit code for the service manager");
    let log = node.log();
    assert!(
        log.contains("restarted too often: escalating to a node restart") && log.contains("node exits for a restart"),
        "the log says why: {log}"
    );
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
        node.post("/api/v1/debug/fault", &json!({ "actor": "router", "kind": "stop" }))
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
