//! Handshake messages and sealed frames from anyone: an Init to a responder,
//! a Reply, Cookie or Capability to a waiting initiator, a Finish to a waiting
//! responder, a key binding, a sealed frame to an open session. None panics,
//! and a forged message never completes a handshake.
#![no_main]

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use x0tta6bl4_actors::libp2p::identity::Keypair;
use x0tta6bl4_pqc::cookie::CookieJar;
use x0tta6bl4_pqc::handshake::finish_session_id;
use x0tta6bl4_pqc::{
    Initiator, KeyBinding, MessageKind, PeerKeys, PqIdentity, PqSeeds, PqcMode, Responder, Response, Session,
};

/// Two nodes, a handshake of each kind waiting, and an open session.
struct Fixture {
    a: PqIdentity,
    b: PqIdentity,
    a_keys: PeerKeys,
    waiting_initiator: Initiator,
    waiting_responder: Box<Responder>,
    session: Session,
    cookies: CookieJar,
}

fn identity(seed: u8) -> PqIdentity {
    let key = Keypair::ed25519_from_bytes([seed; 32]).expect("key");
    // Fixed seeds: the same keys and epoch in every run, so seeds from
    // `pqc/examples/fuzz_seeds.rs` reach the KEM work.
    PqIdentity::new(key, &PqSeeds::from_bytes(&[seed; 72]).expect("seeds"))
}

fn fixture() -> &'static Mutex<Fixture> {
    static FIXTURE: OnceLock<Mutex<Fixture>> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let (a, b) = (identity(1), identity(2));
        let a_keys = a.binding().verify(&a.peer_id()).expect("binding");
        let b_keys = b.binding().verify(&b.peer_id()).expect("binding");
        let now = Instant::now();
        let (waiting_initiator, _) = Initiator::start(&a, b_keys.clone(), PqcMode::Required).expect("start");
        let (mut initiator, init) = Initiator::start(&a, b_keys, PqcMode::Required).expect("start");
        let keys = a_keys.clone();
        let Ok(Response::Reply { responder, reply }) =
            Responder::respond(&b, &a.peer_id(), &init, PqcMode::Required, |_| Some(keys), None, now)
        else {
            panic!("reply");
        };
        let (session, _) = initiator.finish(&a, &reply, now).expect("finish");
        Mutex::new(Fixture {
            a,
            b,
            a_keys,
            waiting_initiator,
            waiting_responder: responder,
            session,
            cookies: CookieJar::new(now, Duration::from_secs(120)),
        })
    })
}

fuzz_target!(|data: &[u8]| {
    let mut guard = fixture().lock().unwrap_or_else(|e| e.into_inner());
    let f = &mut *guard;
    let now = Instant::now();
    let _ = MessageKind::of(data);
    let _ = finish_session_id(data);
    if let Ok(binding) = KeyBinding::decode(data) {
        let _ = binding.verify(&f.a.peer_id());
    }
    let keys = f.a_keys.clone();
    let _ = Responder::respond(
        &f.b,
        &f.a.peer_id(),
        data,
        PqcMode::Preferred,
        |_| Some(keys),
        None,
        now,
    );
    let keys = f.a_keys.clone();
    let _ = Responder::respond(
        &f.b,
        &f.a.peer_id(),
        data,
        PqcMode::Required,
        |_| Some(keys),
        Some(&mut f.cookies),
        now,
    );
    assert!(
        f.waiting_initiator.finish(&f.a, data, now).is_err(),
        "a forged Reply completed a handshake"
    );
    let _ = f.waiting_initiator.capability(data);
    let _ = f.waiting_initiator.init_with_cookie(data);
    assert!(
        f.waiting_responder.complete(data, now).is_err(),
        "a forged Finish completed a handshake"
    );
    let _ = f.session.open(data, b"context", now);
});
