//! Who may enter the link-state database once it holds `router.max_nodes`
//! nodes. Identities cost nothing to make, so "first come" would let one
//! neighbour fill the database with fresh keys and lock honest nodes out.
//!
//! Every known node belongs to the **group** of the neighbour it is reached
//! through (its first hop): a flood of made-up identities behind one neighbour
//! can only be reached through that neighbour, since an edge counts only when
//! both ends report it and honest nodes do not report made-up ones. When the
//! database is full, a newcomer
//!
//! 1. is refused unless it is attached to the graph by a link both ends
//!    report (to this node, or to a node whose group is known);
//! 2. takes the place of an unreachable node (no route at the last
//!    recompute), the one heard from longest ago;
//! 3. otherwise takes the place of a node of the largest group, the one
//!    farthest away and then heard from longest ago, but only if its own
//!    group stays smaller than that one: so a group grows past its fair share
//!    only while others leave room, and a neighbour's flood displaces only
//!    what came through that neighbour.

use std::collections::HashMap;
use std::time::Instant;

use libp2p::PeerId;

use super::graph::Route;

/// Why a newcomer was turned away or what it displaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Room made by evicting this node, which had no route.
    EvictUnreachable(PeerId),
    /// Room made by evicting this node of a larger group.
    EvictFromLargest(PeerId),
    /// Not attached to the graph by a link both ends report.
    RefuseUnattached,
    /// Its group is already the largest (or would become so).
    RefuseGroupFull,
}

impl Decision {
    /// Label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            Decision::EvictUnreachable(_) => "unreachable",
            Decision::EvictFromLargest(_) => "fair_share",
            Decision::RefuseUnattached => "unattached",
            Decision::RefuseGroupFull => "group_full",
        }
    }
}

/// Where each known node attaches: its group (first hop) and distance in hops.
#[derive(Debug, Default)]
pub struct Admission {
    placed: HashMap<PeerId, (PeerId, u32)>,
    sizes: HashMap<PeerId, usize>,
}

impl Admission {
    /// Takes groups and distances from a freshly computed routing table.
    pub fn rebuild(&mut self, table: &HashMap<PeerId, Route>) {
        self.placed.clear();
        self.sizes.clear();
        for (node, route) in table {
            self.place(*node, route.next, route.hops);
        }
    }

    /// Records a node admitted since the last recompute.
    pub fn place(&mut self, node: PeerId, group: PeerId, hops: u32) {
        if let Some((old, _)) = self.placed.insert(node, (group, hops)) {
            self.shrink(old);
        }
        *self.sizes.entry(group).or_default() += 1;
    }

    /// Forgets a node that left the database.
    pub fn forget(&mut self, node: &PeerId) {
        if let Some((group, _)) = self.placed.remove(node) {
            self.shrink(group);
        }
    }

    fn shrink(&mut self, group: PeerId) {
        if let Some(size) = self.sizes.get_mut(&group) {
            *size -= 1;
            if *size == 0 {
                self.sizes.remove(&group);
            }
        }
    }

    /// Group and hop count of a known node, if it had a route.
    pub fn placement(&self, node: &PeerId) -> Option<(PeerId, u32)> {
        self.placed.get(node).copied()
    }

    /// Decides for a newcomer attached through `group` (`None`: not attached),
    /// given every node in the full database with when it was last heard.
    pub fn decide(&self, group: Option<PeerId>, known: impl Iterator<Item = (PeerId, Instant)> + Clone) -> Decision {
        let Some(group) = group else {
            return Decision::RefuseUnattached;
        };
        let unreachable = known
            .clone()
            .filter(|(node, _)| !self.placed.contains_key(node))
            .min_by_key(|(_, heard)| *heard);
        if let Some((node, _)) = unreachable {
            return Decision::EvictUnreachable(node);
        }
        let Some((&largest, &size)) = self.sizes.iter().max_by_key(|(_, size)| **size) else {
            return Decision::RefuseGroupFull;
        };
        let own = self.sizes.get(&group).copied().unwrap_or(0);
        if largest == group || own + 2 > size {
            return Decision::RefuseGroupFull;
        }
        // Farthest first, then heard from longest ago; never the neighbour
        // heading the group while others remain (it is one hop away).
        let victim = known
            .filter_map(|(node, heard)| {
                let (g, hops) = self.placed.get(&node)?;
                (*g == largest).then_some((node, *hops, heard))
            })
            .max_by(|a, b| a.1.cmp(&b.1).then(b.2.cmp(&a.2)));
        match victim {
            Some((node, _, _)) => Decision::EvictFromLargest(node),
            None => Decision::RefuseGroupFull,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn nodes(n: usize) -> Vec<PeerId> {
        (0..n).map(|_| PeerId::random()).collect()
    }

    #[test]
    fn an_unattached_newcomer_is_refused() {
        let admission = Admission::default();
        assert_eq!(admission.decide(None, std::iter::empty()), Decision::RefuseUnattached);
    }

    #[test]
    fn the_unreachable_node_heard_from_longest_ago_goes_first() {
        let [group, routed, stale, fresh] = nodes(4).try_into().expect("four");
        let mut admission = Admission::default();
        admission.place(routed, group, 2);
        let now = Instant::now();
        let known = [
            (routed, now - Duration::from_secs(9)),
            (stale, now - Duration::from_secs(5)),
            (fresh, now),
        ];
        assert_eq!(
            admission.decide(Some(group), known.into_iter()),
            Decision::EvictUnreachable(stale)
        );
    }

    #[test]
    fn a_smaller_group_displaces_the_farthest_of_the_largest() {
        let [big, small] = nodes(2).try_into().expect("two");
        let members = nodes(5);
        let mut admission = Admission::default();
        let now = Instant::now();
        for (i, m) in members.iter().enumerate() {
            admission.place(*m, big, 1 + u32::try_from(i % 3).expect("small"));
        }
        admission.place(small, small, 1);
        let known: Vec<(PeerId, Instant)> = members.iter().map(|m| (*m, now)).chain([(small, now)]).collect();
        // Members 2 (hops 3) and 5 (hops 3): the farthest; equally fresh, either.
        let Decision::EvictFromLargest(victim) = admission.decide(Some(small), known.iter().copied()) else {
            panic!("the small group may grow");
        };
        assert_eq!(admission.placement(&victim).map(|(_, hops)| hops), Some(3));
        // The largest group itself may not grow, nor a group that would catch up.
        assert_eq!(
            admission.decide(Some(big), known.iter().copied()),
            Decision::RefuseGroupFull
        );
        for m in &members[..3] {
            admission.forget(m);
        }
        admission.place(PeerId::random(), small, 2);
        // Now big has 2 and small has 2: a third for small would make it the largest.
        assert_eq!(
            admission.decide(Some(small), known.iter().copied().skip(3)),
            Decision::RefuseGroupFull
        );
    }
}
