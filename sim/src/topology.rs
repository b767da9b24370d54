//! The twin's model of a mesh: nodes and undirected links with RTT, loss and
//! capacity, read and written as JSON, checked before anything uses it.
//!
//! ```json
//! { "nodes": [ { "id": "n0" }, { "id": "n1", "name": "edge-1" } ],
//!   "links": [ { "a": "n0", "b": "n1", "rtt_ms": 2.5, "loss": 0.0, "capacity_mbps": 100.0 } ] }
//! ```

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

/// Most nodes a topology may have: ten times the largest mesh the simulator
/// is benchmarked on, and about 1 GiB of what-if working memory.
pub const MAX_NODES: usize = 1_000_000;

/// Most links a topology may have (an average degree of 20 at [`MAX_NODES`]).
pub const MAX_LINKS: usize = 10_000_000;

/// One node of the mesh.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// Unique id: a peer id for a live mesh, `n<i>` for a generated one.
    pub id: String,
    /// Human name (a live node's configured name), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// One undirected link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    /// One end (a node id).
    pub a: String,
    /// The other end.
    pub b: String,
    /// Round-trip time in milliseconds.
    pub rtt_ms: f64,
    /// Share of packets lost, 0 to 1.
    #[serde(default)]
    pub loss: f64,
    /// Capacity in Mbit/s, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_mbps: Option<f64>,
}

impl Link {
    /// A loss-free link of unknown capacity.
    pub fn new(a: impl Into<String>, b: impl Into<String>, rtt_ms: f64) -> Self {
        Self {
            a: a.into(),
            b: b.into(),
            rtt_ms,
            loss: 0.0,
            capacity_mbps: None,
        }
    }

    /// Its cost in the router's units, from the router's own cost function.
    pub fn cost(&self) -> x0tta6bl4_actors::router::graph::Cost {
        x0tta6bl4_actors::router::graph::link_cost(self.rtt_ms, self.loss)
    }
}

/// A mesh: its nodes and links. Build one with [`Topology::new`] or
/// [`Topology::from_json`], which check it; the fields are read-only views.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Topology {
    nodes: Vec<Node>,
    links: Vec<Link>,
}

/// Why a topology was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TopologyError {
    /// Not JSON of the expected shape (or past a size limit while reading).
    #[error("not a topology: {0}")]
    Json(String),
    /// More nodes than [`MAX_NODES`].
    #[error("{count} nodes: the twin models at most {MAX_NODES}")]
    TooManyNodes {
        /// Nodes given (or a lower bound, when reading stopped at the limit).
        count: usize,
    },
    /// More links than [`MAX_LINKS`].
    #[error("{count} links: the twin models at most {MAX_LINKS}")]
    TooManyLinks {
        /// Links given (or a lower bound).
        count: usize,
    },
    /// Two nodes with the same id.
    #[error("node {0:?} is listed twice")]
    DuplicateNode(String),
    /// A link names a node that is not listed.
    #[error("link {a:?}–{b:?} names unknown node {unknown:?}")]
    UnknownNode {
        /// One end of the link.
        a: String,
        /// The other end.
        b: String,
        /// The end that is not a node.
        unknown: String,
    },
    /// A link from a node to itself.
    #[error("link {0:?}–{0:?} joins a node to itself")]
    SelfLoop(String),
    /// The same two nodes joined twice (in either order).
    #[error("link {a:?}–{b:?} is listed twice")]
    DuplicateLink {
        /// One end.
        a: String,
        /// The other end.
        b: String,
    },
    /// RTT negative, not a number or infinite.
    #[error("link {a:?}–{b:?}: rtt_ms {rtt_ms} is not a finite number ≥ 0")]
    BadRtt {
        /// One end.
        a: String,
        /// The other end.
        b: String,
        /// The value given.
        rtt_ms: f64,
    },
    /// Loss outside 0..=1.
    #[error("link {a:?}–{b:?}: loss {loss} is not between 0 and 1")]
    BadLoss {
        /// One end.
        a: String,
        /// The other end.
        b: String,
        /// The value given.
        loss: f64,
    },
    /// Capacity zero, negative or not finite.
    #[error("link {a:?}–{b:?}: capacity_mbps {capacity} is not a finite number > 0")]
    BadCapacity {
        /// One end.
        a: String,
        /// The other end.
        b: String,
        /// The value given.
        capacity: f64,
    },
}

impl Topology {
    /// A checked topology.
    pub fn new(nodes: Vec<Node>, links: Vec<Link>) -> Result<Self, TopologyError> {
        let topology = Self { nodes, links };
        topology.check()?;
        Ok(topology)
    }

    /// Reads and checks a topology; stops reading at [`MAX_NODES`] nodes or
    /// [`MAX_LINKS`] links rather than allocating for whatever a file claims.
    pub fn from_json(text: &str) -> Result<Self, TopologyError> {
        let raw: RawTopology = serde_json::from_str(text).map_err(|e| {
            let message = e.to_string();
            // The bounded readers report their limit through serde's custom error.
            if let Some(count) = limit_hit(&message, NODES_LIMIT_HIT) {
                TopologyError::TooManyNodes { count }
            } else if let Some(count) = limit_hit(&message, LINKS_LIMIT_HIT) {
                TopologyError::TooManyLinks { count }
            } else {
                TopologyError::Json(message)
            }
        })?;
        Self::new(raw.nodes.0, raw.links.0)
    }

    /// The topology as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The topology a live node reports at `GET /api/v1/topology`. The router
    /// keeps link costs, not RTT and loss: each link gets the loss-free RTT of
    /// the same cost, so routes and what-if answers are the node's own.
    pub fn from_api(view: &serde_json::Value) -> Result<Self, TopologyError> {
        let text = |v: &serde_json::Value, key: &str| v.get(key).and_then(|s| s.as_str()).map(str::to_owned);
        let missing = |what: &str| TopologyError::Json(format!("the topology view has no {what}"));
        let local = text(view, "local").ok_or_else(|| missing("local"))?;
        let mut nodes = vec![Node {
            id: local,
            name: text(view, "name"),
        }];
        for node in view
            .get("nodes")
            .and_then(|n| n.as_array())
            .ok_or_else(|| missing("nodes"))?
        {
            let id = text(node, "peer_id").ok_or_else(|| missing("nodes[].peer_id"))?;
            nodes.push(Node {
                id,
                name: text(node, "name"),
            });
        }
        let mut edges = Vec::new();
        for edge in view
            .get("edges")
            .and_then(|n| n.as_array())
            .ok_or_else(|| missing("edges"))?
        {
            let (Some(a), Some(b), Some(cost)) = (
                text(edge, "a"),
                text(edge, "b"),
                edge.get("cost").and_then(|c| c.as_u64()),
            ) else {
                return Err(missing("edges[].a, b and cost"));
            };
            edges.push((a, b, cost));
        }
        Self::from_costs(nodes, edges)
    }

    /// The topology of a router's graph: `nodes` plus every end of `edges`
    /// not among them (a router's node list may lag its graph by one
    /// recompute), each edge `(a, b, cost)` a loss-free link of that cost.
    pub fn from_costs(mut nodes: Vec<Node>, edges: Vec<(String, String, u64)>) -> Result<Self, TopologyError> {
        let mut known: HashSet<String> = nodes.iter().map(|n| n.id.clone()).collect();
        let mut links = Vec::with_capacity(edges.len());
        for (a, b, cost) in edges {
            for end in [&a, &b] {
                if known.insert(end.clone()) {
                    nodes.push(Node {
                        id: end.clone(),
                        name: None,
                    });
                }
            }
            links.push(Link::new(a, b, rtt_of_cost(cost)));
        }
        Self::new(nodes, links)
    }

    /// The nodes.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The links.
    pub fn links(&self) -> &[Link] {
        &self.links
    }

    fn check(&self) -> Result<(), TopologyError> {
        if self.nodes.len() > MAX_NODES {
            return Err(TopologyError::TooManyNodes {
                count: self.nodes.len(),
            });
        }
        if self.links.len() > MAX_LINKS {
            return Err(TopologyError::TooManyLinks {
                count: self.links.len(),
            });
        }
        let mut ids: HashSet<&str> = HashSet::with_capacity(self.nodes.len());
        for node in &self.nodes {
            if !ids.insert(&node.id) {
                return Err(TopologyError::DuplicateNode(node.id.clone()));
            }
        }
        let mut seen: HashSet<(&str, &str)> = HashSet::with_capacity(self.links.len());
        for link in &self.links {
            let (a, b) = (link.a.clone(), link.b.clone());
            for end in [&link.a, &link.b] {
                if !ids.contains(end.as_str()) {
                    let unknown = end.clone();
                    return Err(TopologyError::UnknownNode { a, b, unknown });
                }
            }
            if link.a == link.b {
                return Err(TopologyError::SelfLoop(a));
            }
            let key = if link.a < link.b {
                (&*link.a, &*link.b)
            } else {
                (&*link.b, &*link.a)
            };
            if !seen.insert(key) {
                return Err(TopologyError::DuplicateLink { a, b });
            }
            if !(link.rtt_ms.is_finite() && link.rtt_ms >= 0.0) {
                let rtt_ms = link.rtt_ms;
                return Err(TopologyError::BadRtt { a, b, rtt_ms });
            }
            if !(0.0..=1.0).contains(&link.loss) {
                let loss = link.loss;
                return Err(TopologyError::BadLoss { a, b, loss });
            }
            if let Some(capacity) = link.capacity_mbps.filter(|c| !(c.is_finite() && *c > 0.0)) {
                return Err(TopologyError::BadCapacity { a, b, capacity });
            }
        }
        Ok(())
    }
}

/// The loss-free RTT (ms) whose [`Link::cost`] is `cost`.
fn rtt_of_cost(cost: u64) -> f64 {
    cost.saturating_sub(1_000) as f64 / 1_000.0
}

const NODES_LIMIT_HIT: &str = "nodes past the limit: ";
const LINKS_LIMIT_HIT: &str = "links past the limit: ";

/// The count in a bounded reader's error message, if `message` is one.
fn limit_hit(message: &str, marker: &str) -> Option<usize> {
    let rest = &message[message.find(marker)? + marker.len()..];
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTopology {
    nodes: Bounded<Node, MAX_NODES>,
    #[serde(default)]
    links: Bounded<Link, MAX_LINKS>,
}

/// A list read only up to `LIMIT` items.
struct Bounded<T, const LIMIT: usize>(Vec<T>);

impl<T, const LIMIT: usize> Default for Bounded<T, LIMIT> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>, const LIMIT: usize> Deserialize<'de> for Bounded<T, LIMIT> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BoundedVisitor<T, const LIMIT: usize>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>, const LIMIT: usize> Visitor<'de> for BoundedVisitor<T, LIMIT> {
            type Value = Bounded<T, LIMIT>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a list of at most {LIMIT} items")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4_096));
                while let Some(item) = seq.next_element()? {
                    if items.len() == LIMIT {
                        let marker = if LIMIT == MAX_NODES {
                            NODES_LIMIT_HIT
                        } else {
                            LINKS_LIMIT_HIT
                        };
                        return Err(de::Error::custom(format!("{marker}{}", LIMIT + 1)));
                    }
                    items.push(item);
                }
                Ok(Bounded(items))
            }
        }
        deserializer.deserialize_seq(BoundedVisitor::<T, LIMIT>(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(ids: &[&str]) -> Vec<Node> {
        ids.iter()
            .map(|id| Node {
                id: (*id).into(),
                name: None,
            })
            .collect()
    }

    #[test]
    fn a_topology_survives_a_json_round_trip() {
        let mut link = Link::new("a", "b", 2.5);
        link.capacity_mbps = Some(100.0);
        let topology = Topology::new(nodes(&["a", "b", "c"]), vec![link, Link::new("b", "c", 1.0)]).expect("valid");
        assert_eq!(Topology::from_json(&topology.to_json()), Ok(topology));
    }

    #[test]
    fn every_kind_of_bad_input_is_refused_by_name() {
        let check = |links: Vec<Link>| Topology::new(nodes(&["a", "b"]), links);
        assert!(matches!(
            check(vec![Link::new("a", "z", 1.0)]),
            Err(TopologyError::UnknownNode { unknown, .. }) if unknown == "z"
        ));
        assert_eq!(
            check(vec![Link::new("a", "a", 1.0)]),
            Err(TopologyError::SelfLoop("a".into()))
        );
        assert!(matches!(
            check(vec![Link::new("a", "b", 1.0), Link::new("b", "a", 2.0)]),
            Err(TopologyError::DuplicateLink { .. })
        ));
        for rtt in [-1.0, f64::NAN, f64::INFINITY] {
            assert!(matches!(
                check(vec![Link::new("a", "b", rtt)]),
                Err(TopologyError::BadRtt { .. })
            ));
        }
        let mut lossy = Link::new("a", "b", 1.0);
        lossy.loss = 1.5;
        assert!(matches!(check(vec![lossy]), Err(TopologyError::BadLoss { .. })));
        let mut empty = Link::new("a", "b", 1.0);
        empty.capacity_mbps = Some(0.0);
        assert!(matches!(check(vec![empty]), Err(TopologyError::BadCapacity { .. })));
        assert_eq!(
            Topology::new(nodes(&["a", "a"]), vec![]),
            Err(TopologyError::DuplicateNode("a".into()))
        );
        assert!(matches!(
            Topology::from_json("{\"nodes\": 3}"),
            Err(TopologyError::Json(_))
        ));
        assert!(matches!(
            Topology::from_json("{\"nodes\": [], \"extra\": 1}"),
            Err(TopologyError::Json(_))
        ));
    }

    #[test]
    fn reading_stops_at_the_node_limit() {
        // A million and one one-character ids: refused while reading, by count.
        let mut text = String::with_capacity(20 * MAX_NODES);
        text.push_str("{\"nodes\":[");
        for i in 0..=MAX_NODES {
            if i > 0 {
                text.push(',');
            }
            text.push_str("{\"id\":\"\"}");
        }
        text.push_str("]}");
        assert_eq!(
            Topology::from_json(&text),
            Err(TopologyError::TooManyNodes { count: MAX_NODES + 1 })
        );
    }

    #[test]
    fn a_live_view_becomes_a_topology_with_the_same_costs() {
        let view = serde_json::json!({
            "local": "A", "name": "alpha",
            "nodes": [ { "peer_id": "B", "name": "beta" } ],
            "edges": [ { "a": "A", "b": "B", "cost": 3_500 } ],
        });
        let topology = Topology::from_api(&view).expect("valid view");
        assert_eq!(topology.nodes()[0].name.as_deref(), Some("alpha"));
        assert_eq!(topology.links()[0].cost(), 3_500);
        assert!(matches!(
            Topology::from_api(&serde_json::json!({ "nodes": [] })),
            Err(TopologyError::Json(_))
        ));
    }
}
