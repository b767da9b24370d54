//! Readings from `/proc`: interface statistics, process RSS and CPU time, the
//! default route. `/proc/net` shows the network namespace of the reading process.

use std::{collections::HashMap, fs, io};

/// Counters of one interface from `/proc/net/dev`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct InterfaceStats {
    /// Packets received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets dropped on receive.
    pub rx_dropped: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
}

/// Statistics of every interface in this network namespace.
pub fn interface_stats() -> io::Result<HashMap<String, InterfaceStats>> {
    Ok(parse_net_dev(&fs::read_to_string("/proc/net/dev")?))
}

/// Parses `/proc/net/dev`; malformed lines are skipped.
pub fn parse_net_dev(text: &str) -> HashMap<String, InterfaceStats> {
    text.lines()
        .skip(2)
        .filter_map(|line| {
            let (name, fields) = line.split_once(':')?;
            let values: Vec<u64> = fields
                .split_whitespace()
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            if values.len() < 16 {
                return None;
            }
            let stats = InterfaceStats {
                rx_bytes: values[0],
                rx_packets: values[1],
                rx_dropped: values[3],
                tx_bytes: values[8],
                tx_packets: values[9],
            };
            Some((name.trim().to_string(), stats))
        })
        .collect()
}

/// The interface of the IPv4 default route, if there is one.
pub fn default_route_interface() -> Option<String> {
    parse_default_route(&fs::read_to_string("/proc/net/route").ok()?)
}

/// Finds the default route (destination and mask zero) in `/proc/net/route`.
pub fn parse_default_route(text: &str) -> Option<String> {
    text.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            [iface, "00000000", _, _, _, _, _, "00000000", ..] => Some((*iface).to_string()),
            _ => None,
        }
    })
}

/// Resident memory and CPU time of this process.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct ProcessStats {
    /// Resident set size in bytes.
    pub rss_bytes: u64,
    /// User plus system CPU time in seconds.
    pub cpu_seconds: f64,
}

/// Reads this process's RSS and CPU time.
pub fn process_stats() -> io::Result<ProcessStats> {
    let statm = fs::read_to_string("/proc/self/statm")?;
    let stat = fs::read_to_string("/proc/self/stat")?;
    let page = sysconf(nix::unistd::SysconfVar::PAGE_SIZE, 4096);
    let ticks = sysconf(nix::unistd::SysconfVar::CLK_TCK, 100);
    let rss_pages = statm.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok());
    let cpu_ticks = parse_cpu_ticks(&stat);
    match (rss_pages, cpu_ticks) {
        (Some(pages), Some(cpu)) => Ok(ProcessStats {
            rss_bytes: pages * page,
            cpu_seconds: cpu as f64 / ticks as f64,
        }),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "unexpected /proc/self format",
        )),
    }
}

/// utime + stime from `/proc/self/stat` (fields 14 and 15, after the command name).
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn sysconf(var: nix::unistd::SysconfVar, fallback: u64) -> u64 {
    match nix::unistd::sysconf(var) {
        Ok(Some(v)) if v > 0 => u64::try_from(v).unwrap_or(fallback),
        _ => fallback,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET_DEV: &str = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0
  veth0: 123456     789    0    5    0     0          0         0    4242      42    0    0    0     0       0          0
garbage line
";

    #[test]
    fn net_dev_fields_land_in_the_right_places() {
        let stats = parse_net_dev(NET_DEV);
        assert_eq!(stats.len(), 2);
        assert_eq!(
            stats["veth0"],
            InterfaceStats {
                rx_packets: 789,
                rx_bytes: 123_456,
                rx_dropped: 5,
                tx_packets: 42,
                tx_bytes: 4242,
            }
        );
    }

    #[test]
    fn default_route_is_found_and_other_routes_are_not() {
        let table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth1\t004D0A0A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
eth0\t00000000\t0100000A\t0003\t0\t0\t0\t00000000\t0\t0\t0
";
        assert_eq!(parse_default_route(table), Some("eth0".to_string()));
        assert_eq!(
            parse_default_route(&table.replace("eth0\t00000000", "eth0\t01000000")),
            None
        );
    }

    #[test]
    fn cpu_ticks_survive_a_command_name_with_spaces_and_parens() {
        let stat = "42 (x0 (tta) 6) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 100 0 0";
        assert_eq!(parse_cpu_ticks(stat), Some(300));
        assert_eq!(parse_cpu_ticks("no parens here"), None);
    }

    #[test]
    fn this_process_has_memory_and_cpu_time() {
        let stats = process_stats().expect("readable /proc/self");
        assert!(stats.rss_bytes > 1024 * 1024, "rss {}", stats.rss_bytes);
        assert!(stats.cpu_seconds >= 0.0);
    }
}
