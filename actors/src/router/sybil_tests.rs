//! One neighbour floods the link-state database with 10,000 fresh identities
//! (a tree of made-up nodes behind it, every link reported by both ends, as
//! a liar controlling all of them can do): honest nodes keep their routes,
//! and honest nodes that arrive after the flood still get in.

use std::collections::HashMap;

use libp2p::PeerId;

use super::tests::{beacon, router};
use super::RouterActor;

const FLOOD: usize = 10_000;
const FAN_OUT: usize = 16;

/// Honest chains hanging off the local node: `heads[i]` is a neighbour,
/// followed by `len - 1` nodes in a line.
struct Honest {
    chains: Vec<Vec<PeerId>>,
    seq: u64,
}

impl Honest {
    fn new(chains: usize, len: usize) -> Self {
        let chains = (0..chains)
            .map(|_| (0..len).map(|_| PeerId::random()).collect())
            .collect();
        Self { chains, seq: 0 }
    }

    fn all(&self) -> impl Iterator<Item = &PeerId> {
        self.chains.iter().flatten()
    }

    /// Every honest node's beacon once more (a new sequence number).
    fn announce(&mut self, router: &mut RouterActor) {
        self.seq += 1;
        for chain in &self.chains {
            for (i, node) in chain.iter().enumerate() {
                let before = if i == 0 { router.local } else { chain[i - 1] };
                let mut links = vec![(before, 1.0, false)];
                links.extend(chain.get(i + 1).map(|after| (*after, 1.0, false)));
                router.on_beacon(beacon(*node, self.seq, &links));
            }
        }
    }

    fn connect(&self, router: &mut RouterActor) {
        for chain in &self.chains {
            router.db.local_links.push((chain[0], 1_000));
        }
    }
}

/// The attacker: a neighbour of the local node, and `FLOOD` made-up nodes
/// in a tree below it (each lists its parent and its children).
struct Sybils {
    head: PeerId,
    fakes: Vec<PeerId>,
}

impl Sybils {
    fn new() -> Self {
        Self {
            head: PeerId::random(),
            fakes: (0..FLOOD).map(|_| PeerId::random()).collect(),
        }
    }

    fn children(&self, parent: Option<usize>) -> impl Iterator<Item = PeerId> + '_ {
        let first = parent.map_or(0, |p| FAN_OUT + p * FAN_OUT);
        self.fakes.iter().skip(first).take(FAN_OUT).copied()
    }

    fn parent(&self, i: usize) -> PeerId {
        if i < FAN_OUT {
            self.head
        } else {
            self.fakes[(i - FAN_OUT) / FAN_OUT]
        }
    }

    /// The head's beacon, then every fake's, breadth first; the routing table
    /// is recomputed every 200 beacons (the router's timer does it that
    /// often under such a flood) and `between` runs every 1,000, with how
    /// many fakes were sent.
    fn flood(&self, router: &mut RouterActor, mut between: impl FnMut(&mut RouterActor, usize)) {
        let mut links = vec![(router.local, 1.0, false)];
        links.extend(self.children(None).map(|c| (c, 1.0, false)));
        router.on_beacon(beacon(self.head, 1, &links));
        router.recompute();
        for (i, fake) in self.fakes.iter().enumerate() {
            let mut links = vec![(self.parent(i), 1.0, false)];
            links.extend(self.children(Some(i)).map(|c| (c, 1.0, false)));
            router.on_beacon(beacon(*fake, 1, &links));
            if i % 200 == 199 {
                router.recompute();
            }
            if i % 1_000 == 999 {
                between(router, i + 1);
            }
        }
        router.recompute();
    }
}

fn routed(router: &RouterActor) -> HashMap<PeerId, PeerId> {
    router.forwarder.table().iter().map(|(dst, r)| (*dst, r.next)).collect()
}

#[test]
fn honest_nodes_keep_their_routes_while_one_neighbour_floods_ten_thousand_identities() {
    let mut router = router();
    let max = router.db.config.max_nodes;
    let mut early = Honest::new(2, 20);
    let mut late = Honest::new(1, 20);
    let sybils = Sybils::new();
    early.connect(&mut router);
    router.db.local_links.push((sybils.head, 1_000));
    early.announce(&mut router);
    router.recompute();
    assert_eq!(routed(&router).len(), 40, "every honest node routed before the flood");

    // Halfway through the flood (the database long full), another honest
    // neighbour comes up with its chain.
    sybils.flood(&mut router, |router, sent| {
        early.announce(router);
        if sent == FLOOD / 2 {
            late.connect(router);
        }
        if sent >= FLOOD / 2 {
            late.announce(router);
        }
    });

    let table = routed(&router);
    for node in early.all().chain(late.all()) {
        assert!(
            table.contains_key(node),
            "honest node {node} without a route after the flood"
        );
    }
    assert!(
        router.db.nodes.len() <= max,
        "{} nodes over the bound of {max}",
        router.db.nodes.len()
    );
    let fakes_in = sybils.fakes.iter().filter(|f| router.db.nodes.contains_key(*f)).count();
    assert!(
        fakes_in < FLOOD && router.db.nodes.len() == max,
        "the flood filled the rest of the database and no more: {fakes_in} fakes in"
    );
    println!("{fakes_in} of {FLOOD} made-up identities admitted; all 60 honest nodes routed");
}

#[test]
fn honest_nodes_arriving_after_the_flood_displace_the_flooders_share() {
    let mut router = router();
    let max = router.db.config.max_nodes;
    let sybils = Sybils::new();
    router.db.local_links.push((sybils.head, 1_000));
    sybils.flood(&mut router, |_, _| {});
    assert_eq!(router.db.nodes.len(), max, "the flood alone fills the database");

    let mut honest = Honest::new(3, 30);
    honest.connect(&mut router);
    // Beacons arrive in any order: a node whose link to the graph is not yet
    // confirmed from the other end is refused and gets in with its next beacon.
    for _ in 0..3 {
        honest.announce(&mut router);
        router.recompute();
    }
    let table = routed(&router);
    let missing: Vec<&PeerId> = honest.all().filter(|n| !table.contains_key(*n)).collect();
    assert!(
        missing.is_empty(),
        "{} of 90 honest latecomers without a route",
        missing.len()
    );
    assert_eq!(router.db.nodes.len(), max, "room was made, the bound kept");
    // The flood keeps getting refused now that its group is the largest.
    let before: Vec<PeerId> = router.db.nodes.keys().copied().collect();
    sybils.flood(&mut router, |_, _| {});
    for node in honest.all() {
        assert!(
            router.db.nodes.contains_key(node),
            "a second flood evicted honest {node}"
        );
    }
    assert!(before.iter().filter(|n| router.db.nodes.contains_key(*n)).count() == max);
}
