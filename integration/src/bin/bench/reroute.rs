//! `bench reroute`: a ring of six hosts in network namespaces; host 0 probes
//! host 3 every 10 ms with a round trip (x0tta6bl4: a routed echo through the
//! API; Yggdrasil and babeld: ICMP ping through their overlay or routes), each
//! probe sent on schedule whether or not earlier ones came back; the first
//! link of the active path is cut silently (every packet dropped, interfaces
//! up) and the time until probes are answered again is measured. The same on
//! the same topology for x0tta6bl4 at its defaults and with the fast-failover
//! profile, Yggdrasil (fixed timers), and babeld at its defaults and with
//! short hellos, in one run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use x0tta6bl4_integration::netns::{test_net_or_skip, TestNet};
use x0tta6bl4_integration::outage::{outage_after, percentile, Outage};
use x0tta6bl4_integration::{route_to, unix_ms, wait_for, wait_routes_to, FAST_FAILOVER};

use crate::peers::{Babel, Yggdrasil};

/// Probe spacing.
pub const PROBE_EVERY: Duration = Duration::from_millis(10);
/// How long a probe's answer is waited for (ping's `-W 1`).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// A routing system under test on a ring of six.
pub trait Overlay {
    /// Display name, with its settings.
    fn name(&self) -> &'static str;
    /// Starts the system on every host of the ring.
    fn start(&mut self, net: &mut TestNet) -> Result<(), String>;
    /// Waits until host 0 reaches host 3.
    fn wait_ready(&self, net: &TestNet);
    /// Probes host 3 from host 0 for `cut_after`, calls `cut`, keeps probing for
    /// `then`; returns `(send time, answered)` per probe.
    fn probe(
        &self,
        net: &mut TestNet,
        cut_after: Duration,
        then: Duration,
        cut: &mut dyn FnMut(&mut TestNet),
    ) -> Vec<(u64, bool)>;
    /// How long to keep probing after a cut.
    fn patience(&self) -> Duration;
    /// The link host 0 sends host 3's traffic on now, if the system says;
    /// otherwise the link that carried the most packets since `before`.
    fn active_link(&self, net: &TestNet, before: &[(usize, u64)]) -> usize {
        busiest_link(net, before)
    }
}

/// Settings every test node gets that make its timers faster than the
/// product's defaults (see `x0tta6bl4_integration::test_spec`).
const TEST_TIMERS: [&str; 3] = [
    "X0TTA6BL4_MESH__BEACON_INTERVAL_MS",
    "X0TTA6BL4_MESH__PING_INTERVAL_MS",
    "X0TTA6BL4_ROUTER__BEACON_EXPIRY_MS",
];

/// x0tta6bl4 nodes at the product's default timers (keepalive 250 ms, link
/// timeout 1.5 s, beacons and pings every second), or with the fast-failover
/// profile (keepalive 50 ms, link timeout 300 ms, beacons and pings every 300 ms).
pub struct X0tta {
    /// The fast-failover profile instead of the defaults.
    pub tuned: bool,
}

impl Overlay for X0tta {
    fn name(&self) -> &'static str {
        match self.tuned {
            true => "x0tta6bl4 failover",
            false => "x0tta6bl4 defaults",
        }
    }

    fn start(&mut self, net: &mut TestNet) -> Result<(), String> {
        for host in 0..net.namespaces().len() {
            let mut spec = net.node_spec(host);
            spec.env.retain(|(key, _)| !TEST_TIMERS.contains(&key.as_str()));
            if self.tuned {
                spec = FAST_FAILOVER.iter().fold(spec, |s, (k, v)| s.with(k, *v));
            }
            net.start_node(host, spec).map_err(|e| e.to_string())?;
        }
        let all: Vec<String> = (1..6).map(|h| net.node(h).peer_id.clone()).collect();
        wait_routes_to(net.node(0), &all, Duration::from_secs(60));
        Ok(())
    }

    /// Also waits for both of host 0's links: a link cut before comes back
    /// only once its old connection has closed, and a cut of the other link
    /// before that would cut host 0 off.
    fn wait_ready(&self, net: &TestNet) {
        let d = net.node(3).peer_id.clone();
        let neighbours = [net.node(1).peer_id.clone(), net.node(5).peer_id.clone()];
        wait_for(
            Duration::from_secs(60),
            "x0tta6bl4 route 0 -> 3 and both links of host 0",
            || {
                let peers = net.node(0).get("/api/v1/peers").ok()?;
                let linked = |id: &String| {
                    peers["peers"]
                        .as_array()
                        .is_some_and(|all| all.iter().any(|p| p["peer_id"] == *id && p["connected"] == true))
                };
                neighbours.iter().all(linked).then_some(())?;
                route_to(net.node(0), &d)
            },
        );
    }

    fn probe(
        &self,
        net: &mut TestNet,
        cut_after: Duration,
        then: Duration,
        cut: &mut dyn FnMut(&mut TestNet),
    ) -> Vec<(u64, bool)> {
        let echoes = Echoes::start(net.node(0).client(), &net.node(3).peer_id);
        std::thread::sleep(cut_after);
        cut(net);
        std::thread::sleep(then);
        echoes.stop()
    }

    fn patience(&self) -> Duration {
        match self.tuned {
            true => Duration::from_secs(3),
            false => Duration::from_secs(8),
        }
    }

    fn active_link(&self, net: &TestNet, before: &[(usize, u64)]) -> usize {
        let next = route_to(net.node(0), &net.node(3).peer_id).and_then(|r| r["next_hop"].as_str().map(str::to_string));
        let host = next.and_then(|peer| (1..6).find(|h| net.node(*h).peer_id == peer));
        host.and_then(|h| link_between(net, 0, h))
            .unwrap_or_else(|| busiest_link(net, before))
    }
}

/// Routed echoes from a node to a destination, one every [`PROBE_EVERY`], each
/// on a thread of its own (as ping sends on schedule), until stopped.
struct Echoes {
    running: Arc<AtomicBool>,
    probes: Arc<Mutex<Vec<(u64, bool)>>>,
    thread: std::thread::JoinHandle<()>,
}

impl Echoes {
    fn start(api: x0tta6bl4::launcher::ApiClient, to: &str) -> Self {
        let running = Arc::new(AtomicBool::new(true));
        let probes = Arc::new(Mutex::new(Vec::new()));
        let (flag, record, to) = (running.clone(), probes.clone(), to.to_string());
        let thread = std::thread::spawn(move || {
            let mut echoes = Vec::new();
            while flag.load(Ordering::Relaxed) {
                let (api, to, record) = (api.clone(), to.clone(), record.clone());
                echoes.retain(|e: &std::thread::JoinHandle<()>| !e.is_finished());
                echoes.push(std::thread::spawn(move || {
                    let at = unix_ms();
                    // A send refused at once counts as a lost probe, as it would for ping.
                    let answered = api
                        .request("POST", "/api/v1/ping")
                        .timeout(PROBE_TIMEOUT + Duration::from_secs(1))
                        .send_json(json!({ "to": to, "timeout_ms": PROBE_TIMEOUT.as_millis() as u64 }))
                        .is_ok();
                    if let Ok(mut all) = record.lock() {
                        all.push((at, answered));
                    }
                }));
                std::thread::sleep(PROBE_EVERY);
            }
            for echo in echoes {
                let _ = echo.join();
            }
        });
        Self {
            running,
            probes,
            thread,
        }
    }

    /// Stops sending, waits for every answer; `(send time, answered)` in send order.
    fn stop(self) -> Vec<(u64, bool)> {
        self.running.store(false, Ordering::Relaxed);
        let _ = self.thread.join();
        let mut probes = self.probes.lock().map(|p| p.clone()).unwrap_or_default();
        probes.sort_unstable();
        probes
    }
}

/// The link between hosts `a` and `b`, if there is one.
pub fn link_between(net: &TestNet, a: usize, b: usize) -> Option<usize> {
    net.links()
        .iter()
        .position(|l| l.addr_of(a).is_some() && l.peer_of(a) == b)
}

/// Packets sent by host 0 on each of its ring links.
pub fn tx_packets(net: &TestNet) -> Vec<(usize, u64)> {
    net.links()
        .iter()
        .enumerate()
        .filter(|(_, l)| l.addr_of(0).is_some())
        .map(|(i, l)| {
            let json = net
                .ip(0, &["-s", "-j", "link", "show", "dev", &l.dev])
                .unwrap_or_default();
            let stats: Value = serde_json::from_str(&json).unwrap_or_default();
            (i, stats[0]["stats64"]["tx"]["packets"].as_u64().unwrap_or_default())
        })
        .collect()
}

/// The link of host 0 that carried the most packets since `before`.
pub fn busiest_link(net: &TestNet, before: &[(usize, u64)]) -> usize {
    tx_packets(net)
        .into_iter()
        .map(|(i, now)| (now - before.iter().find(|(j, _)| *j == i).map_or(0, |(_, b)| *b), i))
        .max()
        .map(|(_, i)| i)
        .unwrap_or(0)
}

/// Runs `cuts` silent cuts of the active first link for one overlay. A cut that
/// loses no probe missed the active path (it had moved between the look and
/// the cut, or, for a system that does not say, the busiest link was
/// misjudged); it is reported and tried again.
fn measure(overlay: &dyn Overlay, net: &mut TestNet, cuts: usize) -> (Vec<Option<Outage>>, usize) {
    let mut outages = Vec::with_capacity(cuts);
    let mut missed = 0;
    // babeld at its defaults (4 s hellos) still moves routes for a while
    // after its first answered ping; misses are retried, up to twice the cuts.
    while outages.len() < cuts && missed < 2 * cuts.max(2) {
        overlay.wait_ready(net);
        let (mut fault_at, mut cut_link) = (0, 0);
        let before = tx_packets(net);
        let probes = overlay.probe(net, Duration::from_millis(500), overlay.patience(), &mut |net| {
            cut_link = overlay.active_link(net, &before);
            fault_at = unix_ms();
            net.set_loss(cut_link, 100).expect("cut");
        });
        let outage = outage_after(&probes, fault_at);
        let label = match outage {
            Some(o) if o.lost == 0 => {
                missed += 1;
                format!("missed the active path (cut link {cut_link}), not counted")
            }
            Some(o) => {
                outages.push(outage);
                format!("{} ms, {} lost", o.duration_ms(), o.lost)
            }
            None => {
                outages.push(None);
                "no recovery".to_string()
            }
        };
        eprintln!("  {} cut {}: {label}", overlay.name(), outages.len() + missed);
        for link in 0..net.links().len() {
            net.set_loss(link, 0).expect("restore");
        }
        std::thread::sleep(Duration::from_millis(1_500));
    }
    (outages, missed)
}

fn summary(name: &str, outages: &[Option<Outage>], missed: usize, patience: Duration) -> Value {
    let recovered: Vec<u64> = outages.iter().flatten().map(Outage::duration_ms).collect();
    let lost: usize = outages.iter().flatten().map(|o| o.lost).sum();
    json!({
        "system": name,
        "cuts": outages.len(),
        "recovered": recovered.len(),
        "p50_ms": percentile(&recovered, 0.5),
        "p95_ms": percentile(&recovered, 0.95),
        "max_ms": recovered.iter().max().copied().unwrap_or_default(),
        "probes_lost": lost,
        "missed_cuts": missed,
        "gave_up_after_ms": patience.as_millis() as u64,
    })
}

/// Pairs compared by their p95 outage: like against like.
const COMPARISONS: [(&str, &str, &str); 4] = [
    ("defaults", "x0tta6bl4 defaults", "yggdrasil"),
    ("defaults", "x0tta6bl4 defaults", "babeld defaults"),
    ("tuned", "x0tta6bl4 failover", "babeld hello 100 ms"),
    ("tuned vs fixed timers", "x0tta6bl4 failover", "yggdrasil"),
];

/// Runs the scenario for every overlay and prints the comparison.
pub fn run(quick: bool) {
    let cuts = if quick { 3 } else { 20 };
    let mut results = Vec::new();
    let overlays: Vec<Box<dyn Overlay>> = vec![
        Box::new(X0tta { tuned: false }),
        Box::new(X0tta { tuned: true }),
        Box::new(Yggdrasil::default()),
        Box::new(Babel::new(false)),
        Box::new(Babel::new(true)),
    ];
    for mut overlay in overlays {
        // Checks that namespaces are available (and says so loudly if not).
        if test_net_or_skip().is_none() {
            return;
        }
        let mut net = TestNet::ring(6).expect("ring of six");
        eprintln!("{}: starting 6 nodes, {cuts} cuts", overlay.name());
        if let Err(reason) = overlay.start(&mut net) {
            eprintln!("  {}: SKIPPED: {reason}", overlay.name());
            continue;
        }
        let (outages, missed) = measure(overlay.as_ref(), &mut net, cuts);
        results.push(summary(overlay.name(), &outages, missed, overlay.patience()));
    }
    println!();
    println!("system                cuts  recovered   p50 ms   p95 ms   max ms   probes lost   missed");
    for r in &results {
        let n = |k: &str| r[k].as_u64().unwrap_or_default();
        println!(
            "{:<21} {:>4} {:>10} {:>8} {:>8} {:>8} {:>13} {:>8}",
            r["system"].as_str().unwrap_or_default(),
            n("cuts"),
            n("recovered"),
            n("p50_ms"),
            n("p95_ms"),
            n("max_ms"),
            n("probes_lost"),
            n("missed_cuts")
        );
    }
    let p95 = |name: &str| {
        results
            .iter()
            .find(|r| r["system"] == name)
            .and_then(|r| r["p95_ms"].as_f64())
            .filter(|p| *p > 0.0)
    };
    let ratios: Vec<Value> = COMPARISONS
        .iter()
        .filter_map(|(kind, ours, theirs)| {
            let ratio = p95(theirs)? / p95(ours)?;
            println!("{kind}: p95 {theirs} / {ours} = {ratio:.1}");
            Some(json!({ "comparison": kind, "ours": ours, "theirs": theirs, "p95_ratio_theirs_over_ours": ratio }))
        })
        .collect();
    println!(
        "{}",
        json!({
            "bench": "reroute",
            "topology": "ring of 6, silent cut of the active first link",
            "probe_every_ms": PROBE_EVERY.as_millis() as u64,
            "probe_timeout_ms": PROBE_TIMEOUT.as_millis() as u64,
            "results": results,
            "ratios": ratios,
        })
    );
}
