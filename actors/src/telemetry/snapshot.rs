//! What the telemetry actor publishes every interval.

use std::net::IpAddr;

use serde::Serialize;

use super::procfs::InterfaceStats;

/// One reading of everything the node watches, with rates since the previous one.
#[derive(Clone, Debug, Serialize)]
pub struct TelemetrySnapshot {
    /// Wall-clock time of the reading, Unix milliseconds.
    pub taken_unix_ms: u64,
    /// Configured interval between readings.
    pub interval_ms: u64,
    /// Whether XDP counts packets on at least one interface, and if not, why.
    pub xdp: XdpStatus,
    /// Per watched interface.
    pub interfaces: Vec<InterfaceSnapshot>,
    /// This process.
    pub process: ProcessSnapshot,
    /// Quarantined sources.
    pub quarantine: Vec<QuarantineView>,
}

/// XDP on or off for the node as a whole.
#[derive(Clone, Debug, Serialize)]
pub struct XdpStatus {
    /// The program is attached to at least one interface.
    pub enabled: bool,
    /// Why XDP is off (on every interface), when it is.
    pub reason: Option<String>,
}

/// Where an interface's counters come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CounterSource {
    /// The XDP program's maps.
    Xdp,
    /// The kernel's interface statistics (`/proc/net/dev`): no classes, no drops.
    InterfaceStats,
}

/// One interface.
#[derive(Clone, Debug, Serialize)]
pub struct InterfaceSnapshot {
    /// Interface name.
    pub iface: String,
    /// Where the class counters come from.
    pub source: CounterSource,
    /// XDP mode in use (`hardware`, `native`, `generic`), when attached.
    pub mode: Option<&'static str>,
    /// Modes tried first and refused, with the kernel's answers.
    pub refused_modes: Vec<RefusedMode>,
    /// Why XDP is not attached here, when it is not.
    pub error: Option<String>,
    /// Packets and bytes by class (XDP only).
    pub classes: Vec<Rate>,
    /// Packets dropped by the program, by reason (XDP only).
    pub dropped: Vec<Rate>,
    /// The kernel's own counters for the interface.
    pub kernel: Option<KernelCounters>,
    /// Sources with the most packets (XDP only).
    pub top_talkers: Vec<TalkerView>,
}

/// A mode the interface refused.
#[derive(Clone, Debug, Serialize)]
pub struct RefusedMode {
    /// The mode.
    pub mode: &'static str,
    /// The kernel's answer.
    pub reason: String,
}

/// A counter and its rate.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Rate {
    /// Class or drop reason.
    pub name: &'static str,
    /// Total packets.
    pub packets: u64,
    /// Total bytes.
    pub bytes: u64,
    /// Packets per second since the previous reading.
    pub packets_per_sec: f64,
    /// Bytes per second since the previous reading.
    pub bytes_per_sec: f64,
}

/// The kernel's interface statistics with receive and send rates.
#[derive(Clone, Debug, Serialize)]
pub struct KernelCounters {
    /// Raw totals.
    #[serde(flatten)]
    pub totals: InterfaceStats,
    /// Packets received per second since the previous reading.
    pub rx_packets_per_sec: f64,
    /// Packets sent per second since the previous reading.
    pub tx_packets_per_sec: f64,
}

/// A top talker.
#[derive(Clone, Debug, Serialize)]
pub struct TalkerView {
    /// Source address.
    pub addr: IpAddr,
    /// Packets seen.
    pub packets: u64,
    /// Bytes seen.
    pub bytes: u64,
}

/// This process.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ProcessSnapshot {
    /// Resident set size in bytes.
    pub rss_bytes: u64,
    /// CPU time used so far, seconds.
    pub cpu_seconds: f64,
    /// Share of one core used since the previous reading (1.0 = one full core).
    pub cpu_cores: f64,
}

/// A quarantined source as the API shows it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct QuarantineView {
    /// The blocked source address.
    pub addr: IpAddr,
    /// The peer it belongs to, when the request named one.
    pub peer: Option<String>,
    /// Why it was quarantined.
    pub reason: String,
    /// Milliseconds until release; `None` for no expiry.
    pub remaining_ms: Option<u64>,
    /// Whether an XDP program drops its packets (else it is only recorded).
    pub enforced: bool,
    /// Packets dropped from it, over all interfaces.
    pub dropped_packets: u64,
}

/// Per-second rate of a counter that went from `before` to `now` in `secs`.
pub fn per_sec(before: u64, now: u64, secs: f64) -> f64 {
    if secs <= 0.0 {
        return 0.0;
    }
    now.saturating_sub(before) as f64 / secs
}

#[cfg(test)]
mod tests {
    use super::per_sec;

    #[test]
    fn rates_ignore_counter_resets_and_zero_intervals() {
        assert_eq!(per_sec(100, 300, 2.0), 100.0);
        assert_eq!(per_sec(300, 100, 1.0), 0.0);
        assert_eq!(per_sec(0, 100, 0.0), 0.0);
    }
}
