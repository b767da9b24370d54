//! The SVID renewer in a real node: an SVID from the node's own trust-domain
//! CA, renewed near `renew_at` of its lifetime again and again while the node
//! stays ready; a panic in the renewer restarts it and the identity carries on.

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;
use x0tta6bl4_integration::{test_spec, wait_for, NodeProcess};

const TTL_SECS: u64 = 10;

fn node(dir: &std::path::Path) -> NodeProcess {
    let spec = test_spec(dir, "svid")
        .with("X0TTA6BL4_SVID__ENABLED", "true")
        .with("X0TTA6BL4_SVID__TRUST_DOMAIN", "mesh.test")
        .with("X0TTA6BL4_SVID__TTL_SECS", TTL_SECS.to_string());
    NodeProcess::spawn(spec).expect("node starts")
}

/// The node's identity once it holds an SVID.
fn first_svid(node: &NodeProcess) -> serde_json::Value {
    wait_for(Duration::from_secs(20), "a first SVID", || {
        let identity = node.get("/api/v1/identity").ok()?;
        identity["serial"].is_string().then_some(identity)
    })
}

fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[test]
fn a_short_lived_svid_is_renewed_near_half_life_three_times_and_the_node_stays_ready() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = node(dir.path());
    let first = first_svid(&node);
    assert_eq!(first["spiffe_id"], format!("spiffe://mesh.test/node/{}", node.peer_id));
    let mut serials = BTreeSet::from([first["serial"].as_str().unwrap_or_default().to_string()]);
    let mut previous = first;
    let deadline = Instant::now() + Duration::from_secs(TTL_SECS * 8);
    while serials.len() < 4 {
        assert!(
            Instant::now() < deadline,
            "only {} SVIDs in {}s",
            serials.len(),
            TTL_SECS * 8
        );
        let ready = node.get("/ready").expect("ready throughout the rotations");
        assert_eq!(ready["ready"], true);
        let identity = node.get("/api/v1/identity").expect("identity");
        assert_eq!(identity["expired"], false);
        let serial = identity["serial"].as_str().unwrap_or_default().to_string();
        if serials.insert(serial.clone()) {
            // The old SVID had between 30 % and 70 % of its lifetime left
            // (renew_at 0.5 ± 10 % jitter, plus second-granular expiry and polling).
            let lifetime = previous["lifetime_secs"].as_f64().unwrap_or(0.0).max(1.0);
            let left = previous["not_after_unix"].as_f64().unwrap_or(0.0) - now_unix();
            let share = left / lifetime;
            println!(
                "renewed with {left:.1} s of {lifetime:.0} s left ({:.0} %)",
                share * 100.0
            );
            assert!(
                (0.25..=0.75).contains(&share),
                "renewed at {share:.2} of the lifetime left"
            );
            previous = identity;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(previous["failures"], 0);
    assert!(previous["renewals"].as_u64().is_some_and(|r| r >= 4), "{previous}");
}

#[test]
fn a_panic_in_the_renewer_restarts_it_and_the_identity_carries_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = node(dir.path());
    let before = first_svid(&node)["serial"].as_str().unwrap_or_default().to_string();
    node.post("/api/v1/debug/fault", &json!({ "actor": "svid", "kind": "panic" }))
        .expect("panic injected");
    // A restarted renewer fetches a new SVID at once.
    wait_for(Duration::from_secs(20), "an SVID from the restarted renewer", || {
        let identity = node.get("/api/v1/identity").ok()?;
        (identity["serial"].as_str() != Some(before.as_str()) && identity["expired"] == false).then_some(())
    });
    let metrics = x0tta6bl4_integration::metrics_text(&node);
    let restarts = x0tta6bl4_integration::metric(
        &metrics,
        "x0tta_actor_restarts_total",
        &["actor=\"svid\"", "reason=\"panic\""],
    );
    assert_eq!(restarts, 1.0);
    assert_eq!(node.get("/ready").expect("ready")["ready"], true);
}

#[test]
fn a_node_without_svids_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = NodeProcess::spawn(test_spec(dir.path(), "plain")).expect("node starts");
    assert_eq!(
        node.get("/api/v1/identity").expect("identity"),
        json!({ "enabled": false })
    );
}
