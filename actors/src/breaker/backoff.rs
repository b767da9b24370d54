//! Exponential backoff with full jitter (AWS architecture blog, "Exponential
//! Backoff And Jitter"): wait a uniformly random time between zero and
//! `min(cap, base * 2^attempt)`. Retries of many nodes then spread out instead
//! of arriving in waves.

use std::time::Duration;

use rand::Rng;

/// The delay before retry number `attempt` (0 for the first retry).
pub fn full_jitter(attempt: u32, base: Duration, cap: Duration, rng: &mut impl Rng) -> Duration {
    let ceiling = base.saturating_mul(2u32.saturating_pow(attempt.min(31))).min(cap);
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rng.gen_range(0..=nanos))
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn delays_stay_under_a_doubling_ceiling_and_the_cap() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let (base, cap) = (Duration::from_millis(100), Duration::from_secs(2));
        for attempt in 0..40 {
            let ceiling = (base * 2u32.pow(attempt.min(20))).min(cap);
            for _ in 0..200 {
                assert!(full_jitter(attempt, base, cap, &mut rng) <= ceiling);
            }
        }
    }

    #[test]
    fn delays_are_spread_over_the_whole_range() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let delays: Vec<Duration> = (0..1_000)
            .map(|_| full_jitter(3, Duration::from_millis(100), Duration::from_secs(10), &mut rng))
            .collect();
        let below = delays.iter().filter(|d| **d < Duration::from_millis(400)).count();
        assert!((350..650).contains(&below), "about half below the midpoint: {below}");
        assert!(delays.iter().any(|d| *d < Duration::from_millis(80)));
        assert!(delays.iter().any(|d| *d > Duration::from_millis(720)));
    }
}
