//! `x0tta6bl4-sim`: the mesh's digital twin.
//!
//! - [`topology`]: the model (nodes, links with RTT, loss, capacity), JSON in
//!   and out, checked on the way in; built from a live node's
//!   `GET /api/v1/topology` or [`generate`]d.
//! - [`whatif`]: what a failure of nodes, links or a partition breaks, on the
//!   router's own link costs ([`net`]).
//! - [`protocol`]: the routing protocol in virtual time, on the router's own
//!   link-state database; [`scenario`]: convergence after a start, reroute
//!   after a link cut.
//!
//! No actors and no I/O in the core: callers (the node's API and healer, the
//! CLI, the benches) bring the topology and print the answers. [`oracle`] asks
//! networkx the same questions, for the tests and benchmarks.

pub mod generate;
pub mod net;
pub mod oracle;
pub mod protocol;
pub mod scenario;
pub mod topology;
pub mod whatif;

pub use generate::{generate, Shape};
pub use net::Net;
pub use topology::{Link, Node, Topology, TopologyError};
pub use whatif::{what_if, Failure, Flow, WhatIf, WhatIfError};
