//! When a node's last beacon is too old to keep it in the link-state database.
//!
//! Wall-clock age alone misjudges a busy machine: when this process (or the
//! whole host) is starved, every beacon reaches the router late at once, and a
//! fixed expiry drops nodes that are alive — even direct neighbours whose
//! frames keep arriving — so transit nodes refuse frames their neighbours
//! route through them. A beacon therefore expires only when
//!
//! - it is older than the expiry, **and**
//! - the mesh moved on without it: newer beacons from other nodes arrived more
//!   than an expiry after it (or it is older than [`HARD_LIMIT_FACTOR`] expiries,
//!   so an isolated node still forgets the mesh it lost), **and**
//! - its node is not a live neighbour (the mesh reports the link up: the
//!   neighbour's keepalives and frames prove it is there).

use std::time::{Duration, Instant};

/// A beacon older than this many expiries is dropped even when nothing newer arrived.
pub const HARD_LIMIT_FACTOR: u32 = 4;

/// Whether a beacon received at `received` has expired at `now`, given the
/// newest beacon received from any node and whether its sender is a live neighbour.
pub fn expired(received: Instant, newest: Instant, now: Instant, expiry: Duration, live_neighbour: bool) -> bool {
    if live_neighbour {
        return false;
    }
    let age = now.saturating_duration_since(received);
    let overtaken = newest.saturating_duration_since(received) >= expiry;
    age >= expiry && (overtaken || age >= expiry * HARD_LIMIT_FACTOR)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPIRY: Duration = Duration::from_millis(1_500);

    #[test]
    fn a_silent_node_expires_while_others_keep_beaconing() {
        let t0 = Instant::now();
        let now = t0 + Duration::from_secs(2);
        assert!(expired(t0, now, now, EXPIRY, false));
        assert!(
            !expired(t0, now, t0 + Duration::from_secs(1), EXPIRY, false),
            "younger than the expiry"
        );
    }

    #[test]
    fn when_every_beacon_is_late_nobody_expires_until_the_hard_limit() {
        let t0 = Instant::now();
        // The newest beacon of anyone is as old as this one: this process or the
        // whole mesh is starved, not this node gone.
        let newest = t0 + Duration::from_millis(200);
        assert!(!expired(t0, newest, t0 + Duration::from_secs(3), EXPIRY, false));
        assert!(expired(t0, newest, t0 + EXPIRY * HARD_LIMIT_FACTOR, EXPIRY, false));
    }

    #[test]
    fn a_live_neighbour_never_expires() {
        let t0 = Instant::now();
        let now = t0 + Duration::from_secs(60);
        assert!(!expired(t0, now, now, EXPIRY, true));
    }
}
