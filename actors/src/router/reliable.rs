//! Reliable messages: the source keeps each one until the destination
//! acknowledges it and retransmits with exponential backoff meanwhile; the
//! destination delivers each message id once and acknowledges every copy.
//!
//! Every transmission travels as a new frame (fresh frame id), so transit
//! nodes' duplicate suppression never eats a retransmission; end-to-end
//! deduplication uses the message id carried at the start of the payload.

use crate::buckets::capacity;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use libp2p::PeerId;
use lru::LruCache;

/// Messages awaiting an acknowledgement, at most.
pub const MAX_PENDING: usize = 4_096;
/// First retransmission timeout.
const FIRST_TIMEOUT: Duration = Duration::from_millis(100);
/// Longest retransmission timeout.
const MAX_TIMEOUT: Duration = Duration::from_secs(2);
/// Transmissions before a message is given up.
pub const MAX_ATTEMPTS: u32 = 12;

/// One unacknowledged message.
#[derive(Debug, Clone)]
pub struct Pending {
    /// Destination.
    pub dst: PeerId,
    /// Payload including the message id prefix.
    pub payload: Bytes,
    /// Transmissions so far.
    pub attempts: u32,
    /// When to retransmit.
    pub due: Instant,
}

/// What the source does with its pending messages at one tick.
#[derive(Debug, Default, PartialEq)]
pub struct Tick {
    /// `(message id, destination, payload)` to transmit again.
    pub resend: Vec<(u64, PeerId, Bytes)>,
    /// Message ids given up after [`MAX_ATTEMPTS`].
    pub expired: Vec<u64>,
}

/// Source and destination state of reliable delivery.
pub struct Reliable {
    pending: HashMap<u64, Pending>,
    delivered: LruCache<(PeerId, u64), ()>,
}

/// Prefixes `data` with the message id.
pub fn encode(message_id: u64, data: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(8 + data.len());
    out.put_u64(message_id);
    out.put_slice(data);
    out.freeze()
}

/// Splits a reliable payload into message id and data.
pub fn decode(payload: &Bytes) -> Option<(u64, Bytes)> {
    let id = u64::from_be_bytes(payload.get(..8)?.try_into().ok()?);
    Some((id, payload.slice(8..)))
}

fn timeout_after(attempts: u32) -> Duration {
    FIRST_TIMEOUT.saturating_mul(1 << attempts.min(5)).min(MAX_TIMEOUT)
}

impl Reliable {
    /// Remembers the last `dedupe` delivered (source, message id) pairs.
    pub fn new(dedupe: usize) -> Self {
        Self {
            pending: HashMap::new(),
            delivered: LruCache::new(capacity(dedupe)),
        }
    }

    /// Starts tracking a message sent now; false when too many are pending.
    pub fn track(&mut self, message_id: u64, dst: PeerId, payload: Bytes, now: Instant) -> bool {
        if self.pending.len() >= MAX_PENDING {
            return false;
        }
        self.pending.insert(
            message_id,
            Pending {
                dst,
                payload,
                attempts: 1,
                due: now + timeout_after(0),
            },
        );
        true
    }

    /// An acknowledgement arrived; true if it settled a pending message.
    pub fn acknowledge(&mut self, message_id: u64) -> bool {
        self.pending.remove(&message_id).is_some()
    }

    /// Whether a message from `src` is new (and marks it delivered).
    pub fn first_delivery(&mut self, src: PeerId, message_id: u64) -> bool {
        self.delivered.put((src, message_id), ()).is_none()
    }

    /// Messages due for retransmission or expiry at `now`.
    pub fn tick(&mut self, now: Instant) -> Tick {
        let mut tick = Tick::default();
        for (id, p) in self.pending.iter_mut().filter(|(_, p)| p.due <= now) {
            if p.attempts >= MAX_ATTEMPTS {
                tick.expired.push(*id);
                continue;
            }
            p.due = now + timeout_after(p.attempts);
            p.attempts += 1;
            tick.resend.push((*id, p.dst, p.payload.clone()));
        }
        for id in &tick.expired {
            self.pending.remove(id);
        }
        tick
    }

    /// Messages awaiting acknowledgement.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retransmits_with_backoff_until_acknowledged() {
        let mut r = Reliable::new(8);
        let (dst, t0) = (PeerId::random(), Instant::now());
        assert!(r.track(1, dst, encode(1, b"x"), t0));
        assert_eq!(r.tick(t0 + Duration::from_millis(50)), Tick::default());
        let first = r.tick(t0 + Duration::from_millis(100));
        assert_eq!(first.resend.len(), 1);
        // The next timeout doubled: nothing due 150 ms later, due 200 ms later.
        assert!(r.tick(t0 + Duration::from_millis(250)).resend.is_empty());
        assert_eq!(r.tick(t0 + Duration::from_millis(300)).resend.len(), 1);
        assert!(r.acknowledge(1));
        assert!(!r.acknowledge(1));
        assert_eq!(r.pending(), 0);
    }

    #[test]
    fn gives_up_after_max_attempts() {
        let mut r = Reliable::new(8);
        let mut now = Instant::now();
        r.track(7, PeerId::random(), encode(7, b""), now);
        let mut resent = 0;
        loop {
            now += MAX_TIMEOUT;
            let tick = r.tick(now);
            resent += tick.resend.len();
            if tick.expired == vec![7] {
                break;
            }
        }
        assert_eq!(resent as u32, MAX_ATTEMPTS - 1);
        assert_eq!(r.pending(), 0);
    }

    #[test]
    fn delivers_each_message_once_and_bounds_pending() {
        let mut r = Reliable::new(8);
        let src = PeerId::random();
        assert!(r.first_delivery(src, 3));
        assert!(!r.first_delivery(src, 3));
        assert!(r.first_delivery(PeerId::random(), 3));
        let now = Instant::now();
        for id in 0..MAX_PENDING as u64 {
            assert!(r.track(id, src, Bytes::new(), now));
        }
        assert!(!r.track(u64::MAX, src, Bytes::new(), now));
        assert_eq!(decode(&encode(9, b"ab")), Some((9, Bytes::from_static(b"ab"))));
        assert_eq!(decode(&Bytes::from_static(b"short")), None);
    }
}
