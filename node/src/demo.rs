//! `x0tta6bl4 demo`: a local mesh of N node processes on loopback.
//!
//! Node 0 starts first; every other node bootstraps from its address only and
//! finds the rest through beacons. The demo prints each dashboard URL, waits until
//! every node sees all the others, and runs until Ctrl-C or SIGTERM, then stops
//! every child (they also die with the demo if it is killed).

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::launcher::{NodeProcess, NodeSpec};

/// Most nodes a demo starts on one machine.
const MAX_NODES: usize = 64;
/// How long to wait for full discovery before just reporting progress.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// Starts the demo mesh and blocks until interrupted.
pub fn run(nodes: usize, http_base_port: u16, data_dir: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=MAX_NODES).contains(&nodes),
        "--nodes must be between 1 and {MAX_NODES}"
    );
    let exe = std::env::current_exe().context("cannot find my own executable")?;
    // Listening before the first node starts: a Ctrl-C at any point from here
    // on is kept and stops the mesh once discovery has been reported.
    let stop = StopSignals::listen()?;
    let mut mesh: Vec<NodeProcess> = Vec::with_capacity(nodes);
    println!("starting {nodes} nodes (data and logs in {})", data_dir.display());
    for i in 0..nodes {
        let name = format!("node-{i}");
        let mut spec = NodeSpec::loopback(&exe, &name, &data_dir.join(&name));
        spec.http = http_addr(http_base_port, i);
        match mesh.first() {
            Some(first) => spec = spec.with("X0TTA6BL4_MESH__BOOTSTRAP", format!("[\"{}\"]", first.bootstrap_addr)),
            // The first node watches loopback, where the demo's traffic flows
            // (generic XDP: loopback has no driver mode; unprivileged, it says why not).
            None => spec = spec.with_xdp_on(&["lo"]),
        }
        let node = NodeProcess::spawn(spec)?;
        println!("  {name}  {}/  peer {}", node.api, node.peer_id);
        mesh.push(node);
    }
    wait_for_discovery(&mesh);
    if let Some(first) = mesh.first() {
        println!(
            "watch it as a light peer: x0tta6bl4 watch --bootstrap {}",
            first.bootstrap_addr
        );
    }
    println!("press Ctrl-C to stop the mesh");
    stop.wait();
    println!("stopping {} nodes", mesh.len());
    for node in &mut mesh {
        node.stop();
    }
    Ok(())
}

/// `127.0.0.1:<base + i>` if that port is free, else port 0 (any). Base 0 means any.
fn http_addr(base: u16, index: usize) -> SocketAddr {
    let port = match base {
        0 => 0,
        base => u16::try_from(index).ok().and_then(|i| base.checked_add(i)).unwrap_or(0),
    };
    let wanted = SocketAddr::from(([127, 0, 0, 1], port));
    if port != 0 && TcpListener::bind(wanted).is_ok() {
        wanted
    } else {
        SocketAddr::from(([127, 0, 0, 1], 0))
    }
}

/// Prints discovery progress until every node lists all the others.
fn wait_for_discovery(mesh: &[NodeProcess]) {
    let started = Instant::now();
    let want = mesh.len().saturating_sub(1);
    let mut last_line = String::new();
    while started.elapsed() < DISCOVERY_TIMEOUT {
        let seen: Vec<usize> = mesh
            .iter()
            .map(|n| {
                n.get("/api/v1/peers")
                    .ok()
                    .and_then(|v| v["peers"].as_array().map(Vec::len))
                    .unwrap_or(0)
            })
            .collect();
        let line = format!("peers seen per node: {seen:?} (want {want} each)");
        if line != last_line {
            println!("  {line}");
            last_line = line;
        }
        if seen.iter().all(|s| *s >= want) {
            println!("mesh complete after {:.1} s", started.elapsed().as_secs_f64());
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    println!("mesh still incomplete after {DISCOVERY_TIMEOUT:?}; see the node logs");
}

/// SIGINT and SIGTERM, listened for from creation on (a signal that arrives
/// before [`StopSignals::wait`] is kept, not lost to the default handler).
struct StopSignals {
    runtime: tokio::runtime::Runtime,
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn listen() -> anyhow::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the signal runtime")?;
        let (interrupt, terminate) = runtime
            .block_on(async { anyhow::Ok((signal(SignalKind::interrupt())?, signal(SignalKind::terminate())?)) })?;
        Ok(Self {
            runtime,
            interrupt,
            terminate,
        })
    }

    /// Blocks until Ctrl-C or SIGTERM (at once if one already arrived).
    fn wait(mut self) {
        self.runtime.block_on(async {
            tokio::select! {
                _ = self.interrupt.recv() => {}
                _ = self.terminate.recv() => {}
            }
        });
    }
}
