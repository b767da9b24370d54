//! The digital twin's say before a quarantine: a neighbour whose loss would
//! cut surviving nodes off from each other is not quarantined; the healer
//! alerts instead. The twin itself (`x0tta6bl4-sim`) depends on this crate, so
//! the node passes it in behind [`Twin`].

use std::sync::Arc;

use crate::router::EdgeView;

/// Answers what-if questions on the router's graph.
pub trait Twin: Send + Sync {
    /// Why losing node `peer` would partition the mesh whose links are
    /// `edges`, or `None` when it would not (or `peer` is not in the graph).
    fn partition_if_lost(&self, edges: &[EdgeView], peer: &str) -> Option<String>;
}

/// A shared [`Twin`].
pub type SharedTwin = Arc<dyn Twin>;
