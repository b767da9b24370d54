//! `bench api`: the HTTP API under many keep-alive clients. `wrk` (Debian's
//! package) holds 1,000 connections (100 with `--quick`) to one node for 10 s
//! (2 s) per endpoint; the node runs at its defaults (one HTTP worker).

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use x0tta6bl4_integration::{tool_available, wait_for, TestMesh};

/// Endpoints measured: the liveness probe, the status view (asks the mesh
/// actor), and the Prometheus scrape.
const ENDPOINTS: [&str; 3] = ["/health", "/api/v1/status", "/metrics"];

/// Runs wrk against each endpoint of one node and prints the figures.
pub fn run(quick: bool) {
    if !tool_available("wrk", "wrk") {
        return;
    }
    let (connections, seconds) = if quick { (100, 2) } else { (1_000, 10) };
    let mut mesh = TestMesh::new();
    let node = mesh.add("api", &[], false);
    let api = mesh.nodes[node].api.clone();
    wait_for(Duration::from_secs(20), "the node to be ready", || {
        ureq::get(&format!("{api}/ready")).call().ok().map(|_| ())
    });
    eprintln!("wrk: {connections} keep-alive connections, {seconds} s per endpoint, 2 threads");
    let results: Vec<Value> = ENDPOINTS
        .iter()
        .map(|path| measure(&format!("{api}{path}"), path, connections, seconds))
        .collect();
    println!();
    println!("endpoint           connections   requests/s   p50 ms   p99 ms   errors");
    for r in &results {
        println!(
            "{:<18} {:>11} {:>12.0} {:>8.2} {:>8.2} {:>8}",
            r["endpoint"].as_str().unwrap_or_default(),
            connections,
            r["requests_per_s"].as_f64().unwrap_or_default(),
            r["p50_ms"].as_f64().unwrap_or_default(),
            r["p99_ms"].as_f64().unwrap_or_default(),
            r["errors"].as_u64().unwrap_or_default(),
        );
    }
    println!(
        "{}",
        json!({ "bench": "api", "connections": connections, "seconds": seconds, "results": results })
    );
}

/// One wrk run against `url`.
fn measure(url: &str, endpoint: &str, connections: u32, seconds: u32) -> Value {
    let output = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            url,
        ])
        .output()
        .expect("wrk runs");
    let text = String::from_utf8_lossy(&output.stdout);
    json!({
        "endpoint": endpoint,
        "requests_per_s": field(&text, "Requests/sec:").and_then(|v| v.parse::<f64>().ok()),
        "p50_ms": field(&text, "50%").and_then(millis),
        "p99_ms": field(&text, "99%").and_then(millis),
        "errors": errors(&text),
    })
}

/// The word after `label` on the first line that starts with it.
fn field<'a>(text: &'a str, label: &str) -> Option<&'a str> {
    text.lines()
        .map(str::trim)
        .find(|l| l.starts_with(label))?
        .split_whitespace()
        .nth(1)
}

/// A wrk duration (`812.00us`, `3.21ms`, `1.20s`) in milliseconds.
fn millis(value: &str) -> Option<f64> {
    let split = value.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse().ok()?;
    match unit {
        "us" => Some(number / 1_000.0),
        "ms" => Some(number),
        "s" => Some(number * 1_000.0),
        "m" => Some(number * 60_000.0),
        _ => None,
    }
}

/// Socket errors and non-2xx/3xx answers wrk reported.
fn errors(text: &str) -> u64 {
    let socket: u64 = text
        .lines()
        .find(|l| l.trim_start().starts_with("Socket errors:"))
        .map(|l| {
            l.split(|c: char| !c.is_ascii_digit())
                .filter_map(|n| n.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    let status: u64 = text
        .lines()
        .find(|l| l.trim_start().starts_with("Non-2xx"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0);
    socket + status
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Running 2s test @ http://127.0.0.1:1/health
  2 threads and 100 connections
  Latency Distribution
     50%  812.00us
     75%    1.10ms
     90%    2.00ms
     99%    3.21ms
  20000 requests in 2.00s, 2.00MB read
  Socket errors: connect 0, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 7
Requests/sec:  10000.50
";

    #[test]
    fn wrk_output_is_read() {
        assert_eq!(field(SAMPLE, "Requests/sec:"), Some("10000.50"));
        assert_eq!(field(SAMPLE, "50%").and_then(millis), Some(0.812));
        assert_eq!(field(SAMPLE, "99%").and_then(millis), Some(3.21));
        assert_eq!(errors(SAMPLE), 12);
    }
}
