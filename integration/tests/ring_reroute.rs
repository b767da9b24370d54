//! A ring of six: SIGKILL of the next hop on the A→D path while messages flow;
//! delivery resumes over the other side of the ring. Prints the reroute time.

use std::time::Duration;

use x0tta6bl4_integration::{first_arrival_after, unix_ms, wait_for, Flow, TestMesh};

#[test]
fn killing_the_next_hop_reroutes_over_the_other_side() {
    let mut mesh = TestMesh::ring(6);
    let route = mesh.wait_route_where(0, 3, Duration::from_secs(20), "3 hops and a backup", |r| {
        r["hops"] == 3 && r["backup"].is_string()
    });
    let victim = mesh
        .index_of(route["next_hop"].as_str().expect("next hop"))
        .expect("known node");
    assert!(victim == 1 || victim == 5, "A's next hop towards D is a ring neighbour");
    let other_side = if victim == 1 { 5 } else { 1 };

    let flow = Flow::start(&mesh.nodes[0], &mesh.nodes[3].peer_id, Duration::from_millis(5));
    std::thread::sleep(Duration::from_millis(500));
    let killed_at = unix_ms();
    mesh.nodes[victim].kill();

    let first_after = wait_for(Duration::from_secs(15), "delivery after the kill", || {
        first_arrival_after(&mesh.nodes[3], killed_at)
    });
    // Keep the flow going past the next beacon rounds, once routes have reconverged.
    std::thread::sleep(Duration::from_millis(1_500));
    let sent = flow.stop();

    let reroute_ms = first_after - killed_at;
    println!("reroute time after SIGKILL of the next hop: {reroute_ms} ms");
    let after_kill = sent.iter().filter(|(_, at)| *at > killed_at).count();
    assert!(after_kill > 10, "messages kept flowing after the kill ({after_kill})");

    let route = mesh.wait_route(0, 3, 3, Duration::from_secs(10));
    assert_eq!(
        route["next_hop"],
        mesh.nodes[other_side].peer_id.as_str(),
        "routes go around the other side"
    );
    assert!(
        first_arrival_after(&mesh.nodes[3], killed_at + 1_000).is_some(),
        "messages still arrive a second after the kill"
    );
    assert!(reroute_ms < 5_000, "reroute took {reroute_ms} ms");
}
