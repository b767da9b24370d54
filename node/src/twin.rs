//! The digital twin inside the node: what-if answers on the router's current
//! graph (`GET /api/v1/twin/whatif`) and the healer's veto of a quarantine
//! that would partition the mesh.

use x0tta6bl4_actors::healer::twin::Twin;
use x0tta6bl4_actors::router::{EdgeView, RouterState};
use x0tta6bl4_sim::{what_if, Failure, Net, Node, Topology, TopologyError, WhatIf, WhatIfError};

/// Nodes named in a veto's reason; the rest are counted.
const NAMED: usize = 5;

/// The twin of `x0tta6bl4-sim`, for the healer.
pub struct SimTwin;

impl Twin for SimTwin {
    fn partition_if_lost(&self, edges: &[EdgeView], peer: &str) -> Option<String> {
        let topology = topology(Vec::new(), edges).ok()?;
        let net = Net::new(&topology);
        net.node(peer)?;
        let answer = what_if(&net, &Failure::parse(peer), None).ok()?;
        answer.partitions.then(|| {
            let named: Vec<&str> = answer.cut_off.iter().take(NAMED).map(String::as_str).collect();
            let more = answer.cut_off.len().saturating_sub(NAMED);
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            format!(
                "{} nodes would lose each other ({}{more}); connectivity kept {:.0} %",
                answer.cut_off.len(),
                named.join(", "),
                answer.connectivity_kept * 100.0
            )
        })
    }
}

/// The topology the router sees: its nodes (with names) and its graph.
pub fn topology_of(local_name: &str, router: &RouterState) -> Result<Topology, TopologyError> {
    let mut nodes = vec![Node {
        id: router.local.clone(),
        name: Some(local_name.to_owned()),
    }];
    nodes.extend(router.nodes.iter().map(|n| Node {
        id: n.peer_id.clone(),
        name: Some(n.name.clone()),
    }));
    topology(nodes, &router.edges)
}

fn topology(nodes: Vec<Node>, edges: &[EdgeView]) -> Result<Topology, TopologyError> {
    let edges = edges.iter().map(|e| (e.a.clone(), e.b.clone(), e.cost)).collect();
    Topology::from_costs(nodes, edges)
}

/// Answers `failure` on `topology`, with the all-pairs traffic matrix when `traffic`.
pub fn answer(topology: &Topology, failure: &Failure, traffic: bool) -> Result<WhatIf, WhatIfError> {
    let net = Net::new(topology);
    let flows = traffic.then(|| x0tta6bl4_sim::whatif::all_pairs(&net));
    what_if(&net, failure, flows.as_deref())
}
