use std::sync::Arc;

use libp2p::identity::Keypair;
use x0tta6bl4_pqc::{PqIdentity, PqSeeds, PqcMode, Reject};

use super::{PqcConfig, Sessions};
use crate::alert::LogAlertSink;
use crate::router::frame::FrameKind;

fn node(resend_ms: u64) -> Sessions {
    let identity = Arc::new(PqIdentity::new(Keypair::generate_ed25519(), &PqSeeds::generate()));
    let config = PqcConfig {
        init_resend_ms: resend_ms,
        ..PqcConfig::default()
    };
    Sessions::new(identity, PqcMode::Required, config, Arc::new(LogAlertSink))
}

fn peer_id(sessions: &Sessions) -> libp2p::PeerId {
    sessions.identity.peer_id()
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
    a.learn(peer_id(b), &b.identity.binding().clone());
    b.learn(peer_id(a), &a.identity.binding().clone());
    a.outbound(peer_id(b), FrameKind::Data, id, payload.into())
        .expect("queued")
        .handshake
        .expect("an init")
}

#[test]
fn an_unanswered_init_is_due_again_after_the_resend_interval() {
    let (a, b) = (node(0), node(0));
    let b_binding = b.identity.binding().clone();
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
    a.learn(peer_id(&b), &b.identity.binding().clone());
    a.outbound(peer_id(&b), FrameKind::Data, 1, "hello".into())
        .expect("queued");
    assert!(a.due_handshakes().is_empty());
}

#[test]
fn a_responder_that_has_not_learnt_the_initiator_answers_once_it_has() {
    let (a, b) = (node(0), node(0));
    a.learn(peer_id(&b), &b.identity.binding().clone());
    let init = a
        .outbound(peer_id(&b), FrameKind::Data, 7, "hello".into())
        .expect("queued")
        .handshake
        .expect("an init");
    let refused = b.on_handshake(peer_id(&a), &init).err();
    assert_eq!(refused, Some(Reject::BindingUnknown));

    b.learn(peer_id(&a), &a.identity.binding().clone());
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
