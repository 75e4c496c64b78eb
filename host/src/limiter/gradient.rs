//! The gradient controller: a pure function of (time, latency samples) to a
//! concurrency limit.

use std::time::Duration;

/// A gradient concurrency controller (after Envoy's adaptive concurrency filter and
/// Netflix's Gradient2). Once per round (about one minimum latency) it compares the
/// round's median latency with the origin's baseline, `tolerance × min latency +
/// slack`:
/// - at or under the baseline, a limit that was reached grows: by `headroom`, or
///   doubling back to the highest limit recently found at baseline (so a limit cut by
///   a spike recovers within a few rounds once latency is back);
/// - above it, the limit moves a quarter of the way toward `limit × gradient +
///   headroom`, the gradient being `baseline / median` clamped to [0.5, 1];
/// - on overload signals (503, 429, timeouts) it backs off by a tenth.
///
/// The minimum latency is the smallest sample of a sliding window of live traffic, so
/// re-measuring it never starves requests. Pure: its output depends only on the
/// (time, sample) sequence it is fed.
#[derive(Debug, Clone)]
pub struct Gradient {
    tolerance: f64,
    headroom: f64,
    slack_ns: f64,
    limit: f64,
    min: f64,
    max: f64,
    short_rtt: f64,
    samples: u64,
    window_min_ns: u64,
    window_start_ns: u64,
    last_min_ns: u64,
    /// The highest limit a round found at baseline, in this window and the last.
    window_good: f64,
    last_good: f64,
    /// Whether the last round was at baseline with the limit reached.
    good_streak: bool,
    round_start_ns: u64,
    /// The round's latencies (the latest [`ROUND_SAMPLES`] of them).
    round: [u64; ROUND_SAMPLES],
    round_n: u32,
    /// The most in flight at any sample of the round.
    round_peak: u32,
    /// The node's largest scheduling lag during the round.
    round_lag: u64,
    /// When a round last found the origin above its baseline (or it signalled
    /// overload).
    last_slow_ns: Option<u64>,
    /// When a round last found it at its baseline.
    last_baseline_ns: Option<u64>,
    /// The last eight busy rounds, newest in the lowest bit: 1 slow, 0 at baseline.
    slow_rounds: u8,
    /// Since when the origin has been slow ([`SLOW_ROUNDS`] of the last eight).
    slow_since_ns: Option<u64>,
}

/// How long the windowed minimum latency is kept before it is re-measured from live
/// traffic (no starvation of requests needed to re-measure it).
const MIN_RTT_WINDOW_NS: u64 = 5_000_000_000;
/// The shortest round, so a very fast origin does not update the limit per sample.
const MIN_ROUND_NS: u64 = 2_000_000;
/// How far each round moves the limit down toward its target: a latency burst of a
/// few rounds (a busy moment at the origin or here) moves it little, a lasting change
/// fully within about ten rounds.
const SMOOTHING: f64 = 0.25;
/// How many of the last eight busy rounds must have been slow for the origin to be
/// slow (and a standing queue its overload).
pub const SLOW_ROUNDS: u32 = 3;
/// How many of the node's scheduling lags a round's median may exceed the baseline
/// by before it counts as slow (on top of the one already taken off each sample)...
const LAG_DOUBT: f64 = 4.0;
/// ...counting only the lag above this: a node that keeps up has a lag of tens to
/// hundreds of microseconds, which says nothing, and would only loosen the limit.
const LAG_DOUBT_FLOOR_NS: f64 = 1_000_000.0;
/// How many of a round's latencies are kept for its median (the latest ones).
const ROUND_SAMPLES: usize = 64;

impl Gradient {
    /// A controller starting at `initial`, bounded by `[min, max]`, with the
    /// configuration's default shape (`[limiter] tolerance`, `headroom`,
    /// `latency_slack`).
    pub fn new(initial: u32, min: u32, max: u32) -> Gradient {
        let d = edge_config::Limiter::default();
        Gradient::with_shape(
            initial,
            min,
            max,
            *d.tolerance.get_ref(),
            *d.headroom.get_ref(),
        )
        .with_slack(d.latency_slack.get_ref().duration())
    }

    /// A controller with its latency `tolerance` and probing `headroom` and no slack:
    /// it settles where `tolerance × min latency / latency + headroom = 1`, i.e. where
    /// the origin is `tolerance / (1 − headroom)` times slower than unloaded (1.105
    /// with the defaults: just past an origin's knee, not deep into its queue).
    pub fn with_shape(initial: u32, min: u32, max: u32, tolerance: f64, headroom: f64) -> Gradient {
        let min = f64::from(min.max(1));
        let max = f64::from(max.max(1)).max(min);
        let limit = f64::from(initial).clamp(min, max);
        Gradient {
            tolerance: tolerance.clamp(1.0, 2.0),
            headroom: headroom.clamp(0.0, 0.5),
            slack_ns: 0.0,
            limit,
            min,
            max,
            short_rtt: 0.0,
            samples: 0,
            window_min_ns: u64::MAX,
            window_start_ns: 0,
            last_min_ns: 0,
            // Only limits a round found at baseline count, not the configured start.
            window_good: min,
            last_good: min,
            good_streak: false,
            round_start_ns: 0,
            round: [0; ROUND_SAMPLES],
            round_n: 0,
            round_peak: 0,
            round_lag: 0,
            last_slow_ns: None,
            last_baseline_ns: None,
            slow_rounds: 0,
            slow_since_ns: None,
        }
    }

    /// Latency above `tolerance × min latency` that still counts as the baseline.
    pub fn with_slack(mut self, slack: Duration) -> Gradient {
        self.slack_ns = slack.as_nanos() as f64;
        self
    }

    /// The current limit.
    pub fn limit(&self) -> u32 {
        self.limit.round() as u32
    }

    /// Smoothed recent latency, ns.
    pub fn short_rtt_ns(&self) -> u64 {
        self.short_rtt as u64
    }

    /// Minimum latency of the current or last window, ns.
    pub fn min_rtt_ns(&self) -> u64 {
        match (self.window_min_ns, self.last_min_ns) {
            (u64::MAX, last) => last,
            (w, 0) => w,
            (w, last) => w.min(last),
        }
    }

    /// Whether the origin is slower than its baseline: at least [`SLOW_ROUNDS`] of
    /// the last eight busy rounds found it so (or it signalled overload), the latest
    /// within `within_ns` of `now_ns`. One slow round (connections being set up,
    /// a moment this node stalled) is not enough.
    pub fn slow_within(&self, now_ns: u64, within_ns: u64) -> bool {
        self.slow_rounds.count_ones() >= SLOW_ROUNDS
            && self
                .last_slow_ns
                .is_some_and(|t| now_ns.saturating_sub(t) <= within_ns)
    }

    /// How long the origin has been slow without a break (see [`Gradient::slow_within`]).
    pub fn slow_for_ns(&self, now_ns: u64) -> u64 {
        self.slow_since_ns.map_or(0, |t| now_ns.saturating_sub(t))
    }

    /// Note a busy round's verdict.
    fn note_round(&mut self, now_ns: u64, slow: bool) {
        self.slow_rounds = (self.slow_rounds << 1) | u8::from(slow);
        if self.slow_rounds.count_ones() >= SLOW_ROUNDS {
            self.slow_since_ns.get_or_insert(now_ns);
        } else {
            self.slow_since_ns = None;
        }
    }

    /// Feed one completed request: when it finished, how long it took at the origin,
    /// how many were in flight, and whether the origin signalled overload.
    pub fn sample(&mut self, now_ns: u64, rtt_ns: u64, in_flight: u32, overload: bool) {
        self.sample_with_lag(now_ns, rtt_ns, 0, in_flight, overload);
    }

    /// [`Gradient::sample`], with `lag_ns` of the latency known to be this node's own
    /// (its runtime was that late running ready tasks, so it read the answer that much
    /// after it came): the minimum latency is measured from the raw latency, the
    /// round's median from the latency less the lag (never below the minimum).
    pub fn sample_with_lag(
        &mut self,
        now_ns: u64,
        rtt_ns: u64,
        lag_ns: u64,
        in_flight: u32,
        overload: bool,
    ) {
        self.roll_window(now_ns, rtt_ns);
        if overload {
            // AIMD backstop: the origin says it is overloaded.
            self.limit = (self.limit * 0.9).clamp(self.min, self.max);
            self.last_slow_ns = Some(now_ns);
            self.note_round(now_ns, true);
            return;
        }
        let Some(round) = self.add_to_round(now_ns, rtt_ns, lag_ns, in_flight) else {
            return;
        };
        // The slack counts in full for an origin much faster than it (noise of a
        // fraction of a millisecond is not overload) and fades for slower ones, whose
        // knee the tolerance alone places: slack² / (slack + min latency).
        let min = self.min_rtt_ns() as f64;
        let slack = self.slack_ns * self.slack_ns / (self.slack_ns + min).max(1.0);
        let baseline = min * self.tolerance + slack;
        // While this node runs late, latency within a few of its lags of the baseline
        // cannot be told from its own delay (more than one hand-over, the origin
        // sharing its CPU): it is not taken as overload. An origin that truly slows
        // slows by far more; and 503s, 429s and timeouts still cut the limit.
        let doubt = LAG_DOUBT * (round.lag - LAG_DOUBT_FLOOR_NS).max(0.0);
        if round.median <= baseline + doubt {
            self.at_baseline(now_ns, round.reached);
        } else {
            self.slow(
                now_ns,
                (baseline + doubt) / round.median.max(1.0),
                round.reached,
            );
        }
    }

    /// The minimum latency's sliding window: a new window every
    /// `MIN_RTT_WINDOW_NS`, the last one's minimum and good mark kept.
    fn roll_window(&mut self, now_ns: u64, rtt_ns: u64) {
        if now_ns.saturating_sub(self.window_start_ns) > MIN_RTT_WINDOW_NS {
            if self.window_min_ns != u64::MAX {
                self.last_min_ns = self.window_min_ns;
            }
            self.window_min_ns = u64::MAX;
            self.window_start_ns = now_ns;
            self.last_good = self.window_good;
            self.window_good = self.min;
        }
        self.window_min_ns = self.window_min_ns.min(rtt_ns);
    }

    /// Add a sample (less the node's lag) to the round; the round's summary once it
    /// has lasted a minimum latency and was busy enough to say something.
    fn add_to_round(
        &mut self,
        now_ns: u64,
        rtt_ns: u64,
        lag_ns: u64,
        in_flight: u32,
    ) -> Option<Round> {
        let min_rtt = self.min_rtt_ns();
        let rtt_ns = rtt_ns.saturating_sub(lag_ns).max(min_rtt.min(rtt_ns));
        let rtt = rtt_ns as f64;
        self.samples += 1;
        if self.samples == 1 {
            self.short_rtt = rtt;
        } else {
            self.short_rtt += (rtt - self.short_rtt) * 0.1;
        }
        if self.round_n == 0 {
            self.round_start_ns = now_ns;
        }
        self.round[self.round_n as usize % ROUND_SAMPLES] = rtt_ns;
        self.round_n += 1;
        self.round_peak = self.round_peak.max(in_flight);
        self.round_lag = self.round_lag.max(lag_ns);
        if now_ns.saturating_sub(self.round_start_ns) < min_rtt.max(MIN_ROUND_NS) {
            return None;
        }
        // The round's median, not its mean: a few stalled requests (a pause at the
        // origin, a busy moment here) do not cut the limit; a slower origin slows
        // most of them, and moves the median.
        let kept = &mut self.round[..(self.round_n as usize).min(ROUND_SAMPLES)];
        let mid = kept.len() / 2;
        let median = *kept.select_nth_unstable(mid).1 as f64;
        // Application-limited rounds (little ever in flight) say nothing about
        // capacity. And the limit only grows when it was reached: a limit that light
        // traffic never tests would otherwise drift up, and a spike would then
        // overshoot the origin's knee before the gradient brings it back.
        let peak = f64::from(self.round_peak) + 1.0;
        let (busy, reached) = (peak >= self.limit / 2.0, peak >= self.limit);
        self.round_peak = 0;
        self.round_n = 0;
        let lag = std::mem::take(&mut self.round_lag) as f64;
        busy.then_some(Round {
            median,
            reached,
            lag,
        })
    }

    /// A round at baseline: the origin takes this much without slowing. A limit
    /// counts as good after two such rounds in a row (the answers of one round may
    /// have started before it was reached).
    fn at_baseline(&mut self, now_ns: u64, reached: bool) {
        self.last_baseline_ns = Some(now_ns);
        self.note_round(now_ns, false);
        if !reached {
            self.good_streak = false;
            return;
        }
        if std::mem::replace(&mut self.good_streak, true) {
            self.window_good = self.window_good.max(self.limit);
        }
        let good = self.window_good.max(self.last_good);
        self.limit = if self.limit < good {
            (self.limit * 2.0).min(good)
        } else {
            self.limit * (1.0 + self.headroom)
        }
        .clamp(self.min, self.max);
    }

    /// A round slower than the baseline: the limit moves toward `limit × gradient +
    /// headroom` (`ratio` is baseline / median).
    fn slow(&mut self, now_ns: u64, ratio: f64, reached: bool) {
        self.good_streak = false;
        let first_slow = self
            .last_slow_ns
            .is_none_or(|t| self.last_baseline_ns.is_some_and(|b| b > t));
        self.last_slow_ns = Some(now_ns);
        self.note_round(now_ns, true);
        let gradient = ratio.clamp(0.5, 1.0);
        // The first slow round at or above the good mark: the mark was wrong (the
        // origin's capacity fell, or it was learnt from a moment that did not load
        // it); recovery now goes no further than what this round suggests.
        if first_slow && self.limit >= self.window_good.max(self.last_good) {
            let mark = (self.limit * gradient).max(self.min);
            self.window_good = self.window_good.min(mark);
            self.last_good = self.last_good.min(mark);
        }
        // Headroom to probe for more capacity: a share of the limit (√limit, as in
        // Envoy and Gradient2, overshoots small limits: at 4 it is half again).
        let target = self.limit * gradient + self.limit * self.headroom;
        if target > self.limit && !reached {
            return;
        }
        self.limit = (self.limit + (target - self.limit) * SMOOTHING).clamp(self.min, self.max);
    }
}

/// A finished, busy round: its median latency (ns), whether the limit was
/// reached, the node's largest lag in it (ns).
struct Round {
    median: f64,
    reached: bool,
    lag: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gradient_falls_when_latency_rises_and_is_deterministic() {
        let run = || {
            let mut g = Gradient::new(100, 4, 1000);
            let mut t = 0;
            for _ in 0..2000 {
                t += 1_000_000;
                g.sample(t, 10_000_000, 100, false);
            }
            let steady = g.limit();
            for _ in 0..200 {
                t += 1_000_000;
                g.sample(t, 50_000_000, 1000, false);
            }
            (steady, g.limit())
        };
        let (steady, loaded) = run();
        assert!(loaded < steady, "limit should fall: {steady} -> {loaded}");
        assert_eq!(run(), (steady, loaded), "same samples, same limits");
    }

    #[test]
    fn light_traffic_does_not_raise_an_untested_limit() {
        // Latency at its minimum, but only 4 of 10 slots ever used: the limit was never
        // reached, so the headroom does not push it up.
        let mut g = Gradient::new(10, 2, 100);
        let mut t = 0;
        for _ in 0..5000 {
            t += 1_000_000;
            g.sample(t, 20_000_000, 4, false);
        }
        assert_eq!(g.limit(), 10);
        // Used to the full, it probes upward.
        for _ in 0..5000 {
            t += 1_000_000;
            g.sample(t, 20_000_000, 10, false);
        }
        assert!(g.limit() > 10, "a reached limit probes up: {}", g.limit());
    }

    #[test]
    fn a_few_stalled_requests_per_round_do_not_cut_the_limit() {
        // Each 20 ms round: 17 answers at the minimum and 3 stalled at 5×. The mean
        // is 1.6× the minimum (a cut); the median is the minimum (no cut).
        let mut g = Gradient::new(20, 2, 20);
        let mut t = 0;
        for i in 0..4000u64 {
            t += 1_000_000;
            let rtt = if i % 20 < 3 { 100_000_000 } else { 20_000_000 };
            g.sample(t, rtt, 20, false);
        }
        assert_eq!(g.limit(), 20);
        // Most answers slow: the median moves and the limit falls.
        for i in 0..400u64 {
            t += 1_000_000;
            let rtt = if i % 20 < 15 { 40_000_000 } else { 20_000_000 };
            g.sample(t, rtt, 20, false);
        }
        assert!(
            g.limit() < 15,
            "a slower origin cuts the limit: {}",
            g.limit()
        );
    }

    #[test]
    fn overload_backs_off() {
        let mut g = Gradient::new(100, 4, 1000);
        g.sample(1, 1_000_000, 100, true);
        assert_eq!(g.limit(), 90);
    }

    #[test]
    fn a_limit_cut_by_a_spike_recovers_within_a_few_rounds() {
        // A 10 ms origin, limit reached at 64; a spike of slow rounds cuts it; once
        // latency is back at its baseline it recovers quickly.
        let mut g = Gradient::new(64, 4, 1024);
        let mut t = 0;
        let mut run = |g: &mut Gradient, rounds: u64, rtt: u64| {
            for _ in 0..rounds * 10 {
                t += 1_000_000;
                g.sample(t, rtt, g.limit(), false);
            }
        };
        run(&mut g, 20, 10_000_000);
        let before = g.limit();
        assert!(before >= 64, "{before}");
        run(&mut g, 10, 40_000_000);
        let cut = g.limit();
        assert!(cut < before / 2, "a slow spike cuts: {before} -> {cut}");
        // Doubling back first (to half the limit the spike found slow, the mark it
        // left), then probing up by the headroom: back where it was within 20 rounds
        // (200 ms here), where the headroom alone would take 25.
        run(&mut g, 2, 10_000_000);
        assert!(g.limit() >= cut * 3 / 2, "{cut} -> {}", g.limit());
        run(&mut g, 18, 10_000_000);
        assert!(
            g.limit() >= before,
            "{cut} -> {} (before {before})",
            g.limit()
        );
    }

    #[test]
    fn the_nodes_own_lag_is_not_taken_for_origin_latency() {
        // Answers that took 3 ms, of which 2.5 ms was this node's runtime running
        // late: the limit holds. The same latency without the lag (the origin's
        // own) cuts it.
        let run = |lag: u64| {
            let mut g = Gradient::new(64, 4, 1024).with_slack(Duration::ZERO);
            let mut t = 0;
            for i in 0..4000u64 {
                t += 100_000;
                let (rtt, lag) = if i < 100 {
                    (500_000, 0)
                } else {
                    (3_000_000, lag)
                };
                g.sample_with_lag(t, rtt, lag, 64, false);
            }
            g.limit()
        };
        assert!(run(2_500_000) >= 64, "{}", run(2_500_000));
        assert!(run(0) < 32, "{}", run(0));
    }
}
