//! The admission limiter: an adaptive concurrency limit per origin with a bounded
//! queue ordered by priority class; the lowest class is shed first.
//!
//! The controller ([`Gradient`]) is a pure function of (time, samples), so tests and
//! replay drive it with a virtual clock and get the same limits every run.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::clock::Clock;

/// Number of priority classes (see `priority-class` in the WIT).
pub const CLASSES: usize = 5;
/// Class names, highest first, as used in metrics.
pub const CLASS_NAMES: [&str; CLASSES] = ["critical", "high", "normal", "low", "bulk"];

/// Queue-time budget of each class while the origin is not overloaded, as a multiple
/// of `queue_timeout`: a burst is served, whatever its class.
const CLASS_BUDGET: [f64; CLASSES] = [5.0, 2.0, 1.0, 1.0, 1.0];
/// The same once the origin is overloaded, of `queue_timeout_congested`: the top class
/// keeps its patience (100 ms at the default 10 ms), the others get little more than
/// the origin's own latency.
const CONGESTED_CLASS_BUDGET: [f64; CLASSES] = [10.0, 2.0, 1.0, 0.5, 0.25];
/// The least a class may wait once the origin is overloaded, in the origin's minimum
/// latencies.
const CONGESTED_FLOOR: [f64; CLASSES] = [5.0, 1.0, 1.0, 1.0, 1.0];
/// How recently a round must have found the origin slower than its baseline for a
/// standing queue to be the origin's overload (rather than a burst the origin
/// absorbs, or this node's own CPU).
const SLOW_WITHIN_NS: u64 = 1_000_000_000;

/// The limiter's parameters (from `[limiter]` in the config).
#[derive(Debug, Clone)]
pub struct LimiterConfig {
    /// Off: every request is admitted at once.
    pub enabled: bool,
    /// Starting limit.
    pub initial_limit: u32,
    /// Floor.
    pub min_limit: u32,
    /// Ceiling.
    pub max_limit: u32,
    /// Waiting room per origin.
    pub queue_size: usize,
    /// Queue wait budget while the origin is not overloaded.
    pub queue_timeout: Duration,
    /// Queue wait budget once it is.
    pub queue_timeout_congested: Duration,
    /// CoDel's target sojourn.
    pub queue_target: Duration,
    /// CoDel's interval.
    pub queue_interval: Duration,
    /// Latency above the minimum that is never taken as overload.
    pub latency_slack: Duration,
    /// Latency tolerance of the gradient (see [`Gradient`]).
    pub tolerance: f64,
    /// Share of the limit added per round to probe for capacity.
    pub headroom: f64,
}

impl From<&edge_config::Limiter> for LimiterConfig {
    fn from(l: &edge_config::Limiter) -> Self {
        LimiterConfig {
            enabled: l.enabled,
            initial_limit: *l.initial_limit.get_ref(),
            min_limit: *l.min_limit.get_ref(),
            max_limit: *l.max_limit.get_ref(),
            queue_size: *l.queue_size.get_ref(),
            queue_timeout: l.queue_timeout.get_ref().duration(),
            queue_timeout_congested: l.queue_timeout_congested.get_ref().duration(),
            queue_target: l.queue_target.get_ref().duration(),
            queue_interval: l.queue_interval.get_ref().duration(),
            latency_slack: l.latency_slack.get_ref().duration(),
            tolerance: *l.tolerance.get_ref(),
            headroom: *l.headroom.get_ref(),
        }
    }
}

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
        if overload {
            // AIMD backstop: the origin says it is overloaded.
            self.limit = (self.limit * 0.9).clamp(self.min, self.max);
            self.last_slow_ns = Some(now_ns);
            self.note_round(now_ns, true);
            return;
        }
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
            return;
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
        let round_lag = std::mem::take(&mut self.round_lag) as f64;
        if !busy {
            return;
        }
        // The slack counts in full for an origin much faster than it (noise of a
        // fraction of a millisecond is not overload) and fades for slower ones, whose
        // knee the tolerance alone places: slack² / (slack + min latency).
        let min = min_rtt as f64;
        let slack = self.slack_ns * self.slack_ns / (self.slack_ns + min).max(1.0);
        let baseline = min * self.tolerance + slack;
        // While this node runs late, latency within a few of its lags of the baseline
        // cannot be told from its own delay (more than one hand-over, the origin
        // sharing its CPU): it is not taken as overload. An origin that truly slows
        // slows by far more; and 503s, 429s and timeouts still cut the limit.
        let doubt = LAG_DOUBT * (round_lag - LAG_DOUBT_FLOOR_NS).max(0.0);
        if median <= baseline + doubt {
            self.last_baseline_ns = Some(now_ns);
            self.note_round(now_ns, false);
            // At baseline: the origin takes this much without slowing. A limit counts
            // as good after two such rounds in a row (the answers of one round may
            // have started before it was reached).
            if reached {
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
            } else {
                self.good_streak = false;
            }
            return;
        }
        self.good_streak = false;
        let first_slow = self
            .last_slow_ns
            .is_none_or(|t| self.last_baseline_ns.is_some_and(|b| b > t));
        self.last_slow_ns = Some(now_ns);
        self.note_round(now_ns, true);
        let gradient = ((baseline + doubt) / median.max(1.0)).clamp(0.5, 1.0);
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

/// Exponentially decaying counts of admitted and shed requests per class.
#[derive(Debug, Clone, Default)]
struct ShedRate {
    admitted: [f64; CLASSES],
    shed: [f64; CLASSES],
    last_ns: u64,
}

const RATE_TAU_NS: f64 = 1e9;

impl ShedRate {
    fn record(&mut self, now_ns: u64, class: usize, shed: bool) {
        let dt = now_ns.saturating_sub(self.last_ns) as f64;
        self.last_ns = now_ns;
        let decay = (-dt / RATE_TAU_NS).exp();
        for v in self.admitted.iter_mut().chain(self.shed.iter_mut()) {
            *v *= decay;
        }
        if shed {
            self.shed[class] += 1.0;
        } else {
            self.admitted[class] += 1.0;
        }
    }

    fn rates(&self) -> (f32, [f32; CLASSES]) {
        let mut by = [0f32; CLASSES];
        let (mut a, mut s) = (0.0, 0.0);
        for (rate, (adm, shed)) in by.iter_mut().zip(self.admitted.iter().zip(&self.shed)) {
            let t = adm + shed;
            *rate = if t > 0.0 { (shed / t) as f32 } else { 0.0 };
            a += adm;
            s += shed;
        }
        let total = a + s;
        (if total > 0.0 { (s / total) as f32 } else { 0.0 }, by)
    }
}

struct Waiter {
    cost: u32,
    arrived_ns: u64,
    tx: oneshot::Sender<Result<(), &'static str>>,
}

struct State {
    gradient: Gradient,
    in_flight: u32,
    /// Keyed by (class, arrival): the first key is the next to admit, the last the
    /// first to evict.
    queue: BTreeMap<(usize, u64), Waiter>,
    seq: u64,
    /// CoDel: since when every admission from the queue found its oldest waiter
    /// older than the target (None: the last one did not, or the queue emptied).
    first_above_ns: Option<u64>,
    queue_delay_ns: f64,
    rates: ShedRate,
}

impl State {
    /// The oldest waiter's arrival (the first of each class is its oldest).
    fn oldest_ns(&self) -> Option<u64> {
        (0..CLASSES)
            .filter_map(|c| self.queue.range((c, 0)..(c + 1, 0)).next())
            .map(|(_, w)| w.arrived_ns)
            .min()
    }

    /// CoDel's rule, with the oldest waiter's age standing for the sojourn (the
    /// queue is not FIFO once it stands): note one admission from the queue.
    fn note_sojourn(&mut self, now_ns: u64, target_ns: u64) {
        match self.oldest_ns() {
            Some(t) if now_ns.saturating_sub(t) >= target_ns => {
                self.first_above_ns.get_or_insert(now_ns);
            }
            _ => self.first_above_ns = None,
        }
    }
}

/// Per-class counters of one origin's limiter.
#[derive(Debug, Default)]
pub struct ClassCounters {
    /// Admitted at once or after queueing.
    pub admitted: [AtomicU64; CLASSES],
    /// Admitted after waiting in the queue.
    pub queued: [AtomicU64; CLASSES],
    /// Shed (queue full, timed out in the queue, or evicted by a higher class).
    pub shed: [AtomicU64; CLASSES],
}

/// The limiter of one origin.
pub struct OriginLimiter {
    /// The origin's name.
    pub origin: Arc<str>,
    config: LimiterConfig,
    clock: Clock,
    lag: crate::clock::Lag,
    state: Mutex<State>,
    /// Counters for metrics.
    pub counters: ClassCounters,
}

/// What the load signals import reports.
#[derive(Debug, Clone, Default)]
pub struct LoadSnapshot {
    /// In flight at the origin.
    pub in_flight: u32,
    /// Current limit.
    pub limit: u32,
    /// Waiting.
    pub queued: u32,
    /// Recent queueing delay, µs.
    pub queue_delay_us: u64,
    /// Recent shed fraction.
    pub shed_rate: f32,
    /// Per class.
    pub shed_rate_by_class: [f32; CLASSES],
    /// Smoothed origin latency, µs.
    pub origin_latency_us: u64,
    /// Windowed minimum origin latency, µs.
    pub origin_min_latency_us: u64,
    /// (in flight + queued) / limit.
    pub utilization: f32,
}

/// Where a guest's `load()` reads from: the limiter of the request's origin, if any.
#[derive(Clone, Default)]
pub struct LoadSource(Option<Arc<OriginLimiter>>);

impl LoadSource {
    /// Signals of this origin's limiter.
    pub fn new(l: Arc<OriginLimiter>) -> LoadSource {
        LoadSource(Some(l))
    }

    /// The current signals (all zero without a limiter).
    pub fn signals(&self) -> LoadSnapshot {
        self.0.as_ref().map(|l| l.snapshot()).unwrap_or_default()
    }
}

/// An admission: holds its share of the limit until dropped.
pub struct Permit {
    limiter: Arc<OriginLimiter>,
    cost: u32,
    started_ns: u64,
    measured_ns: Option<u64>,
    sampled: bool,
}

impl Permit {
    /// The request is being sent to the origin now: its latency sample starts here,
    /// so guest time before it does not count as origin latency.
    pub fn begin(&mut self) {
        self.started_ns = self.limiter.clock.monotonic_ns();
    }

    /// The origin took `latency_ns` from having the whole request to its first answer
    /// byte, as the connection's socket saw it: the sample is that (less the node's
    /// scheduling lag for the one hop from the socket's readiness to its reading),
    /// without connection set-up or the time the answer waited here to be handed on.
    pub fn origin_took(&mut self, latency_ns: u64) {
        if !self.limiter.clock.is_virtual() {
            self.measured_ns = Some(latency_ns);
        }
    }

    /// Leave `d` (time the client, not the origin, took: its upload) out of the
    /// latency sample.
    pub fn exclude(&mut self, d: std::time::Duration) {
        self.started_ns = self.started_ns.saturating_add(d.as_nanos() as u64);
    }

    /// The origin answered (or failed): feed the controller its latency, once.
    pub fn record(&mut self, overload: bool) {
        if self.sampled {
            return;
        }
        self.sampled = true;
        let now = self.limiter.clock.monotonic_ns();
        let rtt = self
            .measured_ns
            .unwrap_or_else(|| now.saturating_sub(self.started_ns));
        self.limiter.sample(now, rtt, overload);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limiter.release(self.cost);
    }
}

/// Why a request was shed.
pub type ShedReason = &'static str;

impl OriginLimiter {
    /// A limiter for `origin`.
    pub fn new(origin: &str, config: LimiterConfig) -> Arc<OriginLimiter> {
        Self::with_clock(origin, config, Clock::default())
    }

    /// A limiter for `origin` reading `clock` (virtual in replays).
    pub fn with_clock(origin: &str, config: LimiterConfig, clock: Clock) -> Arc<OriginLimiter> {
        Self::with_lag(origin, config, clock, crate::clock::Lag::default())
    }

    /// A limiter for `origin` reading `clock`, that leaves the node's runtime `lag`
    /// out of the origin's latency.
    pub fn with_lag(
        origin: &str,
        config: LimiterConfig,
        clock: Clock,
        lag: crate::clock::Lag,
    ) -> Arc<OriginLimiter> {
        Arc::new(OriginLimiter {
            origin: origin.into(),
            clock: clock.clone(),
            lag,
            state: Mutex::new(State {
                gradient: Gradient::with_shape(
                    config.initial_limit,
                    config.min_limit,
                    config.max_limit,
                    config.tolerance,
                    config.headroom,
                )
                .with_slack(config.latency_slack),
                in_flight: 0,
                queue: BTreeMap::new(),
                seq: 0,
                first_above_ns: None,
                queue_delay_ns: 0.0,
                rates: ShedRate::default(),
            }),
            config,
            counters: ClassCounters::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere; the state is still consistent
        // enough to keep admitting.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// CoDel's target: the configured one, or the origin's minimum latency if longer
    /// (a waiter that waits less than one answer of the origin is not standing).
    fn target_ns(&self, st: &State) -> u64 {
        (self.config.queue_target.as_nanos() as u64).max(st.gradient.min_rtt_ns())
    }

    /// CoDel's interval: the configured one, and at least two of the origin's minimum
    /// latencies.
    fn interval_ns(&self, st: &State) -> u64 {
        (self.config.queue_interval.as_nanos() as u64).max(2 * st.gradient.min_rtt_ns())
    }

    /// Whether the origin is overloaded: the queue has stood (its shortest wait above
    /// the target) for an interval, and the origin has lately answered slower than
    /// its baseline. A deep burst that drains is not; nor is a queue that stands
    /// only because this node is short of CPU while the origin answers as fast as
    /// ever (the limit grows instead).
    fn overloaded(&self, st: &State, now_ns: u64) -> bool {
        let interval = self.interval_ns(st);
        st.first_above_ns
            .is_some_and(|t| now_ns.saturating_sub(t) >= interval)
            && st.gradient.slow_within(now_ns, SLOW_WITHIN_NS)
            && st.gradient.slow_for_ns(now_ns) >= interval
    }

    /// A class's wait budget once the origin is overloaded: never shorter than the
    /// origin's own minimum latency (the top class: five of them), since a budget
    /// below the time a slot takes to free sheds waiters of a slow origin that would
    /// have been admitted; not much longer either, below the top class, so an admitted
    /// request waits at most about as long as the origin takes to answer it.
    fn congested_budget(&self, st: &State, class: usize) -> Duration {
        let min_rtt = Duration::from_nanos(st.gradient.min_rtt_ns());
        self.config
            .queue_timeout_congested
            .mul_f64(CONGESTED_CLASS_BUDGET[class])
            .max(min_rtt.mul_f64(CONGESTED_FLOOR[class]))
    }

    /// Admit a request of `class` (0 = critical) and `cost`, waiting in the queue if the
    /// origin is at its limit; `Err` when shed.
    pub async fn acquire(self: &Arc<Self>, class: usize, cost: u32) -> Result<Permit, ShedReason> {
        let class = class.min(CLASSES - 1);
        let cost = cost.max(1);
        let arrived = self.clock.monotonic_ns();
        let permit = |l: &Arc<Self>| Permit {
            limiter: l.clone(),
            cost,
            started_ns: l.clock.monotonic_ns(),
            measured_ns: None,
            sampled: false,
        };
        if !self.config.enabled {
            self.counters.admitted[class].fetch_add(1, Ordering::Relaxed);
            return Ok(permit(self));
        }
        let (rx, key, timeout) = {
            let mut st = self.lock();
            let limit = st.gradient.limit();
            let ahead = st.queue.range(..(class + 1, 0)).next().is_some();
            if !ahead && st.in_flight + cost <= limit {
                st.in_flight += cost;
                st.rates.record(arrived, class, false);
                drop(st);
                self.counters.admitted[class].fetch_add(1, Ordering::Relaxed);
                return Ok(permit(self));
            }
            if st.queue.len() >= self.config.queue_size {
                // Full: evict the lowest, newest waiter if it ranks below this request.
                let victim = st.queue.last_key_value().map(|(k, _)| *k);
                match victim {
                    Some(k) if k.0 > class => {
                        if let Some(w) = st.queue.remove(&k) {
                            let _ = w.tx.send(Err("evicted by a higher class"));
                        }
                    }
                    _ => {
                        st.rates.record(arrived, class, true);
                        drop(st);
                        self.counters.shed[class].fetch_add(1, Ordering::Relaxed);
                        return Err("queue full");
                    }
                }
            }
            let (tx, rx) = oneshot::channel();
            st.seq += 1;
            let key = (class, st.seq);
            st.queue.insert(
                key,
                Waiter {
                    cost,
                    arrived_ns: arrived,
                    tx,
                },
            );
            // A burst gets the long budget (higher classes longer: they are admitted
            // first when a slot frees, so their wait is short unless the origin is
            // truly full); an overloaded origin's queue the short one, so waiting
            // cannot build up. Waiters from before the overload are held to the short
            // budget by `release`.
            let timeout = if self.overloaded(&st, arrived) {
                self.congested_budget(&st, class)
            } else {
                self.config.queue_timeout.mul_f64(CLASS_BUDGET[class])
            };
            (rx, key, timeout)
        };
        let outcome = tokio::time::timeout(timeout, rx).await;
        let now = self.clock.monotonic_ns();
        let result = match outcome {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(reason))) => Err(reason),
            Ok(Err(_)) => Err("limiter dropped"),
            Err(_) => {
                let mut st = self.lock();
                if st.queue.remove(&key).is_some() {
                    // Timed out: this waiter stood above any target.
                    st.first_above_ns.get_or_insert(now);
                    Err("queue timeout")
                } else {
                    // Admitted in the instant the timer fired: keep it.
                    Ok(())
                }
            }
        };
        let mut st = self.lock();
        match result {
            Ok(()) => {
                let waited = now.saturating_sub(arrived) as f64;
                st.queue_delay_ns += (waited - st.queue_delay_ns) * 0.1;
                st.rates.record(now, class, false);
                drop(st);
                self.counters.admitted[class].fetch_add(1, Ordering::Relaxed);
                self.counters.queued[class].fetch_add(1, Ordering::Relaxed);
                Ok(permit(self))
            }
            Err(reason) => {
                st.rates.record(now, class, true);
                if st.queue.is_empty() {
                    st.first_above_ns = None;
                }
                drop(st);
                self.counters.shed[class].fetch_add(1, Ordering::Relaxed);
                Err(reason)
            }
        }
    }

    fn sample(&self, now: u64, rtt: u64, overload: bool) {
        let lag = self.lag.ns();
        let mut st = self.lock();
        let in_flight = st.in_flight;
        st.gradient
            .sample_with_lag(now, rtt, lag, in_flight, overload);
    }

    fn release(&self, cost: u32) {
        let mut guard = self.lock();
        let st = &mut *guard;
        st.in_flight = st.in_flight.saturating_sub(cost);
        let limit = st.gradient.limit();
        let now = self.clock.monotonic_ns();
        let overloaded = self.overloaded(st, now);
        if overloaded {
            // CoDel drops at the head once the queue stands: here every waiter past
            // its class's short budget goes, the lowest class first (the first of a
            // class is its oldest, so this stops at the first young one).
            for class in (0..CLASSES).rev() {
                let budget = self.congested_budget(st, class).as_nanos() as u64;
                while let Some((&k, w)) = st.queue.range((class, 0)..(class + 1, 0)).next() {
                    if now.saturating_sub(w.arrived_ns) <= budget {
                        break;
                    }
                    if let Some(w) = st.queue.remove(&k) {
                        let _ = w.tx.send(Err("queue timeout"));
                    }
                }
            }
        }
        // Adaptive LIFO (as at Meta and in Facebook's Wangle): FIFO within a class
        // while the origin keeps up; once it is overloaded, the newest waiter of the
        // highest class goes first, so what is admitted has barely waited and the
        // stale waiters run out their (short) budget instead of everyone waiting long.
        let target = self.target_ns(st);
        loop {
            let (next, cost) = match st.queue.first_key_value() {
                None => break,
                Some((&k, w)) if !overloaded => (k, w.cost),
                Some((&(class, _), _)) => match st.queue.range(..(class + 1, 0)).next_back() {
                    Some((&k, w)) => (k, w.cost),
                    None => break,
                },
            };
            if st.in_flight + cost > limit {
                break;
            }
            st.note_sojourn(now, target);
            if let Some(w) = st.queue.remove(&next)
                && w.tx.send(Ok(())).is_ok()
            {
                st.in_flight += w.cost;
            }
        }
        if st.queue.is_empty() {
            st.first_above_ns = None;
        }
    }

    /// Current signals.
    pub fn snapshot(&self) -> LoadSnapshot {
        let st = self.lock();
        let (shed_rate, by_class) = st.rates.rates();
        let limit = st.gradient.limit();
        let queued = st.queue.len() as u32;
        LoadSnapshot {
            in_flight: st.in_flight,
            limit,
            queued,
            queue_delay_us: (st.queue_delay_ns / 1000.0) as u64,
            shed_rate,
            shed_rate_by_class: by_class,
            origin_latency_us: st.gradient.short_rtt_ns() / 1000,
            origin_min_latency_us: st.gradient.min_rtt_ns() / 1000,
            utilization: if self.config.enabled {
                (st.in_flight + queued) as f32 / limit.max(1) as f32
            } else {
                0.0
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(limit: u32, queue: usize) -> LimiterConfig {
        LimiterConfig {
            enabled: true,
            initial_limit: limit,
            min_limit: limit,
            max_limit: limit,
            queue_size: queue,
            queue_timeout: Duration::from_millis(500),
            queue_timeout_congested: Duration::from_millis(500),
            queue_target: Duration::from_millis(5),
            queue_interval: Duration::from_millis(100),
            latency_slack: Duration::from_millis(2),
            tolerance: 1.05,
            headroom: 0.05,
        }
    }

    /// Feed `l` one round that finds the origin ten times slower than its minimum
    /// (`slow`) or at it, ending at `t`.
    fn feed_round(l: &OriginLimiter, t: u64, slow: bool) {
        l.sample(t - 20_000_000, 10_000_000, false);
        l.sample(t, if slow { 100_000_000 } else { 10_000_000 }, false);
    }

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

    #[tokio::test]
    async fn higher_class_is_admitted_first_and_lowest_evicted_when_full() {
        let l = OriginLimiter::new("o", cfg(1, 2));
        let held = l.acquire(2, 1).await.expect("first admitted");
        let low = tokio::spawn({
            let l = l.clone();
            async move { l.acquire(4, 1).await.map(|_| ()) }
        });
        tokio::task::yield_now().await;
        let normal = tokio::spawn({
            let l = l.clone();
            async move { l.acquire(2, 1).await.map(drop) }
        });
        tokio::task::yield_now().await;
        // Queue full (bulk, normal); a critical request evicts the bulk one.
        let crit = tokio::spawn({
            let l = l.clone();
            async move { l.acquire(0, 1).await.map(|mut p| p.record(false)) }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(low.await.expect("join"), Err("evicted by a higher class"));
        drop(held);
        assert!(crit.await.expect("join").is_ok());
        assert!(normal.await.expect("join").is_ok());
        assert_eq!(l.counters.shed[4].load(Ordering::Relaxed), 1);
        assert_eq!(l.snapshot().in_flight, 0);
    }

    #[tokio::test]
    async fn a_standing_queue_admits_the_newest_of_the_top_class_first() {
        for (congested, expected) in [
            (false, ["old", "new", "low"]),
            (true, ["new", "old", "low"]),
        ] {
            let clock = Clock::virtual_at(1_000_000_000);
            let l = OriginLimiter::with_clock("o", cfg(1, 8), clock.clone());
            let held = l.acquire(2, 1).await.expect("first admitted");
            let order = Arc::new(std::sync::Mutex::new(Vec::new()));
            let mut waiters = Vec::new();
            for (name, class) in [("old", 2), ("new", 2), ("low", 3)] {
                let (l, order) = (l.clone(), order.clone());
                waiters.push(tokio::spawn(async move {
                    let p = l.acquire(class, 1).await;
                    order.lock().expect("order").push(name);
                    drop(p);
                }));
                tokio::task::yield_now().await;
            }
            if congested {
                // The queue has stood above its target for an interval, and the origin
                // answers slower than its baseline: overloaded.
                for t in [960_000_000, 980_000_000, 1_000_000_000] {
                    feed_round(&l, t, true);
                }
                l.lock().first_above_ns = Some(1_000_000_000);
                clock.set(1_200_000_000);
            }
            drop(held);
            for w in waiters {
                w.await.expect("join");
            }
            // FIFO while it drains, newest first once it stands; classes stay strict.
            assert_eq!(
                *order.lock().expect("order"),
                expected,
                "congested {congested}"
            );
        }
    }

    #[tokio::test]
    async fn queue_timeout_sheds() {
        let mut c = cfg(1, 4);
        c.queue_timeout = Duration::from_millis(10);
        let l = OriginLimiter::new("o", c);
        let _held = l.acquire(0, 1).await.expect("admitted");
        assert_eq!(l.acquire(1, 1).await.err(), Some("queue timeout"));
        assert_eq!(l.snapshot().queued, 0);
    }

    /// Drive a limiter of limit 4 on a virtual clock, 1 ms a step: `arrive(step)`
    /// requests arrive, then the 4 admitted a step ago finish (each answer at the
    /// origin's baseline of 10 ms, or ten times slower with `slow`). Returns (served,
    /// shed, the step the first was shed).
    async fn drive(
        steps: u64,
        slow: bool,
        arrive: impl Fn(u64) -> usize,
    ) -> (usize, usize, Option<u64>) {
        let t0 = 1_000_000_000u64;
        let clock = Clock::virtual_at(t0);
        let mut c = cfg(4, 100_000);
        c.queue_timeout = Duration::from_secs(30);
        c.queue_timeout_congested = Duration::from_millis(10);
        let l = OriginLimiter::with_clock("o", c, clock.clone());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut held: Vec<Permit> = Vec::new();
        let (mut served, mut shed, mut first_shed) = (0, 0, None);
        let settle = || async {
            for _ in 0..20 {
                tokio::task::yield_now().await;
            }
        };
        for step in 0..steps {
            let now = t0 + 20_000_000 + step * 1_000_000;
            clock.set(now);
            // The origin's latency as the finishing requests report it.
            feed_round(&l, now, slow);
            for _ in 0..arrive(step) {
                let (l, tx) = (l.clone(), tx.clone());
                tokio::spawn(async move {
                    let _ = tx.send(l.acquire(2, 1).await);
                });
            }
            settle().await;
            held.clear();
            settle().await;
            while let Ok(r) = rx.try_recv() {
                match r {
                    Ok(p) => {
                        served += 1;
                        held.push(p);
                    }
                    Err(_) => {
                        shed += 1;
                        first_shed.get_or_insert(step);
                    }
                }
            }
        }
        (served, shed, first_shed)
    }

    #[tokio::test]
    async fn a_deep_burst_that_drains_is_served_even_from_a_slow_origin() {
        // 200 at once, 4 admitted per ms: the queue is 50 ms deep, above the target
        // all along, but drains within CoDel's interval: nothing is shed.
        let (served, shed, _) = drive(80, true, |s| if s == 0 { 200 } else { 0 }).await;
        assert_eq!((served, shed), (200, 0));
    }

    #[tokio::test]
    async fn a_standing_queue_at_a_slow_origin_is_shed_after_an_interval() {
        // 8 arrive per ms, 4 are served: the queue stands. After CoDel's interval
        // (100 ms) above the target, waiters past the short budget are shed.
        let (served, shed, first) = drive(300, true, |_| 8).await;
        let first = first.expect("a standing queue at a slow origin is shed");
        assert!((100..=130).contains(&first), "first shed at step {first}");
        assert!(served >= 4 * 290, "the origin is kept busy: {served}");
        assert!(shed > 600, "the excess is shed: {shed}");
    }

    #[tokio::test]
    async fn a_standing_queue_at_an_origin_at_its_baseline_is_not_shed() {
        // The same standing queue, but the origin answers as fast as ever (this node
        // is what is short): nothing is shed (the limit here is pinned at 4; a real
        // one grows).
        let (_, shed, _) = drive(300, false, |_| 8).await;
        assert_eq!(shed, 0);
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

type Buckets = std::collections::HashMap<String, (f64, u64)>;

/// Per-client token buckets in a bounded table: two generations of at most
/// `capacity / 2` clients each; when the current one fills, the previous is
/// forgotten and the current becomes previous (O(1), no scan, bounded memory).
pub struct ClientBuckets {
    rate: f64,
    burst: f64,
    half: usize,
    /// (current, previous) generations: client → (tokens, last refill ns).
    tables: Mutex<(Buckets, Buckets)>,
    /// Requests demoted to `bulk` for exceeding their bucket.
    pub demoted: AtomicU64,
}

impl ClientBuckets {
    /// Buckets refilling at `rate` per second up to `burst`, for at most
    /// `capacity` clients. None when `rate` is 0 (off).
    pub fn new(rate: f64, burst: f64, capacity: usize) -> Option<ClientBuckets> {
        (rate > 0.0).then(|| ClientBuckets {
            rate,
            burst: burst.max(1.0),
            half: (capacity / 2).max(1),
            tables: Mutex::new(Default::default()),
            demoted: AtomicU64::new(0),
        })
    }

    /// Take a token for `client` at `now_ns`; false when its bucket is empty.
    pub fn take(&self, client: &str, now_ns: u64) -> bool {
        let mut guard = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        let (current, previous) = &mut *guard;
        let (mut tokens, last) = match current.get(client) {
            Some(b) => *b,
            None => previous.remove(client).unwrap_or((self.burst, now_ns)),
        };
        let dt = now_ns.saturating_sub(last) as f64 / 1e9;
        tokens = (tokens + dt * self.rate).min(self.burst);
        let ok = tokens >= 1.0;
        if ok {
            tokens -= 1.0;
        } else {
            self.demoted.fetch_add(1, Ordering::Relaxed);
        }
        if !current.contains_key(client) && current.len() >= self.half {
            *previous = std::mem::take(current);
        }
        current.insert(client.to_string(), (tokens, now_ns));
        ok
    }

    /// Clients tracked now.
    pub fn len(&self) -> usize {
        let guard = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        guard.0.len() + guard.1.len()
    }

    /// Whether no client is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Per-client fairness with the address as the identity: every request takes a token
/// from its key's bucket (the admit guest's client key within the address, or the
/// address alone) and from its address's bucket, which is `share` times larger, so a
/// key a client asserts can subdivide its address but never escape it.
pub struct Fairness {
    keys: ClientBuckets,
    addresses: ClientBuckets,
    /// Requests demoted to `bulk` for exceeding a bucket.
    pub demoted: AtomicU64,
}

impl Fairness {
    /// None when `rate` is 0 (off).
    pub fn new(rate: f64, burst: f64, share: f64, capacity: usize) -> Option<Fairness> {
        let share = share.max(1.0);
        Some(Fairness {
            keys: ClientBuckets::new(rate, burst, capacity)?,
            addresses: ClientBuckets::new(rate * share, burst * share, capacity)?,
            demoted: AtomicU64::new(0),
        })
    }

    /// Take a token for `address` (and `key` within it); false when either bucket is
    /// empty.
    pub fn take(&self, address: &str, key: Option<&str>, now_ns: u64) -> bool {
        let per_key = self
            .keys
            .take(&format!("{address} {}", key.unwrap_or("")), now_ns);
        let per_address = self.addresses.take(address, now_ns);
        let ok = per_key && per_address;
        if !ok {
            self.demoted.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// Clients (keys within addresses) tracked now.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no client is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod bucket_tests {
    use super::ClientBuckets;

    #[test]
    fn a_client_past_its_bucket_is_refused_until_it_refills() {
        let b = ClientBuckets::new(10.0, 3.0, 100).expect("on");
        let t = 1_000_000_000;
        assert!(b.take("a", t) && b.take("a", t) && b.take("a", t));
        assert!(!b.take("a", t), "burst of 3 spent");
        assert!(b.take("b", t), "other clients are not affected");
        assert!(
            b.take("a", t + 100_000_000),
            "0.1 s at 10/s refills one token"
        );
        assert!(!b.take("a", t + 100_000_000));
        assert_eq!(b.demoted.load(std::sync::atomic::Ordering::Relaxed), 2);
        assert!(ClientBuckets::new(0.0, 3.0, 100).is_none(), "rate 0 is off");
    }

    #[test]
    fn the_table_stays_bounded() {
        let b = ClientBuckets::new(1.0, 1.0, 1000).expect("on");
        for i in 0..100_000 {
            b.take(&format!("client-{i}"), i);
        }
        assert!(b.len() <= 1000, "{}", b.len());
    }
}
