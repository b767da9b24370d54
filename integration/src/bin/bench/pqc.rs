//! `bench pqc`: handshakes per second on one thread (so one core): the
//! responder's work alone and both ends, handshake version 2 (X-Wing, no
//! signatures) beside version 1's primitive sequence and the classical
//! X25519 handshake; sealed-frame throughput in MB/s for 1 KiB and 16 KiB
//! payloads; and the ML-KEM-768 and ML-DSA-65 implementations that are well
//! kept, side by side in one run.

use std::time::{Duration, Instant};

use libp2p::identity::Keypair;
use serde_json::{json, Value};
use x0tta6bl4_integration::pqc_impls::{
    measure_dsa, measure_kem, rate, AwsLc, Dsa65, Figures, Kem768, Libcrux, RustCrypto,
};
use x0tta6bl4_pqc::{Initiator, PeerKeys, PqIdentity, PqSeeds, PqcMode, Responder, Response, Session};

/// What a sealed test frame is authenticated with beside its header.
const CONTEXT: &[u8] = b"bench";

fn node() -> PqIdentity {
    PqIdentity::new(Keypair::generate_ed25519(), &PqSeeds::generate())
}

/// Two nodes that know each other's keys.
struct Pair {
    a: PqIdentity,
    b: PqIdentity,
    a_keys: PeerKeys,
    b_keys: PeerKeys,
}

impl Pair {
    fn new() -> Self {
        let (a, b) = (node(), node());
        let a_keys = a.binding().verify(&a.peer_id()).expect("binding");
        let b_keys = b.binding().verify(&b.peer_id()).expect("binding");
        Self { a, b, a_keys, b_keys }
    }

    /// B's answer to `init` from A.
    fn respond(&self, init: &[u8], mode: PqcMode) -> (Box<Responder>, Vec<u8>) {
        let keys = self.a_keys.clone();
        let response = Responder::respond(
            &self.b,
            &self.a.peer_id(),
            init,
            mode,
            |_| Some(keys),
            None,
            Instant::now(),
        );
        let Ok(Response::Reply { responder, reply }) = response else {
            panic!("handshake refused");
        };
        (responder, reply)
    }

    /// One complete handshake, both ends; the two sessions. `mode` `off`
    /// gives the classical handshake.
    fn handshake(&self, mode: PqcMode) -> (Session, Session) {
        let now = Instant::now();
        let b_keys = match mode {
            PqcMode::Off => PeerKeys::classical(self.b.binding().public_key.clone()),
            _ => self.b_keys.clone(),
        };
        let (mut initiator, init) = Initiator::start(&self.a, b_keys, mode).expect("start");
        let (mut responder, reply) = self.respond(&init, mode);
        let (ab, finish) = initiator.finish(&self.a, &reply, now).expect("finish");
        let ba = responder.complete(&finish, now).expect("complete");
        (ab, ba)
    }
}

/// Handshakes per second over `time`: `(responder alone, both ends)`. The
/// responder's figure answers one Init again and again (its Finish check, one
/// MAC or signature verification, is left out of it).
fn handshakes_per_sec(mode: PqcMode, time: Duration) -> (f64, f64) {
    let pair = Pair::new();
    let b_keys = pair.b_keys.clone();
    let (_, init) = Initiator::start(&pair.a, b_keys, PqcMode::Required).expect("start");
    let responder = match mode {
        PqcMode::Off => {
            let (_, classical) = Initiator::start(
                &pair.a,
                PeerKeys::classical(pair.b.binding().public_key.clone()),
                PqcMode::Off,
            )
            .expect("start");
            rate(time, || pair.respond(&classical, PqcMode::Off))
        }
        _ => rate(time, || pair.respond(&init, mode)),
    };
    (responder, rate(time, || pair.handshake(mode)))
}

/// Version 1's handshake as the primitives it ran (libcrux, as the node used):
/// the responder decapsulated the static ML-KEM key's ciphertext, encapsulated
/// to the initiator's ephemeral key, made an X25519 key and shared secret,
/// signed the Reply and verified the Finish with ML-DSA-65; the initiator made
/// the ephemeral ML-KEM and X25519 keys, encapsulated, decapsulated, verified
/// and signed. `(responder alone, both ends)` per second.
fn version_1_per_sec(time: Duration) -> (f64, f64) {
    let (static_dk, static_ek) = <Libcrux as Kem768>::keygen(&random64());
    let (sk, vk) = <Libcrux as Dsa65>::keygen(&rand::random());
    let transcript = [3u8; 200];
    let signature = Libcrux::sign(&sk, &transcript);
    // The initiator's ephemeral key and its encapsulation to the static key.
    let ephemeral = || {
        let (dk, ek) = <Libcrux as Kem768>::keygen(&random64());
        let (ct_s, _) = Libcrux::encapsulate(&static_ek, &rand::random());
        (dk, ek, ct_s)
    };
    let (_, ephemeral_ek, ct_s) = ephemeral();
    let respond = || {
        let ss_s = Libcrux::decapsulate(&static_dk, &ct_s);
        let (ct_e, ss_e) = Libcrux::encapsulate(&ephemeral_ek, &rand::random());
        let x = x25519_dalek::EphemeralSecret::random();
        let dh = x.diffie_hellman(&x25519_dalek::PublicKey::from([9u8; 32]));
        let reply_signature = Libcrux::sign(&sk, &transcript);
        let finish_ok = Libcrux::verify(&vk, &transcript, &signature);
        (ss_s, ct_e, ss_e, *dh.as_bytes(), reply_signature, finish_ok)
    };
    let initiate = || {
        let (dk, ek, ct_s) = ephemeral();
        let x = x25519_dalek::EphemeralSecret::random();
        let public = x25519_dalek::PublicKey::from(&x);
        let (ct_e, _) = Libcrux::encapsulate(&ek, &rand::random());
        let ss_e = Libcrux::decapsulate(&dk, &ct_e);
        let dh = x.diffie_hellman(&public);
        let reply_ok = Libcrux::verify(&vk, &transcript, &signature);
        let finish_signature = Libcrux::sign(&sk, &transcript);
        (ct_s, ss_e, *dh.as_bytes(), reply_ok, finish_signature)
    };
    (rate(time, respond), rate(time, || (respond(), initiate())))
}

fn random64() -> [u8; 64] {
    use rand::RngCore as _;
    let mut seed = [0u8; 64];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    seed
}

/// Seal and open MB/s for `payload` bytes, in batches of 256 frames (so the
/// frames stay in cache, as on the forwarding path) until `time` has passed.
fn frame_throughput(payload: usize, time: Duration) -> (f64, f64) {
    let (mut ab, mut ba) = Pair::new().handshake(PqcMode::Required);
    let data = vec![0x5a; payload];
    let (mut sealing, mut opening, mut frames) = (Duration::ZERO, Duration::ZERO, 0usize);
    while sealing + opening < time {
        let started = Instant::now();
        let now = Instant::now();
        let batch: Vec<Vec<u8>> = (0..256).map(|_| ab.seal(&data, CONTEXT, now).expect("seals")).collect();
        sealing += started.elapsed();
        let started = Instant::now();
        for frame in &batch {
            ba.open(frame, CONTEXT, now).expect("opens");
        }
        opening += started.elapsed();
        frames += batch.len();
    }
    let mb = (frames * payload) as f64 / 1e6;
    (mb / sealing.as_secs_f64(), mb / opening.as_secs_f64())
}

/// Runs the measurements and prints them.
pub fn run(quick: bool) {
    let time = if quick {
        Duration::from_millis(300)
    } else {
        Duration::from_secs(3)
    };
    eprintln!("pqc: one thread, {time:?} per measurement");
    let (v2_responder, v2_both) = handshakes_per_sec(PqcMode::Required, time);
    let (v1_responder, v1_both) = version_1_per_sec(time);
    let (classical_responder, classical_both) = handshakes_per_sec(PqcMode::Off, time);
    let mut frames: Vec<Value> = Vec::new();
    for payload in [1024usize, 16 * 1024] {
        let (seal, open) = frame_throughput(payload, time);
        frames.push(json!({ "payload_bytes": payload, "seal_mb_s": seal, "open_mb_s": open }));
    }
    let ratio = |hybrid: f64| hybrid / classical_both.max(f64::MIN_POSITIVE);
    println!();
    println!("handshakes per second, one core                 responder   both ends   both / classical");
    println!(
        "v2: X-Wing KK, key confirmation (no signatures)  {v2_responder:>9.0}   {v2_both:>9.0}   {:>16.3}",
        ratio(v2_both)
    );
    println!(
        "v1: X25519 + ML-KEM-768, two ML-DSA-65 sigs      {v1_responder:>9.0}   {v1_both:>9.0}   {:>16.3}",
        ratio(v1_both)
    );
    println!("classical: X25519, ed25519 signatures           {classical_responder:>9.0}   {classical_both:>9.0}");
    let handshakes = json!({
        "v2": { "responder_per_sec": v2_responder, "both_ends_per_sec": v2_both },
        "v1": { "responder_per_sec": v1_responder, "both_ends_per_sec": v1_both },
        "classical": { "responder_per_sec": classical_responder, "both_ends_per_sec": classical_both },
        "hybrid_to_classical_ratio": ratio(v2_both),
    });
    println!();
    println!("sealed frames, ChaCha20-Poly1305   seal MB/s   open MB/s");
    for f in &frames {
        println!(
            "{:>6} B payload                   {:>9.0}   {:>9.0}",
            f["payload_bytes"],
            f["seal_mb_s"].as_f64().unwrap_or_default(),
            f["open_mb_s"].as_f64().unwrap_or_default()
        );
    }
    let primitives = [
        measure_kem::<RustCrypto>(time),
        measure_kem::<Libcrux>(time),
        measure_kem::<AwsLc>(time),
        measure_dsa::<RustCrypto>(time),
        measure_dsa::<Libcrux>(time),
        measure_dsa::<AwsLc>(time),
    ];
    print_primitives(&primitives);
    println!(
        "{}",
        json!({
            "bench": "pqc",
            "threads": 1,
            "handshakes": handshakes,
            "frames": frames,
            "primitives": primitives,
        })
    );
}

/// The implementation table: operations per second, and each as a ratio to
/// the first implementation of its primitive (the one the node uses).
fn print_primitives(figures: &[Figures]) {
    println!();
    println!(
        "primitive    implementation            keygen/s   encaps|sign/s   decaps|verify/s   (ratio to RustCrypto)"
    );
    for f in figures {
        let Some(base) = figures.iter().find(|b| b.primitive == f.primitive) else {
            continue;
        };
        println!(
            "{:<12} {:<24} {:>9.0}   {:>13.0}   {:>15.0}   ({:.2} / {:.2} / {:.2})",
            f.primitive,
            f.implementation,
            f.keygen_per_sec,
            f.encaps_or_sign_per_sec,
            f.decaps_or_verify_per_sec,
            f.keygen_per_sec / base.keygen_per_sec,
            f.encaps_or_sign_per_sec / base.encaps_or_sign_per_sec,
            f.decaps_or_verify_per_sec / base.decaps_or_verify_per_sec,
        );
    }
}
