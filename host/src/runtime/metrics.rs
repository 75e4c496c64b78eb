//! The guests' metric families, and the handles one guest counts through.

use crate::error::GuestError;
use crate::metrics::{ByName, Family, Histogram, Registry, label, labels2};

type Labels = Vec<(&'static str, String)>;

/// Every guest's families, registered once per process.
#[derive(Clone, Default)]
pub struct GuestFamilies {
    duration: Family<Labels, Histogram>,
    invocations: ByName,
    failures: ByName,
    fail_actions: ByName,
}

impl GuestFamilies {
    /// Register the families in `reg`.
    pub fn register(reg: &mut Registry) -> GuestFamilies {
        let f = GuestFamilies::default();
        reg.register(
            "outpost_guest_duration_seconds",
            "Time per guest invocation: instantiate, call, tear down",
            f.duration.clone(),
        );
        reg.register(
            "outpost_guest_invocations",
            "Guest hook invocations",
            f.invocations.clone(),
        );
        reg.register(
            "outpost_guest_failures",
            "Guest failures by kind",
            f.failures.clone(),
        );
        reg.register(
            "outpost_guest_fail_actions",
            "Failures skipped (open) or answered 503 (closed)",
            f.fail_actions.clone(),
        );
        f
    }

    /// The handles of the guest called `name` (the same counters for the same name
    /// across reloads).
    pub fn guest(&self, name: &str) -> GuestMetrics {
        let failure = |kind| {
            self.failures
                .get_or_create_owned(&labels2("guest", name, "kind", kind))
        };
        let action = |a| {
            self.fail_actions
                .get_or_create_owned(&labels2("guest", name, "action", a))
        };
        GuestMetrics {
            duration: self.duration.get_or_create_owned(&label("guest", name)),
            invocations: self.invocations.get_or_create_owned(&label("guest", name)),
            traps: failure("trap"),
            deadlines: failure("deadline"),
            memory: failure("memory"),
            invalid: failure("invalid"),
            skipped: action("skipped"),
            closed: action("closed"),
        }
    }
}

/// Counters of one guest.
#[derive(Debug, Clone, Default)]
pub struct GuestMetrics {
    /// Time per invocation: instantiate, call, tear down.
    pub duration: Histogram,
    /// Invocations, successful or not.
    pub invocations: crate::metrics::Counter,
    /// Traps.
    pub traps: crate::metrics::Counter,
    /// Deadline interruptions.
    pub deadlines: crate::metrics::Counter,
    /// Memory cap hits.
    pub memory: crate::metrics::Counter,
    /// Invalid results and load failures.
    pub invalid: crate::metrics::Counter,
    /// Failures skipped under fail mode `open`.
    pub skipped: crate::metrics::Counter,
    /// Failures answered with 503 under fail mode `closed`.
    pub closed: crate::metrics::Counter,
}

impl GuestMetrics {
    /// Count a failure by kind.
    pub fn record_failure(&self, e: &GuestError) {
        let c = match e {
            GuestError::Trap { .. } => &self.traps,
            GuestError::Deadline { .. } => &self.deadlines,
            GuestError::Memory { .. } => &self.memory,
            GuestError::Load { .. } | GuestError::Invalid { .. } => &self.invalid,
        };
        c.inc();
    }
}
