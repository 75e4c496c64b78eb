//! The admission limiter: an adaptive concurrency limit per origin with a bounded
//! queue ordered by priority class; the lowest class is shed first.
//!
//! The controller ([`Gradient`]) is a pure function of (time, samples), so tests and
//! replay drive it with a virtual clock and get the same limits every run.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::clock::Clock;
use crate::metrics::Counter;

mod fairness;
mod gradient;
mod metrics;

pub use fairness::{ClientBuckets, Fairness};
pub use gradient::{Gradient, SLOW_ROUNDS};
pub use metrics::LimiterFamilies;

/// Number of priority classes, and their names highest first (see
/// `priority-class` in the WIT): what the guests' SDK uses too.
pub use outpost_common::class::{CLASS_NAMES, CLASSES};

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
#[derive(Debug, Clone, Default)]
pub struct ClassCounters {
    /// Admitted at once or after queueing.
    pub admitted: [Counter; CLASSES],
    /// Admitted after waiting in the queue.
    pub queued: [Counter; CLASSES],
    /// Shed (queue full, timed out in the queue, or evicted by a higher class).
    pub shed: [Counter; CLASSES],
}

/// How a request enters the limiter.
enum Entry {
    /// Admitted at once.
    Admitted,
    /// Shed at once.
    Shed(ShedReason),
    /// Waiting in the queue, for at most `timeout`.
    Queued {
        rx: oneshot::Receiver<Result<(), ShedReason>>,
        key: (usize, u64),
        timeout: Duration,
    },
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
        Self::with_lag(
            origin,
            config,
            clock,
            crate::clock::Lag::default(),
            ClassCounters::default(),
        )
    }

    /// A limiter for `origin` reading `clock`, that leaves the node's runtime `lag`
    /// out of the origin's latency.
    pub fn with_lag(
        origin: &str,
        config: LimiterConfig,
        clock: Clock,
        lag: crate::clock::Lag,
        counters: ClassCounters,
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
            counters,
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
            self.counters.admitted[class].inc();
            return Ok(permit(self));
        }
        let (rx, key, timeout) = match self.enter(class, cost, arrived) {
            Entry::Admitted => {
                self.counters.admitted[class].inc();
                return Ok(permit(self));
            }
            Entry::Shed(reason) => {
                self.counters.shed[class].inc();
                return Err(reason);
            }
            Entry::Queued { rx, key, timeout } => (rx, key, timeout),
        };
        let outcome = tokio::time::timeout(timeout, rx).await;
        let now = self.clock.monotonic_ns();
        let result = match outcome {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(reason))) => Err(reason),
            Ok(Err(_)) => Err("limiter dropped"),
            Err(_) => self.timed_out(key, now),
        };
        self.left_queue(class, arrived, now, result)?;
        Ok(permit(self))
    }

    /// Admit at once (nobody of this class or higher waiting, room under the limit),
    /// shed (the queue is full of higher classes), or queue with the class's budget.
    fn enter(&self, class: usize, cost: u32, arrived: u64) -> Entry {
        let mut st = self.lock();
        let limit = st.gradient.limit();
        let ahead = st.queue.range(..(class + 1, 0)).next().is_some();
        if !ahead && st.in_flight + cost <= limit {
            st.in_flight += cost;
            st.rates.record(arrived, class, false);
            return Entry::Admitted;
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
                    return Entry::Shed("queue full");
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
        // first when a slot frees, so their wait is short unless the origin is truly
        // full); an overloaded origin's queue the short one, so waiting cannot build
        // up. Waiters from before the overload are held to the short budget by
        // `release`.
        let timeout = if self.overloaded(&st, arrived) {
            self.congested_budget(&st, class)
        } else {
            self.config.queue_timeout.mul_f64(CLASS_BUDGET[class])
        };
        Entry::Queued { rx, key, timeout }
    }

    /// A waiter's budget ran out: shed, unless it was admitted in the instant the
    /// timer fired.
    fn timed_out(&self, key: (usize, u64), now: u64) -> Result<(), ShedReason> {
        let mut st = self.lock();
        if st.queue.remove(&key).is_some() {
            // Timed out: this waiter stood above any target.
            st.first_above_ns.get_or_insert(now);
            Err("queue timeout")
        } else {
            Ok(())
        }
    }

    /// Account for a waiter that left the queue, admitted or shed.
    fn left_queue(
        &self,
        class: usize,
        arrived: u64,
        now: u64,
        result: Result<(), ShedReason>,
    ) -> Result<(), ShedReason> {
        let mut st = self.lock();
        match result {
            Ok(()) => {
                let waited = now.saturating_sub(arrived) as f64;
                st.queue_delay_ns += (waited - st.queue_delay_ns) * 0.1;
                st.rates.record(now, class, false);
                drop(st);
                self.counters.admitted[class].inc();
                self.counters.queued[class].inc();
                Ok(())
            }
            Err(reason) => {
                st.rates.record(now, class, true);
                if st.queue.is_empty() {
                    st.first_above_ns = None;
                }
                drop(st);
                self.counters.shed[class].inc();
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
        assert_eq!(l.counters.shed[4].get(), 1);
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
}
