//! `bench reroute`: a ring of six hosts in network namespaces; a continuous probe
//! from host 0 to host 3 (10 ms apart); the first link of the active path is cut
//! silently (every packet dropped, interfaces up) and the time until probes are
//! answered again is measured. The same on the same topology for x0tta6bl4,
//! Yggdrasil and babeld, in one run.

use std::time::Duration;

use serde_json::{json, Value};
use x0tta6bl4_integration::netns::{test_net_or_skip, TestNet};
use x0tta6bl4_integration::outage::{outage_after, percentile, Outage};
use x0tta6bl4_integration::{inbox_ids, route_to, unix_ms, wait_for, wait_routes_to, Flow};

use crate::peers::{Babel, Yggdrasil};

/// Probe spacing.
pub const PROBE_EVERY: Duration = Duration::from_millis(10);

/// A routing system under test on a ring of six.
pub trait Overlay {
    /// Display name.
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
}

/// x0tta6bl4 nodes with a 30 ms keepalive and a 150 ms link timeout.
pub struct X0tta;

impl Overlay for X0tta {
    fn name(&self) -> &'static str {
        "x0tta6bl4"
    }

    fn start(&mut self, net: &mut TestNet) -> Result<(), String> {
        net.start_all(&[
            ("X0TTA6BL4_MESH__KEEPALIVE_INTERVAL_MS", "30"),
            ("X0TTA6BL4_MESH__LINK_TIMEOUT_MS", "150"),
        ])
        .map_err(|e| e.to_string())?;
        let all: Vec<String> = (1..6).map(|h| net.node(h).peer_id.clone()).collect();
        wait_routes_to(net.node(0), &all, Duration::from_secs(30));
        Ok(())
    }

    fn wait_ready(&self, net: &TestNet) {
        let d = net.node(3).peer_id.clone();
        wait_for(Duration::from_secs(30), "x0tta6bl4 route 0 -> 3", || {
            route_to(net.node(0), &d)
        });
    }

    fn probe(
        &self,
        net: &mut TestNet,
        cut_after: Duration,
        then: Duration,
        cut: &mut dyn FnMut(&mut TestNet),
    ) -> Vec<(u64, bool)> {
        let flow = Flow::start(&net.node(0).api, &net.node(3).peer_id, PROBE_EVERY);
        std::thread::sleep(cut_after);
        cut(net);
        std::thread::sleep(then);
        let sent = flow.stop();
        std::thread::sleep(Duration::from_millis(200));
        let delivered = inbox_ids(net.node(3));
        sent.iter().map(|(id, at)| (*at, delivered.contains(id))).collect()
    }

    fn patience(&self) -> Duration {
        Duration::from_secs(3)
    }
}

/// Packets sent by host 0 on each of its ring links.
fn tx_packets(net: &TestNet) -> Vec<(usize, u64)> {
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
fn busiest_link(net: &TestNet, before: &[(usize, u64)]) -> usize {
    tx_packets(net)
        .into_iter()
        .map(|(i, now)| (now - before.iter().find(|(j, _)| *j == i).map_or(0, |(_, b)| *b), i))
        .max()
        .map(|(_, i)| i)
        .unwrap_or(0)
}

/// Runs `cuts` silent cuts of the active first link for one overlay. A cut that
/// loses no probe missed the active path (it had moved, or the busiest link was
/// misjudged); it is reported and tried again, at most `cuts` extra times.
fn measure(overlay: &dyn Overlay, net: &mut TestNet, cuts: usize) -> (Vec<Option<Outage>>, usize) {
    let mut outages = Vec::with_capacity(cuts);
    let mut missed = 0;
    while outages.len() < cuts && missed <= cuts {
        overlay.wait_ready(net);
        let mut fault_at = 0;
        let before = tx_packets(net);
        let probes = overlay.probe(net, Duration::from_millis(500), overlay.patience(), &mut |net| {
            let link = busiest_link(net, &before);
            fault_at = unix_ms();
            net.set_loss(link, 100).expect("cut");
        });
        let outage = outage_after(&probes, fault_at);
        let label = match outage {
            Some(o) if o.lost == 0 => {
                missed += 1;
                "missed the active path, not counted".to_string()
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

/// Runs the scenario for every overlay and prints the comparison.
pub fn run(quick: bool) {
    let cuts = if quick { 3 } else { 20 };
    let mut results = Vec::new();
    let overlays: Vec<Box<dyn Overlay>> = vec![
        Box::new(X0tta),
        Box::new(Yggdrasil::default()),
        Box::new(Babel::default()),
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
    println!("system       cuts  recovered   p50 ms   p95 ms   max ms   probes lost   missed");
    for r in &results {
        let n = |k: &str| r[k].as_u64().unwrap_or_default();
        println!(
            "{:<12} {:>4} {:>10} {:>8} {:>8} {:>8} {:>13} {:>8}",
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
    let ours = results.first().and_then(|r| r["p95_ms"].as_f64()).unwrap_or_default();
    let ratios: Vec<Value> = results
        .iter()
        .skip(1)
        .map(|r| {
            let theirs = r["p95_ms"].as_f64().unwrap_or_default();
            json!({ "system": r["system"], "p95_ratio_theirs_over_ours": if ours > 0.0 { theirs / ours } else { 0.0 } })
        })
        .collect();
    for r in &ratios {
        println!(
            "p95 {} / x0tta6bl4 = {:.1}",
            r["system"].as_str().unwrap_or_default(),
            r["p95_ratio_theirs_over_ours"].as_f64().unwrap_or_default()
        );
    }
    println!(
        "{}",
        json!({ "bench": "reroute", "topology": "ring of 6, silent cut of the active first link", "probe_every_ms": PROBE_EVERY.as_millis() as u64, "results": results, "ratios": ratios })
    );
}
