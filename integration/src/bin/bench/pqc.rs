//! `bench pqc`: full hybrid handshakes per second (both ends, on one thread,
//! so one core), the classical X25519 handshake for comparison, sealed-frame
//! throughput in MB/s for 1 KiB and 16 KiB payloads, and the ML-KEM-768 and
//! ML-DSA-65 implementations that are well kept, side by side in one run.

use std::time::{Duration, Instant};

use libp2p::identity::Keypair;
use serde_json::{json, Value};
use x0tta6bl4_integration::pqc_impls::{measure_dsa, measure_kem, AwsLc, Figures, Libcrux, RustCrypto};
use x0tta6bl4_pqc::{Initiator, PeerKeys, PqIdentity, PqSeeds, PqcMode, Responder, Response, Session};

fn node() -> PqIdentity {
    PqIdentity::new(Keypair::generate_ed25519(), &PqSeeds::generate())
}

/// One complete handshake, both ends; the two sessions.
fn handshake(
    a: &PqIdentity,
    b: &PqIdentity,
    a_keys: &PeerKeys,
    b_keys: &PeerKeys,
    mode: PqcMode,
) -> (Session, Session) {
    let now = Instant::now();
    let (mut initiator, init) = Initiator::start(a, b_keys.clone(), mode).expect("start");
    let Ok(Response::Reply { mut responder, reply }) =
        Responder::respond(b, &init, mode, |_| Some(a_keys.clone()), None, now)
    else {
        panic!("handshake refused");
    };
    let (ab, finish) = initiator.finish(a, &reply, now).expect("finish");
    let ba = responder.complete(&finish, now).expect("complete");
    (ab, ba)
}

/// Handshakes per second over `time`.
fn handshakes_per_sec(mode: PqcMode, time: Duration) -> (f64, u64) {
    let (a, b) = (node(), node());
    let a_keys = a.binding().verify(&a.peer_id()).expect("binding");
    let b_keys = b.binding().verify(&b.peer_id()).expect("binding");
    let started = Instant::now();
    let mut count = 0u64;
    while started.elapsed() < time {
        handshake(&a, &b, &a_keys, &b_keys, mode);
        count += 1;
    }
    (count as f64 / started.elapsed().as_secs_f64(), count)
}

/// Seal and open MB/s for `payload` bytes, in batches of 256 frames (so the
/// frames stay in cache, as on the forwarding path) until `time` has passed.
fn frame_throughput(payload: usize, time: Duration) -> (f64, f64) {
    let (a, b) = (node(), node());
    let a_keys = a.binding().verify(&a.peer_id()).expect("binding");
    let b_keys = b.binding().verify(&b.peer_id()).expect("binding");
    let (mut ab, mut ba) = handshake(&a, &b, &a_keys, &b_keys, PqcMode::Required);
    let data = vec![0x5a; payload];
    let (mut sealing, mut opening, mut frames) = (Duration::ZERO, Duration::ZERO, 0usize);
    while sealing + opening < time {
        let started = Instant::now();
        let batch: Vec<Vec<u8>> = (0..256).map(|_| ab.seal(&data)).collect();
        sealing += started.elapsed();
        let started = Instant::now();
        for frame in &batch {
            ba.open(frame).expect("opens");
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
    let (hybrid, hybrid_n) = handshakes_per_sec(PqcMode::Required, time);
    let (classical, classical_n) = handshakes_per_sec(PqcMode::Off, time);
    let mut frames: Vec<Value> = Vec::new();
    for payload in [1024usize, 16 * 1024] {
        let (seal, open) = frame_throughput(payload, time);
        frames.push(json!({ "payload_bytes": payload, "seal_mb_s": seal, "open_mb_s": open }));
    }
    println!();
    println!("handshake                         per second   (count)");
    println!("X25519 + ML-KEM-768, ML-DSA-65    {hybrid:>10.0}   ({hybrid_n})");
    println!("X25519 only, ed25519              {classical:>10.0}   ({classical_n})");
    println!(
        "ratio hybrid / classical          {:>10.3}",
        hybrid / classical.max(f64::MIN_POSITIVE)
    );
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
            "hybrid_handshakes_per_sec": hybrid,
            "classical_handshakes_per_sec": classical,
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
