//! Link-state graph, shortest paths and loop-free backup next hops.
//!
//! The graph is rebuilt from the freshest beacon of every node plus the local node's
//! own live links. An edge counts only when both of its ends report it, so a node
//! that died (and can no longer withdraw its own stale beacon) loses its edges as
//! soon as its neighbours' beacons stop listing it.
//!
//! Backup next hops follow loop-free alternates (RFC 5286): neighbour `n` may carry
//! traffic for `d` when `dist(n, d) < dist(n, self) + dist(self, d)`; an alternate
//! that also avoids the primary next hop (`dist(n, d) < dist(n, p) + dist(p, d)`)
//! is preferred because it survives the death of the primary node, not just the link.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

use libp2p::PeerId;

/// Cost of one link in routing units (1,000 units = 1 ms of round-trip time).
pub type Cost = u64;

/// How much costlier than the best path the path in use may be before traffic
/// moves: RTT noise between near-equal paths must not flip next hops back and
/// forth (each flip reorders messages in flight and, while neighbours' views
/// differ, can open a transient loop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hysteresis {
    /// Tolerance as a share of the best path's cost, in percent.
    pub percent: Cost,
    /// Tolerance never below this many cost units (1,000 = 1 ms), so that
    /// sub-millisecond jitter on fast links does not count as a better path.
    pub floor: Cost,
}

impl Hysteresis {
    /// The most the path in use may cost while the best costs `best`.
    pub fn tolerance(&self, best: Cost) -> Cost {
        let share = best.saturating_mul(self.percent) / 100;
        best.saturating_add(share.max(self.floor))
    }
}

impl Default for Hysteresis {
    /// 10 % or 1 ms, whichever is larger: one hop's worth, above the jitter of
    /// recent-minimum RTTs between equal links (`bench stability`), far below
    /// what a slow, loaded or lossy link adds.
    fn default() -> Self {
        Self {
            percent: 10,
            floor: 1_000,
        }
    }
}

/// Base cost of every hop, so equal-RTT paths prefer fewer hops (1 ms).
const HOP_COST: f64 = 1_000.0;

/// Cost of a link from its RTT (the smallest of recent pings, see
/// `LinkStats::routing_rtt_ms`) and loss ratio.
///
/// Loss counts twice (like ETX): a lost ping means a lost probe or a lost answer,
/// and every retransmission pays the RTT again. Loss is capped at 95 % so a dying
/// link is very expensive rather than infinite.
pub fn link_cost(rtt_ms: f64, loss: f64) -> Cost {
    let rtt_ms = if rtt_ms.is_finite() { rtt_ms.max(0.0) } else { 0.0 };
    let loss = if loss.is_finite() { loss.clamp(0.0, 0.95) } else { 0.95 };
    let delivery = (1.0 - loss) * (1.0 - loss);
    ((HOP_COST + rtt_ms * 1_000.0) / delivery) as Cost
}

/// Cost multiplier of a link its owner's healer asked to avoid: traffic leaves
/// it for any path up to a thousand times longer, but it still carries traffic
/// when nothing else is left.
pub const AVOID_PENALTY: Cost = 1_000;

/// Cost of a reported link: [`link_cost`], times [`AVOID_PENALTY`] when avoided.
pub fn quality_cost(link: &crate::mesh::LinkQuality) -> Cost {
    let cost = link_cost(link.rtt_ms, link.loss);
    match link.avoided {
        true => cost.saturating_mul(AVOID_PENALTY),
        false => cost,
    }
}

/// Cost of an edge whose ends report it at `a_to_b` and `b_to_a`: their mean
/// (each halved first, so no sum overflows), at least 1.
pub fn edge_cost(a_to_b: Cost, b_to_a: Cost) -> Cost {
    (a_to_b / 2 + b_to_a / 2).max(1)
}

/// Undirected weighted graph of the mesh.
#[derive(Debug, Default, Clone)]
pub struct Graph {
    adj: HashMap<PeerId, Vec<(PeerId, Cost)>>,
    /// Nodes that may be destinations but never relays (policy).
    no_transit: HashSet<PeerId>,
    /// When the previous next hop keeps its traffic.
    hysteresis: Hysteresis,
}

/// One route of the routing table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Neighbour traffic goes to: the first hop of the shortest path, or the
    /// previous next hop while the hysteresis keeps it.
    pub next: PeerId,
    /// Loop-free alternate neighbour, used at once if `next` goes down.
    pub backup: Option<PeerId>,
    /// Cost of the path through `next` (`next`'s own shortest path onwards).
    pub cost: Cost,
    /// Links on that path.
    pub hops: u32,
}

/// Shortest-path result for one destination.
#[derive(Debug, Clone, Copy)]
struct Reach {
    dist: Cost,
    first_hop: PeerId,
    hops: u32,
}

impl Graph {
    /// Builds the graph from the local node's links and every node's reported links.
    ///
    /// `reports` maps a node to the links its latest beacon lists. An edge `u–v`
    /// enters the graph only when `u` lists `v` and `v` lists `u`; its cost is the
    /// mean of the two reports. The local node's links come from `local_links`.
    pub fn build(
        local: PeerId,
        local_links: &[(PeerId, Cost)],
        reports: &HashMap<PeerId, Vec<(PeerId, Cost)>>,
    ) -> Self {
        let listed = |node: &PeerId| -> Option<&[(PeerId, Cost)]> {
            if *node == local {
                Some(local_links)
            } else {
                reports.get(node).map(Vec::as_slice)
            }
        };
        let mut graph = Graph::default();
        let nodes = reports.keys().copied().chain(std::iter::once(local));
        for u in nodes {
            let Some(links) = listed(&u) else { continue };
            for &(v, cost_uv) in links {
                if v == u || u > v && listed(&v).is_some() {
                    // Each confirmed edge is added once, from its smaller end.
                    continue;
                }
                let Some(back) = listed(&v).and_then(|l| l.iter().find(|(w, _)| *w == u)) else {
                    continue;
                };
                let cost = edge_cost(cost_uv, back.1);
                graph.adj.entry(u).or_default().push((v, cost));
                graph.adj.entry(v).or_default().push((u, cost));
            }
        }
        graph
    }

    /// Number of nodes with at least one edge.
    pub fn node_count(&self) -> usize {
        self.adj.len()
    }

    /// Every edge once, as `(a, b, cost)` with `a < b`.
    pub fn edges(&self) -> Vec<(PeerId, PeerId, Cost)> {
        let mut edges: Vec<_> = self
            .adj
            .iter()
            .flat_map(|(u, vs)| vs.iter().filter(move |(v, _)| u < v).map(move |(v, c)| (*u, *v, *c)))
            .collect();
        edges.sort();
        edges
    }

    fn neighbours(&self, node: &PeerId) -> &[(PeerId, Cost)] {
        self.adj.get(node).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Dijkstra from `source`. Ties break on the smaller first-hop peer id so every
    /// run of the same graph picks the same paths.
    fn shortest_paths(&self, source: PeerId) -> HashMap<PeerId, Reach> {
        let mut best: HashMap<PeerId, Reach> = HashMap::new();
        let mut heap = BinaryHeap::new();
        for &(v, cost) in self.neighbours(&source) {
            heap.push(Reverse((cost, v, v, 1u32)));
        }
        while let Some(Reverse((dist, node, first_hop, hops))) = heap.pop() {
            if node == source || best.contains_key(&node) {
                continue;
            }
            best.insert(node, Reach { dist, first_hop, hops });
            if self.no_transit.contains(&node) {
                continue;
            }
            for &(next, cost) in self.neighbours(&node) {
                if !best.contains_key(&next) {
                    heap.push(Reverse((dist.saturating_add(cost), next, first_hop, hops + 1)));
                }
            }
        }
        best
    }

    /// The graph with `nodes` kept as destinations but never used as relays.
    pub fn without_transit_through(mut self, nodes: HashSet<PeerId>) -> Self {
        self.no_transit = nodes;
        self
    }

    /// The graph with `hysteresis` deciding when a previous next hop is kept.
    pub fn with_hysteresis(mut self, hysteresis: Hysteresis) -> Self {
        self.hysteresis = hysteresis;
        self
    }

    /// The routing table of `local`: a primary and, where one exists, a loop-free
    /// backup next hop for every reachable destination.
    ///
    /// With a `previous` table, a destination keeps its previous next hop while
    /// that neighbour is downstream (closer to the destination than this node)
    /// and the path through it costs no more than the [`Hysteresis`] tolerates.
    pub fn routing_table(&self, local: PeerId, previous: Option<&HashMap<PeerId, Route>>) -> HashMap<PeerId, Route> {
        let from_local = self.shortest_paths(local);
        let neighbours = self.neighbours(&local);
        let from_neighbour: HashMap<PeerId, HashMap<PeerId, Reach>> =
            neighbours.iter().map(|(n, _)| (*n, self.shortest_paths(*n))).collect();
        let dist = |from: &PeerId, to: &PeerId| -> Cost {
            if from == to {
                return 0;
            }
            from_neighbour
                .get(from)
                .and_then(|m| m.get(to))
                .map_or(Cost::MAX, |r| r.dist)
        };

        // Cost and hops from `local` to `dest` through neighbour `n`, if `n` is
        // downstream: strictly closer to `dest` than `local` is (RFC 5286's
        // downstream condition). Every node keeping a previous hop only on
        // that condition hands a frame to ever closer nodes, so two nodes that
        // both keep can never bounce it between them.
        let downstream = |n: &PeerId, dest: &PeerId, best: Cost| -> Option<(Cost, u32)> {
            if n != dest && self.no_transit.contains(n) {
                return None;
            }
            let link = neighbours.iter().find(|(m, _)| m == n)?.1;
            let (n_to_d, hops) = if n == dest {
                (0, 0)
            } else {
                from_neighbour.get(n)?.get(dest).map(|r| (r.dist, r.hops))?
            };
            (n_to_d < best).then_some((link.saturating_add(n_to_d), hops + 1))
        };

        let mut table = HashMap::with_capacity(from_local.len());
        for (dest, reach) in &from_local {
            let tolerance = self.hysteresis.tolerance(reach.dist);
            let kept = previous
                .and_then(|p| p.get(dest))
                .filter(|prev| prev.next != reach.first_hop)
                .and_then(|prev| downstream(&prev.next, dest, reach.dist).map(|(cost, hops)| (prev.next, cost, hops)))
                .filter(|(_, cost, _)| *cost <= tolerance);
            let (primary, cost, hops) = kept.unwrap_or((reach.first_hop, reach.dist, reach.hops));
            let mut best_node_protecting: Option<(Cost, PeerId)> = None;
            let mut best_link_protecting: Option<(Cost, PeerId)> = None;
            for &(n, link) in neighbours {
                if n == primary || (n != *dest && self.no_transit.contains(&n)) {
                    continue;
                }
                let n_to_d = dist(&n, dest);
                if n_to_d == Cost::MAX {
                    continue;
                }
                let loop_free = n_to_d < dist(&n, &local).saturating_add(reach.dist);
                if !loop_free {
                    continue;
                }
                let total = link.saturating_add(n_to_d);
                let node_protecting =
                    *dest != primary && n_to_d < dist(&n, &primary).saturating_add(dist(&primary, dest));
                let slot = if node_protecting {
                    &mut best_node_protecting
                } else {
                    &mut best_link_protecting
                };
                if slot.is_none_or(|(c, p)| (total, n) < (c, p)) {
                    *slot = Some((total, n));
                }
            }
            let backup = best_node_protecting.or(best_link_protecting).map(|(_, n)| n);
            table.insert(
                *dest,
                Route {
                    next: primary,
                    backup,
                    cost,
                    hops,
                },
            );
        }
        table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Reports = HashMap<PeerId, Vec<(PeerId, Cost)>>;

    /// Builds reports for an undirected topology given as index pairs.
    fn topology(n: usize, edges: &[(usize, usize, Cost)]) -> (Vec<PeerId>, Reports) {
        let mut ids: Vec<PeerId> = (0..n).map(|_| PeerId::random()).collect();
        ids.sort();
        let mut reports: HashMap<PeerId, Vec<(PeerId, Cost)>> = ids.iter().map(|p| (*p, Vec::new())).collect();
        for &(a, b, c) in edges {
            reports.get_mut(&ids[a]).expect("node").push((ids[b], c));
            reports.get_mut(&ids[b]).expect("node").push((ids[a], c));
        }
        (ids, reports)
    }

    fn table_of(
        ids: &[PeerId],
        reports: &HashMap<PeerId, Vec<(PeerId, Cost)>>,
        local: usize,
    ) -> HashMap<PeerId, Route> {
        let me = ids[local];
        let graph = Graph::build(me, &reports[&me], reports);
        graph.routing_table(me, None)
    }

    #[test]
    fn line_routes_through_every_hop() {
        let (ids, reports) = topology(5, &[(0, 1, 10), (1, 2, 10), (2, 3, 10), (3, 4, 10)]);
        let table = table_of(&ids, &reports, 0);
        let to_e = table[&ids[4]];
        assert_eq!(to_e.next, ids[1]);
        assert_eq!(to_e.hops, 4);
        assert_eq!(to_e.cost, 40);
        assert_eq!(to_e.backup, None, "a line has no alternate");
    }

    #[test]
    fn ring_has_node_protecting_backup_on_the_other_side() {
        // Ring a-b-c-d-e-f-a; from a, d is 3 hops either way.
        let ring: Vec<_> = (0..6).map(|i| (i, (i + 1) % 6, 10)).collect();
        let (ids, reports) = topology(6, &ring);
        let table = table_of(&ids, &reports, 0);
        let to_d = table[&ids[3]];
        let sides = [ids[1], ids[5]];
        assert!(sides.contains(&to_d.next));
        let backup = to_d.backup.expect("ring has an alternate");
        assert!(sides.contains(&backup) && backup != to_d.next);
        // Towards c (2 hops via b) the far side is not loop free: f reaches c via a.
        let to_c = table[&ids[2]];
        assert_eq!(to_c.next, ids[1]);
        assert_eq!(to_c.backup, None);
    }

    #[test]
    fn a_node_barred_from_transit_stays_a_destination_but_carries_nothing() {
        // Ring a-b-c-d-e-f-a with b barred: a reaches c the long way round.
        let ring: Vec<_> = (0..6).map(|i| (i, (i + 1) % 6, 10)).collect();
        let (ids, reports) = topology(6, &ring);
        let me = ids[0];
        let graph = Graph::build(me, &reports[&me], &reports).without_transit_through(HashSet::from([ids[1]]));
        let table = graph.routing_table(me, None);
        assert_eq!(table[&ids[2]].next, ids[5]);
        assert_eq!(table[&ids[2]].hops, 4);
        assert_eq!(table[&ids[2]].backup, None, "b may not be the alternate either");
        assert_eq!(table[&ids[1]].next, ids[1], "b itself is still reachable");
        // Seen from c, b may not relay towards a either.
        let from_c = Graph::build(ids[2], &reports[&ids[2]], &reports)
            .without_transit_through(HashSet::from([ids[1]]))
            .routing_table(ids[2], None);
        assert_eq!(from_c[&ids[0]].next, ids[3]);
    }

    #[test]
    fn one_sided_links_are_ignored() {
        let (ids, mut reports) = topology(3, &[(0, 1, 10)]);
        // Node 2 claims a link to node 1 that node 1 never reports.
        reports.get_mut(&ids[2]).expect("node").push((ids[1], 1));
        let table = table_of(&ids, &reports, 0);
        assert!(!table.contains_key(&ids[2]));
    }

    #[test]
    fn lossy_link_is_avoided_when_a_clean_path_exists() {
        let clean = link_cost(1.0, 0.0);
        let lossy = link_cost(1.0, 0.4);
        assert!(lossy > 2 * clean, "40 % loss must cost more than an extra clean hop");
        // a-b direct but lossy; a-c-b clean.
        let (ids, reports) = topology(3, &[(0, 1, lossy), (0, 2, clean), (2, 1, clean)]);
        let table = table_of(&ids, &reports, 0);
        assert_eq!(table[&ids[1]].next, ids[2]);
        assert_eq!(table[&ids[1]].backup, Some(ids[1]));
    }

    #[test]
    fn previous_next_hop_is_kept_while_nearly_as_good() {
        // Square a-b-d, a-c-d: via b is slightly cheaper now, but c carried the traffic.
        let (ids, reports) = topology(4, &[(0, 1, 1_000), (1, 3, 1_000), (0, 2, 1_050), (2, 3, 1_000)]);
        let me = ids[0];
        let graph = Graph::build(me, &reports[&me], &reports);
        let fresh = graph.routing_table(me, None);
        assert_eq!(fresh[&ids[3]].next, ids[1]);
        let mut previous = fresh.clone();
        previous.get_mut(&ids[3]).expect("route").next = ids[2];
        let kept = graph.routing_table(me, Some(&previous));
        assert_eq!(kept[&ids[3]].next, ids[2], "within 10 %: keep the old path");
        assert_eq!((kept[&ids[3]].cost, kept[&ids[3]].hops), (2_050, 2));
        assert_eq!(kept[&ids[3]].backup, Some(ids[1]));
        // Much worse: switch.
        let (ids2, reports2) = topology(4, &[(0, 1, 1_000), (1, 3, 1_000), (0, 2, 3_000), (2, 3, 1_000)]);
        let graph = Graph::build(ids2[0], &reports2[&ids2[0]], &reports2);
        let mut previous = graph.routing_table(ids2[0], None);
        previous.get_mut(&ids2[3]).expect("route").next = ids2[2];
        assert_eq!(graph.routing_table(ids2[0], Some(&previous))[&ids2[3]].next, ids2[1]);
    }

    #[test]
    fn jitter_below_the_floor_does_not_move_traffic_on_fast_links() {
        // Sub-millisecond links: via b costs 2,100, via c 2,900 (38 % more, 0.8 ms).
        let (ids, reports) = topology(4, &[(0, 1, 1_050), (1, 3, 1_050), (0, 2, 1_450), (2, 3, 1_450)]);
        let me = ids[0];
        let graph = Graph::build(me, &reports[&me], &reports);
        let mut previous = graph.routing_table(me, None);
        assert_eq!(previous[&ids[3]].next, ids[1]);
        previous.get_mut(&ids[3]).expect("route").next = ids[2];
        let kept = graph.clone().routing_table(me, Some(&previous));
        assert_eq!(kept[&ids[3]].next, ids[2], "0.8 ms worse is within the 1 ms floor");
        let percent_only = Hysteresis { percent: 10, floor: 0 };
        let moved = graph.with_hysteresis(percent_only).routing_table(me, Some(&previous));
        assert_eq!(moved[&ids[3]].next, ids[1], "without the floor 38 % is too much");
    }

    #[test]
    fn a_previous_hop_is_kept_only_when_it_is_closer_to_the_destination() {
        // a–b cheap, a–d and b–d slow and equal: if a and b each kept the other
        // as next hop towards d, frames for d would bounce between them.
        let (ids, reports) = topology(3, &[(0, 1, 2_000), (0, 2, 40_000), (1, 2, 40_000)]);
        for (me, other) in [(ids[0], ids[1]), (ids[1], ids[0])] {
            let graph = Graph::build(me, &reports[&me], &reports);
            let mut previous = graph.routing_table(me, None);
            previous.get_mut(&ids[2]).expect("route").next = other;
            let table = graph.routing_table(me, Some(&previous));
            assert_eq!(table[&ids[2]].next, ids[2], "b is no closer to d than a: not kept");
        }
    }

    #[test]
    fn the_tolerance_is_a_share_of_the_cost_or_the_floor_whichever_is_larger() {
        let h = Hysteresis::default();
        assert_eq!(h.tolerance(2_000), 3_000);
        assert_eq!(h.tolerance(30_000), 33_000);
        assert_eq!(h.tolerance(Cost::MAX), Cost::MAX);
    }

    #[test]
    fn link_cost_handles_nonsense_input() {
        assert_eq!(link_cost(f64::NAN, f64::NAN), link_cost(0.0, 0.95));
        assert_eq!(link_cost(-5.0, -1.0), link_cost(0.0, 0.0));
    }
}
