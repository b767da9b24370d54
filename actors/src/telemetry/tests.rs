//! The telemetry actor without XDP: snapshots stream to subscribers, the
//! quarantine is recorded (unenforced) and expires.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Context, Handler};
use parking_lot::Mutex;

use super::*;

/// Collects the snapshots it receives.
struct Collector(Arc<Mutex<Vec<Arc<TelemetrySnapshot>>>>);

impl Actor for Collector {
    type Context = Context<Self>;
}

impl Handler<TelemetryUpdate> for Collector {
    type Result = ();

    fn handle(&mut self, TelemetryUpdate(snapshot): TelemetryUpdate, _: &mut Context<Self>) {
        self.0.lock().push(snapshot);
    }
}

fn loopback_without_xdp() -> TelemetryConfig {
    TelemetryConfig {
        interval_ms: 20,
        xdp: false,
        interfaces: vec!["lo".into(), "lo".into()],
        ..TelemetryConfig::default()
    }
}

#[actix_rt::test]
async fn subscribers_receive_snapshots_with_the_reason_xdp_is_off() {
    let telemetry = TelemetryActor::new(loopback_without_xdp()).start();
    let received = Arc::new(Mutex::new(Vec::new()));
    let collector = Collector(received.clone()).start();
    telemetry.do_send(Subscribe(collector.recipient()));
    actix_rt::time::sleep(Duration::from_millis(200)).await;

    let snapshots = received.lock().clone();
    assert!(
        snapshots.len() >= 3,
        "got {} snapshots in 200 ms at 20 ms",
        snapshots.len()
    );
    let last = snapshots.last().expect("a snapshot");
    assert!(!last.xdp.enabled);
    assert_eq!(
        last.xdp.reason.as_deref(),
        Some("lo: XDP disabled by configuration (telemetry.xdp = false)")
    );
    assert_eq!(last.interfaces.len(), 1, "lo listed twice is watched once");
    let lo = &last.interfaces[0];
    assert_eq!(lo.source, snapshot::CounterSource::InterfaceStats);
    assert!(lo.kernel.is_some(), "loopback has kernel counters");
    assert!(last.process.rss_bytes > 0);
    let latest = telemetry
        .send(GetTelemetry)
        .await
        .expect("answers")
        .expect("a snapshot");
    assert!(latest.taken_unix_ms >= last.taken_unix_ms);
}

#[actix_rt::test]
async fn quarantine_without_xdp_is_recorded_unenforced_and_expires() {
    let telemetry = TelemetryActor::new(loopback_without_xdp()).start();
    let addr: IpAddr = "10.77.0.9".parse().expect("address");
    let views = telemetry
        .send(Quarantine {
            addrs: vec![addr],
            peer: Some("peer-x".into()),
            reason: "test".into(),
            ttl: Some(Duration::from_millis(100)),
        })
        .await
        .expect("answers")
        .expect("quarantined");
    assert_eq!(views.len(), 1);
    assert!(!views[0].enforced, "no XDP, so not enforced");
    assert_eq!(views[0].peer.as_deref(), Some("peer-x"));
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    let left = telemetry.send(ListQuarantine).await.expect("answers");
    assert!(left.is_empty(), "expired after its TTL: {left:?}");
    let released = telemetry.send(Release(vec![addr])).await.expect("answers");
    assert!(released.is_empty(), "nothing left to release");
}
