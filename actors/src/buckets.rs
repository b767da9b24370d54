//! Per-peer token buckets: one `governor` limiter (GCRA, the token bucket's
//! exact equivalent) per peer, kept in a bounded LRU map so a flood of new
//! peer ids cannot grow the table.

use std::num::NonZeroU32;
use std::num::NonZeroUsize;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use libp2p::PeerId;
use lru::LruCache;
use parking_lot::Mutex;

/// A token bucket per peer.
pub struct PeerBuckets {
    quota: Quota,
    buckets: Mutex<LruCache<PeerId, DefaultDirectRateLimiter>>,
}

impl PeerBuckets {
    /// Buckets refilling at `per_sec` holding `burst`, for at most `peers` peers.
    pub fn new(per_sec: u32, burst: u32, peers: usize) -> Self {
        let rate = NonZeroU32::new(per_sec.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
        Self {
            quota: Quota::per_second(rate).allow_burst(burst),
            buckets: Mutex::new(LruCache::new(capacity(peers))),
        }
    }

    /// Takes a token from `peer`'s bucket; false when it is empty.
    pub fn allow(&self, peer: PeerId) -> bool {
        let mut buckets = self.buckets.lock();
        let bucket = buckets.get_or_insert(peer, || RateLimiter::direct(self.quota));
        bucket.check().is_ok()
    }
}

/// The capacity of a bounded map meant to hold `n` entries (at least one).
pub fn capacity(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_peer_has_its_own_burst_and_the_table_stays_bounded() {
        let buckets = PeerBuckets::new(1, 5, 2);
        let (a, b) = (PeerId::random(), PeerId::random());
        assert_eq!((0..10).filter(|_| buckets.allow(a)).count(), 5, "a burst of five");
        assert!(buckets.allow(b), "another peer is not affected");
        for _ in 0..100 {
            buckets.allow(PeerId::random());
        }
        assert_eq!(buckets.buckets.lock().len(), 2);
    }
}
