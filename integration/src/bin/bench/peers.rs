//! The reference systems of `bench reroute`: Yggdrasil 0.4.7 and babeld 1.12 from
//! Debian's packages, run on the same namespace ring, probed with ICMP ping.
//! Yggdrasil's timers are fixed in its code; babeld runs at its defaults
//! (hellos every 4 s) and with hellos every 100 ms.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use x0tta6bl4_integration::netns::TestNet;
use x0tta6bl4_integration::{unix_ms, wait_for};

use crate::reroute::{busiest_link, Overlay, PROBE_EVERY};

/// Helper daemons, killed and reaped when dropped.
#[derive(Default)]
pub struct Daemons(Vec<Child>);

impl Daemons {
    /// Starts `program` with `args` in namespace `ns`, output discarded.
    fn spawn(&mut self, ns: &str, program: &str, args: &[&str]) -> Result<(), String> {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", ns, program]).args(args);
        self.start(command, program)
    }

    /// Starts `command` (which runs `program`), input and output discarded.
    pub fn start(&mut self, mut command: Command, program: &str) -> Result<(), String> {
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {program}: {e}"))?;
        self.0.push(child);
        Ok(())
    }

    /// Process ids of the daemons, in start order.
    pub fn pids(&self) -> Vec<u32> {
        self.0.iter().map(Child::id).collect()
    }
}

impl Drop for Daemons {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn installed(program: &str) -> Result<(), String> {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| ())
        .ok_or_else(|| format!("{program} is not installed"))
}

/// Pings `dst` from host 0 every [`PROBE_EVERY`] around a cut; `(send time, answered)` per probe.
fn ping_probe(
    net: &mut TestNet,
    dst: &str,
    source: Option<&str>,
    cut_after: Duration,
    then: Duration,
    cut: &mut dyn FnMut(&mut TestNet),
) -> Vec<(u64, bool)> {
    let interval = format!("{:.3}", PROBE_EVERY.as_secs_f64());
    let mut args = vec!["netns", "exec", net.ns(0), "ping", "-n", "-i", &interval, "-W", "1"];
    if let Some(source) = source {
        args.extend_from_slice(&["-I", source]);
    }
    args.push(dst);
    let started = unix_ms();
    let mut ping = Command::new("ip")
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("ping starts");
    let stdout = ping.stdout.take().expect("stdout");
    let (tx, replies) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let seqs = BufReader::new(stdout).lines().map_while(Result::ok).filter_map(|l| {
            l.split("icmp_seq=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        });
        for seq in seqs {
            if tx.send(seq).is_err() {
                return;
            }
        }
    });
    std::thread::sleep(cut_after);
    cut(net);
    let cut_at = unix_ms();
    let step = PROBE_EVERY.as_millis() as u64;
    let mut answered = std::collections::HashSet::new();
    let deadline = std::time::Instant::now() + then;
    let mut recovered_at = None;
    // Stop a second and a half after answers resume for probes sent well after
    // the cut, so the probes counted below (all but the last second) include them.
    while std::time::Instant::now() < deadline {
        if let Ok(seq) = replies.recv_timeout(Duration::from_millis(100)) {
            answered.insert(seq);
            if recovered_at.is_none() && started + (seq - 1) * step > cut_at + 100 {
                recovered_at = Some(std::time::Instant::now());
            }
        }
        if recovered_at.is_some_and(|t| t.elapsed() > Duration::from_millis(1_500)) {
            break;
        }
    }
    let stopped = unix_ms();
    let _ = ping.kill();
    let _ = ping.wait();
    answered.extend(replies.try_iter());
    // Probes whose answer could not have come back before the stop are left out.
    let sent = (stopped.saturating_sub(started + 1_000)) / step;
    (1..=sent)
        .map(|seq| (started + (seq - 1) * step, answered.contains(&seq)))
        .collect()
}

fn ping_once(net: &TestNet, dst: &str, source: Option<&str>) -> bool {
    let mut args = vec!["netns", "exec", net.ns(0), "ping", "-n", "-c", "1", "-W", "1"];
    if let Some(source) = source {
        args.extend_from_slice(&["-I", source]);
    }
    args.push(dst);
    Command::new("ip")
        .args(&args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A reference system reached with ICMP ping from host 0.
pub trait Pinged {
    /// Display name.
    fn name(&self) -> &'static str;
    /// Starts the daemons on every host of the ring.
    fn start(&mut self, net: &mut TestNet) -> Result<(), String>;
    /// Address of host 3, and the source address host 0 pings from (if any).
    fn target(&self) -> (String, Option<String>);
    /// The interface host 0's kernel routes host 3's traffic through, for a
    /// system that installs kernel routes.
    fn route_dev(&self, _net: &TestNet) -> Option<String> {
        None
    }
}

impl<T: Pinged> Overlay for T {
    fn name(&self) -> &'static str {
        Pinged::name(self)
    }

    fn start(&mut self, net: &mut TestNet) -> Result<(), String> {
        Pinged::start(self, net)
    }

    fn wait_ready(&self, net: &TestNet) {
        let (dst, src) = self.target();
        wait_for(
            Duration::from_secs(90),
            &format!("{} path 0 -> 3", Pinged::name(self)),
            || ping_once(net, &dst, src.as_deref()).then_some(()),
        );
    }

    fn probe(
        &self,
        net: &mut TestNet,
        cut_after: Duration,
        then: Duration,
        cut: &mut dyn FnMut(&mut TestNet),
    ) -> Vec<(u64, bool)> {
        let (dst, src) = self.target();
        ping_probe(net, &dst, src.as_deref(), cut_after, then, cut)
    }

    fn patience(&self) -> Duration {
        Duration::from_secs(30)
    }

    fn active_link(&self, net: &TestNet, before: &[(usize, u64)]) -> usize {
        self.route_dev(net)
            .and_then(|dev| net.links().iter().position(|l| l.dev == dev))
            .unwrap_or_else(|| busiest_link(net, before))
    }
}

/// Yggdrasil: each host peers over TCP with its ring neighbours' link addresses.
#[derive(Default)]
pub struct Yggdrasil {
    daemons: Daemons,
    dst: String,
    dir: Option<tempfile::TempDir>,
}

impl Pinged for Yggdrasil {
    fn name(&self) -> &'static str {
        "yggdrasil"
    }

    fn start(&mut self, net: &mut TestNet) -> Result<(), String> {
        installed("yggdrasil")?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        for host in 0..net.namespaces().len() {
            let generated = Command::new("yggdrasil")
                .args(["-genconf", "-json"])
                .output()
                .map_err(|e| format!("yggdrasil -genconf: {e}"))?;
            let mut config: Value = serde_json::from_slice(&generated.stdout).map_err(|e| e.to_string())?;
            let peers: Vec<String> = net
                .links()
                .iter()
                .filter(|l| l.addr_of(host).is_some())
                .filter_map(|l| l.addr_of(l.peer_of(host)))
                .map(|a| format!("tcp://{a}:9001"))
                .collect();
            config["Peers"] = serde_json::json!(peers);
            config["Listen"] = serde_json::json!(["tcp://0.0.0.0:9001"]);
            config["MulticastInterfaces"] = serde_json::json!([]);
            config["AdminListen"] = serde_json::json!("none");
            config["IfName"] = serde_json::json!("ygg0");
            let path = dir.path().join(format!("h{host}.json"));
            std::fs::write(&path, config.to_string()).map_err(|e| e.to_string())?;
            let path = path.to_string_lossy().to_string();
            if host == 3 {
                let out = Command::new("yggdrasil")
                    .args(["-useconffile", &path, "-address"])
                    .output()
                    .map_err(|e| e.to_string())?;
                self.dst = String::from_utf8_lossy(&out.stdout).trim().to_string();
            }
            let ns = net.ns(host).to_string();
            self.daemons
                .spawn(&ns, "yggdrasil", &["-useconffile", &path, "-logto", "/dev/null"])?;
        }
        self.dir = Some(dir);
        Ok(())
    }

    fn target(&self) -> (String, Option<String>) {
        (self.dst.clone(), None)
    }
}

/// babeld: each host announces a /32 on its loopback and forwards IPv4.
#[derive(Default)]
pub struct Babel {
    /// Hellos every 100 ms (a neighbour is lost after about two missed) instead
    /// of every 4 s: a detection time like the fast-failover profile's 300 ms.
    tuned: bool,
    daemons: Daemons,
    dir: Option<tempfile::TempDir>,
}

/// Loopback address babeld announces for `host`.
fn babel_addr(host: usize) -> String {
    format!("10.79.0.{}", host + 1)
}

impl Babel {
    /// babeld at its defaults, or with hellos every 100 ms when `tuned`.
    pub fn new(tuned: bool) -> Self {
        Self {
            tuned,
            ..Self::default()
        }
    }
}

impl Pinged for Babel {
    fn name(&self) -> &'static str {
        match self.tuned {
            true => "babeld hello 100 ms",
            false => "babeld defaults",
        }
    }

    fn start(&mut self, net: &mut TestNet) -> Result<(), String> {
        installed("babeld")?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let config = dir.path().join("babeld.conf");
        std::fs::write(
            &config,
            "redistribute local ip 10.79.0.0/16 ge 32 allow\nredistribute local deny\n",
        )
        .map_err(|e| e.to_string())?;
        let config = config.to_string_lossy().to_string();
        for host in 0..net.namespaces().len() {
            let ns = net.ns(host).to_string();
            let sysctl = Command::new("ip")
                .args(["netns", "exec", &ns, "sysctl", "-qw", "net.ipv4.ip_forward=1"])
                .status();
            if !sysctl.is_ok_and(|s| s.success()) {
                return Err("cannot enable forwarding".into());
            }
            net.ip(host, &["addr", "add", &format!("{}/32", babel_addr(host)), "dev", "lo"])
                .map_err(|e| e.to_string())?;
            let devices: Vec<String> = net
                .links()
                .iter()
                .filter(|l| l.addr_of(host).is_some())
                .map(|l| l.dev.clone())
                .collect();
            let state = dir.path().join(format!("h{host}.state")).to_string_lossy().to_string();
            let pid = dir.path().join(format!("h{host}.pid")).to_string_lossy().to_string();
            let mut args = vec!["-c", &config, "-S", &state, "-I", &pid];
            if self.tuned {
                args.extend_from_slice(&["-h", "0.1", "-H", "0.1"]);
            }
            args.extend(devices.iter().map(String::as_str));
            self.daemons.spawn(&ns, "babeld", &args)?;
        }
        self.dir = Some(dir);
        Ok(())
    }

    fn target(&self) -> (String, Option<String>) {
        (babel_addr(3), Some(babel_addr(0)))
    }

    fn route_dev(&self, net: &TestNet) -> Option<String> {
        let json = net
            .ip(0, &["-j", "route", "get", &babel_addr(3), "from", &babel_addr(0)])
            .ok()?;
        let routes: Value = serde_json::from_str(&json).ok()?;
        routes[0]["dev"].as_str().map(str::to_string)
    }
}
