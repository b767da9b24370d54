//! Loss seen by the data path: with pings all but off, the beats on the frame
//! streams alone show packet loss on a link that carries traffic, at both ends,
//! and show it gone once the loss ends; a clean link carrying the same traffic
//! shows none.

use std::time::Duration;

use serde_json::Value;
use x0tta6bl4_integration::netns::{test_net_or_skip, TestNet};
use x0tta6bl4_integration::{poll_for, wait_for, Flow};

/// One ping an hour: any loss the nodes report comes from the beats.
const NO_PINGS: &[(&str, &str)] = &[
    ("X0TTA6BL4_MESH__PING_INTERVAL_MS", "3600000"),
    ("X0TTA6BL4_MESH__PING_TIMEOUT_MS", "3600000"),
    ("X0TTA6BL4_HEALER__ENABLED", "false"),
];

/// The loss `host` reports on its link to `peer` (`None` while not linked).
fn loss(net: &TestNet, host: usize, peer: &str) -> Option<f64> {
    let peers: Value = net.node(host).get("/api/v1/peers").ok()?;
    peers["peers"].as_array()?.iter().find(|p| p["peer_id"] == peer)?["loss"].as_f64()
}

#[test]
fn beats_show_loss_on_a_busy_link_at_both_ends_and_its_end() {
    let Some(mut net) = test_net_or_skip() else { return };
    let hosts = net.add_hosts(2).expect("hosts");
    let link = net.link(hosts[0], hosts[1]).expect("link");
    for host in hosts {
        let spec = NO_PINGS.iter().fold(net.node_spec(host), |s, (k, v)| s.with(k, *v));
        net.start_node(host, spec).expect("node starts");
    }
    let (a, b) = (net.node(0).peer_id.clone(), net.node(1).peer_id.clone());
    wait_for(Duration::from_secs(20), "an echo from A to B", || {
        net.node(0).post("/api/v1/ping", &serde_json::json!({ "to": b })).ok()
    });
    let flow = Flow::start(net.node(0), &b, Duration::from_millis(20));

    // A clean link with traffic on it: no loss at either end, sampled for 3 s.
    let mut clean_max = 0.0f64;
    for _ in 0..30 {
        for (host, peer) in [(0, &b), (1, &a)] {
            clean_max = clean_max.max(loss(&net, host, peer).unwrap_or(0.0));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(clean_max < 0.3, "a clean link looked lossy: {clean_max}");

    net.set_loss(link, 40).expect("40 % loss on A–B");
    for (host, peer) in [(0, &b), (1, &a)] {
        let seen = poll_for(Duration::from_secs(20), || loss(&net, host, peer).filter(|l| *l >= 0.3));
        assert!(
            seen.is_some(),
            "node {host} never showed 40 % packet loss as ≥ 30 % (pings are off: only beats can)"
        );
    }

    net.set_loss(link, 0).expect("loss removed");
    for (host, peer) in [(0, &b), (1, &a)] {
        wait_for(
            Duration::from_secs(30),
            "the loss estimate to fall once the loss ends",
            || loss(&net, host, peer).filter(|l| *l < 0.15),
        );
    }
    let sent = flow.stop();
    assert!(!sent.is_empty(), "the flow sent messages");
}
