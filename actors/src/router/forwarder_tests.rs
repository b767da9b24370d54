//! Data-plane tests: garbage, TTL, duplicates, unknown destinations, backup hop.

use super::*;
use crate::router::graph::Route;
use crate::router::reliable;
use tokio::sync::mpsc;

fn forwarder() -> (Forwarder, Arc<Neighbours>) {
    let neighbours = Arc::new(Neighbours::default());
    let config = RouterConfig {
        queue_timeout_ms: 10,
        ..RouterConfig::default()
    };
    (Forwarder::new(PeerId::random(), config, neighbours.clone()), neighbours)
}

fn data(src: PeerId, dst: PeerId, ttl: u8, id: u64) -> Bytes {
    Frame {
        kind: FrameKind::Data,
        ttl,
        hops: 1,
        id,
        src,
        dst,
        payload: Bytes::from_static(b"hi"),
    }
    .encode()
}

/// Installs a table with one route to `dst`.
fn single_route(f: &Forwarder, dst: PeerId, next: PeerId, backup: Option<PeerId>) {
    let route = Route {
        next,
        backup,
        cost: 1,
        hops: 1,
    };
    f.install_table(HashMap::from([(dst, route)]));
}

fn rejected(f: &Forwarder) -> u64 {
    f.counters().rejected.load(Ordering::Relaxed)
}

#[tokio::test]
async fn delivers_once_and_drops_duplicates() {
    let (f, _) = forwarder();
    let src = PeerId::random();
    f.on_frame(src, data(src, f.local, 8, 1)).await;
    f.on_frame(src, data(src, f.local, 8, 1)).await;
    let inbox = f.with_inbox(|i| i.messages());
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0].text, "hi");
    assert_eq!(inbox[0].hops, 1);
    assert_eq!(rejected(&f), 1);
}

#[tokio::test]
async fn malformed_ttl_zero_and_unknown_destination_are_counted() {
    let (f, _) = forwarder();
    let src = PeerId::random();
    f.on_frame(src, Bytes::from_static(b"\x01garbage")).await;
    f.on_frame(src, data(src, f.local, 0, 2)).await;
    f.on_frame(src, data(src, PeerId::random(), 8, 3)).await;
    assert_eq!(rejected(&f), 3);
    assert!(f.with_inbox(|i| i.messages()).is_empty());
}

#[tokio::test]
async fn forwards_with_ttl_and_hops_updated_and_uses_backup_when_primary_is_gone() {
    let (f, neighbours) = forwarder();
    let (src, dst, primary, backup) = (PeerId::random(), PeerId::random(), PeerId::random(), PeerId::random());
    let (tx, mut rx) = mpsc::channel(4);
    neighbours.insert(backup, tx);
    single_route(&f, dst, primary, Some(backup));
    f.on_frame(src, data(src, dst, 8, 9)).await;
    let sent = Frame::decode(rx.try_recv().expect("forwarded over the backup")).expect("valid");
    assert_eq!((sent.ttl, sent.hops, sent.id), (7, 2, 9));
}

#[tokio::test]
async fn last_hop_ttl_expiry_is_rejected() {
    let (f, neighbours) = forwarder();
    let (src, dst, next) = (PeerId::random(), PeerId::random(), PeerId::random());
    let (tx, mut rx) = mpsc::channel(4);
    neighbours.insert(next, tx);
    single_route(&f, dst, next, None);
    f.on_frame(src, data(src, dst, 1, 4)).await;
    assert!(rx.try_recv().is_err(), "a frame with one hop left is not forwarded");
    assert_eq!(rejected(&f), 1);
}

#[tokio::test]
async fn full_queue_drops_instead_of_blocking() {
    let (f, neighbours) = forwarder();
    let (dst, next) = (PeerId::random(), PeerId::random());
    let (tx, _rx) = mpsc::channel(1);
    neighbours.insert(next, tx);
    single_route(&f, dst, next, None);
    assert!(f.send(dst, FrameKind::Data, Bytes::from_static(b"a")).await.is_ok());
    let second = f.send(dst, FrameKind::Data, Bytes::from_static(b"b")).await;
    assert_eq!(second, Err(SendError::Rejected(RejectReason::QueueFull)));
}

#[tokio::test]
async fn a_congested_next_hop_drops_the_heavy_sender_and_queues_the_light_one() {
    let (f, neighbours) = forwarder();
    let (heavy, light, dst) = (PeerId::random(), PeerId::random(), PeerId::random());
    // A next hop that does not drain: its queue of 8 soon is over half full.
    let (tx, mut rx) = mpsc::channel(8);
    neighbours.insert(dst, tx);
    single_route(&f, dst, dst, None);
    for id in 0..40 {
        f.on_frame(heavy, data(heavy, dst, 8, id)).await;
        if id % 10 == 0 {
            f.on_frame(light, data(light, dst, 8, 1_000 + id)).await;
        }
    }
    let mut queued = Vec::new();
    while let Ok(bytes) = rx.try_recv() {
        queued.push(Frame::decode(bytes).expect("valid").src);
    }
    let from_light = queued.iter().filter(|src| **src == light).count();
    assert_eq!(from_light, 4, "every frame of the light sender was queued: {queued:?}");
    assert_eq!(queued.len(), 8, "the queue filled up");
    let shares = f.fair_shares();
    assert_eq!(shares[0].peer, heavy);
    assert_eq!(shares[0].arrived, 40);
    assert!(shares[0].dropped > 0, "the flooder lost frames: {shares:?}");
    assert_eq!(shares[1].dropped, 0);
}

#[tokio::test]
async fn invalid_utf8_is_delivered_lossy_and_flagged() {
    let (f, _) = forwarder();
    let src = PeerId::random();
    let frame = Frame {
        kind: FrameKind::Data,
        ttl: 4,
        hops: 1,
        id: 5,
        src,
        dst: f.local,
        payload: Bytes::from_static(b"\xff\xfe"),
    };
    f.on_frame(src, frame.encode()).await;
    let inbox = f.with_inbox(|i| i.messages());
    assert!(!inbox[0].utf8);
}

#[tokio::test]
async fn echo_to_self_and_oversized_payload() {
    let (f, _) = forwarder();
    let reply = f.echo(f.local, Duration::from_secs(1)).await.expect("self echo");
    assert_eq!(reply.hops, 0);
    let big = Bytes::from(vec![0u8; f.config.max_payload_bytes + 1]);
    assert!(matches!(
        f.send(f.local, FrameKind::Data, big).await,
        Err(SendError::PayloadTooLarge { .. })
    ));
}

#[tokio::test]
async fn probe_latency_is_measured_from_the_embedded_send_time() {
    let (f, _) = forwarder();
    let src = PeerId::random();
    let mut payload = BytesMut::new();
    payload.put_u128(unix_nanos() - 5_000_000);
    payload.resize(1024, 0);
    let frame = Frame {
        kind: FrameKind::Probe,
        ttl: 4,
        hops: 1,
        id: 11,
        src,
        dst: f.local,
        payload: payload.freeze(),
    };
    f.on_frame(src, frame.encode()).await;
    let summary = f.with_inbox(|i| i.probe_summary());
    assert_eq!(summary.count, 1);
    assert!((5_000..6_000).contains(&summary.p50_us), "{summary:?}");
}

#[tokio::test]
async fn reliable_message_is_retransmitted_until_acknowledged() {
    let (f, neighbours) = forwarder();
    let (dst, next) = (PeerId::random(), PeerId::random());
    let (tx, mut rx) = mpsc::channel(16);
    neighbours.insert(next, tx);
    single_route(&f, dst, next, None);
    let id = f.send_reliable(dst, b"important").await.expect("sent");
    let first = Frame::decode(rx.try_recv().expect("first copy")).expect("frame");
    assert_eq!(first.kind, FrameKind::Reliable);
    assert_eq!(
        reliable::decode(&first.payload),
        Some((id, Bytes::from_static(b"important")))
    );

    let f = Arc::new(f);
    let task = tokio::spawn(f.clone().run_retransmissions(Duration::from_millis(10)));
    let again = tokio::time::timeout(Duration::from_secs(2), rx.recv())
        .await
        .expect("retransmitted");
    let again = Frame::decode(again.expect("frame")).expect("frame");
    assert_ne!(again.id, first.id, "each copy is a new frame");
    assert_eq!(reliable::decode(&again.payload).map(|(i, _)| i), Some(id));

    // The destination acknowledges: retransmissions stop.
    let mut ack = BytesMut::new();
    ack.put_u64(id);
    let ack = Frame {
        kind: FrameKind::Ack,
        ttl: 4,
        hops: 1,
        id: 99,
        src: dst,
        dst: f.local,
        payload: ack.freeze(),
    };
    f.on_frame(next, ack.encode()).await;
    assert_eq!(f.reliable_pending(), 0);
    task.abort();
}

#[tokio::test]
async fn reliable_copies_are_delivered_once_and_each_acknowledged() {
    let (f, neighbours) = forwarder();
    let src = PeerId::random();
    let (tx, mut rx) = mpsc::channel(16);
    neighbours.insert(src, tx);
    single_route(&f, src, src, None);
    for frame_id in [1, 2] {
        let copy = Frame {
            kind: FrameKind::Reliable,
            ttl: 4,
            hops: 1,
            id: frame_id,
            src,
            dst: f.local,
            payload: reliable::encode(42, b"once"),
        };
        f.on_frame(src, copy.encode()).await;
    }
    let inbox = f.with_inbox(|i| i.messages());
    assert_eq!(inbox.len(), 1);
    assert_eq!((inbox[0].id, inbox[0].text.as_str()), (42, "once"));
    for _ in 0..2 {
        let ack = Frame::decode(rx.try_recv().expect("ack")).expect("frame");
        assert_eq!(
            (ack.kind, ack.payload.as_ref()),
            (FrameKind::Ack, &42u64.to_be_bytes()[..])
        );
    }
}
