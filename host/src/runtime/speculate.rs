//! Speculative guest calls, for in-process replay on every core.
//!
//! A replay's order matters: the limiter, the cache and the guests' shared stores
//! are stepped one request at a time on the virtual clock. What costs the time is
//! the guests, and a guest call is a function of what it is given (its hook's
//! arguments) and of what it asks the host (`load`, `shared-get`, `now-ns`,
//! `unix-time`; its config is fixed). So other threads run the admit and request
//! guests of the requests ahead, each call in a fresh instance as live, writing
//! down every question the guest asked and the host's answer: a [`Traced`] call.
//! When the replay reaches that request and calls the same guest with the same
//! arguments, it asks the host each question again, in order; if every answer is
//! the same, the guest would decide the same, and the traced decision is taken
//! without running it. Any difference (the limiter moved, a store key changed) and
//! the guest runs for real. A traced call that wrote to the shared store, or a
//! guest that imports `wasi:clocks` (answers the trace cannot see), is never
//! taken; `wasi:random` is a fixed stream in a replay, the same from the start of
//! every instance, so a guest importing it is run ahead. The decisions are therefore the same with one core or
//! many: speculation only decides how much of the work is already done.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

use super::{Call, Guest, Out, SharedStore};
use crate::contract::bindings::host::LogLevel;
use crate::contract::types::RequestHead;
use crate::limiter::{LoadSnapshot, LoadSource};

/// One question a guest asked the host, and the answer it got.
pub(super) enum Asked {
    /// `load()`.
    Load(LoadSnapshot),
    /// `shared-get(key)`.
    Get(String, Option<String>),
    /// `shared-set`: a traced call that writes is never taken.
    Set,
    /// `now-ns()`.
    Now(u64),
    /// `unix-time()`.
    Unix(u64),
    /// `log(level, message)`: written when the call is taken.
    Log(LogLevel, String),
}

/// A guest call made ahead of its turn.
pub(super) struct Traced {
    guest: usize,
    call: Owned,
    asked: Vec<Asked>,
    out: Out,
    took: Duration,
}

/// A hook call's arguments, owned (the speculated hooks only).
enum Owned {
    Admit(RequestHead),
    Request(RequestHead),
}

impl Owned {
    fn of(call: &Call<'_>) -> Option<Owned> {
        match call {
            Call::Admit(h) => Some(Owned::Admit((*h).clone())),
            Call::Request(h) => Some(Owned::Request((*h).clone())),
            Call::Response(..) => None,
        }
    }

    fn is(&self, call: &Call<'_>) -> bool {
        match (self, call) {
            (Owned::Admit(a), Call::Admit(b)) | (Owned::Request(a), Call::Request(b)) => a == *b,
            _ => false,
        }
    }
}

/// A slot's state: nobody has it, a speculating thread is on it, its calls are
/// traced, or the replay took it itself.
const FREE: u8 = 0;
const CLAIMED: u8 = 1;
const DONE: u8 = 2;
const TAKEN: u8 = 3;

/// How far past the replay's position a thread claims at the least.
const AHEAD: usize = 1;

/// Questions one traced call may ask (past them the trace is not kept: a guest
/// that logs or reads the clock in a loop cannot grow a trace without bound).
pub(super) const MAX_ASKED: usize = 1024;

/// The traced calls of a run of requests (a chunk of the replay), one slot each.
pub struct Memo {
    state: Vec<AtomicU8>,
    calls: Vec<Mutex<Vec<Traced>>>,
    /// Requests the replay has reached.
    at: AtomicUsize,
    /// One past the last request the threads have not claimed.
    back: AtomicUsize,
    /// Traced calls the replay took.
    pub taken: AtomicUsize,
    /// Guest calls the replay ran itself.
    pub ran: AtomicUsize,
    /// Of those, the ones with a trace whose answers no longer held.
    pub stale: AtomicUsize,
}

impl Memo {
    /// Slots for `n` requests.
    pub fn new(n: usize) -> Memo {
        Memo {
            state: (0..n).map(|_| AtomicU8::new(FREE)).collect(),
            calls: (0..n).map(|_| Mutex::new(Vec::new())).collect(),
            at: AtomicUsize::new(0),
            back: AtomicUsize::new(n),
            taken: AtomicUsize::new(0),
            ran: AtomicUsize::new(0),
            stale: AtomicUsize::new(0),
        }
    }

    /// Requests it has slots for.
    pub fn len(&self) -> usize {
        self.state.len()
    }

    /// Whether it has no slot.
    pub fn is_empty(&self) -> bool {
        self.state.is_empty()
    }

    /// A speculating thread's next request: the last one not yet claimed, while
    /// it is past the replay's position (the replay works from the front of a
    /// chunk, the threads from the back, and they meet once); none when they have.
    pub fn claim(&self) -> Option<usize> {
        loop {
            // Not the request the replay is about to reach: it would only wait
            // for the whole chain.
            let back = self.back.load(Ordering::Acquire);
            if back <= self.at.load(Ordering::Acquire) + AHEAD {
                return None;
            }
            if self
                .back
                .compare_exchange(back, back - 1, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            let i = back - 1;
            if self.state[i]
                .compare_exchange(FREE, CLAIMED, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return Some(i);
            }
        }
    }

    /// Whether the threads have claimed every request left to them.
    pub fn exhausted(&self) -> bool {
        self.back.load(Ordering::Acquire) <= self.at.load(Ordering::Acquire) + AHEAD
    }

    /// The replay is done with request `i`: traces it did not take go.
    pub fn clear(&self, i: usize) {
        if let Some(slot) = self.calls.get(i) {
            drop(std::mem::take(
                &mut *slot.lock().unwrap_or_else(|p| p.into_inner()),
            ));
        }
    }

    /// A speculating thread is done with request `i`.
    pub fn done(&self, i: usize) {
        self.state[i].store(DONE, Ordering::Release);
    }

    /// The replay is at request `i`: wait for a thread that is on it, or take it
    /// so none will be.
    pub fn arrive(&self, i: usize) {
        self.at.store(i + 1, Ordering::Release);
        loop {
            match self.state[i].compare_exchange(FREE, TAKEN, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) | Err(DONE) | Err(TAKEN) => return,
                // Mid-call on another thread: its trace is moments away.
                Err(_) => std::thread::yield_now(),
            }
        }
    }

    fn keep(&self, i: usize, t: Traced) {
        if let Some(slot) = self.calls.get(i) {
            slot.lock().unwrap_or_else(|p| p.into_inner()).push(t);
        }
    }

    fn take(&self, i: usize, guest: usize, call: &Call<'_>) -> Option<Traced> {
        let mut slot = self.calls.get(i)?.lock().unwrap_or_else(|p| p.into_inner());
        let k = slot
            .iter()
            .position(|t| t.guest == guest && t.call.is(call))?;
        Some(slot.swap_remove(k))
    }
}

/// Which side of a speculated replay a runtime is on.
pub enum Role {
    /// The replay itself: takes traced calls whose answers still hold.
    Replay,
    /// A speculating thread: traces its calls, applies nothing.
    Ahead,
}

/// A runtime's part in a speculated replay.
pub struct Speculation {
    /// The chunk's traced calls.
    pub memo: std::sync::Arc<Memo>,
    /// Which side.
    pub role: Role,
    /// The request this runtime's calls are for.
    pub at: AtomicUsize,
}

impl Speculation {
    /// What the replay does before running `guest`'s `call`: a traced call whose
    /// every answer the host still gives, if there is one.
    pub(super) fn taken(
        &self,
        guest: &Guest,
        call: &Call<'_>,
        load: &LoadSource,
        clock: &crate::clock::Clock,
    ) -> Option<Out> {
        // Response guests are never run ahead: nothing to look up.
        let traced = match call {
            Call::Response(..) => None,
            _ => {
                let i = self.at.load(Ordering::Relaxed);
                self.memo.take(i, guest as *const Guest as usize, call)
            }
        };
        let Some(t) = traced else {
            self.memo.ran.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        if !holds(&t.asked, &guest.shared, load, clock) {
            self.memo.ran.fetch_add(1, Ordering::Relaxed);
            self.memo.stale.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let mut logged = 0;
        for a in &t.asked {
            if let Asked::Log(level, message) = a {
                super::host_impl::log_line(&guest.name, &mut logged, *level, message);
            }
        }
        guest.metrics.invocations.inc();
        guest.metrics.duration.observe(t.took);
        self.memo.taken.fetch_add(1, Ordering::Relaxed);
        Some(t.out)
    }

    /// A speculating thread's call of `guest` finished: keep its trace.
    pub(super) fn keep(
        &self,
        guest: &Guest,
        call: &Call<'_>,
        asked: Vec<Asked>,
        out: &Out,
        took: Duration,
    ) {
        let Some(call) = Owned::of(call) else {
            return;
        };
        let i = self.at.load(Ordering::Relaxed);
        self.memo.keep(
            i,
            Traced {
                guest: guest as *const Guest as usize,
                call,
                asked,
                out: out.clone(),
                took,
            },
        );
    }
}

/// Whether two load answers are the same to a guest: bit for bit (`-0.0` is not
/// `0.0` to a guest that looks).
fn same_signals(a: &LoadSnapshot, b: &LoadSnapshot) -> bool {
    let floats = |s: &LoadSnapshot| {
        let mut v = vec![s.shed_rate.to_bits(), s.utilization.to_bits()];
        v.extend(s.shed_rate_by_class.iter().map(|f| f.to_bits()));
        v
    };
    (a.in_flight, a.limit, a.queued, a.queue_delay_us)
        == (b.in_flight, b.limit, b.queued, b.queue_delay_us)
        && (a.origin_latency_us, a.origin_min_latency_us)
            == (b.origin_latency_us, b.origin_min_latency_us)
        && floats(a) == floats(b)
}

/// Whether the host, asked `asked` in order now, answers each the same.
fn holds(
    asked: &[Asked],
    shared: &SharedStore,
    load: &LoadSource,
    clock: &crate::clock::Clock,
) -> bool {
    let mut signals = None;
    asked.iter().all(|a| match a {
        Asked::Load(then) => same_signals(signals.get_or_insert_with(|| load.signals()), then),
        Asked::Get(key, then) => shared.get(key) == *then,
        Asked::Set => false,
        Asked::Now(then) => clock.monotonic_ns() == *then,
        Asked::Unix(then) => clock.unix_secs() == *then,
        Asked::Log(..) => true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;

    #[test]
    fn a_trace_holds_only_while_every_answer_is_the_same() {
        let store = SharedStore::default();
        store.set("level".into(), "high".into()).expect("set");
        let clock = Clock::virtual_at(5_000_000_000);
        let idle = LoadSource::default();
        // The answers the guest got are the host's answers now: it holds.
        let now = clock.monotonic_ns();
        let trace = vec![
            Asked::Get("level".into(), Some("high".into())),
            Asked::Load(LoadSnapshot::default()),
            Asked::Now(now),
            Asked::Unix(5),
            Asked::Log(LogLevel::Info, "hello".into()),
        ];
        assert!(holds(&trace, &store, &idle, &clock));
        // A key another call changed since: it does not.
        store.set("level".into(), "low".into()).expect("set");
        assert!(!holds(&trace, &store, &idle, &clock));
        store.set("level".into(), "high".into()).expect("set");
        assert!(holds(&trace, &store, &idle, &clock));
        // Nor once the clock moved, or the load it read is not the load now.
        clock.put(6_000_000_000);
        assert!(!holds(&trace, &store, &idle, &clock));
        clock.put(5_000_000_000);
        let busy = vec![Asked::Load(LoadSnapshot {
            in_flight: 3,
            ..LoadSnapshot::default()
        })];
        assert!(!holds(&busy, &store, &idle, &clock));
        // A key that was absent must still be absent.
        let absent = vec![Asked::Get("other".into(), None)];
        assert!(holds(&absent, &store, &idle, &clock));
        store.set("other".into(), "x".into()).expect("set");
        assert!(!holds(&absent, &store, &idle, &clock));
        // A call that wrote is never taken: its write would be lost.
        assert!(!holds(&[Asked::Set], &store, &idle, &clock));
    }

    #[test]
    fn the_replay_and_the_threads_meet_once_and_never_share_a_request() {
        let memo = Memo::new(10);
        memo.arrive(0);
        // Threads claim from the back...
        assert_eq!(memo.claim(), Some(9));
        assert_eq!(memo.claim(), Some(8));
        memo.done(9);
        // ...the replay takes the front...
        memo.arrive(1);
        memo.arrive(2);
        // ...a claimed one it waits for (done here), a done one it takes as is.
        memo.done(8);
        for i in 3..8 {
            memo.arrive(i);
        }
        assert!(memo.exhausted());
        assert_eq!(memo.claim(), None, "nothing behind the replay is claimed");
        memo.arrive(8);
        memo.arrive(9);
        assert_eq!(
            memo.state[3].load(Ordering::Relaxed),
            TAKEN,
            "taken by the replay"
        );
        assert_eq!(memo.state[9].load(Ordering::Relaxed), DONE);
    }

    #[test]
    fn a_thread_never_claims_the_request_the_replay_reaches_next() {
        let memo = Memo::new(3);
        memo.arrive(0);
        assert_eq!(memo.claim(), Some(2));
        // Request 1 is the replay's next: it would only wait for the whole chain.
        assert_eq!(memo.claim(), None);
        assert!(memo.exhausted());
    }
}
