//! `common/src/canon.rs`, the node's `canon` (included by path, so this crate does not build the host):
//! `path`, `host` and `authority` on arbitrary UTF-8.
//!
//! Properties of an accepted path `p`: absolute, idempotent, no empty / `.` / `..`
//! segment left, no encoded or raw slash/backslash, no `;`. Of an accepted host:
//! lower case, no trailing dot, no `:` unless a bracketed IPv6 literal.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../common/src/canon.rs"]
#[allow(dead_code)]
mod canon;

fn check_path(raw: &str) {
    let Ok(p) = canon::path(raw) else { return };
    assert!(p.starts_with('/'), "{raw:?} -> {p:?}: not absolute");
    assert_eq!(
        canon::path(&p),
        Ok(p.clone()),
        "{raw:?} -> {p:?}: not idempotent"
    );
    assert!(!p.contains("//"), "{raw:?} -> {p:?}: `//`");
    assert!(!p.contains("/./"), "{raw:?} -> {p:?}: `/./` segment");
    assert!(!p.contains("/../"), "{raw:?} -> {p:?}: `/../` segment");
    assert!(!p.ends_with("/.."), "{raw:?} -> {p:?}: ends with `/..`");
    assert!(!p.ends_with("/."), "{raw:?} -> {p:?}: ends with `/.`");
    // Every `%` of a normalised path starts an escape, so a substring test is an
    // escape test.
    for bad in ["%2F", "%2f", "%5C", "%5c", "\\", ";"] {
        assert!(!p.contains(bad), "{raw:?} -> {p:?}: contains {bad:?}");
    }
}

fn check_host(raw: &str) {
    let Ok(h) = canon::host(raw) else { return };
    assert!(
        !h.bytes().any(|b| b.is_ascii_uppercase()),
        "{raw:?} -> {h:?}: upper case"
    );
    assert!(!h.ends_with('.'), "{raw:?} -> {h:?}: trailing dot");
    if h.contains(':') {
        let inner = h.strip_prefix('[').and_then(|r| r.strip_suffix(']'));
        assert!(
            inner.is_some_and(|i| i.parse::<std::net::Ipv6Addr>().is_ok()),
            "{raw:?} -> {h:?}: `:` outside a bracketed IPv6 literal"
        );
    }
    // The forwarded authority is the same host, with at most a port added.
    if let Ok(a) = canon::authority(raw) {
        let port = a.strip_prefix(h.as_str());
        assert!(
            port.is_some_and(|p| p.is_empty()
                || p.strip_prefix(':').is_some_and(|n| {
                    !n.is_empty()
                        && n.bytes().all(|b| b.is_ascii_digit())
                        && n.parse::<u16>().is_ok_and(|v| v.to_string() == n)
                })),
            "{raw:?}: authority {a:?} vs host {h:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    check_path(s);
    // Also as an origin-form path, so inputs without a leading `/` still reach pass 2.
    if !s.starts_with('/') {
        check_path(&format!("/{s}"));
    }
    check_host(s);
    let _ = canon::authority(s);
});
