//! A peer that is not x0tta6bl4: a minimal client written with rust-libp2p
//! alone (TCP, Noise, Yamux, identify, ping, gossipsub with signed messages,
//! subscribed to the beacon topic), as an integrator following
//! docs/PROTOCOL.md would write it. It must be able to stay as a light peer,
//! must not be redialled or reported by the healer once it leaves, and junk it
//! publishes must stop at the first node.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{gossipsub, identify, noise, ping, tcp, yamux, Multiaddr, PeerId};
use serde_json::Value;
use tokio::sync::mpsc;
use x0tta6bl4_integration::{metric, metrics_text, wait_for, NodeProcess, TestMesh};

/// The beacon topic, as docs/PROTOCOL.md names it.
const BEACON_TOPIC: &str = "x0tta6bl4/beacons/1";

#[derive(NetworkBehaviour)]
struct Client {
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    gossipsub: gossipsub::Behaviour,
}

/// What the client saw, shared with the test thread.
#[derive(Default)]
struct Seen {
    beacons: AtomicU64,
    connections_closed: AtomicU64,
}

/// The client, running on its own thread; dropped, it leaves.
struct LightClient {
    peer_id: PeerId,
    seen: Arc<Seen>,
    junk: mpsc::UnboundedSender<usize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LightClient {
    fn join(node: &Multiaddr) -> Self {
        let key = libp2p::identity::Keypair::generate_ed25519();
        let peer_id = key.public().to_peer_id();
        let seen = Arc::new(Seen::default());
        let (junk, commands) = mpsc::unbounded_channel();
        let (node, shared) = (node.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(run(key, node, shared, commands));
        });
        Self {
            peer_id,
            seen,
            junk,
            thread: Some(thread),
        }
    }

    fn beacons(&self) -> u64 {
        self.seen.beacons.load(Ordering::Relaxed)
    }

    fn connections_closed(&self) -> u64 {
        self.seen.connections_closed.load(Ordering::Relaxed)
    }

    /// Leaves the mesh: the swarm is dropped and its listener closed.
    fn leave(mut self) {
        let (unused, _) = mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.junk, unused));
        if let Some(thread) = self.thread.take() {
            thread.join().expect("client thread");
        }
    }
}

async fn run(
    key: libp2p::identity::Keypair,
    node: Multiaddr,
    seen: Arc<Seen>,
    mut junk: mpsc::UnboundedReceiver<usize>,
) {
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)
        .expect("tcp")
        .with_behaviour(|key| {
            let gossipsub = gossipsub::Behaviour::new(
                gossipsub::MessageAuthenticity::Signed(key.clone()),
                gossipsub::ConfigBuilder::default()
                    .validation_mode(gossipsub::ValidationMode::Strict)
                    .build()
                    .expect("gossipsub config"),
            )
            .expect("gossipsub");
            Client {
                identify: identify::Behaviour::new(identify::Config::new("/light-client/1".into(), key.public())),
                ping: ping::Behaviour::default(),
                gossipsub,
            }
        })
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(600)))
        .build();
    let topic = gossipsub::IdentTopic::new(BEACON_TOPIC);
    swarm.behaviour_mut().gossipsub.subscribe(&topic).expect("subscribe");
    // Listening makes identify announce an address, so a node that wrongly
    // redialled this client after it left would show a failed dial.
    swarm
        .listen_on("/ip4/127.0.0.1/tcp/0".parse().expect("multiaddr"))
        .expect("listen");
    swarm.dial(node).expect("dial");
    loop {
        tokio::select! {
            event = swarm.select_next_some() => match event {
                SwarmEvent::Behaviour(ClientEvent::Gossipsub(gossipsub::Event::Message { .. })) => {
                    seen.beacons.fetch_add(1, Ordering::Relaxed);
                }
                SwarmEvent::ConnectionClosed { .. } => {
                    seen.connections_closed.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            },
            count = junk.recv() => match count {
                Some(count) => {
                    for i in 0..count {
                        let payload: Vec<u8> = (0..64).map(|_| rand::random::<u8>()).collect();
                        if let Err(error) = swarm.behaviour_mut().gossipsub.publish(topic.clone(), payload) {
                            panic!("junk {i} not published: {error}");
                        }
                    }
                }
                None => return,
            },
        }
    }
}

fn counter(node: &NodeProcess, name: &str, labels: &[&str]) -> f64 {
    metric(&metrics_text(node), name, labels)
}

/// The node's view of `peer` in `GET /api/v1/peers`.
fn peer_view(node: &NodeProcess, peer: &PeerId) -> Option<Value> {
    let peers = node.get("/api/v1/peers").ok()?;
    peers["peers"]
        .as_array()?
        .iter()
        .find(|p| p["peer_id"] == peer.to_string())
        .cloned()
}

const REJECTED: &str = "x0tta_gossip_messages_total";
const ACCEPTED: &[&str] = &["verdict=\"accept\""];

#[test]
fn a_plain_libp2p_peer_stays_as_a_light_peer_and_its_junk_goes_nowhere() {
    let mut mesh = TestMesh::new();
    mesh.add("a", &[], true);
    mesh.add("b", &[0], true);
    mesh.add("c", &[1], true);
    mesh.wait_route(0, 2, 1, Duration::from_secs(30));
    let node: Multiaddr = mesh.nodes[0].bootstrap_addr.parse().expect("bootstrap multiaddr");
    let client = LightClient::join(&node);

    let light = wait_for(Duration::from_secs(20), "the client listed as a light peer", || {
        peer_view(&mesh.nodes[0], &client.peer_id).filter(|p| p["role"] == "light")
    });
    assert_eq!(light["connected"], true);
    let stay = Duration::from_secs(60);
    let started = Instant::now();
    while started.elapsed() < stay {
        std::thread::sleep(Duration::from_secs(5));
        assert_eq!(client.connections_closed(), 0, "closed after {:?}", started.elapsed());
        let view = peer_view(&mesh.nodes[0], &client.peer_id).expect("still listed");
        assert_eq!(view["role"], "light");
    }
    let beacons = client.beacons();
    assert!(beacons >= 30, "{beacons} beacons in 60 s");
    eprintln!("the client stayed 60 s as a light peer and received {beacons} beacons");
    for (i, node) in mesh.nodes.iter().enumerate() {
        let status = node.get("/api/v1/status").expect("status");
        assert_eq!(
            status["peers_connected"], 2,
            "node {i}: the client is no routing neighbour"
        );
    }

    // Junk: 1,000 signed messages of random bytes on the beacon topic.
    let before: Vec<(f64, f64)> = mesh
        .nodes
        .iter()
        .map(|n| {
            (
                counter(n, REJECTED, &["verdict=\"reject\""]),
                counter(n, REJECTED, ACCEPTED),
            )
        })
        .collect();
    client.junk.send(1_000).expect("client running");
    let score = wait_for(
        Duration::from_secs(20),
        "the client's score below the graylist threshold",
        || {
            peer_view(&mesh.nodes[0], &client.peer_id)
                .and_then(|p| p["gossip_score"].as_f64())
                .filter(|s| *s < -80.0)
        },
    );
    std::thread::sleep(Duration::from_secs(3));
    let rejected_first = counter(&mesh.nodes[0], REJECTED, &["verdict=\"reject\""]) - before[0].0;
    eprintln!("junk: the first node rejected {rejected_first} of 1,000, the client's score there {score:.1}");
    assert!(
        (3.0..100.0).contains(&rejected_first),
        "the first node rejected {rejected_first} junk messages, then ignored the graylisted sender (score {score})"
    );
    for (i, (node, (rejected, _))) in mesh.nodes.iter().zip(&before).enumerate().skip(1) {
        let now = counter(node, REJECTED, &["verdict=\"reject\""]);
        assert_eq!(now, *rejected, "node {i}: junk was forwarded to it");
        assert_eq!(counter(node, "x0tta_beacons_rejected_total", &[]), 0.0, "node {i}");
    }
    // Honest beacons keep flowing everywhere.
    for (i, (node, (_, accepted))) in mesh.nodes.iter().zip(&before).enumerate() {
        wait_for(
            Duration::from_secs(10),
            &format!("node {i}: beacons still accepted"),
            || (counter(node, REJECTED, ACCEPTED) > accepted + 5.0).then_some(()),
        );
    }

    // Leaving: no redial, no healer record, no entry left.
    let dials_failed: Vec<f64> = mesh
        .nodes
        .iter()
        .map(|n| counter(n, "x0tta_mesh_dials_failed_total", &[]))
        .collect();
    let id = client.peer_id;
    client.leave();
    wait_for(
        Duration::from_secs(10),
        "the client gone from the first node's peers",
        || peer_view(&mesh.nodes[0], &id).is_none().then_some(()),
    );
    std::thread::sleep(Duration::from_secs(6));
    for (i, (node, before)) in mesh.nodes.iter().zip(dials_failed).enumerate() {
        assert_eq!(
            counter(node, "x0tta_mesh_dials_failed_total", &[]),
            before,
            "node {i}: dialled the client after it left"
        );
        let healing = node.get("/api/v1/healing").expect("healing history");
        assert!(
            !healing.to_string().contains(&id.to_string()),
            "node {i}: the healer reported the light peer: {healing}"
        );
        assert_eq!(node.get("/api/v1/status").expect("status")["peers_connected"], 2);
    }
}
