//! A [`Topology`] as an indexed graph, weighted with the router's link costs:
//! what the analyses run on.

use std::collections::HashMap;

use petgraph::stable_graph::{NodeIndex, StableUnGraph};
use x0tta6bl4_actors::router::graph::{edge_cost, Cost};

use crate::topology::Topology;

/// The graph of a topology. Node `i` of the topology is `NodeIndex(i)`; the
/// indices stay valid in every copy with nodes removed.
#[derive(Debug, Clone)]
pub struct Net {
    graph: StableUnGraph<(), Cost>,
    ids: Vec<String>,
    index: HashMap<String, NodeIndex>,
}

impl Net {
    /// The graph of `topology`; each link costs what a router would make of
    /// both ends reporting it ([`edge_cost`] of [`crate::topology::Link::cost`]).
    pub fn new(topology: &Topology) -> Self {
        let nodes = topology.nodes().len();
        let mut graph = StableUnGraph::with_capacity(nodes, topology.links().len());
        for _ in 0..nodes {
            graph.add_node(());
        }
        let index: HashMap<String, NodeIndex> = topology
            .nodes()
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.clone(), NodeIndex::new(i)))
            .collect();
        for link in topology.links() {
            // A checked topology names only its own nodes.
            if let (Some(&a), Some(&b)) = (index.get(&link.a), index.get(&link.b)) {
                let cost = link.cost();
                graph.add_edge(a, b, edge_cost(cost, cost));
            }
        }
        let ids = topology.nodes().iter().map(|n| n.id.clone()).collect();
        Self { graph, ids, index }
    }

    /// The graph.
    pub fn graph(&self) -> &StableUnGraph<(), Cost> {
        &self.graph
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The node called `id`.
    pub fn node(&self, id: &str) -> Option<NodeIndex> {
        self.index.get(id).copied()
    }

    /// The id of `node`.
    pub fn id(&self, node: NodeIndex) -> &str {
        &self.ids[node.index()]
    }
}
