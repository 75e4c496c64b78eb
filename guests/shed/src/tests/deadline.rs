//! Deadline drop: CMCD `dl` against the queueing delay, the absolute deadline
//! header against the host clock.

use super::*;

/// Load with a full origin and `queue_ms` of queueing.
fn queueing(queue_ms: u64) -> LoadSignals {
    LoadSignals {
        in_flight: 64,
        limit: 64,
        queued: 12,
        queue_delay_us: queue_ms * 1000,
        utilization: 1.2,
        ..LoadSignals::default()
    }
}

fn rejected(req: &RequestHead) -> Option<Response> {
    match admit(req) {
        AdmitDecision::Reject(r) => Some(r),
        AdmitDecision::Admit(_) => None,
    }
}

fn segment(cmcd_request: &str) -> RequestHead {
    RequestHead::get("/vod/bbb/1080p/seg-7.m4s")
        .with_header("CMCD-Request", cmcd_request)
        .with_header("CMCD-Object", "ot=v,br=3200,d=4004")
}

#[test]
fn cmcd_dl_against_queue_delay() {
    configure(&[]);
    // (queue ms, CMCD-Request, dropped)
    for (queue_ms, cmcd, dropped) in [
        (0, "bl=200,dl=100", false),
        (50, "bl=200,dl=100", false),
        (100, "bl=200,dl=100", false), // equal: may still make it
        (101, "bl=200,dl=100", true),
        (800, "bl=21300,dl=18500", false),
        (20_000, "bl=21300,dl=18500", true),
        (1, "bl=0,dl=0", true),
        (5_000, "bl=21300", false),       // no deadline
        (5_000, "bl=900,dl=x", false),    // not a number
        (5_000, "bl=900,dl=900.7", true), // truncated to 900 ms
    ] {
        testing::set_load(queueing(queue_ms));
        let got = rejected(&segment(cmcd));
        assert_eq!(got.is_some(), dropped, "queue {queue_ms} ms, {cmcd}");
        if let Some(r) = got {
            assert_eq!(r.status, 504);
            assert_eq!(r.get_header("x-outpost-shed"), Some("cmcd-dl"));
            assert_eq!(r.get_header("cache-control"), Some("no-store"));
            assert_eq!(r.get_header("retry-after"), None);
        }
    }
    // The query form.
    testing::set_load(queueing(500));
    let q = RequestHead::get("/vod/bbb/1080p/seg-7.m4s?CMCD=bl%3D300%2Cdl%3D300%2Cot%3Dv");
    assert!(rejected(&q).is_some());
    // Critical requests are dropped too: nobody is waiting for them any more.
    let live = RequestHead::get("/live/ch1/seg-9.ts").with_header("cmcd-request", "dl=200");
    assert!(rejected(&live).is_some());
}

#[test]
fn free_slot_means_no_queueing() {
    configure(&[]);
    // The recent delay is stale when a slot is free and nobody waits.
    testing::set_load(LoadSignals {
        in_flight: 10,
        limit: 64,
        queued: 0,
        queue_delay_us: 900_000,
        ..LoadSignals::default()
    });
    assert!(rejected(&segment("bl=200,dl=100")).is_none());
    testing::set_load(LoadSignals {
        in_flight: 10,
        limit: 64,
        queued: 3,
        queue_delay_us: 900_000,
        ..LoadSignals::default()
    });
    assert!(rejected(&segment("bl=200,dl=100")).is_some());
    assert_eq!(expected_queue_us(&LoadSignals::default()), 0);
}

#[test]
fn drop_expired_off_admits() {
    configure(&[("drop_expired", "false")]);
    testing::set_load(queueing(10_000));
    testing::set_unix_time(1_754_000_000);
    let a = admission(&segment("bl=200,dl=100").with_header("x-request-deadline", "1000000000000"));
    assert_eq!(a.class, PriorityClass::High);
}

#[test]
fn deadline_header_against_the_clock() {
    configure(&[]);
    let now_s: u64 = 1_754_000_000;
    let now_ms = now_s * 1000;
    testing::set_unix_time(now_s);
    testing::set_load(LoadSignals::default());
    let req = |v: &str| RequestHead::get("/api/v1/catalog").with_header("X-Request-Deadline", v);
    // (deadline, dropped). The clock has second resolution: `now_s` means
    // somewhere in [now_ms, now_ms + 1000), so only deadlines before now_ms are
    // certainly past.
    for (deadline, dropped) in [
        (now_ms - 60_000, true),
        (now_ms - 1, true),
        (now_ms, false),
        (now_ms + 999, false),
        (now_ms + 30_000, false),
    ] {
        let got = rejected(&req(&deadline.to_string()));
        assert_eq!(got.is_some(), dropped, "{deadline}");
        if let Some(r) = got {
            assert_eq!(r.status, 504);
            assert_eq!(r.get_header("x-outpost-shed"), Some("deadline"));
        }
    }
    // Expected queueing counts against the deadline.
    testing::set_load(queueing(2_000));
    assert!(rejected(&req(&(now_ms + 1_500).to_string())).is_some());
    assert!(rejected(&req(&(now_ms + 2_500).to_string())).is_none());
    // Not unix milliseconds: ignored (seconds, junk, negative, overflow).
    for v in [
        now_s.to_string(),
        "soon".into(),
        "-1".into(),
        "".into(),
        "1e12".into(),
        "99999999999999999999999".into(),
    ] {
        assert!(rejected(&req(&v)).is_none(), "{v:?}");
    }
}

#[test]
fn deadline_header_name_is_configurable() {
    testing::set_unix_time(1_754_000_000);
    let past = "1000000000000";
    configure(&[("deadline_header", "X-Deadline-Ms")]);
    let custom = RequestHead::get("/a").with_header("x-deadline-ms", past);
    let default = RequestHead::get("/a").with_header("x-request-deadline", past);
    assert!(rejected(&custom).is_some());
    assert!(rejected(&default).is_none());
    configure(&[("deadline_header", "")]);
    assert!(rejected(&custom).is_none());
    assert!(rejected(&default).is_none());
}

#[test]
fn no_deadline_no_host_reads_needed() {
    configure(&[]);
    testing::set_load(queueing(60_000));
    // Heavy queueing alone does not drop anything: that is the limiter's job.
    assert!(rejected(&RequestHead::get("/vod/a/seg1.ts")).is_none());
    assert!(rejected(&segment("bl=21300")).is_none());
}
