//! The README's main command: `x0tta6bl4 demo`. Five nodes discover each other from
//! one bootstrap address within 10 s; the dashboard serves; Ctrl-C (SIGINT) stops
//! every child; a SIGKILLed demo leaves no orphan either.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use x0tta6bl4_integration::{node_binary, wait_for};

/// Node processes whose command line mentions `dir` (the demo's children).
fn children_of(dir: &std::path::Path) -> Vec<u32> {
    let needle = dir.to_string_lossy().to_string();
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline).contains("run") && String::from_utf8_lossy(&environ).contains(&needle)
        })
        .collect()
}

struct Demo {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Demo {
    fn start(nodes: usize, dir: &std::path::Path) -> Self {
        let mut child = Command::new(node_binary())
            .args([
                "demo",
                "--nodes",
                &nodes.to_string(),
                "--http-base-port",
                "0",
                "--data-dir",
            ])
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("demo starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Self { child, lines }
    }

    /// Collects output until a line contains `marker`.
    fn until(&self, marker: &str, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            let done = line.contains(marker);
            seen.push(line);
            if done {
                return seen;
            }
        }
        panic!("no '{marker}' within {timeout:?}; output so far: {seen:#?}");
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn demo_of_five_discovers_within_ten_seconds_and_stops_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let mut demo = Demo::start(5, dir.path());
    let output = demo.until("mesh complete", Duration::from_secs(60));
    let urls: Vec<String> = output
        .iter()
        .filter_map(|l| {
            l.split_whitespace()
                .find(|w| w.starts_with("http://"))
                .map(str::to_string)
        })
        .collect();
    assert_eq!(urls.len(), 5, "one dashboard URL per node: {output:#?}");
    let spawned = output.iter().position(|l| l.contains("node-4")).expect("node-4 line");
    println!("demo output:\n{}", output[spawned..].join("\n"));
    println!(
        "whole demo up and complete after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    for url in &urls {
        let peers: serde_json::Value = ureq::get(&format!("{url}api/v1/peers"))
            .call()
            .expect("peers")
            .into_json()
            .expect("json");
        assert_eq!(
            peers["peers"].as_array().map(Vec::len),
            Some(4),
            "{url} sees the other 4"
        );
        let page = ureq::get(url).call().expect("dashboard").into_string().expect("html");
        assert!(page.contains("<h2>Peers</h2>"), "dashboard page served at {url}");
    }
    let completion = output
        .iter()
        .find_map(|l| {
            l.strip_prefix("mesh complete after ")?
                .strip_suffix(" s")?
                .parse::<f64>()
                .ok()
        })
        .expect("completion time");
    assert!(
        completion < 10.0,
        "discovery took {completion} s after the last node started"
    );

    assert_eq!(children_of(dir.path()).len(), 5);
    x0tta6bl4::launcher::signal(&demo.child, libc::SIGINT).expect("SIGINT sent");
    let status = demo.child.wait().expect("demo exits");
    assert!(status.success(), "Ctrl-C ends the demo cleanly: {status}");
    assert!(children_of(dir.path()).is_empty(), "no node outlives the demo");
}

#[test]
fn watch_shows_the_topology_of_a_five_node_demo() {
    let dir = tempfile::tempdir().expect("tempdir");
    let demo = Demo::start(5, dir.path());
    let output = demo.until("x0tta6bl4 watch --bootstrap", Duration::from_secs(60));
    let bootstrap = output
        .last()
        .and_then(|l| l.split_whitespace().last())
        .expect("the watch hint names an address")
        .to_owned();
    let watch = Command::new(node_binary())
        .args(["watch", "--bootstrap", &bootstrap, "--for", "6", "--json"])
        .stderr(Stdio::inherit())
        .output()
        .expect("watch runs");
    assert!(watch.status.success(), "watch exits cleanly after --for: {watch:?}");
    let stdout = String::from_utf8_lossy(&watch.stdout);
    let last: serde_json::Value = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("a JSON topology line: {stdout}"));
    let nodes = last["nodes"].as_object().expect("nodes");
    let names: std::collections::BTreeSet<&str> = nodes.values().filter_map(|n| n["name"].as_str()).collect();
    assert_eq!(
        names,
        (0..5)
            .map(|i| format!("node-{i}"))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect(),
        "{last}"
    );
    for (peer, node) in nodes {
        let links: Vec<&str> = node["links"]
            .as_array()
            .expect("links")
            .iter()
            .filter_map(|l| l.as_str())
            .collect();
        assert_eq!(links.len(), 4, "{peer} links to the other four: {last}");
        assert!(
            links.iter().all(|l| nodes.contains_key(*l)),
            "links name nodes of the mesh: {last}"
        );
    }
    println!("watch saw: {last}");
}

#[test]
fn killed_demo_leaves_no_orphans() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut demo = Demo::start(3, dir.path());
    demo.until("press Ctrl-C", Duration::from_secs(60));
    assert_eq!(children_of(dir.path()).len(), 3);
    demo.child.kill().expect("SIGKILL the demo");
    let _ = demo.child.wait();
    wait_for(Duration::from_secs(10), "children to die with the demo", || {
        children_of(dir.path()).is_empty().then_some(())
    });
}
