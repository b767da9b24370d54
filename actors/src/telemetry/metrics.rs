//! Prometheus metrics of the telemetry actor.

use metrics::{counter, describe_counter, describe_gauge, gauge};

use super::snapshot::{InterfaceSnapshot, ProcessSnapshot};

pub(crate) const XDP_PACKETS: &str = "x0tta_xdp_packets_total";
pub(crate) const XDP_BYTES: &str = "x0tta_xdp_bytes_total";
pub(crate) const XDP_DROPPED: &str = "x0tta_xdp_dropped_total";
pub(crate) const XDP_ATTACHED: &str = "x0tta_xdp_attached";
pub(crate) const XDP_ATTACH_FAILURES: &str = "x0tta_xdp_attach_failures_total";
const IFACE_PACKETS: &str = "x0tta_interface_packets_total";
const IFACE_BYTES: &str = "x0tta_interface_bytes_total";
const QUARANTINED: &str = "x0tta_quarantined_sources";
const RSS: &str = "x0tta_process_resident_memory_bytes";
const CPU_MS: &str = "x0tta_process_cpu_milliseconds_total";
const CPU_CORES: &str = "x0tta_process_cpu_cores";

/// Registers help texts.
pub(crate) fn describe() {
    describe_counter!(XDP_PACKETS, "Packets seen by the XDP program, by interface and class");
    describe_counter!(XDP_BYTES, "Bytes seen by the XDP program, by interface and class");
    describe_counter!(
        XDP_DROPPED,
        "Packets dropped by the XDP program, by interface and reason"
    );
    describe_gauge!(
        XDP_ATTACHED,
        "1 when the XDP program is attached to the interface, in the labelled mode"
    );
    describe_counter!(XDP_ATTACH_FAILURES, "Failed XDP attach attempts, by interface and kind");
    describe_counter!(
        IFACE_PACKETS,
        "Packets by interface and direction, from the kernel's statistics"
    );
    describe_counter!(
        IFACE_BYTES,
        "Bytes by interface and direction, from the kernel's statistics"
    );
    describe_gauge!(QUARANTINED, "Sources currently quarantined");
    describe_gauge!(RSS, "Resident memory of the node process");
    describe_counter!(CPU_MS, "CPU time (user + system) used by the node process");
    describe_gauge!(CPU_CORES, "Cores used by the node process over the last interval");
}

/// Exports one interface's reading.
pub(crate) fn export_interface(view: &InterfaceSnapshot) {
    let iface = view.iface.clone();
    gauge!(XDP_ATTACHED, "iface" => iface.clone(), "mode" => view.mode.unwrap_or("none")).set(1.0);
    for class in &view.classes {
        let labels = [("iface", iface.clone()), ("class", class.name.to_string())];
        counter!(XDP_PACKETS, &labels).absolute(class.packets);
        counter!(XDP_BYTES, &labels).absolute(class.bytes);
    }
    for drop in &view.dropped {
        counter!(XDP_DROPPED, "iface" => iface.clone(), "reason" => drop.name).absolute(drop.packets);
    }
    if let Some(kernel) = &view.kernel {
        let t = kernel.totals;
        counter!(IFACE_PACKETS, "iface" => iface.clone(), "direction" => "rx").absolute(t.rx_packets);
        counter!(IFACE_PACKETS, "iface" => iface.clone(), "direction" => "tx").absolute(t.tx_packets);
        counter!(IFACE_BYTES, "iface" => iface.clone(), "direction" => "rx").absolute(t.rx_bytes);
        counter!(IFACE_BYTES, "iface" => iface, "direction" => "tx").absolute(t.tx_bytes);
    }
}

/// Marks an interface as no longer attached in `mode`.
pub(crate) fn clear_attached(iface: &str, mode: &'static str) {
    gauge!(XDP_ATTACHED, "iface" => iface.to_string(), "mode" => mode).set(0.0);
}

/// Exports the process figures and the quarantine size.
pub(crate) fn export_process(process: &ProcessSnapshot, quarantined: usize) {
    gauge!(RSS).set(process.rss_bytes as f64);
    counter!(CPU_MS).absolute((process.cpu_seconds * 1_000.0) as u64);
    gauge!(CPU_CORES).set(process.cpu_cores);
    gauge!(QUARANTINED).set(quarantined as f64);
}
