//! A real Alertmanager (Debian package `prometheus-alertmanager`): a node's
//! alert shows up active with the right labels and is then resolved; alerts
//! queued while Alertmanager is down survive a SIGKILL of the node and
//! arrive exactly once.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};
use x0tta6bl4_integration::alertmanager::{Alertmanager, PROGRAM};
use x0tta6bl4_integration::fixture::{Fixture, Reply};
use x0tta6bl4_integration::{
    free_port, metric, metrics_text, test_spec, tool_available, wait_for, NodeProcess, NodeSpec,
};

fn alerting_node(dir: &std::path::Path, name: &str, alertmanager_url: &str) -> NodeSpec {
    test_spec(dir, name)
        .with("X0TTA6BL4_HEALER__ENABLED", "false")
        .with("ALERTMANAGER_URL", alertmanager_url)
        .with("X0TTA6BL4_ALERTER__TICK_MS", "20")
        .with("X0TTA6BL4_ALERTER__RETRY_BASE_MS", "100")
        .with("X0TTA6BL4_ALERTER__RETRY_CAP_MS", "500")
        .with("X0TTA6BL4_ALERTER__PER_MINUTE", "6000")
}

/// Alerts of webhook notifications with `status`, for `alertname`.
fn notified(webhook: &Fixture, status: &str, alertname: &str) -> Vec<Value> {
    webhook
        .received()
        .iter()
        .filter(|r| r.body["status"] == status)
        .flat_map(|r| r.body["alerts"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["labels"]["alertname"] == alertname)
        .collect()
}

#[test]
fn a_fired_alert_is_active_in_alertmanager_with_its_labels_then_resolved() {
    if !tool_available(PROGRAM, "prometheus-alertmanager") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let webhook = Fixture::start(Reply::text(200, ""));
    let am = Alertmanager::start(&dir.path().join("am"), free_port(), &format!("{}/hook", webhook.url()));
    let node = NodeProcess::spawn(alerting_node(dir.path(), "alerting", &am.url)).expect("node starts");

    let fired = node
        .post(
            "/api/v1/alerts",
            &json!({"name": "MESH_TEST_ALERT", "severity": "critical", "summary": "peer p1 unreachable",
                    "labels": {"peer": "p1"}, "annotations": {"runbook": "docs/runbooks.md#peers"}}),
        )
        .expect("alert accepted");
    assert_eq!(fired["outcome"], "queued");
    let alert = wait_for(Duration::from_secs(15), "alert active in alertmanager", || {
        am.alerts("MESH_TEST_ALERT").into_iter().next()
    });
    let labels = &alert["labels"];
    assert_eq!(labels["alertname"], "MESH_TEST_ALERT");
    assert_eq!(labels["severity"], "critical");
    assert_eq!(labels["service"], "x0tta6bl4");
    assert_eq!(labels["node"], node.peer_id.as_str());
    assert_eq!(labels["node_name"], "alerting");
    assert_eq!(labels["peer"], "p1");
    assert_eq!(alert["annotations"]["summary"], "peer p1 unreachable");
    assert_eq!(alert["annotations"]["runbook"], "docs/runbooks.md#peers");
    assert_eq!(alert["status"]["state"], "active");
    assert_eq!(alert["generatorURL"], format!("{}/", node.api));
    wait_for(Duration::from_secs(10), "firing notification", || {
        (!notified(&webhook, "firing", "MESH_TEST_ALERT").is_empty()).then_some(())
    });

    let resolved = node
        .post(
            "/api/v1/alerts/resolve",
            &json!({"name": "MESH_TEST_ALERT", "labels": {"peer": "p1"}}),
        )
        .expect("resolve accepted");
    assert_eq!(resolved["outcome"], "queued");
    wait_for(Duration::from_secs(15), "alert no longer active", || {
        am.alerts("MESH_TEST_ALERT").is_empty().then_some(())
    });
    let resolved = wait_for(Duration::from_secs(10), "resolved notification", || {
        notified(&webhook, "resolved", "MESH_TEST_ALERT").into_iter().next()
    });
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["labels"]["peer"], "p1");
    let outbox = node.get("/api/v1/alerts").expect("alerts");
    assert_eq!(outbox["outbox"], json!([]));
    assert_eq!(outbox["firing"], json!([]));
}

#[test]
fn alerts_queued_while_alertmanager_is_down_arrive_exactly_once_after_a_sigkill() {
    if !tool_available(PROGRAM, "prometheus-alertmanager") {
        return;
    }
    const ALERTS: usize = 100;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let spec = alerting_node(dir.path(), "crashing", &format!("http://127.0.0.1:{port}"));
    let mut node = NodeProcess::spawn(spec.clone()).expect("node starts");
    for n in 0..ALERTS {
        let answer = node
            .post(
                "/api/v1/alerts",
                &json!({"name": "CRASH_TEST", "severity": "warning", "summary": format!("alert {n}"),
                        "labels": {"n": n.to_string()}}),
            )
            .expect("alert accepted");
        assert_eq!(answer["outcome"], "queued");
    }
    let outbox = wait_for(Duration::from_secs(10), "delivery attempted and failed", || {
        let outbox = node.get("/api/v1/alerts").ok()?["outbox"].as_array()?.clone();
        let tried = outbox.iter().any(|e| {
            e["sinks"]["alertmanager"]["last_error"]
                .as_str()
                .is_some_and(|s| s.contains("connect"))
        });
        tried.then_some(outbox)
    });
    assert_eq!(outbox.len(), ALERTS, "all queued, none lost to the failures");
    println!(
        "{} alerts queued, first error: {}",
        outbox.len(),
        outbox[0]["sinks"]["alertmanager"]["last_error"]
    );
    node.kill();

    let webhook = Fixture::start(Reply::text(200, ""));
    let am = Alertmanager::start(&dir.path().join("am"), port, &format!("{}/hook", webhook.url()));
    let node = NodeProcess::spawn(spec).expect("node restarts");
    let alerts = wait_for(Duration::from_secs(30), "every alert in alertmanager", || {
        let alerts = am.alerts("CRASH_TEST");
        (alerts.len() >= ALERTS).then_some(alerts)
    });
    let mut per_n: BTreeMap<String, usize> = BTreeMap::new();
    for alert in &alerts {
        *per_n
            .entry(alert["labels"]["n"].as_str().unwrap_or("?").to_string())
            .or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = (0..ALERTS).map(|n| (n.to_string(), 1)).collect();
    assert_eq!(per_n, expected, "each alert exactly once in alertmanager");
    wait_for(Duration::from_secs(10), "outbox drained", || {
        let view = node.get("/api/v1/alerts").ok()?;
        (view["outbox"] == json!([])).then_some(())
    });
    let delivered = metric(
        &metrics_text(&node),
        "x0tta_alert_notifications_total",
        &["sink=\"alertmanager\"", "result=\"delivered\""],
    );
    assert_eq!(delivered, ALERTS as f64, "the restarted node posted each alert once");
    let firing_notified = wait_for(Duration::from_secs(15), "one notification per alert", || {
        let notified = notified(&webhook, "firing", "CRASH_TEST");
        (notified.len() >= ALERTS).then_some(notified)
    });
    assert_eq!(firing_notified.len(), ALERTS, "alertmanager notified each alert once");
}
