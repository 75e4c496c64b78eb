//! IP networks: a CIDR (`10.0.0.0/8`, `2001:db8::/32`) or one address. Host bits
//! past the prefix are refused (`10.0.0.1/8` is an error that names `10.0.0.0/8`):
//! a network written with them is more likely a typo than a wish. An IPv4-mapped
//! IPv6 address (`::ffff:10.1.2.3`) is in the IPv4 networks.

/// An IP network written as a CIDR (`10.0.0.0/8`, `2001:db8::/32`) or a single
/// address (`/32` or `/128`). Host bits must be zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    /// The network address.
    pub addr: std::net::IpAddr,
    /// The prefix length.
    pub prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in this network. An IPv4-mapped IPv6 address matches IPv4
    /// networks.
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                mask32(u32::from(ip), self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask128(u128::from(ip), self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }

    /// The first and last address of the network, as integers in the address's
    /// family (IPv4 in the low 32 bits).
    pub fn range(&self) -> (u128, u128) {
        match self.addr {
            std::net::IpAddr::V4(a) => {
                let lo = u32::from(a);
                let hi = lo | u32::MAX.checked_shr(u32::from(self.prefix)).unwrap_or(0);
                (u128::from(lo), u128::from(hi))
            }
            std::net::IpAddr::V6(a) => {
                let lo = u128::from(a);
                (
                    lo,
                    lo | u128::MAX.checked_shr(u32::from(self.prefix)).unwrap_or(0),
                )
            }
        }
    }
}

fn mask32(v: u32, prefix: u8) -> u32 {
    v & u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(v: u128, prefix: u8) -> u128 {
    v & u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let not_ip = || {
            format!("`{s}` is not an IP address or CIDR (such as `10.0.0.0/8` or `2001:db8::/32`)")
        };
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: std::net::IpAddr = addr.parse().map_err(|_| not_ip())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bad_prefix = || {
            format!("invalid network `{s}`: the prefix length must be 0 to {max} for this address")
        };
        let prefix = match prefix {
            Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(bad_prefix)?,
            Some(_) => return Err(bad_prefix()),
            None => max,
        };
        let masked = match addr {
            std::net::IpAddr::V4(a) => std::net::IpAddr::V4(mask32(u32::from(a), prefix).into()),
            std::net::IpAddr::V6(a) => std::net::IpAddr::V6(mask128(u128::from(a), prefix).into()),
        };
        if masked != addr {
            return Err(format!(
                "invalid network `{s}`: host bits are set; did you mean `{masked}/{prefix}`?"
            ));
        }
        Ok(Cidr { addr, prefix })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A comma-separated list of networks; the first bad item is the error.
pub fn parse_list(s: &str) -> Result<Vec<Cidr>, String> {
    let items: Vec<&str> = s
        .split(',')
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .collect();
    if items.is_empty() {
        return Err("expected a comma-separated list of networks".into());
    }
    items.into_iter().map(str::parse).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains("10.1.2.3".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        assert!(!c.contains("::1".parse().unwrap()));
        let one: Cidr = "192.0.2.7".parse().unwrap();
        assert!(one.contains("192.0.2.7".parse().unwrap()));
        assert!(!one.contains("192.0.2.8".parse().unwrap()));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:1::5".parse().unwrap()));
        assert_eq!(
            v6.range().1,
            u128::from(
                "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"
                    .parse::<std::net::Ipv6Addr>()
                    .unwrap()
            )
        );
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        assert_eq!(all.range(), (0, u128::from(u32::MAX)));
        assert!(
            "10.0.0.1/8"
                .parse::<Cidr>()
                .unwrap_err()
                .contains("10.0.0.0/8")
        );
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("10.0.0.0/+8".parse::<Cidr>().is_err());
        assert!("10.0.0.0/".parse::<Cidr>().is_err());
        let any6: Cidr = "::/0".parse().unwrap();
        assert!(
            !any6.contains("203.0.113.1".parse().unwrap()),
            "an IPv4 client is not in an IPv6 network"
        );
        assert!("nope".parse::<Cidr>().is_err());
    }
}
