//! `bench sync`: the replicated state. In this process: deltas merged per second
//! by one replica (signature checked, and applied alone) and the bytes each kind
//! of update takes on the wire. With real node processes: the time from a write
//! on one node until every node of a ring of 8 and of 20 holds it (4 and 8 with
//! `--quick`).

use std::time::{Duration, Instant};

use libp2p::identity::Keypair;
use serde_json::json;
use x0tta6bl4_actors::sync::delta::SignedDelta;
use x0tta6bl4_actors::sync::{Intent, Limits, ReplicaState};
use x0tta6bl4_integration::{unix_ms, wait_for, TestMesh};

/// One kind of update: its key and what is written.
const UPDATES: [(&str, &str); 5] = [
    ("flag.x", "put"),
    ("note.x", "put"),
    ("set.x", "add"),
    ("quarantine", "add"),
    ("counter.x", "count"),
];

/// The `i`-th update of `kind` to `key`.
fn intent(key: &str, kind: &str, i: usize) -> Intent {
    match (key, kind) {
        ("quarantine", _) => Intent::Add(
            json!({"addr": format!("10.{}.{}.{}", i >> 16 & 255, i >> 8 & 255, i & 255), "reason": "flooding", "expires_ms": 4_102_444_800_000u64})
                .to_string(),
        ),
        (_, "put") => Intent::Put(json!(format!("value {i}")).to_string()),
        (_, "add") => Intent::Add(format!("member-{i}")),
        _ => Intent::Count(1),
    }
}

/// Merge rate and bytes per update, measured in this process.
struct Local {
    deltas: usize,
    verified_per_sec: f64,
    applied_per_sec: f64,
    bytes: Vec<(String, usize)>,
}

fn local(deltas: usize) -> Local {
    let (writer_key, reader_key) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let name = |k: &Keypair| k.public().to_peer_id().to_string();
    let limits = Limits {
        max_keys: 16,
        ..Limits::default()
    };
    let mut writer = ReplicaState::new(name(&writer_key), limits);
    let now = unix_ms();
    let mut written = Vec::with_capacity(deltas);
    let mut bytes = Vec::new();
    for i in 0..deltas {
        let (key, kind) = UPDATES[i % UPDATES.len()];
        let signed = writer
            .write(key, intent(key, kind, i), now, &writer_key)
            .unwrap_or_else(|e| panic!("write {key}: {e}"));
        let encoded = signed.encode();
        if i < UPDATES.len() {
            bytes.push((format!("{key} ({kind})"), encoded.len()));
        }
        written.push(encoded);
    }
    let mut reader = ReplicaState::new(name(&reader_key), limits);
    let started = Instant::now();
    for encoded in &written {
        let (signed, delta) = SignedDelta::decode(encoded).expect("decodes");
        reader.receive(signed, delta, now).expect("merges");
    }
    let verified_per_sec = deltas as f64 / started.elapsed().as_secs_f64();
    let mut again = ReplicaState::new(name(&reader_key), limits);
    let opened: Vec<_> = written
        .iter()
        .map(|e| SignedDelta::decode(e).expect("decodes"))
        .collect();
    let started = Instant::now();
    for (signed, delta) in opened {
        again.receive(signed, delta, now).expect("merges");
    }
    let applied_per_sec = deltas as f64 / started.elapsed().as_secs_f64();
    assert_eq!(reader.snapshot(), writer.snapshot(), "the reader converged");
    Local {
        deltas,
        verified_per_sec,
        applied_per_sec,
        bytes,
    }
}

/// Milliseconds from each of `writes` writes on one node until every node of a
/// ring of `n` holds it.
fn convergence(n: usize, writes: usize) -> Vec<u64> {
    let mesh = TestMesh::ring(n);
    for i in 1..n {
        let hops = (i.min(n - i)) as u64;
        mesh.wait_route(0, i, hops, Duration::from_secs(60));
    }
    (0..writes)
        .map(|w| {
            let key = format!("flag.bench{w}");
            let writer = &mesh.nodes[(w * 7) % n];
            let started = Instant::now();
            writer
                .put(&format!("/api/v1/state/{key}"), &json!({"value": w}))
                .expect("write");
            wait_for(Duration::from_secs(60), &format!("{key} on every node"), || {
                mesh.nodes
                    .iter()
                    .all(|node| {
                        node.get(&format!("/api/v1/state/{key}"))
                            .is_ok_and(|e| e["value"] == json!(w))
                    })
                    .then_some(())
            });
            started.elapsed().as_millis() as u64
        })
        .collect()
}

/// Runs both parts, prints tables and a JSON line.
pub fn run(quick: bool) {
    let (deltas, sizes, writes) = if quick {
        (5_000, [4, 8], 3)
    } else {
        (50_000, [8, 20], 10)
    };
    let local = local(deltas);
    println!("sync: {} deltas merged by one replica", local.deltas);
    println!("| step | deltas/s |");
    println!("|---|---|");
    println!("| signature checked and applied | {:.0} |", local.verified_per_sec);
    println!("| applied alone | {:.0} |", local.applied_per_sec);
    println!("\n| update | bytes of the signed delta |");
    println!("|---|---|");
    for (update, bytes) in &local.bytes {
        println!("| {update} | {bytes} |");
    }
    let mut meshes = Vec::new();
    println!("\n| nodes (ring) | writes | p50 ms | max ms |");
    println!("|---|---|---|---|");
    for n in sizes {
        let mut times = convergence(n, writes);
        times.sort_unstable();
        let (p50, max) = (times[times.len() / 2], times[times.len() - 1]);
        println!("| {n} | {writes} | {p50} | {max} |");
        meshes.push(json!({"nodes": n, "writes": writes, "p50_ms": p50, "max_ms": max}));
    }
    let line = json!({
        "bench": "sync",
        "deltas": local.deltas,
        "merged_per_sec_verified": local.verified_per_sec,
        "merged_per_sec_applied": local.applied_per_sec,
        "bytes_per_update": local.bytes.iter().map(|(u, b)| json!({"update": u, "bytes": b})).collect::<Vec<_>>(),
        "convergence": meshes,
    });
    println!("{line}");
}
