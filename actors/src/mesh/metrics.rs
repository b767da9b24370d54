//! Metrics of the mesh subsystem, declared once.

const PEERS_CONNECTED: &str = "x0tta_peers_connected";
const BEACONS_RECEIVED: &str = "x0tta_beacons_received_total";
const BEACONS_REJECTED: &str = "x0tta_beacons_rejected_total";
const BEACONS_PUBLISHED: &str = "x0tta_beacons_published_total";
const DIALS_FAILED: &str = "x0tta_mesh_dials_failed_total";
const EVENTS_DROPPED: &str = "x0tta_mesh_events_dropped_total";
const LINK_LOSS: &str = "x0tta_link_loss_ratio";
const LINKS_SILENT: &str = "x0tta_links_closed_silent_total";
const LIGHT_PEERS: &str = "x0tta_light_peers";
const LIGHT_REFUSED: &str = "x0tta_light_peers_refused_total";
const GOSSIP_VERDICTS: &str = "x0tta_gossip_messages_total";
const SVID_EXCLUSIONS: &str = "x0tta_mesh_svid_exclusions_total";

/// Registers help texts of every mesh metric.
pub fn describe() {
    metrics::describe_gauge!(PEERS_CONNECTED, "Neighbours with at least one live connection");
    metrics::describe_counter!(BEACONS_RECEIVED, "Valid beacons received from other nodes");
    metrics::describe_counter!(BEACONS_REJECTED, "Beacons dropped, by reason");
    metrics::describe_counter!(BEACONS_PUBLISHED, "Beacons this node published");
    metrics::describe_counter!(DIALS_FAILED, "Outgoing connection attempts that failed");
    metrics::describe_counter!(
        EVENTS_DROPPED,
        "Mesh events dropped because the router's inbox was full"
    );
    metrics::describe_gauge!(
        LINK_LOSS,
        "Share of pings lost on the link to each neighbour (0 once it is down)"
    );
    metrics::describe_counter!(
        LINKS_SILENT,
        "Links closed because their neighbour stayed silent past mesh.link_timeout_ms, by neighbour"
    );
    metrics::describe_gauge!(LIGHT_PEERS, "Connected light peers (no frame protocol)");
    metrics::describe_counter!(
        LIGHT_REFUSED,
        "Light peers disconnected because mesh.max_light_peers were connected"
    );
    metrics::describe_counter!(
        GOSSIP_VERDICTS,
        "Gossip messages by the verdict reported to gossipsub (accept: forwarded; reject: dropped, sender penalised; ignore: dropped)"
    );
    metrics::describe_counter!(
        SVID_EXCLUSIONS,
        "Admitted nodes taken out of the mesh because their SVID no longer validates (mesh.require_svid), by reason"
    );
    metrics::gauge!(PEERS_CONNECTED).set(0.0);
    metrics::gauge!(LIGHT_PEERS).set(0.0);
}

pub(super) fn svid_excluded(reason: &'static str) {
    metrics::counter!(SVID_EXCLUSIONS, "reason" => reason).increment(1);
}

pub(super) fn light_peers(count: usize) {
    metrics::gauge!(LIGHT_PEERS).set(count as f64);
}

pub(super) fn light_refused() {
    metrics::counter!(LIGHT_REFUSED).increment(1);
}

pub(super) fn gossip_verdict(verdict: &'static str) {
    metrics::counter!(GOSSIP_VERDICTS, "verdict" => verdict).increment(1);
}

pub(super) fn link_closed_silent(peer: &libp2p::PeerId) {
    metrics::counter!(LINKS_SILENT, "peer" => peer.to_string()).increment(1);
}

pub(super) fn link_loss(peer: &libp2p::PeerId, loss: f64) {
    metrics::gauge!(LINK_LOSS, "peer" => peer.to_string()).set(loss);
}

pub(super) fn peers_connected(count: usize) {
    metrics::gauge!(PEERS_CONNECTED).set(count as f64);
}

pub(super) fn beacon_received() {
    metrics::counter!(BEACONS_RECEIVED).increment(1);
}

pub(super) fn beacon_rejected(reason: &'static str) {
    metrics::counter!(BEACONS_REJECTED, "reason" => reason).increment(1);
}

pub(super) fn beacon_published() {
    metrics::counter!(BEACONS_PUBLISHED).increment(1);
}

pub(super) fn dial_failed() {
    metrics::counter!(DIALS_FAILED).increment(1);
}

pub(super) fn event_dropped() {
    metrics::counter!(EVENTS_DROPPED).increment(1);
}
