//! The healing topology shared by the healer tests and `bench heal`: six hosts,
//! a short path A–B–C and the long way round A–D–E–F–C, every node running a
//! fast healer.

use std::time::Duration;

use crate::netns::{test_net_or_skip, TestNet};
use crate::{route_to, wait_routes_to};

/// A healer that cycles every 200 ms, judges its actions after one second,
/// quarantines for 3 s and lets an avoided link back in after 2 healthy seconds.
pub const FAST_HEALER: &[(&str, &str)] = &[
    ("X0TTA6BL4_HEALER__CYCLE_MS", "200"),
    ("X0TTA6BL4_HEALER__VERIFY_MS", "1000"),
    ("X0TTA6BL4_HEALER__SILENT_AFTER_MS", "1000"),
    ("X0TTA6BL4_HEALER__PROBES", "3"),
    ("X0TTA6BL4_HEALER__PROBE_TIMEOUT_MS", "400"),
    ("X0TTA6BL4_HEALER__QUARANTINE_SECS", "3"),
    ("X0TTA6BL4_HEALER__RESTORE_AFTER_SECS", "2"),
];

/// Host indices of the detour topology.
pub const A: usize = 0;
/// The relay of the short path.
pub const B: usize = 1;
/// The destination.
pub const C: usize = 2;
/// The first relay of the long way round.
pub const D: usize = 3;
/// Link index of A–B, the first link of the short path.
pub const A_B: usize = 0;

/// Builds the detour network and starts a node with [`FAST_HEALER`] and `extra`
/// on every host (hosts in `no_healer` without a healer, so one node's
/// decisions can be watched alone); waits until A routes to everyone. `None`
/// when namespaces are unavailable (see [`test_net_or_skip`]).
pub fn start(extra: &[(&str, &str)], no_healer: &[usize]) -> Option<TestNet> {
    let mut net = test_net_or_skip()?;
    net.add_hosts(6).expect("hosts");
    for (a, b) in [(A, B), (B, C), (A, D), (D, 4), (4, 5), (5, C)] {
        net.link(a, b).expect("link");
    }
    for host in 0..6 {
        let mut spec = FAST_HEALER
            .iter()
            .chain(extra)
            .fold(net.node_spec(host), |s, (k, v)| s.with(k, *v));
        if no_healer.contains(&host) {
            spec = spec.with("X0TTA6BL4_HEALER__ENABLED", "false");
        }
        net.start_node(host, spec).expect("node starts");
    }
    let all: Vec<String> = (1..6).map(|h| net.node(h).peer_id.clone()).collect();
    wait_routes_to(net.node(A), &all, Duration::from_secs(30));
    Some(net)
}

/// Peer id of the next hop of `from`'s route to `to`, if it has one.
pub fn next_hop(net: &TestNet, from: usize, to: usize) -> Option<String> {
    route_to(net.node(from), &net.node(to).peer_id)?["next_hop"]
        .as_str()
        .map(str::to_string)
}
