//! Mesh admission by SVID between real nodes in network namespaces: five
//! nodes with `mesh.require_svid` and SVIDs of the operator's CA route to each
//! other; a node whose certificate comes from a CA of its own is never
//! admitted; revoking one node's SVID with `openssl ca -revoke` and `-gencrl`
//! takes it out of every route (the time is printed) while the others keep
//! routing around it.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use x0tta6bl4_integration::netns::test_net_or_skip;
use x0tta6bl4_integration::operator_ca::{OperatorCa, TRUST_DOMAIN};
use x0tta6bl4_integration::{metric, metrics_text, tool_available, wait_for, wait_routes_to, NodeProcess};

/// The ring's nodes, the victim among them, and the intruder.
const RING: usize = 5;
const VICTIM: usize = 2;
const INTRUDER: usize = RING;

/// Every route of `node` that has `peer` as destination, next hop or backup.
fn routes_touching(node: &NodeProcess, peer: &str) -> Option<Vec<Value>> {
    let routes = node.get("/api/v1/routes").ok()?["routes"].as_array()?.clone();
    Some(
        routes
            .into_iter()
            .filter(|r| r["destination"] == peer || r["next_hop"] == peer || r["backup"] == peer)
            .collect(),
    )
}

#[test]
fn only_nodes_with_a_valid_svid_are_admitted_and_a_revoked_one_leaves_every_route() {
    if !tool_available("openssl", "openssl") {
        return;
    }
    let Some(mut net) = test_net_or_skip() else { return };
    let dir = tempfile::tempdir().expect("CA dir");
    let ca = OperatorCa::new(dir.path());
    ca.gencrl();
    let hosts = net.add_hosts(RING + 1).expect("hosts");
    for i in 0..RING {
        net.link(hosts[i], hosts[(i + 1) % RING]).expect("ring link");
    }
    net.link(hosts[INTRUDER], hosts[0]).expect("intruder link");
    net.link(hosts[INTRUDER], hosts[3]).expect("intruder link");

    let admitted_env: Vec<(&str, String)> = ca
        .node_env()
        .into_iter()
        .chain([
            ("X0TTA6BL4_MESH__REQUIRE_SVID", "true".to_string()),
            ("X0TTA6BL4_SVID__CRL", ca.path("crl.pem")),
            ("X0TTA6BL4_SVID__CRL_REFRESH_SECS", "1".to_string()),
        ])
        .collect();
    for host in &hosts[..RING] {
        let spec = admitted_env
            .iter()
            .fold(net.node_spec(*host), |spec, (k, v)| spec.with(k, v.clone()));
        net.start_node(*host, spec).expect("node starts");
    }
    // Same trust domain name, but a CA of its own (made on first start, in sled).
    let intruder_spec = net
        .node_spec(hosts[INTRUDER])
        .with("X0TTA6BL4_SVID__ENABLED", "true")
        .with("X0TTA6BL4_SVID__TRUST_DOMAIN", TRUST_DOMAIN)
        .with("X0TTA6BL4_MESH__REQUIRE_SVID", "true");
    net.start_node(hosts[INTRUDER], intruder_spec).expect("intruder starts");

    let ids: Vec<String> = hosts.iter().map(|h| net.node(*h).peer_id.clone()).collect();
    let (victim, intruder) = (ids[VICTIM].clone(), ids[INTRUDER].clone());
    for host in &hosts[..RING] {
        let others: Vec<String> = (0..RING)
            .filter(|i| hosts[*i] != *host)
            .map(|i| ids[i].clone())
            .collect();
        wait_routes_to(net.node(*host), &others, Duration::from_secs(40));
    }
    println!("the five nodes with SVIDs of the operator's CA route to each other");

    // The intruder's beacons reach its two neighbours and are refused there.
    for neighbour in [0, 3] {
        wait_for(Duration::from_secs(20), "the intruder's beacons to be refused", || {
            let text = metrics_text(net.node(hosts[neighbour]));
            let refused = metric(&text, "x0tta_beacons_rejected_total", &["reason=\"svid_refused\""]);
            (refused >= 3.0).then_some(())
        });
    }
    for host in &hosts[..RING] {
        let touching = routes_touching(net.node(*host), &intruder).expect("routes");
        assert!(
            touching.is_empty(),
            "host {host} routes with the intruder: {touching:?}"
        );
        let topology = net.node(*host).get("/api/v1/topology").expect("topology").to_string();
        assert!(
            !topology.contains(&intruder),
            "host {host} knows the intruder: {topology}"
        );
    }
    let text = metrics_text(net.node(hosts[0]));
    assert!(
        metric(&text, "x0tta_svid_validations_total", &["result=\"refused\""]) >= 3.0,
        "the validator gave the reason"
    );
    let intruder_routes = net.node(hosts[INTRUDER]).get("/api/v1/routes").expect("routes");
    assert_eq!(
        intruder_routes["routes"].as_array().map(Vec::len),
        Some(0),
        "nor does the intruder admit SVIDs of a CA it does not trust: {intruder_routes}"
    );

    // Revoke the victim's current SVID with openssl and publish the CRL.
    let identity = net.node(hosts[VICTIM]).get("/api/v1/identity").expect("identity");
    let cert_pem = identity["cert_pem"].as_str().expect("the victim's SVID");
    let revoked_at = Instant::now();
    ca.revoke("victim", cert_pem);
    let others: Vec<usize> = (0..RING).filter(|i| *i != VICTIM).collect();
    wait_for(Duration::from_secs(20), "every node to drop the revoked one", || {
        others
            .iter()
            .all(|i| routes_touching(net.node(hosts[*i]), &victim).is_some_and(|r| r.is_empty()))
            .then_some(())
    });
    let out_after = revoked_at.elapsed();
    println!(
        "revoked node out of every route of the four others {:.2} s after the CRL was written \
         (CRL re-read every 1 s, beacons every 1 s)",
        out_after.as_secs_f64()
    );
    println!(
        "{{\"bench\":\"svid_revocation\",\"nodes\":{RING},\"out_of_all_routes_ms\":{}}}",
        out_after.as_millis()
    );

    // The others keep routing, now around it: 1 reaches 3 over 0 and 4.
    let around = wait_for(Duration::from_secs(20), "1 to reach 3 around the victim", || {
        net.node(hosts[1])
            .post("/api/v1/ping", &json!({ "to": ids[3] }))
            .ok()
            .filter(|echo| echo["hops"] == 3)
    });
    println!("1 reaches 3 in {} hops, {} ms", around["hops"], around["rtt_ms"]);
    for neighbour in [1, 3] {
        let text = metrics_text(net.node(hosts[neighbour]));
        assert!(
            metric(&text, "x0tta_mesh_svid_exclusions_total", &["reason=\"revoked\""]) >= 1.0,
            "neighbour {neighbour} counted the exclusion"
        );
    }
    // And it stays out while its beacons keep coming.
    std::thread::sleep(Duration::from_secs(3));
    for i in &others {
        let touching = routes_touching(net.node(hosts[*i]), &victim).expect("routes");
        assert!(touching.is_empty(), "host {i} took the revoked node back: {touching:?}");
    }
}
