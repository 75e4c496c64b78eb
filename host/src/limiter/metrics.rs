//! The limiters' metric families: admissions, queueing and shedding per origin and
//! class, the limit each origin is held to, the fairness tables.

use super::{CLASS_NAMES, ClassCounters, LoadSnapshot};
use crate::metrics::{ByName, Counter, Family, Gauge, Registry, label, labels2};

type Labels = Vec<(&'static str, String)>;

/// The limiters' families, registered once per process.
#[derive(Clone, Default)]
pub struct LimiterFamilies {
    admitted: ByName,
    queued: ByName,
    shed: ByName,
    limit: Family<Labels, Gauge>,
    in_flight: Family<Labels, Gauge>,
    waiting: Family<Labels, Gauge>,
    /// Requests demoted to bulk by per-client fairness.
    pub client_demoted: Counter,
    /// Requests capped at normal by the per-address allowance of higher classes.
    pub priority_capped: Counter,
    /// Clients with a fairness bucket.
    pub clients_tracked: Gauge,
}

impl LimiterFamilies {
    /// Register the families in `reg`.
    pub fn register(reg: &mut Registry) -> LimiterFamilies {
        let f = LimiterFamilies::default();
        reg.register(
            "outpost_admitted",
            "Requests admitted per origin and class (by the origin it goes to, after the request guests and the cache)",
            f.admitted.clone(),
        );
        reg.register(
            "outpost_queued",
            "Requests admitted after queueing per origin and class",
            f.queued.clone(),
        );
        reg.register(
            "outpost_shed",
            "Requests shed per origin and class",
            f.shed.clone(),
        );
        reg.register(
            "outpost_limiter_limit",
            "Current concurrency limit per origin",
            f.limit.clone(),
        );
        reg.register(
            "outpost_limiter_in_flight",
            "Requests in flight per origin",
            f.in_flight.clone(),
        );
        reg.register(
            "outpost_limiter_queued",
            "Requests waiting for admission per origin",
            f.waiting.clone(),
        );
        reg.register(
            "outpost_client_demoted",
            "Requests demoted to bulk because their client exceeded its bucket",
            f.client_demoted.clone(),
        );
        reg.register(
            "outpost_priority_capped",
            "Requests capped at normal because their address used its allowance of higher classes",
            f.priority_capped.clone(),
        );
        reg.register(
            "outpost_clients_tracked",
            "Clients with a fairness bucket",
            f.clients_tracked.clone(),
        );
        f
    }

    /// The class counters of `origin`'s limiter (the same for the same name across
    /// reloads).
    pub fn counters(&self, origin: &str) -> ClassCounters {
        let per_class = |fam: &ByName| {
            CLASS_NAMES.map(|c| fam.get_or_create_owned(&labels2("origin", origin, "class", c)))
        };
        ClassCounters {
            admitted: per_class(&self.admitted),
            queued: per_class(&self.queued),
            shed: per_class(&self.shed),
        }
    }

    /// Set the gauges from the limiters serving now (read at each scrape, so an
    /// origin a reload removed no longer shows).
    pub fn set_gauges<'a>(&self, limiters: impl Iterator<Item = (&'a str, LoadSnapshot)>) {
        self.limit.clear();
        self.in_flight.clear();
        self.waiting.clear();
        for (origin, s) in limiters {
            let l = label("origin", origin);
            self.limit.get_or_create(&l).set(i64::from(s.limit));
            self.in_flight.get_or_create(&l).set(i64::from(s.in_flight));
            self.waiting.get_or_create(&l).set(i64::from(s.queued));
        }
    }
}
