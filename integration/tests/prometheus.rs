//! A real Prometheus (Debian package `prometheus`) scrapes a node; its query API
//! reports `up == 1` and the node's `x0tta_peers_connected`.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use x0tta6bl4_integration::{free_port, tool_available, wait_for, TestMesh};

/// Kills Prometheus when the test ends, however it ends.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn query(api: &str, expr: &str) -> Option<Vec<Value>> {
    let body: Value = ureq::get(&format!("{api}/api/v1/query"))
        .query("query", expr)
        .timeout(Duration::from_secs(5))
        .call()
        .ok()?
        .into_json()
        .ok()?;
    let result = body["data"]["result"].as_array()?.clone();
    (!result.is_empty()).then_some(result)
}

#[test]
fn prometheus_scrapes_a_node() {
    if !tool_available("prometheus", "prometheus") {
        return;
    }
    let mut mesh = TestMesh::new();
    mesh.add("scraped", &[], false);
    mesh.add("peer", &[0], false);
    mesh.wait_route(0, 1, 1, Duration::from_secs(20));
    let target = mesh.nodes[0].api.trim_start_matches("http://").to_string();

    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: x0tta6bl4\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .expect("write config");
    let port = free_port();
    let prometheus = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("prometheus.log")).expect("log file"))
        .spawn()
        .expect("start prometheus");
    let _reaper = Reaper(prometheus);
    let api = format!("http://127.0.0.1:{port}");

    let up = wait_for(Duration::from_secs(30), "Prometheus to report up == 1", || {
        query(&api, "up{job=\"x0tta6bl4\"} == 1")
    });
    assert_eq!(up[0]["value"][1], "1");
    let peers = wait_for(Duration::from_secs(15), "x0tta_peers_connected in Prometheus", || {
        query(&api, "x0tta_peers_connected")
    });
    assert_eq!(peers[0]["metric"]["instance"], target.as_str());
    assert_eq!(peers[0]["value"][1], "1", "the scraped node has one neighbour");
}
