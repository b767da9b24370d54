//! Writes real handshake messages (Init of each offer, Reply, Finish,
//! Capability, Cookie, a key binding, a sealed frame) between the fixed
//! identities of the `handshake_messages` fuzz target into its corpus, so the
//! fuzzer starts from messages that pass parsing and the source check.
//!
//! `cargo run -p x0tta6bl4-pqc --example fuzz_seeds -- fuzz/corpus/handshake_messages`

use std::path::PathBuf;
use std::time::{Duration, Instant};

use libp2p::identity::Keypair;
use x0tta6bl4_pqc::cookie::CookieJar;
use x0tta6bl4_pqc::{Initiator, PeerKeys, PqIdentity, PqSeeds, PqcMode, Responder, Response};

/// An identity with the fuzz target's fixed libp2p key.
fn identity(seed: u8) -> PqIdentity {
    let key = Keypair::ed25519_from_bytes([seed; 32]).expect("key");
    // Fixed seeds: the same keys and epoch in every run, so seeds from
    // `pqc/examples/fuzz_seeds.rs` reach the KEM work.
    PqIdentity::new(key, &PqSeeds::from_bytes(&[seed; 72]).expect("seeds"))
}

fn main() {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fuzz/corpus/handshake_messages".into()),
    );
    std::fs::create_dir_all(&dir).expect("corpus dir");
    let write = |name: &str, bytes: &[u8]| std::fs::write(dir.join(name), bytes).expect("seed written");
    let (a, b) = (identity(1), identity(2));
    let a_keys = a.binding().verify(&a.peer_id()).expect("binding");
    let b_keys = b.binding().verify(&b.peer_id()).expect("binding");
    let now = Instant::now();
    let respond = |init: &[u8], jar: Option<&mut CookieJar>| {
        let keys = a_keys.clone();
        Responder::respond(&b, &a.peer_id(), init, PqcMode::Preferred, |_| Some(keys), jar, now).expect("answer")
    };

    let (mut initiator, init) = Initiator::start(&a, b_keys, PqcMode::Required).expect("start");
    write("init-hybrid", &init);
    let Response::Reply { mut responder, reply } = respond(&init, None) else {
        panic!("reply expected");
    };
    write("reply", &reply);
    let (mut session, finish) = initiator.finish(&a, &reply, now).expect("finish");
    write("finish", &finish);
    responder.complete(&finish, now).expect("complete");
    write("sealed", &session.seal(b"seed", b"context", now).expect("sealed"));
    let (_, ask) = Initiator::start(
        &a,
        PeerKeys::classical(b.binding().public_key.clone()),
        PqcMode::Preferred,
    )
    .expect("start");
    write("init-ask", &ask);
    if let Response::Capability { message } = respond(&ask, None) {
        write("capability", &message);
    }
    let mut jar = CookieJar::new(now, Duration::from_secs(120));
    if let Response::Cookie { message, .. } = respond(&init, Some(&mut jar)) {
        write("cookie", &message);
    }
    write("binding", &b.binding().encode());
    println!("seeds written to {}", dir.display());
}
