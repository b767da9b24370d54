//! When to renew an SVID: once the time left falls to `renew_at` of its
//! lifetime, moved by up to ±10 % of the lifetime at random (as SPIRE does),
//! and when it is close enough to expiry to raise an alert.

use std::time::Duration;

use rand::Rng;

/// Share of the lifetime the renewal moment is moved by, either way.
pub const JITTER: f64 = 0.1;
/// Share of the lifetime left under which an SVID not yet renewed is alerted on.
pub const ALERT_WITHIN: f64 = 0.1;

/// How long after issuance an SVID of `lifetime` is renewed.
pub fn renew_after(lifetime: Duration, renew_at: f64, rng: &mut impl Rng) -> Duration {
    let jitter = rng.gen_range(-JITTER..=JITTER);
    let used = (1.0 - renew_at + jitter).clamp(0.05, 0.95);
    lifetime.mul_f64(used)
}

/// Whether an SVID with `left` of `lifetime` is within [`ALERT_WITHIN`] of expiry.
pub fn near_expiry(left: Duration, lifetime: Duration) -> bool {
    left <= lifetime.mul_f64(ALERT_WITHIN)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn renewals_fall_around_the_threshold_and_spread_over_the_jitter() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let hour = Duration::from_secs(3600);
        let after: Vec<f64> = (0..1_000)
            .map(|_| renew_after(hour, 0.5, &mut rng).as_secs_f64() / 3600.0)
            .collect();
        assert!(
            after.iter().all(|a| (0.4..=0.6).contains(a)),
            "within ±10 % of half-life"
        );
        assert!(
            after.iter().any(|a| *a < 0.42) && after.iter().any(|a| *a > 0.58),
            "spread out"
        );
        let late = renew_after(hour, 0.1, &mut rng).as_secs_f64() / 3600.0;
        assert!((0.8..=0.95).contains(&late), "{late}");
    }

    #[test]
    fn the_alert_comes_in_the_last_tenth() {
        let hour = Duration::from_secs(3600);
        assert!(!near_expiry(Duration::from_secs(361), hour));
        assert!(near_expiry(Duration::from_secs(360), hour));
        assert!(near_expiry(Duration::ZERO, hour));
    }
}
