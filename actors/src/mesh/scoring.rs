//! Gossipsub peer scoring for the beacon topic.
//!
//! Every beacon is checked by the node before gossipsub forwards it
//! (`validate_messages`): a valid one is accepted and forwarded, an invalid one
//! rejected, which drops it and counts against the peer that sent it. The
//! score follows the gossipsub v1.1 specification; the values below make a
//! peer that keeps sending junk lose gossip after one invalid message and be
//! graylisted (everything it sends ignored) after three, while honest peers,
//! who only ever relay beacons that passed this check, stay positive.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use libp2p::gossipsub::{PeerScoreParams, PeerScoreThresholds, TopicHash, TopicScoreParams};

/// Penalty weight of invalid messages; the count is squared, so 1, 2 and 3
/// invalid messages score −10, −40 and −90.
pub const INVALID_MESSAGE_WEIGHT: f64 = -10.0;
/// Per-second decay of the invalid message count: a peer graylisted after a
/// burst of junk is heard again after a minute or more.
pub const INVALID_MESSAGE_DECAY: f64 = 0.99;

/// Score thresholds: below `gossip_threshold` a peer gets no gossip, below
/// `publish_threshold` none of our own messages, and below
/// `graylist_threshold` everything it sends is ignored.
pub fn thresholds() -> PeerScoreThresholds {
    PeerScoreThresholds {
        gossip_threshold: -10.0,
        publish_threshold: -50.0,
        graylist_threshold: -80.0,
        // This node does not act on peer exchange.
        accept_px_threshold: 10.0,
        opportunistic_graft_threshold: 5.0,
    }
}

/// Score parameters for a node subscribed to `beacons`.
pub fn params(beacons: TopicHash) -> PeerScoreParams {
    let beacon_topic = TopicScoreParams {
        topic_weight: 1.0,
        // Up to +3 for five minutes in the mesh.
        time_in_mesh_weight: 0.01,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 300.0,
        // Up to +20 for relaying beacons first.
        first_message_deliveries_weight: 1.0,
        first_message_deliveries_decay: 0.9,
        first_message_deliveries_cap: 20.0,
        // Off: each node beacons once a second, so a small or quiet mesh
        // delivers too few messages for a delivery-rate floor to be fair.
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: INVALID_MESSAGE_WEIGHT,
        invalid_message_deliveries_decay: INVALID_MESSAGE_DECAY,
        ..TopicScoreParams::default()
    };
    PeerScoreParams {
        topics: HashMap::from([(beacons, beacon_topic)]),
        topic_score_cap: 50.0,
        app_specific_weight: 0.0,
        // More than 10 peers from one address lose score with the square of
        // the excess (Sybils on one host). Loopback is exempt: it is a test
        // or demo mesh on one machine.
        ip_colocation_factor_weight: -10.0,
        ip_colocation_factor_threshold: 10.0,
        ip_colocation_factor_whitelist: HashSet::from([
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ]),
        // Broken gossip promises and GRAFTs during a backoff. Over a lossy
        // link a connection drops and comes back, and the peer's GRAFT on the
        // new connection lands in the backoff of the old one: honest churn.
        // The first six are free (as in Ethereum's consensus clients), each
        // one after that costs the square of the excess.
        behaviour_penalty_weight: -1.0,
        behaviour_penalty_threshold: 6.0,
        behaviour_penalty_decay: 0.9,
        ..PeerScoreParams::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parameters_are_valid_and_three_invalid_messages_graylist() {
        let topic = libp2p::gossipsub::IdentTopic::new("t").hash();
        params(topic).validate().expect("valid score parameters");
        let thresholds = thresholds();
        thresholds.validate().expect("valid thresholds");
        let score = |invalid: f64| invalid * invalid * INVALID_MESSAGE_WEIGHT;
        assert!(score(1.0) <= thresholds.gossip_threshold);
        assert!(score(2.0) > thresholds.graylist_threshold);
        assert!(score(3.0) < thresholds.graylist_threshold);
    }
}
