//! `x0tta6bl4 watch`: a light client that joins the mesh, prints every node it
//! learns from beacons, and shows the topology as it changes.
//!
//! It is deliberately small and uses nothing but rust-libp2p and the beacon
//! decoder, so it doubles as the example for integrators (see
//! docs/PROTOCOL.md): TCP, Noise, Yamux, identify, ping and gossipsub with
//! signed messages on the beacon topic. It does not speak the frame protocol,
//! so the nodes keep it as a light peer: no routing through it, no healing.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{gossipsub, identify, noise, ping, tcp, yamux, Multiaddr};
use serde::Serialize;
use x0tta6bl4_actors::mesh::beacon::{Beacon, ValidBeacon, BEACON_TOPIC};

/// A node not heard from for this long leaves the shown topology.
const FORGET_AFTER: Duration = Duration::from_secs(10);
/// How often the topology is printed (when it changed).
const SHOW_EVERY: Duration = Duration::from_secs(2);

/// What the client speaks.
#[derive(NetworkBehaviour)]
struct WatchBehaviour {
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    gossipsub: gossipsub::Behaviour,
}

/// One node as its latest beacon describes it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NodeView {
    /// Its name.
    pub name: String,
    /// The peers it has live links to.
    pub links: Vec<String>,
    #[serde(skip)]
    heard: Option<Instant>,
}

/// The mesh as seen from beacons, by peer id.
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct Topology {
    /// Every node heard from lately.
    pub nodes: BTreeMap<String, NodeView>,
}

impl Topology {
    /// Takes in a beacon; whether the node is new.
    pub fn apply(&mut self, beacon: &ValidBeacon, now: Instant) -> bool {
        let mut links: Vec<String> = beacon.links.iter().map(|l| l.peer.to_string()).collect();
        links.sort();
        let view = NodeView {
            name: beacon.name.clone(),
            links,
            heard: Some(now),
        };
        self.nodes.insert(beacon.peer.to_string(), view).is_none()
    }

    /// Drops nodes silent for [`FORGET_AFTER`]; the ones dropped.
    pub fn forget_silent(&mut self, now: Instant) -> Vec<String> {
        let silent: Vec<String> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.heard.is_some_and(|h| now.duration_since(h) > FORGET_AFTER))
            .map(|(peer, _)| peer.clone())
            .collect();
        for peer in &silent {
            self.nodes.remove(peer);
        }
        silent
    }

    /// Undirected links between nodes, each once.
    pub fn link_count(&self) -> usize {
        let mut pairs: Vec<(&str, &str)> = self
            .nodes
            .iter()
            .flat_map(|(peer, n)| n.links.iter().map(move |l| ordered(peer, l)))
            .collect();
        pairs.sort_unstable();
        pairs.dedup();
        pairs.len()
    }

    /// A few lines for people: each node with the names of its neighbours.
    pub fn render(&self) -> String {
        let name_of = |peer: &str| {
            self.nodes
                .get(peer)
                .map_or_else(|| short(peer).to_owned(), |n| n.name.clone())
        };
        let mut out = format!("topology: {} nodes, {} links\n", self.nodes.len(), self.link_count());
        for (peer, node) in &self.nodes {
            let neighbours: Vec<String> = node.links.iter().map(|l| name_of(l)).collect();
            out += &format!("  {} ({}) — {}\n", node.name, short(peer), neighbours.join(", "));
        }
        out
    }
}

fn ordered<'a>(a: &'a str, b: &'a str) -> (&'a str, &'a str) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

/// The last characters of a peer id, enough to tell nodes apart on screen.
fn short(peer: &str) -> &str {
    &peer[peer.len().saturating_sub(8)..]
}

/// Joins through `bootstrap` and watches until `duration` passes (for ever
/// without one). With `json`, the topology is printed as one JSON object per
/// line instead of text.
pub fn run(bootstrap: Multiaddr, duration: Option<Duration>, json: bool) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(watch(bootstrap, duration, json))
}

async fn watch(bootstrap: Multiaddr, duration: Option<Duration>, json: bool) -> anyhow::Result<()> {
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_behaviour(|key| {
            let config = gossipsub::ConfigBuilder::default()
                .validation_mode(gossipsub::ValidationMode::Strict)
                .build()?;
            Ok(WatchBehaviour {
                identify: identify::Behaviour::new(identify::Config::new("/x0tta6bl4/watch/1".into(), key.public())),
                ping: ping::Behaviour::default(),
                gossipsub: gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Signed(key.clone()), config)?,
            })
        })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    swarm
        .behaviour_mut()
        .gossipsub
        .subscribe(&gossipsub::IdentTopic::new(BEACON_TOPIC))?;
    swarm
        .dial(bootstrap.clone())
        .context("cannot dial the bootstrap address")?;
    eprintln!(
        "watching the mesh through {bootstrap} as light peer {}",
        swarm.local_peer_id()
    );

    let deadline = duration.map(|d| tokio::time::Instant::now() + d);
    let until = async move {
        match deadline {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(until);
    let mut show = tokio::time::interval(SHOW_EVERY);
    let (mut topology, mut changed) = (Topology::default(), false);
    loop {
        tokio::select! {
            event = swarm.select_next_some() => match event {
                SwarmEvent::Behaviour(WatchBehaviourEvent::Gossipsub(gossipsub::Event::Message { message, .. })) => {
                    changed |= on_beacon(&mut topology, &message, json);
                }
                SwarmEvent::ConnectionEstablished { peer_id, .. } => eprintln!("connected to {peer_id}"),
                SwarmEvent::ConnectionClosed { peer_id, cause, .. } => {
                    eprintln!("connection to {peer_id} closed: {cause:?}");
                }
                SwarmEvent::OutgoingConnectionError { error, .. } => anyhow::bail!("cannot join the mesh: {error}"),
                _ => {}
            },
            _ = show.tick() => {
                let forgotten = topology.forget_silent(Instant::now());
                for peer in &forgotten {
                    eprintln!("node {} silent for {FORGET_AFTER:?}: forgotten", short(peer));
                }
                if changed || !forgotten.is_empty() {
                    print_topology(&topology, json);
                    changed = false;
                }
            }
            () = &mut until => {
                print_topology(&topology, json);
                return Ok(());
            }
        }
    }
}

/// Applies one beacon; whether the topology changed.
fn on_beacon(topology: &mut Topology, message: &gossipsub::Message, json: bool) -> bool {
    let beacon = match Beacon::validate(&message.data, message.source) {
        Ok(beacon) => beacon,
        Err(error) => {
            eprintln!("beacon rejected: {error}");
            return false;
        }
    };
    let before = topology.nodes.get(&beacon.peer.to_string()).cloned();
    if topology.apply(&beacon, Instant::now()) && !json {
        println!(
            "node {} ({}) with {} links",
            beacon.name,
            beacon.peer,
            beacon.links.len()
        );
    }
    let after = &topology.nodes[&beacon.peer.to_string()];
    before.is_none_or(|b| b.links != after.links || b.name != after.name)
}

fn print_topology(topology: &Topology, json: bool) {
    if json {
        match serde_json::to_string(topology) {
            Ok(line) => println!("{line}"),
            Err(error) => eprintln!("cannot encode the topology: {error}"),
        }
    } else {
        print!("{}", topology.render());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::PeerId;
    use x0tta6bl4_actors::mesh::LinkQuality;

    fn beacon(name: &str, peer: PeerId, links: &[PeerId]) -> ValidBeacon {
        ValidBeacon {
            peer,
            name: name.into(),
            addrs: Vec::new(),
            seq: 1,
            timestamp_ms: 1,
            links: links
                .iter()
                .map(|p| LinkQuality {
                    peer: *p,
                    rtt_ms: 1.0,
                    loss: 0.0,
                    avoided: false,
                })
                .collect(),
            binding: None,
            pq_signed: None,
            svid_chain: Vec::new(),
        }
    }

    #[test]
    fn a_triangle_has_three_nodes_and_three_links_and_silent_nodes_are_forgotten() {
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        let (mut topology, t) = (Topology::default(), Instant::now());
        assert!(topology.apply(&beacon("alpha", a, &[b, c]), t));
        assert!(topology.apply(&beacon("bravo", b, &[a, c]), t));
        assert!(!topology.apply(&beacon("bravo", b, &[a, c]), t), "heard again: not new");
        assert!(topology.apply(&beacon("charlie", c, &[a, b]), t + FORGET_AFTER));
        assert_eq!((topology.nodes.len(), topology.link_count()), (3, 3));
        let shown = topology.render();
        assert!(shown.starts_with("topology: 3 nodes, 3 links\n"), "{shown}");
        let alpha = shown
            .lines()
            .find(|l| l.starts_with("  alpha ("))
            .expect("a line for alpha");
        assert!(
            alpha.ends_with("— bravo, charlie") || alpha.ends_with("— charlie, bravo"),
            "{alpha}"
        );
        let forgotten = topology.forget_silent(t + FORGET_AFTER + Duration::from_millis(1));
        assert_eq!(forgotten.len(), 2);
        assert_eq!(topology.nodes.keys().collect::<Vec<_>>(), vec![&c.to_string()]);
    }
}
