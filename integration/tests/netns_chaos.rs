//! Chaos on real links: network namespaces joined by veth pairs, with link cuts,
//! SIGKILL and restart, partitions, loss and delay. Needs root and `ip`/`tc`
//! (reported as SKIPPED otherwise; CI runs them).

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use serde_json::json;
use x0tta6bl4_integration::netns::{test_net_or_skip, TestNet};
use x0tta6bl4_integration::outage::outage_after;
use x0tta6bl4_integration::{
    first_arrival_after, inbox_ids, metrics_text, route_to, unix_ms, wait_for, wait_routes_to, Flow, FAST_FAILOVER,
};

/// The scenarios measure timing on two cores: they run one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn peers(net: &TestNet, hosts: impl IntoIterator<Item = usize>) -> Vec<String> {
    hosts.into_iter().map(|h| net.node(h).peer_id.clone()).collect()
}

fn ring_of_six() -> Option<TestNet> {
    // Checks availability (and skips loudly) before building the ring.
    drop(test_net_or_skip()?);
    let mut net = TestNet::ring(6).expect("ring of six");
    net.start_all(FAST_FAILOVER).expect("nodes start");
    let all = peers(&net, 1..6);
    wait_routes_to(net.node(0), &all, Duration::from_secs(30));
    Some(net)
}

#[test]
fn twenty_nodes_in_a_random_mesh_route_between_all_pairs() {
    let _serial = serial();
    // Checks availability (and skips loudly) before building the mesh.
    let Some(probe) = test_net_or_skip() else { return };
    drop(probe);
    let n = 20;
    // A ring for connectivity plus random chords: 30 links, mean degree 3.
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let (mut net, edges) = TestNet::random_mesh(n, 30, &mut rng).expect("random mesh");
    net.start_all(&[]).expect("20 nodes start");
    let started = Instant::now();
    let mut last = String::new();
    wait_for(Duration::from_secs(60), "full routes on all 20 nodes", || {
        let counts: Vec<usize> = (0..n)
            .map(|h| {
                net.node(h)
                    .get("/api/v1/routes")
                    .ok()
                    .and_then(|r| r["routes"].as_array().map(Vec::len))
                    .unwrap_or(0)
            })
            .collect();
        let line = format!("routes per node after {:?}: {counts:?}", started.elapsed());
        if line[line.find(':').unwrap_or(0)..] != last[last.find(':').unwrap_or(0)..] {
            println!("{line}");
            last = line;
        }
        counts.iter().all(|c| *c == n - 1).then_some(())
    });
    let converged = started.elapsed();
    println!(
        "20 nodes, {} links: full routes everywhere after {converged:?}",
        edges.len()
    );
    assert!(converged < Duration::from_secs(30), "convergence took {converged:?}");

    let mut expected: Vec<(usize, usize, u64)> = Vec::new();
    for i in 0..50 {
        let (from, to) = loop {
            let (a, b) = (rng.gen_range(0..n), rng.gen_range(0..n));
            if a != b {
                break (a, b);
            }
        };
        let reply = net
            .node(from)
            .post(
                "/api/v1/messages",
                // Reliable: right after convergence next hops still change as RTT
                // samples arrive, and a datagram sent into such a change can meet
                // a transient loop (dropped as a duplicate at a relay). The
                // end-to-end acknowledgement carries every pair through.
                &json!({ "to": net.node(to).peer_id, "text": format!("pair {i}"), "reliable": true }),
            )
            .expect("send");
        expected.push((from, to, reply["id"].as_u64().expect("id")));
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    let missing = loop {
        let missing: Vec<(usize, usize, u64)> = expected
            .iter()
            .filter(|(_, to, id)| !inbox_ids(net.node(*to)).contains(id))
            .copied()
            .collect();
        if missing.is_empty() || Instant::now() > deadline {
            break missing;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let handshakes = |h: usize| {
        let text = metrics_text(net.node(h));
        text.lines()
            .filter(|l| {
                [
                    "x0tta_pqc_handshakes_total",
                    "x0tta_pqc_frames_rejected_total",
                    "x0tta_router_frames_rejected",
                    "x0tta_router_undeliverable",
                    "x0tta_pqc_sessions",
                ]
                .iter()
                .any(|m| l.starts_with(m))
            })
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let report: Vec<String> = missing
        .iter()
        .map(|(from, to, id)| {
            format!(
                "{from}->{to} id {id}: sender {:?} receiver {:?}",
                handshakes(*from),
                handshakes(*to)
            )
        })
        .collect();
    if !missing.is_empty() {
        for h in 0..n {
            println!("node {h}: {:?}", handshakes(h));
        }
        for (from, _, _) in &missing {
            println!(
                "sender inbox: {}",
                net.node(*from)
                    .get("/api/v1/messages")
                    .map(|v| v["undeliverable"].to_string())
                    .unwrap_or_default()
            );
        }
    }
    assert!(
        missing.is_empty(),
        "{} of 50 messages not delivered:\n{}",
        missing.len(),
        report.join("\n")
    );
}

#[test]
fn silently_cut_active_link_moves_traffic_to_the_other_path() {
    let _serial = serial();
    let Some(mut net) = ring_of_six() else { return };
    // A=0 reaches C=2 over B=1 (2 hops); the other way round is 4 hops.
    let c = net.node(2).peer_id.clone();
    let route = wait_for(Duration::from_secs(20), "route to C over B", || {
        route_to(net.node(0), &c).filter(|r| r["hops"] == 2)
    });
    assert_eq!(route["next_hop"], net.node(1).peer_id.as_str());
    let link = net.link_between(0, 1).expect("link A-B");

    let flow = Flow::start(net.node(0), &c, Duration::from_millis(10));
    let reliable = Flow::reliable(net.node(0), &c, Duration::from_millis(20));
    std::thread::sleep(Duration::from_millis(500));
    // A silent cut: interfaces stay up, every packet is dropped; only lost pings tell.
    let cut_at = unix_ms();
    net.set_loss(link, 100).expect("cut");
    let after = wait_for(Duration::from_secs(15), "route to C the other way round", || {
        route_to(net.node(0), &c).filter(|r| r["hops"] == 4)
    });
    assert_eq!(after["next_hop"], net.node(5).peer_id.as_str());
    std::thread::sleep(Duration::from_millis(1_000));
    let sent = flow.stop();
    let reliable_sent = reliable.stop();
    let delivered = wait_for(Duration::from_secs(10), "every reliable message delivered", || {
        let ids = inbox_ids(net.node(2));
        reliable_sent.iter().all(|(id, _)| ids.contains(id)).then_some(ids)
    });
    println!(
        "{} reliable messages sent across the cut, all delivered",
        reliable_sent.len()
    );
    let probes: Vec<(u64, bool)> = sent.iter().map(|(id, at)| (*at, delivered.contains(id))).collect();
    let outage = outage_after(&probes, cut_at).expect("delivery resumed");
    let lost = probes.iter().filter(|(_, ok)| !ok).count();
    println!(
        "silent link cut: outage {} ms, {} messages lost ({lost} of {} overall)",
        outage.duration_ms(),
        outage.lost,
        probes.len()
    );
    assert!(outage.last_before_ms + 50 >= cut_at, "the outage starts at the cut");
    assert_eq!(outage.lost, lost, "only messages sent during the outage are lost");
    let resumed = outage.resumed_ms;
    let late = sent.iter().filter(|(_, at)| *at > resumed).count();
    assert!(late > 50, "the flow continued over the other path ({late} messages)");
}

#[test]
fn killed_transit_node_restarts_and_rejoins_with_the_same_peer_id() {
    let _serial = serial();
    let Some(mut net) = ring_of_six() else { return };
    let d = net.node(3).peer_id.clone();
    let route = route_to(net.node(0), &d).expect("route to D");
    let transit = net
        .host_of(route["next_hop"].as_str().expect("next hop"))
        .expect("host");
    let transit_peer = net.node(transit).peer_id.clone();
    let spec = net.node(transit).spec().clone();

    let killed_at = unix_ms();
    net.node_mut(transit).kill();
    let flow = Flow::start(net.node(0), &d, Duration::from_millis(10));
    let resumed = wait_for(Duration::from_secs(15), "delivery around the dead node", || {
        first_arrival_after(net.node(3), killed_at)
    });
    println!(
        "SIGKILL of transit node: delivery resumed after {} ms",
        resumed - killed_at
    );
    flow.stop();

    let restarted = net.start_node(transit, spec).expect("restart");
    assert_eq!(restarted.peer_id, transit_peer, "same identity after restart");
    wait_for(Duration::from_secs(20), "A links to the restarted node again", || {
        let peers = net.node(0).get("/api/v1/peers").ok()?;
        peers["peers"]
            .as_array()?
            .iter()
            .any(|p| p["peer_id"] == transit_peer.as_str() && p["connected"] == true)
            .then_some(())
    });
    let echo = wait_for(Duration::from_secs(10), "a routed echo to the restarted node", || {
        net.node(0).post("/api/v1/ping", &json!({ "to": transit_peer })).ok()
    });
    assert_eq!(echo["hops"], 1);
}

#[test]
fn partition_keeps_each_side_routing_and_heal_restores_full_routes() {
    let _serial = serial();
    let Some(net) = ring_of_six() else { return };
    let (left, right) = ([0, 1, 2], [3, 4, 5]);
    let cut = net.partition(&left, true).expect("partition");
    assert_eq!(cut.len(), 2, "a ring splits at two links");
    let right_peers = peers(&net, right);
    wait_for(Duration::from_secs(20), "the other half to leave A's routes", || {
        right_peers
            .iter()
            .all(|p| route_to(net.node(0), p).is_none())
            .then_some(())
    });
    let echo = net
        .node(0)
        .post("/api/v1/ping", &json!({ "to": net.node(2).peer_id }))
        .expect("left side still routes");
    assert_eq!(echo["hops"], 2);
    let echo = net
        .node(3)
        .post("/api/v1/ping", &json!({ "to": net.node(5).peer_id }))
        .expect("right side still routes");
    assert_eq!(echo["hops"], 2);

    let healed_at = Instant::now();
    net.partition(&left, false).expect("heal");
    for host in 0..6 {
        let others: Vec<String> = peers(&net, (0..6).filter(|h| *h != host));
        wait_routes_to(net.node(host), &others, Duration::from_secs(30));
    }
    println!("partition healed: full routes after {:?}", healed_at.elapsed());
}

#[test]
fn lossy_and_slow_links_lose_to_clean_paths() {
    let _serial = serial();
    let Some(mut net) = test_net_or_skip() else { return };
    // A=0 reaches B=1 directly over a link losing 30 % of packets each way, or
    // through C=2 over clean links; it reaches D=3 directly over a link with
    // 50 ms of delay each way, or through E=4 with none.
    net.add_hosts(5).expect("hosts");
    let lossy = net.link(0, 1).expect("link");
    net.link(0, 2).expect("link");
    net.link(2, 1).expect("link");
    net.delayed_link(0, 3, 50).expect("slow link");
    net.link(0, 4).expect("link");
    net.link(4, 3).expect("link");
    net.set_loss(lossy, 30).expect("loss");
    net.start_all(&[
        ("X0TTA6BL4_MESH__PING_TIMEOUT_MS", "500"),
        ("X0TTA6BL4_MESH__LINK_TIMEOUT_MS", "10000"),
    ])
    .expect("nodes start");
    let peer = |h: usize| net.node(h).peer_id.clone();
    let (b, c, d, e) = (peer(1), peer(2), peer(3), peer(4));
    let link_to = |p: &str| -> Option<serde_json::Value> {
        net.node(0).get("/api/v1/peers").ok()?["peers"]
            .as_array()?
            .iter()
            .find(|x| x["peer_id"] == p && x["connected"] == true)
            .cloned()
    };
    let (to_b, to_d, lossy_view, slow_view) = wait_for(Duration::from_secs(45), "A to avoid both bad links", || {
        let to_b = route_to(net.node(0), &b)?;
        let to_d = route_to(net.node(0), &d)?;
        let lossy_view = link_to(&b)?;
        let slow_view = link_to(&d)?;
        let measured = lossy_view["loss"].as_f64()? > 0.0 && slow_view["rtt_ms"].as_f64()? > 90.0;
        (measured && to_b["next_hop"] == c.as_str() && to_d["next_hop"] == e.as_str())
            .then_some((to_b, to_d, lossy_view, slow_view))
    });
    println!("A routes B via C ({to_b}) while the direct link measures {lossy_view}");
    println!("A routes D via E ({to_d}) while the direct link measures {slow_view}");
    assert_eq!((to_b["hops"].clone(), to_d["hops"].clone()), (json!(2), json!(2)));
}
