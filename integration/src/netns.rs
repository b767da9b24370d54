//! Test networks made of Linux network namespaces: one namespace per host, veth
//! pairs as point-to-point links, random loss per link (nftables), links that go
//! down and up, partitions, and nodes started inside hosts.
//!
//! Every host also gets a management veth to the root namespace (addresses in
//! 10.78.0.0/16) so the test can reach the node's HTTP API; namespaces have no
//! routes between each other's management subnets, so mesh traffic only crosses
//! the data links (10.77.0.0/16). Nothing is sent outside these namespaces.
//!
//! Names carry a per-run prefix (`x6<pid><n>`). Dropping a [`TestNet`] (also
//! while unwinding from a failed assertion) stops its nodes and deletes its
//! namespaces, which deletes their veths; [`TestNet::new`] first removes
//! leftovers of runs whose process is gone.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::{NodeProcess, NodeSpec};

/// Prefix of every namespace this module creates.
const PREFIX: &str = "x6";
/// Port libp2p listens on inside each host.
pub const MESH_PORT: u16 = 4001;
/// The API token of every namespace node (their API listens beyond loopback).
pub const TEST_TOKEN: &str = "x0tta6bl4-test-token";

static NETS_CREATED: AtomicU32 = AtomicU32::new(0);
/// Management subnets live in the shared root namespace, so they are numbered
/// across every network of this process (tests run in parallel).
static MGMT_SUBNETS: AtomicUsize = AtomicUsize::new(0);

/// Why a test network could not be set up.
#[derive(Debug, Error)]
pub enum NetError {
    /// Not root, or `ip`/`tc` missing: the caller should skip loudly.
    #[error("network namespaces unavailable: {0}")]
    Unavailable(String),
    /// A command failed.
    #[error("`{command}` failed: {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// What it printed.
        stderr: String,
    },
    /// A node did not start.
    #[error(transparent)]
    Launch(#[from] x0tta6bl4::launcher::LaunchError),
}

/// A point-to-point link between two hosts.
#[derive(Debug, Clone)]
pub struct Link {
    /// First host.
    pub a: usize,
    /// Second host.
    pub b: usize,
    /// Device name (the same inside both namespaces).
    pub dev: String,
    /// Address of `a` on this link.
    pub a_addr: Ipv4Addr,
    /// Address of `b` on this link.
    pub b_addr: Ipv4Addr,
}

impl Link {
    /// The address `host` has on this link.
    pub fn addr_of(&self, host: usize) -> Option<Ipv4Addr> {
        match host {
            h if h == self.a => Some(self.a_addr),
            h if h == self.b => Some(self.b_addr),
            _ => None,
        }
    }

    /// The other end of the link, seen from `host`.
    pub fn peer_of(&self, host: usize) -> usize {
        if host == self.a {
            self.b
        } else {
            self.a
        }
    }
}

/// A new [`TestNet`], or `None` after a loud `SKIPPED` line when namespaces are
/// unavailable here. Under CI (`CI=true`) unavailability is a failure.
pub fn test_net_or_skip() -> Option<TestNet> {
    match TestNet::new() {
        Ok(net) => Some(net),
        Err(NetError::Unavailable(reason)) => {
            assert!(std::env::var("CI").is_err(), "CI must run namespace tests: {reason}");
            eprintln!("SKIPPED: {reason}; this namespace test did not run");
            None
        }
        Err(other) => panic!("cannot create a test network: {other}"),
    }
}

/// Runs a command, turning a failure into [`NetError::Command`].
pub fn run(program: &str, args: &[&str]) -> Result<String, NetError> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| NetError::Unavailable(format!("{program}: {e}")))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(NetError::Command {
            command: format!("{program} {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }
}

/// Namespaces created by this module that still exist (any run).
pub fn existing_namespaces() -> Vec<String> {
    run("ip", &["netns", "list"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(PREFIX) && n.contains('n'))
        .map(str::to_string)
        .collect()
}

/// Removes namespaces of earlier runs whose test process is gone, with anything
/// still running inside them.
pub fn clean_leftovers() {
    for ns in existing_namespaces() {
        let owner = ns
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('n').next())
            .and_then(|pid| u32::from_str_radix(pid, 16).ok());
        let alive = owner.is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            delete_namespace(&ns);
        }
    }
}

fn delete_namespace(ns: &str) {
    for pid in run("ip", &["netns", "pids", ns]).unwrap_or_default().split_whitespace() {
        let _ = run("kill", &["-9", pid]);
    }
    let _ = run("ip", &["netns", "del", ns]);
}

/// A network of hosts (namespaces) and the nodes running in them.
pub struct TestNet {
    prefix: String,
    hosts: Vec<String>,
    mgmt: Vec<Ipv4Addr>,
    links: Vec<Link>,
    loss: Vec<u8>,
    relays: Vec<String>,
    relay_processes: Vec<std::process::Child>,
    nodes: Vec<Option<NodeProcess>>,
    dir: tempfile::TempDir,
}

impl TestNet {
    /// An empty network; fails with [`NetError::Unavailable`] without root or `ip`.
    pub fn new() -> Result<Self, NetError> {
        if !nix_is_root() {
            return Err(NetError::Unavailable("not running as root".into()));
        }
        run("ip", &["netns", "list"])?;
        run("nft", &["--version"]).map_err(|e| NetError::Unavailable(format!("nft (package nftables): {e}")))?;
        clean_leftovers();
        let n = NETS_CREATED.fetch_add(1, Ordering::Relaxed);
        Ok(Self {
            prefix: format!("{PREFIX}{:x}n{n:x}", std::process::id()),
            hosts: Vec::new(),
            mgmt: Vec::new(),
            links: Vec::new(),
            loss: Vec::new(),
            relays: Vec::new(),
            relay_processes: Vec::new(),
            nodes: Vec::new(),
            dir: tempfile::tempdir().map_err(|e| NetError::Unavailable(e.to_string()))?,
        })
    }

    /// Namespace name of `host`.
    pub fn ns(&self, host: usize) -> &str {
        &self.hosts[host]
    }

    /// Names of this network's namespaces.
    pub fn namespaces(&self) -> Vec<String> {
        self.hosts.clone()
    }

    /// Root-namespace ends of the management veths.
    pub fn root_devices(&self) -> Vec<String> {
        (0..self.hosts.len()).map(|h| self.root_device(h)).collect()
    }

    fn root_device(&self, host: usize) -> String {
        format!("{}m{host}", self.prefix.replace('n', ""))
    }

    /// The links, in creation order.
    pub fn links(&self) -> &[Link] {
        &self.links
    }

    /// Runs `ip` inside `host`.
    pub fn ip(&self, host: usize, args: &[&str]) -> Result<String, NetError> {
        let mut full = vec!["-n", self.ns(host)];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// Adds a host with loopback up and a management link to the root namespace.
    pub fn add_host(&mut self) -> Result<usize, NetError> {
        let host = self.hosts.len();
        let ns = format!("{}h{host}", self.prefix);
        run("ip", &["netns", "add", &ns])?;
        self.hosts.push(ns.clone());
        run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
        let (root_addr, ns_addr) = mgmt_addrs(MGMT_SUBNETS.fetch_add(1, Ordering::Relaxed));
        let root_dev = self.root_device(host);
        run(
            "ip",
            &[
                "link", "add", &root_dev, "type", "veth", "peer", "name", "mgmt", "netns", &ns,
            ],
        )?;
        run("ip", &["addr", "add", &format!("{root_addr}/30"), "dev", &root_dev])?;
        run("ip", &["link", "set", &root_dev, "up"])?;
        run(
            "ip",
            &["-n", &ns, "addr", "add", &format!("{ns_addr}/30"), "dev", "mgmt"],
        )?;
        run("ip", &["-n", &ns, "link", "set", "mgmt", "up"])?;
        self.mgmt.push(ns_addr);
        self.nodes.push(None);
        self.nft(host, &["add", "table", "inet", "x6"])?;
        self.nft(
            host,
            &[
                "add",
                "chain",
                "inet",
                "x6",
                "impair",
                "{ type filter hook input priority 0; policy accept; }",
            ],
        )?;
        Ok(host)
    }

    /// Adds `count` hosts.
    pub fn add_hosts(&mut self, count: usize) -> Result<Vec<usize>, NetError> {
        (0..count).map(|_| self.add_host()).collect()
    }

    /// Connects two hosts with a veth pair; returns the link index.
    pub fn link(&mut self, a: usize, b: usize) -> Result<usize, NetError> {
        let index = self.links.len();
        let dev = format!("l{index}");
        let (a_addr, b_addr) = link_addrs(index);
        let (ns_a, ns_b) = (self.ns(a).to_string(), self.ns(b).to_string());
        run(
            "ip",
            &[
                "link", "add", &dev, "netns", &ns_a, "type", "veth", "peer", "name", &dev, "netns", &ns_b,
            ],
        )?;
        for (ns, addr) in [(&ns_a, a_addr), (&ns_b, b_addr)] {
            address_up(ns, &dev, addr)?;
        }
        Ok(self.push_link(a, b, dev))
    }

    /// Records a link whose interfaces exist; returns its index.
    fn push_link(&mut self, a: usize, b: usize, dev: String) -> usize {
        let (a_addr, b_addr) = link_addrs(self.links.len());
        self.links.push(Link {
            a,
            b,
            dev,
            a_addr,
            b_addr,
        });
        self.loss.push(0);
        self.links.len() - 1
    }

    /// Connects two hosts with a link that delays every frame by `delay_ms` each
    /// way: a relay namespace between them runs `scripts/delay_link.py`, which
    /// bridges its two interfaces (this kernel has no netem). Returns the link index.
    pub fn delayed_link(&mut self, a: usize, b: usize, delay_ms: u32) -> Result<usize, NetError> {
        let index = self.links.len();
        let dev = format!("l{index}");
        let relay = format!("{}d{index}", self.prefix);
        run("ip", &["netns", "add", &relay])?;
        self.relays.push(relay.clone());
        let (a_addr, b_addr) = link_addrs(index);
        for (host, side, addr) in [(a, "ra", a_addr), (b, "rb", b_addr)] {
            let ns = self.ns(host).to_string();
            run(
                "ip",
                &[
                    "link", "add", &dev, "netns", &ns, "type", "veth", "peer", "name", side, "netns", &relay,
                ],
            )?;
            address_up(&ns, &dev, addr)?;
            run("ip", &["-n", &relay, "link", "set", "dev", side, "up"])?;
            // Frames copied by the relay must carry full checksums: veth would
            // otherwise leave TCP checksums to an offload that never happens.
            run("ip", &["netns", "exec", &ns, "ethtool", "-K", &dev, "tx", "off"])
                .map_err(|e| NetError::Unavailable(format!("ethtool (package ethtool): {e}")))?;
        }
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/delay_link.py");
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &relay,
                "python3",
                script,
                "ra",
                "rb",
                &delay_ms.to_string(),
            ])
            .stdin(std::process::Stdio::null())
            .spawn()
            .map_err(|e| NetError::Unavailable(format!("python3 for the delay relay: {e}")))?;
        self.relay_processes.push(child);
        Ok(self.push_link(a, b, dev))
    }

    /// Drops `loss_pct` % of the packets arriving over `link`, at both ends, with
    /// an nftables `numgen random` rule (this kernel has no `netem`); 100 % makes a
    /// silent cut, where the interfaces stay up and only timeouts tell.
    pub fn set_loss(&mut self, link: usize, loss_pct: u8) -> Result<(), NetError> {
        self.loss[link] = loss_pct.min(100);
        let (a, b) = (self.links[link].a, self.links[link].b);
        for host in [a, b] {
            self.nft(host, &["flush", "chain", "inet", "x6", "impair"])?;
            for (i, l) in self.links.iter().enumerate() {
                if self.loss[i] > 0 && l.addr_of(host).is_some() {
                    let rule = match self.loss[i] {
                        100 => format!("iifname \"{}\" drop", l.dev),
                        pct => format!("iifname \"{}\" numgen random mod 100 < {pct} drop", l.dev),
                    };
                    self.nft(host, &["add", "rule", "inet", "x6", "impair", &rule])?;
                }
            }
        }
        Ok(())
    }

    fn nft(&self, host: usize, args: &[&str]) -> Result<String, NetError> {
        let mut full = vec!["netns", "exec", self.ns(host), "nft"];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// Runs `program` inside `host`.
    pub fn exec(&self, host: usize, program: &str, args: &[&str]) -> Result<String, NetError> {
        let mut full = vec!["netns", "exec", self.ns(host), program];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// Whether one ping from `host` to `addr` is answered within a second.
    pub fn ping(&self, host: usize, addr: Ipv4Addr) -> bool {
        self.exec(host, "ping", &["-c", "1", "-W", "1", &addr.to_string()])
            .is_ok()
    }

    /// Runs `work` on a thread inside `host`'s network namespace.
    pub fn in_namespace<T: Send>(&self, host: usize, work: impl FnOnce() -> T + Send) -> Result<T, NetError> {
        let path = format!("/run/netns/{}", self.ns(host));
        let file = std::fs::File::open(&path).map_err(|e| NetError::Unavailable(format!("{path}: {e}")))?;
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                        .map_err(|e| NetError::Unavailable(format!("setns {path}: {e}")))?;
                    Ok(work())
                })
                .join()
                .map_err(|_| NetError::Unavailable("namespace thread panicked".into()))?
        })
    }

    /// Sends exactly `count` UDP datagrams with `payload` bytes each from `host`
    /// to `to`; on the wire each is `payload + 42` bytes (Ethernet, IPv4, UDP).
    pub fn send_udp(&self, host: usize, to: SocketAddrV4, count: u64, payload: usize) -> Result<(), NetError> {
        self.in_namespace(host, || -> std::io::Result<()> {
            let socket = UdpSocket::bind("0.0.0.0:0")?;
            let data = vec![0x5a; payload];
            for _ in 0..count {
                socket.send_to(&data, to)?;
            }
            Ok(())
        })?
        .map_err(|e| NetError::Unavailable(format!("sending UDP to {to}: {e}")))
    }

    /// Sends UDP datagrams of `payload` bytes from `host` to `to` as fast as one
    /// thread can for `duration`; returns how many were sent.
    pub fn blast_udp(
        &self,
        host: usize,
        to: SocketAddrV4,
        payload: usize,
        duration: Duration,
    ) -> Result<u64, NetError> {
        self.in_namespace(host, || -> std::io::Result<u64> {
            let socket = UdpSocket::bind("0.0.0.0:0")?;
            socket.connect(to)?;
            let data = vec![0x5a; payload];
            let deadline = Instant::now() + duration;
            let mut sent = 0u64;
            while Instant::now() < deadline {
                for _ in 0..256 {
                    // A full queue (ENOBUFS) is back-pressure, not a failure.
                    if socket.send(&data).is_ok() {
                        sent += 1;
                    }
                }
            }
            Ok(sent)
        })?
        .map_err(|e| NetError::Unavailable(format!("sending UDP to {to}: {e}")))
    }

    /// The kernel's receive packet count of `dev` in `host`.
    pub fn rx_packets(&self, host: usize, dev: &str) -> Result<u64, NetError> {
        let text = self.exec(host, "cat", &["/proc/net/dev"])?;
        text.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(name, _)| name.trim() == dev)
            .and_then(|(_, fields)| fields.split_whitespace().nth(1)?.parse().ok())
            .ok_or_else(|| NetError::Unavailable(format!("no counters for {dev} in {}", self.ns(host))))
    }

    /// Brings a link down (both ends) or back up.
    pub fn set_link(&self, link: usize, up: bool) -> Result<(), NetError> {
        let l = &self.links[link];
        let state = if up { "up" } else { "down" };
        for host in [l.a, l.b] {
            self.ip(host, &["link", "set", &l.dev, state])?;
        }
        Ok(())
    }

    /// Cuts every link between `side` and the other hosts (or restores them);
    /// returns the links it touched.
    pub fn partition(&self, side: &[usize], cut: bool) -> Result<Vec<usize>, NetError> {
        let crossing: Vec<usize> = (0..self.links.len())
            .filter(|i| side.contains(&self.links[*i].a) != side.contains(&self.links[*i].b))
            .collect();
        for link in &crossing {
            self.set_link(*link, !cut)?;
        }
        Ok(crossing)
    }

    /// The node spec for `host`: listens on its data-link addresses, serves HTTP on
    /// its management address, bootstraps from its neighbours that already run.
    pub fn node_spec(&self, host: usize) -> NodeSpec {
        let listen: Vec<String> = self
            .links
            .iter()
            .filter_map(|l| l.addr_of(host))
            .map(|a| format!("\"/ip4/{a}/tcp/{MESH_PORT}\""))
            .collect();
        let bootstrap: Vec<String> = self
            .links
            .iter()
            .filter(|l| l.addr_of(host).is_some())
            .filter_map(|l| {
                let peer = l.peer_of(host);
                let node = self.nodes[peer].as_ref()?;
                let addr = l.addr_of(peer)?;
                Some(format!("\"/ip4/{addr}/tcp/{MESH_PORT}/p2p/{}\"", node.peer_id))
            })
            .collect();
        let http = self.mgmt[host];
        // The API listens on the management address, beyond loopback: it
        // needs a token.
        let mut spec = crate::test_spec(self.dir.path(), &format!("h{host}"))
            .with(x0tta6bl4::launcher::TOKEN_ENV, TEST_TOKEN)
            .with("X0TTA6BL4_MESH__LISTEN", format!("[{}]", listen.join(",")))
            .with("X0TTA6BL4_MESH__BOOTSTRAP", format!("[{}]", bootstrap.join(",")));
        spec.http = std::net::SocketAddr::from((http, 0));
        spec.prefix = vec!["ip".into(), "netns".into(), "exec".into(), self.ns(host).into()];
        spec
    }

    /// Starts a node in `host` from `spec` (see [`TestNet::node_spec`]).
    pub fn start_node(&mut self, host: usize, spec: NodeSpec) -> Result<&NodeProcess, NetError> {
        self.nodes[host] = Some(NodeProcess::spawn(spec)?);
        Ok(self.node(host))
    }

    /// The node of `host`. Panics if none runs there.
    pub fn node(&self, host: usize) -> &NodeProcess {
        self.nodes[host]
            .as_ref()
            .unwrap_or_else(|| panic!("no node on host {host}"))
    }

    /// The node of `host`, mutably.
    pub fn node_mut(&mut self, host: usize) -> &mut NodeProcess {
        self.nodes[host]
            .as_mut()
            .unwrap_or_else(|| panic!("no node on host {host}"))
    }

    /// Starts a node on every host, in host order, each with the extra settings
    /// in `env` (e.g. faster pings).
    pub fn start_all(&mut self, env: &[(&str, &str)]) -> Result<(), NetError> {
        for host in 0..self.hosts.len() {
            let spec = env.iter().fold(self.node_spec(host), |spec, (k, v)| spec.with(k, *v));
            self.start_node(host, spec)?;
        }
        Ok(())
    }

    /// Builds a ring of `n` hosts; link `i` joins host `i` and `i + 1 (mod n)`.
    pub fn ring(n: usize) -> Result<Self, NetError> {
        let mut net = Self::new()?;
        net.add_hosts(n)?;
        for i in 0..n {
            net.link(i, (i + 1) % n)?;
        }
        Ok(net)
    }

    /// Builds `n` hosts joined by a ring plus random chords, `links` links in
    /// all (at least `n`), drawn from `rng`; returns the links as host pairs.
    pub fn random_mesh(
        n: usize,
        links: usize,
        rng: &mut impl rand::Rng,
    ) -> Result<(Self, Vec<(usize, usize)>), NetError> {
        let mut edges: HashSet<(usize, usize)> = (0..n).map(|i| (i.min((i + 1) % n), i.max((i + 1) % n))).collect();
        let links = links.min(n * n.saturating_sub(1) / 2);
        while edges.len() < links {
            let (a, b) = (rng.gen_range(0..n), rng.gen_range(0..n));
            if a != b {
                edges.insert((a.min(b), a.max(b)));
            }
        }
        let mut edges: Vec<_> = edges.into_iter().collect();
        edges.sort();
        let mut net = Self::new()?;
        net.add_hosts(n)?;
        for (a, b) in &edges {
            net.link(*a, *b)?;
        }
        Ok((net, edges))
    }

    /// Host index of the node with `peer_id`.
    pub fn host_of(&self, peer_id: &str) -> Option<usize> {
        self.nodes
            .iter()
            .position(|n| n.as_ref().is_some_and(|n| n.peer_id == peer_id))
    }

    /// The link between two hosts, if any.
    pub fn link_between(&self, a: usize, b: usize) -> Option<usize> {
        self.links
            .iter()
            .position(|l| (l.a == a && l.b == b) || (l.a == b && l.b == a))
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        for node in self.nodes.iter_mut().flatten() {
            node.stop();
        }
        for dev in self.root_devices() {
            // Deleting one end removes the pair now, not when the kernel gets
            // round to destroying the namespace.
            let _ = run("ip", &["link", "del", "dev", &dev]);
        }
        for relay in &mut self.relay_processes {
            let _ = relay.kill();
            let _ = relay.wait();
        }
        for ns in self.hosts.iter().chain(&self.relays) {
            delete_namespace(ns);
        }
    }
}

/// Gives `dev` in namespace `ns` the address `addr/30` and brings it up.
fn address_up(ns: &str, dev: &str, addr: Ipv4Addr) -> Result<(), NetError> {
    run("ip", &["-n", ns, "addr", "add", &format!("{addr}/30"), "dev", dev])?;
    run("ip", &["-n", ns, "link", "set", "dev", dev, "up"])?;
    Ok(())
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// Addresses of the two ends of data link `index` (a /30 in 10.77.0.0/16).
fn link_addrs(index: usize) -> (Ipv4Addr, Ipv4Addr) {
    subnet_pair(77, index)
}

/// Root-side and namespace-side addresses of management subnet `index` (10.78.0.0/16).
fn mgmt_addrs(index: usize) -> (Ipv4Addr, Ipv4Addr) {
    subnet_pair(78, index)
}

fn subnet_pair(second_octet: u8, index: usize) -> (Ipv4Addr, Ipv4Addr) {
    let base = (index * 4) as u32;
    let net = u32::from(Ipv4Addr::new(10, second_octet, 0, 0)) + base;
    (Ipv4Addr::from(net + 1), Ipv4Addr::from(net + 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_do_not_overlap() {
        assert_eq!(
            link_addrs(0),
            (Ipv4Addr::new(10, 77, 0, 1), Ipv4Addr::new(10, 77, 0, 2))
        );
        assert_eq!(
            link_addrs(64),
            (Ipv4Addr::new(10, 77, 1, 1), Ipv4Addr::new(10, 77, 1, 2))
        );
        assert_eq!(
            mgmt_addrs(1),
            (Ipv4Addr::new(10, 78, 0, 5), Ipv4Addr::new(10, 78, 0, 6))
        );
    }
}
