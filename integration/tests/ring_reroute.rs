//! A ring of six: SIGKILL of the next hop on the A→D path while messages flow;
//! delivery resumes over the other side of the ring. Prints the reroute time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use x0tta6bl4_integration::{unix_ms, wait_for, TestMesh};

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

    let d_peer = mesh.nodes[3].peer_id.clone();
    let a_api = mesh.nodes[0].api.clone();
    let running = Arc::new(AtomicBool::new(true));
    let sender = {
        let running = running.clone();
        std::thread::spawn(move || {
            let mut sent: Vec<(u64, u64)> = Vec::new();
            while running.load(Ordering::Relaxed) {
                let at = unix_ms();
                let reply = ureq::post(&format!("{a_api}/api/v1/messages"))
                    .timeout(Duration::from_secs(2))
                    .send_json(json!({ "to": d_peer, "text": "flow" }));
                if let Ok(reply) = reply {
                    if let Some(id) = reply
                        .into_json::<serde_json::Value>()
                        .ok()
                        .and_then(|v| v["id"].as_u64())
                    {
                        sent.push((id, at));
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            sent
        })
    };

    std::thread::sleep(Duration::from_millis(500));
    let killed_at = unix_ms();
    mesh.nodes[victim].kill();

    // Delivery must resume: a message sent after the kill reaches D.
    let first_after = wait_for(Duration::from_secs(15), "delivery after the kill", || {
        let inbox = mesh.nodes[3].get("/api/v1/messages").ok()?;
        inbox["messages"]
            .as_array()?
            .iter()
            .filter_map(|m| m["received_ms"].as_u64())
            .filter(|t| *t > killed_at)
            .min()
    });
    // Keep the flow going past the next beacon rounds, once routes have reconverged.
    std::thread::sleep(Duration::from_millis(1_500));
    running.store(false, Ordering::Relaxed);
    let sent = sender.join().expect("sender thread");

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
    let inbox = mesh.nodes[3].get("/api/v1/messages").expect("inbox");
    let late = inbox["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["received_ms"].as_u64().is_some_and(|t| t > killed_at + 1_000))
        .count();
    assert!(late > 0, "messages still arrive a second after the kill");
    assert!(reroute_ms < 5_000, "reroute took {reroute_ms} ms");
}
