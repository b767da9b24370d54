//! What breaks if these nodes or links fail: connectivity, cut-off nodes, single
//! points of failure before and after, and the traffic that loses or lengthens
//! its path.
//!
//! Definitions (the networkx oracle test computes the same):
//! - **links affected**: the failed links and every link of a failed node, each
//!   undirected link once, as `[a, b]` with `a < b`;
//! - **connected pairs**: Σ s·(s−1)/2 over the components; **connectivity kept**
//!   is pairs after / pairs before (pairs of a failed node count as lost);
//! - **cut off**: a surviving node that no longer reaches every surviving node
//!   it reached before; the failure **partitions** the mesh when any node is cut off;
//! - articulation points and bridges of the graph before, and of the surviving
//!   graph after.

use std::collections::{HashMap, HashSet};

use petgraph::stable_graph::{NodeIndex, StableUnGraph};
use petgraph::visit::{EdgeRef, IntoEdgeReferences, NodeIndexable};
use serde::{Deserialize, Serialize};
use x0tta6bl4_actors::router::graph::Cost;

use crate::net::Net;

/// What fails.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Failure {
    /// Nodes that fail.
    pub nodes: Vec<String>,
    /// Links that fail, by their ends.
    pub links: Vec<[String; 2]>,
    /// One side of a partition: every link between it and the rest fails.
    pub partition: Vec<String>,
}

impl Failure {
    /// The failure `fail` and `partition` describe: [`Failure::parse`] of
    /// the one, the nodes of the other as one side of a partition.
    pub fn from_specs(fail: &str, partition: &str) -> Self {
        Self {
            partition: Self::parse(partition).nodes,
            ..Self::parse(fail)
        }
    }

    /// Parses `a,b-c`: node `a` and link `b–c` fail (peer ids and generated
    /// ids contain no `-` or `,`).
    pub fn parse(spec: &str) -> Self {
        let mut failure = Failure::default();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item.split_once('-') {
                Some((a, b)) => failure.links.push([a.to_owned(), b.to_owned()]),
                None => failure.nodes.push(item.to_owned()),
            }
        }
        failure
    }
}

/// A flow of the traffic matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flow {
    /// Source node.
    pub src: String,
    /// Destination node.
    pub dst: String,
    /// Rate in any unit (messages/s, Mbit/s); losses are summed in it.
    #[serde(default = "one")]
    pub rate: f64,
}

fn one() -> f64 {
    1.0
}

/// Why a what-if question could not be answered.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum WhatIfError {
    /// A node the topology does not have.
    #[error("no node {0:?} in the topology")]
    UnknownNode(String),
    /// A link the topology does not have.
    #[error("no link {0:?}–{1:?} in the topology")]
    UnknownLink(String, String),
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WhatIf {
    /// Nodes that failed, sorted.
    pub failed_nodes: Vec<String>,
    /// Links that failed, each once, sorted.
    pub links_affected: Vec<[String; 2]>,
    /// Node pairs connected before.
    pub connected_pairs_before: u64,
    /// Node pairs connected after.
    pub connected_pairs_after: u64,
    /// After / before (1 when nothing was connected).
    pub connectivity_kept: f64,
    /// Nodes in the largest component before.
    pub largest_component_before: usize,
    /// Nodes in the largest component after.
    pub largest_component_after: usize,
    /// Components of the surviving graph.
    pub components_after: usize,
    /// Surviving nodes that lost a node they reached before, sorted.
    pub cut_off: Vec<String>,
    /// Some surviving node is cut off.
    pub partitions: bool,
    /// Articulation points before, sorted.
    pub articulation_points_before: Vec<String>,
    /// Articulation points of the surviving graph, sorted.
    pub articulation_points_after: Vec<String>,
    /// Bridges before, sorted.
    pub bridges_before: Vec<[String; 2]>,
    /// Bridges of the surviving graph, sorted.
    pub bridges_after: Vec<[String; 2]>,
    /// What the traffic matrix loses, when one was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic: Option<TrafficLoss>,
}

/// What a traffic matrix loses.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrafficLoss {
    /// Flows in the matrix.
    pub flows: usize,
    /// Flows that had a path and have none (an end failed or cut off).
    pub lost: usize,
    /// Of those, flows with a failed end.
    pub lost_with_failed_end: usize,
    /// Their summed rate.
    pub lost_rate: f64,
    /// Flows that kept a path, but a costlier one.
    pub lengthened: usize,
    /// Summed extra cost of the lengthened flows, in routing units (1,000 = 1 ms).
    pub extra_cost_total: Cost,
    /// Largest extra cost of one flow.
    pub extra_cost_max: Cost,
    /// Mean extra cost of a lengthened flow, in milliseconds of round trip.
    pub extra_ms_mean: f64,
}

/// Connectivity facts of one graph.
struct Shape {
    /// Component of each node slot (`usize::MAX` for a removed node).
    component: Vec<usize>,
    /// Size of each component.
    sizes: Vec<usize>,
    articulation: Vec<NodeIndex>,
    bridges: Vec<(NodeIndex, NodeIndex)>,
}

impl Shape {
    fn of(graph: &StableUnGraph<(), Cost>) -> Self {
        // Components by petgraph's union-find: vectors only, no set per component.
        let bound = graph.node_bound();
        let mut union = petgraph::unionfind::UnionFind::<usize>::new(bound);
        for edge in graph.edge_references() {
            union.union(edge.source().index(), edge.target().index());
        }
        let roots = union.into_labeling();
        let (mut component, mut label_of_root) = (vec![usize::MAX; bound], vec![usize::MAX; bound]);
        let mut sizes = Vec::new();
        for node in graph.node_indices() {
            let root = roots[node.index()];
            if label_of_root[root] == usize::MAX {
                label_of_root[root] = sizes.len();
                sizes.push(0);
            }
            component[node.index()] = label_of_root[root];
            sizes[label_of_root[root]] += 1;
        }
        let articulation = rustworkx_core::connectivity::articulation_points(graph, None)
            .into_iter()
            .collect();
        // petgraph's, not rustworkx-core's: 0.17.1 misses the bridges at the
        // root of its search (Qiskit/rustworkx#1534; the oracle test caught it).
        let bridges = petgraph::algo::bridges::bridges(graph)
            .map(|e| (e.source(), e.target()))
            .collect();
        Self {
            component,
            sizes,
            articulation,
            bridges,
        }
    }

    fn pairs(&self) -> u64 {
        self.sizes
            .iter()
            .map(|&s| (s as u64) * (s as u64).saturating_sub(1) / 2)
            .sum()
    }

    fn largest(&self) -> usize {
        self.sizes.iter().copied().max().unwrap_or(0)
    }
}

/// Answers `failure` on `net`, with the losses of `traffic` if given.
pub fn what_if(net: &Net, failure: &Failure, traffic: Option<&[Flow]>) -> Result<WhatIf, WhatIfError> {
    let node = |id: &String| net.node(id).ok_or_else(|| WhatIfError::UnknownNode(id.clone()));
    let failed: HashSet<NodeIndex> = failure.nodes.iter().map(node).collect::<Result<_, _>>()?;
    let graph = net.graph();
    let mut cut: HashSet<petgraph::stable_graph::EdgeIndex> = HashSet::new();
    for [a, b] in &failure.links {
        let edge = graph
            .find_edge(node(a)?, node(b)?)
            .ok_or_else(|| WhatIfError::UnknownLink(a.clone(), b.clone()))?;
        cut.insert(edge);
    }
    let side: HashSet<NodeIndex> = failure.partition.iter().map(node).collect::<Result<_, _>>()?;
    for edge in graph.edge_references() {
        let (a, b) = (edge.source(), edge.target());
        if failed.contains(&a) || failed.contains(&b) || side.contains(&a) != side.contains(&b) {
            cut.insert(edge.id());
        }
    }

    let mut after = graph.clone();
    for edge in &cut {
        after.remove_edge(*edge);
    }
    for n in &failed {
        after.remove_node(*n);
    }
    let before_shape = Shape::of(graph);
    let after_shape = Shape::of(&after);

    let mut failed_in = vec![0usize; before_shape.sizes.len()];
    for n in &failed {
        failed_in[before_shape.component[n.index()]] += 1;
    }
    let cut_off = after
        .node_indices()
        .filter(|n| {
            let before = before_shape.component[n.index()];
            let reached = before_shape.sizes[before] - failed_in[before];
            after_shape.sizes[after_shape.component[n.index()]] < reached
        })
        .collect::<Vec<_>>();

    let ids = |nodes: &mut dyn Iterator<Item = NodeIndex>| -> Vec<String> {
        let mut ids: Vec<String> = nodes.map(|n| net.id(n).to_owned()).collect();
        ids.sort_unstable();
        ids
    };
    let pair_ids = |pairs: &mut dyn Iterator<Item = (NodeIndex, NodeIndex)>| -> Vec<[String; 2]> {
        let mut pairs: Vec<[String; 2]> = pairs
            .map(|(a, b)| {
                let (a, b) = (net.id(a).to_owned(), net.id(b).to_owned());
                if a < b {
                    [a, b]
                } else {
                    [b, a]
                }
            })
            .collect();
        pairs.sort_unstable();
        pairs
    };
    let (pairs_before, pairs_after) = (before_shape.pairs(), after_shape.pairs());
    let traffic = traffic
        .map(|flows| traffic_loss(net, &after, &failed, flows))
        .transpose()?;
    Ok(WhatIf {
        failed_nodes: ids(&mut failed.iter().copied()),
        links_affected: pair_ids(&mut cut.iter().filter_map(|e| graph.edge_endpoints(*e))),
        connected_pairs_before: pairs_before,
        connected_pairs_after: pairs_after,
        connectivity_kept: if pairs_before == 0 {
            1.0
        } else {
            pairs_after as f64 / pairs_before as f64
        },
        largest_component_before: before_shape.largest(),
        largest_component_after: after_shape.largest(),
        components_after: after_shape.sizes.len(),
        partitions: !cut_off.is_empty(),
        cut_off: ids(&mut cut_off.into_iter()),
        articulation_points_before: ids(&mut before_shape.articulation.iter().copied()),
        articulation_points_after: ids(&mut after_shape.articulation.iter().copied()),
        bridges_before: pair_ids(&mut before_shape.bridges.iter().copied()),
        bridges_after: pair_ids(&mut after_shape.bridges.iter().copied()),
        traffic,
    })
}

/// Path costs of `flows` before (on `net`) and after (on `after`), by the
/// router's costs; one Dijkstra per distinct source on each graph.
fn traffic_loss(
    net: &Net,
    after: &StableUnGraph<(), Cost>,
    failed: &HashSet<NodeIndex>,
    flows: &[Flow],
) -> Result<TrafficLoss, WhatIfError> {
    let node = |id: &String| net.node(id).ok_or_else(|| WhatIfError::UnknownNode(id.clone()));
    let mut by_source: HashMap<NodeIndex, Vec<(NodeIndex, f64)>> = HashMap::new();
    for flow in flows {
        by_source
            .entry(node(&flow.src)?)
            .or_default()
            .push((node(&flow.dst)?, flow.rate));
    }
    let mut loss = TrafficLoss {
        flows: flows.len(),
        lost: 0,
        lost_with_failed_end: 0,
        lost_rate: 0.0,
        lengthened: 0,
        extra_cost_total: 0,
        extra_cost_max: 0,
        extra_ms_mean: 0.0,
    };
    for (src, dsts) in by_source {
        let before = petgraph::algo::dijkstra(net.graph(), src, None, |e| *e.weight());
        let now = (!failed.contains(&src)).then(|| petgraph::algo::dijkstra(after, src, None, |e| *e.weight()));
        for (dst, rate) in dsts {
            let Some(&was) = before.get(&dst) else { continue };
            match now.as_ref().and_then(|now| now.get(&dst)) {
                None => {
                    loss.lost += 1;
                    loss.lost_rate += rate;
                    loss.lost_with_failed_end += usize::from(failed.contains(&src) || failed.contains(&dst));
                }
                Some(&is) if is > was => {
                    loss.lengthened += 1;
                    loss.extra_cost_total += is - was;
                    loss.extra_cost_max = loss.extra_cost_max.max(is - was);
                }
                Some(_) => {}
            }
        }
    }
    if loss.lengthened > 0 {
        loss.extra_ms_mean = loss.extra_cost_total as f64 / loss.lengthened as f64 / 1_000.0;
    }
    Ok(loss)
}

/// Every ordered pair of distinct nodes, rate 1: the default traffic matrix.
pub fn all_pairs(net: &Net) -> Vec<Flow> {
    let ids: Vec<&str> = (0..net.len()).map(|i| net.id(NodeIndex::new(i))).collect();
    ids.iter()
        .flat_map(|a| {
            ids.iter().filter(move |b| a != *b).map(move |b| Flow {
                src: (*a).to_owned(),
                dst: (*b).to_owned(),
                rate: 1.0,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{generate, Shape as Generated};

    fn net(shape: &str) -> Net {
        Net::new(&generate(shape.parse().expect("shape"), 1).expect("generated"))
    }

    #[test]
    fn the_middle_of_a_line_partitions_it() {
        let net = net("line:3");
        let answer = what_if(&net, &Failure::parse("n1"), None).expect("answer");
        assert!(answer.partitions);
        assert_eq!(answer.cut_off, ["n0", "n2"]);
        assert_eq!(answer.links_affected, [["n0", "n1"], ["n1", "n2"]]);
        assert_eq!((answer.connected_pairs_before, answer.connected_pairs_after), (3, 0));
        assert_eq!(answer.articulation_points_before, ["n1"]);
        assert_eq!(answer.bridges_before.len(), 2);
        assert_eq!(answer.largest_component_after, 1);
    }

    #[test]
    fn a_ring_survives_one_node_and_becomes_a_line() {
        let net = net("ring:6");
        let answer = what_if(&net, &Failure::parse("n0"), Some(&all_pairs(&net))).expect("answer");
        assert!(!answer.partitions && answer.cut_off.is_empty());
        assert!(answer.articulation_points_before.is_empty() && answer.bridges_before.is_empty());
        assert_eq!(answer.articulation_points_after, ["n2", "n3", "n4"]);
        assert_eq!(answer.bridges_after.len(), 4);
        assert_eq!(answer.connected_pairs_after, 10);
        let traffic = answer.traffic.expect("traffic");
        assert_eq!(traffic.flows, 30);
        assert_eq!((traffic.lost, traffic.lost_with_failed_end), (10, 10));
        assert!(traffic.lengthened > 0 && traffic.extra_cost_max > 0);
    }

    #[test]
    fn a_link_a_partition_and_unknown_names() {
        let net = net("ring:4");
        let answer = what_if(&net, &Failure::parse("n0-n1"), None).expect("answer");
        assert!(!answer.partitions && answer.failed_nodes.is_empty());
        assert_eq!(answer.links_affected, [["n0", "n1"]]);
        let split = Failure {
            partition: vec!["n0".into(), "n1".into()],
            ..Failure::default()
        };
        let answer = what_if(&net, &split, None).expect("answer");
        assert_eq!(answer.links_affected, [["n0", "n3"], ["n1", "n2"]]);
        assert_eq!(answer.cut_off.len(), 4);
        assert_eq!(answer.components_after, 2);
        assert_eq!(
            what_if(&net, &Failure::parse("x"), None),
            Err(WhatIfError::UnknownNode("x".into()))
        );
        assert_eq!(
            what_if(&net, &Failure::parse("n0-n2"), None),
            Err(WhatIfError::UnknownLink("n0".into(), "n2".into()))
        );
    }

    #[test]
    fn a_failure_on_a_generated_mesh_is_answered() {
        let net = Net::new(&generate(Generated::BarabasiAlbert(500, 1), 3).expect("generated"));
        // A tree: every link is a bridge and a non-leaf hub partitions it.
        let answer = what_if(&net, &Failure::parse("n0"), None).expect("answer");
        assert_eq!(answer.bridges_before.len(), net.graph().edge_count());
        assert!(answer.partitions);
    }
}
