//! `bench conns`: one node holding many concurrent libp2p connections. A load
//! generator in this process opens 10,000 connections (300 with `--quick`), each
//! from its own identity, as plain libp2p clients (TCP, Noise, Yamux, identify,
//! ping): the node keeps them as light peers. Measured on the node: how long
//! accepting all of them takes, resident memory per connection, and CPU while
//! they sit idle, against the same node before they came.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p::futures::StreamExt;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, noise, ping, tcp, yamux, Multiaddr};
use serde_json::json;
use x0tta6bl4_integration::{memory_of, wait_for, TestMesh};

use crate::memory::{cpu_seconds, PRODUCT_DEFAULTS};

/// A load-generator client: what a minimal libp2p peer speaks.
#[derive(NetworkBehaviour)]
struct Client {
    identify: identify::Behaviour,
    ping: ping::Behaviour,
}

/// What the clients saw, counted across all of them.
#[derive(Default)]
struct Counts {
    connected: AtomicU64,
    closed: AtomicU64,
    failed: AtomicU64,
}

/// The node's figures at one moment.
struct Sample {
    rss_mib: f64,
    cpu_percent: f64,
}

/// Opens the connections, measures, prints a table and a JSON line.
pub fn run(quick: bool) {
    let (default_target, window) = if quick {
        (300, Duration::from_secs(3))
    } else {
        (10_000, Duration::from_secs(10))
    };
    // `--connections N` measures another count.
    let target: usize = std::env::args()
        .skip_while(|a| a != "--connections")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(default_target);
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < target as u64 + 100 => {
            eprintln!("open-file limit {limit} is below {target} connections; raise it (ulimit -n)");
            std::process::exit(1);
        }
        Ok(_) => {}
        Err(e) => eprintln!("cannot raise the open-file limit: {e}"),
    }
    let mut mesh = TestMesh::new();
    let limit = (target + 100).to_string();
    let env: Vec<(&str, &str)> = PRODUCT_DEFAULTS
        .iter()
        .copied()
        .chain([("X0TTA6BL4_MESH__MAX_LIGHT_PEERS", limit.as_str())])
        .collect();
    mesh.add_with("hub", &[], false, &env);
    let node = &mesh.nodes[0];
    let pid = node.pid().expect("node pid");
    let address: Multiaddr = node.bootstrap_addr.parse().expect("bootstrap multiaddr");
    let alone = sample(pid, window);

    eprintln!("opening {target} connections to one node");
    let counts = Arc::new(Counts::default());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    for _ in 0..target {
        runtime.spawn(client(address.clone(), counts.clone()));
    }
    let light = |node: &x0tta6bl4::launcher::NodeProcess| node.get("/api/v1/status").ok()?["light_peers"].as_u64();
    let mut shown = Instant::now();
    let accept_s = wait_for(
        Duration::from_secs(600),
        "every connection kept as a light peer",
        || {
            let held = light(node).unwrap_or(0);
            if shown.elapsed() > Duration::from_secs(5) {
                eprintln!(
                    "  {held} light peers after {:.0} s ({} connected as the clients see it, {} dials failed)",
                    started.elapsed().as_secs_f64(),
                    counts.connected.load(Ordering::Relaxed),
                    counts.failed.load(Ordering::Relaxed)
                );
                shown = Instant::now();
            }
            (held >= target as u64).then(|| started.elapsed().as_secs_f64())
        },
    );
    std::thread::sleep(Duration::from_secs(5));
    let closed_before = counts.closed.load(Ordering::Relaxed);
    let held = sample(pid, window);
    let closed_during = counts.closed.load(Ordering::Relaxed) - closed_before;
    let still_held = light(node).unwrap_or(0);
    let per_connection_kib = (held.rss_mib - alone.rss_mib) * 1024.0 / target as f64;

    println!();
    println!("connections   accepted in   per second   RSS alone   RSS with   per connection   idle CPU alone   idle CPU with");
    println!(
        "{target:>11} {accept_s:>11.1} s {:>12.0} {:>8.1} MiB {:>7.1} MiB {:>12.1} KiB {:>14.2} % {:>13.2} %",
        target as f64 / accept_s,
        alone.rss_mib,
        held.rss_mib,
        per_connection_kib,
        alone.cpu_percent,
        held.cpu_percent,
    );
    println!("{still_held} still held at the end; {closed_during} closed during the idle window");
    println!(
        "{}",
        json!({
            "bench": "conns",
            "connections": target,
            "accept_s": accept_s,
            "accept_per_s": target as f64 / accept_s,
            "rss_alone_mib": alone.rss_mib,
            "rss_with_mib": held.rss_mib,
            "per_connection_kib": per_connection_kib,
            "idle_cpu_percent_alone": alone.cpu_percent,
            "idle_cpu_percent_with": held.cpu_percent,
            "held_at_end": still_held,
            "closed_while_idle": closed_during,
        })
    );
    runtime.shutdown_timeout(Duration::from_secs(5));
}

/// The node's RSS now and its CPU over `window`.
fn sample(pid: u32, window: Duration) -> Sample {
    let before = cpu_seconds(pid).expect("node CPU time");
    let start = Instant::now();
    std::thread::sleep(window);
    let used = cpu_seconds(pid).expect("node CPU time") - before;
    Sample {
        rss_mib: memory_of(pid).expect("node memory").rss as f64 / (1024.0 * 1024.0),
        cpu_percent: 100.0 * used / start.elapsed().as_secs_f64(),
    }
}

/// One client: connects (retrying a failed dial), then keeps its connection
/// (answering pings) until the runtime stops.
async fn client(node: Multiaddr, counts: Arc<Counts>) {
    let swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)
        .map(|b| {
            b.with_behaviour(|key| Client {
                identify: identify::Behaviour::new(identify::Config::new("/bench-client/1".into(), key.public())),
                ping: ping::Behaviour::default(),
            })
        });
    let Ok(Ok(builder)) = swarm else {
        counts.failed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let mut swarm = builder
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3_600)))
        .build();
    let mut attempts = 0;
    if swarm.dial(node.clone()).is_err() {
        counts.failed.fetch_add(1, Ordering::Relaxed);
        return;
    }
    while let Some(event) = swarm.next().await {
        match event {
            SwarmEvent::ConnectionEstablished { .. } => {
                counts.connected.fetch_add(1, Ordering::Relaxed);
            }
            SwarmEvent::ConnectionClosed { .. } => {
                counts.closed.fetch_add(1, Ordering::Relaxed);
            }
            // Thousands of dials at once overflow the accept backlog: try again.
            SwarmEvent::OutgoingConnectionError { .. } if attempts < MAX_ATTEMPTS => {
                counts.failed.fetch_add(1, Ordering::Relaxed);
                attempts += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
                if swarm.dial(node.clone()).is_err() {
                    return;
                }
            }
            _ => {}
        }
    }
}

/// Dials a client tries before it gives up.
const MAX_ATTEMPTS: u32 = 10;
