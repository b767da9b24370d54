//! `bench memory`: resident memory and idle CPU per node when every node has
//! 20 peers (a full mesh of 21 loopback nodes; 6 nodes with `--quick`), for a
//! full node, a minimal one (`X0TTA6BL4_MINIMAL=true`) and Yggdrasil beside
//! them (no TUN, peering over loopback TCP). Memory is split into what each
//! node has to itself (anonymous: heap, stacks) and the file-backed pages (the
//! binary's code), which all nodes on one machine share; PSS charges each node
//! its share of those. Idle CPU: user + system time over a quiet window with
//! beacons, pings and keepalives running but no traffic.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use x0tta6bl4_integration::{free_port, memory_of, wait_for, Memory, TestMesh, MINIMAL};

use crate::peers::Daemons;

/// The product's defaults where the test nodes differ (their faster beacons
/// and pings, bigger inbox, debug hooks): the bench measures a node as users run it.
pub const PRODUCT_DEFAULTS: [(&str, &str); 5] = [
    ("X0TTA6BL4_MESH__BEACON_INTERVAL_MS", "1000"),
    ("X0TTA6BL4_MESH__PING_INTERVAL_MS", "1000"),
    ("X0TTA6BL4_ROUTER__BEACON_EXPIRY_MS", "5000"),
    ("X0TTA6BL4_ROUTER__INBOX_CAPACITY", "1024"),
    ("X0TTA6BL4_ROUTER__FAULT_INJECTION", "false"),
];

/// One node's figures.
#[derive(Clone, Copy, serde::Serialize)]
struct Sample {
    memory: Memory,
    /// Share of one core used over the idle window, in percent.
    idle_cpu_percent: f64,
}

/// One figure of a node.
type Field = fn(&Sample) -> f64;

/// How long a mesh settles after forming, and how long idle CPU is sampled.
struct Timing {
    settle: Duration,
    window: Duration,
}

/// Measures every system in turn and prints one table and a JSON line.
pub fn run(quick: bool) {
    let nodes = if quick { 6 } else { 21 };
    let timing = if quick {
        Timing {
            settle: Duration::from_secs(2),
            window: Duration::from_secs(3),
        }
    } else {
        Timing {
            settle: Duration::from_secs(10),
            window: Duration::from_secs(10),
        }
    };
    let minimal: Vec<(&str, &str)> = PRODUCT_DEFAULTS.iter().chain(MINIMAL).copied().collect();
    let mut systems = vec![
        ("x0tta6bl4 full", x0tta6bl4(nodes, &PRODUCT_DEFAULTS, &timing)),
        ("x0tta6bl4 minimal", x0tta6bl4(nodes, &minimal, &timing)),
    ];
    match yggdrasil(nodes, &timing) {
        Ok(samples) => systems.push(("yggdrasil (no TUN)", samples)),
        Err(why) => eprintln!("yggdrasil not measured: {why}"),
    }
    print_table(nodes, &systems);
}

/// Starts `nodes` x0tta6bl4 nodes with `env`, each bootstrapping from node 0
/// and finding the others through beacons, and samples them once all are linked.
fn x0tta6bl4(nodes: usize, env: &[(&str, &str)], timing: &Timing) -> Vec<Sample> {
    eprintln!("starting {nodes} x0tta6bl4 nodes ({} settings)", env.len());
    let mut mesh = TestMesh::new();
    for i in 0..nodes {
        let links: Vec<usize> = if i == 0 { vec![] } else { vec![0] };
        mesh.add_with(&format!("m{i}"), &links, true, env);
    }
    let started = Instant::now();
    wait_for(Duration::from_secs(120), "every node linked to every other", || {
        mesh.nodes
            .iter()
            .all(|n| {
                n.get("/api/v1/status")
                    .ok()
                    .and_then(|s| s["peers_connected"].as_u64())
                    .is_some_and(|p| p as usize == nodes - 1)
            })
            .then_some(())
    });
    eprintln!("full mesh after {:.1} s", started.elapsed().as_secs_f64());
    let pids: Vec<u32> = mesh.nodes.iter().filter_map(|n| n.pid()).collect();
    sample(&pids, timing)
}

/// Lets the processes settle, then takes each one's memory and idle CPU.
fn sample(pids: &[u32], timing: &Timing) -> Vec<Sample> {
    std::thread::sleep(timing.settle);
    let before: Vec<Option<f64>> = pids.iter().map(|p| cpu_seconds(*p)).collect();
    let start = Instant::now();
    std::thread::sleep(timing.window);
    let elapsed = start.elapsed().as_secs_f64();
    pids.iter()
        .zip(before)
        .filter_map(|(pid, before)| {
            let used = cpu_seconds(*pid)? - before?;
            Some(Sample {
                memory: memory_of(*pid)?,
                idle_cpu_percent: 100.0 * used / elapsed,
            })
        })
        .collect()
}

/// User plus system CPU time of process `pid` (all threads), in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after its ')' are fixed.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5), 12 and 13 after ')'.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / USER_HZ)
}

/// Clock ticks per second in `/proc/<pid>/stat`: USER_HZ, fixed at 100 by the
/// Linux ABI whatever the kernel's own tick rate.
const USER_HZ: f64 = 100.0;

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}

/// Starts `nodes` Yggdrasil daemons at their defaults on loopback (no TUN,
/// no multicast), each peering with every earlier one, so each has
/// `nodes - 1` peers; samples them once every one has all its peers.
fn yggdrasil(nodes: usize, timing: &Timing) -> Result<Vec<Sample>, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let ports: Vec<u16> = (0..nodes).map(|_| free_port()).collect();
    let mut daemons = Daemons::default();
    let mut sockets = Vec::new();
    eprintln!("starting {nodes} yggdrasil daemons");
    for (i, port) in ports.iter().enumerate() {
        let generated = Command::new("yggdrasil")
            .args(["-genconf", "-json"])
            .output()
            .map_err(|e| format!("cannot run yggdrasil -genconf (apt-get install yggdrasil): {e}"))?;
        let mut config: Value = serde_json::from_slice(&generated.stdout).map_err(|e| e.to_string())?;
        let socket = dir.path().join(format!("y{i}.sock"));
        config["Listen"] = json!([format!("tcp://127.0.0.1:{port}")]);
        config["Peers"] = json!(ports[..i]
            .iter()
            .map(|p| format!("tcp://127.0.0.1:{p}"))
            .collect::<Vec<_>>());
        config["MulticastInterfaces"] = json!([]);
        config["IfName"] = json!("none");
        config["AdminListen"] = json!(format!("unix://{}", socket.display()));
        let path = dir.path().join(format!("y{i}.json"));
        std::fs::write(&path, config.to_string()).map_err(|e| e.to_string())?;
        let mut command = Command::new("yggdrasil");
        command.arg("-useconffile").arg(&path).args(["-logto", "/dev/null"]);
        daemons.start(command, "yggdrasil")?;
        sockets.push(socket);
    }
    let started = Instant::now();
    wait_for(
        Duration::from_secs(120),
        "every yggdrasil daemon peered with every other",
        || {
            sockets
                .iter()
                .all(|socket| yggdrasil_peers(socket).is_some_and(|p| p == nodes - 1))
                .then_some(())
        },
    );
    eprintln!("full yggdrasil mesh after {:.1} s", started.elapsed().as_secs_f64());
    Ok(sample(&daemons.pids(), timing))
}

/// Peers the daemon at admin `socket` is connected to (`yggdrasilctl getPeers`).
fn yggdrasil_peers(socket: &std::path::Path) -> Option<usize> {
    let out = Command::new("yggdrasilctl")
        .arg(format!("-endpoint=unix://{}", socket.display()))
        .args(["-json", "getPeers"])
        .output()
        .ok()?;
    let peers: Value = serde_json::from_slice(&out.stdout).ok()?;
    let list = peers["peers"].as_array()?;
    Some(list.iter().filter(|p| p["up"].as_bool().unwrap_or(true)).count())
}

fn print_table(nodes: usize, systems: &[(&str, Vec<Sample>)]) {
    let mean = |samples: &[Sample], f: Field| samples.iter().map(f).sum::<f64>() / samples.len().max(1) as f64;
    let max = |samples: &[Sample], f: Field| samples.iter().map(f).fold(0.0, f64::max);
    let columns: [(&str, Field); 5] = [
        ("RSS", |s| mib(s.memory.rss)),
        ("anon", |s| mib(s.memory.anon)),
        ("file", |s| mib(s.memory.file)),
        ("PSS", |s| mib(s.memory.pss)),
        ("idle CPU %", |s| s.idle_cpu_percent),
    ];
    println!();
    println!(
        "{nodes} nodes, {} peers each; per node: mean (max); memory in MiB",
        nodes - 1
    );
    print!("{:<20}", "system");
    for (name, _) in &columns {
        print!(" {name:>15}");
    }
    println!();
    for (system, samples) in systems {
        print!("{system:<20}");
        for (_, f) in &columns {
            let cell = format!("{:.1} ({:.1})", mean(samples, *f), max(samples, *f));
            print!(" {cell:>15}");
        }
        println!();
    }
    let summary: Vec<Value> = systems
        .iter()
        .map(|(system, samples)| {
            json!({
                "system": system,
                "nodes_measured": samples.len(),
                "rss_mean_mib": mean(samples, columns[0].1),
                "rss_max_mib": max(samples, columns[0].1),
                "anon_mean_mib": mean(samples, columns[1].1),
                "file_mean_mib": mean(samples, columns[2].1),
                "pss_mean_mib": mean(samples, columns[3].1),
                "idle_cpu_percent_mean": mean(samples, columns[4].1),
                "idle_cpu_percent_max": max(samples, columns[4].1),
            })
        })
        .collect();
    println!(
        "{}",
        json!({ "bench": "memory", "nodes": nodes, "peers_per_node": nodes - 1, "systems": summary })
    );
}
