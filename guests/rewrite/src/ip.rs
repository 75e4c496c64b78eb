//! Client address rules: networks are [`outpost_guest::common::Cidr`], the same
//! type (and the same rules for host bits and IPv4-mapped addresses) as the node's
//! `[client]` config.

use std::net::IpAddr;

pub use outpost_guest::common::Cidr;
pub use outpost_guest::common::cidr::parse_list;

/// A client address as the node reports it; brackets and a zone are ignored.
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    let s = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    let s = s.split_once('%').map_or(s, |(a, _)| a);
    s.parse::<IpAddr>().ok()
}

/// Is `ip` in one of `nets`?
pub fn in_any(nets: &[Cidr], ip: Option<IpAddr>) -> bool {
    ip.is_some_and(|ip| nets.iter().any(|n| n.contains(ip)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches() {
        let cases = [
            ("10.0.0.0/8", "10.1.2.3", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("10.0.0.0/8", "::ffff:10.9.9.9", true),
            ("192.0.2.7", "192.0.2.7", true),
            ("192.0.2.7", "192.0.2.8", false),
            ("0.0.0.0/0", "203.0.113.1", true),
            ("0.0.0.0/0", "2001:db8::1", false),
            ("::/0", "203.0.113.1", false),
            ("::/0", "2001:db8::1", true),
            ("2001:db8::/32", "2001:db8:ffff::1", true),
            ("2001:db8::/32", "2001:db9::1", false),
            ("2001:db8::1", "[2001:db8::1]", true),
            ("fe80::/10", "fe80::1%eth0", true),
        ];
        for (cidr, ip, want) in cases {
            let c: Cidr = cidr.parse().unwrap();
            assert_eq!(c.contains(parse_ip(ip).unwrap()), want, "{cidr} {ip}");
        }
        for bad in [
            "10.0.0.0/33",
            "10.0.0/8",
            "::/129",
            "x",
            "10.0.0.0/",
            "10.0.0.0/+8",
            // Host bits set: refused, as the node's config refuses them.
            "10.0.0.1/8",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        assert!(!in_any(
            &parse_list("10.0.0.0/8").unwrap(),
            parse_ip("garbage")
        ));
    }
}
