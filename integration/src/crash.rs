//! Crash safety of the node's storage: SIGKILL a node at random moments while
//! it writes its sled trees, start it again, and check what it acknowledged.
//!
//! While the node runs, three writers keep it busy: alerts raised through the
//! API (each with a unique `seq` label; the outbox flushes before answering),
//! post-quantum key rotations (new seeds and epoch, flushed before answering),
//! and a neighbour flooding it with junk frames so the healer quarantines it
//! (healing history and rollback stack); the neighbour's beacons keep the peer
//! book and the key-binding book changing. Alerts go to an Alertmanager that
//! is not there, so they stay in the outbox (bounded at 200,000 here). After
//! every kill the node must
//! start, with the same peer id, every acknowledged alert in its outbox exactly
//! once, keys of at least the last acknowledged epoch, and a readable healing
//! history with unique, ordered sequence numbers.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{json, Value};

use crate::detour::FAST_HEALER;
use crate::{free_port, NodeProcess, TestMesh};

/// Name of the alerts the writer raises.
const ALERT: &str = "CRASH_SAFETY_PROBE";

/// Figures of one run.
#[derive(Debug, Default, Clone, Serialize)]
pub struct KillReport {
    /// SIGKILLs sent.
    pub kills: usize,
    /// Restarts that came up (all of them, or the run stops).
    pub restarts_ok: usize,
    /// Alerts the node acknowledged (HTTP 200) before a kill.
    pub alerts_acknowledged: usize,
    /// Acknowledged alerts missing from the outbox after a restart.
    pub alerts_lost: usize,
    /// Alerts present more than once in the outbox.
    pub alerts_duplicated: usize,
    /// Key rotations acknowledged.
    pub rotations_acknowledged: usize,
    /// Restarts whose key epoch was below the last acknowledged one.
    pub epochs_lost: usize,
    /// Healing records seen in the history after the last restart.
    pub healing_records: usize,
    /// Restarts whose history had a repeated or out-of-order sequence number.
    pub history_broken: usize,
    /// Restarts with another peer id than the first start.
    pub peer_id_changed: usize,
    /// Slowest start after a kill (spawn to ready), ms.
    pub slowest_start_ms: u64,
}

impl KillReport {
    /// Whether every check held.
    pub fn clean(&self) -> bool {
        self.restarts_ok == self.kills
            && self.alerts_lost == 0
            && self.alerts_duplicated == 0
            && self.epochs_lost == 0
            && self.history_broken == 0
            && self.peer_id_changed == 0
    }
}

/// What the writers had acknowledged when the node was killed.
#[derive(Default)]
struct Acknowledged {
    alerts: Mutex<Vec<u64>>,
    epoch: AtomicU64,
    rotations: AtomicU64,
}

/// Runs `kills` rounds (write until every writer has written, SIGKILL at a
/// random moment within `max_uptime` after that, start again, check),
/// printing progress to stderr; `seed` picks the moments.
pub fn kill_loop(kills: usize, max_uptime: Duration, seed: u64) -> KillReport {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut mesh = TestMesh::new();
    let sink = format!("http://127.0.0.1:{}/", free_port());
    let env: Vec<(&str, &str)> = FAST_HEALER
        .iter()
        .copied()
        .chain([
            ("X0TTA6BL4_ALERTER__ALERTMANAGER_URL", sink.as_str()),
            ("X0TTA6BL4_ALERTER__MAX_OUTBOX", "200000"),
        ])
        .collect();
    mesh.add_with("neighbour", &[], false, &env);
    mesh.add_with("victim", &[0], false, &env);
    let spec = mesh.nodes[1].spec().clone();
    let peer_id = mesh.nodes[1].peer_id.clone();
    let acknowledged = Arc::new(Acknowledged::default());
    let next_seq = Arc::new(AtomicU64::new(0));
    let mut report = KillReport::default();
    for round in 1..=kills {
        let (alerts, rotations) = (
            acknowledged.alerts.lock().expect("lock").len(),
            acknowledged.rotations.load(Ordering::Relaxed),
        );
        let history = newest_record(&mesh.nodes[1]);
        let stop = Arc::new(AtomicBool::new(false));
        let writers = start_writers(&mesh, &acknowledged, &next_seq, &stop);
        // Every kind of write has happened this round before the kill comes,
        // at a random moment while alerts and rotations go on.
        crate::wait_for(
            Duration::from_secs(30),
            "an alert, a rotation and a healing record",
            || {
                let wrote = acknowledged.alerts.lock().expect("lock").len() > alerts
                    && acknowledged.rotations.load(Ordering::Relaxed) > rotations
                    && newest_record(&mesh.nodes[1]) > history;
                wrote.then_some(())
            },
        );
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..=max_uptime.as_millis() as u64)));
        mesh.nodes[1].kill();
        stop.store(true, Ordering::Relaxed);
        for writer in writers {
            let _ = writer.join();
        }
        report.kills = round;
        let started = Instant::now();
        let node = match NodeProcess::spawn(spec.clone()) {
            Ok(node) => node,
            Err(error) => {
                eprintln!("round {round}: the node did not start after a SIGKILL: {error}");
                return report;
            }
        };
        report.slowest_start_ms = report.slowest_start_ms.max(started.elapsed().as_millis() as u64);
        report.restarts_ok += 1;
        report.peer_id_changed += usize::from(node.peer_id != peer_id);
        check(&node, &acknowledged, &mut report);
        mesh.nodes[1] = node;
        if round % 10 == 0 || round == kills {
            eprintln!(
                "{round}/{kills} kills: {} alerts and {} rotations acknowledged, {} lost, {} duplicated, slowest start {} ms",
                report.alerts_acknowledged,
                report.rotations_acknowledged,
                report.alerts_lost + report.epochs_lost,
                report.alerts_duplicated,
                report.slowest_start_ms
            );
        }
    }
    report
}

/// Starts the three writers against the victim (node 1); they stop at the
/// first failed request (the kill) or when `stop` is set.
fn start_writers(
    mesh: &TestMesh,
    acknowledged: &Arc<Acknowledged>,
    next_seq: &Arc<AtomicU64>,
    stop: &Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<()>> {
    let victim = mesh.nodes[1].client();
    let neighbour = mesh.nodes[0].client();
    let victim_id = mesh.nodes[1].peer_id.clone();
    let (acked, seqs, done) = (acknowledged.clone(), next_seq.clone(), stop.clone());
    let alerts = {
        let victim = victim.clone();
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let seq = seqs.fetch_add(1, Ordering::Relaxed);
                let body = json!({"name": ALERT, "severity": "info", "labels": {"seq": seq.to_string()}});
                match victim.request("POST", "/api/v1/alerts").send_json(body) {
                    Ok(_) => acked.alerts.lock().expect("lock").push(seq),
                    Err(_) => return,
                }
                // Paced, so 100 rounds stay within the outbox's bound.
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let (acked, done) = (acknowledged.clone(), stop.clone());
    let rotations = std::thread::spawn(move || {
        while !done.load(Ordering::Relaxed) {
            let answer = victim.request("POST", "/api/v1/keys/rotate").send_json(json!({}));
            let Some(epoch) = answer
                .ok()
                .and_then(|r| r.into_json::<Value>().ok())
                .and_then(|v| v["to"].as_u64())
            else {
                return;
            };
            acked.epoch.fetch_max(epoch, Ordering::Relaxed);
            acked.rotations.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(150));
        }
    });
    let done = stop.clone();
    let flood = std::thread::spawn(move || {
        // Junk frames make the victim's healer quarantine the neighbour; they
        // go once the two are connected again after the restart.
        let body = json!({"peer": victim_id, "hex": "ff", "count": 500});
        while !done.load(Ordering::Relaxed) {
            if neighbour
                .request("POST", "/api/v1/debug/frame")
                .send_json(body.clone())
                .is_ok()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    vec![alerts, rotations, flood]
}

/// Sequence number of the newest healing record (0 when there is none).
fn newest_record(node: &NodeProcess) -> u64 {
    node.get("/api/v1/healing")
        .ok()
        .and_then(|h| h["history"][0]["seq"].as_u64())
        .unwrap_or(0)
}

/// Checks a restarted node against what was acknowledged before the kill.
fn check(node: &NodeProcess, acknowledged: &Acknowledged, report: &mut KillReport) {
    let view = node.get("/api/v1/alerts").unwrap_or_default();
    let mut present: BTreeMap<u64, usize> = BTreeMap::new();
    for entry in view["outbox"].as_array().into_iter().flatten() {
        let alert = &entry["alert"];
        if alert["name"] != ALERT {
            continue;
        }
        if let Some(seq) = alert["labels"]["seq"].as_str().and_then(|s| s.parse().ok()) {
            *present.entry(seq).or_default() += 1;
        }
    }
    let acked = acknowledged.alerts.lock().expect("lock");
    report.alerts_acknowledged = acked.len();
    report.alerts_lost = acked.iter().filter(|seq| !present.contains_key(seq)).count();
    report.alerts_duplicated = present.values().filter(|n| **n > 1).count();
    report.rotations_acknowledged = acknowledged.rotations.load(Ordering::Relaxed) as usize;
    let epoch = node.get("/api/v1/status").ok().and_then(|s| s["pq_epoch"].as_u64());
    if epoch.is_none_or(|e| e < acknowledged.epoch.load(Ordering::Relaxed)) {
        report.epochs_lost += 1;
    }
    let history = node.get("/api/v1/healing").unwrap_or_default();
    let seqs: Vec<u64> = history["history"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["seq"].as_u64())
        .collect();
    let unique: HashSet<u64> = seqs.iter().copied().collect();
    let ordered = seqs.windows(2).all(|w| w[0] > w[1]);
    report.history_broken += usize::from(unique.len() != seqs.len() || !ordered);
    report.healing_records = seqs.len();
}
