//! Two minutes of the soak under chaos (`bench soak` runs 30): a 20-node
//! namespace mesh, reliable flows between four endpoints, a fault every few
//! seconds. Needs root (skipped otherwise; CI runs it).

use std::time::Duration;

use x0tta6bl4_integration::soak::soak;

#[test]
fn two_minutes_of_chaos_lose_no_reliable_message_and_restart_no_actor() {
    let seed = x0tta6bl4_integration::unix_ms();
    println!("seed {seed}");
    let Some(report) = soak(Duration::from_secs(120), seed) else {
        return;
    };
    println!("{}", serde_json::to_string(&report).unwrap_or_default());
    assert!(report.reliable_sent > 1_000, "the flows ran: {report:#?}");
    assert!(
        report.link_cuts + report.kills + report.losses + report.partitions >= 10,
        "faults were injected: {report:#?}"
    );
    assert_eq!(report.reliable_lost, 0, "{report:#?}");
    assert_eq!(
        report.actor_restarts, 0,
        "only process kills were injected: {report:#?}"
    );
}
