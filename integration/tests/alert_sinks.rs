//! Telegram and PagerDuty sinks against local fixture servers that answer
//! with the documented responses: success, 400 with a description, 429 with
//! a retry time, 5xx, and no answer (timeout). A real node delivers; the
//! fixture records every request.

use std::time::Duration;

use serde_json::{json, Value};
use x0tta6bl4_integration::fixture::{Fixture, Received, Reply};
use x0tta6bl4_integration::{metric, metrics_text, test_spec, wait_for, NodeProcess};

/// Client timeout the node gets; the fixture's slow answer takes longer.
const TIMEOUT_MS: u64 = 600;

/// One sink under test: how to turn it on, and its documented answers.
struct Case {
    sink: &'static str,
    env: Vec<(&'static str, String)>,
    success: Reply,
    bad_request: Reply,
    throttled: Reply,
    /// The wait a throttled answer asks for, if it names one.
    throttle_wait: Option<Duration>,
    /// Whether a request is for the alert with this name and fingerprint,
    /// and whether it is a resolve.
    is_ours: fn(&Received, &str, &str) -> bool,
    is_resolve: fn(&Received) -> bool,
}

fn telegram(fixture: &Fixture) -> Case {
    Case {
        sink: "telegram",
        env: vec![
            ("TELEGRAM_BOT_TOKEN", "123456:TEST-token".into()),
            ("TELEGRAM_CHAT_ID", "-100200300".into()),
            ("X0TTA6BL4_ALERTER__TELEGRAM_API_URL", fixture.url()),
        ],
        success: Reply::json(
            200,
            json!({"ok": true, "result": {"message_id": 7, "date": 1_764_000_000, "chat": {"id": -100_200_300, "type": "group"}}}),
        ),
        bad_request: Reply::json(
            400,
            json!({"ok": false, "error_code": 400, "description": "Bad Request: chat not found"}),
        ),
        throttled: Reply::json(
            429,
            json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 1", "parameters": {"retry_after": 1}}),
        ),
        throttle_wait: Some(Duration::from_secs(1)),
        is_ours: |r, name, _| {
            r.path == "/bot123456:TEST-token/sendMessage"
                && r.body["text"]
                    .as_str()
                    .is_some_and(|t| t.contains(&name.replace('_', "\\_")))
        },
        is_resolve: |r| r.body["text"].as_str().is_some_and(|t| t.starts_with("✅ *RESOLVED*")),
    }
}

fn pagerduty(fixture: &Fixture) -> Case {
    Case {
        sink: "pagerduty",
        env: vec![
            ("PAGERDUTY_ROUTING_KEY", "R0123456789abcdef0123456789abcde".into()),
            (
                "X0TTA6BL4_ALERTER__PAGERDUTY_URL",
                format!("{}/v2/enqueue", fixture.url()),
            ),
        ],
        success: Reply::json(
            202,
            json!({"status": "success", "message": "Event processed", "dedup_key": "k"}),
        ),
        bad_request: Reply::json(
            400,
            json!({"status": "invalid event", "message": "Event object is invalid", "errors": ["Length of 'routing_key' is incorrect (should be 32 characters)"]}),
        ),
        throttled: Reply::text(429, ""),
        throttle_wait: None,
        is_ours: |r, _, fingerprint| {
            r.path == "/v2/enqueue" && r.body["dedup_key"].as_str().is_some_and(|k| k.ends_with(fingerprint))
        },
        is_resolve: |r| r.body["event_action"] == "resolve",
    }
}

fn start_node(dir: &std::path::Path, case: &Case) -> NodeProcess {
    let mut spec = test_spec(dir, case.sink)
        .with("X0TTA6BL4_HEALER__ENABLED", "false")
        .with("X0TTA6BL4_ALERTER__TIMEOUT_MS", TIMEOUT_MS.to_string())
        .with("X0TTA6BL4_ALERTER__RETRY_BASE_MS", "100")
        .with("X0TTA6BL4_ALERTER__RETRY_CAP_MS", "300")
        .with("X0TTA6BL4_ALERTER__PER_MINUTE", "600")
        .with("X0TTA6BL4_ALERTER__TICK_MS", "20");
    for (key, value) in &case.env {
        spec = spec.with(key, value.clone());
    }
    NodeProcess::spawn(spec).expect("node starts")
}

fn fire(node: &NodeProcess, name: &str) -> Value {
    let answer = node
        .post(
            "/api/v1/alerts",
            &json!({"name": name, "severity": "critical", "summary": "link a-b lost (40%)!", "labels": {"peer": "b"}}),
        )
        .expect("alert accepted");
    assert_eq!(answer["fingerprint"], fingerprint(name));
    answer
}

/// The fingerprint of the alert `name` as this test fires it.
fn fingerprint(name: &str) -> String {
    let alert =
        x0tta6bl4_actors::alert::Alert::new(name, x0tta6bl4_actors::alert::Severity::Critical, "").label("peer", "b");
    alert.fingerprint()
}

fn ours(fixture: &Fixture, case: &Case, name: &str) -> Vec<Received> {
    let fingerprint = fingerprint(name);
    fixture
        .received()
        .into_iter()
        .filter(|r| (case.is_ours)(r, name, &fingerprint))
        .collect()
}

fn outbox_entry(node: &NodeProcess, name: &str) -> Option<Value> {
    let view = node.get("/api/v1/alerts").ok()?;
    view["outbox"]
        .as_array()?
        .iter()
        .find(|e| e["alert"]["name"] == name)
        .cloned()
}

fn delivered(node: &NodeProcess, case: &Case) -> f64 {
    let sink = format!("sink=\"{}\"", case.sink);
    metric(
        &metrics_text(node),
        "x0tta_alert_notifications_total",
        &[&sink, "result=\"delivered\""],
    )
}

/// Waits until `name` left the outbox (every sink accepted it).
fn wait_delivered(node: &NodeProcess, name: &str) {
    wait_for(Duration::from_secs(15), &format!("{name} delivered"), || {
        outbox_entry(node, name).is_none().then_some(())
    });
}

fn run(case: &Case, fixture: &Fixture) {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = start_node(dir.path(), case);
    let sinks = node.get("/api/v1/alerts").expect("alerts")["sinks"].clone();
    assert_eq!(sinks, json!([case.sink]));

    // Success, then the same alert again (deduplicated), then its resolve.
    fixture.script([case.success.clone(), case.success.clone()]);
    assert_eq!(fire(&node, "SINK_OK")["outcome"], "queued");
    wait_delivered(&node, "SINK_OK");
    assert_eq!(fire(&node, "SINK_OK")["outcome"], "duplicate");
    let resolved = node
        .post(
            "/api/v1/alerts/resolve",
            &json!({"name": "SINK_OK", "labels": {"peer": "b"}}),
        )
        .expect("resolve accepted");
    assert_eq!(resolved["outcome"], "queued");
    wait_delivered(&node, "SINK_OK");
    let sent = ours(fixture, case, "SINK_OK");
    assert_eq!(sent.len(), 2, "one trigger and one resolve, no duplicate: {sent:?}");
    assert!(!(case.is_resolve)(&sent[0]) && (case.is_resolve)(&sent[1]));

    // 429: waits as asked (or backs off), then delivers once.
    fixture.script([case.throttled.clone(), case.success.clone()]);
    fire(&node, "SINK_THROTTLED");
    wait_delivered(&node, "SINK_THROTTLED");
    let sent = ours(fixture, case, "SINK_THROTTLED");
    assert_eq!(sent.len(), 2, "{sent:?}");
    let gap = sent[1].at.duration_since(sent[0].at);
    if let Some(wait) = case.throttle_wait {
        assert!(gap >= wait, "retried after {gap:?}, asked to wait {wait:?}");
    }

    // 5xx twice: retried with backoff, delivered once.
    fixture.script([
        Reply::json(
            502,
            json!({"ok": false, "error_code": 502, "description": "Bad Gateway"}),
        ),
        Reply::text(500, "<html>Internal Server Error</html>"),
        case.success.clone(),
    ]);
    fire(&node, "SINK_FLAKY");
    wait_delivered(&node, "SINK_FLAKY");
    assert_eq!(ours(fixture, case, "SINK_FLAKY").len(), 3);

    // No answer within the timeout: tried again, accepted once.
    fixture.script([
        case.success.clone().after(Duration::from_millis(TIMEOUT_MS * 3)),
        case.success.clone(),
    ]);
    fire(&node, "SINK_SLOW");
    wait_delivered(&node, "SINK_SLOW");
    let sent = ours(fixture, case, "SINK_SLOW");
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(sent[1].at.duration_since(sent[0].at) >= Duration::from_millis(TIMEOUT_MS));

    // 400: refused for good, not retried, visible with the service's words.
    fixture.script([case.bad_request.clone()]);
    fire(&node, "SINK_REFUSED");
    let entry = wait_for(Duration::from_secs(10), "refusal recorded", || {
        let entry = outbox_entry(&node, "SINK_REFUSED")?;
        (entry["sinks"][case.sink]["failed"] == true).then_some(entry)
    });
    let error = entry["sinks"][case.sink]["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        error.contains("400") && (error.contains("chat not found") || error.contains("Event object is invalid")),
        "{error}"
    );
    std::thread::sleep(Duration::from_millis(1_000));
    assert_eq!(ours(fixture, case, "SINK_REFUSED").len(), 1, "a 400 is not retried");
    assert!(outbox_entry(&node, "SINK_REFUSED").is_some(), "it stays visible");

    // Every accepted notification counted exactly once: OK ×2, throttled,
    // flaky, slow.
    assert_eq!(delivered(&node, case), 5.0);
}

#[test]
fn telegram_sink_retries_what_can_succeed_and_never_duplicates() {
    let fixture = Fixture::start(Reply::json(200, json!({"ok": true, "result": {}})));
    run(&telegram(&fixture), &fixture);
    let first = &fixture.received()[0].body;
    assert_eq!(first["chat_id"], -100_200_300);
    assert_eq!(first["parse_mode"], "MarkdownV2");
    let text = first["text"].as_str().unwrap_or_default();
    assert!(
        text.starts_with("🔴 *CRITICAL* SINK\\_OK\nlink a\\-b lost \\(40%\\)\\!"),
        "{text}"
    );
}

#[test]
fn pagerduty_sink_retries_what_can_succeed_and_never_duplicates() {
    let fixture = Fixture::start(Reply::json(202, json!({"status": "success"})));
    run(&pagerduty(&fixture), &fixture);
    let received = fixture.received();
    let (trigger, resolve) = (&received[0].body, &received[1].body);
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["routing_key"], "R0123456789abcdef0123456789abcde");
    assert_eq!(trigger["payload"]["severity"], "critical");
    assert_eq!(trigger["payload"]["summary"], "SINK_OK: link a-b lost (40%)!");
    assert_eq!(resolve["event_action"], "resolve");
    assert_eq!(trigger["dedup_key"], resolve["dedup_key"]);
}

/// Requests the fixture got for alerts whose name starts with `prefix`.
fn telegram_requests(fixture: &Fixture, prefix: &str) -> usize {
    let escaped = prefix.replace('_', "\\_");
    fixture
        .received()
        .iter()
        .filter(|r| r.body["text"].as_str().is_some_and(|t| t.contains(&escaped)))
        .count()
}

#[test]
fn a_sink_is_held_to_its_rate_limit_and_paused_by_its_breaker() {
    let fixture = Fixture::start(Reply::json(200, json!({"ok": true, "result": {}})));
    let case = telegram(&fixture);
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = |name: &str, per_minute: &str| {
        let mut spec = test_spec(dir.path(), name)
            .with("X0TTA6BL4_HEALER__ENABLED", "false")
            .with("X0TTA6BL4_ALERTER__TICK_MS", "20")
            .with("X0TTA6BL4_ALERTER__RETRY_BASE_MS", "50")
            .with("X0TTA6BL4_ALERTER__RETRY_CAP_MS", "100")
            .with("X0TTA6BL4_ALERTER__FAILURES_TO_OPEN", "2")
            .with("X0TTA6BL4_ALERTER__OPEN_SECS", "60")
            .with("X0TTA6BL4_ALERTER__PER_MINUTE", per_minute);
        for (key, value) in &case.env {
            spec = spec.with(key, value.clone());
        }
        NodeProcess::spawn(spec).expect("node starts")
    };

    // Two deliveries a minute: of four alerts, two go out, two wait.
    let limited = spec("limited", "2");
    for n in 0..4 {
        fire(&limited, &format!("RATE_{n}"));
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(telegram_requests(&fixture, "RATE_"), 2, "held to 2 per minute");
    let waiting = limited.get("/api/v1/alerts").expect("alerts")["outbox"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(waiting, 2, "the other two wait in the outbox");

    // A sink failing twice in a row opens its breaker: no third try.
    let failing = spec("failing", "600");
    fixture.script([
        Reply::json(
            502,
            json!({"ok": false, "error_code": 502, "description": "Bad Gateway"}),
        ),
        Reply::json(
            502,
            json!({"ok": false, "error_code": 502, "description": "Bad Gateway"}),
        ),
    ]);
    fire(&failing, "BREAKER_TRIP");
    wait_for(Duration::from_secs(10), "breaker open", || {
        let state = metric(
            &metrics_text(&failing),
            "x0tta_breaker_state",
            &["kind=\"alert_sink\"", "target=\"telegram\""],
        );
        (state == 2.0).then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(telegram_requests(&fixture, "BREAKER_TRIP"), 2, "paused while open");
    let entry = outbox_entry(&failing, "BREAKER_TRIP").expect("still queued");
    assert_eq!(entry["sinks"]["telegram"]["attempts"], 2);

    // An idle sink whose limit is spent sends a new alert as soon as the
    // limit allows (10 a minute: one more every 6 s), not only when yet
    // another alert comes along.
    let refilled = spec("refilled", "10");
    for n in 0..10 {
        fire(&refilled, &format!("REFILL_{n}"));
    }
    wait_for(Duration::from_secs(10), "the first ten sent", || {
        (telegram_requests(&fixture, "REFILL_") == 10).then_some(())
    });
    fire(&refilled, "REFILL_LATE");
    wait_for(
        Duration::from_secs(15),
        "the eleventh sent once the limit allows",
        || (telegram_requests(&fixture, "REFILL_LATE") == 1).then_some(()),
    );
}
