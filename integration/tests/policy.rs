//! Rego transit policy between real node processes on loopback: a policy that
//! denies transit through one node moves routes off it, and editing the file
//! flips that without a restart while the version changes.

use std::time::Duration;

use x0tta6bl4_integration::{metric, metrics_text, wait_for, TestMesh};

const ALLOW_ALL: &str = "package x0tta6bl4.transit\n\n# nothing denied\ndeny if false\n";
/// Rules see names in one canonical form (NFKC, lower case).
const DENY_RELAY_X: &str = "package x0tta6bl4.transit\n\ndeny if input.via_name == \"relay-x\"\n";

#[test]
fn a_transit_policy_moves_routes_off_a_node_and_an_edit_flips_it_without_restart() {
    let dir = tempfile::tempdir().expect("policy dir");
    let file = dir.path().join("transit.rego");
    std::fs::write(&file, ALLOW_ALL).expect("policy");
    let policy_dir = dir.path().to_string_lossy().into_owned();
    let with_policy = [
        ("X0TTA6BL4_POLICY__DIR", policy_dir.as_str()),
        ("X0TTA6BL4_POLICY__RELOAD_MS", "200"),
    ];
    // A–Relay-X–C is the short way, A–Y–Z–C the long one.
    let mut mesh = TestMesh::new();
    let a = mesh.add_with("a", &[], false, &with_policy);
    let x = mesh.add("Relay-X", &[a], false);
    let c = mesh.add("c", &[x], false);
    let y = mesh.add("y", &[a], false);
    let _z = mesh.add("z", &[y, c], false);
    let x_id = mesh.nodes[x].peer_id.clone();
    let via_x = mesh.wait_route(a, c, 2, Duration::from_secs(20));
    assert_eq!(via_x["next_hop"], x_id.as_str());
    let version = |node: usize| mesh.nodes[node].get("/api/v1/policy").expect("policy")["version"].clone();
    let v1 = version(a);

    std::fs::write(&file, DENY_RELAY_X).expect("edit");
    let around = mesh.wait_route(a, c, 3, Duration::from_secs(10));
    assert_eq!(around["next_hop"], mesh.nodes[y].peer_id.as_str(), "{around}");
    let v2 = version(a);
    assert_ne!(v1, v2, "a new version after the edit");
    println!("policy {v1} → {v2}: A reaches C over {} in 3 hops", around["next_hop"]);
    let text = metrics_text(&mesh.nodes[a]);
    assert!(
        metric(
            &text,
            "x0tta_policy_decisions_total",
            &["kind=\"transit\"", "result=\"deny\""]
        ) >= 1.0
    );
    // Relay-X itself stays reachable: it may be a destination, not a relay.
    mesh.wait_route(a, x, 1, Duration::from_secs(5));

    std::fs::write(&file, ALLOW_ALL.replace("nothing", "again nothing")).expect("edit back");
    wait_for(Duration::from_secs(10), "A to route over Relay-X again", || {
        let route = mesh.wait_route(a, c, 2, Duration::from_secs(10));
        (route["next_hop"] == x_id.as_str()).then_some(())
    });
    let v3 = version(a);
    assert!(v3 != v2 && v3 != v1, "{v1} {v2} {v3}");

    // A policy that does not compile is refused; the one in force stays.
    std::fs::write(&file, "package x0tta6bl4.transit\ndeny if {{").expect("break");
    wait_for(Duration::from_secs(5), "the broken policy to be reported", || {
        let view = mesh.nodes[a].get("/api/v1/policy").ok()?;
        view["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("transit.rego"))
            .then_some(view)
    });
    assert_eq!(version(a), v3);
    std::fs::write(&file, ALLOW_ALL).expect("repair");

    // Admission and administrative actions follow their own rules.
    std::fs::write(
        dir.path().join("admission.rego"),
        "package x0tta6bl4.admission\n\ndeny if input.name == \"y\"\n",
    )
    .expect("admission policy");
    std::fs::write(
        dir.path().join("admin.rego"),
        "package x0tta6bl4.admin\n\ndeny if input.method == \"DELETE\"\n",
    )
    .expect("admin policy");
    let y_id = mesh.nodes[y].peer_id.clone();
    wait_for(
        Duration::from_secs(10),
        "A to drop the node the policy does not admit",
        || {
            let routes = mesh.nodes[a].get("/api/v1/routes").ok()?;
            (!routes.to_string().contains(&y_id)).then_some(())
        },
    );
    let refused = mesh.nodes[a]
        .delete("/api/v1/quarantine", &serde_json::json!({ "addresses": ["10.9.9.9"] }))
        .expect_err("DELETE denied by policy")
        .to_string();
    assert!(
        refused.contains("403") && refused.contains("policy_denied"),
        "{refused}"
    );
    mesh.nodes[a]
        .post(
            "/api/v1/quarantine",
            &serde_json::json!({ "addresses": ["10.9.9.9"], "ttl_secs": 1 }),
        )
        .expect("POST still allowed");
}
