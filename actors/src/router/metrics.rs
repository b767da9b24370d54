//! Metrics of the router, declared once.

use super::frame::RejectReason;

const REJECTED: &str = "x0tta_router_frames_rejected_total";
const DELIVERED: &str = "x0tta_router_messages_delivered_total";
const FORWARDED: &str = "x0tta_router_frames_forwarded_total";
const ORIGINATED: &str = "x0tta_router_messages_sent_total";
const BACKUP_USED: &str = "x0tta_router_backup_hop_used_total";
const REPORTS: &str = "x0tta_router_undeliverable_reports_total";
const ROUTES: &str = "x0tta_routes";
const RETRANSMITTED: &str = "x0tta_router_reliable_retransmissions_total";
const ACKNOWLEDGED: &str = "x0tta_router_reliable_acknowledged_total";
const RECOMPUTE: &str = "x0tta_router_recompute_seconds";
const NEXT_HOP_CHANGES: &str = "x0tta_router_next_hop_changes_total";
const ADMISSION: &str = "x0tta_router_full_database_decisions_total";

/// Registers help texts of every router metric.
pub fn describe() {
    metrics::describe_counter!(REJECTED, "Routed frames rejected, by reason");
    metrics::describe_counter!(DELIVERED, "Routed messages delivered to this node");
    metrics::describe_counter!(FORWARDED, "Frames forwarded towards another node");
    metrics::describe_counter!(ORIGINATED, "Routed messages originated by this node");
    metrics::describe_counter!(
        BACKUP_USED,
        "Frames sent over the backup next hop because the primary was down"
    );
    metrics::describe_counter!(
        REPORTS,
        "Undeliverable reports received for messages this node sent, by reason"
    );
    metrics::describe_gauge!(ROUTES, "Destinations in the routing table");
    metrics::describe_counter!(
        RETRANSMITTED,
        "Reliable messages sent again for want of an acknowledgement"
    );
    metrics::describe_counter!(ACKNOWLEDGED, "Reliable messages this node sent that were acknowledged");
    metrics::describe_histogram!(RECOMPUTE, "Time to rebuild the graph and routing table");
    metrics::describe_counter!(
        NEXT_HOP_CHANGES,
        "Destinations whose primary next hop changed on a routing table rebuild"
    );
    metrics::counter!(NEXT_HOP_CHANGES).absolute(0);
    metrics::describe_counter!(
        ADMISSION,
        "Beacons of unknown nodes while the link-state database was full: evicted \"unreachable\" or \"fair_share\", refused \"unattached\" or \"group_full\""
    );
}

pub(super) fn rejected(reason: RejectReason) {
    metrics::counter!(REJECTED, "reason" => reason.label()).increment(1);
}

pub(super) fn delivered() {
    metrics::counter!(DELIVERED).increment(1);
}

pub(super) fn forwarded() {
    metrics::counter!(FORWARDED).increment(1);
}

pub(super) fn originated() {
    metrics::counter!(ORIGINATED).increment(1);
}

pub(super) fn backup_used() {
    metrics::counter!(BACKUP_USED).increment(1);
}

pub(super) fn report_received(reason: &'static str) {
    metrics::counter!(REPORTS, "reason" => reason).increment(1);
}

pub(super) fn routes(count: usize, next_hop_changes: usize, seconds: f64) {
    metrics::gauge!(ROUTES).set(count as f64);
    metrics::counter!(NEXT_HOP_CHANGES).increment(next_hop_changes as u64);
    metrics::histogram!(RECOMPUTE).record(seconds);
}

pub(super) fn retransmitted() {
    metrics::counter!(RETRANSMITTED).increment(1);
}

pub(super) fn acknowledged() {
    metrics::counter!(ACKNOWLEDGED).increment(1);
}

pub(super) fn admission(decision: &'static str) {
    metrics::counter!(ADMISSION, "decision" => decision).increment(1);
}
