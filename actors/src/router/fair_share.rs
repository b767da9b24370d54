//! Fair sharing of a relay between the neighbours that send through it.
//!
//! A relay forwards everything while it keeps up: there is no fixed rate per
//! neighbour, so no relay caps the throughput of a path. When a next hop's queue
//! is more than half full (this node, or the link behind it, no longer keeps
//! up), each sender may use at most its fair share of what arrived lately: a
//! frame is dropped when its sender sent more than the mean of the active
//! senders, so the heaviest sender loses first and a sender below the mean loses
//! nothing. Arrival rates are counted per sender over a short sliding window, as
//! approximate fair dropping (AFD) does in switches; frames of this node itself
//! count as one more sender.

use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use lru::LruCache;
use parking_lot::Mutex;
use serde::Serialize;

/// A next hop's queue is congested when more than this share of it is in use.
const CONGESTED_DIVISOR: usize = 2;

/// Whether a queue holding `queued` of at most `capacity` frames is congested.
pub fn congested(queued: usize, capacity: usize) -> bool {
    queued > capacity / CONGESTED_DIVISOR
}

/// What one sender sent through this node, as the fairness API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SenderShare {
    /// The sending neighbour (or this node, for its own messages).
    #[serde(serialize_with = "super::serialize_display")]
    pub peer: PeerId,
    /// Frames to relay that arrived from it since start.
    pub arrived: u64,
    /// Of those, dropped because it was over its fair share under overload.
    pub dropped: u64,
    /// Frames it sent within the last window or two.
    pub recent: u64,
}

#[derive(Debug, Default, Clone, Copy)]
struct Arrivals {
    epoch: u64,
    current: u64,
    previous: u64,
    arrived: u64,
    dropped: u64,
}

impl Arrivals {
    /// Moves the counts forward to `epoch`.
    fn roll(&mut self, epoch: u64) {
        match epoch.saturating_sub(self.epoch) {
            0 => {}
            1 => (self.previous, self.current) = (self.current, 0),
            _ => (self.previous, self.current) = (0, 0),
        }
        self.epoch = epoch;
    }

    fn recent(&self) -> u64 {
        self.current + self.previous
    }
}

struct Window {
    started: Instant,
    senders: LruCache<PeerId, Arrivals>,
}

/// Per-sender arrival counts and the drop decision under overload.
pub struct FairShare {
    window: Duration,
    state: Mutex<Window>,
}

impl FairShare {
    /// Fair sharing over windows of `window`, for at most `senders` senders.
    pub fn new(window: Duration, senders: NonZeroUsize) -> Self {
        Self {
            window: window.max(Duration::from_millis(1)),
            state: Mutex::new(Window {
                started: Instant::now(),
                senders: LruCache::new(senders),
            }),
        }
    }

    /// The number of the window we are in.
    fn epoch(&self, state: &Window) -> u64 {
        (state.started.elapsed().as_nanos() / self.window.as_nanos()) as u64
    }

    /// Counts a frame from `from` and decides whether it may be queued: always
    /// when its next hop is not `congested`, otherwise only while `from` has
    /// sent no more than the mean of the active senders.
    pub fn admit(&self, from: PeerId, congested: bool) -> bool {
        let mut state = self.state.lock();
        let epoch = self.epoch(&state);
        let sender = state.senders.get_or_insert_mut(from, Arrivals::default);
        sender.roll(epoch);
        sender.current += 1;
        sender.arrived += 1;
        let mine = sender.recent();
        if !congested {
            return true;
        }
        let (mut total, mut active) = (0u64, 0u64);
        for (_, other) in state.senders.iter_mut() {
            other.roll(epoch);
            if other.recent() > 0 {
                total += other.recent();
                active += 1;
            }
        }
        let over = mine * active > total;
        if over {
            if let Some(sender) = state.senders.peek_mut(&from) {
                sender.dropped += 1;
            }
        }
        !over
    }

    /// Every sender's counts, heaviest recent sender first.
    pub fn shares(&self) -> Vec<SenderShare> {
        let mut state = self.state.lock();
        let epoch = self.epoch(&state);
        let mut shares: Vec<SenderShare> = state
            .senders
            .iter_mut()
            .map(|(peer, arrivals)| {
                arrivals.roll(epoch);
                SenderShare {
                    peer: *peer,
                    arrived: arrivals.arrived,
                    dropped: arrivals.dropped,
                    recent: arrivals.recent(),
                }
            })
            .collect();
        shares.sort_by(|a, b| b.recent.cmp(&a.recent).then(b.arrived.cmp(&a.arrived)));
        shares
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fair() -> FairShare {
        FairShare::new(Duration::from_secs(60), NonZeroUsize::new(8).expect("8"))
    }

    #[test]
    fn nothing_is_dropped_while_the_next_hop_keeps_up() {
        let fair = fair();
        let (heavy, light) = (PeerId::random(), PeerId::random());
        assert!((0..1_000).all(|_| fair.admit(heavy, false)));
        assert!(fair.admit(light, false));
        assert!(fair.shares().iter().all(|s| s.dropped == 0));
    }

    #[test]
    fn under_overload_the_heaviest_sender_loses_and_a_light_one_does_not() {
        let fair = fair();
        let (heavy, light) = (PeerId::random(), PeerId::random());
        // Ten frames from the flooder for every one of the honest neighbour.
        let (mut heavy_admitted, mut light_admitted) = (0, 0);
        for _ in 0..100 {
            for _ in 0..10 {
                heavy_admitted += u32::from(fair.admit(heavy, true));
            }
            light_admitted += u32::from(fair.admit(light, true));
        }
        assert_eq!(light_admitted, 100, "a sender under the mean loses nothing");
        // While the queue stays congested, the flooder keeps only the burst it
        // sent before anyone else was active; once the queue drains below half
        // it gets everything again (the capacity the others leave).
        assert_eq!(heavy_admitted, 10);
        let shares = fair.shares();
        assert_eq!(shares[0].peer, heavy, "heaviest first");
        assert_eq!((shares[0].arrived, shares[1].arrived), (1_000, 100));
        assert_eq!(shares[0].dropped, 1_000 - u64::from(heavy_admitted));
        assert_eq!(shares[1].dropped, 0);
    }

    #[test]
    fn a_lone_sender_is_never_over_its_share() {
        let fair = fair();
        let only = PeerId::random();
        assert!((0..100).all(|_| fair.admit(only, true)));
    }

    #[test]
    fn old_arrivals_stop_counting_after_two_windows() {
        let mut arrivals = Arrivals {
            epoch: 3,
            current: 50,
            ..Arrivals::default()
        };
        arrivals.roll(4);
        assert_eq!(arrivals.recent(), 50, "the previous window still counts");
        arrivals.roll(6);
        assert_eq!(arrivals.recent(), 0);
    }

    #[test]
    fn congestion_means_over_half_full() {
        assert!(!congested(512, 1_024));
        assert!(congested(513, 1_024));
        assert!(!congested(0, 1));
        assert!(congested(1, 1));
    }
}
