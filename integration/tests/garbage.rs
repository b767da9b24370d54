//! Garbage from a peer: malformed beacon, oversized frame, frame with TTL 0,
//! unknown destination, malformed frame, and invalid UTF-8 in the text API. Each
//! is rejected with a counted reason and the node stays healthy.

use std::time::Duration;

use serde_json::json;
use x0tta6bl4_actors::router::frame::{Frame, FrameKind};
use x0tta6bl4_integration::{metric, metrics_text, wait_for, NodeProcess, TestMesh};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A well-formed frame with chosen TTL and destination, as a misbehaving peer would send.
fn frame(ttl: u8, src: &str, dst: &str) -> Vec<u8> {
    Frame {
        kind: FrameKind::Data,
        ttl,
        hops: 0,
        id: 7,
        src: src.parse().expect("peer id"),
        dst: dst.parse().expect("peer id"),
        payload: "payload".into(),
    }
    .encode()
    .to_vec()
}

fn counted(node: &NodeProcess, name: &str, reason: &str) -> f64 {
    metric(&metrics_text(node), name, &[&format!("reason=\"{reason}\"")])
}

#[test]
fn garbage_is_rejected_counted_and_harmless() {
    let mut mesh = TestMesh::new();
    mesh.add("victim", &[], false);
    mesh.add("rogue", &[0], false);
    mesh.wait_route(1, 0, 1, Duration::from_secs(20));
    mesh.wait_route(0, 1, 1, Duration::from_secs(20));
    let (victim, rogue) = (&mesh.nodes[0], &mesh.nodes[1]);
    let send_raw = |bytes: &[u8]| {
        rogue
            .post(
                "/api/v1/debug/frame",
                &json!({ "peer": victim.peer_id, "hex": hex(bytes) }),
            )
            .expect("raw frame queued");
    };
    let expect = |name: &str, reason: &str, count: f64| {
        wait_for(
            Duration::from_secs(5),
            &format!("{name}{{reason={reason}}} = {count}"),
            || (counted(victim, name, reason) >= count).then_some(()),
        );
    };
    let frames = "x0tta_router_frames_rejected_total";
    // After each piece of garbage the link still carries routed traffic.
    let still_routes = |after: &str| {
        let echo = rogue
            .post("/api/v1/ping", &json!({ "to": victim.peer_id }))
            .unwrap_or_else(|e| panic!("echo after {after}: {e}"));
        assert_eq!(echo["hops"], 1);
    };
    still_routes("start");

    send_raw(b"\x01\x00\x10");
    expect(frames, "malformed", 1.0);
    still_routes("malformed frame");
    send_raw(&frame(0, &rogue.peer_id, &victim.peer_id));
    expect(frames, "ttl_expired", 1.0);
    still_routes("ttl 0");
    let stranger = "12D3KooWLbvuS59rLNu53TWZ6kPQEdu4xXm87U71y7PM6mtgkJGF";
    send_raw(&frame(8, &rogue.peer_id, stranger));
    expect(frames, "unknown_destination", 1.0);
    still_routes("unknown destination");
    send_raw(&vec![0u8; 70 * 1024]);
    expect(frames, "oversized", 1.0);
    still_routes("oversized frame");

    let beacons = "x0tta_beacons_rejected_total";
    let raw_beacon = |body: &[u8]| {
        rogue
            .client()
            .request("POST", "/api/v1/debug/beacon")
            .send_bytes(body)
            .expect("raw beacon published");
    };
    raw_beacon(b"\xff\xfe{not a beacon");
    expect(beacons, "malformed", 1.0);
    still_routes("malformed beacon");
    let forged = json!({
        "peer_id": stranger, "name": "x", "addrs": [], "seq": 1, "timestamp_ms": 1, "links": []
    });
    raw_beacon(forged.to_string().as_bytes());
    expect(beacons, "source_mismatch", 1.0);
    still_routes("forged beacon");

    // Invalid UTF-8 in the text API.
    let response = victim
        .client()
        .request("POST", "/api/v1/messages")
        .set("content-type", "application/json")
        .send_bytes(b"{\"to\":\"x\",\"text\":\"\xff\xfe\"}");
    match response {
        Err(ureq::Error::Status(400, body)) => {
            let body: serde_json::Value = body.into_json().expect("JSON error body");
            assert_eq!(body["reason"], "invalid_utf8", "{body}");
            assert!(body["error"].as_str().is_some_and(|e| e.contains("UTF-8")));
        }
        other => panic!("expected 400, got {other:?}"),
    }
    assert_eq!(counted(victim, "x0tta_api_rejected_total", "invalid_utf8"), 1.0);

    assert_eq!(victim.get("/health").expect("health")["status"], "ok");
}
