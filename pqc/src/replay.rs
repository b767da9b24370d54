//! Sliding replay window over frame counters (the bitmap of RFC 6479, as
//! WireGuard and IPsec use it): counters up to `WINDOW` behind the highest seen
//! are accepted once each, older ones are refused.

use crate::Reject;

/// Counters remembered behind the highest one.
pub const WINDOW: u64 = 1024;
const WORDS: usize = (WINDOW / 64) as usize;

/// Which counters in the window were seen.
#[derive(Debug, Clone)]
pub struct ReplayWindow {
    /// Highest counter accepted, plus one (0: none yet).
    next: u64,
    bits: [u64; WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self {
            next: 0,
            bits: [0; WORDS],
        }
    }
}

impl ReplayWindow {
    /// Whether `counter` would be accepted; does not record it. Call before
    /// authenticating the frame, and [`ReplayWindow::accept`] after.
    pub fn check(&self, counter: u64) -> Result<(), Reject> {
        if counter == u64::MAX {
            // Never sent (sessions rekey long before); accepting it would
            // wrap the window's next counter to 0 and forget every frame seen.
            return Err(Reject::Malformed("frame counter"));
        }
        if counter >= self.next {
            return Ok(());
        }
        if self.next - counter > WINDOW {
            return Err(Reject::TooOld);
        }
        match self.bit(counter) {
            true => Err(Reject::Replayed),
            false => Ok(()),
        }
    }

    /// Records `counter` as seen (after the frame authenticated).
    pub fn accept(&mut self, counter: u64) -> Result<(), Reject> {
        self.check(counter)?;
        if counter >= self.next {
            let advance = counter + 1 - self.next;
            if advance >= WINDOW {
                self.bits = [0; WORDS];
            } else {
                for c in self.next..=counter {
                    self.clear(c);
                }
            }
            self.next = counter + 1;
        }
        self.set(counter);
        Ok(())
    }

    fn slot(counter: u64) -> (usize, u64) {
        let index = counter % WINDOW;
        ((index / 64) as usize, 1u64 << (index % 64))
    }

    fn bit(&self, counter: u64) -> bool {
        let (word, mask) = Self::slot(counter);
        self.bits[word] & mask != 0
    }

    fn set(&mut self, counter: u64) {
        let (word, mask) = Self::slot(counter);
        self.bits[word] |= mask;
    }

    fn clear(&mut self, counter: u64) {
        let (word, mask) = Self::slot(counter);
        self.bits[word] &= !mask;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_reordered_replayed_and_too_old() {
        let mut w = ReplayWindow::default();
        for c in 0..10 {
            assert_eq!(w.accept(c), Ok(()));
        }
        assert_eq!(w.accept(5), Err(Reject::Replayed));
        assert_eq!(w.accept(20), Ok(()), "a gap is fine");
        assert_eq!(w.accept(15), Ok(()), "reordered within the window");
        assert_eq!(w.accept(15), Err(Reject::Replayed));
        assert_eq!(w.accept(5_000), Ok(()));
        assert_eq!(w.accept(5_000 - (WINDOW - 1)), Ok(()), "the window's oldest slot");
        assert_eq!(w.accept(5_000 - WINDOW), Err(Reject::TooOld));
        assert_eq!(w.accept(20), Err(Reject::TooOld));
    }

    #[test]
    fn slots_reused_after_the_window_moves_on() {
        let mut w = ReplayWindow::default();
        assert_eq!(w.accept(10), Ok(()));
        assert_eq!(w.accept(600), Ok(()));
        // 10 + WINDOW lands on 10's bit; moving the window there must clear it.
        assert_eq!(w.accept(10 + WINDOW), Ok(()));
        assert_eq!(w.accept(10 + WINDOW), Err(Reject::Replayed));
        assert_eq!(w.accept(10), Err(Reject::TooOld));
        assert_eq!(w.accept(600), Err(Reject::Replayed), "still inside the window");
        // A jump past the whole window forgets everything before it.
        assert_eq!(w.accept(10 * WINDOW), Ok(()));
        assert_eq!(w.accept(10 * WINDOW - 1), Ok(()));
    }

    #[test]
    fn the_last_counter_is_refused_and_does_not_reset_the_window() {
        let mut w = ReplayWindow::default();
        assert_eq!(w.accept(5), Ok(()));
        assert_eq!(w.accept(u64::MAX), Err(Reject::Malformed("frame counter")));
        assert_eq!(w.accept(5), Err(Reject::Replayed), "frame 5 is still remembered");
        assert_eq!(w.accept(u64::MAX - 1), Ok(()));
        assert_eq!(w.accept(u64::MAX), Err(Reject::Malformed("frame counter")));
    }

    #[test]
    fn check_does_not_record() {
        let mut w = ReplayWindow::default();
        assert_eq!(w.check(1), Ok(()));
        assert_eq!(w.check(1), Ok(()));
        assert_eq!(w.accept(1), Ok(()));
        assert_eq!(w.check(1), Err(Reject::Replayed));
    }
}
