//! The healer on real links: network namespaces, real faults, no operator.
//! Needs root (skipped otherwise; CI runs them).

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use x0tta6bl4::launcher::NodeProcess;
use x0tta6bl4_integration::detour::{self, next_hop, FAST_HEALER};
use x0tta6bl4_integration::netns::{test_net_or_skip, TestNet};
use x0tta6bl4_integration::{metric, metrics_text, wait_for, wait_routes_to};

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn healing(node: &NodeProcess) -> Vec<Value> {
    node.get("/api/v1/healing")
        .ok()
        .and_then(|h| h["history"].as_array().cloned())
        .unwrap_or_default()
}

/// Peers whose links the node's healer currently avoids.
fn avoided(node: &NodeProcess) -> Option<Vec<Value>> {
    node.get("/api/v1/healing").ok()?["avoided"].as_array().cloned()
}

/// The node's `GET /api/v1/peers` entry for `peer`.
fn peer_view(node: &NodeProcess, peer: &str) -> Value {
    let peers = node.get("/api/v1/peers").unwrap_or_default();
    let found = peers["peers"]
        .as_array()
        .and_then(|all| all.iter().find(|p| p["peer_id"] == peer));
    found.cloned().unwrap_or_default()
}

/// History records of `action` on `target` with `result`.
fn records(node: &NodeProcess, action: &str, target: &str, result: &str) -> Vec<Value> {
    healing(node)
        .into_iter()
        .filter(|r| r["action"] == action && r["target"] == target && r["result"] == result)
        .collect()
}

/// Waits for a record; on timeout, fails with the whole healing view.
fn wait_record(node: &NodeProcess, action: &str, target: &str, result: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(record) = records(node, action, target, result).into_iter().next() {
            return record;
        }
        if Instant::now() > deadline {
            let view = node.get("/api/v1/healing").unwrap_or_default();
            panic!("no {result} {action} on {target} within {timeout:?}; healer: {view:#}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_lossy_link_on_the_active_path_is_routed_around_without_an_operator() {
    let _serial = serial();
    let Some(mut net) = detour::start(&[], &[]) else { return };
    let (a, b, d) = (
        net.node(0).peer_id.clone(),
        net.node(1).peer_id.clone(),
        net.node(3).peer_id.clone(),
    );
    assert_eq!(
        next_hop(&net, 0, 2).as_deref(),
        Some(b.as_str()),
        "A reaches C through B first"
    );

    let fault = Instant::now();
    net.set_loss(0, 40).expect("40 % loss on A–B");
    let moved = wait_for(
        Duration::from_secs(30),
        "A's route to C to leave B after 40 % loss",
        || (next_hop(&net, 0, 2).as_deref() == Some(d.as_str())).then(|| fault.elapsed()),
    );
    // Either end's healer may switch first: B sees the same loss, and once B
    // avoids the link A's route leaves it, so A has nothing left to switch.
    // And at 40 % loss each way the A–B connection itself can die (a stream
    // stalls, the connection drops, redials through the same loss fail until
    // the healer's breaker stops them): then no route uses the link and there
    // is nothing to switch at all; what is left to check is that the link
    // comes back once the loss ends.
    let mut gone_since: Option<Instant> = None;
    let switched = wait_for(
        Duration::from_secs(30),
        "A's healer to switch the route off the lossy link, or the link to stay down",
        || {
            for (healer, other) in [(0, &b), (1, &a)] {
                if let Some(record) = records(net.node(healer), "switch_route", other, "verified")
                    .into_iter()
                    .next()
                {
                    return Some(Some((healer, record)));
                }
            }
            let down = peer_view(net.node(0), &b)["connected"] == false;
            let since = *gone_since.insert(match (down, gone_since) {
                (true, Some(since)) => since,
                _ => Instant::now(),
            });
            (down && since.elapsed() >= LINK_GONE).then_some(None)
        },
    );
    match switched {
        Some((healer, verified)) => routed_around_by_a_healer(&net, healer, &d, moved, &verified),
        None => {
            // The link died, so the route moved without a switch; the healers
            // must still have acted on it (switched before it died, or tried
            // to redial it), or the healer had no part in this recovery.
            let acted: Vec<Value> = [(0, &b), (1, &a)]
                .into_iter()
                .flat_map(|(healer, other)| {
                    healing(net.node(healer))
                        .into_iter()
                        .filter(move |r| r["target"] == *other && r["result"] != "refused")
                })
                .collect();
            assert!(
                !acted.is_empty(),
                "the A–B link stayed down {} s and neither end's healer acted on it; A's healer: {:#}; B's healer: {:#}",
                LINK_GONE.as_secs(),
                net.node(0).get("/api/v1/healing").unwrap_or_default(),
                net.node(1).get("/api/v1/healing").unwrap_or_default()
            );
            println!(
                "40 % loss on A–B: traffic left the link {} ms after the fault; the link then stayed down {} s (nothing to switch); the healers' actions on it: {acted:#?}",
                moved.as_millis(),
                LINK_GONE.as_secs(),
            );
        }
    }
    comes_back_once_the_loss_ends(&mut net, &b);
}

/// How long the lossy link must stay down before the test stops waiting for
/// a switch (the healer's breaker allows five redials in about 10 s).
const LINK_GONE: Duration = Duration::from_secs(8);

/// The healer of `healer` (A or B) switched routes off the lossy A–B link:
/// A's route stays off it, both ends show the avoidance, and A reaches C over
/// the long path.
fn routed_around_by_a_healer(net: &TestNet, healer: usize, d: &str, moved: Duration, verified: &Value) {
    let other = 1 - healer;
    let name = ["A", "B"][healer];
    let mttr_ms = verified["mttr_ms"].as_u64().expect("MTTR recorded");
    // Verified means measured: delivery to the rerouted destinations before
    // and after the switch, and better after.
    let detail = verified["detail"].as_str().unwrap_or_default();
    assert!(
        detail.starts_with("delivery ") && detail.contains("before") && detail.contains("after"),
        "a verified switch names its evidence: {verified:#}"
    );
    println!(
        "40 % loss on A–B: traffic left the link {} ms after the fault; {name}'s healer MTTR (symptom → verified) {mttr_ms} ms; evidence: {}",
        moved.as_millis(),
        verified["evidence"]
    );
    // The healer pins the route: it stays off the lossy link.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        next_hop(net, 0, 2).as_deref(),
        Some(d),
        "no flapping back onto the lossy link"
    );
    // Both ends show who avoids the link: the healer's node itself, and the
    // other end from its beacons.
    let (here, there) = (&net.node(healer).peer_id, &net.node(other).peer_id);
    assert_eq!(
        peer_view(net.node(healer), there)["avoided_by_us"],
        true,
        "{name}'s own view"
    );
    // The other end learns it from the healer's beacons while the link is up.
    // At 40 % loss each way the connection can also die after the switch (see
    // above); a link that is down is in no beacon, and nothing is left to show.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut down_since: Option<Instant> = None;
    while peer_view(net.node(other), here)["avoided_by_peer"] != true {
        let down = peer_view(net.node(healer), there)["connected"] == false;
        down_since = down.then(|| down_since.unwrap_or_else(Instant::now));
        if down_since.is_some_and(|since| since.elapsed() >= Duration::from_secs(2)) {
            println!("the lossy link went down after the switch: no beacon lists it");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the other end did not learn from beacons within 10 s that the link is avoided; \
             {name}'s view of the other end: {:#}; {name}'s healer: {:#}; the other end's view of {name}: {:#}; \
             its topology: {:#}",
            peer_view(net.node(healer), there),
            net.node(healer).get("/api/v1/healing").unwrap_or_default()["avoided"],
            peer_view(net.node(other), here),
            net.node(other).get("/api/v1/topology").unwrap_or_default(),
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let reply = net
        .node(0)
        .post("/api/v1/ping", &json!({"to": net.node(2).peer_id, "timeout_ms": 2000}))
        .expect("A reaches C over the clean path");
    assert_eq!(reply["hops"], 4);
    let text = metrics_text(net.node(healer));
    assert!(
        metric(
            &text,
            "x0tta_healing_actions_total",
            &["action=\"switch_route\"", "result=\"verified\""]
        ) >= 1.0
    );
    assert!(metric(&text, "x0tta_mttr_seconds_count", &[]) >= 1.0);
}

/// The loss ends: once both ends' healers let the link back in (each after
/// two healthy seconds, or after its flapping window if the link also dropped),
/// A routes to C through B again, and neither end shows the link avoided.
fn comes_back_once_the_loss_ends(net: &mut TestNet, b: &str) {
    net.set_loss(0, 0).expect("loss removed");
    let lifted = Instant::now();
    for (node, name) in [(0, "A"), (1, "B")] {
        let waited = wait_for(
            Duration::from_secs(60),
            "both ends to let the A–B link back in",
            || {
                avoided(net.node(node))
                    .is_some_and(|list| list.is_empty())
                    .then(|| lifted.elapsed())
            },
        );
        println!(
            "{name} has nothing avoided {} ms after the loss ended",
            waited.as_millis()
        );
    }
    let released = Instant::now();
    while next_hop(net, 0, 2).as_deref() != Some(b) {
        assert!(
            released.elapsed() < Duration::from_secs(30),
            "A does not route to C through B 30 s after both ends let the link back in (and the link is redialled if it was down); A's peers: {:#}; A's healer: {:#}; B's healer: {:#}",
            net.node(0).get("/api/v1/peers").unwrap_or_default(),
            net.node(0).get("/api/v1/healing").unwrap_or_default(),
            net.node(1).get("/api/v1/healing").unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let view = peer_view(net.node(0), b);
    assert_eq!(
        (&view["avoided_by_us"], &view["avoided_by_peer"]),
        (&json!(false), &json!(false)),
        "A's view of B once the link carries traffic again: {view:#}"
    );
}

#[test]
fn an_action_that_makes_delivery_worse_is_rolled_back() {
    let _serial = serial();
    // Only A heals: B would otherwise avoid the flapping link from its end too,
    // a valid decision of its own that this test is not about.
    let Some(net) = detour::start(x0tta6bl4_integration::FAST_FAILOVER, &[1]) else {
        return;
    };
    let b = net.node(1).peer_id.clone();
    // D silently drops what it should relay; its links and beacons look fine.
    net.node(3)
        .post("/api/v1/debug/blackhole", &json!({"enabled": true}))
        .expect("blackhole on D");
    // A–B flaps: the healer routes around it — straight into D's black hole.
    for _ in 0..2 {
        net.set_link(0, false).expect("A–B down");
        wait_for(Duration::from_secs(10), "A to lose B", || {
            (next_hop(&net, 0, 1).as_deref() != Some(b.as_str())).then_some(())
        });
        // Each outage lasts long enough for several healer cycles to see it.
        std::thread::sleep(Duration::from_millis(1_500));
        net.set_link(0, true).expect("A–B up");
        let up = Instant::now();
        while next_hop(&net, 0, 2).as_deref() != Some(b.as_str()) {
            assert!(
                up.elapsed() < Duration::from_secs(15),
                "A does not reach C through B 15 s after A–B came back; A's healer: {:#}",
                net.node(0).get("/api/v1/healing").unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let rolled_back = wait_record(net.node(0), "switch_route", &b, "rolled_back", Duration::from_secs(30));
    println!("rolled back: {}", rolled_back["detail"]);
    assert!(
        rolled_back["detail"].as_str().unwrap_or_default().contains("after"),
        "{rolled_back}"
    );
    let back = Instant::now();
    while next_hop(&net, 0, 2).as_deref() != Some(b.as_str()) {
        if back.elapsed() > Duration::from_secs(20) {
            panic!(
                "route through B not back after 20 s; A routes {:#}; A topology {:#}; B healer {:#}; A healer {:#}",
                net.node(0).get("/api/v1/routes").unwrap_or_default(),
                net.node(0).get("/api/v1/topology").unwrap_or_default(),
                net.node(1).get("/api/v1/healing").unwrap_or_default(),
                net.node(0).get("/api/v1/healing").unwrap_or_default(),
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!(
        "route through B back {} ms after A's rollback",
        back.elapsed().as_millis()
    );
    let view = net.node(0).get("/api/v1/healing").expect("healing");
    assert_eq!(view["avoided"], json!([]), "{view}");
    assert!(
        records(net.node(0), "switch_route", &b, "executed").len() == 1,
        "cooling down: not tried again right away"
    );
}

#[test]
fn a_peer_flooding_garbage_is_quarantined_for_its_ttl_then_released() {
    let _serial = serial();
    let Some(mut net) = test_net_or_skip() else { return };
    net.add_hosts(2).expect("hosts");
    net.link(0, 1).expect("link");
    let victim = FAST_HEALER
        .iter()
        .fold(net.node_spec(0).with_xdp_on(&["l0"]), |s, (k, v)| s.with(k, *v));
    net.start_node(0, victim).expect("victim");
    let flooder = FAST_HEALER.iter().fold(net.node_spec(1), |s, (k, v)| s.with(k, *v));
    net.start_node(1, flooder).expect("flooder");
    let (v, x) = (net.node(0).peer_id.clone(), net.node(1).peer_id.clone());
    wait_routes_to(net.node(0), std::slice::from_ref(&x), Duration::from_secs(20));

    net.node(1)
        .post("/api/v1/debug/frame", &json!({"peer": v, "hex": "ff", "count": 2000}))
        .expect("flood");
    let executed = wait_record(net.node(0), "quarantine", &x, "executed", Duration::from_secs(10));
    println!("quarantine: {} ({})", executed["detail"], executed["evidence"]);
    assert_eq!(executed["symptom"], "misbehaving");
    let xdp = net.node(0).get("/api/v1/quarantine").expect("quarantine list");
    let sender = net.links()[0].addr_of(1).expect("address").to_string();
    assert!(
        xdp["quarantine"]
            .as_array()
            .is_some_and(|q| q.iter().any(|e| e["addr"] == sender.as_str() && e["enforced"] == true)),
        "XDP drops the flooder while quarantined: {xdp}"
    );
    wait_record(net.node(0), "quarantine", &x, "verified", Duration::from_secs(10));
    let released = wait_record(net.node(0), "quarantine", &x, "released", Duration::from_secs(15));
    let (q_at, r_at) = (
        executed["at_unix_ms"].as_u64().unwrap_or(0),
        released["at_unix_ms"].as_u64().unwrap_or(0),
    );
    println!("released {} ms after quarantine (TTL 3 s)", r_at.saturating_sub(q_at));
    assert!(r_at.saturating_sub(q_at) >= 3_000, "held for its TTL");
    wait_routes_to(net.node(0), std::slice::from_ref(&x), Duration::from_secs(20));
}

#[test]
fn a_peer_that_never_answers_opens_its_breaker_after_five_attempts() {
    let _serial = serial();
    let Some(mut net) = test_net_or_skip() else { return };
    net.add_hosts(2).expect("hosts");
    net.link(0, 1).expect("link");
    net.start_all(FAST_HEALER).expect("nodes");
    let b = net.node(1).peer_id.clone();
    wait_routes_to(net.node(0), std::slice::from_ref(&b), Duration::from_secs(20));

    net.node_mut(1).kill();
    let refused = wait_record(net.node(0), "redial", &b, "refused", Duration::from_secs(60));
    println!("after five failures: {}", refused["detail"]);
    // Several more cycles: the open breaker allows no further attempt.
    std::thread::sleep(Duration::from_secs(3));
    let failed = records(net.node(0), "redial", &b, "failed");
    assert_eq!(failed.len(), 5, "exactly five attempts: {failed:?}");
    let text = metrics_text(net.node(0));
    let state = metric(
        &text,
        "x0tta_breaker_state",
        &["kind=\"redial\"", &format!("target=\"{b}\"")],
    );
    assert_eq!(state, 2.0, "breaker open");
    assert_eq!(
        metric(
            &text,
            "x0tta_healing_actions_total",
            &["action=\"redial\"", "result=\"failed\""]
        ),
        5.0
    );
    let breakers = net.node(0).get("/api/v1/breakers").expect("breakers");
    let entry = breakers["breakers"]
        .as_array()
        .and_then(|all| all.iter().find(|e| e["target"] == b.as_str()).cloned())
        .expect("breaker listed");
    assert_eq!(entry["state"], "open", "{breakers}");
}

/// Starts `hosts` nodes joined by `links`; host 1 floods host 0 with garbage
/// frames, so that host 0's healer plans to quarantine it. Returns the net and
/// the peer ids.
fn flood_from_host_1(hosts: usize, links: &[(usize, usize)]) -> Option<(TestNet, Vec<String>)> {
    let mut net = test_net_or_skip()?;
    net.add_hosts(hosts).expect("hosts");
    for (a, b) in links {
        net.link(*a, *b).expect("link");
    }
    net.start_all(FAST_HEALER).expect("nodes");
    let ids: Vec<String> = (0..hosts).map(|h| net.node(h).peer_id.clone()).collect();
    wait_routes_to(net.node(0), &ids[1..], Duration::from_secs(20));
    net.node(1)
        .post(
            "/api/v1/debug/frame",
            &json!({"peer": ids[0], "hex": "ff", "count": 2000}),
        )
        .expect("flood");
    Some((net, ids))
}

#[test]
fn the_twin_vetoes_a_quarantine_that_would_cut_the_line_in_two_and_alerts_instead() {
    let _serial = serial();
    // A – B – C: B misbehaves towards A, but A reaches C only through B.
    let Some((net, ids)) = flood_from_host_1(3, &[(0, 1), (1, 2)]) else {
        return;
    };
    let (b, c) = (&ids[1], &ids[2]);
    let refused = wait_record(net.node(0), "quarantine", b, "refused", Duration::from_secs(10));
    let detail = refused["detail"].as_str().unwrap_or_default();
    println!("vetoed: {detail}");
    assert!(
        detail.starts_with("twin: ") && detail.contains("partition"),
        "{refused}"
    );
    assert!(
        detail.contains(c.as_str()),
        "the reason names the node cut off: {detail}"
    );
    assert!(
        records(net.node(0), "quarantine", b, "executed").is_empty(),
        "not quarantined"
    );
    // Raised once (no sink is configured: the alerter logs and counts it).
    let alerted = metric(
        &metrics_text(net.node(0)),
        "x0tta_alerts_total",
        &["name=\"HEALING_VETOED_PARTITION\"", "severity=\"warning\""],
    );
    assert_eq!(alerted, 1.0, "an alert instead of the quarantine");
    // The what-if API gives the same answer the healer acted on.
    let answer = net
        .node(0)
        .get(&format!("/api/v1/twin/whatif?fail={b}"))
        .expect("what-if");
    assert_eq!(answer["partitions"], true, "{answer}");
    assert_eq!(answer["cut_off"].as_array().map(Vec::len), Some(2), "{answer}");
    wait_routes_to(net.node(0), std::slice::from_ref(c), Duration::from_secs(5));
}

#[test]
fn in_a_ring_the_twin_lets_the_healer_quarantine() {
    let _serial = serial();
    // A – B – C – A: without B, A still reaches C.
    let Some((net, ids)) = flood_from_host_1(3, &[(0, 1), (1, 2), (2, 0)]) else {
        return;
    };
    let b = &ids[1];
    let executed = wait_record(net.node(0), "quarantine", b, "executed", Duration::from_secs(10));
    println!("quarantined: {}", executed["detail"]);
    assert!(records(net.node(0), "quarantine", b, "refused").is_empty());
    let answer = net
        .node(0)
        .get(&format!("/api/v1/twin/whatif?fail={b}"))
        .expect("what-if");
    assert_eq!(answer["partitions"], false, "{answer}");
    wait_routes_to(net.node(0), std::slice::from_ref(&ids[2]), Duration::from_secs(10));
}
