//! IPv4/IPv6 CIDR matching with std only. IPv4 addresses are held as
//! IPv4-mapped IPv6 (`::ffff:a.b.c.d`), so a v4-mapped client matches v4 CIDRs.

use std::net::IpAddr;

/// A network: the masked address (as IPv6) and the prefix length (0..=128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: u128,
    len: u8,
}

fn mask(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len.min(128)))
    }
}

fn to_bits(ip: IpAddr) -> (u128, u8) {
    match ip {
        IpAddr::V4(a) => (u128::from(a.to_ipv6_mapped()), 96),
        IpAddr::V6(a) => (u128::from(a), 0),
    }
}

impl Cidr {
    /// Parse `a.b.c.d/n`, `x::y/n` or a bare address (`/32`, `/128`). Host bits
    /// past the prefix are ignored.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let ip: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{s}` is not an IP address or CIDR"))?;
        let (bits, offset) = to_bits(ip);
        let max = 128 - offset;
        let len = match len {
            None => max,
            Some(l) => match l.parse::<u8>() {
                Ok(n) if n <= max && l.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => {
                    return Err(format!(
                        "`{s}`: prefix length must be 0 to {max} for this address"
                    ));
                }
            },
        };
        let len = len + offset;
        Ok(Cidr {
            net: bits & mask(len),
            len,
        })
    }

    /// Does the network contain `ip` (from [`parse_ip`])?
    pub fn contains(&self, ip: u128) -> bool {
        ip & mask(self.len) == self.net
    }
}

/// Parse a comma-separated CIDR list; the first bad item is the error.
pub fn parse_list(s: &str) -> Result<Vec<Cidr>, String> {
    let items: Vec<&str> = s
        .split(',')
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .collect();
    if items.is_empty() {
        return Err("expected a comma-separated list of CIDRs".into());
    }
    items.into_iter().map(Cidr::parse).collect()
}

/// A client address as 128 bits (IPv4 mapped); brackets and a zone are ignored.
pub fn parse_ip(s: &str) -> Option<u128> {
    let s = s.trim();
    let s = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    let s = s.split_once('%').map_or(s, |(a, _)| a);
    s.parse::<IpAddr>().ok().map(|ip| to_bits(ip).0)
}

/// Is `ip` in one of `nets`?
pub fn in_any(nets: &[Cidr], ip: Option<u128>) -> bool {
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
            ("::/0", "203.0.113.1", true),
            ("2001:db8::/32", "2001:db8:ffff::1", true),
            ("2001:db8::/32", "2001:db9::1", false),
            ("2001:db8::1", "[2001:db8::1]", true),
            ("fe80::/10", "fe80::1%eth0", true),
            ("10.0.0.1/8", "10.200.0.0", true),
        ];
        for (cidr, ip, want) in cases {
            let c = Cidr::parse(cidr).unwrap();
            assert_eq!(c.contains(parse_ip(ip).unwrap()), want, "{cidr} {ip}");
        }
        for bad in [
            "10.0.0.0/33",
            "10.0.0/8",
            "::/129",
            "x",
            "10.0.0.0/",
            "10.0.0.0/+8",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
        assert!(!in_any(
            &parse_list("10.0.0.0/8").unwrap(),
            parse_ip("garbage")
        ));
    }
}
