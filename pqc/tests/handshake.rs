//! The handshake and sessions end to end, and every way they refuse input.

use std::time::{Duration, Instant};

use libp2p::identity::Keypair;
use x0tta6bl4_pqc::cookie::CookieJar;
use x0tta6bl4_pqc::identity::{KEM_CIPHERTEXT_LEN, KEM_PUBLIC_LEN};
use x0tta6bl4_pqc::replay::WINDOW;
use x0tta6bl4_pqc::xwing::operations_on_this_thread;
use x0tta6bl4_pqc::{
    Initiator, KeyBinding, PeerKeys, PqIdentity, PqSeeds, PqcMode, Reject, RekeyPolicy, Responder, Response, Session,
    Suite,
};

/// The context both ends seal and open a test frame with.
const CONTEXT: &[u8] = b"src|dst|id|kind";

fn node() -> PqIdentity {
    PqIdentity::new(Keypair::generate_ed25519(), &PqSeeds::generate())
}

/// Keys of `who` as a peer learns them: through its binding.
fn keys_of(who: &PqIdentity) -> PeerKeys {
    who.binding().verify(&who.peer_id()).expect("own binding verifies")
}

/// Keys of `who` as a peer knows them without its binding.
fn classical_keys_of(who: &PqIdentity) -> PeerKeys {
    PeerKeys::classical(who.binding().public_key.clone())
}

fn reply_of(response: Response) -> (Box<Responder>, Vec<u8>) {
    match response {
        Response::Reply { responder, reply } => (responder, reply),
        Response::Cookie { reason, .. } => panic!("unexpected cookie demand: {reason}"),
        Response::Capability { .. } => panic!("unexpected capability answer"),
    }
}

/// `r` answers `init` from `i`, knowing `i`'s binding.
fn respond(r: &PqIdentity, i: &PqIdentity, init: &[u8], mode: PqcMode) -> Result<Response, Reject> {
    let i_keys = keys_of(i);
    Responder::respond(r, &i.peer_id(), init, mode, |_| Some(i_keys), None, Instant::now())
}

/// A full handshake between `i` (holding `r_keys`) and `r` under the given modes.
fn handshake_with(
    i: &PqIdentity,
    r: &PqIdentity,
    r_keys: PeerKeys,
    i_mode: PqcMode,
    r_mode: PqcMode,
) -> Result<(Session, Session), Reject> {
    let now = Instant::now();
    let (mut initiator, init) = Initiator::start(i, r_keys, i_mode)?;
    let (mut responder, reply) = reply_of(respond(r, i, &init, r_mode)?);
    let (i_session, finish) = initiator.finish(i, &reply, now)?;
    let r_session = responder.complete(&finish, now)?;
    Ok((i_session, r_session))
}

fn handshake(i: &PqIdentity, r: &PqIdentity, i_mode: PqcMode, r_mode: PqcMode) -> Result<(Session, Session), Reject> {
    handshake_with(i, r, keys_of(r), i_mode, r_mode)
}

fn seal(session: &mut Session, plaintext: &[u8]) -> Vec<u8> {
    session.seal(plaintext, CONTEXT, Instant::now()).expect("seals")
}

fn open(session: &mut Session, frame: &[u8]) -> Result<Vec<u8>, Reject> {
    session.open(frame, CONTEXT, Instant::now())
}

#[test]
fn a_full_hybrid_handshake_gives_working_sessions_both_ways() {
    let (a, b) = (node(), node());
    let (mut ab, mut ba) = handshake(&a, &b, PqcMode::Required, PqcMode::Required).expect("handshake");
    assert_eq!(ab.suite, Suite::X25519MlKem768);
    assert_eq!((ab.peer, ba.peer), (b.peer_id(), a.peer_id()));
    assert_eq!((ab.local_id, ab.remote_id), (ba.remote_id, ba.local_id));
    for i in 0..3u8 {
        let frame = seal(&mut ab, &[i; 100]);
        assert_eq!(open(&mut ba, &frame), Ok(vec![i; 100]));
        let back = seal(&mut ba, b"pong");
        assert_eq!(open(&mut ab, &back).as_deref(), Ok(&b"pong"[..]));
    }
    let frame = seal(&mut ab, b"secret payload");
    assert!(
        !frame.windows(6).any(|w| w == b"secret"),
        "the payload is not readable in the frame"
    );
}

#[test]
fn the_hybrid_handshake_uses_no_signature_and_five_kem_operations_a_side() {
    let (a, b) = (node(), node());
    let now = Instant::now();
    let before = operations_on_this_thread();
    let (mut initiator, init) = Initiator::start(&a, keys_of(&b), PqcMode::Required).expect("start");
    assert_eq!(operations_on_this_thread() - before, 2, "ephemeral key, encapsulation");
    let (mut responder, reply) = reply_of(respond(&b, &a, &init, PqcMode::Required).expect("reply"));
    assert_eq!(
        operations_on_this_thread() - before,
        5,
        "one decapsulation, two encapsulations"
    );
    let (_, finish) = initiator.finish(&a, &reply, now).expect("finish");
    responder.complete(&finish, now).expect("complete");
    assert_eq!(operations_on_this_thread() - before, 7, "two decapsulations");
    // The sizes docs/PROTOCOL.md §7 gives: no 3,309-byte ML-DSA signature.
    assert_eq!((init.len(), reply.len(), finish.len()), (2_396, 2_292, 41));
    assert_eq!(a.binding().encode().len(), 3_284);
    let (_, ask) = Initiator::start(&a, classical_keys_of(&b), PqcMode::Preferred).expect("start");
    let Ok(Response::Capability { message }) = respond(&b, &a, &ask, PqcMode::Preferred) else {
        panic!("capability");
    };
    assert_eq!((ask.len(), message.len()), (92, 3_295));
    let (mut classical, init) = Initiator::start(&a, classical_keys_of(&b), PqcMode::Off).expect("start");
    let (_, reply) = reply_of(respond(&b, &a, &init, PqcMode::Off).expect("reply"));
    let (_, finish) = classical.finish(&a, &reply, now).expect("finish");
    assert_eq!((reply.len(), finish.len()), (118, 75));
}

#[test]
fn a_frame_moved_to_another_routing_header_or_tampered_is_refused() {
    let (a, b) = (node(), node());
    let (mut ab, mut ba) = handshake(&a, &b, PqcMode::Required, PqcMode::Required).expect("handshake");
    let frame = seal(&mut ab, b"hello");
    let now = Instant::now();
    // v1 authenticated only the receiver id and counter: a transit node could
    // change the message id or source in the routing header and it still opened.
    assert_eq!(
        ba.open(&frame, b"src|dst|id+1|kind", now),
        Err(Reject::DecryptFailed),
        "another header context"
    );
    for at in [0usize, 9, 20, frame.len() - 1] {
        let mut bad = frame.clone();
        bad[at] ^= 0x40;
        let expected = if at < 8 {
            Reject::UnknownSession
        } else {
            Reject::DecryptFailed
        };
        assert_eq!(open(&mut ba, &bad), Err(expected), "byte {at} flipped");
    }
    assert_eq!(open(&mut ba, &frame[..10]), Err(Reject::Malformed("sealed frame")));
    assert_eq!(
        open(&mut ba, &frame).as_deref(),
        Ok(&b"hello"[..]),
        "the original still opens"
    );
}

#[test]
fn a_replayed_frame_and_one_older_than_the_window_are_refused() {
    let (a, b) = (node(), node());
    let (mut ab, mut ba) = handshake(&a, &b, PqcMode::Required, PqcMode::Required).expect("handshake");
    let first = seal(&mut ab, b"one");
    assert!(open(&mut ba, &first).is_ok());
    assert_eq!(open(&mut ba, &first), Err(Reject::Replayed));
    let held_back = seal(&mut ab, b"late");
    let frames: Vec<Vec<u8>> = (0..WINDOW + 5).map(|_| seal(&mut ab, b"x")).collect();
    let newest = frames.last().expect("frames");
    assert!(open(&mut ba, newest).is_ok());
    assert_eq!(open(&mut ba, &held_back), Err(Reject::TooOld));
    assert!(
        open(&mut ba, &frames[10]).is_ok(),
        "reordered inside the window is fine"
    );
}

#[test]
fn a_peer_without_the_static_key_fails_key_confirmation() {
    let (a, b, mallory) = (node(), node(), node());
    let now = Instant::now();
    // B believes A's X-Wing key is Mallory's (a binding mix-up): A cannot open
    // c3, so A's side does not confirm B's MAC.
    let (mut initiator, init) = Initiator::start(&a, keys_of(&b), PqcMode::Required).expect("start");
    let mut confused = keys_of(&a);
    confused.pq = keys_of(&mallory).pq;
    let (_, reply) = reply_of(
        Responder::respond(
            &b,
            &a.peer_id(),
            &init,
            PqcMode::Required,
            |_| Some(confused),
            None,
            now,
        )
        .expect("reply"),
    );
    assert_eq!(initiator.finish(&a, &reply, now).err(), Some(Reject::BadConfirmation));

    // A expects B, but Mallory answers in B's place: Mallory cannot open c1.
    let (mut initiator, init) = Initiator::start(&a, keys_of(&b), PqcMode::Required).expect("start");
    let mallory_answers = Responder::respond(
        &mallory,
        &a.peer_id(),
        &init,
        PqcMode::Required,
        |_| Some(keys_of(&a)),
        None,
        now,
    );
    match mallory_answers {
        // Mallory's own epoch differs from B's: it can only send its binding.
        Ok(Response::Capability { message }) => {
            assert_eq!(initiator.capability(&message).err(), Some(Reject::BadBinding));
        }
        Ok(Response::Reply { reply, .. }) => {
            assert_eq!(initiator.finish(&a, &reply, now).err(), Some(Reject::BadConfirmation));
        }
        _ => panic!("unexpected answer"),
    }
}

#[test]
fn tampered_replies_and_finishes_fail_and_the_real_ones_still_complete() {
    let (a, b) = (node(), node());
    let now = Instant::now();
    let (mut initiator, init) = Initiator::start(&a, keys_of(&b), PqcMode::Required).expect("start");
    let (mut responder, reply) = reply_of(respond(&b, &a, &init, PqcMode::Required).expect("reply"));
    for at in [20, 30 + KEM_CIPHERTEXT_LEN / 2, reply.len() - 40, reply.len() - 1] {
        let mut tampered = reply.clone();
        tampered[at] ^= 1;
        assert_eq!(
            initiator.finish(&a, &tampered, now).err(),
            Some(Reject::BadConfirmation),
            "byte {at}"
        );
    }
    // The forgeries did not spend the initiator: B's real Reply still completes
    // the handshake, and only once.
    let (_, finish) = initiator
        .finish(&a, &reply, now)
        .expect("the real reply after forged ones");
    assert_eq!(initiator.finish(&a, &reply, now).err(), Some(Reject::UnknownHandshake));
    // Likewise on B's side with A's Finish.
    let mut forged = finish.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert_eq!(responder.complete(&forged, now).err(), Some(Reject::BadConfirmation));
    responder
        .complete(&finish, now)
        .expect("the real finish after a forged one");
    assert_eq!(responder.complete(&finish, now).err(), Some(Reject::UnknownHandshake));
}

#[test]
fn an_init_naming_another_initiator_than_its_source_costs_no_kem_work() {
    let (a, b, mallory) = (node(), node(), node());
    let (_, init) = Initiator::start(&a, keys_of(&b), PqcMode::Required).expect("start");
    // Mallory replays A's Init from its own id: v1 decapsulated, encapsulated
    // and signed before noticing.
    let before = operations_on_this_thread();
    let result = Responder::respond(
        &b,
        &mallory.peer_id(),
        &init,
        PqcMode::Required,
        |_| Some(keys_of(&a)),
        None,
        Instant::now(),
    );
    assert_eq!(result.err(), Some(Reject::SourceMismatch));
    assert_eq!(operations_on_this_thread(), before, "no KEM work done");
}

#[test]
fn an_init_for_an_old_binding_gets_the_current_one_and_no_kem_work() {
    let (a, key) = (node(), Keypair::generate_ed25519());
    let old_seeds = PqSeeds::generate();
    let old = PqIdentity::new(key.clone(), &old_seeds);
    let current = PqIdentity::new(key, &old_seeds.rotate());
    assert!(current.epoch() > old.epoch());
    let (initiator, init) = Initiator::start(&a, keys_of(&old), PqcMode::Required).expect("start");
    let before = operations_on_this_thread();
    let Ok(Response::Capability { message }) = respond(&current, &a, &init, PqcMode::Required) else {
        panic!("expected the current binding");
    };
    assert_eq!(operations_on_this_thread(), before, "no KEM work done");
    let binding = initiator.capability(&message).expect("for this handshake");
    assert_eq!(binding, *current.binding());
    assert!(binding.verify(&current.peer_id()).is_ok());
}

/// The Init with its post-quantum part replaced by an X25519 key and the offer
/// set to `offer`, as an attacker in the path would.
fn strip_pq_offer(init: &[u8], offer: u8) -> Vec<u8> {
    let mut stripped = init.to_vec();
    stripped[2] = offer;
    let end = init.len() - 1; // cookie flag
    stripped.splice(end - KEM_PUBLIC_LEN - KEM_CIPHERTEXT_LEN..end, [9u8; 32]);
    stripped
}

#[test]
fn a_stripped_pq_offer_is_refused_and_never_gives_a_classical_session() {
    let (a, b) = (node(), node());
    let now = Instant::now();
    let (mut initiator, init) = Initiator::start(&a, keys_of(&b), PqcMode::Preferred).expect("start");
    let stripped = strip_pq_offer(&init, 1);
    assert_eq!(
        respond(&b, &a, &stripped, PqcMode::Required).err(),
        Some(Reject::PqRequired)
    );
    // A preferring B answers the stripped Init classically, but signs the
    // Init it saw: A's transcript differs, so A refuses.
    let (_, reply) = reply_of(respond(&b, &a, &stripped, PqcMode::Preferred).expect("reply"));
    assert_eq!(
        initiator.finish(&a, &reply, now).err(),
        Some(Reject::Malformed("suite not offered"))
    );
    // Stripped to Ask, B sends its binding: no session, and A learns B is PQ-capable.
    let asked = strip_pq_offer(&init, 3);
    assert!(matches!(
        respond(&b, &a, &asked, PqcMode::Preferred),
        Ok(Response::Capability { .. })
    ));
}

#[test]
fn without_a_binding_a_pq_capable_peer_sends_its_own_and_the_session_is_hybrid() {
    let (a, b) = (node(), node());
    // v1 fell back to X25519 here, silently, under `preferred`.
    let (initiator, init) = Initiator::start(&a, classical_keys_of(&b), PqcMode::Preferred).expect("start");
    let Ok(Response::Capability { message }) = respond(&b, &a, &init, PqcMode::Preferred) else {
        panic!("a PQ-capable responder answers an Ask with its binding");
    };
    let learnt = initiator
        .capability(&message)
        .expect("the binding")
        .verify(&b.peer_id())
        .expect("verifies");
    let (mut ab, mut ba) = handshake_with(&a, &b, learnt, PqcMode::Preferred, PqcMode::Preferred).expect("handshake");
    assert_eq!(ab.suite, Suite::X25519MlKem768);
    assert_eq!(open(&mut ba, &seal(&mut ab, b"pq")).as_deref(), Ok(&b"pq"[..]));
    // A Capability for another handshake, or with another peer's binding, is refused.
    let mut other = message.clone();
    other[1] ^= 1;
    assert_eq!(initiator.capability(&other).err(), Some(Reject::UnknownHandshake));
    let c = node();
    let (asking_c, _) = Initiator::start(&a, classical_keys_of(&c), PqcMode::Preferred).expect("start");
    let mut for_c = message.clone();
    for_c[1..9].copy_from_slice(&asking_c.local_id().to_be_bytes());
    assert_eq!(asking_c.capability(&for_c).err(), Some(Reject::BadBinding));
}

#[test]
fn a_classical_only_peer_is_refused_under_required_and_falls_back_under_preferred() {
    let (a, b) = (node(), node());
    // A is off: it offers X25519 only.
    assert_eq!(
        handshake(&a, &b, PqcMode::Off, PqcMode::Required).err(),
        Some(Reject::PqRequired)
    );
    let (mut ab, mut ba) = handshake(&a, &b, PqcMode::Off, PqcMode::Preferred).expect("fallback");
    assert_eq!(ab.suite, Suite::X25519);
    assert!(PqcMode::Preferred.is_fallback(ba.suite));
    assert_eq!(
        open(&mut ba, &seal(&mut ab, b"classical")).as_deref(),
        Ok(&b"classical"[..])
    );
    // B is off (announces no binding): A asks, B signs a classical Reply;
    // `preferred` takes it, `required` refuses it.
    let (mut ab, _) =
        handshake_with(&a, &b, classical_keys_of(&b), PqcMode::Preferred, PqcMode::Off).expect("fallback");
    assert_eq!(ab.suite, Suite::X25519);
    assert!(seal(&mut ab, b"x").len() > 1);
    assert_eq!(
        handshake_with(&a, &b, classical_keys_of(&b), PqcMode::Required, PqcMode::Off).err(),
        Some(Reject::PqRequired)
    );
    // And a node that is off refuses an Init that offers the hybrid suite only.
    let (_, init) = Initiator::start(&a, keys_of(&b), PqcMode::Required).expect("start");
    assert_eq!(respond(&b, &a, &init, PqcMode::Off).err(), Some(Reject::PqOff));
}

#[test]
fn under_load_an_init_needs_a_cookie_bound_to_its_source_before_any_kem_work() {
    let (a, b) = (node(), node());
    let now = Instant::now();
    let mut jar = CookieJar::new(now, Duration::from_secs(120));
    let a_keys = keys_of(&a);
    let (mut initiator, init) = Initiator::start(&a, keys_of(&b), PqcMode::Required).expect("start");
    let before = operations_on_this_thread();
    let cookie_message = match Responder::respond(
        &b,
        &a.peer_id(),
        &init,
        PqcMode::Required,
        |_| None,
        Some(&mut jar),
        now,
    ) {
        Ok(Response::Cookie { message, reason }) => {
            assert_eq!(reason, Reject::CookieRequired);
            message
        }
        _ => panic!("expected a cookie demand (and no key lookup)"),
    };
    assert_eq!(operations_on_this_thread(), before, "no KEM work for a cookie demand");
    let again = initiator.init_with_cookie(&cookie_message).expect("cookie accepted");
    let mut forged = again.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    match Responder::respond(
        &b,
        &a.peer_id(),
        &forged,
        PqcMode::Required,
        |_| None,
        Some(&mut jar),
        now,
    ) {
        Ok(Response::Cookie { reason, .. }) => assert_eq!(reason, Reject::BadCookie),
        _ => panic!("a forged cookie gets another cookie demand"),
    }
    let (mut responder, reply) = reply_of(
        Responder::respond(
            &b,
            &a.peer_id(),
            &again,
            PqcMode::Required,
            |_| Some(a_keys),
            Some(&mut jar),
            now,
        )
        .expect("reply"),
    );
    let (mut ab, finish) = initiator.finish(&a, &reply, now).expect("finish");
    let mut ba = responder.complete(&finish, now).expect("complete");
    assert_eq!(
        open(&mut ba, &seal(&mut ab, b"after cookie")).as_deref(),
        Ok(&b"after cookie"[..])
    );
}

#[test]
fn bindings_verify_only_for_their_peer_unaltered_and_carry_their_epoch() {
    let (a, b) = (node(), node());
    let encoded = a.binding().encode();
    let decoded = KeyBinding::decode(&encoded).expect("decodes");
    assert!(decoded.verify(&a.peer_id()).is_ok());
    assert_eq!(decoded.verify(&b.peer_id()).err(), Some(Reject::BadBinding));
    let mut altered = decoded.clone();
    altered.dsa_public = b.binding().dsa_public.clone();
    assert_eq!(altered.verify(&a.peer_id()).err(), Some(Reject::BadBinding));
    let mut renumbered = decoded.clone();
    renumbered.epoch += 1;
    assert_eq!(
        renumbered.verify(&a.peer_id()).err(),
        Some(Reject::BadBinding),
        "the epoch is signed"
    );
    for cut in [0, 10, encoded.len() / 2, encoded.len() - 1] {
        assert!(KeyBinding::decode(&encoded[..cut]).is_err(), "cut at {cut}");
    }
    let seeds = PqSeeds::generate();
    let again = PqSeeds::from_bytes(&seeds.to_bytes()).expect("72 bytes");
    assert_eq!(again.epoch, seeds.epoch);
    let key = Keypair::generate_ed25519();
    assert_eq!(
        PqIdentity::new(key.clone(), &seeds).binding(),
        PqIdentity::new(key.clone(), &again).binding(),
        "the same seeds give the same keys"
    );
    let v1 = [[7u8; 32].as_slice(), &[8u8; 64]].concat();
    let migrated = PqSeeds::from_bytes(&v1).expect("version 1 seeds are read");
    assert_eq!((migrated.dsa, migrated.xwing, migrated.epoch), ([7; 32], [8; 32], 1));
    assert!(PqSeeds::from_bytes(&v1[..50]).is_none());
}

#[test]
fn beacon_signatures_are_hedged() {
    let a = node();
    let (one, two) = (a.sign(b"beacon", b"ctx"), a.sign(b"beacon", b"ctx"));
    assert_ne!(
        one, two,
        "fresh randomness in every signature (v1 signed deterministically)"
    );
    let keys = keys_of(&a);
    assert!(keys.verify_pq(b"beacon", b"ctx", &one) && keys.verify_pq(b"beacon", b"ctx", &two));
    assert!(!keys.verify_pq(b"beacon", b"other", &one));
}

#[test]
fn truncated_or_altered_messages_and_version_1_are_refused_without_panicking() {
    let (a, b) = (node(), node());
    let now = Instant::now();
    let (mut initiator, init) = Initiator::start(&a, keys_of(&b), PqcMode::Preferred).expect("start");
    let mut version = init.clone();
    version[1] = 1;
    let refused = respond(&b, &a, &version, PqcMode::Preferred).err();
    assert_eq!(refused, Some(Reject::UnsupportedVersion(1)));
    assert!(refused.expect("refused").to_string().contains("must be upgraded"));
    for cut in (0..init.len()).step_by(97) {
        let result = respond(&b, &a, &init[..cut], PqcMode::Preferred);
        assert!(matches!(result, Err(Reject::Malformed(_))), "init cut at {cut}");
    }
    let (_, reply) = reply_of(respond(&b, &a, &init, PqcMode::Preferred).expect("reply"));
    for cut in (0..reply.len()).step_by(211) {
        assert!(
            matches!(initiator.finish(&a, &reply[..cut], now), Err(Reject::Malformed(_))),
            "reply cut at {cut}"
        );
    }
}

#[test]
fn sessions_ask_for_a_rekey_and_stop_at_three_rekey_intervals() {
    let (a, b) = (node(), node());
    let (mut ab, mut ba) = handshake(&a, &b, PqcMode::Required, PqcMode::Required).expect("handshake");
    let policy = RekeyPolicy {
        after_frames: 3,
        after: Duration::from_secs(60),
    };
    ab.limit_lifetime(&policy);
    ba.limit_lifetime(&policy);
    let now = ab.established;
    assert!(!ab.needs_rekey(&policy, now));
    let frames: Vec<Vec<u8>> = (0..3).map(|_| seal(&mut ab, b"x")).collect();
    assert!(ab.needs_rekey(&policy, now), "after three frames");
    let late = ab.established + Duration::from_secs(179);
    assert!(ab.needs_rekey(&policy, late), "after a minute");
    assert!(ab.seal(b"still", CONTEXT, late).is_ok(), "within the lifetime");
    let over = ab.established + Duration::from_secs(180);
    // v1 kept sealing with a stale key for as long as no new handshake got through.
    assert_eq!(ab.seal(b"x", CONTEXT, over).err(), Some(Reject::SessionExpired));
    assert_eq!(ba.open(&frames[0], CONTEXT, over), Err(Reject::SessionExpired));
    assert!(ba.open(&frames[0], CONTEXT, late).is_ok());
}
