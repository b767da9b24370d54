use std::sync::Arc;
use std::time::Duration;

use libp2p::identity::Keypair;
use parking_lot::Mutex;
use x0tta6bl4_pqc::xwing::operations_on_this_thread;
use x0tta6bl4_pqc::{PqIdentity, PqSeeds, PqcMode, Reject, Suite};

use super::{PqcConfig, Sessions};
use crate::alert::{Alert, AlertSink, LogAlertSink};
use crate::router::frame::FrameKind;

fn node(resend_ms: u64) -> Sessions {
    let config = PqcConfig {
        init_resend_ms: resend_ms,
        ..PqcConfig::default()
    };
    node_with(PqcMode::Required, config, Arc::new(LogAlertSink), None)
}

fn node_with(mode: PqcMode, config: PqcConfig, alerts: Arc<dyn AlertSink>, bindings: Option<sled::Tree>) -> Sessions {
    let identity = Arc::new(PqIdentity::new(Keypair::generate_ed25519(), &PqSeeds::generate()));
    Sessions::new(identity, mode, config, alerts, bindings)
}

/// Alerts emitted, kept for the test to read.
#[derive(Default)]
struct Recorded(Mutex<Vec<Alert>>);

impl AlertSink for Recorded {
    fn emit(&self, alert: Alert) {
        self.0.lock().push(alert);
    }
}

/// Runs `a`'s handshake with `b` to the end by handing each answer over (no
/// transit); returns the frames `a` flushed, `(id, sealed)`.
fn complete(a: &Sessions, b: &Sessions, init: bytes::Bytes) -> Vec<(u64, bytes::Bytes)> {
    let mut to_b = init;
    loop {
        let answer = b.on_handshake(peer_id(a), &to_b).expect("b answers").answer;
        let step = a
            .on_handshake(peer_id(b), &answer.expect("an answer"))
            .expect("a goes on");
        let next = step.answer.expect("a sends on");
        if !step.flush.is_empty() || x0tta6bl4_pqc::MessageKind::of(&next) == Ok(x0tta6bl4_pqc::MessageKind::Finish) {
            b.on_handshake(peer_id(a), &next).expect("b completes");
            return step.flush;
        }
        to_b = next;
    }
}

fn peer_id(sessions: &Sessions) -> libp2p::PeerId {
    sessions.local
}

/// `message` with its last byte (inside the signature) changed.
fn with_last_byte_flipped(message: &[u8]) -> Vec<u8> {
    let mut tampered = message.to_vec();
    if let Some(last) = tampered.last_mut() {
        *last ^= 1;
    }
    tampered
}

/// Each learns the other's keys; `a` queues a message for `b`, which starts a
/// handshake. Returns the Init.
fn introduce_and_start(a: &Sessions, b: &Sessions, id: u64, payload: &'static str) -> bytes::Bytes {
    a.learn(peer_id(b), &b.identity().binding().clone());
    b.learn(peer_id(a), &a.identity().binding().clone());
    a.outbound(peer_id(b), FrameKind::Data, id, payload.into())
        .expect("queued")
        .handshake
        .expect("an init")
}

#[test]
fn an_unanswered_init_is_due_again_after_the_resend_interval() {
    let (a, b) = (node(0), node(0));
    let b_binding = b.identity().binding().clone();
    a.learn(peer_id(&b), &b_binding);
    let out = a
        .outbound(peer_id(&b), FrameKind::Data, 1, "hello".into())
        .expect("queued");
    let init = out.handshake.expect("an init");
    let due = a.due_handshakes();
    assert_eq!(due, vec![(peer_id(&b), init)]);
}

#[test]
fn an_init_is_not_due_before_the_resend_interval() {
    let (a, b) = (node(60_000), node(60_000));
    a.learn(peer_id(&b), &b.identity().binding().clone());
    a.outbound(peer_id(&b), FrameKind::Data, 1, "hello".into())
        .expect("queued");
    assert!(a.due_handshakes().is_empty());
}

#[test]
fn a_responder_that_has_not_learnt_the_initiator_answers_once_it_has() {
    let (a, b) = (node(0), node(0));
    a.learn(peer_id(&b), &b.identity().binding().clone());
    let init = a
        .outbound(peer_id(&b), FrameKind::Data, 7, "hello".into())
        .expect("queued")
        .handshake
        .expect("an init");
    let refused = b.on_handshake(peer_id(&a), &init).err();
    assert_eq!(refused, Some(Reject::BindingUnknown));

    b.learn(peer_id(&a), &a.identity().binding().clone());
    let (_, again) = a.due_handshakes().pop().expect("the init again");
    let reply = b
        .on_handshake(peer_id(&a), &again)
        .expect("a reply")
        .answer
        .expect("reply");
    let step = a.on_handshake(peer_id(&b), &reply).expect("finish");
    assert_eq!(step.flush.len(), 1, "the queued message goes out sealed");
    let finish = step.answer.expect("finish");
    b.on_handshake(peer_id(&a), &finish).expect("session");
    let (id, sealed) = &step.flush[0];
    let opened = b
        .open(peer_id(&a), *id, 1, sealed.clone())
        .expect("opens")
        .expect("not held");
    assert_eq!(&opened.payload[..], b"hello");
}

#[test]
fn a_forged_reply_does_not_end_the_handshake_it_claims_to_answer() {
    let (a, b) = (node(0), node(0));
    let init = introduce_and_start(&a, &b, 3, "kept");
    // Anyone can send a frame claiming to come from B.
    let forged = [2u8];
    assert!(
        a.on_handshake(peer_id(&b), &forged).is_err(),
        "a one-byte Reply is refused"
    );
    let reply = b
        .on_handshake(peer_id(&a), &init)
        .expect("reply")
        .answer
        .expect("reply");
    let tampered = with_last_byte_flipped(&reply);
    assert!(
        a.on_handshake(peer_id(&b), &tampered).is_err(),
        "a tampered Reply is refused"
    );
    let step = a
        .on_handshake(peer_id(&b), &reply)
        .expect("B's real Reply completes it");
    assert_eq!(step.flush.len(), 1, "the frame queued before the forgeries goes out");
    let finish = step.answer.expect("finish");
    // The same on B's side: a Finish from another source, or a tampered one,
    // leaves B waiting for A's own.
    let stranger = libp2p::PeerId::random();
    assert!(
        b.on_handshake(stranger, &finish).is_err(),
        "a Finish from elsewhere is refused"
    );
    let tampered = with_last_byte_flipped(&finish);
    assert!(
        b.on_handshake(peer_id(&a), &tampered).is_err(),
        "a tampered Finish is refused"
    );
    b.on_handshake(peer_id(&a), &finish)
        .expect("A's real Finish completes it");
    let (id, sealed) = &step.flush[0];
    let opened = b
        .open(peer_id(&a), *id, 1, sealed.clone())
        .expect("opens")
        .expect("not held");
    assert_eq!(&opened.payload[..], b"kept");
}

#[test]
fn a_lost_finish_is_sent_again_and_releases_the_frames_held_for_it() {
    let (a, b) = (node(0), node(0));
    let init = introduce_and_start(&a, &b, 9, "held");
    let reply = b
        .on_handshake(peer_id(&a), &init)
        .expect("reply")
        .answer
        .expect("reply");
    let step = a.on_handshake(peer_id(&b), &reply).expect("finish");
    let (id, sealed) = step.flush[0].clone();
    // The Finish is lost; the sealed message arrives and is held.
    assert!(b.open(peer_id(&a), id, 2, sealed).expect("held").is_none());

    let (to, finish) = a.due_handshakes().into_iter().next().expect("the finish again");
    assert_eq!(to, peer_id(&b));
    let released = b.on_handshake(peer_id(&a), &finish).expect("completes");
    assert_eq!(released.opened.len(), 1);
    assert_eq!(&released.opened[0].payload[..], b"held");
    // A repeated Finish for a complete session is harmless.
    assert!(b.on_handshake(peer_id(&a), &finish).is_ok());

    // Once a frame from the responder opens, the session is confirmed: no more Finishes.
    let answer = b
        .outbound(peer_id(&a), FrameKind::Data, 10, "back".into())
        .expect("sealed")
        .sealed
        .expect("b has the session");
    a.open(peer_id(&b), 10, 2, answer).expect("opens").expect("delivered");
    assert!(a.due_handshakes().is_empty());
}

#[test]
fn a_missing_binding_gives_a_hybrid_session_and_the_binding_outlives_a_restart() {
    let store = crate::store::Store::temporary().expect("store");
    let tree = || Some(store.tree(super::bindings::TREE).expect("tree"));
    let a = node_with(PqcMode::Preferred, PqcConfig::default(), Arc::new(LogAlertSink), tree());
    let b = node_with(PqcMode::Preferred, PqcConfig::default(), Arc::new(LogAlertSink), None);
    b.learn(peer_id(&a), &a.identity().binding().clone());
    // A has not learnt B's binding (a start race, an eviction): v1 sent a
    // classical-only offer and B accepted it. Now A asks; B answers with its
    // binding; A starts again hybrid.
    let init = a
        .outbound(peer_id(&b), FrameKind::Data, 1, "hello".into())
        .expect("queued")
        .handshake
        .expect("an init");
    assert_eq!(init[2], 3, "offer: ask");
    let flushed = complete(&a, &b, init);
    assert_eq!(flushed.len(), 1, "the queued message went out sealed");
    assert_eq!(a.suite_with(&peer_id(&b)), Some(Suite::X25519MlKem768));
    assert_eq!(b.suite_with(&peer_id(&a)), Some(Suite::X25519MlKem768));
    let (id, sealed) = flushed[0].clone();
    let opened = b.open(peer_id(&a), id, 1, sealed).expect("opens").expect("delivered");
    assert_eq!(&opened.payload[..], b"hello");
    // Restarted, A still knows B is PQ-capable: its first Init is hybrid.
    let a_again = Sessions::new(
        a.identity(),
        PqcMode::Preferred,
        PqcConfig::default(),
        Arc::new(LogAlertSink),
        tree(),
    );
    let init = a_again
        .outbound(peer_id(&b), FrameKind::Data, 2, "again".into())
        .expect("queued")
        .handshake
        .expect("an init");
    assert_eq!(init[2], 2, "offer: hybrid only");
}

#[test]
fn a_path_that_drops_handshake_frames_stops_sealing_after_three_rekey_intervals() {
    let config = PqcConfig {
        rekey_after_secs: 1,
        init_resend_ms: 60_000,
        ..PqcConfig::default()
    };
    let a = node_with(PqcMode::Required, config.clone(), Arc::new(LogAlertSink), None);
    let b = node_with(PqcMode::Required, config, Arc::new(LogAlertSink), None);
    let init = introduce_and_start(&a, &b, 1, "first");
    let flushed = complete(&a, &b, init);
    let (id, early) = flushed[0].clone();
    std::thread::sleep(Duration::from_millis(1_100));
    // Past the rekey interval: still sealed, and a rekey Init goes out (and is
    // dropped by the transit node).
    let out = a
        .outbound(peer_id(&b), FrameKind::Data, 2, "stale".into())
        .expect("sent");
    assert!(out.sealed.is_some() && out.handshake.is_some());
    std::thread::sleep(Duration::from_millis(2_000));
    // Three intervals on: v1 kept sealing with this key for as long as the
    // transit node kept dropping handshakes. Now nothing more is sealed with it,
    // and the other end refuses frames of it.
    let out = a
        .outbound(peer_id(&b), FrameKind::Data, 3, "late".into())
        .expect("queued");
    assert!(out.sealed.is_none(), "no longer sealed with the expired session");
    assert_eq!(b.open(peer_id(&a), id, 1, early).err(), Some(Reject::SessionExpired));
}

#[test]
fn a_replaced_session_opens_frames_for_a_grace_and_an_unfinished_handshake_is_swept() {
    let config = PqcConfig {
        rekey_after_secs: 1,
        handshake_timeout_ms: 200,
        init_resend_ms: 60_000,
        ..PqcConfig::default()
    };
    let a = node_with(PqcMode::Required, config.clone(), Arc::new(LogAlertSink), None);
    let b = node_with(PqcMode::Required, config, Arc::new(LogAlertSink), None);
    let init = introduce_and_start(&a, &b, 1, "first");
    complete(&a, &b, init);
    let old = a
        .outbound(peer_id(&b), FrameKind::Data, 2, "old".into())
        .expect("sealed");
    std::thread::sleep(Duration::from_millis(1_100));
    let out = a.outbound(peer_id(&b), FrameKind::Data, 3, "x".into()).expect("sealed");
    complete(&a, &b, out.handshake.expect("a rekey init"));
    let old_frame = old.sealed.expect("sealed");
    assert!(b.open(peer_id(&a), 2, 1, old_frame.clone()).is_ok(), "within the grace");
    // An Init B answers whose Finish never comes.
    let c = node_with(PqcMode::Required, PqcConfig::default(), Arc::new(LogAlertSink), None);
    let init = introduce_and_start(&c, &b, 1, "never finished");
    b.on_handshake(peer_id(&c), &init).expect("b answers");
    assert_eq!(b.responding(), 1);
    std::thread::sleep(Duration::from_millis(1_100));
    assert!(b.due_handshakes().is_empty());
    assert_eq!(b.responding(), 0, "swept with the keys it derived");
    let again = a.outbound(peer_id(&b), FrameKind::Data, 4, "y".into()).expect("sealed");
    assert!(b.open(peer_id(&a), 4, 1, again.sealed.expect("sealed")).is_ok());
    let replay_of_old = b.open(peer_id(&a), 2, 1, old_frame);
    assert_eq!(
        replay_of_old.err(),
        Some(Reject::UnknownSession),
        "the old session is gone"
    );
}

#[test]
fn a_forged_init_from_another_source_costs_no_kem_work_and_is_counted() {
    let (a, b, mallory) = (node(0), node(0), node(0));
    let init = introduce_and_start(&a, &b, 1, "x");
    let before = operations_on_this_thread();
    assert_eq!(
        b.on_handshake(peer_id(&mallory), &init).err(),
        Some(Reject::SourceMismatch)
    );
    assert_eq!(operations_on_this_thread(), before, "no KEM work");
}

#[test]
fn forged_replies_raise_no_alert() {
    let alerts = Arc::new(Recorded::default());
    let a = node_with(PqcMode::Required, PqcConfig::default(), alerts.clone(), None);
    let b = node(0);
    let init = introduce_and_start(&a, &b, 1, "x");
    let reply = b
        .on_handshake(peer_id(&a), &init)
        .expect("reply")
        .answer
        .expect("reply");
    // v1 compared offer and suite before the signature: a forged Reply with
    // another offer raised a critical "downgrade" alert naming B.
    let mut other_offer = reply.to_vec();
    other_offer[18] = 1;
    let mut bad_mac = reply.to_vec();
    *bad_mac.last_mut().expect("mac") ^= 1;
    for forged in [other_offer, bad_mac] {
        assert!(a.on_handshake(peer_id(&b), &forged).is_err());
    }
    assert!(alerts.0.lock().is_empty(), "no alert for unauthenticated failures");
    a.on_handshake(peer_id(&b), &reply).expect("the real one completes");
}

#[test]
fn a_frame_whose_header_id_was_changed_fails_to_open() {
    let (a, b) = (node(0), node(0));
    let init = introduce_and_start(&a, &b, 1, "x");
    complete(&a, &b, init);
    let sealed = a
        .outbound(peer_id(&b), FrameKind::Data, 7, "moved".into())
        .expect("sealed")
        .sealed
        .expect("sealed");
    assert_eq!(
        b.open(peer_id(&a), 8, 1, sealed.clone()).err(),
        Some(Reject::DecryptFailed)
    );
    assert!(b.open(peer_id(&a), 7, 1, sealed).expect("opens").is_some());
}

#[test]
fn simultaneous_handshakes_leave_both_ends_on_the_same_session() {
    let config = PqcConfig {
        handshake_timeout_ms: 200,
        ..PqcConfig::default()
    };
    let a = node_with(PqcMode::Required, config.clone(), Arc::new(LogAlertSink), None);
    let b = node_with(PqcMode::Required, config, Arc::new(LogAlertSink), None);
    let init_a = introduce_and_start(&a, &b, 1, "from a");
    let init_b = b
        .outbound(peer_id(&a), FrameKind::Data, 2, "from b".into())
        .expect("queued")
        .handshake
        .expect("an init");
    // The Inits cross; each end answers the other's and finishes its own.
    let reply_to_a = b
        .on_handshake(peer_id(&a), &init_a)
        .expect("reply")
        .answer
        .expect("reply");
    let reply_to_b = a
        .on_handshake(peer_id(&b), &init_b)
        .expect("reply")
        .answer
        .expect("reply");
    let step_a = a.on_handshake(peer_id(&b), &reply_to_a).expect("finish");
    let step_b = b.on_handshake(peer_id(&a), &reply_to_b).expect("finish");
    b.on_handshake(peer_id(&a), &step_a.answer.expect("finish"))
        .expect("complete");
    a.on_handshake(peer_id(&b), &step_b.answer.expect("finish"))
        .expect("complete");
    let (id, sealed) = step_a.flush[0].clone();
    assert!(b.open(peer_id(&a), id, 1, sealed).expect("opens").is_some());
    // Past the grace, the session each end left out is gone: had they kept
    // different ones, neither could open the other's frames now.
    std::thread::sleep(Duration::from_millis(1_100));
    a.due_handshakes();
    b.due_handshakes();
    let there = a
        .outbound(peer_id(&b), FrameKind::Data, 3, "there".into())
        .expect("sealed");
    let opened = b
        .open(peer_id(&a), 3, 1, there.sealed.expect("sealed"))
        .expect("b opens a's frame");
    assert_eq!(&opened.expect("delivered").payload[..], b"there");
    let back = b
        .outbound(peer_id(&a), FrameKind::Data, 4, "back".into())
        .expect("sealed");
    let opened = a
        .open(peer_id(&b), 4, 1, back.sealed.expect("sealed"))
        .expect("a opens b's frame");
    assert_eq!(&opened.expect("delivered").payload[..], b"back");
}
