//! How long delivery stopped around a fault, from a record of probes.

/// One interruption of delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outage {
    /// Send time of the last probe delivered before the gap (Unix ms).
    pub last_before_ms: u64,
    /// Send time of the first probe delivered after the gap (Unix ms).
    pub resumed_ms: u64,
    /// Probes sent inside the gap and never delivered.
    pub lost: usize,
}

impl Outage {
    /// Length of the gap in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        self.resumed_ms - self.last_before_ms
    }
}

/// The longest gap between delivered probes that ends after `fault_ms`.
///
/// `probes` are `(send time in Unix ms, delivered)`. Returns `None` when no probe
/// sent after the fault was delivered (delivery never resumed).
pub fn outage_after(probes: &[(u64, bool)], fault_ms: u64) -> Option<Outage> {
    let mut delivered: Vec<u64> = probes.iter().filter(|(_, ok)| *ok).map(|(t, _)| *t).collect();
    delivered.sort_unstable();
    let (last_before_ms, resumed_ms) = delivered
        .windows(2)
        .map(|w| (w[0], w[1]))
        .filter(|(_, after)| *after >= fault_ms)
        .max_by_key(|(a, b)| b - a)?;
    let lost = probes
        .iter()
        .filter(|(t, ok)| !ok && *t > last_before_ms && *t < resumed_ms)
        .count();
    Some(Outage {
        last_before_ms,
        resumed_ms,
        lost,
    })
}

/// Start (Unix ms) of the first run of good samples after `fault_ms` that
/// stays good for at least `hold_ms`: the moment a fault counts as healed.
///
/// `samples` are `(time in Unix ms, good)` in time order; a run starts at its
/// first good sample and lasts until its last one. `None` when no run held.
pub fn healed_at(samples: &[(u64, bool)], fault_ms: u64, hold_ms: u64) -> Option<u64> {
    let mut run_start = None;
    for &(at, good) in samples.iter().filter(|(at, _)| *at >= fault_ms) {
        match (good, run_start) {
            (false, _) => run_start = None,
            (true, None) => run_start = Some(at),
            (true, Some(_)) => {}
        }
        if let Some(start) = run_start.filter(|start| at - start >= hold_ms) {
            return Some(start);
        }
    }
    None
}

/// Nearest-rank percentile of `values` (sorted or not); 0 when empty.
pub fn percentile(values: &[u64], q: f64) -> u64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = ((sorted.len() as f64) * q).ceil() as usize;
    sorted.get(rank.saturating_sub(1)).copied().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_gap_around_the_fault() {
        // Probes every 10 ms from t=0; the fault at 100 loses 100..=250.
        let probes: Vec<(u64, bool)> = (0..50).map(|i| (i * 10, !(10..=25).contains(&i))).collect();
        let outage = outage_after(&probes, 100).expect("resumed");
        assert_eq!((outage.last_before_ms, outage.resumed_ms, outage.lost), (90, 260, 16));
        assert_eq!(outage.duration_ms(), 170);
    }

    #[test]
    fn no_recovery_is_none() {
        let probes: Vec<(u64, bool)> = (0..10).map(|i| (i * 10, i < 5)).collect();
        assert_eq!(outage_after(&probes, 50), None);
    }

    #[test]
    fn healed_when_a_good_run_holds_long_enough() {
        // Samples every 100 ms; good 0..=5, bad 6..=9, good 10..=12 (too short),
        // bad 13, good from 14 on.
        let samples: Vec<(u64, bool)> = (0..40)
            .map(|i| (i * 100, matches!(i, 0..=5 | 10..=12 | 14..)))
            .collect();
        assert_eq!(healed_at(&samples, 600, 500), Some(1_400));
        assert_eq!(
            healed_at(&samples, 600, 200),
            Some(1_000),
            "a short run is enough for a short hold"
        );
        assert_eq!(
            healed_at(&samples, 0, 500),
            Some(0),
            "good before the fault counts from the fault"
        );
        assert_eq!(healed_at(&samples, 600, 5_000), None, "never held that long");
    }

    #[test]
    fn percentiles() {
        let v = [5, 1, 4, 2, 3];
        assert_eq!(
            (percentile(&v, 0.5), percentile(&v, 0.95), percentile(&v, 1.0)),
            (3, 5, 5)
        );
        assert_eq!(percentile(&[], 0.5), 0);
    }
}
