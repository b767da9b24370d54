//! `bench heal`: injected faults on the detour topology (short path A–B–C, the
//! long way round A–D–E–F–C), rotating 40 % loss on A–B, SIGKILL of B, and A–B
//! flapping (down 1 s, up 2 s, until healed). An echo A → C goes out every
//! 50 ms (each on its own thread, so a lost one does not hold up the next)
//! and notes A's next hop towards C. A fault is healed once echoes
//! are answered over a route that keeps clear of it for 5 s running; MTTR is
//! the time from the fault to the start of that run. The healed share counts
//! faults healed within 30 s with no operator; the MTTR percentiles are over
//! every trial, an unhealed one counting as longer than any healed one.
//! Between trials the fault is removed (B restarted) and the bench waits for A
//! to route through B again.
//! `--timeline` prints each trial's echoes (`B`/`d` answered through B / the
//! other way, `x`/`.` lost), under them A's loss estimate of A–B in tenths
//! (`-` while not linked), and the evidence A's healer acted on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use x0tta6bl4::launcher::ApiClient;

use serde_json::{json, Value};
use x0tta6bl4_integration::detour::{self, next_hop, A, A_B, B, C, FAST_HEALER};
use x0tta6bl4_integration::netns::TestNet;
use x0tta6bl4_integration::outage::{healed_at, percentile};
use x0tta6bl4_integration::unix_ms;

/// Echo spacing.
const PROBE_EVERY: Duration = Duration::from_millis(50);
/// Timeout of one echo.
const ECHO_TIMEOUT_MS: u64 = 500;
/// How long delivery must hold, clear of the fault, to count as healed.
const HOLD_MS: u64 = 5_000;
/// A fault not healed within this counts as not healed.
const GIVE_UP: Duration = Duration::from_secs(30);
/// How long to wait for A to route through B again before a trial.
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// The faults, in the order trials rotate through them.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fault {
    Loss,
    Kill,
    Flap,
}

impl Fault {
    const ALL: [Fault; 3] = [Fault::Loss, Fault::Kill, Fault::Flap];

    fn name(self) -> &'static str {
        match self {
            Fault::Loss => "loss 40 % on A–B",
            Fault::Kill => "SIGKILL of B",
            Fault::Flap => "A–B flapping",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Fault::Loss => "link_loss",
            Fault::Kill => "node_kill",
            Fault::Flap => "flapping",
        }
    }
}

/// One echo: when it was sent, whether it was answered, whether A's route to C
/// went through B right after.
#[derive(Clone, Copy)]
struct Probe {
    at_ms: u64,
    answered: bool,
    via_b: bool,
    /// A's loss estimate of its link to B right after, if linked.
    loss_to_b: Option<f64>,
}

/// Echoes from A to C on a thread of its own, for the whole run.
struct Prober {
    running: Arc<AtomicBool>,
    probes: Arc<Mutex<Vec<Probe>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Prober {
    fn start(net: &TestNet) -> Self {
        let (api, c, b) = (
            net.node(A).client(),
            net.node(C).peer_id.clone(),
            net.node(B).peer_id.clone(),
        );
        let running = Arc::new(AtomicBool::new(true));
        let probes = Arc::new(Mutex::new(Vec::new()));
        let (flag, record) = (running.clone(), probes.clone());
        let thread = std::thread::spawn(move || {
            // Echoes go out on a fixed schedule, each on a thread of its own,
            // so one waiting for its timeout does not delay the next.
            let mut echoes: Vec<std::thread::JoinHandle<()>> = Vec::new();
            while flag.load(Ordering::Relaxed) {
                let (api, c, b, record) = (api.clone(), c.clone(), b.clone(), record.clone());
                echoes.retain(|e| !e.is_finished());
                echoes.push(std::thread::spawn(move || {
                    let at_ms = unix_ms();
                    let answered = api
                        .request("POST", "/api/v1/ping")
                        .timeout(Duration::from_millis(ECHO_TIMEOUT_MS + 1_000))
                        .send_json(json!({ "to": c, "timeout_ms": ECHO_TIMEOUT_MS }))
                        .is_ok();
                    let via_b = route_next_hop(&api, &c).is_some_and(|hop| hop == b);
                    let loss_to_b = link_loss(&api, &b);
                    if let Ok(mut all) = record.lock() {
                        all.push(Probe {
                            at_ms,
                            answered,
                            via_b,
                            loss_to_b,
                        });
                    }
                }));
                std::thread::sleep(PROBE_EVERY);
            }
            echoes.into_iter().for_each(|e| {
                let _ = e.join();
            });
        });
        Self {
            running,
            probes,
            thread: Some(thread),
        }
    }

    /// Probes sent at or after `from_ms`, in the order they were sent.
    fn since(&self, from_ms: u64) -> Vec<Probe> {
        let mut since: Vec<Probe> = self
            .probes
            .lock()
            .map(|all| all.iter().filter(|p| p.at_ms >= from_ms).copied().collect())
            .unwrap_or_default();
        since.sort_by_key(|p| p.at_ms);
        since
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.running.store(false, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `GET {api}{path}` as JSON, `None` on any failure.
fn get_json(api: &ApiClient, path: &str) -> Option<Value> {
    api.request("GET", path)
        .timeout(Duration::from_secs(2))
        .call()
        .ok()?
        .into_json()
        .ok()
}

fn route_next_hop(api: &ApiClient, to: &str) -> Option<String> {
    let routes = get_json(api, "/api/v1/routes")?;
    routes["routes"].as_array()?.iter().find(|r| r["destination"] == to)?["next_hop"]
        .as_str()
        .map(str::to_string)
}

/// The loss `api`'s node reports on its link to `peer`, if they are linked.
fn link_loss(api: &ApiClient, peer: &str) -> Option<f64> {
    let peers = get_json(api, "/api/v1/peers")?;
    peers["peers"].as_array()?.iter().find(|p| p["peer_id"] == peer)?["loss"].as_f64()
}

/// The outcome of one fault.
struct Trial {
    fault: Fault,
    healed_ms: Option<u64>,
    /// What A's healer did from the fault until the end of the trial.
    actions: Vec<String>,
    /// One character per echo from the fault on (see [`timeline`]).
    timeline: String,
    /// A's loss estimate of A–B per echo, in tenths (`-`: not linked).
    loss_timeline: String,
    /// The evidence of the symptoms A's healer acted on.
    evidence: Vec<String>,
}

/// The echoes as characters: `B` answered through B, `d` answered the other
/// way, `x` lost through B, `.` lost the other way.
fn timeline(probes: &[Probe]) -> String {
    probes
        .iter()
        .map(|p| match (p.answered, p.via_b) {
            (true, true) => 'B',
            (true, false) => 'd',
            (false, true) => 'x',
            (false, false) => '.',
        })
        .collect()
}

/// Flaps A–B (down 1 s, up 2 s) until `stop` is set; leaves the link up.
fn flap(net: &TestNet, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        let _ = net.set_link(A_B, false);
        sleep_unless(stop, Duration::from_secs(1));
        let _ = net.set_link(A_B, true);
        sleep_unless(stop, Duration::from_secs(2));
    }
    let _ = net.set_link(A_B, true);
}

fn sleep_unless(stop: &AtomicBool, total: Duration) {
    let until = Instant::now() + total;
    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until the fault is healed (see the module doc) or [`GIVE_UP`] passes.
fn wait_healed(prober: &Prober, fault_ms: u64) -> Option<u64> {
    let deadline = Instant::now() + GIVE_UP + Duration::from_millis(HOLD_MS);
    while Instant::now() < deadline {
        let samples: Vec<(u64, bool)> = prober
            .since(fault_ms)
            .iter()
            .map(|p| (p.at_ms, p.answered && !p.via_b))
            .collect();
        if let Some(at) = healed_at(&samples, fault_ms, HOLD_MS) {
            let mttr = at - fault_ms;
            return (mttr <= GIVE_UP.as_millis() as u64).then_some(mttr);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// A's healing records since `from_ms`, oldest first, each as `line` makes it.
fn records_since(net: &TestNet, from_ms: u64, line: impl Fn(&Value) -> String) -> Vec<String> {
    let history = net
        .node(A)
        .get("/api/v1/healing")
        .ok()
        .and_then(|h| h["history"].as_array().cloned())
        .unwrap_or_default();
    history
        .iter()
        .rev()
        .filter(|r| r["at_unix_ms"].as_u64().is_some_and(|at| at >= from_ms))
        .map(|r| {
            let mut r = r.clone();
            r["after_ms"] = json!(r["at_unix_ms"].as_u64().unwrap_or(from_ms) - from_ms);
            line(&r)
        })
        .collect()
}

/// A healing record as `action result +ms` (after the fault).
fn action_line(r: &Value) -> String {
    let name = |v: &Value| v.as_str().unwrap_or("?").to_string();
    format!("{} {} +{}ms", name(&r["action"]), name(&r["result"]), r["after_ms"])
}

fn run_trial(net: &mut TestNet, prober: &Prober, fault: Fault) -> Trial {
    let b_spec = net.node(B).spec().clone();
    let fault_ms = unix_ms();
    let healed_ms = match fault {
        Fault::Loss => {
            net.set_loss(A_B, 40).expect("loss on A–B");
            let healed = wait_healed(prober, fault_ms);
            net.set_loss(A_B, 0).expect("loss removed");
            healed
        }
        Fault::Kill => {
            net.node_mut(B).kill();
            let healed = wait_healed(prober, fault_ms);
            net.start_node(B, b_spec).expect("B restarts");
            healed
        }
        Fault::Flap => {
            let stop = AtomicBool::new(false);
            let net: &TestNet = net;
            std::thread::scope(|scope| {
                scope.spawn(|| flap(net, &stop));
                let healed = wait_healed(prober, fault_ms);
                stop.store(true, Ordering::Relaxed);
                healed
            })
        }
    };
    Trial {
        fault,
        healed_ms,
        actions: records_since(net, fault_ms, action_line),
        evidence: records_since(net, fault_ms, |r| r["evidence"].as_str().unwrap_or("?").to_string()),
        timeline: timeline(&prober.since(fault_ms)),
        loss_timeline: prober
            .since(fault_ms)
            .iter()
            .map(|p| {
                p.loss_to_b.map_or('-', |loss| {
                    char::from_digit((loss * 10.0).round().clamp(0.0, 9.0) as u32, 10).unwrap_or('?')
                })
            })
            .collect(),
    }
}

/// Waits until A routes to C through B again (the fault's effects are gone).
fn wait_ready(net: &TestNet) -> bool {
    let b = net.node(B).peer_id.clone();
    let deadline = Instant::now() + READY_TIMEOUT;
    while Instant::now() < deadline {
        if next_hop(net, A, C).as_deref() == Some(b.as_str()) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

/// The `q` quantile of the trials' MTTRs, over every trial: an unhealed trial
/// counts as longer than any healed one, and a quantile that falls on one is
/// `None` (not healed), never quietly left out.
fn mttr_quantile(trials: &[&Trial], q: f64) -> Option<u64> {
    let mttrs: Vec<u64> = trials.iter().map(|t| t.healed_ms.unwrap_or(u64::MAX)).collect();
    let at = percentile(&mttrs, q);
    (at != u64::MAX && !trials.is_empty()).then_some(at)
}

fn summary(label: &str, trials: &[&Trial]) -> Value {
    let healed = trials.iter().filter(|t| t.healed_ms.is_some()).count();
    json!({
        "fault": label,
        "trials": trials.len(),
        "healed": healed,
        "healed_share": if trials.is_empty() { 0.0 } else { healed as f64 / trials.len() as f64 },
        "mttr_p50_ms": mttr_quantile(trials, 0.5),
        "mttr_p95_ms": mttr_quantile(trials, 0.95),
        "mttr_max_ms": mttr_quantile(trials, 1.0),
    })
}

/// Runs the trials and prints the figures; `show_timeline` prints every
/// trial's echoes too.
pub fn run(quick: bool, show_timeline: bool) {
    let count = if quick { 3 } else { 20 };
    eprintln!("heal: detour topology, 6 nodes, healer cycle 200 ms, {count} faults");
    let Some(mut net) = detour::start(&[], &[]) else {
        return;
    };
    let prober = Prober::start(&net);
    let mut trials = Vec::with_capacity(count);
    let mut not_ready = 0;
    for (i, fault) in Fault::ALL.iter().cycle().take(count).enumerate() {
        if !wait_ready(&net) {
            not_ready += 1;
            eprintln!(
                "  trial {:>2} {}: A did not route through B within {READY_TIMEOUT:?}; skipped",
                i + 1,
                fault.name()
            );
            continue;
        }
        let trial = run_trial(&mut net, &prober, *fault);
        let outcome = trial.healed_ms.map_or_else(
            || format!("NOT healed within {GIVE_UP:?}"),
            |ms| format!("healed in {ms} ms"),
        );
        eprintln!(
            "  trial {:>2} {:<17} {outcome}; A's healer: {}",
            i + 1,
            fault.name(),
            if trial.actions.is_empty() {
                "-".to_string()
            } else {
                trial.actions.join(", ")
            }
        );
        if show_timeline {
            eprintln!("     {}", trial.timeline);
            eprintln!("     {}", trial.loss_timeline);
            eprintln!("     evidence: {}", trial.evidence.join("; "));
        }
        trials.push(trial);
    }
    drop(prober);

    let all: Vec<&Trial> = trials.iter().collect();
    let mut results = vec![summary("all", &all)];
    for fault in Fault::ALL {
        let of_kind: Vec<&Trial> = trials.iter().filter(|t| t.fault == fault).collect();
        results.push(summary(fault.key(), &of_kind));
    }
    println!();
    println!("fault        trials  healed   share   p50 ms   p95 ms   max ms   (over all trials; - = not healed)");
    for r in &results {
        let n = |k: &str| r[k].as_u64().unwrap_or_default();
        let mttr = |k: &str| r[k].as_u64().map_or_else(|| "-".to_string(), |ms| ms.to_string());
        println!(
            "{:<12} {:>6} {:>7} {:>6.0} % {:>8} {:>8} {:>8}",
            r["fault"].as_str().unwrap_or_default(),
            n("trials"),
            n("healed"),
            r["healed_share"].as_f64().unwrap_or_default() * 100.0,
            mttr("mttr_p50_ms"),
            mttr("mttr_p95_ms"),
            mttr("mttr_max_ms"),
        );
    }
    let per_trial: Vec<Value> = trials
        .iter()
        .map(|t| json!({ "fault": t.fault.key(), "healed_ms": t.healed_ms, "healer_actions": t.actions }))
        .collect();
    let settings: Value = FAST_HEALER.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    println!(
        "{}",
        json!({
            "bench": "heal",
            "topology": "A–B–C short path, A–D–E–F–C detour",
            "probe_every_ms": PROBE_EVERY.as_millis() as u64,
            "hold_ms": HOLD_MS,
            "give_up_ms": GIVE_UP.as_millis() as u64,
            "not_ready": not_ready,
            "healer_settings": settings,
            "results": results,
            "trials": per_trial,
        })
    );
}
