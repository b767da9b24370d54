//! Loss seen by the data path: timestamped beats on every frame stream.
//!
//! A frame-stream writer puts a beat before a batch of frames (at most one
//! every [`BEAT_SPACING`]) and sends one alone whenever it has been idle for
//! its keepalive interval (its *cadence*, which the beat states). A beat also
//! carries the writer's clock and how much of the last [`STALL_WINDOW`] the
//! writer's own side saw the reader's stream stalled (the reverse direction). The reader
//! takes `arrival − sent` for each beat: the one-way delay plus an unknown but
//! fixed clock offset, so its excess over the smallest recent value is how
//! much later than the path allows the beat came.
//!
//! Neighbours talk over reliable transports (TCP, QUIC): a lost packet is not
//! missing but retransmitted, and everything behind it waits for it: nothing
//! arrives until the retransmission does. So the reader counts the stream as
//! *stalled* for the part of each beat's lateness beyond `late_after`
//! (scheduling noise stays below it, a TCP retransmission takes 200 ms or more)
//! during which nothing else arrived either (a beat late behind a long queue of
//! frames on a busy link is queueing, not loss), and for any silence longer
//! than the cadence plus `late_after` (the next beat is overdue: it is held up
//! right now). The
//! stalled share of the last [`STALL_WINDOW`] is the link's loss as the data
//! path feels it: a link that loses two packets in five stands still most of
//! the time and shows it within a few hundred milliseconds, where pings once a
//! second need several seconds; a lone retransmission (200 ms) stalls it for
//! less than a third of the window.

use std::collections::VecDeque;
use std::time::Duration;

/// Shortest time between two beats on one stream while frames flow.
pub const BEAT_SPACING: Duration = Duration::from_millis(20);
/// Bytes of a beat after its zero length word: the writer's clock (`u32`
/// milliseconds, wrapping), its cadence (`u16` milliseconds) and the reverse
/// stalled share in percent ([`UNKNOWN_SHARE`] before the writer knows it).
pub const BEAT_BODY: usize = 7;
/// The stalled share a writer sends before it has received a beat.
pub const UNKNOWN_SHARE: u8 = u8::MAX;
/// The span of recent time whose stalled share is the link's loss.
pub const STALL_WINDOW: Duration = Duration::from_millis(500);
/// Beats over which the smallest delay (the path's own) is kept.
const BASELINE: usize = 64;
/// Beats remembered for the stalled share (the writer spaces them
/// [`BEAT_SPACING`] apart, so a second holds fewer; a peer sending them faster
/// only shortens its own record).
const RECENT: usize = 128;
/// The shortest cadence believed (a smaller one would make every pause a stall).
const MIN_CADENCE_MS: u16 = 10;

/// One beat, as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Beat {
    /// The writer's clock, milliseconds (wrapping).
    pub sent_ms: u32,
    /// The longest the writer stays silent while idle, milliseconds.
    pub cadence_ms: u16,
    /// Share of the last [`STALL_WINDOW`] the writer saw the reader's stream
    /// stalled, in percent (`None` while unknown; values over 100 read as unknown).
    pub reverse_stalled: Option<u8>,
}

impl Beat {
    /// The wire form of the body.
    pub fn encode(&self) -> [u8; BEAT_BODY] {
        let mut body = [0u8; BEAT_BODY];
        body[..4].copy_from_slice(&self.sent_ms.to_be_bytes());
        body[4..6].copy_from_slice(&self.cadence_ms.to_be_bytes());
        body[6] = self.reverse_stalled.map_or(UNKNOWN_SHARE, |s| s.min(100));
        body
    }

    /// Reads a body; any bytes make some beat, so there is nothing to reject.
    pub fn decode(body: [u8; BEAT_BODY]) -> Self {
        Self {
            sent_ms: u32::from_be_bytes([body[0], body[1], body[2], body[3]]),
            cadence_ms: u16::from_be_bytes([body[4], body[5]]).max(MIN_CADENCE_MS),
            reverse_stalled: (body[6] <= 100).then_some(body[6]),
        }
    }
}

/// The beats of one neighbour: their delays and how late the recent ones came.
#[derive(Debug, Default)]
pub struct BeatMeter {
    /// The last raw `arrival − sent` (wrapping `u32` ms), to unwrap the next.
    last_raw: Option<u32>,
    /// `arrival − sent` of the last [`BASELINE`] beats, unwrapped.
    delays: VecDeque<i64>,
    /// Arrival (this node's clock, ms) of recent beats, and how long each was
    /// held up: its lateness, at most the quiet time before it (ms).
    recent: VecDeque<(u64, u64)>,
    /// The neighbour's cadence, as its last beat stated.
    cadence_ms: u64,
}

impl BeatMeter {
    /// Records `beat`, which arrived at `arrived_ms` (this node's clock) after
    /// `quiet_ms` in which nothing at all (no frame, no beat) came from the
    /// neighbour. A beat counts as held up for at most that quiet time: behind
    /// a retransmission nothing arrives, while behind a long queue of frames
    /// (a busy link, not a lossy one) frames keep arriving and the beat's
    /// lateness is queueing.
    pub fn record(&mut self, beat: &Beat, arrived_ms: u64, quiet_ms: u64) {
        let raw = (arrived_ms as u32).wrapping_sub(beat.sent_ms);
        let delay = match (self.last_raw, self.delays.back()) {
            (Some(last), Some(&previous)) => previous + i64::from(raw.wrapping_sub(last) as i32),
            _ => 0,
        };
        self.last_raw = Some(raw);
        if self.delays.len() == BASELINE {
            self.delays.pop_front();
        }
        self.delays.push_back(delay);
        let base = self.delays.iter().copied().min().unwrap_or(delay);
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent
            .push_back((arrived_ms, ((delay - base) as u64).min(quiet_ms)));
        self.cadence_ms = u64::from(beat.cadence_ms);
    }

    /// Share of the [`STALL_WINDOW`] before `now_ms` during which the stream
    /// was held up by more than `late_after` (see the module doc), in percent.
    pub fn stalled_share(&self, now_ms: u64, late_after: Duration) -> u8 {
        let window = STALL_WINDOW.as_millis() as u64;
        let late_after = late_after.as_millis() as u64;
        let from = now_ms.saturating_sub(window);
        let mut stalled = 0;
        let mut covered_to = from;
        let late_beats = self.recent.iter().filter(|(_, excess)| *excess > late_after);
        for &(arrived, excess) in late_beats {
            let start = arrived.saturating_sub(excess - late_after).max(covered_to);
            let end = arrived.min(now_ms);
            stalled += end.saturating_sub(start);
            covered_to = covered_to.max(end);
        }
        if let Some(&(last, _)) = self.recent.back() {
            let overdue_from = (last + self.cadence_ms + late_after).max(covered_to);
            stalled += now_ms.saturating_sub(overdue_from);
        }
        (stalled.min(window) * 100 / window) as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LATE: Duration = Duration::from_millis(100);

    fn beat(sent_ms: u64) -> Beat {
        Beat {
            sent_ms: sent_ms as u32,
            cadence_ms: 250,
            reverse_stalled: None,
        }
    }

    #[test]
    fn a_beat_round_trips_and_junk_reads_as_unknown_or_bounded() {
        let sent = Beat {
            sent_ms: 0x2345_6789,
            cadence_ms: 250,
            reverse_stalled: Some(40),
        };
        assert_eq!(Beat::decode(sent.encode()), sent);
        let junk = Beat::decode([0xff; BEAT_BODY]);
        assert_eq!(junk.reverse_stalled, None);
        assert_eq!(Beat::decode([0; BEAT_BODY]).cadence_ms, MIN_CADENCE_MS);
    }

    #[test]
    fn beats_on_time_are_no_stall_whatever_the_clock_offset() {
        let mut meter = BeatMeter::default();
        // The writer's clock is far ahead of ours and wraps on the way.
        let offset = u64::from(u32::MAX - 500);
        for i in 0..30u64 {
            meter.record(&beat(i * 20 + offset), 10_000 + i * 20 + i % 3, 20);
        }
        assert_eq!(meter.stalled_share(10_000 + 29 * 20, LATE), 0);
        // Silence up to the cadence plus the bound is no stall either.
        assert_eq!(meter.stalled_share(10_000 + 29 * 20 + 350, LATE), 0);
    }

    #[test]
    fn a_lone_retransmission_stalls_a_little_and_heavy_loss_a_lot() {
        let mut meter = BeatMeter::default();
        for i in 0..50u64 {
            meter.record(&beat(i * 20), 10_000 + i * 20, 20);
        }
        // One lost packet: it and the beats behind it arrive together when it
        // is retransmitted 200 ms later.
        let now = 10_000 + 50 * 20 + 200;
        meter.record(&beat(50 * 20), now, 200);
        for i in 51..60u64 {
            meter.record(&beat(i * 20), now, 0);
        }
        assert_eq!(meter.stalled_share(now, LATE), 20, "100 of the last 500 ms");
        // Then retransmissions one after the other hold the stream up.
        let mut at = now;
        for (i, wait) in (60..).zip([400u64, 250, 600]) {
            at += wait;
            meter.record(&beat(i * 20), at, wait);
        }
        assert!(meter.stalled_share(at, LATE) >= 60, "{}", meter.stalled_share(at, LATE));
    }

    #[test]
    fn beats_late_behind_a_queue_of_frames_are_no_stall() {
        let mut meter = BeatMeter::default();
        for i in 0..20u64 {
            meter.record(&beat(i * 20), 10_000 + i * 20, 20);
        }
        // A busy link: each beat waits 300 ms behind queued frames, but frames
        // arrive all the time (a few milliseconds apart).
        for i in 20..45u64 {
            meter.record(&beat(i * 20), 10_000 + i * 20 + 300, 3);
        }
        assert_eq!(meter.stalled_share(10_000 + 44 * 20 + 300, LATE), 0);
    }

    #[test]
    fn an_overdue_beat_counts_as_a_stall_while_it_lasts() {
        let mut meter = BeatMeter::default();
        for i in 0..10u64 {
            meter.record(&beat(i * 250), i * 250, 250);
        }
        let last = 9 * 250;
        // The next beat is due 250 ms after the last, and late 100 ms after that.
        assert_eq!(meter.stalled_share(last + 350, LATE), 0);
        assert_eq!(meter.stalled_share(last + 650, LATE), 60);
        assert_eq!(meter.stalled_share(last + 5_000, LATE), 100);
        assert_eq!(
            BeatMeter::default().stalled_share(5_000, LATE),
            0,
            "nothing heard, nothing due"
        );
    }

    #[test]
    fn a_stall_leaves_the_window() {
        let mut meter = BeatMeter::default();
        meter.record(&beat(0), 0, 0);
        meter.record(&beat(20), 520, 520);
        assert_eq!(meter.stalled_share(520, LATE), 80, "400 of the last 500 ms");
        for i in 1..=10u64 {
            meter.record(&beat(520 + i * 150), 520 + i * 150, 150);
        }
        assert_eq!(meter.stalled_share(520 + 1_500, LATE), 0);
    }
}
