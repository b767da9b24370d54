//! The telemetry actor: what the node sees of its own traffic.
//!
//! Every interval it reads the XDP program's counters on each watched interface
//! (or, where XDP is off, the kernel's interface statistics), turns totals into
//! rates, exports them to Prometheus and sends a [`TelemetrySnapshot`] to every
//! subscriber (the healer; the dashboard reads the latest through the API). It
//! also owns the quarantine list and mirrors it into each XDP blocklist.
//!
//! The XDP attachments live in the actor: a restart drops them (detaching the
//! program) and attaches afresh, refilling the blocklists from the list, which
//! survives the restart.

mod config;
mod metrics;
mod probe;
pub mod procfs;
pub mod quarantine;
pub mod snapshot;
#[cfg(test)]
mod tests;

use std::{
    net::IpAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use actix::{Actor, AsyncContext, Context, Handler, Message, MessageResult, Recipient, Supervised};

pub use config::TelemetryConfig;
use probe::InterfaceProbe;
use quarantine::{QuarantineEntry, QuarantineFull, QuarantineList};
pub use snapshot::TelemetrySnapshot;
use snapshot::{ProcessSnapshot, QuarantineView, XdpStatus};

use crate::alert::Severity;
use crate::errors::report;

/// A new snapshot, sent to subscribers every interval.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct TelemetryUpdate(pub Arc<TelemetrySnapshot>);

/// Subscribes a recipient to every future snapshot.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Subscribe(pub Recipient<TelemetryUpdate>);

/// Asks for the latest snapshot (`None` before the first reading).
#[derive(Message)]
#[rtype(result = "Option<Arc<TelemetrySnapshot>>")]
pub struct GetTelemetry;

/// Quarantines source addresses: the XDP program drops their packets until the TTL ends.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Vec<QuarantineView>, QuarantineError>")]
pub struct Quarantine {
    /// Addresses to block.
    pub addrs: Vec<IpAddr>,
    /// The peer they belong to, for the record.
    pub peer: Option<String>,
    /// Why.
    pub reason: String,
    /// How long; `None` uses `telemetry.quarantine_ttl_secs`.
    pub ttl: Option<Duration>,
}

/// Releases quarantined addresses; answers with those that were quarantined.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Vec<IpAddr>")]
pub struct Release(pub Vec<IpAddr>);

/// Lists the quarantine.
#[derive(Message)]
#[rtype(result = "Vec<QuarantineView>")]
pub struct ListQuarantine;

/// Why a quarantine request failed.
#[derive(Debug, thiserror::Error)]
pub enum QuarantineError {
    /// No room for another source.
    #[error(transparent)]
    Full(#[from] QuarantineFull),
    /// The XDP blocklist refused the entry.
    #[error("XDP blocklist on {iface}: {detail}")]
    Xdp {
        /// The interface.
        iface: String,
        /// The error.
        detail: String,
    },
}

/// The telemetry actor.
pub struct TelemetryActor {
    config: TelemetryConfig,
    probes: Vec<InterfaceProbe>,
    /// Why no interface is watched at all, when none is.
    no_interface: Option<String>,
    quarantine: QuarantineList,
    subscribers: Vec<Recipient<TelemetryUpdate>>,
    latest: Option<Arc<TelemetrySnapshot>>,
    previous_cpu: Option<(Instant, f64)>,
}

impl TelemetryActor {
    /// A telemetry actor watching the interfaces `config` names.
    pub fn new(config: TelemetryConfig) -> Self {
        metrics::describe();
        Self {
            config,
            probes: Vec::new(),
            no_interface: None,
            quarantine: QuarantineList::default(),
            subscribers: Vec::new(),
            latest: None,
            previous_cpu: None,
        }
    }

    fn open_probes(&mut self) {
        let mut interfaces: Vec<String> = if self.config.interfaces.is_empty() {
            procfs::default_route_interface().into_iter().collect()
        } else {
            self.config.interfaces.clone()
        };
        // One probe per interface: a name listed twice must not attach twice.
        let mut seen = std::collections::HashSet::new();
        interfaces.retain(|iface| seen.insert(iface.clone()));
        self.no_interface = interfaces.is_empty().then(|| {
            tracing::warn!("no interface to watch: no default route and telemetry.interfaces is empty");
            "no interface to watch: no default route and telemetry.interfaces is empty".to_string()
        });
        self.probes = interfaces
            .iter()
            .map(|iface| InterfaceProbe::open(iface, &self.config))
            .collect();
        for index in 0..self.probes.len() {
            self.refill_blocklist(index);
        }
    }

    /// Detaches every program (dropping an attachment detaches it).
    fn close_probes(&mut self) {
        for probe in self.probes.drain(..) {
            if let Some(attachment) = probe.attachment() {
                metrics::clear_attached(probe.iface(), attachment.mode().label());
            }
        }
    }

    /// Copies the quarantine list into one probe's blocklist (after an attach).
    fn refill_blocklist(&mut self, index: usize) {
        let now = Instant::now();
        let entries: Vec<(IpAddr, Option<Duration>)> =
            self.quarantine.iter().map(|(a, e)| (*a, e.remaining(now))).collect();
        let Some(probe) = self.probes.get_mut(index) else {
            return;
        };
        let iface = probe.iface().to_string();
        let Some(attachment) = probe.attachment_mut() else {
            return;
        };
        for (addr, ttl) in entries {
            if let Err(e) = attachment.block(addr, ttl) {
                let problem = format!("cannot restore quarantine of {addr} into the XDP blocklist on {iface}: {e}");
                report("telemetry", "xdp_block", Severity::Critical, &problem);
            }
        }
    }

    fn tick(&mut self) {
        let now = Instant::now();
        for index in 0..self.probes.len() {
            if self.probes[index].retry_if_due(now, &self.config) {
                self.refill_blocklist(index);
            }
        }
        self.release_expired(now);
        let kernel = procfs::interface_stats().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read /proc/net/dev");
            Default::default()
        });
        let top = self.config.top_talkers;
        let interfaces: Vec<_> = self
            .probes
            .iter_mut()
            .map(|p| {
                let stats = kernel.get(p.iface()).copied();
                p.read(now, stats, top)
            })
            .collect();
        interfaces.iter().for_each(metrics::export_interface);
        let process = self.process(now);
        metrics::export_process(&process, self.quarantine.len());
        let snapshot = Arc::new(TelemetrySnapshot {
            taken_unix_ms: crate::mesh::unix_ms(),
            interval_ms: self.config.interval_ms,
            xdp: self.xdp_status(),
            interfaces,
            process,
            quarantine: self.quarantine_views(),
        });
        self.subscribers.retain(|s| s.connected());
        for subscriber in &self.subscribers {
            subscriber.do_send(TelemetryUpdate(snapshot.clone()));
        }
        self.latest = Some(snapshot);
    }

    fn release_expired(&mut self, now: Instant) {
        for addr in self.quarantine.expire(now) {
            tracing::info!(%addr, "quarantine ended");
            self.unblock(addr);
        }
    }

    fn unblock(&mut self, addr: IpAddr) {
        for probe in &mut self.probes {
            let iface = probe.iface().to_string();
            if let Some(attachment) = probe.attachment_mut() {
                if let Err(e) = attachment.unblock(addr) {
                    let problem = format!("cannot remove {addr} from the XDP blocklist on {iface}: {e}");
                    report("telemetry", "xdp_unblock", Severity::Critical, &problem);
                }
            }
        }
    }

    fn xdp_status(&self) -> XdpStatus {
        let enabled = self.probes.iter().any(|p| p.attachment().is_some());
        let reason = if enabled {
            None
        } else {
            let errors: Vec<String> = self
                .probes
                .iter()
                .filter_map(|p| p.error().map(|e| format!("{}: {e}", p.iface())))
                .collect();
            Some(self.no_interface.clone().unwrap_or_else(|| errors.join("; ")))
        };
        XdpStatus { enabled, reason }
    }

    fn process(&mut self, now: Instant) -> ProcessSnapshot {
        let Ok(stats) = procfs::process_stats() else {
            return ProcessSnapshot::default();
        };
        let cpu_cores = match self.previous_cpu {
            Some((at, cpu)) if now > at => (stats.cpu_seconds - cpu).max(0.0) / now.duration_since(at).as_secs_f64(),
            _ => 0.0,
        };
        self.previous_cpu = Some((now, stats.cpu_seconds));
        ProcessSnapshot {
            rss_bytes: stats.rss_bytes,
            cpu_seconds: stats.cpu_seconds,
            cpu_cores,
        }
    }

    fn quarantine_views(&self) -> Vec<QuarantineView> {
        let now = Instant::now();
        let blocklists: Vec<_> = self
            .probes
            .iter()
            .filter_map(|p| p.attachment().and_then(|a| a.blocklist().ok()))
            .collect();
        self.quarantine
            .iter()
            .map(|(addr, entry)| QuarantineView {
                addr: *addr,
                peer: entry.peer.clone(),
                reason: entry.reason.clone(),
                remaining_ms: entry
                    .remaining(now)
                    .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                enforced: blocklists.iter().any(|b| b.iter().any(|e| e.addr == *addr)),
                dropped_packets: blocklists
                    .iter()
                    .flat_map(|b| b.iter().filter(|e| e.addr == *addr))
                    .map(|e| e.dropped)
                    .sum(),
            })
            .collect()
    }

    fn quarantine(&mut self, request: Quarantine) -> Result<Vec<QuarantineView>, QuarantineError> {
        let ttl = request.ttl.unwrap_or_else(|| self.config.quarantine_ttl());
        let expires = Instant::now() + ttl;
        for addr in &request.addrs {
            let entry = QuarantineEntry {
                peer: request.peer.clone(),
                reason: request.reason.clone(),
                expires: Some(expires),
            };
            self.quarantine.insert(*addr, entry)?;
            for probe in &mut self.probes {
                let iface = probe.iface().to_string();
                if let Some(attachment) = probe.attachment_mut() {
                    if let Err(e) = attachment.block(*addr, Some(ttl)) {
                        self.quarantine.remove(addr);
                        self.unblock(*addr);
                        return Err(QuarantineError::Xdp {
                            iface,
                            detail: e.to_string(),
                        });
                    }
                }
            }
            tracing::warn!(%addr, peer = ?request.peer, reason = %request.reason, ttl_secs = ttl.as_secs(), "source quarantined");
        }
        Ok(self
            .quarantine_views()
            .into_iter()
            .filter(|v| request.addrs.contains(&v.addr))
            .collect())
    }
}

impl Actor for TelemetryActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.open_probes();
        self.tick();
        ctx.run_interval(self.config.interval().max(Duration::from_millis(10)), |actor, _| {
            actor.tick();
        });
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.close_probes();
    }
}

impl Supervised for TelemetryActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.close_probes();
    }
}

impl Handler<Subscribe> for TelemetryActor {
    type Result = ();

    fn handle(&mut self, Subscribe(recipient): Subscribe, _: &mut Context<Self>) {
        self.subscribers.push(recipient);
    }
}

impl Handler<GetTelemetry> for TelemetryActor {
    type Result = Option<Arc<TelemetrySnapshot>>;

    fn handle(&mut self, _: GetTelemetry, _: &mut Context<Self>) -> Self::Result {
        self.latest.clone()
    }
}

impl Handler<Quarantine> for TelemetryActor {
    type Result = Result<Vec<QuarantineView>, QuarantineError>;

    fn handle(&mut self, request: Quarantine, _: &mut Context<Self>) -> Self::Result {
        self.quarantine(request)
    }
}

impl Handler<Release> for TelemetryActor {
    type Result = MessageResult<Release>;

    fn handle(&mut self, Release(addrs): Release, _: &mut Context<Self>) -> Self::Result {
        let mut released = Vec::new();
        for addr in addrs {
            if self.quarantine.remove(&addr).is_some() {
                tracing::info!(%addr, "quarantine released");
                released.push(addr);
            }
            self.unblock(addr);
        }
        MessageResult(released)
    }
}

impl Handler<ListQuarantine> for TelemetryActor {
    type Result = MessageResult<ListQuarantine>;

    fn handle(&mut self, _: ListQuarantine, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.quarantine_views())
    }
}

crate::supervised_actor!(TelemetryActor);
