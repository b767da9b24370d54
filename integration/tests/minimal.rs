//! The minimal profile in effect (`X0TTA6BL4_MINIMAL=true`): a minimal node
//! joins a mesh of full nodes over TCP alone (no QUIC address, no UDP socket),
//! runs one network thread, and routes sealed messages both ways like any node.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;
use x0tta6bl4_integration::{threads_named, wait_for, NodeProcess, TestMesh, MINIMAL};

/// Inodes of the UDP sockets of this network namespace (`/proc/net/udp*`).
fn udp_inodes() -> HashSet<String> {
    ["/proc/net/udp", "/proc/net/udp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|text| {
            text.lines()
                .skip(1)
                .filter_map(|l| l.split_whitespace().nth(9).map(str::to_string))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// How many UDP sockets process `pid` holds.
fn udp_sockets_of(pid: u32) -> usize {
    let udp = udp_inodes();
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |fds| {
        fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
            .filter_map(|target| {
                let target = target.to_string_lossy().into_owned();
                Some(target.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
            })
            .filter(|inode| udp.contains(inode))
            .count()
    })
}

fn listen_addrs(node: &NodeProcess) -> Vec<String> {
    node.get("/api/v1/status").expect("status")["listen_addrs"]
        .as_array()
        .expect("listen_addrs")
        .iter()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect()
}

/// Sends `text` from `from` to `to` and waits until it is in `to`'s inbox.
fn deliver(from: &NodeProcess, to: &NodeProcess, text: &str) {
    from.post("/api/v1/messages", &json!({ "to": to.peer_id, "text": text }))
        .unwrap_or_else(|e| panic!("{} cannot send: {e}", from.name()));
    wait_for(
        Duration::from_secs(15),
        &format!("'{text}' in {}'s inbox", to.name()),
        || {
            let inbox = to.get("/api/v1/messages").ok()?;
            inbox["messages"]
                .as_array()?
                .iter()
                .any(|m| m["text"] == text)
                .then_some(())
        },
    );
}

#[test]
fn a_minimal_node_joins_over_tcp_alone_with_one_network_thread_and_routes() {
    let mut mesh = TestMesh::new();
    let hub = mesh.add("hub", &[], true);
    let full = mesh.add("full", &[hub], true);
    let small = mesh.add_with("small", &[hub], true, MINIMAL);
    // The minimal node finds `full` through beacons and dials it over TCP.
    mesh.wait_route(small, full, 1, Duration::from_secs(30));
    mesh.wait_route(full, small, 1, Duration::from_secs(30));

    let (small_node, full_node) = (&mesh.nodes[small], &mesh.nodes[full]);
    let small_addrs = listen_addrs(small_node);
    assert!(!small_addrs.is_empty());
    assert!(
        small_addrs.iter().all(|a| a.contains("/tcp/") && !a.contains("quic")),
        "the minimal node listens on TCP only: {small_addrs:?}"
    );
    assert!(
        listen_addrs(full_node).iter().any(|a| a.contains("quic")),
        "a full node listens on QUIC too"
    );
    let (small_pid, full_pid) = (small_node.pid().expect("pid"), full_node.pid().expect("pid"));
    assert_eq!(udp_sockets_of(small_pid), 0, "no QUIC endpoint in the minimal node");
    assert!(udp_sockets_of(full_pid) > 0, "the full node has its QUIC endpoint");
    assert_eq!(threads_named(small_pid, "x0tta-net"), 1, "one network thread");
    assert_eq!(threads_named(full_pid, "x0tta-net"), 2, "a full node runs two");

    deliver(small_node, full_node, "from the small node");
    deliver(full_node, small_node, "to the small node");
}
