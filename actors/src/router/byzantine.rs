//! Byzantine checks on beacons (`X0TTA6BL4_BYZANTINE=true`).
//!
//! Links already count only when both ends report them. On top of that, with
//! the checks on, a beacon is ignored when its timestamp is far from this
//! node's clock or its sequence number jumps past what any honest sender can
//! have reached (sequence numbers start at the sender's Unix milliseconds and
//! grow by one per beacon, so they never run ahead of the clock); and a node
//! that keeps claiming a link its other end denies for longer than a beacon
//! takes to expire (a new link is announced by its two ends moments apart,
//! never that far apart) is caught, once per such period. Each caught lie is a
//! strike; a node with [`STRIKES_TO_REPORT`] strikes is reported to the healer,
//! which quarantines it.

use crate::buckets::capacity;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use lru::LruCache;
use serde::Serialize;

/// Largest accepted difference between a beacon's clock and ours.
pub const MAX_CLOCK_SKEW_MS: u64 = 30_000;
/// Strikes after which a node is reported as lying.
pub const STRIKES_TO_REPORT: u32 = 3;
/// Nodes whose strikes are remembered.
const MAX_TRACKED: usize = 4_096;

/// A lie found in a beacon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Lie {
    /// The timestamp is more than [`MAX_CLOCK_SKEW_MS`] off.
    ClockSkew,
    /// The sequence number is ahead of any honest sender's.
    SeqJump,
    /// A link the other end keeps denying.
    FakeLink,
}

impl Lie {
    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Lie::ClockSkew => "clock_skew",
            Lie::SeqJump => "seq_jump",
            Lie::FakeLink => "fake_link",
        }
    }
}

/// A node caught lying, for the API and the healer.
#[derive(Debug, Clone, Serialize)]
pub struct Liar {
    /// The node.
    #[serde(serialize_with = "super::serialize_display")]
    pub peer: PeerId,
    /// Lies counted.
    pub strikes: u32,
    /// The latest one.
    pub last: Lie,
    /// For a fake link: the node at its other end.
    #[serde(serialize_with = "super::serialize_option_display")]
    pub about: Option<PeerId>,
}

/// Keeps the strikes.
pub struct Judge {
    strikes: LruCache<PeerId, (u32, Lie, Option<PeerId>)>,
    /// Since when the first node claims a link the second denies, and when
    /// that last cost it a strike.
    one_sided: HashMap<(PeerId, PeerId), (Instant, Option<Instant>)>,
}

impl Default for Judge {
    fn default() -> Self {
        Self {
            strikes: LruCache::new(capacity(MAX_TRACKED)),
            one_sided: HashMap::new(),
        }
    }
}

impl Judge {
    /// Checks a beacon's clock and sequence number against `now_ms`.
    pub fn check_clock(&mut self, sender: PeerId, seq: u64, timestamp_ms: u64, now_ms: u64) -> Result<(), Lie> {
        let lie = if timestamp_ms.abs_diff(now_ms) > MAX_CLOCK_SKEW_MS {
            Some(Lie::ClockSkew)
        } else if seq > now_ms.saturating_add(MAX_CLOCK_SKEW_MS) {
            Some(Lie::SeqJump)
        } else {
            None
        };
        match lie {
            Some(lie) => {
                self.strike(sender, lie, None);
                Err(lie)
            }
            None => Ok(()),
        }
    }

    /// Checks the links `claimant` reports at `now` against what their other
    /// ends say: `denies(x)` is true when `x` is known and does not list
    /// `claimant`. A claim denied for longer than `grace` is a lie, counted
    /// once per `grace`. Returns the links that count as lies now.
    pub fn check_links(
        &mut self,
        claimant: PeerId,
        claimed: &[PeerId],
        denies: impl Fn(&PeerId) -> bool,
        now: Instant,
        grace: Duration,
    ) -> Vec<PeerId> {
        let mut lies = Vec::new();
        self.one_sided
            .retain(|(who, other), _| *who != claimant || claimed.contains(other));
        for other in claimed {
            let key = (claimant, *other);
            if !denies(other) {
                self.one_sided.remove(&key);
                continue;
            }
            let (since, struck) = self.one_sided.entry(key).or_insert((now, None));
            let due = struck.map_or(*since, |at| at) + grace;
            if now >= due {
                *struck = Some(now);
                lies.push(*other);
            }
        }
        if let Some(other) = lies.first() {
            self.strike(claimant, Lie::FakeLink, Some(*other));
        }
        lies
    }

    fn strike(&mut self, peer: PeerId, lie: Lie, about: Option<PeerId>) {
        metrics::counter!("x0tta_byzantine_lies_total", "lie" => lie.label()).increment(1);
        let strikes = self.strikes.get(&peer).map_or(0, |(n, _, _)| *n) + 1;
        self.strikes.put(peer, (strikes, lie, about));
        if strikes == STRIKES_TO_REPORT {
            tracing::warn!(%peer, lie = lie.label(), strikes, "node caught lying; reporting it to the healer");
        }
    }

    /// Nodes with at least [`STRIKES_TO_REPORT`] strikes.
    pub fn liars(&self) -> Vec<Liar> {
        self.strikes
            .iter()
            .filter(|(_, (n, _, _))| *n >= STRIKES_TO_REPORT)
            .map(|(peer, (strikes, last, about))| Liar {
                peer: *peer,
                strikes: *strikes,
                last: *last,
                about: *about,
            })
            .collect()
    }

    /// Forgets a node's one-sided claims when its beacons expire.
    pub fn forget_claims(&mut self, peer: &PeerId) {
        self.one_sided.retain(|(who, _), _| who != peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_skew_and_sequence_jumps_are_lies_and_honest_beacons_are_not() {
        let mut judge = Judge::default();
        let peer = PeerId::random();
        let now = 1_800_000_000_000;
        assert_eq!(judge.check_clock(peer, now - 5_000, now - 100, now), Ok(()));
        assert_eq!(
            judge.check_clock(peer, now, now + MAX_CLOCK_SKEW_MS, now),
            Ok(()),
            "at the edge"
        );
        assert_eq!(
            judge.check_clock(peer, now, now + MAX_CLOCK_SKEW_MS + 1, now),
            Err(Lie::ClockSkew)
        );
        assert_eq!(judge.check_clock(peer, now, now - 3_600_000, now), Err(Lie::ClockSkew));
        assert_eq!(judge.check_clock(peer, u64::MAX, now, now), Err(Lie::SeqJump));
        let liars = judge.liars();
        assert_eq!(liars.len(), 1);
        assert_eq!(
            (liars[0].peer, liars[0].strikes, liars[0].last),
            (peer, 3, Lie::SeqJump)
        );
    }

    #[test]
    fn a_link_denied_past_the_grace_is_a_lie_once_per_grace_and_a_confirmed_one_resets() {
        let mut judge = Judge::default();
        let (liar, honest, x) = (PeerId::random(), PeerId::random(), PeerId::random());
        let denied_by_x = |p: &PeerId| *p == x;
        let (t, grace) = (Instant::now(), Duration::from_millis(1_500));
        let at = |ms: u64| t + Duration::from_millis(ms);
        assert!(judge.check_links(liar, &[x], denied_by_x, at(0), grace).is_empty());
        assert!(judge.check_links(liar, &[x], denied_by_x, at(1_499), grace).is_empty());
        assert_eq!(judge.check_links(liar, &[x], denied_by_x, at(1_500), grace), vec![x]);
        assert!(
            judge.check_links(liar, &[x], denied_by_x, at(2_000), grace).is_empty(),
            "one strike per grace period"
        );
        // A new link unconfirmed for a moment, then confirmed: no lie, and the
        // clock starts over.
        assert!(judge.check_links(honest, &[x], denied_by_x, at(0), grace).is_empty());
        assert!(judge.check_links(honest, &[x], |_| false, at(1_000), grace).is_empty());
        assert!(judge
            .check_links(honest, &[x], denied_by_x, at(2_000), grace)
            .is_empty());
        assert!(judge
            .check_links(honest, &[x], denied_by_x, at(3_400), grace)
            .is_empty());
        assert!(judge.liars().is_empty(), "one strike is not enough");
        assert_eq!(judge.check_links(liar, &[x], denied_by_x, at(3_000), grace), vec![x]);
        assert!(judge.liars().is_empty(), "two strikes");
        assert_eq!(judge.check_links(liar, &[x], denied_by_x, at(4_500), grace), vec![x]);
        assert_eq!(
            judge.liars().first().map(|l| (l.peer, l.last)),
            Some((liar, Lie::FakeLink))
        );
        // Dropping the claim forgets it.
        assert!(judge.check_links(liar, &[], denied_by_x, at(5_000), grace).is_empty());
        assert!(judge.check_links(liar, &[x], denied_by_x, at(6_000), grace).is_empty());
    }
}
