//! `bench instructions`: CPU instructions a transit node spends per forwarded
//! frame, counted by valgrind's callgrind (exact and repeatable, unlike time on
//! a shared machine). A line of three nodes a – t – c at the product's timers;
//! t runs under callgrind (a copy of the binary without debug info, which
//! valgrind would take minutes to read). After the end-to-end session is up,
//! t's counters are zeroed, a sends sealed 1 KiB `Data` messages to c, and t's
//! instructions are dumped; the same span with no traffic is measured after it
//! and subtracted (beats, beacons, pings). Instructions in the kernel (socket
//! calls) are not counted.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use x0tta6bl4::launcher::NodeProcess;
use x0tta6bl4_integration::{node_binary, test_spec, tool_available, wait_for, TestMesh};

use crate::memory::PRODUCT_DEFAULTS;

/// Sealed messages sent through the transit node.
const MESSAGES: u64 = 2_000;
/// Their payload.
const PAYLOAD: usize = 1_024;

/// Counts, prints a table and a JSON line.
pub fn run(quick: bool) {
    if !tool_available("valgrind", "valgrind") {
        return;
    }
    let messages = if quick { 200 } else { MESSAGES };
    let mut mesh = TestMesh::new();
    let binary = stripped_copy(mesh.dir.path());
    // The product's timers; the bench endpoints (fault injection) stay on.
    let timers: Vec<(&str, &str)> = PRODUCT_DEFAULTS
        .iter()
        .copied()
        .filter(|(key, _)| !key.contains("FAULT_INJECTION"))
        .collect();
    mesh.add_with("a", &[], false, &timers);
    let out = mesh.dir.path().join("callgrind");
    std::fs::create_dir_all(&out).expect("callgrind dir");
    let mut spec = test_spec(mesh.dir.path(), "t")
        .with(
            "X0TTA6BL4_MESH__BOOTSTRAP",
            format!("[\"{}\"]", mesh.nodes[0].bootstrap_addr),
        )
        .with("X0TTA6BL4_MESH__DIAL_DISCOVERED", "false")
        .with("X0TTA6BL4_HEALER__ENABLED", "false");
    spec = timers.iter().fold(spec, |s, (k, v)| s.with(k, *v));
    // t is measured as users run it: without the test hooks, which keep a
    // readable copy of every relayed frame (peer ids in base58, payload in hex).
    spec = spec.with("X0TTA6BL4_ROUTER__FAULT_INJECTION", "false");
    spec.exe = binary;
    spec.prefix = vec![
        "valgrind".into(),
        "--tool=callgrind".into(),
        "--quiet".into(),
        format!("--callgrind-out-file={}/t.%p", out.display()),
    ];
    eprintln!("starting the transit node under callgrind");
    mesh.nodes
        .push(NodeProcess::spawn(spec).unwrap_or_else(|e| panic!("{e}")));
    mesh.add_with("c", &[1], false, &timers);
    mesh.wait_route(0, 2, 2, Duration::from_secs(120));
    let (a, t, c) = (&mesh.nodes[0], &mesh.nodes[1], &mesh.nodes[2]);
    let pid = t.pid().expect("transit pid");

    let send = |count: u64| {
        a.post(
            "/api/v1/bench/probes",
            &json!({ "to": c.peer_id, "count": count, "size": PAYLOAD, "kind": "data" }),
        )
        .expect("messages sent")
    };
    let received = || c.get("/api/v1/bench/probes").ok()?["messages"].as_u64();
    let forwarded = || t.get("/api/v1/status").ok()?["messages"]["forwarded"].as_u64();
    c.client()
        .request("DELETE", "/api/v1/bench/probes")
        .call()
        .expect("reset counts");
    send(1);
    wait_for(Duration::from_secs(120), "the session through t", || {
        (received()? >= 1).then_some(())
    });

    eprintln!("{messages} sealed messages of {PAYLOAD} B through t");
    let (before_rx, before_fwd) = (received().unwrap_or(0), forwarded().unwrap_or(0));
    callgrind(pid, "-z");
    let started = Instant::now();
    send(messages);
    let mut last = 0;
    wait_for(Duration::from_secs(600), "the messages through t", || {
        std::thread::sleep(Duration::from_millis(500));
        let now = received()?;
        let done = now >= before_rx + messages || (now == last && now > before_rx);
        last = now;
        done.then_some(())
    });
    let traffic = Span {
        instructions: dump(pid, &out),
        seconds: started.elapsed().as_secs_f64(),
    };
    let frames = forwarded().unwrap_or(0) - before_fwd;
    let delivered = received().unwrap_or(0) - before_rx;

    eprintln!("the same span without traffic");
    callgrind(pid, "-z");
    let quiet_started = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(traffic.seconds));
    let quiet = Span {
        instructions: dump(pid, &out),
        seconds: quiet_started.elapsed().as_secs_f64(),
    };
    let background = quiet.instructions as f64 * traffic.seconds / quiet.seconds;
    let per_frame = (traffic.instructions as f64 - background) / frames.max(1) as f64;

    println!();
    println!("frames forwarded   delivered/sent   instructions (traffic)   background   per forwarded frame");
    println!(
        "{frames:>16} {delivered:>10}/{messages:<6} {:>24} {background:>12.0} {per_frame:>21.0}",
        traffic.instructions
    );
    println!(
        "{}",
        json!({
            "bench": "instructions",
            "payload_bytes": PAYLOAD,
            "sent": messages,
            "delivered": delivered,
            "frames_forwarded": frames,
            "traffic_instructions": traffic.instructions,
            "traffic_seconds": traffic.seconds,
            "background_instructions": background,
            "instructions_per_frame": per_frame,
        })
    );
}

/// Instructions counted over a span of wall time.
struct Span {
    instructions: u64,
    seconds: f64,
}

/// The node binary without debug info, next to `dir`.
fn stripped_copy(dir: &Path) -> PathBuf {
    let copy = dir.join("x0tta6bl4-stripped");
    let status = Command::new("objcopy")
        .arg("--strip-debug")
        .arg(node_binary())
        .arg(&copy)
        .status()
        .expect("objcopy runs");
    assert!(status.success(), "objcopy --strip-debug failed");
    copy
}

/// Runs `callgrind_control <flag> <pid>`.
fn callgrind(pid: u32, flag: &str) {
    let status = Command::new("callgrind_control")
        .args([flag, &pid.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("callgrind_control runs");
    assert!(status.success(), "callgrind_control {flag} failed");
}

/// Dumps t's counters and returns the instructions since they were zeroed.
fn dump(pid: u32, dir: &Path) -> u64 {
    let newest = || {
        std::fs::read_dir(dir)
            .ok()?
            .filter_map(|e| e.ok())
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .max()
            .map(|(_, path)| path)
    };
    let previous = newest();
    callgrind(pid, "-d");
    let file = wait_for(Duration::from_secs(60), "the callgrind dump", || {
        newest().filter(|n| Some(n) != previous.as_ref())
    });
    let text = std::fs::read_to_string(&file).expect("dump readable");
    text.lines()
        .find_map(|l| l.strip_prefix("totals:").or_else(|| l.strip_prefix("summary:")))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no totals in {}", file.display()))
}
