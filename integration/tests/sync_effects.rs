//! The shared keys act on every node: three loopback nodes, a write on one, the
//! effect checked on the others (the partition, conflicts and the quarantine's
//! XDP drops are in `sync.rs`).

use std::time::Duration;

use serde_json::{json, Value};
use x0tta6bl4::launcher::NodeProcess;
use x0tta6bl4_integration::{wait_for, TestMesh};

const FAST_SYNC: [(&str, &str); 1] = [("X0TTA6BL4_SYNC__ANTI_ENTROPY_SECS", "2")];

/// Whether `node` has a live link to `peer`.
fn linked(node: &NodeProcess, peer: &str) -> bool {
    let peers = node.get("/api/v1/peers").unwrap_or_default();
    peers["peers"]
        .as_array()
        .and_then(|all| all.iter().find(|p| p["peer_id"] == peer).cloned())
        .is_some_and(|p| p["connected"] == true)
}

fn three() -> TestMesh {
    let mut mesh = TestMesh::new();
    mesh.add_with("n0", &[], true, &FAST_SYNC);
    mesh.add_with("n1", &[0], true, &FAST_SYNC);
    mesh.add_with("n2", &[0, 1], true, &FAST_SYNC);
    for (a, b) in [(0, 1), (0, 2), (1, 2)] {
        let peer = mesh.nodes[b].peer_id.clone();
        wait_for(Duration::from_secs(30), &format!("n{a} linked to n{b}"), || {
            linked(&mesh.nodes[a], &peer).then_some(())
        });
    }
    mesh
}

#[test]
fn a_denied_peer_is_cut_off_by_every_node_and_let_back_when_taken_off() {
    let mesh = three();
    let outcast = mesh.nodes[2].peer_id.clone();
    mesh.nodes[0]
        .put("/api/v1/state/denied_peers", &json!({"add": outcast}))
        .expect("deny");
    wait_for(Duration::from_secs(20), "n0 and n1 to drop their links to n2", || {
        (!linked(&mesh.nodes[0], &outcast) && !linked(&mesh.nodes[1], &outcast)).then_some(())
    });
    assert!(linked(&mesh.nodes[0], &mesh.nodes[1].peer_id), "the others stay linked");
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !linked(&mesh.nodes[1], &outcast),
        "n2's redials are refused while it is denied"
    );

    mesh.nodes[1]
        .put("/api/v1/state/denied_peers", &json!({"remove": outcast}))
        .expect("let back");
    wait_for(Duration::from_secs(30), "n2 linked again", || {
        (linked(&mesh.nodes[0], &outcast) && linked(&mesh.nodes[1], &outcast)).then_some(())
    });
}

#[test]
fn the_healer_pause_flag_written_on_one_node_pauses_every_healer() {
    let mesh = three();
    let paused = |node: &NodeProcess| node.get("/api/v1/healing").unwrap_or(Value::Null)["paused"].clone();
    assert!(mesh.nodes.iter().all(|n| paused(n) == json!(false)));
    mesh.nodes[1]
        .put("/api/v1/state/flag.healer.paused", &json!({"value": true}))
        .expect("pause");
    wait_for(Duration::from_secs(20), "every healer paused", || {
        mesh.nodes.iter().all(|n| paused(n) == json!(true)).then_some(())
    });
    mesh.nodes[2]
        .put("/api/v1/state/flag.healer.paused", &json!({"value": false}))
        .expect("resume");
    wait_for(Duration::from_secs(20), "every healer running again", || {
        mesh.nodes.iter().all(|n| paused(n) == json!(false)).then_some(())
    });

    // A key no subsystem knows, a bad body: clear refusals.
    let bad = mesh.nodes[0].put("/api/v1/state/nothing.here", &json!({"value": 1}));
    assert!(format!("{bad:?}").contains("bad_key"), "{bad:?}");
    let both = mesh.nodes[0].put("/api/v1/state/flag.x", &json!({"value": 1, "add": "m"}));
    assert!(format!("{both:?}").contains("exactly one"), "{both:?}");
}
