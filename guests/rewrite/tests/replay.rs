//! Replay every request of the NASA KSC 1995 log through the guest with a
//! realistic ~20-rule configuration.
#![allow(clippy::unwrap_used)]

mod common;

use common::{apply, configure, entries, har_user_agents};
use outpost_guest::{Header, RequestHead, testing};
use rewrite::stable_hash;

const SECRET: &str = "nasa-replay-secret";

const RULES: &[&str] = &[
    "deny-ip 10.66.0.0/16",
    "https 301",
    "canonical-host www.ksc.nasa.gov 301",
    "redirect 301 /ksc.html https://{host}/",
    "redirect 308 /history/apollo/{*rest} https://{host}/apollo/{rest}",
    "rewrite /shuttle/missions/{mission}/news/{*rest} /missions/{mission}/news/{rest}",
    "rewrite /cgi-bin/imagemap/{map} /maps/{map}",
    "prefix /images/ /static/img/",
    "sign /shuttle/countdown/video/ key=video",
    "header remove cookie",
    "header set x-forwarded-proto {scheme}",
    "request-id x-request-id",
    "header copy x-request-id x-correlation-id",
    "client-class x-client-class",
    "route archive when path=/history/",
    "route media when path=/static/img/ method=GET,HEAD",
    "route cams when path=/shuttle/countdown/ class=desktop,bot",
    "route mobile-origin when class=mobile,tablet",
    "split exp by ip main:90 beta:10",
    "allow-ip 0.0.0.0/0,::/0",
];

fn clean(s: &str) -> bool {
    !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[test]
fn replay_nasa_log() {
    let (log, malformed) = entries("nasa-ksc-1995-08-01.log");
    let mut uas: Vec<String> = har_user_agents("chrome_github.com_home.har");
    uas.truncate(1);
    uas.extend([
        "NCSA_Mosaic/2.0 (Windows 3.1)".to_string(),
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) Mobile/15E148".to_string(),
        "Mozilla/5.0 (Linux; Android 13; SM-X710) Chrome/120.0.0.0 Safari/537.36".to_string(),
        "curl/7.88.1".to_string(),
    ]);
    configure(&[("secret.video", SECRET)], RULES);
    testing::set_unix_time(807_249_601);
    let config = rewrite::Config::from_host();
    assert_eq!(config.rules.len(), RULES.len());

    let (mut inputs, mut outputs) = (0usize, 0usize);
    let (mut redirects, mut forbidden, mut rewritten) = (0usize, 0usize, 0usize);
    for e in &log {
        let (i, method, target) = (e.seq, e.method.as_str(), e.target());
        let line = format!("{method} {target}");
        let client = e
            .client_ip
            .clone()
            .or_else(|| e.header("x-log-host").map(str::to_string))
            .unwrap_or_default();
        inputs += 1;
        let h = stable_hash(client.as_bytes());
        let mut r = RequestHead::new(method, &target);
        r.scheme = if h.is_multiple_of(16) {
            "http"
        } else {
            "https"
        }
        .into();
        r.authority = if h.is_multiple_of(29) {
            "ksc.nasa.gov"
        } else {
            "www.ksc.nasa.gov"
        }
        .into();
        r.id = format!("{i:016x}");
        r.client.ip = format!(
            "10.{}.{}.{}",
            (h >> 8) % 256,
            (h >> 16) % 256,
            (h >> 24) % 256
        );
        let ua = &uas[usize::try_from(h % 5).unwrap()];
        r.headers.push(Header::new("user-agent", ua.as_str()));
        if h.is_multiple_of(7) {
            r.headers.push(Header::new("cookie", "session=1"));
        }

        let out = rewrite::rewrite(&r, &config);
        outputs += 1;
        if let Some(resp) = &out.response {
            match resp.status {
                301 | 308 => redirects += 1,
                403 => forbidden += 1,
                s => panic!("{line}: status {s}"),
            }
            continue;
        }
        let fwd = apply(&r, &out.edit);
        assert!(fwd.path.starts_with('/'), "{line} -> {:?}", fwd.path);
        assert!(clean(&fwd.path), "{line} -> {:?}", fwd.path);
        assert!(clean(&fwd.query), "{line} -> {:?}", fwd.query);
        if out.path.is_some() {
            rewritten += 1;
        }
        // Idempotent: the guest leaves its own output as it is.
        let again = rewrite::rewrite(&fwd, &config);
        assert!(again.response.is_none(), "{line}");
        assert_eq!(again.path, None, "{line} -> {}", fwd.path);
        assert_eq!(again.query, None, "{line}");
        assert!(again.headers.is_empty(), "{line}: {:?}", again.headers);
        assert_eq!(again.origin, out.origin, "{line}");
    }
    assert_eq!(outputs, inputs);
    assert_eq!(inputs, log.len());
    assert!(inputs > 33_000, "{inputs}");
    assert!(
        redirects > 1000 && forbidden > 100 && rewritten > 5000,
        "redirects {redirects}, 403 {forbidden}, rewritten {rewritten}"
    );
    eprintln!(
        "replayed {inputs} requests ({malformed} malformed lines skipped): \
         {redirects} redirects, {forbidden} forbidden, {rewritten} paths rewritten"
    );
}
