//! When to send each entry during a replay: pure and deterministic.

use std::time::Duration;

/// Turns arrival times into replay offsets from the start of the replay.
///
/// Entries are replayed in input order. The gap before an entry is its arrival time
/// minus the latest arrival time seen before it, divided by `speed`, and clamped to
/// `max_gap`. An entry that arrived earlier than one before it (HAR files are not
/// always in time order) gets a gap of 0: it is sent right after its predecessor,
/// and the next gap is measured from the latest arrival so far, so out-of-order
/// entries never stretch the replay.
///
/// The first entry is at offset 0. Offsets never decrease.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    speed: f64,
    max_gap_us: Option<u64>,
}

impl Schedule {
    /// `speed` 1.0 is real time, 100.0 is 100 times faster, `f64::INFINITY` sends
    /// everything at once. `max_gap` caps every idle gap, in replay time. `None`
    /// when `speed` is not positive (or NaN).
    pub fn new(speed: f64, max_gap: Option<Duration>) -> Option<Schedule> {
        if speed.is_nan() || speed <= 0.0 {
            return None;
        }
        Some(Schedule {
            speed,
            max_gap_us: max_gap.map(|g| u64::try_from(g.as_micros()).unwrap_or(u64::MAX)),
        })
    }

    /// The speed factor.
    pub fn speed(&self) -> f64 {
        self.speed
    }

    /// The gap clamp, in replay time.
    pub fn max_gap(&self) -> Option<Duration> {
        self.max_gap_us.map(Duration::from_micros)
    }

    /// A stateful clock for streaming: feed it arrival times in input order.
    pub fn clock(&self) -> Clock {
        Clock {
            schedule: *self,
            latest_us: None,
            offset_us: 0,
        }
    }

    /// Replay offsets in microseconds, one per arrival time, in the same order.
    pub fn offsets(&self, at_us: impl IntoIterator<Item = u64>) -> Vec<u64> {
        let mut clock = self.clock();
        at_us.into_iter().map(|at| clock.offset_us(at)).collect()
    }
}

/// Streaming form of [`Schedule::offsets`].
#[derive(Debug, Clone)]
pub struct Clock {
    schedule: Schedule,
    latest_us: Option<u64>,
    offset_us: u64,
}

impl Clock {
    /// The replay offset, in microseconds, of the entry that arrived at `at_us`.
    pub fn offset_us(&mut self, at_us: u64) -> u64 {
        let Some(latest) = self.latest_us else {
            self.latest_us = Some(at_us);
            return 0;
        };
        let real_gap = at_us.saturating_sub(latest);
        self.latest_us = Some(latest.max(at_us));
        // `as` saturates; the quotient is finite or +inf and non-negative.
        let mut gap = (real_gap as f64 / self.schedule.speed).round() as u64;
        if let Some(max) = self.schedule.max_gap_us {
            gap = gap.min(max);
        }
        self.offset_us = self.offset_us.saturating_add(gap);
        self.offset_us
    }

    /// [`Clock::offset_us`] as a [`Duration`].
    pub fn offset(&mut self, at_us: u64) -> Duration {
        Duration::from_micros(self.offset_us(at_us))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;

    #[test]
    fn real_time_and_speed() {
        let at = [10 * S, 10 * S, 11 * S, 13 * S + 500_000];
        let real = Schedule::new(1.0, None).unwrap();
        assert_eq!(real.offsets(at), [0, 0, S, 3 * S + 500_000]);
        let fast = Schedule::new(100.0, None).unwrap();
        assert_eq!(fast.offsets(at), [0, 0, 10_000, 35_000]);
        let slow = Schedule::new(0.5, None).unwrap();
        assert_eq!(slow.offsets(at), [0, 0, 2 * S, 7 * S]);
        let instant = Schedule::new(f64::INFINITY, None).unwrap();
        assert_eq!(instant.offsets(at), [0, 0, 0, 0]);
        assert_eq!(
            Schedule::new(1.0, None).unwrap().offsets([]),
            Vec::<u64>::new()
        );
    }

    #[test]
    fn max_gap_clamps_replay_time() {
        // An hour of silence, then a 2 s gap; at 10x with a 1 s clamp.
        let at = [0, 3600 * S, 3602 * S, 3602 * S + 5_000_000];
        let s = Schedule::new(10.0, Some(Duration::from_secs(1))).unwrap();
        assert_eq!(s.offsets(at), [0, S, S + 200_000, S + 700_000]);
        assert_eq!(s.max_gap(), Some(Duration::from_secs(1)));
    }

    #[test]
    fn out_of_order_keeps_order_and_never_goes_back() {
        let at = [5 * S, 7 * S, 6 * S, 8 * S, 3 * S, 9 * S];
        let s = Schedule::new(1.0, None).unwrap();
        // 6 s and 3 s arrive "early": no gap; later gaps measured from the latest (7 s, 8 s).
        assert_eq!(s.offsets(at), [0, 2 * S, 2 * S, 3 * S, 3 * S, 4 * S]);
        let mut clock = s.clock();
        let streamed: Vec<u64> = at.iter().map(|&a| clock.offset_us(a)).collect();
        assert_eq!(streamed, s.offsets(at));
    }

    #[test]
    fn rejects_bad_speed() {
        assert!(Schedule::new(0.0, None).is_none());
        assert!(Schedule::new(-1.0, None).is_none());
        assert!(Schedule::new(f64::NAN, None).is_none());
    }
}
