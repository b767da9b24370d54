//! Replicated state across a partition: 8 nodes on a namespace ring write
//! conflicting values on both sides and quarantine a source on one side; once
//! the ring heals every node holds the same state, the multi-value key shows
//! both values until an operator resolves it, and every node's XDP program
//! drops the quarantined source. Needs root (skipped otherwise; CI runs it).

use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use x0tta6bl4::launcher::NodeProcess;
use x0tta6bl4_integration::netns::{test_net_or_skip, TestNet};
use x0tta6bl4_integration::{wait_for, wait_routes_to};

const RING: usize = 8;
/// The host without a node, linked to every ring host: the source to quarantine.
const ROGUE: usize = RING;

/// The ring (links 0..8: host i to i + 1) and the rogue's links (8 + i: host i to the rogue).
fn net() -> Option<TestNet> {
    let mut net = test_net_or_skip()?;
    net.add_hosts(RING + 1).expect("hosts");
    for i in 0..RING {
        net.link(i, (i + 1) % RING).expect("ring link");
    }
    for i in 0..RING {
        net.link(i, ROGUE).expect("rogue link");
    }
    Some(net)
}

fn state(node: &NodeProcess, key: &str) -> Option<Value> {
    node.get(&format!("/api/v1/state/{key}")).ok()
}

fn value(node: &NodeProcess, key: &str) -> Value {
    state(node, key).map(|e| e["value"].clone()).unwrap_or(Value::Null)
}

/// Packets the XDP program on `dev` dropped as quarantined.
fn quarantine_drops(node: &NodeProcess, dev: &str) -> u64 {
    let snapshot = node.get("/api/v1/telemetry").unwrap_or(Value::Null);
    snapshot["interfaces"]
        .as_array()
        .and_then(|all| all.iter().find(|i| i["iface"] == dev).cloned())
        .and_then(|i| {
            i["dropped"]
                .as_array()?
                .iter()
                .find(|d| d["name"] == "quarantine")
                .and_then(|d| d["packets"].as_u64())
        })
        .unwrap_or(0)
}

#[test]
fn partitioned_writes_converge_conflicts_wait_for_an_operator_and_a_quarantine_acts_everywhere() {
    let Some(mut net) = net() else { return };
    for host in 0..RING {
        let dev = net.links()[RING + host].dev.clone();
        let spec = net
            .node_spec(host)
            .with_xdp_on(&[&dev])
            .with("X0TTA6BL4_TELEMETRY__INTERVAL_MS", "200")
            .with("X0TTA6BL4_SYNC__ANTI_ENTROPY_SECS", "2");
        net.start_node(host, spec).expect("node starts");
    }
    let peers: Vec<String> = (0..RING).map(|h| net.node(h).peer_id.clone()).collect();
    for host in 0..RING {
        let others: Vec<String> = peers.iter().filter(|p| **p != peers[host]).cloned().collect();
        wait_routes_to(net.node(host), &others, Duration::from_secs(60));
    }

    // Halves {0..3} and {4..7}: the ring is cut between 3 and 4 and between 7 and 0.
    net.set_link(3, false).expect("cut");
    net.set_link(RING - 1, false).expect("cut");
    wait_for(
        Duration::from_secs(30),
        "the halves to lose each other's routes",
        || {
            let routes = net.node(0).get("/api/v1/routes").ok()?;
            let far = routes.to_string().contains(&peers[5]);
            (!far).then_some(())
        },
    );

    let rogue: Vec<String> = (0..RING)
        .map(|h| net.links()[RING + h].addr_of(ROGUE).expect("rogue address").to_string())
        .collect();
    let left = net.node(1);
    left.put("/api/v1/state/flag.mode", &json!({"value": "left"}))
        .expect("write");
    left.put("/api/v1/state/note.owner", &json!({"value": "alice"}))
        .expect("write");
    let quarantined = left
        .post(
            "/api/v1/quarantine",
            &json!({"addresses": rogue, "ttl_secs": 600, "reason": "flooding"}),
        )
        .expect("quarantine");
    assert_eq!(quarantined["replicated"], true, "{quarantined}");
    std::thread::sleep(Duration::from_millis(20));
    let right = net.node(6);
    right
        .put("/api/v1/state/flag.mode", &json!({"value": "right"}))
        .expect("write");
    right
        .put("/api/v1/state/note.owner", &json!({"value": "bob"}))
        .expect("write");

    // Each half sees its own writes and not the other's.
    wait_for(Duration::from_secs(20), "each half to hold its side's writes", || {
        let lefts = (0..4).all(|h| value(net.node(h), "note.owner") == json!(["alice"]));
        let rights = (4..8).all(|h| value(net.node(h), "note.owner") == json!(["bob"]));
        (lefts && rights).then_some(())
    });
    assert_eq!(
        value(net.node(5), "quarantine"),
        Value::Null,
        "the quarantine stays on its side"
    );

    let healed = Instant::now();
    net.set_link(3, true).expect("heal");
    net.set_link(RING - 1, true).expect("heal");
    let converged = wait_for(Duration::from_secs(60), "every node to hold the same state", || {
        let views: Vec<Value> = (0..RING)
            .map(|h| net.node(h).get("/api/v1/state").ok())
            .collect::<Option<_>>()?;
        let same = views
            .iter()
            .all(|v| v["entries"] == views[0]["entries"] && v["clock"] == views[0]["clock"]);
        let complete = views[0]["entries"].as_array().is_some_and(|e| e.len() == 3);
        (same && complete).then(|| healed.elapsed())
    });
    println!("sync: {RING} nodes converged {converged:?} after the partition healed");
    for host in 0..RING {
        let node = net.node(host);
        assert_eq!(
            value(node, "flag.mode"),
            json!("right"),
            "the later write wins on host {host}"
        );
        assert_eq!(
            value(node, "note.owner"),
            json!(["alice", "bob"]),
            "both values kept on host {host}"
        );
        assert_eq!(state(node, "note.owner").expect("key")["conflict"], true);
        let conflicts = node.get("/api/v1/state").expect("state")["conflicts"].clone();
        assert_eq!(conflicts, json!(["note.owner"]), "host {host}");
        assert_eq!(
            value(node, "quarantine").as_array().map(Vec::len),
            Some(RING),
            "host {host}"
        );
    }

    // The quarantine acts on every node: the rogue's packets are dropped by
    // each node's XDP program.
    let before: Vec<u64> = (0..RING)
        .map(|h| quarantine_drops(net.node(h), &net.links()[RING + h].dev))
        .collect();
    for host in 0..RING {
        let to = net.links()[RING + host].addr_of(host).expect("address");
        net.send_udp(ROGUE, SocketAddrV4::new(to, 9), 200, 64).expect("send");
    }
    for (host, before) in before.into_iter().enumerate() {
        let dev = net.links()[RING + host].dev.clone();
        wait_for(Duration::from_secs(20), &format!("drops on host {host}"), || {
            (quarantine_drops(net.node(host), &dev) >= before + 200).then_some(())
        });
    }

    // An operator resolves the conflict on any node; everyone follows.
    net.node(3)
        .put("/api/v1/state/note.owner", &json!({"value": "carol"}))
        .expect("resolve");
    wait_for(Duration::from_secs(30), "the resolution everywhere", || {
        (0..RING)
            .all(|h| value(net.node(h), "note.owner") == json!(["carol"]))
            .then_some(())
    });
    let state = net.node(7).get("/api/v1/state").expect("state");
    assert_eq!(state["conflicts"], json!([]), "{state}");
}
