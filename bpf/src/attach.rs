//! Loading the program and attaching it to one interface.

use std::{fmt, net::IpAddr, str::FromStr, time::Duration};

use aya::{
    maps::{HashMap, MapData, PerCpuArray},
    programs::{xdp::XdpLinkId, Xdp},
    Ebpf,
};
use nix::{
    libc,
    time::{clock_gettime, ClockId},
};

use crate::{
    error::{describe, load_error, os_error},
    interface::check_interface,
    maps::{key_addr, source_key, BlockEntry, Counter, Pair, SourceKey, Talker, XdpCounters, BLOCKLIST_CAPACITY},
    object::object,
    Class, DropReason, XdpError,
};

const PROGRAM: &str = "x0tta_xdp";

/// The mode an attached program runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpMode {
    /// Offloaded to the network device.
    Hardware,
    /// Native: run by the driver before it allocates a socket buffer.
    Driver,
    /// Generic: run by the kernel on socket buffers; works on any interface.
    Skb,
}

impl XdpMode {
    /// The label used in the API and logs.
    pub fn label(self) -> &'static str {
        match self {
            XdpMode::Hardware => "hardware",
            XdpMode::Driver => "native",
            XdpMode::Skb => "generic",
        }
    }
}

impl fmt::Display for XdpMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

impl From<XdpMode> for aya::programs::XdpMode {
    fn from(mode: XdpMode) -> Self {
        match mode {
            XdpMode::Hardware => aya::programs::XdpMode::Hardware,
            XdpMode::Driver => aya::programs::XdpMode::Driver,
            XdpMode::Skb => aya::programs::XdpMode::Skb,
        }
    }
}

/// Which modes to try.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum XdpModeRequest {
    /// Hardware offload, then native, then generic: the first the interface accepts.
    #[default]
    Auto,
    /// Only this mode.
    Only(XdpMode),
}

impl XdpModeRequest {
    fn candidates(self) -> Vec<XdpMode> {
        match self {
            XdpModeRequest::Auto => vec![XdpMode::Hardware, XdpMode::Driver, XdpMode::Skb],
            XdpModeRequest::Only(mode) => vec![mode],
        }
    }
}

impl FromStr for XdpModeRequest {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(XdpModeRequest::Auto),
            "hardware" => Ok(XdpModeRequest::Only(XdpMode::Hardware)),
            "native" | "driver" => Ok(XdpModeRequest::Only(XdpMode::Driver)),
            "generic" | "skb" => Ok(XdpModeRequest::Only(XdpMode::Skb)),
            other => Err(format!(
                "unknown XDP mode {other:?} (expected auto, hardware, native or generic)"
            )),
        }
    }
}

/// A mode the interface refused, and the kernel's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModeRefusal {
    /// The refused mode.
    pub mode: XdpMode,
    /// Why.
    pub reason: String,
}

/// The program loaded and attached to one interface, with its maps.
///
/// The kernel holds the program through a BPF link whose file descriptor this
/// value owns: dropping it (or the process dying) detaches the program.
pub struct Attachment {
    iface: String,
    mode: XdpMode,
    refused: Vec<ModeRefusal>,
    link: Option<XdpLinkId>,
    ebpf: Ebpf,
}

impl fmt::Debug for Attachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attachment")
            .field("iface", &self.iface)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl Attachment {
    /// Loads the program and attaches it to `iface` in the first mode of
    /// `request` the interface accepts.
    pub fn attach(iface: &str, request: XdpModeRequest) -> Result<Self, XdpError> {
        let object = object().map_err(XdpError::NotBuilt)?;
        let if_index = check_interface(iface)?;
        let mut ebpf = Ebpf::load(object).map_err(|e| load_error(&e))?;
        let (link, mode, refused) = {
            let program: &mut Xdp = ebpf
                .program_mut(PROGRAM)
                .ok_or_else(|| XdpError::Load(format!("object has no program {PROGRAM}")))?
                .try_into()
                .map_err(|e| load_error(&e))?;
            program.load().map_err(|e| load_error(&e))?;
            attach_first_accepted(program, iface, if_index, request)?
        };
        Ok(Attachment {
            iface: iface.to_string(),
            mode,
            refused,
            link: Some(link),
            ebpf,
        })
    }

    /// The interface.
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// The mode in use.
    pub fn mode(&self) -> XdpMode {
        self.mode
    }

    /// Modes tried before the one in use, with the kernel's answers.
    pub fn refused(&self) -> &[ModeRefusal] {
        &self.refused
    }

    /// Detaches the program now, reporting any error (dropping also detaches).
    pub fn detach(mut self) -> Result<(), XdpError> {
        let Some(link) = self.link.take() else { return Ok(()) };
        let program: &mut Xdp = self
            .ebpf
            .program_mut(PROGRAM)
            .ok_or_else(|| XdpError::Load(format!("object has no program {PROGRAM}")))?
            .try_into()
            .map_err(|e| load_error(&e))?;
        program.detach(link).map_err(|e| XdpError::Load(describe(&e)))
    }

    /// Counter totals over all CPUs.
    pub fn counters(&self) -> Result<XdpCounters, XdpError> {
        let mut totals = XdpCounters::default();
        let classes = per_cpu(&self.ebpf, "counters")?;
        for class in Class::ALL {
            totals.classes[class as usize] = sum(&classes, class as u32, "counters")?;
        }
        let drops = per_cpu(&self.ebpf, "drops")?;
        for reason in DropReason::ALL {
            totals.drops[reason as usize] = sum(&drops, reason as u32, "drops")?;
        }
        Ok(totals)
    }

    /// Drops packets from `addr` from now on, for `ttl` (`None`: until unblocked).
    /// Blocking an address again renews its TTL and keeps its drop count.
    pub fn block(&mut self, addr: IpAddr, ttl: Option<Duration>) -> Result<(), XdpError> {
        let expires_ns = match ttl {
            Some(ttl) => monotonic_ns()
                .saturating_add(u64::try_from(ttl.as_nanos()).unwrap_or(u64::MAX))
                .max(1),
            None => 0,
        };
        let mut map = blocklist_mut(&mut self.ebpf)?;
        let key = source_key(addr);
        let dropped = map.get(&key, 0).map(|[_, dropped]| dropped).unwrap_or(0);
        map.insert(key, [expires_ns, dropped], 0)
            .map_err(|e| match os_error(&e) {
                Some(libc::E2BIG) => XdpError::BlocklistFull(BLOCKLIST_CAPACITY),
                _ => map_error("blocklist", &e),
            })
    }

    /// Stops dropping packets from `addr`; false when it was not blocked.
    pub fn unblock(&mut self, addr: IpAddr) -> Result<bool, XdpError> {
        let mut map = blocklist_mut(&mut self.ebpf)?;
        match map.remove(&source_key(addr)) {
            Ok(()) => Ok(true),
            Err(e) if os_error(&e) == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(map_error("blocklist", &e)),
        }
    }

    /// The blocklist as the kernel sees it.
    pub fn blocklist(&self) -> Result<Vec<BlockEntry>, XdpError> {
        let map = self.ebpf.map("blocklist").ok_or_else(|| missing_map("blocklist"))?;
        let map: HashMap<&MapData, SourceKey, Pair> = HashMap::try_from(map).map_err(|e| map_error("blocklist", &e))?;
        let mut entries = Vec::new();
        for item in map.iter() {
            let (key, [expires_ns, dropped]) = item.map_err(|e| map_error("blocklist", &e))?;
            if let Some(addr) = key_addr(&key) {
                entries.push(BlockEntry {
                    addr,
                    expires_ns,
                    dropped,
                });
            }
        }
        Ok(entries)
    }

    /// The `limit` sources with the most packets, most first.
    pub fn top_talkers(&self, limit: usize) -> Result<Vec<Talker>, XdpError> {
        let map = self.ebpf.map("talkers").ok_or_else(|| missing_map("talkers"))?;
        let map: HashMap<&MapData, SourceKey, Pair> = HashMap::try_from(map).map_err(|e| map_error("talkers", &e))?;
        let mut talkers: Vec<Talker> = map
            .iter()
            .filter_map(Result::ok)
            .filter_map(|(key, pair)| {
                key_addr(&key).map(|addr| Talker {
                    addr,
                    count: Counter::from_pair(pair),
                })
            })
            .collect();
        talkers.sort_by_key(|t| std::cmp::Reverse(t.count.packets));
        talkers.truncate(limit);
        Ok(talkers)
    }
}

/// CLOCK_MONOTONIC in nanoseconds, the clock the program compares expiries with.
pub fn monotonic_ns() -> u64 {
    clock_gettime(ClockId::CLOCK_MONOTONIC)
        .map(|t| {
            u64::try_from(t.tv_sec())
                .unwrap_or(0)
                .saturating_mul(1_000_000_000)
                .saturating_add(u64::try_from(t.tv_nsec()).unwrap_or(0))
        })
        .unwrap_or(0)
}

fn attach_first_accepted(
    program: &mut Xdp,
    iface: &str,
    if_index: u32,
    request: XdpModeRequest,
) -> Result<(XdpLinkId, XdpMode, Vec<ModeRefusal>), XdpError> {
    let mut refused = Vec::new();
    for mode in request.candidates() {
        match program.attach_to_if_index(if_index, mode.into()) {
            Ok(link) => return Ok((link, mode, refused)),
            Err(e) => match os_error(&e) {
                Some(libc::EBUSY) | Some(libc::EEXIST) => return Err(XdpError::AlreadyAttached(iface.to_string())),
                Some(libc::EPERM) | Some(libc::EACCES) => {
                    return Err(XdpError::PermissionDenied {
                        action: "attach the XDP program",
                        detail: describe(&e),
                    })
                }
                _ => refused.push(ModeRefusal {
                    mode,
                    reason: format!("{}: {}", unsupported(mode), describe(&e)),
                }),
            },
        }
    }
    let tried = refused
        .iter()
        .map(|r| format!("{}: {}", r.mode, r.reason))
        .collect::<Vec<_>>()
        .join("; ");
    Err(XdpError::NoMode {
        iface: iface.to_string(),
        tried,
    })
}

/// What a refusal of `mode` usually means.
fn unsupported(mode: XdpMode) -> &'static str {
    match mode {
        XdpMode::Hardware => "no XDP offload on this device",
        XdpMode::Driver => "the driver has no native XDP",
        XdpMode::Skb => "generic XDP refused",
    }
}

fn per_cpu<'a>(ebpf: &'a Ebpf, name: &'static str) -> Result<PerCpuArray<&'a MapData, Pair>, XdpError> {
    let map = ebpf.map(name).ok_or_else(|| missing_map(name))?;
    PerCpuArray::try_from(map).map_err(|e| map_error(name, &e))
}

fn sum(map: &PerCpuArray<&MapData, Pair>, index: u32, name: &'static str) -> Result<Counter, XdpError> {
    let values = map.get(&index, 0).map_err(|e| map_error(name, &e))?;
    let mut total = Counter::default();
    for pair in values.iter() {
        total.add(Counter::from_pair(*pair));
    }
    Ok(total)
}

fn blocklist_mut(ebpf: &mut Ebpf) -> Result<HashMap<&mut MapData, SourceKey, Pair>, XdpError> {
    let map = ebpf.map_mut("blocklist").ok_or_else(|| missing_map("blocklist"))?;
    HashMap::try_from(map).map_err(|e| map_error("blocklist", &e))
}

fn missing_map(map: &'static str) -> XdpError {
    XdpError::Map {
        map,
        detail: "not in the object".to_string(),
    }
}

fn map_error(map: &'static str, error: &(dyn std::error::Error + 'static)) -> XdpError {
    XdpError::Map {
        map,
        detail: describe(error),
    }
}
