//! Convergence of replicas under any order of operations and any delivery:
//! property tests (proptest) and a garbage-collection run of 100,000 operations.

use libp2p::identity::Keypair;
use proptest::prelude::*;

use super::crdt::{Crdt, Intent};
use super::delta::SignedDelta;
use super::replica::{Answer, Limits, ReplicaState, Snapshot};

/// A few replicas in memory, the deltas they wrote, and a clock.
struct Mesh {
    replicas: Vec<ReplicaState>,
    keys: Vec<Keypair>,
    written: Vec<SignedDelta>,
    now_ms: u64,
}

impl Mesh {
    fn new(n: usize) -> Self {
        let keys: Vec<Keypair> = (0..n).map(|_| Keypair::generate_ed25519()).collect();
        let replicas = keys
            .iter()
            .map(|k| ReplicaState::new(k.public().to_peer_id().to_string(), Limits::default()))
            .collect();
        Self {
            replicas,
            keys,
            written: Vec::new(),
            now_ms: 1_000_000,
        }
    }

    /// `replica` writes; an intent that does not apply (removing what is not
    /// there) writes nothing.
    fn write(&mut self, replica: usize, key: &str, intent: Intent) -> Option<usize> {
        self.now_ms += 1;
        let signed = self.replicas[replica]
            .write(key, intent, self.now_ms, &self.keys[replica])
            .ok()?;
        self.written.push(signed);
        Some(self.written.len() - 1)
    }

    /// Delivers written delta `index` to `replica` (as gossip would).
    fn deliver(&mut self, index: usize, replica: usize) {
        let signed = self.written[index].clone();
        let delta = body(&signed);
        self.replicas[replica]
            .receive(signed, delta, self.now_ms)
            .expect("valid deltas are taken");
    }

    /// Delivers written delta `index` to `replica` as the node does: an early
    /// one makes it fetch what comes before from the writer.
    fn deliver_or_fetch(&mut self, index: usize, replica: usize, writer: usize) {
        let signed = self.written[index].clone();
        let delta = body(&signed);
        let received = self.replicas[replica].receive(signed, delta, self.now_ms);
        if received.expect("valid deltas are taken") == super::replica::Received::Buffered {
            self.exchange(replica, writer);
        }
    }

    /// One anti-entropy exchange: `a` sends its clock, `b` answers, `a` pushes back.
    fn exchange(&mut self, a: usize, b: usize) -> bool {
        let (a_name, b_name) = (self.replicas[a].me().clone(), self.replicas[b].me().clone());
        let (a_clock, b_clock) = (self.replicas[a].clock().clone(), self.replicas[b].clock().clone());
        self.replicas[b].heard(&a_name, a_clock.clone(), self.now_ms);
        self.replicas[a].heard(&b_name, b_clock.clone(), self.now_ms);
        let answer = self.replicas[b].answer(&a_clock, 64);
        let mut full = self.take(a, answer);
        let push = self.replicas[a].answer(&b_clock, 64);
        full |= self.take(b, push);
        full
    }

    /// Applies an answer; whether it was a whole state.
    fn take(&mut self, replica: usize, answer: Answer) -> bool {
        match answer {
            Answer::Deltas { deltas, .. } => {
                for signed in deltas {
                    let delta = body(&signed);
                    self.replicas[replica]
                        .receive(signed, delta, self.now_ms)
                        .expect("taken");
                }
                false
            }
            Answer::Full(snapshot) => {
                self.replicas[replica].install(snapshot, self.now_ms).expect("installs");
                true
            }
        }
    }

    /// Anti-entropy between every pair until nothing moves.
    fn settle(&mut self) {
        let all: Vec<usize> = (0..self.replicas.len()).collect();
        self.settle_among(&all);
    }

    /// Anti-entropy between every pair of `among` until nothing moves.
    fn settle_among(&mut self, among: &[usize]) {
        for _ in 0..64 {
            let before: Vec<_> = self.replicas.iter().map(|r| r.clock().clone()).collect();
            for &a in among {
                for &b in among {
                    if a != b {
                        self.exchange(a, b);
                    }
                }
            }
            let after: Vec<_> = self.replicas.iter().map(|r| r.clock().clone()).collect();
            if before == after {
                return;
            }
        }
    }

    fn assert_converged(&self) {
        let first = self.replicas[0].snapshot();
        for replica in &self.replicas[1..] {
            assert_eq!(replica.snapshot(), first, "replica {} differs", replica.me());
        }
    }
}

/// The delta inside (its signature is checked elsewhere: `SyncNode::receive`).
fn body(signed: &SignedDelta) -> super::delta::Delta {
    postcard::from_bytes(&signed.body).expect("our own deltas decode")
}

/// One step of a random history.
#[derive(Debug, Clone)]
enum Step {
    Write { replica: usize, key: usize, intent: Intent },
    Deliver { delta: usize, replica: usize, twice: bool },
    Exchange { a: usize, b: usize },
}

const KEYS: [&str; 5] = ["flag.a", "note.b", "set.c", "counter.d", "quarantine"];

fn intent_for(key: usize) -> BoxedStrategy<Intent> {
    match KEYS[key] {
        "flag.a" | "note.b" => {
            prop_oneof![(0..4u8).prop_map(|v| Intent::Put(v.to_string())), Just(Intent::Delete)].boxed()
        }
        "counter.d" => (-3i64..4).prop_map(Intent::Count).boxed(),
        _ => prop_oneof![
            (0..4u8).prop_map(|m| Intent::Add(format!("m{m}"))),
            (0..4u8).prop_map(|m| Intent::Remove(format!("m{m}"))),
            Just(Intent::Delete)
        ]
        .boxed(),
    }
}

fn step(replicas: usize) -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..replicas, 0..KEYS.len()).prop_flat_map(|(replica, key)| {
            intent_for(key).prop_map(move |intent| Step::Write { replica, key, intent })
        }),
        3 => (0..64usize, 0..replicas, any::<bool>()).prop_map(|(delta, replica, twice)| Step::Deliver { delta, replica, twice }),
        1 => (0..replicas, 0..replicas).prop_map(|(a, b)| Step::Exchange { a, b }),
    ]
}

/// Runs `steps` on a mesh of `n`: writes, deliveries of any written delta to any
/// replica (out of order, twice, or never), exchanges.
fn run(n: usize, steps: &[Step]) -> Mesh {
    let mut mesh = Mesh::new(n);
    for step in steps {
        match step {
            Step::Write { replica, key, intent } => {
                mesh.write(*replica, KEYS[*key], intent.clone());
            }
            Step::Deliver { delta, replica, twice } => {
                if mesh.written.is_empty() {
                    continue;
                }
                let index = delta % mesh.written.len();
                mesh.deliver(index, *replica);
                if *twice {
                    mesh.deliver(index, *replica);
                }
            }
            Step::Exchange { a, b } if a != b => {
                mesh.exchange(*a, *b);
            }
            Step::Exchange { .. } => {}
        }
    }
    mesh
}

/// The value of `key` at each replica.
fn values(mesh: &Mesh, key: &str) -> Vec<Crdt> {
    mesh.replicas
        .iter()
        .map(|r| {
            r.get(key)
                .map(|e| e.crdt.clone())
                .unwrap_or_else(|| Crdt::empty(super::KeyKind::of(key).expect("a key")))
        })
        .collect()
}

fn merged(mut a: Crdt, b: Crdt) -> Crdt {
    a.merge(b);
    a
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Merge of each type is commutative, associative and idempotent, for
    /// values reached by any history of three replicas.
    #[test]
    fn merge_is_commutative_associative_and_idempotent(steps in prop::collection::vec(step(3), 1..60)) {
        let mesh = run(3, &steps);
        for key in KEYS {
            let [a, b, c]: [Crdt; 3] = values(&mesh, key).try_into().expect("three");
            prop_assert_eq!(merged(a.clone(), b.clone()), merged(b.clone(), a.clone()), "commutative: {}", key);
            prop_assert_eq!(
                merged(merged(a.clone(), b.clone()), c.clone()),
                merged(a.clone(), merged(b.clone(), c.clone())),
                "associative: {}", key
            );
            prop_assert_eq!(merged(a.clone(), a.clone()), a.clone(), "idempotent: {}", key);
        }
    }

    /// Any order of operations and any delivery (duplicates, drops, early
    /// deltas) ends, after anti-entropy, in one state on every replica.
    #[test]
    fn random_orders_and_deliveries_converge(steps in prop::collection::vec(step(4), 1..120)) {
        let mut mesh = run(4, &steps);
        mesh.settle();
        mesh.assert_converged();
        for replica in &mesh.replicas {
            prop_assert_eq!(replica.pending_len(), 0, "nothing left waiting");
        }
    }

    /// A state transfer merged in any order converges like deltas do.
    #[test]
    fn whole_state_transfers_converge(steps in prop::collection::vec(step(3), 1..60)) {
        let mut mesh = run(3, &steps);
        let snapshots: Vec<Snapshot> = mesh.replicas.iter().map(|r| r.snapshot()).collect();
        let now = mesh.now_ms;
        for (i, replica) in mesh.replicas.iter_mut().enumerate() {
            for (j, snapshot) in snapshots.iter().enumerate().rev() {
                if i != j {
                    replica.install(snapshot.clone(), now).expect("installs");
                }
            }
        }
        mesh.settle();
        mesh.assert_converged();
    }
}

/// 100,000 add/remove operations over 8 replicas, gossip losing a tenth,
/// anti-entropy and garbage collection every 2,000 operations: the state and
/// the log stay bounded, tombstones go once stable, and a replica offline past
/// the horizon comes back by a whole-state transfer without resurrecting
/// anything removed while it was away.
#[test]
fn garbage_collection_keeps_state_bounded_and_removed_entries_removed() {
    use rand::{Rng, SeedableRng};
    let seed = 0x5eed;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (n, ops, offline) = (8usize, 100_000usize, 7usize);
    let horizon_ms = 600_000;
    let mut mesh = Mesh::new(n);
    let mut largest = (0usize, 0usize);
    let mut offline_since = None;
    for op in 0..ops {
        let writer = rng.gen_range(0..n - usize::from(offline_since.is_some()));
        let member = format!("peer-{}", rng.gen_range(0..64));
        let intent = match rng.gen_bool(0.5) {
            true => Intent::Add(member),
            false => Intent::Remove(member),
        };
        let key = if op % 10 == 0 { "flag.tomb" } else { "denied_peers" };
        let intent = match (key, op % 20) {
            ("flag.tomb", 0) => Intent::Put(op.to_string()),
            ("flag.tomb", _) => Intent::Delete,
            _ => intent,
        };
        if let Some(index) = mesh.write(writer, key, intent) {
            for to in 0..n {
                let away = offline_since.is_some() && to == offline;
                if to != writer && !away && rng.gen_bool(0.9) {
                    mesh.deliver_or_fetch(index, to, writer);
                }
            }
        }
        mesh.now_ms += 10;
        if op == ops / 2 {
            offline_since = Some(mesh.now_ms);
        }
        if op % 2_000 == 1_999 {
            for a in 0..n {
                if offline_since.is_some() && a == offline {
                    continue;
                }
                let b = (a + 1 + rng.gen_range(0..n - 1)) % n;
                if !(offline_since.is_some() && b == offline) {
                    mesh.exchange(a, b);
                }
            }
            let now = mesh.now_ms;
            for (i, replica) in mesh.replicas.iter_mut().enumerate() {
                if !(offline_since.is_some() && i == offline) {
                    replica.collect(now, horizon_ms).expect("collects");
                }
            }
            for replica in &mesh.replicas {
                largest = largest.max((replica.state_bytes(), replica.log_len()));
            }
            // Past the horizon the offline replica stops holding anyone back.
            if offline_since.is_some_and(|since| now - since < horizon_ms) {
                mesh.now_ms += horizon_ms / 20;
            }
        }
    }
    let (bytes, log) = largest;
    println!("gc: {ops} operations over {n} replicas (seed {seed:#x}): largest state {bytes} bytes, largest log {log} deltas");
    assert!(
        log < 20_000,
        "the log is collected as deltas become stable ({log} held at most)"
    );
    assert!(bytes < 64 * 1024, "the state stays bounded ({bytes} bytes at most)");

    // The others settle among themselves; what they hold is what the replica
    // that was away must end up with (it wrote nothing while away).
    let online: Vec<usize> = (0..n - 1).collect();
    mesh.settle_among(&online);
    let members = |mesh: &Mesh, i: usize| -> Vec<String> {
        mesh.replicas[i]
            .get("denied_peers")
            .map(|e| e.crdt.members())
            .unwrap_or_default()
    };
    let (online_members, stale) = (members(&mesh, 0), members(&mesh, offline));
    assert_ne!(online_members, stale, "the set changed while the replica was away");
    let full = mesh.exchange(offline, 0);
    assert!(full, "a replica back after the horizon takes the whole state");
    mesh.settle();
    mesh.assert_converged();
    assert_eq!(
        members(&mesh, offline),
        online_members,
        "nothing removed while it was away came back"
    );

    // Everyone has everything: the deleted flag is a tombstone every replica
    // has seen, and goes.
    let now = mesh.now_ms;
    for replica in &mut mesh.replicas {
        replica.collect(now, horizon_ms).expect("collects");
    }
    assert!(
        mesh.replicas.iter().all(|r| r.get("flag.tomb").is_none()),
        "the stable tombstone is collected"
    );
    println!(
        "gc: after rejoining by whole state: {} members everywhere, log {} deltas, stale members it had dropped: {}",
        online_members.len(),
        mesh.replicas[0].log_len(),
        stale.iter().filter(|m| !online_members.contains(m)).count()
    );
}

/// A node's replica with a Rego policy that denies writes by `denied`, and a
/// mesh that never runs (deltas it publishes go nowhere).
fn node_denying(denied: &str, dir: &std::path::Path) -> std::sync::Arc<super::SyncNode> {
    use std::sync::Arc;
    std::fs::write(
        dir.join("admin.rego"),
        format!("package x0tta6bl4.admin\ndeny if input.client == \"{denied}\"\n"),
    )
    .expect("policy file");
    let policy = crate::policy::Policy::load(&crate::policy::PolicyConfig {
        dir: Some(dir.to_path_buf()),
        reload_ms: 1_000,
    })
    .expect("policy loads");
    let keypair = Keypair::generate_ed25519();
    let neighbours = Arc::new(crate::mesh::Neighbours::default());
    let store = crate::store::Store::temporary().expect("store");
    let mesh = crate::mesh::handle(crate::mesh::MeshParts {
        config: crate::mesh::MeshConfig::default(),
        name: "test".into(),
        keypair: keypair.clone(),
        store: store.clone(),
        frames: Arc::new(crate::router::forwarder::Forwarder::new(
            keypair.public().to_peer_id(),
            crate::router::RouterConfig::default(),
            neighbours.clone(),
        )),
        neighbours,
        pq_binding: None,
        pq_beacons: None,
        svid: None,
    });
    super::SyncNode::open(
        super::SyncConfig::default(),
        keypair,
        Some(&store),
        Some(Arc::new(policy)),
        mesh,
    )
    .expect("opens")
}

/// A delta of `writer` setting `flag.x`, `seq` 1, at `at_ms`.
fn flag_delta(writer: &Keypair, at_ms: u64) -> super::delta::Delta {
    let name = writer.public().to_peer_id().to_string();
    super::delta::Delta {
        writer: name.clone(),
        seq: 1,
        at_ms,
        key: "flag.x".into(),
        change: super::crdt::Change::Lww {
            value: "true".into(),
            marker: super::crdt::Marker {
                ms: at_ms,
                writer: name,
            },
        },
    }
}

#[test]
fn forged_denied_oversized_and_future_deltas_are_refused_with_a_reason_and_change_nothing() {
    use libp2p::gossipsub::MessageAcceptance;

    use crate::mesh::{unix_ms, SyncHandler};
    let dir = tempfile::tempdir().expect("dir");
    let (honest, outcast, forger) = (
        Keypair::generate_ed25519(),
        Keypair::generate_ed25519(),
        Keypair::generate_ed25519(),
    );
    let node = node_denying(&outcast.public().to_peer_id().to_string(), dir.path());
    let now = unix_ms();
    let refused = |bytes: Vec<u8>| -> super::SyncError {
        let error = SignedDelta::decode(&bytes)
            .and_then(|(signed, _)| node.receive(signed))
            .expect_err("refused");
        assert_eq!(node.on_gossip(None, &bytes), MessageAcceptance::Reject, "{error}");
        error
    };

    let forged = SignedDelta::sign(&flag_delta(&honest, now), &forger).expect("signs");
    assert_eq!(refused(forged.encode()).reason(), "wrong_signer");
    let denied = SignedDelta::sign(&flag_delta(&outcast, now), &outcast).expect("signs");
    assert_eq!(refused(denied.encode()).reason(), "policy");
    let ahead = SignedDelta::sign(&flag_delta(&honest, now + 3_600_000), &honest).expect("signs");
    assert_eq!(refused(ahead.encode()).reason(), "clock_ahead");
    assert_eq!(
        refused(vec![7u8; super::delta::MAX_DELTA_BYTES + 1]).reason(),
        "too_large"
    );
    let mut tampered = SignedDelta::sign(&flag_delta(&honest, now), &honest).expect("signs");
    tampered.signature[0] ^= 1;
    assert_eq!(refused(tampered.encode()).reason(), "bad_signature");
    assert_eq!(refused(b"not a delta".to_vec()).reason(), "malformed");
    assert!(node.view().entries.is_empty(), "nothing refused changed the state");
    assert!(node.clock().is_empty());

    // The same write, honest and in time, is taken.
    let good = SignedDelta::sign(&flag_delta(&honest, now), &honest).expect("signs");
    assert_eq!(node.on_gossip(None, &good.encode()), MessageAcceptance::Accept);
    assert_eq!(node.value("flag.x"), Some(serde_json::json!(true)));
}

#[test]
fn the_replica_in_sled_survives_a_restart_whole() {
    use super::persist::Persist;
    let dir = tempfile::tempdir().expect("dir");
    let mut mesh = Mesh::new(2);
    mesh.write(1, "note.n", Intent::Put("\"theirs\"".into()));
    let me = mesh.replicas[0].me().clone();
    let (before, log) = {
        let store = crate::store::Store::open(dir.path()).expect("store");
        let mut replica = ReplicaState::load(me.clone(), Limits::default(), Persist::open(&store).expect("trees"))
            .expect("loads empty");
        let now = mesh.now_ms;
        for (key, intent) in [
            ("flag.a", Intent::Put("1".into())),
            ("set.s", Intent::Add("x".into())),
            ("counter.c", Intent::Count(-2)),
        ] {
            replica.write(key, intent, now, &mesh.keys[0]).expect("writes");
        }
        let theirs = mesh.written[0].clone();
        replica.receive(theirs.clone(), body(&theirs), now).expect("takes");
        store.flush().expect("flush");
        (replica.snapshot(), replica.log_len())
    };
    let store = crate::store::Store::open(dir.path()).expect("store again");
    let replica = ReplicaState::load(me, Limits::default(), Persist::open(&store).expect("trees")).expect("loads");
    assert_eq!(replica.snapshot(), before, "entries and version vector as they were");
    assert_eq!(replica.log_len(), log, "the log too");
    assert_eq!(replica.clock().values().sum::<u64>(), 4);
}

#[test]
fn a_state_transfer_with_a_bad_key_is_refused_whole_and_changes_nothing() {
    let mut mesh = Mesh::new(2);
    mesh.write(0, "flag.a", Intent::Put("1".into()));
    mesh.write(1, "set.s", Intent::Add("x".into()));
    let before = mesh.replicas[0].snapshot();
    let mut bad = mesh.replicas[1].snapshot();
    let entry = bad.entries["set.s"].clone();
    bad.entries.insert("nope".into(), entry.clone());
    assert!(mesh.replicas[0].install(bad, mesh.now_ms).is_err(), "an unknown key");
    let mut wrong_kind = mesh.replicas[1].snapshot();
    wrong_kind.entries.insert("flag.b".into(), entry);
    assert!(
        mesh.replicas[0].install(wrong_kind, mesh.now_ms).is_err(),
        "a set under a flag's key"
    );
    assert_eq!(mesh.replicas[0].snapshot(), before, "nothing changed");
}
