//! The guests' metric families, and the handles one guest counts through.

use crate::error::GuestError;
use crate::metrics::{ByName, Family, Histogram, Registry, label, labels2};

type Labels = Vec<(&'static str, String)>;

/// One set of the guests' families: the live calls', or the shadow runs'.
#[derive(Clone, Default)]
struct Set {
    duration: Family<Labels, Histogram>,
    invocations: ByName,
    failures: ByName,
    fail_actions: ByName,
}

impl Set {
    /// Register the set in `reg`, its names starting with `prefix`.
    fn register(reg: &mut Registry, prefix: &str, of: &str) -> Set {
        let f = Set::default();
        reg.register(
            format!("{prefix}_duration_seconds"),
            format!("Time per guest invocation{of}: instantiate, call, tear down"),
            f.duration.clone(),
        );
        reg.register(
            format!("{prefix}_invocations"),
            format!("Guest hook invocations{of}"),
            f.invocations.clone(),
        );
        reg.register(
            format!("{prefix}_failures"),
            format!("Guest failures{of} by kind"),
            f.failures.clone(),
        );
        reg.register(
            format!("{prefix}_fail_actions"),
            format!("Failures{of} skipped (open) or answered 503 (closed)"),
            f.fail_actions.clone(),
        );
        f
    }

    fn handles(&self, name: &str) -> GuestMetrics {
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
            shadow: None,
        }
    }
}

/// Every guest's families, registered once per process: `outpost_guest_*` for the
/// calls that decide, `outpost_shadow_guest_*` for a guest's shadow runs as a
/// route's candidate (`proxy::shadow`), so a guest that is live on one route and a
/// candidate on another (or the same) is never counted twice.
#[derive(Clone, Default)]
pub struct GuestFamilies {
    live: Set,
    shadow: Set,
}

impl GuestFamilies {
    /// Register the families in `reg`.
    pub fn register(reg: &mut Registry) -> GuestFamilies {
        GuestFamilies {
            live: Set::register(reg, "outpost_guest", ""),
            shadow: Set::register(reg, "outpost_shadow_guest", " in shadow runs"),
        }
    }

    /// The handles of the guest called `name` (the same counters for the same name
    /// across reloads), its shadow runs' among them.
    pub fn guest(&self, name: &str) -> GuestMetrics {
        GuestMetrics {
            shadow: Some(Box::new(self.shadow.handles(name))),
            ..self.live.handles(name)
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
    /// Its shadow runs' counters (none: counted with the live calls).
    pub shadow: Option<Box<GuestMetrics>>,
}

impl GuestMetrics {
    /// The counters of a call on `runtime`: its shadow runs' on a shadow runtime.
    pub fn on(&self, runtime: &super::Runtime) -> &GuestMetrics {
        match &self.shadow {
            Some(s) if runtime.is_shadow() => s,
            _ => self,
        }
    }

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
