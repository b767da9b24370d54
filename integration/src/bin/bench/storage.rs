//! `bench storage`: a node SIGKILLed 100 times (20 with `--quick`) at random
//! moments while it writes every sled tree; see `x0tta6bl4_integration::crash`.

use std::time::{Duration, Instant};

use x0tta6bl4_integration::crash::kill_loop;

/// Runs the kills and prints the figures and a JSON line; exits 1 when a check failed.
pub fn run(quick: bool) {
    let kills = if quick { 20 } else { 100 };
    let seed = x0tta6bl4_integration::unix_ms();
    println!("storage: {kills} SIGKILLs at random moments within 1.5 s of every writer having written (seed {seed})");
    let started = Instant::now();
    let report = kill_loop(kills, Duration::from_millis(1_500), seed);
    let seconds = started.elapsed().as_secs();
    println!("| kills | restarts ok | alerts acked | lost | duplicated | rotations acked | epochs lost | history broken | peer id changed | slowest start |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} ms |",
        report.kills,
        report.restarts_ok,
        report.alerts_acknowledged,
        report.alerts_lost,
        report.alerts_duplicated,
        report.rotations_acknowledged,
        report.epochs_lost,
        report.history_broken,
        report.peer_id_changed,
        report.slowest_start_ms
    );
    let mut line = serde_json::to_value(&report).unwrap_or_default();
    line["bench"] = "storage".into();
    line["seed"] = seed.into();
    line["seconds"] = seconds.into();
    line["clean"] = report.clean().into();
    println!("{line}");
    if !report.clean() {
        std::process::exit(1);
    }
}
