use super::*;
use crate::alert::Severity;

const ALL: &[SinkKind] = &[SinkKind::Alertmanager, SinkKind::Telegram];
const HOUR: u64 = 3_600_000;

fn outbox(store: &Store) -> Outbox {
    Outbox::open(store, 100, 100).expect("outbox")
}

fn alert(peer: &str) -> Alert {
    Alert::new("LINK_LOSS", Severity::Warning, format!("loss to {peer}")).label("peer", peer)
}

#[test]
fn an_alert_firing_again_is_not_sent_again_until_the_repeat_interval() {
    let store = Store::temporary().expect("store");
    let outbox = outbox(&store);
    assert!(matches!(
        outbox.record(alert("a"), ALL, 1_000, HOUR).expect("record"),
        Recorded::Queued(_)
    ));
    assert_eq!(
        outbox.record(alert("a"), ALL, 2_000, HOUR).expect("record"),
        Recorded::Duplicate
    );
    assert!(matches!(
        outbox.record(alert("b"), ALL, 2_000, HOUR).expect("record"),
        Recorded::Queued(_)
    ));
    assert!(matches!(
        outbox.record(alert("a"), ALL, 1_000 + HOUR, HOUR).expect("record"),
        Recorded::Queued(_)
    ));
    assert_eq!(outbox.entries().expect("entries").len(), 3);
    assert_eq!(outbox.firing().expect("firing").len(), 2);
}

#[test]
fn a_resolve_is_sent_only_for_a_firing_alert_and_keeps_its_start() {
    let store = Store::temporary().expect("store");
    let outbox = outbox(&store);
    assert_eq!(
        outbox.record(alert("a").resolved(), ALL, 1_000, HOUR).expect("record"),
        Recorded::NotFiring
    );
    let mut firing = alert("a");
    firing.starts_at_ms = 500;
    outbox.record(firing, ALL, 1_000, HOUR).expect("record");
    let mut resolve = Alert::new("LINK_LOSS", Severity::Info, "")
        .label("peer", "a")
        .resolved();
    resolve.ends_at_ms = Some(9_000);
    assert!(matches!(
        outbox.record(resolve, ALL, 9_000, HOUR).expect("record"),
        Recorded::Queued(_)
    ));
    let entries = outbox.entries().expect("entries");
    let resolved = &entries[1].alert;
    assert_eq!((resolved.starts_at_ms, resolved.ends_at_ms), (500, Some(9_000)));
    assert_eq!(
        resolved.summary, "loss to a",
        "the firing alert's text goes with its resolve"
    );
    assert!(outbox.firing().expect("firing").is_empty());
    assert!(matches!(
        outbox.record(alert("a"), ALL, 10_000, HOUR).expect("record"),
        Recorded::Queued(_)
    ));
}

#[test]
fn an_entry_leaves_each_sink_when_that_sink_accepts_it() {
    let store = Store::temporary().expect("store");
    let outbox = outbox(&store);
    let Recorded::Queued(id) = outbox.record(alert("a"), ALL, 0, HOUR).expect("record") else {
        panic!("queued")
    };
    assert_eq!(outbox.due(SinkKind::Telegram, 0, 10).expect("due").entries.len(), 1);
    outbox.delivered(id, SinkKind::Telegram).expect("delivered");
    assert!(outbox.due(SinkKind::Telegram, 0, 10).expect("due").entries.is_empty());
    assert_eq!(outbox.backlog(SinkKind::Alertmanager).expect("backlog"), 1);
    outbox.delivered(id, SinkKind::Alertmanager).expect("delivered");
    assert!(outbox.entries().expect("entries").is_empty());
}

#[test]
fn failures_wait_for_their_retry_time_and_refusals_stay_visible() {
    let store = Store::temporary().expect("store");
    let outbox = outbox(&store);
    let Recorded::Queued(id) = outbox.record(alert("a"), ALL, 0, HOUR).expect("record") else {
        panic!("queued")
    };
    outbox
        .failed(id, SinkKind::Alertmanager, "HTTP 503", Some(5_000))
        .expect("failed");
    let due = outbox.due(SinkKind::Alertmanager, 4_999, 10).expect("due");
    assert!(due.entries.is_empty());
    assert_eq!(due.next_ms, Some(5_000));
    assert_eq!(
        outbox
            .due(SinkKind::Alertmanager, 5_000, 10)
            .expect("due")
            .entries
            .len(),
        1
    );
    outbox
        .failed(id, SinkKind::Telegram, "Telegram 400: chat not found", None)
        .expect("failed");
    let due = outbox.due(SinkKind::Telegram, u64::MAX, 10).expect("due");
    assert!(due.entries.is_empty() && due.next_ms.is_none());
    let entry = &outbox.entries().expect("entries")[0];
    let telegram = &entry.sinks[&SinkKind::Telegram];
    assert!(telegram.failed);
    assert_eq!(telegram.last_error.as_deref(), Some("Telegram 400: chat not found"));
    assert_eq!(entry.sinks[&SinkKind::Alertmanager].attempts, 1);
}

#[test]
fn the_outbox_survives_a_reopen_and_stays_bounded() {
    let dir = tempfile::tempdir().expect("dir");
    {
        let store = Store::open(dir.path()).expect("store");
        let outbox = Outbox::open(&store, 3, 100).expect("outbox");
        for i in 0..5 {
            outbox.record(alert(&format!("p{i}")), ALL, 0, HOUR).expect("record");
        }
    }
    let store = Store::open(dir.path()).expect("store");
    let outbox = Outbox::open(&store, 3, 100).expect("outbox");
    let peers: Vec<String> = outbox
        .entries()
        .expect("entries")
        .iter()
        .map(|e| e.alert.labels["peer"].clone())
        .collect();
    assert_eq!(peers, ["p2", "p3", "p4"], "the oldest went first");
}

#[test]
fn without_sinks_nothing_is_stored() {
    let store = Store::temporary().expect("store");
    let outbox = outbox(&store);
    assert_eq!(
        outbox.record(alert("a"), &[], 0, HOUR).expect("record"),
        Recorded::NoSinks
    );
    assert!(outbox.entries().expect("entries").is_empty());
}

#[test]
fn a_sink_no_longer_configured_is_forgotten() {
    let store = Store::temporary().expect("store");
    let outbox = outbox(&store);
    outbox.record(alert("a"), ALL, 0, HOUR).expect("record");
    outbox
        .record(alert("b"), &[SinkKind::Telegram], 0, HOUR)
        .expect("record");
    assert_eq!(outbox.retain_sinks(&[SinkKind::Alertmanager]).expect("retain"), 2);
    let entries = outbox.entries().expect("entries");
    assert_eq!(entries.len(), 1, "b waited only for Telegram");
    assert_eq!(entries[0].alert.labels["peer"], "a");
    assert_eq!(
        entries[0].sinks.keys().copied().collect::<Vec<_>>(),
        [SinkKind::Alertmanager]
    );
    assert_eq!(outbox.retain_sinks(&[SinkKind::Alertmanager]).expect("retain"), 0);
}

/// The `peer` label of each due entry, in order.
fn peers_of(due: &Due) -> Vec<&str> {
    due.entries.iter().map(|e| e.alert.labels["peer"].as_str()).collect()
}

#[test]
fn a_resolve_waits_behind_its_firing_notification() {
    let store = Store::temporary().expect("store");
    let outbox = outbox(&store);
    let sink = SinkKind::Telegram;
    let Recorded::Queued(firing) = outbox.record(alert("a"), &[sink], 0, HOUR).expect("record") else {
        panic!("queued")
    };
    outbox.record(alert("b"), &[sink], 0, HOUR).expect("record");
    let due = outbox.due(sink, 0, 10).expect("due");
    assert_eq!(peers_of(&due), ["a", "b"], "different alerts go together");

    outbox.failed(firing, sink, "HTTP 502", Some(5_000)).expect("failed");
    outbox
        .record(alert("a").resolved(), &[sink], 100, HOUR)
        .expect("record");
    let due = outbox.due(sink, 200, 10).expect("due");
    assert_eq!(
        peers_of(&due),
        ["b"],
        "a's resolve does not overtake a's firing notification"
    );
    assert_eq!(due.next_ms, Some(5_000));

    let due = outbox.due(sink, 5_000, 10).expect("due");
    let a: Vec<bool> = due
        .entries
        .iter()
        .filter(|e| e.alert.labels["peer"] == "a")
        .map(|e| e.alert.is_resolved())
        .collect();
    assert_eq!(a, [false], "one notification per alert at a time, the firing one first");
    outbox.delivered(firing, sink).expect("delivered");
    let due = outbox.due(sink, 5_000, 10).expect("due");
    assert!(due
        .entries
        .iter()
        .any(|e| e.alert.labels["peer"] == "a" && e.alert.is_resolved()));
}

#[test]
fn an_unreadable_record_is_removed_not_left_to_block_the_outbox() {
    let store = Store::temporary().expect("store");
    let outbox = outbox(&store);
    outbox.record(alert("a"), ALL, 0, HOUR).expect("record");
    store
        .tree(ENTRIES_TREE)
        .expect("tree")
        .insert(u64::MAX.to_be_bytes(), b"{not json".to_vec())
        .expect("insert");
    let due = outbox.due(SinkKind::Telegram, 0, 10).expect("due");
    assert_eq!(due.entries.len(), 1, "the readable entry is still delivered");
    assert_eq!(outbox.entries().expect("entries").len(), 1, "the damaged one is gone");
}

#[test]
fn a_firing_alert_not_raised_again_goes_stale() {
    let store = Store::temporary().expect("store");
    let outbox = outbox(&store);
    outbox.record(alert("a"), ALL, 1_000, HOUR).expect("record");
    outbox.record(alert("b"), ALL, 1_000, HOUR).expect("record");
    assert_eq!(
        outbox.record(alert("b"), ALL, 50_000, HOUR).expect("record"),
        Recorded::Duplicate,
        "raised again: still firing, not sent again"
    );
    let stale: Vec<String> = outbox
        .stale(62_000, 60_000)
        .expect("stale")
        .iter()
        .map(|a| a.labels["peer"].clone())
        .collect();
    assert_eq!(stale, ["a"], "b was raised again 12 s ago");
    assert!(outbox.stale(61_000, 0).expect("stale").len() == 2);
}
