//! The namespace test network itself: nodes on real veth links, and nothing left
//! behind (namespace, veth or process) even when a test fails.

use std::time::Duration;

use x0tta6bl4_integration::netns::{existing_namespaces, run, test_net_or_skip};
use x0tta6bl4_integration::wait_for;

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

#[test]
fn a_failing_test_leaves_nothing_behind() {
    let Some(mut net) = test_net_or_skip() else { return };
    let hosts = net.add_hosts(3).expect("hosts");
    net.link(hosts[0], hosts[1]).expect("link");
    net.link(hosts[1], hosts[2]).expect("link");
    for host in hosts.clone() {
        let spec = net.node_spec(host);
        net.start_node(host, spec).expect("node starts");
    }
    let namespaces = net.namespaces();
    let pids: Vec<u32> = hosts.iter().filter_map(|h| net.node(*h).pid()).collect();
    assert_eq!(pids.len(), 3);
    let devices = net.root_devices();
    for dev in &devices {
        run("ip", &["link", "show", "dev", dev]).expect("management veth exists while the net runs");
    }

    let outcome = std::thread::spawn(move || {
        let _net = net;
        panic!("a test failing while its network runs");
    })
    .join();
    assert!(outcome.is_err(), "the inner test failed");

    let left: Vec<String> = existing_namespaces()
        .into_iter()
        .filter(|n| namespaces.contains(n))
        .collect();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
    for dev in &devices {
        assert!(
            run("ip", &["link", "show", "dev", dev]).is_err(),
            "veth {dev} left behind"
        );
    }
    wait_for(Duration::from_secs(5), "node processes to exit", || {
        pids.iter().all(|p| !alive(*p)).then_some(())
    });
}

#[test]
fn nodes_route_over_a_veth_line() {
    let Some(mut net) = test_net_or_skip() else { return };
    let hosts = net.add_hosts(3).expect("hosts");
    net.link(hosts[0], hosts[1]).expect("link");
    net.link(hosts[1], hosts[2]).expect("link");
    for host in hosts {
        let spec = net.node_spec(host);
        net.start_node(host, spec).expect("node starts");
    }
    let far = net.node(2).peer_id.clone();
    let echo = wait_for(Duration::from_secs(20), "echo across two veth hops", || {
        net.node(0).post("/api/v1/ping", &serde_json::json!({ "to": far })).ok()
    });
    assert_eq!(echo["hops"], 2);
    let status = net.node(0).get("/api/v1/status").expect("status");
    let addrs = status["listen_addrs"].to_string();
    assert!(
        addrs.contains("10.77.0.1") && !addrs.contains("127.0.0.1"),
        "listens on its link only: {addrs}"
    );
}
