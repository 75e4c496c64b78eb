//! An origin's addresses: which one a request goes to, which are available.
//!
//! An address is available while its active health check (if any) passes and it
//! is not ejected. Passive ejection follows Envoy's outlier detection: an address
//! that fails `eject_after` requests in a row (connection failures, timeouts,
//! 502/503/504) is out for `eject_for`, unless that would put more than
//! `max_ejected` of the pool out (one address may always be). When no address is
//! available the origin's backup is taken; without one, every address is tried
//! as if available (Envoy's panic mode: better a chance than a certain 502).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::metrics::Counter;

/// One address of an origin (its connections live in the origin's client pool,
/// keyed by address).
pub struct Member {
    /// `host:port`.
    pub authority: String,
    /// `authority` parsed once (None: it does not parse, and every send says so).
    pub uri_authority: Option<http::uri::Authority>,
    /// Requests sent and not yet answered (head).
    outstanding: AtomicUsize,
    /// What the active health check says (true without one).
    healthy: AtomicBool,
    /// Failures in a row (passive).
    failures: AtomicU32,
    /// Out until this instant (ms on the pool's clock; 0: not ejected).
    ejected_until_ms: AtomicU64,
    /// Health check passes or failures in a row, signed: > 0 passes, < 0 failures.
    streak: std::sync::atomic::AtomicI32,
}

impl Member {
    /// A member at `authority`.
    pub fn new(authority: &str) -> Member {
        Member {
            authority: authority.to_string(),
            uri_authority: authority.parse().ok(),
            outstanding: AtomicUsize::new(0),
            healthy: AtomicBool::new(true),
            failures: AtomicU32::new(0),
            ejected_until_ms: AtomicU64::new(0),
            streak: std::sync::atomic::AtomicI32::new(0),
        }
    }
}

/// How a pool picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    /// Fewest requests in flight.
    LeastOutstanding,
    /// Rendezvous hash of the request's path and query.
    Hash,
}

/// Passive ejection settings.
#[derive(Debug, Clone, Copy)]
pub struct Ejection {
    /// Failures in a row that eject (0: never).
    pub after: u32,
    /// For how long.
    pub duration: Duration,
    /// The largest share of the pool out at once.
    pub max_share: f64,
}

/// An origin's addresses.
pub struct Pool {
    /// The addresses, in configured order.
    pub members: Vec<Member>,
    balance: Balance,
    ejection: Ejection,
    /// Start of the pool's clock.
    born: std::time::Instant,
    /// Rotates the start of a least-outstanding scan, so ties spread.
    next: AtomicUsize,
    ejections: Counter,
}

/// A member taken for one request: counted outstanding until dropped.
pub struct Taken<'a> {
    /// Its index in the pool.
    pub index: usize,
    /// The member.
    pub member: &'a Member,
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        self.member.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What became of one request to a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered (and not with a gateway error).
    Answered,
    /// Could not connect, timed out, or answered 502/503/504.
    Failed,
}

impl Pool {
    /// A pool of `members`.
    pub fn new(
        members: Vec<Member>,
        balance: Balance,
        ejection: Ejection,
        ejections: Counter,
    ) -> Pool {
        Pool {
            members,
            balance,
            ejection,
            born: std::time::Instant::now(),
            next: AtomicUsize::new(0),
            ejections,
        }
    }

    fn now_ms(&self) -> u64 {
        self.born.elapsed().as_millis() as u64 + 1
    }

    /// Whether member `m` may take requests now.
    pub fn available(&self, m: &Member) -> bool {
        m.healthy.load(Ordering::Relaxed)
            && m.ejected_until_ms.load(Ordering::Relaxed) <= self.now_ms()
    }

    /// Whether picks hash a key (else the key is not read).
    pub fn hashes(&self) -> bool {
        self.balance == Balance::Hash
    }

    /// Whether some member may take requests.
    pub fn any_available(&self) -> bool {
        self.members.iter().any(|m| self.available(m))
    }

    /// The member for a request with `key` (its path and query), skipping
    /// `except`; among the available ones, or (none available, `panic`) among all.
    pub fn pick(&self, key: &[u8], except: Option<usize>, panic: bool) -> Option<Taken<'_>> {
        let n = self.members.len();
        let ok = |i: usize| Some(i) != except && (panic || self.available(&self.members[i]));
        let index = match self.balance {
            Balance::LeastOutstanding => {
                let start = self.next.fetch_add(1, Ordering::Relaxed);
                (0..n)
                    .map(|k| (start + k) % n)
                    .filter(|&i| ok(i))
                    .min_by_key(|&i| self.members[i].outstanding.load(Ordering::Relaxed))?
            }
            Balance::Hash => (0..n)
                .filter(|&i| ok(i))
                .max_by_key(|&i| rendezvous(key, self.members[i].authority.as_bytes()))?,
        };
        let member = &self.members[index];
        member.outstanding.fetch_add(1, Ordering::Relaxed);
        Some(Taken { index, member })
    }

    /// Learn from one request's outcome at member `i`.
    pub fn record(&self, i: usize, outcome: Outcome) {
        let m = &self.members[i];
        if outcome == Outcome::Answered {
            m.failures.store(0, Ordering::Relaxed);
            return;
        }
        let failures = m.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if self.ejection.after == 0 || failures < self.ejection.after {
            return;
        }
        let now = self.now_ms();
        let out = self
            .members
            .iter()
            .filter(|o| o.ejected_until_ms.load(Ordering::Relaxed) > now)
            .count();
        let cap = ((self.members.len() as f64 * self.ejection.max_share).floor() as usize).max(1);
        if out >= cap || m.ejected_until_ms.load(Ordering::Relaxed) > now {
            return;
        }
        m.failures.store(0, Ordering::Relaxed);
        m.ejected_until_ms.store(
            now + self.ejection.duration.as_millis() as u64,
            Ordering::Relaxed,
        );
        self.ejections.inc();
        tracing::warn!(
            address = %m.authority,
            "origin address ejected for {:?} after {failures} failures in a row",
            self.ejection.duration
        );
    }

    /// Learn from one active health check of member `i`; `healthy` and
    /// `unhealthy` are the streaks that flip it.
    pub fn checked(&self, i: usize, passed: bool, healthy: u32, unhealthy: u32) {
        let m = &self.members[i];
        let streak = m.streak.load(Ordering::Relaxed);
        let streak = match (passed, streak > 0) {
            (true, true) => streak.saturating_add(1),
            (true, false) => 1,
            (false, false) => streak.saturating_sub(1),
            (false, true) => -1,
        };
        m.streak.store(streak, Ordering::Relaxed);
        let was = m.healthy.load(Ordering::Relaxed);
        if was && !passed && streak.unsigned_abs() >= unhealthy {
            m.healthy.store(false, Ordering::Relaxed);
            tracing::warn!(address = %m.authority, "origin address unhealthy: {unhealthy} failed checks");
        } else if !was && passed && streak.unsigned_abs() >= healthy {
            m.healthy.store(true, Ordering::Relaxed);
            // Back in: its passive record starts clean.
            m.ejected_until_ms.store(0, Ordering::Relaxed);
            m.failures.store(0, Ordering::Relaxed);
            tracing::info!(address = %m.authority, "origin address healthy again");
        }
    }

    /// Each member's state, for the admin API.
    pub fn states(&self) -> Vec<serde_json::Value> {
        let now = self.now_ms();
        self.members
            .iter()
            .map(|m| {
                let until = m.ejected_until_ms.load(Ordering::Relaxed);
                serde_json::json!({
                    "address": m.authority,
                    "healthy": m.healthy.load(Ordering::Relaxed),
                    "ejected_for_ms": until.saturating_sub(now),
                    "outstanding": m.outstanding.load(Ordering::Relaxed),
                    "available": self.available(m),
                })
            })
            .collect()
    }
}

/// The rendezvous (highest random weight) score of `member` for `key`: FNV-1a of
/// both, finished with a 64-bit mix.
fn rendezvous(key: &[u8], member: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.iter().chain([0xff].iter()).chain(member) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(n: usize, balance: Balance) -> Pool {
        let members = (0..n)
            .map(|i| Member::new(&format!("10.0.0.{i}:80")))
            .collect();
        Pool::new(
            members,
            balance,
            Ejection {
                after: 3,
                duration: Duration::from_secs(60),
                max_share: 0.5,
            },
            Counter::default(),
        )
    }

    #[test]
    fn least_outstanding_spreads_and_skips_ejected_addresses() {
        let p = pool(3, Balance::LeastOutstanding);
        let taken: Vec<_> = (0..3)
            .map(|_| p.pick(b"/", None, false).expect("one"))
            .collect();
        let mut idx: Vec<_> = taken.iter().map(|t| t.index).collect();
        idx.sort_unstable();
        assert_eq!(idx, [0, 1, 2], "three in flight go to three addresses");
        drop(taken);
        for _ in 0..3 {
            p.record(1, Outcome::Failed);
        }
        assert!(!p.available(&p.members[1]));
        for _ in 0..20 {
            assert_ne!(p.pick(b"/", None, false).expect("one").index, 1);
        }
        // Only one of three may be out at once (half, rounded down, at least one).
        for _ in 0..3 {
            p.record(2, Outcome::Failed);
        }
        assert!(p.available(&p.members[2]));
        // A success resets the run.
        p.record(0, Outcome::Failed);
        p.record(0, Outcome::Answered);
        p.record(0, Outcome::Failed);
        p.record(0, Outcome::Failed);
        assert!(p.available(&p.members[0]));
    }

    #[test]
    fn hashing_keeps_a_key_on_its_address_and_moves_only_the_leavers_share() {
        let p = pool(4, Balance::Hash);
        let keys: Vec<String> = (0..400).map(|i| format!("/seg{i}.ts")).collect();
        let before: Vec<usize> = keys
            .iter()
            .map(|k| p.pick(k.as_bytes(), None, false).expect("one").index)
            .collect();
        for (k, b) in keys.iter().zip(&before) {
            assert_eq!(p.pick(k.as_bytes(), None, false).expect("one").index, *b);
        }
        let mut counts = [0usize; 4];
        for b in &before {
            counts[*b] += 1;
        }
        assert!(counts.iter().all(|&c| c > 50), "spread: {counts:?}");
        p.checked(2, false, 2, 1);
        for (k, b) in keys.iter().zip(&before) {
            let now = p.pick(k.as_bytes(), None, false).expect("one").index;
            if *b == 2 {
                assert_ne!(now, 2);
            } else {
                assert_eq!(now, *b, "{k} stays where it was");
            }
        }
    }

    #[test]
    fn health_checks_flip_after_their_streaks() {
        let p = pool(2, Balance::LeastOutstanding);
        p.checked(0, false, 2, 3);
        p.checked(0, false, 2, 3);
        assert!(p.available(&p.members[0]));
        p.checked(0, false, 2, 3);
        assert!(!p.available(&p.members[0]));
        assert!(p.any_available());
        p.checked(0, true, 2, 3);
        assert!(!p.available(&p.members[0]));
        p.checked(0, true, 2, 3);
        assert!(p.available(&p.members[0]));
        // None available: only a panic pick finds one.
        p.checked(0, false, 1, 1);
        p.checked(1, false, 1, 1);
        assert!(p.pick(b"/", None, false).is_none());
        assert!(p.pick(b"/", None, true).is_some());
    }
}
