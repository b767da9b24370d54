//! The XDP program on real interfaces: two namespaces joined by a veth pair,
//! a node on one end with the program attached, traffic from the other end.
//! Needs root with CAP_BPF and CAP_NET_ADMIN (skipped otherwise; CI runs them).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use serde_json::{json, Value};
use x0tta6bl4::launcher::NodeProcess;
use x0tta6bl4_integration::netns::{test_net_or_skip, TestNet};
use x0tta6bl4_integration::{metric, metrics_text, wait_for, wait_routes_to};

/// Ethernet + IPv4 + UDP headers in front of every datagram's payload.
const UDP_OVERHEAD: u64 = 42;
/// The interface name both ends of the first link get.
const LINK_DEV: &str = "l0";

/// The scenarios share namespaces' naming and the machine's two cores: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Two hosts joined by one link; no node runs yet.
fn pair() -> Option<TestNet> {
    let mut net = test_net_or_skip()?;
    net.add_hosts(2).expect("hosts");
    net.link(0, 1).expect("link");
    Some(net)
}

fn addr(net: &TestNet, host: usize) -> Ipv4Addr {
    net.links()[0].addr_of(host).expect("host is on the link")
}

/// Starts a node on host 0 watching `interfaces` with XDP, reading every 100 ms.
fn start_watcher(net: &mut TestNet, interfaces: &[&str], extra: &[(&str, &str)]) {
    let spec = extra.iter().fold(
        net.node_spec(0)
            .with_xdp_on(interfaces)
            .with("X0TTA6BL4_TELEMETRY__INTERVAL_MS", "100"),
        |spec, (k, v)| spec.with(k, *v),
    );
    net.start_node(0, spec).expect("node starts");
}

/// The interface's entry in a fresh telemetry snapshot.
fn iface_view(node: &NodeProcess, iface: &str) -> Value {
    let snapshot = node.get("/api/v1/telemetry").expect("telemetry answers");
    snapshot["interfaces"]
        .as_array()
        .and_then(|all| all.iter().find(|i| i["iface"] == iface).cloned())
        .unwrap_or_else(|| panic!("no {iface} in {snapshot}"))
}

/// Waits until XDP reports a mode on `iface`; returns the interface entry.
fn wait_attached(node: &NodeProcess, iface: &str) -> Value {
    wait_for(Duration::from_secs(10), &format!("XDP on {iface}"), || {
        let view = iface_view(node, iface);
        view["mode"].is_string().then_some(view)
    })
}

/// (packets, bytes) of a class or drop reason in an interface entry.
fn count(view: &Value, list: &str, name: &str) -> (u64, u64) {
    let entry = view[list]
        .as_array()
        .and_then(|all| all.iter().find(|c| c["name"] == name).cloned())
        .unwrap_or_else(|| panic!("no {list}/{name} in {view}"));
    (
        entry["packets"].as_u64().unwrap_or(0),
        entry["bytes"].as_u64().unwrap_or(0),
    )
}

/// Waits until the count reaches `target` packets, then two more readings to
/// be sure it does not overshoot; returns the settled count.
fn settled(node: &NodeProcess, list: &str, name: &str, target: u64) -> (u64, u64) {
    wait_for(
        Duration::from_secs(10),
        &format!("{list}/{name} to reach {target}"),
        || (count(&iface_view(node, LINK_DEV), list, name).0 >= target).then_some(()),
    );
    std::thread::sleep(Duration::from_millis(300));
    count(&iface_view(node, LINK_DEV), list, name)
}

/// Whether `ip link` shows an XDP program on `dev` in `host`.
fn xdp_on_link(net: &TestNet, host: usize, dev: &str) -> bool {
    let shown = net.ip(host, &["link", "show", "dev", dev]).expect("ip link show");
    shown.contains(" xdp")
}

#[test]
fn counts_exactly_the_udp_datagrams_sent_in_native_mode() {
    let _serial = serial();
    let Some(mut net) = pair() else { return };
    start_watcher(&mut net, &[LINK_DEV], &[]);
    let node = net.node(0);
    let view = wait_attached(node, LINK_DEV);
    assert_eq!(view["mode"], "native", "veth supports driver mode: {view}");
    assert_eq!(view["source"], "xdp");
    println!(
        "XDP mode on veth: {} (refused first: {})",
        view["mode"], view["refused_modes"]
    );

    let (base_packets, base_bytes) = count(&view, "classes", "udp");
    let (n, payload) = (1_000u64, 200usize);
    let to = SocketAddrV4::new(addr(&net, 0), 9);
    net.send_udp(1, to, n, payload).expect("send UDP");
    let (packets, bytes) = settled(net.node(0), "classes", "udp", base_packets + n);
    let frame = payload as u64 + UDP_OVERHEAD;
    assert_eq!(packets - base_packets, n, "UDP packets counted");
    assert_eq!(bytes - base_bytes, n * frame, "UDP bytes counted ({frame}-byte frames)");
    println!(
        "sent {n} datagrams of {frame} bytes: counted {} packets, {} bytes",
        packets - base_packets,
        bytes - base_bytes
    );

    let metrics = metrics_text(net.node(0));
    let exported = metric(&metrics, "x0tta_xdp_packets_total", &["iface=\"l0\"", "class=\"udp\""]);
    assert!(exported >= (base_packets + n) as f64, "Prometheus shows {exported}");
    let attached = metric(&metrics, "x0tta_xdp_attached", &["iface=\"l0\"", "mode=\"native\""]);
    assert_eq!(attached, 1.0);
}

#[test]
fn falls_back_to_generic_mode_and_names_missing_or_down_interfaces() {
    let _serial = serial();
    let Some(mut net) = pair() else { return };
    // The namespace's loopback has no native XDP; d1 is a veth left down.
    net.ip(0, &["link", "add", "d1", "type", "veth", "peer", "name", "d1p"])
        .expect("veth");
    start_watcher(&mut net, &[LINK_DEV, "lo", "nope0", "d1"], &[]);
    let node = net.node(0);

    let loopback = wait_attached(node, "lo");
    assert_eq!(loopback["mode"], "generic", "{loopback}");
    let refused: Vec<&str> = loopback["refused_modes"]
        .as_array()
        .expect("refused modes")
        .iter()
        .filter_map(|r| r["mode"].as_str())
        .collect();
    assert_eq!(
        refused,
        ["hardware", "native"],
        "tried in order before falling back: {loopback}"
    );
    println!("loopback fell back: {}", loopback["refused_modes"]);
    assert_eq!(wait_attached(node, LINK_DEV)["mode"], "native");

    let missing = iface_view(node, "nope0");
    assert_eq!(missing["source"], "interface_stats");
    assert_eq!(missing["error"], "interface \"nope0\" does not exist", "{missing}");
    let down = iface_view(node, "d1");
    assert_eq!(down["error"], "interface \"d1\" is down", "{down}");
    let log = std::fs::read_to_string(node.spec().data_dir.join("node.log")).expect("node log");
    assert!(
        log.contains("interface \\\"nope0\\\" does not exist") || log.contains("interface \"nope0\" does not exist")
    );

    // An interface that comes up later is attached on a retry, without a restart.
    net.ip(0, &["link", "set", "d1", "up"]).expect("d1 up");
    let recovered = wait_attached(net.node(0), "d1");
    assert_eq!(recovered["mode"], "native");

    // Forcing generic mode on a veth takes it without trying the others.
    net.node_mut(0).stop();
    start_watcher(&mut net, &[LINK_DEV], &[("X0TTA6BL4_TELEMETRY__XDP_MODE", "generic")]);
    let forced = wait_attached(net.node(0), LINK_DEV);
    assert_eq!(forced["mode"], "generic", "{forced}");
    assert_eq!(forced["refused_modes"], json!([]));
    let shown = net.ip(0, &["link", "show", "dev", LINK_DEV]).expect("ip link");
    assert!(shown.contains("xdpgeneric"), "ip link shows generic mode: {shown}");
}

#[test]
fn quarantined_sources_are_dropped_until_released_or_expired() {
    let _serial = serial();
    let Some(mut net) = pair() else { return };
    start_watcher(&mut net, &[LINK_DEV], &[]);
    wait_attached(net.node(0), LINK_DEV);
    let (here, sender) = (addr(&net, 0), addr(&net, 1));
    assert!(net.ping(1, here), "ping works before quarantine");

    let answer = net
        .node(0)
        .post(
            "/api/v1/quarantine",
            &json!({"addresses": [sender.to_string()], "ttl_secs": 60, "reason": "test"}),
        )
        .expect("quarantine");
    assert_eq!(answer["quarantined"][0]["enforced"], true, "{answer}");
    let (base, _) = count(&iface_view(net.node(0), LINK_DEV), "dropped", "quarantine");
    let n = 500;
    net.send_udp(1, SocketAddrV4::new(here, 9), n, 64).expect("send UDP");
    let (dropped, bytes) = settled(net.node(0), "dropped", "quarantine", base + n);
    assert_eq!(dropped - base, n, "every datagram from the quarantined source dropped");
    assert!(bytes >= n * (64 + UDP_OVERHEAD));
    assert!(!net.ping(1, here), "ping fails while quarantined");
    let listed = net.node(0).get("/api/v1/quarantine").expect("list");
    assert!(
        listed["quarantine"][0]["dropped_packets"].as_u64().unwrap_or(0) > n,
        "{listed}"
    );

    let released = net
        .node(0)
        .delete("/api/v1/quarantine", &json!({"addresses": [sender.to_string()]}))
        .expect("release");
    assert_eq!(released["released"], json!([sender.to_string()]));
    assert!(net.ping(1, here), "ping works again after release");

    // A short TTL ends by itself.
    net.node(0)
        .post(
            "/api/v1/quarantine",
            &json!({"addresses": [sender.to_string()], "ttl_secs": 1}),
        )
        .expect("quarantine");
    assert!(!net.ping(1, here), "dropped during the TTL");
    std::thread::sleep(Duration::from_millis(1_200));
    assert!(net.ping(1, here), "released when the TTL ended");
    wait_for(Duration::from_secs(5), "the expired entry to leave the list", || {
        let list = net.node(0).get("/api/v1/quarantine").ok()?;
        list["quarantine"].as_array()?.is_empty().then_some(())
    });

    // Bad requests get clear errors, not a crash.
    let bad = net
        .node(0)
        .post("/api/v1/quarantine", &json!({"addresses": ["10.0.0.300"]}));
    assert!(format!("{bad:?}").contains("not an IP address"), "{bad:?}");
    let empty = net.node(0).post("/api/v1/quarantine", &json!({}));
    assert!(format!("{empty:?}").contains("name addresses or a peer"), "{empty:?}");
}

#[test]
fn quarantining_a_peer_by_id_cuts_its_mesh_link_until_released() {
    let _serial = serial();
    let Some(mut net) = pair() else { return };
    let fast = x0tta6bl4_integration::FAST_FAILOVER;
    start_watcher(&mut net, &[LINK_DEV], fast);
    let spec = fast.iter().fold(net.node_spec(1), |s, (k, v)| s.with(k, *v));
    net.start_node(1, spec).expect("second node");
    let peer = net.node(1).peer_id.clone();
    let connected = |net: &TestNet| {
        net.node(0)
            .get("/api/v1/peers")
            .ok()
            .and_then(|p| p["peers"].as_array().cloned())
            .is_some_and(|peers| {
                peers
                    .iter()
                    .any(|p| p["peer_id"] == peer.as_str() && p["connected"] == true)
            })
    };
    wait_for(Duration::from_secs(20), "the two nodes to connect", || {
        connected(&net).then_some(())
    });
    wait_routes_to(net.node(0), std::slice::from_ref(&peer), Duration::from_secs(20));

    let answer = net
        .node(0)
        .post("/api/v1/quarantine", &json!({"peer": peer, "ttl_secs": 60}))
        .expect("quarantine by peer");
    let blocked: Vec<&str> = answer["quarantined"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|v| v["addr"].as_str())
        .collect();
    assert!(blocked.contains(&addr(&net, 1).to_string().as_str()), "{answer}");
    wait_for(Duration::from_secs(10), "the quarantined peer's link to close", || {
        (!connected(&net)).then_some(())
    });

    net.node(0)
        .delete("/api/v1/quarantine", &json!({"peer": peer}))
        .expect("release by peer");
    wait_for(Duration::from_secs(20), "the link to come back", || {
        connected(&net).then_some(())
    });
}

#[test]
fn a_stopped_or_killed_node_leaves_no_program_and_a_restart_attaches_once() {
    let _serial = serial();
    let Some(mut net) = pair() else { return };
    start_watcher(&mut net, &[LINK_DEV], &[]);
    wait_attached(net.node(0), LINK_DEV);
    assert!(xdp_on_link(&net, 0, LINK_DEV));
    let spec = net.node(0).spec().clone();

    // Never twice: a second node on the same interface is refused, the first keeps it.
    let mut second = spec.clone();
    second.data_dir = spec.data_dir.with_file_name("second");
    second.http = std::net::SocketAddr::new(spec.http.ip(), 0);
    second = second.with("X0TTA6BL4_MESH__LISTEN", "[\"/ip4/127.0.0.1/tcp/0\"]");
    let intruder = NodeProcess::spawn(second).expect("second node starts");
    let refused = wait_for(Duration::from_secs(10), "the second node's attach error", || {
        iface_view(&intruder, LINK_DEV)["error"].as_str().map(str::to_string)
    });
    assert!(refused.contains("already attached"), "{refused}");
    drop(intruder);
    assert_eq!(wait_attached(net.node(0), LINK_DEV)["mode"], "native");

    net.node_mut(0).stop();
    assert!(!xdp_on_link(&net, 0, LINK_DEV), "SIGTERM: nothing left attached");
    net.start_node(0, spec.clone()).expect("restart");
    assert_eq!(wait_attached(net.node(0), LINK_DEV)["mode"], "native");

    net.node_mut(0).kill();
    assert!(!xdp_on_link(&net, 0, LINK_DEV), "SIGKILL: the kernel released the link");
    net.start_node(0, spec).expect("restart after SIGKILL");
    assert_eq!(wait_attached(net.node(0), LINK_DEV)["mode"], "native");

    // A panic in the telemetry actor: its restart detaches and attaches
    // again, keeping the quarantine.
    let node = net.node(0);
    let sender = addr(&net, 1).to_string();
    node.post("/api/v1/quarantine", &json!({"addresses": [sender], "ttl_secs": 60}))
        .expect("quarantine");
    node.post("/api/v1/debug/fault", &json!({"actor": "telemetry", "kind": "panic"}))
        .expect("fault injected");
    wait_for(Duration::from_secs(10), "the telemetry restart to be counted", || {
        let text = metrics_text(node);
        (metric(&text, "x0tta_actor_restarts_total", &["actor=\"telemetry\""]) >= 1.0).then_some(())
    });
    assert_eq!(wait_attached(node, LINK_DEV)["mode"], "native");
    assert!(xdp_on_link(&net, 0, LINK_DEV));
    assert!(!net.ping(1, addr(&net, 0)), "the quarantine survived the actor restart");
}

#[test]
fn without_privileges_the_node_runs_on_interface_statistics_and_says_why() {
    let _serial = serial();
    let Some(mut net) = pair() else { return };
    let mut spec = net
        .node_spec(0)
        .with_xdp_on(&[LINK_DEV])
        .with("X0TTA6BL4_TELEMETRY__INTERVAL_MS", "100");
    // Root without capabilities: an empty bounding set leaves the node none.
    spec.prefix
        .extend(["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--"].map(String::from));
    net.start_node(0, spec).expect("unprivileged node starts");
    let node = net.node(0);
    let snapshot = wait_for(Duration::from_secs(10), "a telemetry snapshot", || {
        node.get("/api/v1/telemetry").ok()
    });
    assert_eq!(snapshot["xdp"]["enabled"], false, "{snapshot}");
    let reason = snapshot["xdp"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("not permitted"), "reason given: {reason}");
    println!("unprivileged: {reason}");
    assert!(!xdp_on_link(&net, 0, LINK_DEV));

    let before = iface_view(node, LINK_DEV);
    assert_eq!(before["source"], "interface_stats");
    let rx_before = before["kernel"]["rx_packets"].as_u64().expect("kernel counters");
    net.send_udp(1, SocketAddrV4::new(addr(&net, 0), 9), 200, 64)
        .expect("send UDP");
    wait_for(
        Duration::from_secs(5),
        "interface statistics to count the datagrams",
        || {
            let rx = iface_view(node, LINK_DEV)["kernel"]["rx_packets"].as_u64()?;
            (rx >= rx_before + 200).then_some(())
        },
    );
    let log = std::fs::read_to_string(node.spec().data_dir.join("node.log")).expect("node log");
    assert!(log.contains("XDP is off on this interface"), "the log says why");
}
