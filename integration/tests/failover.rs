//! The fast-failover profile in effect (`X0TTA6BL4_FAILOVER=true`): when a
//! neighbour stalls for 900 ms (SIGSTOP), a node with the profile (link timeout
//! 300 ms) closes its link, and a node at the defaults (1,500 ms) keeps it. The
//! stalled node itself, back from its stall, closes none of its links: it heard
//! nothing because it did not run, which says nothing about its neighbours.

use std::time::Duration;

use x0tta6bl4_integration::{metric, metrics_text, wait_for, NodeProcess, TestMesh, FAST_FAILOVER};

/// How long the neighbour is stopped: three times the profile's timeout, well
/// under the default one.
const STALL: Duration = Duration::from_millis(900);

/// Links `node` closed because `peer` stayed silent.
fn silent_closes(node: &NodeProcess, peer: &str) -> f64 {
    metric(
        &metrics_text(node),
        "x0tta_links_closed_silent_total",
        &[&format!("peer=\"{peer}\"")],
    )
}

#[test]
fn a_failover_node_closes_a_stalled_link_that_a_default_node_keeps() {
    let mut mesh = TestMesh::new();
    // The stalled neighbour sends keepalives every 50 ms (the profile's), so
    // both watchers hear it often enough while it runs.
    let sleeper = mesh.add_with("sleeper", &[], false, FAST_FAILOVER);
    let fast = mesh.add_with("fast", &[sleeper], false, FAST_FAILOVER);
    let steady = mesh.add("steady", &[sleeper], false);
    for watcher in [fast, steady] {
        mesh.wait_route(watcher, sleeper, 1, Duration::from_secs(20));
    }
    let peer = mesh.nodes[sleeper].peer_id.clone();
    let sleeper_closes = |mesh: &TestMesh| -> f64 {
        [fast, steady]
            .iter()
            .map(|w| silent_closes(&mesh.nodes[sleeper], &mesh.nodes[*w].peer_id))
            .sum()
    };
    let sleeper_before = sleeper_closes(&mesh);
    let (fast_before, steady_before) = (
        silent_closes(&mesh.nodes[fast], &peer),
        silent_closes(&mesh.nodes[steady], &peer),
    );

    mesh.nodes[sleeper].signal(libc::SIGSTOP).expect("SIGSTOP sent");
    std::thread::sleep(STALL);
    mesh.nodes[sleeper].signal(libc::SIGCONT).expect("SIGCONT sent");

    let closed = wait_for(Duration::from_secs(10), "the failover node to close the link", || {
        let closes = silent_closes(&mesh.nodes[fast], &peer) - fast_before;
        (closes >= 1.0).then_some(closes)
    });
    // Both links are back once the sleeper runs again.
    for watcher in [fast, steady] {
        mesh.wait_route(watcher, sleeper, 1, Duration::from_secs(20));
    }
    let steady_closed = silent_closes(&mesh.nodes[steady], &peer) - steady_before;
    let sleeper_closed = sleeper_closes(&mesh) - sleeper_before;
    println!(
        "after a {STALL:?} stall: failover node closed the link {closed} time(s), default node {steady_closed}, \
         the stalled node {sleeper_closed}"
    );
    assert_eq!(steady_closed, 0.0, "the default node keeps a link silent for {STALL:?}");
    assert_eq!(sleeper_closed, 0.0, "a node back from its own stall keeps its links");
}
