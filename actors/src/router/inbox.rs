//! Bounded record of what reached this node: delivered messages, undeliverable
//! reports for messages it sent, and benchmark probe latencies.

use std::collections::VecDeque;

use hdrhistogram::Histogram;
use libp2p::PeerId;
use serde::Serialize;

/// Highest probe latency tracked (a minute); longer ones count as a minute.
const MAX_PROBE_LATENCY_US: u64 = 60_000_000;
/// Undeliverable reports kept for the API.
const MAX_REPORTS: usize = 256;

/// A message delivered to this node.
#[derive(Debug, Clone, Serialize)]
pub struct Delivered {
    /// Message id (unique per source).
    pub id: u64,
    /// Originating node.
    #[serde(serialize_with = "super::serialize_display")]
    pub from: PeerId,
    /// Links the message crossed.
    pub hops: u8,
    /// Payload as text (invalid UTF-8 replaced by U+FFFD, see `utf8`).
    pub text: String,
    /// Whether the payload was valid UTF-8.
    pub utf8: bool,
    /// Arrival time, Unix milliseconds.
    pub received_ms: u64,
}

/// A report that a message this node sent could not be delivered.
#[derive(Debug, Clone, Serialize)]
pub struct Undeliverable {
    /// Id of the message that failed.
    pub id: u64,
    /// Node that gave up on it.
    #[serde(serialize_with = "super::serialize_display")]
    pub reporter: PeerId,
    /// Why, as a metric label.
    pub reason: &'static str,
    /// Arrival time, Unix milliseconds.
    pub received_ms: u64,
}

/// Latency summary of benchmark probes received.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProbeSummary {
    /// Probes received.
    pub count: u64,
    /// Milliseconds between the first and the last probe received.
    pub span_ms: f64,
    /// Latency percentiles in microseconds.
    pub p50_us: u64,
    /// 95th percentile.
    pub p95_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Largest latency.
    pub max_us: u64,
    /// Messages (`Data`, `Reliable`) delivered since the last reset.
    pub messages: u64,
    /// Milliseconds between the first and the last of those.
    pub messages_span_ms: u64,
}

/// The inbox itself.
pub struct Inbox {
    capacity: usize,
    messages: VecDeque<Delivered>,
    reports: VecDeque<Undeliverable>,
    probes: Histogram<u64>,
    first_probe_ms: f64,
    last_probe_ms: f64,
    /// Messages delivered since the last reset, and when the first and the
    /// last of them arrived (Unix ms).
    messages_counted: u64,
    first_message_ms: u64,
    last_message_ms: u64,
}

impl Inbox {
    /// An empty inbox that keeps the newest `capacity` messages.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            messages: VecDeque::new(),
            reports: VecDeque::new(),
            probes: Histogram::new_with_bounds(1, MAX_PROBE_LATENCY_US, 3)
                .expect("bounds and precision are valid constants"),
            first_probe_ms: 0.0,
            last_probe_ms: 0.0,
            messages_counted: 0,
            first_message_ms: 0,
            last_message_ms: 0,
        }
    }

    /// Stores a delivered message, dropping the oldest when full.
    pub fn push(&mut self, message: Delivered) {
        if self.messages_counted == 0 {
            self.first_message_ms = message.received_ms;
        }
        self.messages_counted += 1;
        self.last_message_ms = message.received_ms;
        if self.messages.len() == self.capacity {
            self.messages.pop_front();
        }
        self.messages.push_back(message);
    }

    /// Stores an undeliverable report.
    pub fn push_report(&mut self, report: Undeliverable) {
        if self.reports.len() == MAX_REPORTS {
            self.reports.pop_front();
        }
        self.reports.push_back(report);
    }

    /// Records one probe's one-way latency; `now_ms` is its arrival time.
    pub fn record_probe(&mut self, latency_us: u64, now_ms: f64) {
        if self.probes.is_empty() {
            self.first_probe_ms = now_ms;
        }
        self.last_probe_ms = now_ms;
        self.probes.saturating_record(latency_us.max(1));
    }

    /// Summary of probes since the last reset.
    pub fn probe_summary(&self) -> ProbeSummary {
        ProbeSummary {
            count: self.probes.len(),
            span_ms: self.last_probe_ms - self.first_probe_ms,
            p50_us: self.probes.value_at_quantile(0.50),
            p95_us: self.probes.value_at_quantile(0.95),
            p99_us: self.probes.value_at_quantile(0.99),
            max_us: self.probes.max(),
            messages: self.messages_counted,
            messages_span_ms: self.last_message_ms - self.first_message_ms,
        }
    }

    /// Forgets probe results and message counts (before a benchmark run).
    pub fn reset_probes(&mut self) {
        self.probes.reset();
        self.messages_counted = 0;
    }

    /// Delivered messages, oldest first.
    pub fn messages(&self) -> Vec<Delivered> {
        self.messages.iter().cloned().collect()
    }

    /// Undeliverable reports, oldest first.
    pub fn reports(&self) -> Vec<Undeliverable> {
        self.reports.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_newest_messages_but_counts_all_since_the_reset() {
        let mut inbox = Inbox::new(2);
        let from = PeerId::random();
        let message = |id| Delivered {
            id,
            from,
            hops: 1,
            text: String::new(),
            utf8: true,
            received_ms: 1_000 + 10 * id,
        };
        for id in 0..5 {
            inbox.push(message(id));
        }
        let ids: Vec<u64> = inbox.messages().iter().map(|m| m.id).collect();
        assert_eq!(ids, vec![3, 4]);
        let summary = inbox.probe_summary();
        assert_eq!((summary.messages, summary.messages_span_ms), (5, 40));
        inbox.reset_probes();
        inbox.push(message(7));
        let summary = inbox.probe_summary();
        assert_eq!((summary.messages, summary.messages_span_ms), (1, 0));
    }

    #[test]
    fn probe_percentiles() {
        let mut inbox = Inbox::new(1);
        for (i, latency) in (1..=100).enumerate() {
            inbox.record_probe(latency, i as f64);
        }
        let summary = inbox.probe_summary();
        assert_eq!(summary.count, 100);
        assert_eq!(summary.p50_us, 50);
        assert_eq!(summary.p99_us, 99);
        assert_eq!(summary.span_ms, 99.0);
    }
}
