//! `bench xdp`: packets per second through a veth pair with no program, with
//! the node's XDP program attached in native and in generic mode, and the rate
//! at which the program drops a quarantined sender. Root only (namespaces, XDP).
//!
//! One thread in the sender's namespace sends minimum-size UDP frames (60 bytes)
//! as fast as it can; the rate through is the kernel's `rx_packets` of the
//! receiving veth, the drop rate the program's drop counter. A node runs on the
//! receiving side in every scenario, polling its telemetry every 100 ms (in the
//! baseline with XDP off, reading the kernel's interface counters), so the
//! baseline pays for the same process as the rest. Rounds alternate the
//! scenarios so machine noise hits all of them alike; medians are reported.

use std::net::SocketAddrV4;
use std::time::Duration;

use serde_json::json;
use x0tta6bl4_integration::netns::TestNet;
use x0tta6bl4_integration::wait_for;

/// Payload of each datagram: 18 bytes make a 60-byte frame, Ethernet's minimum.
const PAYLOAD: usize = 18;
const DEV: &str = "l0";

#[derive(Clone, Copy, PartialEq)]
enum Scenario {
    NoProgram,
    Native,
    Generic,
    Drop,
}

impl Scenario {
    const ALL: [Scenario; 4] = [Scenario::NoProgram, Scenario::Native, Scenario::Generic, Scenario::Drop];

    fn label(self) -> &'static str {
        match self {
            Scenario::NoProgram => "no program",
            Scenario::Native => "native XDP, pass",
            Scenario::Generic => "generic XDP, pass",
            Scenario::Drop => "native XDP, drop",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Scenario::NoProgram => "none",
            Scenario::Native => "native",
            Scenario::Generic => "generic",
            Scenario::Drop => "native_drop",
        }
    }
}

/// One measurement: packets sent, through the receiving veth, and dropped by
/// the program.
struct Sample {
    sent_pps: f64,
    through_pps: f64,
    dropped_pps: f64,
}

pub fn run(quick: bool) {
    let mut net = match TestNet::new() {
        Ok(net) => net,
        Err(e) => {
            eprintln!("SKIPPED: {e}");
            println!("{}", json!({ "bench": "xdp", "skipped": e.to_string() }));
            return;
        }
    };
    net.add_hosts(2).expect("hosts");
    net.link(0, 1).expect("link");
    let receiver = net.links()[0].addr_of(0).expect("address");
    let sender = net.links()[0].addr_of(1).expect("address");
    let to = SocketAddrV4::new(receiver, 9);
    let (window, rounds) = if quick {
        (Duration::from_millis(500), 1)
    } else {
        (Duration::from_secs(3), 3)
    };
    let mut samples: Vec<(Scenario, Sample)> = Vec::new();
    for round in 1..=rounds {
        for scenario in Scenario::ALL {
            let sample = measure(&mut net, scenario, to, sender.to_string(), window);
            eprintln!(
                "round {round}/{rounds} {:<18} sent {:>10.0} pps  through {:>10.0} pps  dropped {:>10.0} pps",
                scenario.label(),
                sample.sent_pps,
                sample.through_pps,
                sample.dropped_pps
            );
            samples.push((scenario, sample));
        }
    }
    report(&samples, window);
}

fn measure(net: &mut TestNet, scenario: Scenario, to: SocketAddrV4, sender: String, window: Duration) -> Sample {
    let spec = net
        .node_spec(0)
        .with("X0TTA6BL4_TELEMETRY__INTERFACES", format!("[\"{DEV}\"]"))
        .with("X0TTA6BL4_TELEMETRY__INTERVAL_MS", "100");
    let spec = match scenario {
        Scenario::NoProgram => spec,
        Scenario::Generic => spec
            .with_xdp_on(&[DEV])
            .with("X0TTA6BL4_TELEMETRY__XDP_MODE", "generic"),
        Scenario::Native | Scenario::Drop => spec.with_xdp_on(&[DEV]).with("X0TTA6BL4_TELEMETRY__XDP_MODE", "auto"),
    };
    net.start_node(0, spec).expect("node starts");
    wait_for(Duration::from_secs(10), "telemetry (and XDP, when on) running", || {
        let t = net.node(0).get("/api/v1/telemetry").ok()?;
        let xdp = t["xdp"]["enabled"].as_bool()?;
        (xdp == (scenario != Scenario::NoProgram)).then_some(())
    });
    if scenario == Scenario::Drop {
        net.node(0)
            .post("/api/v1/quarantine", &json!({"addresses": [sender], "ttl_secs": 600}))
            .expect("quarantine the sender");
    }
    let dropped_before = dropped(net, scenario);
    let rx_before = net.rx_packets(0, DEV).expect("rx counter");
    let sent = net.blast_udp(1, to, PAYLOAD, window).expect("send");
    let rx_after = net.rx_packets(0, DEV).expect("rx counter");
    std::thread::sleep(Duration::from_millis(300));
    let dropped_after = dropped(net, scenario);
    net.node_mut(0).stop();
    let secs = window.as_secs_f64();
    Sample {
        sent_pps: sent as f64 / secs,
        through_pps: rx_after.saturating_sub(rx_before) as f64 / secs,
        dropped_pps: dropped_after.saturating_sub(dropped_before) as f64 / secs,
    }
}

/// The program's quarantine drop count on the receiving veth (0 without a program).
fn dropped(net: &TestNet, scenario: Scenario) -> u64 {
    if scenario == Scenario::NoProgram {
        return 0;
    }
    net.node(0)
        .get("/api/v1/telemetry")
        .ok()
        .and_then(|t| {
            t["interfaces"][0]["dropped"]
                .as_array()?
                .iter()
                .find(|d| d["name"] == "quarantine")?["packets"]
                .as_u64()
        })
        .unwrap_or(0)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn report(samples: &[(Scenario, Sample)], window: Duration) {
    let of = |scenario: Scenario, pick: fn(&Sample) -> f64| {
        median(
            samples
                .iter()
                .filter(|(s, _)| *s == scenario)
                .map(|(_, x)| pick(x))
                .collect(),
        )
    };
    let baseline = of(Scenario::NoProgram, |s| s.through_pps);
    println!();
    println!(
        "60-byte UDP frames, one sender thread, {:.1} s windows, medians; a node polling telemetry every 100 ms in each",
        window.as_secs_f64()
    );
    println!("scenario             sent pps   through pps   dropped pps   handled / no program");
    let mut results = Vec::new();
    for scenario in Scenario::ALL {
        let sent = of(scenario, |s| s.sent_pps);
        let through = of(scenario, |s| s.through_pps);
        let dropped = of(scenario, |s| s.dropped_pps);
        // What the program handled: passed on, or (quarantine) dropped.
        let handled = if scenario == Scenario::Drop { dropped } else { through };
        let ratio = if baseline > 0.0 { handled / baseline } else { 0.0 };
        println!(
            "{:<18} {sent:>11.0} {through:>13.0} {dropped:>13.0} {ratio:>22.3}",
            scenario.label()
        );
        results.push(json!({
            "scenario": scenario.key(),
            "sent_pps": sent,
            "through_pps": through,
            "dropped_pps": dropped,
            "handled_ratio_to_none": ratio,
        }));
    }
    println!(
        "{}",
        json!({ "bench": "xdp", "frame_bytes": PAYLOAD + 42, "window_secs": window.as_secs_f64(), "results": results })
    );
}
