//! The handshake and sessions end to end, and every way they refuse input.

use std::time::{Duration, Instant};

use libp2p::identity::Keypair;
use x0tta6bl4_pqc::cookie::CookieJar;
use x0tta6bl4_pqc::identity::{KEM_CIPHERTEXT_LEN, KEM_PUBLIC_LEN};
use x0tta6bl4_pqc::replay::WINDOW;
use x0tta6bl4_pqc::{
    Initiator, KeyBinding, PeerKeys, PqIdentity, PqSeeds, PqcMode, Reject, RekeyPolicy, Responder, Response, Session,
    Suite,
};

fn node() -> PqIdentity {
    PqIdentity::new(Keypair::generate_ed25519(), &PqSeeds::generate())
}

/// Keys of `who` as a peer learns them: through its binding.
fn keys_of(who: &PqIdentity) -> PeerKeys {
    who.binding().verify(&who.peer_id()).expect("own binding verifies")
}

fn reply_of(response: Response) -> (Box<Responder>, Vec<u8>) {
    match response {
        Response::Reply { responder, reply } => (responder, reply),
        Response::Cookie { reason, .. } => panic!("unexpected cookie demand: {reason}"),
    }
}

/// A full handshake between `i` and `r` under the given modes.
fn handshake(i: &PqIdentity, r: &PqIdentity, i_mode: PqcMode, r_mode: PqcMode) -> Result<(Session, Session), Reject> {
    let now = Instant::now();
    let (mut initiator, init) = Initiator::start(i, keys_of(r), i_mode)?;
    let i_keys = keys_of(i);
    let (mut responder, reply) = reply_of(Responder::respond(r, &init, r_mode, |_| Some(i_keys), None, now)?);
    let (i_session, finish) = initiator.finish(i, &reply, now)?;
    let r_session = responder.complete(&finish, now)?;
    Ok((i_session, r_session))
}

#[test]
fn a_full_hybrid_handshake_gives_working_sessions_both_ways() {
    let (a, b) = (node(), node());
    let (mut ab, mut ba) = handshake(&a, &b, PqcMode::Required, PqcMode::Required).expect("handshake");
    assert_eq!(ab.suite, Suite::X25519MlKem768);
    assert_eq!((ab.peer, ba.peer), (b.peer_id(), a.peer_id()));
    assert_eq!((ab.local_id, ab.remote_id), (ba.remote_id, ba.local_id));
    for i in 0..3u8 {
        let frame = ab.seal(&[i; 100]);
        assert_eq!(ba.open(&frame), Ok(vec![i; 100]));
        let back = ba.seal(b"pong");
        assert_eq!(ab.open(&back).as_deref(), Ok(&b"pong"[..]));
    }
    let frame = ab.seal(b"secret payload");
    assert!(
        !frame.windows(6).any(|w| w == b"secret"),
        "the payload is not readable in the frame"
    );
}

#[test]
fn a_tampered_frame_is_refused() {
    let (a, b) = (node(), node());
    let (mut ab, mut ba) = handshake(&a, &b, PqcMode::Required, PqcMode::Required).expect("handshake");
    let frame = ab.seal(b"hello");
    for at in [0usize, 9, 20, frame.len() - 1] {
        let mut bad = frame.clone();
        bad[at] ^= 0x40;
        let expected = if at < 8 {
            Reject::UnknownSession
        } else {
            Reject::DecryptFailed
        };
        assert_eq!(ba.open(&bad), Err(expected), "byte {at} flipped");
    }
    assert_eq!(ba.open(&frame[..10]), Err(Reject::Malformed("sealed frame")));
    assert_eq!(
        ba.open(&frame).as_deref(),
        Ok(&b"hello"[..]),
        "the original still opens"
    );
}

#[test]
fn a_replayed_frame_and_one_older_than_the_window_are_refused() {
    let (a, b) = (node(), node());
    let (mut ab, mut ba) = handshake(&a, &b, PqcMode::Required, PqcMode::Required).expect("handshake");
    let first = ab.seal(b"one");
    assert!(ba.open(&first).is_ok());
    assert_eq!(ba.open(&first), Err(Reject::Replayed));
    let held_back = ab.seal(b"late");
    let frames: Vec<Vec<u8>> = (0..WINDOW + 5).map(|_| ab.seal(b"x")).collect();
    let newest = frames.last().expect("frames");
    assert!(ba.open(newest).is_ok());
    assert_eq!(ba.open(&held_back), Err(Reject::TooOld));
    assert!(ba.open(&frames[10]).is_ok(), "reordered inside the window is fine");
}

#[test]
fn a_wrong_ml_dsa_key_fails_the_signature_check() {
    let (a, b, mallory) = (node(), node(), node());
    let now = Instant::now();
    // B believes A's ML-DSA key is Mallory's (a binding mix-up): A's Finish fails.
    let (mut initiator, init) = Initiator::start(&a, keys_of(&b), PqcMode::Required).expect("start");
    let mut confused = keys_of(&a);
    confused.pq = keys_of(&mallory).pq;
    let (mut responder, reply) =
        reply_of(Responder::respond(&b, &init, PqcMode::Required, |_| Some(confused), None, now).expect("reply"));
    let (_, finish) = initiator.finish(&a, &reply, now).expect("A accepts B");
    assert_eq!(responder.complete(&finish, now).err(), Some(Reject::BadSignature));

    // A expects B, but Mallory answers in B's place: A refuses the Reply.
    let (mut initiator, init) = Initiator::start(&a, keys_of(&b), PqcMode::Required).expect("start");
    let a_keys = keys_of(&a);
    let (_, reply) =
        reply_of(Responder::respond(&mallory, &init, PqcMode::Required, |_| Some(a_keys), None, now).expect("reply"));
    assert_eq!(initiator.finish(&a, &reply, now).err(), Some(Reject::BadSignature));
}

#[test]
fn tampered_replies_and_finishes_fail_and_the_real_ones_still_complete() {
    let (a, b) = (node(), node());
    let now = Instant::now();
    let (mut initiator, init) = Initiator::start(&a, keys_of(&b), PqcMode::Required).expect("start");
    let a_keys = keys_of(&a);
    let (mut responder, reply) =
        reply_of(Responder::respond(&b, &init, PqcMode::Required, |_| Some(a_keys), None, now).expect("reply"));
    // Flip a byte of the ML-KEM ciphertext, which follows the X25519 key.
    let mut tampered = reply.clone();
    let at = tampered.len() - 2 - 3309 - KEM_CIPHERTEXT_LEN / 2;
    tampered[at] ^= 1;
    assert_eq!(initiator.finish(&a, &tampered, now).err(), Some(Reject::BadSignature));
    // The forgery did not spend the initiator: B's real Reply still completes
    // the handshake, and only once.
    let (_, finish) = initiator
        .finish(&a, &reply, now)
        .expect("the real reply after a forged one");
    assert_eq!(initiator.finish(&a, &reply, now).err(), Some(Reject::UnknownHandshake));
    // Likewise on B's side with A's Finish.
    let mut forged = finish.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert_eq!(responder.complete(&forged, now).err(), Some(Reject::BadSignature));
    responder
        .complete(&finish, now)
        .expect("the real finish after a forged one");
    assert_eq!(responder.complete(&finish, now).err(), Some(Reject::UnknownHandshake));
}

/// The Init with its post-quantum offer stripped, as an attacker in the path would.
fn strip_pq_offer(init: &[u8]) -> Vec<u8> {
    let mut stripped = init.to_vec();
    stripped[2] = 1; // offer: X25519 only
    let end = init.len() - 1; // cookie flag
    stripped.drain(end - KEM_PUBLIC_LEN - KEM_CIPHERTEXT_LEN..end);
    stripped
}

#[test]
fn a_stripped_pq_offer_is_refused_under_required_and_seen_as_downgrade_otherwise() {
    let (a, b) = (node(), node());
    let now = Instant::now();
    let (mut initiator, init) = Initiator::start(&a, keys_of(&b), PqcMode::Preferred).expect("start");
    let stripped = strip_pq_offer(&init);
    let a_keys = keys_of(&a);
    let refused = Responder::respond(&b, &stripped, PqcMode::Required, |_| Some(a_keys.clone()), None, now);
    assert_eq!(refused.err(), Some(Reject::PqRequired));

    let (_, reply) =
        reply_of(Responder::respond(&b, &stripped, PqcMode::Preferred, |_| Some(a_keys), None, now).expect("reply"));
    assert_eq!(initiator.finish(&a, &reply, now).err(), Some(Reject::Downgrade));
}

#[test]
fn a_classical_only_peer_is_refused_under_required_and_falls_back_under_preferred() {
    let (a, b) = (node(), node());
    assert_eq!(
        handshake(&a, &b, PqcMode::Off, PqcMode::Required).err(),
        Some(Reject::PqRequired)
    );
    assert_eq!(
        handshake(&b, &a, PqcMode::Required, PqcMode::Off).err(),
        Some(Reject::PqRequired)
    );
    let (mut ab, mut ba) = handshake(&a, &b, PqcMode::Off, PqcMode::Preferred).expect("fallback");
    assert_eq!(ab.suite, Suite::X25519);
    assert!(PqcMode::Preferred.is_fallback(ba.suite));
    assert_eq!(ba.open(&ab.seal(b"classical")).as_deref(), Ok(&b"classical"[..]));
    // A peer with no binding at all gets the classical suite from a preferring node.
    let (initiator, _) = Initiator::start(
        &a,
        PeerKeys::classical(b.binding().public_key.clone()),
        PqcMode::Preferred,
    )
    .expect("start");
    assert_eq!(initiator.peer(), &b.peer_id());
}

#[test]
fn under_load_an_init_needs_a_cookie_before_any_kem_work() {
    let (a, b) = (node(), node());
    let now = Instant::now();
    let mut jar = CookieJar::new(now, Duration::from_secs(120));
    let a_keys = keys_of(&a);
    let (mut initiator, init) = Initiator::start(&a, keys_of(&b), PqcMode::Required).expect("start");
    let cookie_message = match Responder::respond(&b, &init, PqcMode::Required, |_| None, Some(&mut jar), now) {
        Ok(Response::Cookie { message, reason }) => {
            assert_eq!(reason, Reject::CookieRequired);
            message
        }
        _ => panic!("expected a cookie demand (and no key lookup)"),
    };
    let again = initiator.init_with_cookie(&cookie_message).expect("cookie accepted");
    let mut forged = again.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    match Responder::respond(&b, &forged, PqcMode::Required, |_| None, Some(&mut jar), now) {
        Ok(Response::Cookie { reason, .. }) => assert_eq!(reason, Reject::BadCookie),
        _ => panic!("a forged cookie gets another cookie demand"),
    }
    let (mut responder, reply) = reply_of(
        Responder::respond(&b, &again, PqcMode::Required, |_| Some(a_keys), Some(&mut jar), now).expect("reply"),
    );
    let (mut ab, finish) = initiator.finish(&a, &reply, now).expect("finish");
    let mut ba = responder.complete(&finish, now).expect("complete");
    assert_eq!(ba.open(&ab.seal(b"after cookie")).as_deref(), Ok(&b"after cookie"[..]));
}

#[test]
fn bindings_verify_only_for_their_peer_and_unaltered() {
    let (a, b) = (node(), node());
    let encoded = a.binding().encode();
    let decoded = KeyBinding::decode(&encoded).expect("decodes");
    assert!(decoded.verify(&a.peer_id()).is_ok());
    assert_eq!(decoded.verify(&b.peer_id()).err(), Some(Reject::BadBinding));
    let mut altered = decoded.clone();
    altered.dsa_public = b.binding().dsa_public.clone();
    assert_eq!(altered.verify(&a.peer_id()).err(), Some(Reject::BadBinding));
    for cut in [0, 10, encoded.len() / 2, encoded.len() - 1] {
        assert!(KeyBinding::decode(&encoded[..cut]).is_err(), "cut at {cut}");
    }
    let seeds = PqSeeds::generate();
    let again = PqSeeds::from_bytes(&seeds.to_bytes()).expect("96 bytes");
    let key = Keypair::generate_ed25519();
    assert_eq!(
        PqIdentity::new(key.clone(), &seeds).binding().dsa_public,
        PqIdentity::new(key, &again).binding().dsa_public,
        "the same seeds give the same keys"
    );
}

#[test]
fn truncated_or_altered_messages_are_refused_without_panicking() {
    let (a, b) = (node(), node());
    let now = Instant::now();
    let (mut initiator, init) = Initiator::start(&a, keys_of(&b), PqcMode::Preferred).expect("start");
    let a_keys = keys_of(&a);
    let mut version = init.clone();
    version[1] = 9;
    assert_eq!(
        Responder::respond(&b, &version, PqcMode::Preferred, |_| Some(a_keys.clone()), None, now).err(),
        Some(Reject::UnsupportedVersion(9))
    );
    for cut in (0..init.len()).step_by(97) {
        let result = Responder::respond(
            &b,
            &init[..cut],
            PqcMode::Preferred,
            |_| Some(a_keys.clone()),
            None,
            now,
        );
        assert!(matches!(result, Err(Reject::Malformed(_))), "init cut at {cut}");
    }
    let (_, reply) = reply_of(
        Responder::respond(&b, &init, PqcMode::Preferred, |_| Some(a_keys.clone()), None, now).expect("reply"),
    );
    let mut cuts = (0..reply.len()).step_by(211);
    let cut = cuts.nth(3).expect("long reply");
    assert!(matches!(
        initiator.finish(&a, &reply[..cut], now),
        Err(Reject::Malformed(_))
    ));
}

#[test]
fn sessions_ask_for_a_rekey_after_their_frame_count_or_age() {
    let (a, b) = (node(), node());
    let (mut ab, _) = handshake(&a, &b, PqcMode::Required, PqcMode::Required).expect("handshake");
    let policy = RekeyPolicy {
        after_frames: 3,
        after: Duration::from_secs(60),
    };
    let now = ab.established;
    assert!(!ab.needs_rekey(&policy, now));
    for _ in 0..3 {
        ab.seal(b"x");
    }
    assert!(ab.needs_rekey(&policy, now), "after three frames");
    let (fresh, _) = handshake(&a, &b, PqcMode::Required, PqcMode::Required).expect("handshake");
    assert!(
        fresh.needs_rekey(&policy, fresh.established + Duration::from_secs(60)),
        "after a minute"
    );
}
