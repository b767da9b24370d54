//! Helpers for multi-node tests and benchmarks: real `x0tta6bl4` processes on
//! loopback, in temp dirs, on port 0, arranged in lines, rings or meshes.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;
pub use x0tta6bl4::launcher::{NodeProcess, NodeSpec};

pub mod alertmanager;
pub mod crash;
pub mod detour;
pub mod fake_chain;
pub mod fake_telegram;
pub mod fixture;
pub mod netns;
pub mod operator_ca;
pub mod outage;
pub mod pqc_impls;
pub mod soak;
pub mod workload_api;

/// The `x0tta6bl4` binary built next to the running test or bench.
///
/// `X0TTA6BL4_BIN` overrides it. Panics with a clear message when it is missing,
/// since every multi-node test needs it.
pub fn node_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("X0TTA6BL4_BIN") {
        return PathBuf::from(path);
    }
    let me = std::env::current_exe().expect("current_exe");
    let candidates = me
        .ancestors()
        .skip(1)
        .take(3)
        .map(|dir| dir.join("x0tta6bl4"))
        .collect::<Vec<_>>();
    candidates.iter().find(|p| p.is_file()).cloned().unwrap_or_else(|| {
        panic!(
            "x0tta6bl4 binary not found near {}; run `cargo build -p x0tta6bl4` first",
            me.display()
        )
    })
}

/// Settings every test node gets: fast beacons and pings, debug hooks on.
pub fn test_spec(dir: &std::path::Path, name: &str) -> NodeSpec {
    NodeSpec::loopback(&node_binary(), name, &dir.join(name))
        .with("X0TTA6BL4_MESH__BEACON_INTERVAL_MS", "300")
        .with("X0TTA6BL4_MESH__PING_INTERVAL_MS", "300")
        .with("X0TTA6BL4_ROUTER__BEACON_EXPIRY_MS", "1500")
        .with("X0TTA6BL4_ROUTER__FAULT_INJECTION", "true")
        .with("X0TTA6BL4_ROUTER__INBOX_CAPACITY", "4096")
}

/// The fast-failover profile (`X0TTA6BL4_FAILOVER=true`: keepalives every 50 ms,
/// a link silent for 300 ms is closed), as extra environment for test nodes.
pub const FAST_FAILOVER: &[(&str, &str)] = &[("X0TTA6BL4_FAILOVER", "true")];

/// The minimal profile (`X0TTA6BL4_MINIMAL=true`) for a test node, listening
/// on loopback TCP only (the test nodes' QUIC address would contradict the
/// profile's `mesh.quic = false`, and a value set explicitly wins).
pub const MINIMAL: &[(&str, &str)] = &[
    ("X0TTA6BL4_MINIMAL", "true"),
    ("X0TTA6BL4_MESH__LISTEN", r#"["/ip4/127.0.0.1/tcp/0"]"#),
];

/// Threads of process `pid` named `name` (`/proc/<pid>/task/*/comm`).
pub fn threads_named(pid: u32, name: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |tasks| {
        tasks
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|comm| comm.trim_end() == name)
            .count()
    })
}

/// Waits until `node` has a route to every peer id in `peers`; returns the routes.
pub fn wait_routes_to(node: &NodeProcess, peers: &[String], timeout: Duration) -> Vec<Value> {
    wait_for(
        timeout,
        &format!("{} to route to {} peers", node.name(), peers.len()),
        || {
            let routes = node.get("/api/v1/routes").ok()?["routes"].as_array()?.clone();
            peers
                .iter()
                .all(|p| routes.iter().any(|r| r["destination"] == p.as_str()))
                .then_some(routes)
        },
    )
}

/// The route of `node` towards `peer`, if it has one.
pub fn route_to(node: &NodeProcess, peer: &str) -> Option<Value> {
    node.get("/api/v1/routes").ok()?["routes"]
        .as_array()?
        .iter()
        .find(|r| r["destination"] == peer)
        .cloned()
}

/// A steady flow of routed messages from one node to another, on its own thread.
pub struct Flow {
    running: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<(u64, u64)>>>,
}

impl Flow {
    /// Sends a message from `node` to `to` every `every`.
    pub fn start(node: &NodeProcess, to: &str, every: Duration) -> Self {
        Self::start_with(node.client(), to, every, false)
    }

    /// Like [`Flow::start`], with reliable (acknowledged, retransmitted) messages.
    pub fn reliable(node: &NodeProcess, to: &str, every: Duration) -> Self {
        Self::start_with(node.client(), to, every, true)
    }

    fn start_with(api: x0tta6bl4::launcher::ApiClient, to: &str, every: Duration, reliable: bool) -> Self {
        use std::sync::atomic::Ordering;
        let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (to, flag) = (to.to_string(), running.clone());
        let thread = std::thread::spawn(move || {
            let mut sent = Vec::new();
            while flag.load(Ordering::Relaxed) {
                let at = unix_ms();
                let reply = api
                    .request("POST", "/api/v1/messages")
                    .timeout(Duration::from_secs(2))
                    .send_json(serde_json::json!({ "to": to, "text": "flow", "reliable": reliable }))
                    .ok()
                    .and_then(|r| r.into_json::<Value>().ok());
                if let Some(id) = reply.and_then(|v| v["id"].as_u64()) {
                    sent.push((id, at));
                }
                std::thread::sleep(every);
            }
            sent
        });
        Self {
            running,
            thread: Some(thread),
        }
    }

    /// Stops the flow; returns `(id, sent at Unix ms)` of every accepted message.
    pub fn stop(mut self) -> Vec<(u64, u64)> {
        self.running.store(false, std::sync::atomic::Ordering::Relaxed);
        self.thread.take().and_then(|t| t.join().ok()).unwrap_or_default()
    }
}

/// Earliest arrival (Unix ms) at `node` of a message received after `after_ms`.
pub fn first_arrival_after(node: &NodeProcess, after_ms: u64) -> Option<u64> {
    node.get("/api/v1/messages").ok()?["messages"]
        .as_array()?
        .iter()
        .filter_map(|m| m["received_ms"].as_u64())
        .filter(|t| *t > after_ms)
        .min()
}

/// Ids of every message in `node`'s inbox.
pub fn inbox_ids(node: &NodeProcess) -> std::collections::HashSet<u64> {
    node.get("/api/v1/messages")
        .ok()
        .and_then(|v| v["messages"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|m| m["id"].as_u64())
        .collect()
}

/// A set of nodes in one temp dir, stopped when dropped.
pub struct TestMesh {
    /// The nodes, in creation order.
    pub nodes: Vec<NodeProcess>,
    /// Their data dirs.
    pub dir: tempfile::TempDir,
}

impl TestMesh {
    /// An empty mesh.
    pub fn new() -> Self {
        Self {
            nodes: Vec::new(),
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// Starts node `name` with `links` as bootstrap peers (indices of earlier nodes).
    pub fn add(&mut self, name: &str, links: &[usize], dial_discovered: bool) -> usize {
        self.add_with(name, links, dial_discovered, &[])
    }

    /// Like [`TestMesh::add`], with extra `X0TTA6BL4_*` settings.
    pub fn add_with(&mut self, name: &str, links: &[usize], dial_discovered: bool, env: &[(&str, &str)]) -> usize {
        let bootstrap: Vec<String> = links
            .iter()
            .map(|i| format!("\"{}\"", self.nodes[*i].bootstrap_addr))
            .collect();
        let spec = test_spec(self.dir.path(), name)
            .with("X0TTA6BL4_MESH__BOOTSTRAP", format!("[{}]", bootstrap.join(",")))
            .with("X0TTA6BL4_MESH__DIAL_DISCOVERED", dial_discovered.to_string());
        let spec = env.iter().fold(spec, |spec, (k, v)| spec.with(k, *v));
        self.nodes
            .push(NodeProcess::spawn(spec).unwrap_or_else(|e| panic!("{e}")));
        self.nodes.len() - 1
    }

    /// A line of `n` nodes: 0 – 1 – … – n-1, no discovered dials.
    pub fn line(n: usize) -> Self {
        let mut mesh = Self::new();
        for i in 0..n {
            let links: Vec<usize> = if i == 0 { vec![] } else { vec![i - 1] };
            mesh.add(&format!("n{i}"), &links, false);
        }
        mesh
    }

    /// A ring of `n` nodes: a line whose last node also links to the first.
    pub fn ring(n: usize) -> Self {
        let mut mesh = Self::new();
        for i in 0..n {
            let links: Vec<usize> = match i {
                0 => vec![],
                i if i == n - 1 => vec![i - 1, 0],
                i => vec![i - 1],
            };
            mesh.add(&format!("n{i}"), &links, false);
        }
        mesh
    }

    /// Waits until node `from` has a route to node `to` with `hops` hops.
    pub fn wait_route(&self, from: usize, to: usize, hops: u64, timeout: Duration) -> Value {
        self.wait_route_where(from, to, timeout, &format!("{hops} hops"), |r| r["hops"] == hops)
    }

    /// Waits until node `from` has a route to node `to` that satisfies `accept`.
    pub fn wait_route_where(
        &self,
        from: usize,
        to: usize,
        timeout: Duration,
        what: &str,
        accept: impl Fn(&Value) -> bool,
    ) -> Value {
        let dest = self.nodes[to].peer_id.clone();
        wait_for(timeout, &format!("route {from} -> {to} with {what}"), || {
            let routes = self.nodes[from].get("/api/v1/routes").ok()?;
            routes["routes"]
                .as_array()?
                .iter()
                .find(|r| r["destination"] == dest.as_str() && accept(r))
                .cloned()
        })
    }

    /// Index of the node with `peer_id`.
    pub fn index_of(&self, peer_id: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.peer_id == peer_id)
    }
}

impl Default for TestMesh {
    fn default() -> Self {
        Self::new()
    }
}

/// Polls `check` every 50 ms until it returns `Some`, panicking after `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, check: impl FnMut() -> Option<T>) -> T {
    poll_for(timeout, check).unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}

/// Polls `check` every 50 ms until it returns `Some`; `None` after `timeout`
/// (for a test that reports what it saw before it fails).
pub fn poll_for<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let started = Instant::now();
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if started.elapsed() >= timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sum of every sample of metric `name` whose labels contain all of `labels`
/// (e.g. `reason="oversized"`), from Prometheus text.
pub fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Fetches `/metrics` of a node as text.
pub fn metrics_text(node: &NodeProcess) -> String {
    ureq::get(&format!("{}/metrics", node.api))
        .timeout(Duration::from_secs(5))
        .call()
        .ok()
        .and_then(|r| r.into_string().ok())
        .unwrap_or_default()
}

/// Resident set size of a process in bytes, from `/proc/<pid>/status`.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    proc_kb(&format!("/proc/{pid}/status"), "VmRSS:").map(|kb| kb * 1024)
}

/// Where a process's resident memory is, in bytes.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Memory {
    /// Resident set size: all of the below.
    pub rss: u64,
    /// Private (anonymous) memory: heap, stacks. What each node costs on its own.
    pub anon: u64,
    /// File-backed pages, mostly the binary's code, shared by every process
    /// running the same binary.
    pub file: u64,
    /// Proportional set size: private memory plus this process's share of
    /// the shared pages.
    pub pss: u64,
}

/// The memory breakdown of process `pid`, from `/proc`.
pub fn memory_of(pid: u32) -> Option<Memory> {
    let status = format!("/proc/{pid}/status");
    let kb = |file: &str, key: &str| proc_kb(file, key).map(|kb| kb * 1024);
    Some(Memory {
        rss: kb(&status, "VmRSS:")?,
        anon: kb(&status, "RssAnon:")?,
        file: kb(&status, "RssFile:")?,
        pss: kb(&format!("/proc/{pid}/smaps_rollup"), "Pss:")?,
    })
}

/// The kB figure after `key` in a `/proc` file of `key value kB` lines.
fn proc_kb(file: &str, key: &str) -> Option<u64> {
    std::fs::read_to_string(file)
        .ok()?
        .lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Whether an external program from Debian's packages is installed. When it is
/// not, the calling test reports itself skipped (loudly), except under CI
/// (`CI=true`), where `.ci/run` installs it and a missing tool is a failure.
pub fn tool_available(program: &str, package: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false);
    if !found {
        assert!(
            std::env::var("CI").is_err(),
            "{program} is missing under CI: .ci/run must install the {package} package"
        );
        eprintln!("SKIPPED: {program} not installed (apt-get install {package}); this test did not run");
    }
    found
}

/// A loopback TCP port that was free a moment ago, for programs that cannot bind port 0.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Current Unix time in milliseconds.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::metric;

    #[test]
    fn metric_parsing() {
        let text = "# HELP x a\nx_total{reason=\"a\"} 2\nx_total{reason=\"b\"} 3\nx_total_other 9\ny 1\n";
        assert_eq!(metric(text, "x_total", &[]), 5.0);
        assert_eq!(metric(text, "x_total", &["reason=\"b\""]), 3.0);
        assert_eq!(metric(text, "y", &[]), 1.0);
    }
}
