//! The live links: one bounded frame queue and one liveness stamp per connected
//! neighbour.
//!
//! The mesh event loop adds an entry when the first connection to a peer is
//! established and removes it when the last one closes, so the router's data
//! plane sees a dead neighbour disappear immediately and falls back to its backup
//! hop. Stream readers stamp [`Liveness`] on every frame or beat and measure
//! how late the beats come (see [`super::beats`]); the event loop closes links
//! that stay silent too long.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use libp2p::PeerId;
use parking_lot::RwLock;
use tokio::sync::mpsc;

use super::beats::{Beat, BeatMeter, UNKNOWN_SHARE};

/// When a neighbour was last heard from, the longest recent gap between two
/// things heard from it (in milliseconds since process start), and how much
/// its stream stalls, both ways.
#[derive(Debug)]
pub struct Liveness {
    last: AtomicU64,
    longest_gap: AtomicU64,
    beats: parking_lot::Mutex<BeatMeter>,
    /// How much of the last stall window the neighbour saw this node's stream
    /// stalled, in percent, as its last beat said ([`UNKNOWN_SHARE`] until it says).
    stalled_out: AtomicU8,
    /// How much of the last stall window this node saw the neighbour's stream
    /// stalled, in percent, as last worked out by [`Liveness::stalled_share`].
    stalled_in: AtomicU8,
}

impl Default for Liveness {
    fn default() -> Self {
        Self {
            last: AtomicU64::default(),
            longest_gap: AtomicU64::default(),
            beats: parking_lot::Mutex::default(),
            stalled_out: AtomicU8::new(UNKNOWN_SHARE),
            stalled_in: AtomicU8::new(UNKNOWN_SHARE),
        }
    }
}

impl Liveness {
    /// Records a beat from the neighbour.
    pub fn beat(&self, beat: &Beat) {
        let (now, quiet) = self.stamp();
        self.beats.lock().record(beat, now, quiet);
        self.stalled_out
            .store(beat.reverse_stalled.unwrap_or(UNKNOWN_SHARE), Ordering::Relaxed);
    }

    /// The share of the last stall window this node saw the neighbour's stream
    /// stalled, in percent (`None` before it worked it out), to send back in a beat.
    pub fn stalled_in(&self) -> Option<u8> {
        Some(self.stalled_in.load(Ordering::Relaxed)).filter(|s| *s != UNKNOWN_SHARE)
    }

    /// The link's loss as the data path feels it: the larger of the shares of
    /// the last stall window it stood stalled (see [`super::beats`]), each way, 0 to
    /// 1. Refreshes the share [`Liveness::stalled_in`] sends back.
    pub fn stalled_share(&self, late_after: Duration) -> f64 {
        let stalled_in = self.beats.lock().stalled_share(now_ms(), late_after);
        self.stalled_in.store(stalled_in, Ordering::Relaxed);
        let stalled_out = match self.stalled_out.load(Ordering::Relaxed) {
            UNKNOWN_SHARE => 0,
            share => share,
        };
        f64::from(stalled_in.max(stalled_out)) / 100.0
    }

    /// Records that the neighbour was heard from now.
    pub fn heard(&self) {
        self.stamp();
    }

    /// Records that the neighbour was heard from now; returns now and how long
    /// it had been quiet before (0 the first time).
    fn stamp(&self) -> (u64, u64) {
        let now = now_ms();
        let previous = self.last.swap(now, Ordering::Relaxed);
        if previous == 0 {
            return (now, 0);
        }
        let quiet = now.saturating_sub(previous);
        self.longest_gap.fetch_max(quiet, Ordering::Relaxed);
        (now, quiet)
    }

    fn silent_for(&self) -> Duration {
        Duration::from_millis(now_ms().saturating_sub(self.last.load(Ordering::Relaxed)))
    }

    /// The longest recent gap between two frames or keepalives.
    fn longest_gap(&self) -> Duration {
        Duration::from_millis(self.longest_gap.load(Ordering::Relaxed))
    }

    /// Lets the longest gap fade, so an old stall stops stretching the timeout
    /// (by 1/128 per call, at least 1 ms: a half-life of about 90 liveness checks).
    fn fade(&self) {
        let gap = self.longest_gap.load(Ordering::Relaxed);
        self.longest_gap.store(gap - gap.div_ceil(128), Ordering::Relaxed);
    }
}

/// How long a neighbour may stay silent before its link is closed.
///
/// A fixed timeout is either slow on a quiet link or a false alarm on a busy
/// machine. Like the accrual failure detectors of Cassandra and Akka, this one
/// learns from what it observes: a link whose frames and keepalives lately
/// came with gaps of `g` gets at least [`GAP_MARGIN`]` × g` (never below the
/// configured `link_timeout_ms`, never above [`MAX_STRETCH`] times it), and a
/// stall of this node itself (its liveness check ran late: the process was not
/// scheduled, so nothing could be heard) is added, since silence during it is
/// no evidence against the neighbour.
#[derive(Debug, Clone, Copy)]
pub struct SilenceTimeout {
    /// The configured timeout of a link that shows no jitter.
    pub base: Duration,
    /// How late this node's own recent liveness checks ran, at most.
    pub local_stall: Duration,
}

/// A link's timeout is at least this many times its longest recent gap.
pub const GAP_MARGIN: u32 = 2;
/// A link's timeout stretches to at most this many times the configured one
/// (plus this node's own stall).
pub const MAX_STRETCH: u32 = 4;

impl SilenceTimeout {
    /// The timeout of a link whose longest recent gap is `gap`.
    pub fn for_gap(&self, gap: Duration) -> Duration {
        (gap * GAP_MARGIN).clamp(self.base, self.base * MAX_STRETCH) + self.local_stall
    }
}

/// Milliseconds since process start, from 1 (0 means "never heard"); the
/// clock beats carry.
pub fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

struct Neighbour {
    queue: mpsc::Sender<Bytes>,
    liveness: Arc<Liveness>,
}

/// Live neighbours, their frame queues and liveness. Shared between the mesh and
/// the router.
#[derive(Default)]
pub struct Neighbours {
    entries: RwLock<HashMap<PeerId, Neighbour>>,
}

impl Neighbours {
    /// Registers the queue of a newly connected neighbour, heard from now.
    pub fn insert(&self, peer: PeerId, queue: mpsc::Sender<Bytes>) {
        let liveness = Arc::new(Liveness::default());
        liveness.heard();
        self.entries.write().insert(peer, Neighbour { queue, liveness });
    }

    /// Forgets a neighbour whose last connection closed; its writer task then ends.
    pub fn remove(&self, peer: &PeerId) {
        self.entries.write().remove(peer);
    }

    /// The frame queue towards `peer`, if it is connected.
    pub fn queue(&self, peer: &PeerId) -> Option<mpsc::Sender<Bytes>> {
        self.entries.read().get(peer).map(|n| n.queue.clone())
    }

    /// The liveness stamp of `peer` (a detached one if it is not a neighbour).
    pub fn liveness(&self, peer: &PeerId) -> Arc<Liveness> {
        self.entries
            .read()
            .get(peer)
            .map(|n| n.liveness.clone())
            .unwrap_or_default()
    }

    /// Neighbours silent for longer than `timeout` allows each of them, with
    /// the timeout used; every link's longest gap fades a little per call.
    pub fn silent_for(&self, timeout: SilenceTimeout) -> Vec<(PeerId, Duration)> {
        let entries = self.entries.read();
        let silent = entries
            .iter()
            .map(|(p, n)| (*p, timeout.for_gap(n.liveness.longest_gap()), n.liveness.silent_for()))
            .filter(|(_, allowed, silence)| silence > allowed)
            .map(|(p, allowed, _)| (p, allowed))
            .collect();
        entries.values().for_each(|n| n.liveness.fade());
        silent
    }

    /// Every neighbour's loss as its beats show it (see [`Liveness::stalled_share`]).
    pub fn stalled_shares(&self, late_after: Duration) -> HashMap<PeerId, f64> {
        self.entries
            .read()
            .iter()
            .map(|(p, n)| (*p, n.liveness.stalled_share(late_after)))
            .collect()
    }

    /// Whether `peer` is a live neighbour.
    pub fn contains(&self, peer: &PeerId) -> bool {
        self.entries.read().contains_key(peer)
    }

    /// The live neighbours.
    pub fn peers(&self) -> Vec<PeerId> {
        self.entries.read().keys().copied().collect()
    }

    /// Number of live neighbours.
    pub fn len(&self) -> usize {
        self.entries.read().len()
    }

    /// Whether there is no live neighbour.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(ms: u64) -> SilenceTimeout {
        SilenceTimeout {
            base: Duration::from_millis(ms),
            local_stall: Duration::ZERO,
        }
    }

    #[test]
    fn silence_is_measured_from_the_last_stamp() {
        let neighbours = Neighbours::default();
        let peer = PeerId::random();
        let (tx, _rx) = mpsc::channel(1);
        neighbours.insert(peer, tx);
        assert!(neighbours.silent_for(fixed(5_000)).is_empty());
        std::thread::sleep(Duration::from_millis(30));
        let silent: Vec<PeerId> = neighbours.silent_for(fixed(10)).into_iter().map(|(p, _)| p).collect();
        assert_eq!(silent, vec![peer]);
        neighbours.liveness(&peer).heard();
        assert!(neighbours.silent_for(fixed(10)).is_empty());
    }

    #[test]
    fn a_link_that_showed_long_gaps_gets_a_longer_timeout_which_fades() {
        let neighbours = Neighbours::default();
        let (jittery, quiet) = (PeerId::random(), PeerId::random());
        for peer in [jittery, quiet] {
            neighbours.insert(peer, mpsc::channel(1).0);
        }
        neighbours.liveness(&quiet).heard();
        std::thread::sleep(Duration::from_millis(40));
        neighbours.liveness(&jittery).heard();
        std::thread::sleep(Duration::from_millis(25));
        let gap = neighbours.liveness(&jittery).longest_gap();
        assert!(gap >= Duration::from_millis(40), "{gap:?}");
        // The base timeout is 10 ms. The quiet link has been silent for 65 ms
        // and is closed; the jittery one showed a 40 ms gap, so it may stay
        // silent for 2 × 40 ms (capped at 4 × 10 ms) and is kept.
        let silent: Vec<PeerId> = neighbours.silent_for(fixed(10)).into_iter().map(|(p, _)| p).collect();
        assert_eq!(silent, vec![quiet]);
        for _ in 0..200 {
            neighbours.liveness(&jittery).fade();
        }
        assert!(
            neighbours.liveness(&jittery).longest_gap() < gap / 4,
            "an old stall fades"
        );
    }

    #[test]
    fn the_timeout_stays_between_the_base_and_its_stretch_plus_the_local_stall() {
        let timeout = SilenceTimeout {
            base: Duration::from_millis(1_500),
            local_stall: Duration::from_millis(700),
        };
        assert_eq!(
            timeout.for_gap(Duration::from_millis(250)),
            Duration::from_millis(2_200)
        );
        assert_eq!(
            timeout.for_gap(Duration::from_millis(1_000)),
            Duration::from_millis(2_700)
        );
        assert_eq!(timeout.for_gap(Duration::from_secs(60)), Duration::from_millis(6_700));
    }
}
