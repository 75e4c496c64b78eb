//! Per-client fairness: bounded tables of token buckets per client key and address.

use std::sync::Mutex;

use crate::metrics::Counter;

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
    pub demoted: Counter,
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
            demoted: Counter::default(),
        })
    }

    /// Count demotions in `demoted` (a registered counter) instead of its own.
    pub fn counting(mut self, demoted: Counter) -> ClientBuckets {
        self.demoted = demoted;
        self
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
            self.demoted.inc();
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
    pub demoted: Counter,
}

impl Fairness {
    /// None when `rate` is 0 (off).
    pub fn new(rate: f64, burst: f64, share: f64, capacity: usize) -> Option<Fairness> {
        let share = share.max(1.0);
        Some(Fairness {
            keys: ClientBuckets::new(rate, burst, capacity)?,
            addresses: ClientBuckets::new(rate * share, burst * share, capacity)?,
            demoted: Counter::default(),
        })
    }

    /// Count demotions in `demoted` (a registered counter) instead of its own.
    pub fn counting(mut self, demoted: Counter) -> Fairness {
        self.demoted = demoted;
        self
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
            self.demoted.inc();
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
        assert_eq!(b.demoted.get(), 2);
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
