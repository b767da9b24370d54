//! `bench soak`: 30 minutes (3 with `--quick`, N with `--minutes N`) of chaos
//! on a 20-node namespace mesh carrying reliable flows; see
//! `x0tta6bl4_integration::soak`.

use std::time::Duration;

use x0tta6bl4_integration::soak::{soak, Growth};

/// Runs the soak and prints its figures and a JSON line; exits 1 when a
/// reliable message was lost or an actor restarted.
pub fn run(quick: bool, minutes: Option<u64>) {
    let minutes = minutes.unwrap_or(if quick { 3 } else { 30 });
    let seed = x0tta6bl4_integration::unix_ms();
    println!(
        "soak: {minutes} min, 20 nodes in namespaces, 4 reliable flows of 20 msg/s, a fault every 3-8 s (seed {seed})"
    );
    let Some(report) = soak(Duration::from_secs(minutes * 60), seed) else {
        println!("soak: skipped (needs root for network namespaces)");
        return;
    };
    println!(
        "faults: {} link cuts, {} kills + restarts, {} losses of 30 %, {} partitions",
        report.link_cuts, report.kills, report.losses, report.partitions
    );
    println!(
        "reliable messages: {} accepted, {} lost; actor restarts: {}",
        report.reliable_sent, report.reliable_lost, report.actor_restarts
    );
    println!(
        "| resource | processes measured | median slope / min | max slope / min | max value | second half: processes | second half: median slope / min |"
    );
    println!("|---|---|---|---|---|---|---|");
    let row = |name: &str, g: &Growth| {
        println!(
            "| {name} | {} | {:.1} | {:.1} | {} | {} | {:.1} |",
            g.processes,
            g.median_slope_per_min,
            g.max_slope_per_min,
            g.max_value,
            g.late_processes,
            g.late_median_slope_per_min
        );
    };
    row("RSS (KiB)", &report.rss_kib);
    row("open files", &report.fds);
    row("threads", &report.threads);
    row("sled (KiB)", &report.sled_kib);
    let mut line = serde_json::to_value(&report).unwrap_or_default();
    line["bench"] = "soak".into();
    line["seed"] = seed.into();
    println!("{line}");
    if report.reliable_lost > 0 || report.actor_restarts > 0 {
        std::process::exit(1);
    }
}
