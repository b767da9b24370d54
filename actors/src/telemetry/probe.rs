//! One watched interface: the XDP attachment when there is one, the kernel's
//! interface statistics always, and the previous reading for rates.

use std::time::{Duration, Instant};

use x0tta6bl4_bpf::{Attachment, Class, DropReason, XdpCounters};

use super::config::TelemetryConfig;
use super::procfs::InterfaceStats;
use super::snapshot::{per_sec, CounterSource, InterfaceSnapshot, KernelCounters, Rate, RefusedMode, TalkerView};

/// How long to wait before attaching again to an interface that was missing or down.
const ATTACH_RETRY: Duration = Duration::from_secs(5);

enum XdpState {
    Attached(Attachment),
    Off { error: String, retry_at: Option<Instant> },
}

struct Previous {
    at: Instant,
    xdp: Option<XdpCounters>,
    kernel: Option<InterfaceStats>,
}

/// One interface under watch.
pub(crate) struct InterfaceProbe {
    iface: String,
    xdp: XdpState,
    previous: Option<Previous>,
}

impl InterfaceProbe {
    /// Starts watching `iface`, attaching the XDP program when configured.
    pub(crate) fn open(iface: &str, config: &TelemetryConfig) -> Self {
        Self {
            iface: iface.to_string(),
            xdp: attach(iface, config),
            previous: None,
        }
    }

    /// The attachment, when XDP runs here.
    pub(crate) fn attachment_mut(&mut self) -> Option<&mut Attachment> {
        match &mut self.xdp {
            XdpState::Attached(attachment) => Some(attachment),
            XdpState::Off { .. } => None,
        }
    }

    /// Why XDP is off here, when it is.
    pub(crate) fn error(&self) -> Option<&str> {
        match &self.xdp {
            XdpState::Attached(_) => None,
            XdpState::Off { error, .. } => Some(error),
        }
    }

    /// Attaches again if the last attempt failed for a reason that may have
    /// cleared (interface missing or down) and the retry is due. True when it
    /// is attached now and was not before.
    pub(crate) fn retry_if_due(&mut self, now: Instant, config: &TelemetryConfig) -> bool {
        match &self.xdp {
            XdpState::Off { retry_at: Some(at), .. } if *at <= now => {
                self.xdp = attach(&self.iface, config);
                self.previous = None;
                matches!(self.xdp, XdpState::Attached(_))
            }
            _ => false,
        }
    }

    /// The attachment, when XDP runs here.
    pub(crate) fn attachment(&self) -> Option<&Attachment> {
        match &self.xdp {
            XdpState::Attached(attachment) => Some(attachment),
            XdpState::Off { .. } => None,
        }
    }

    /// The interface name.
    pub(crate) fn iface(&self) -> &str {
        &self.iface
    }

    /// Reads the counters and returns the interface's view.
    pub(crate) fn read(
        &mut self,
        now: Instant,
        kernel: Option<InterfaceStats>,
        top_talkers: usize,
    ) -> InterfaceSnapshot {
        let mut view = InterfaceSnapshot {
            iface: self.iface.clone(),
            source: CounterSource::InterfaceStats,
            mode: None,
            refused_modes: Vec::new(),
            error: self.error().map(str::to_string),
            classes: Vec::new(),
            dropped: Vec::new(),
            kernel: None,
            top_talkers: Vec::new(),
        };
        let secs = self
            .previous
            .as_ref()
            .map_or(0.0, |p| now.duration_since(p.at).as_secs_f64());
        let previous = self.previous.take();
        let mut xdp_now = None;
        if let XdpState::Attached(attachment) = &self.xdp {
            view.source = CounterSource::Xdp;
            view.mode = Some(attachment.mode().label());
            view.refused_modes = attachment
                .refused()
                .iter()
                .map(|r| RefusedMode {
                    mode: r.mode.label(),
                    reason: r.reason.clone(),
                })
                .collect();
            match attachment.counters() {
                Ok(counters) => {
                    let before = previous.as_ref().and_then(|p| p.xdp.clone()).unwrap_or_default();
                    view.classes = Class::ALL
                        .iter()
                        .map(|c| rate(c.label(), before.class(*c), counters.class(*c), secs))
                        .collect();
                    view.dropped = DropReason::ALL
                        .iter()
                        .map(|r| rate(r.label(), before.dropped(*r), counters.dropped(*r), secs))
                        .collect();
                    xdp_now = Some(counters);
                }
                Err(e) => view.error = Some(format!("reading XDP counters: {e}")),
            }
            match attachment.top_talkers(top_talkers) {
                Ok(talkers) => {
                    view.top_talkers = talkers
                        .into_iter()
                        .map(|t| TalkerView {
                            addr: t.addr,
                            packets: t.count.packets,
                            bytes: t.count.bytes,
                        })
                        .collect();
                }
                Err(e) => view.error = Some(format!("reading top talkers: {e}")),
            }
        }
        if let Some(totals) = kernel {
            let before = previous.as_ref().and_then(|p| p.kernel).unwrap_or(totals);
            view.kernel = Some(KernelCounters {
                totals,
                rx_packets_per_sec: per_sec(before.rx_packets, totals.rx_packets, secs),
                tx_packets_per_sec: per_sec(before.tx_packets, totals.tx_packets, secs),
            });
        }
        self.previous = Some(Previous {
            at: now,
            xdp: xdp_now,
            kernel,
        });
        view
    }
}

fn rate(name: &'static str, before: x0tta6bl4_bpf::Counter, now: x0tta6bl4_bpf::Counter, secs: f64) -> Rate {
    Rate {
        name,
        packets: now.packets,
        bytes: now.bytes,
        packets_per_sec: per_sec(before.packets, now.packets, secs),
        bytes_per_sec: per_sec(before.bytes, now.bytes, secs),
    }
}

fn attach(iface: &str, config: &TelemetryConfig) -> XdpState {
    if !config.xdp {
        return XdpState::Off {
            error: "XDP disabled by configuration (telemetry.xdp = false)".to_string(),
            retry_at: None,
        };
    }
    let request = match config.mode_request() {
        Ok(request) => request,
        Err(error) => return XdpState::Off { error, retry_at: None },
    };
    match Attachment::attach(iface, request) {
        Ok(attachment) => {
            let refused: Vec<String> = attachment
                .refused()
                .iter()
                .map(|r| format!("{}: {}", r.mode, r.reason))
                .collect();
            tracing::info!(iface, mode = %attachment.mode(), ?refused, "XDP program attached");
            XdpState::Attached(attachment)
        }
        Err(e) => {
            let retry_at = e.is_retryable().then(|| Instant::now() + ATTACH_RETRY);
            metrics::counter!(super::metrics::XDP_ATTACH_FAILURES, "iface" => iface.to_string(), "kind" => e.kind())
                .increment(1);
            tracing::warn!(
                iface,
                error = %e,
                retrying = retry_at.is_some(),
                "XDP is off on this interface; counting from the kernel's interface statistics instead"
            );
            XdpState::Off {
                error: e.to_string(),
                retry_at,
            }
        }
    }
}
