//! Crash-safe storage: a node SIGKILLed at random moments while it writes
//! every sled tree starts again each time with the same peer id, every
//! acknowledged alert exactly once, its latest acknowledged keys, and an
//! intact healing history. `bench storage` runs 100 kills; this runs 10.

use std::time::Duration;

use x0tta6bl4_integration::crash::kill_loop;

#[test]
fn a_node_killed_ten_times_while_writing_loses_nothing_it_acknowledged() {
    let seed = x0tta6bl4_integration::unix_ms();
    println!("seed {seed}");
    let report = kill_loop(10, Duration::from_millis(500), seed);
    println!("{}", serde_json::to_string(&report).unwrap_or_default());
    assert!(report.clean(), "{report:#?}");
    assert!(
        report.alerts_acknowledged >= 10 && report.rotations_acknowledged >= 10 && report.healing_records >= 1,
        "every kind of write happened: {report:#?}"
    );
}
