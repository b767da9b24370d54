//! `bench xdp`: packets per second through a veth pair with no program, with
//! the node's XDP program attached in native and in generic mode, and the rate
//! at which the program drops a quarantined sender. Root only (namespaces, XDP).
//!
//! One thread in the sender's namespace sends minimum-size UDP frames (60 bytes)
//! as fast as it can; the receive rate is the kernel's `rx_packets` of the
//! receiving veth (drops: the program's drop counter). Rounds alternate the
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

/// One measurement: packets sent and packets that reached the program's verdict.
struct Sample {
    sent_pps: f64,
    received_pps: f64,
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
                "round {round}/{rounds} {:<18} sent {:>10.0} pps  through {:>10.0} pps",
                scenario.label(),
                sample.sent_pps,
                sample.received_pps
            );
            samples.push((scenario, sample));
        }
    }
    report(&samples, window);
}

fn measure(net: &mut TestNet, scenario: Scenario, to: SocketAddrV4, sender: String, window: Duration) -> Sample {
    if scenario != Scenario::NoProgram {
        let mode = if scenario == Scenario::Generic {
            "generic"
        } else {
            "auto"
        };
        let spec = net
            .node_spec(0)
            .with_xdp_on(&[DEV])
            .with("X0TTA6BL4_TELEMETRY__XDP_MODE", mode)
            .with("X0TTA6BL4_TELEMETRY__INTERVAL_MS", "100");
        net.start_node(0, spec).expect("node starts");
        wait_for(Duration::from_secs(10), "XDP attached", || {
            let t = net.node(0).get("/api/v1/telemetry").ok()?;
            t["xdp"]["enabled"].as_bool()?.then_some(())
        });
    }
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
    if scenario != Scenario::NoProgram {
        net.node_mut(0).stop();
    }
    let secs = window.as_secs_f64();
    let received = if scenario == Scenario::Drop {
        dropped_after.saturating_sub(dropped_before)
    } else {
        rx_after.saturating_sub(rx_before)
    };
    Sample {
        sent_pps: sent as f64 / secs,
        received_pps: received as f64 / secs,
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
    let baseline = of(Scenario::NoProgram, |s| s.received_pps);
    println!();
    println!(
        "60-byte UDP frames, one sender thread, {:.1} s windows, medians",
        window.as_secs_f64()
    );
    println!("scenario             sent pps   through pps   ratio to no program");
    let mut results = Vec::new();
    for scenario in Scenario::ALL {
        let sent = of(scenario, |s| s.sent_pps);
        let through = of(scenario, |s| s.received_pps);
        let ratio = if baseline > 0.0 { through / baseline } else { 0.0 };
        println!("{:<18} {sent:>11.0} {through:>13.0} {ratio:>21.3}", scenario.label());
        results.push(json!({ "scenario": scenario.key(), "sent_pps": sent, "through_pps": through, "ratio": ratio }));
    }
    println!(
        "{}",
        json!({ "bench": "xdp", "frame_bytes": PAYLOAD + 42, "window_secs": window.as_secs_f64(), "results": results })
    );
}
