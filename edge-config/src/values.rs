//! Validated scalar types: a bad value is rejected by the parser at its position.

use std::fmt;

/// An identifier for an origin, guest or route: ASCII letters, digits, `-` and `_`,
/// starting with a letter.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct Name(String);

impl Name {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Name {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let mut chars = s.chars();
        match chars.next() {
            None => return Err("expected a name, found an empty string".into()),
            Some(c) if !c.is_ascii_alphabetic() => {
                return Err(format!(
                    "invalid name `{s}`: names must start with an ASCII letter"
                ));
            }
            _ => {}
        }
        if let Some(bad) = chars.find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_')) {
            return Err(format!(
                "invalid name `{s}`: `{bad}` is not allowed; expected ASCII letters, digits, `-` or `_`"
            ));
        }
        if s.len() > 64 {
            return Err(format!("invalid name `{s}`: at most 64 characters"));
        }
        Ok(Name(s))
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::borrow::Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// A duration in whole milliseconds, written as an integer (`250`) or a string with a
/// unit (`"250ms"`, `"5s"`, `"1m"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Deserialize)]
#[serde(try_from = "DurationRepr")]
pub struct Millis(pub u64);

impl Millis {
    /// As a `std::time::Duration`.
    pub fn duration(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.0)
    }
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum DurationRepr {
    Int(i64),
    Text(String),
}

impl TryFrom<DurationRepr> for Millis {
    type Error = String;
    fn try_from(r: DurationRepr) -> Result<Self, String> {
        match r {
            DurationRepr::Int(n) if n >= 0 => Ok(Millis(n as u64)),
            DurationRepr::Int(n) => Err(format!("expected a non-negative duration, found {n}")),
            DurationRepr::Text(s) => parse_duration(&s).ok_or_else(|| {
                format!("invalid duration `{s}`: expected milliseconds or a number with a unit: `250ms`, `5s`, `1m`")
            }),
        }
    }
}

fn parse_duration(s: &str) -> Option<Millis> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let factor = match unit.trim() {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        _ => return None,
    };
    n.checked_mul(factor).map(Millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(Name::try_from("demo-origin_1".to_string()).is_ok());
        assert!(Name::try_from("1abc".to_string()).is_err());
        assert!(Name::try_from("a b".to_string()).is_err());
        assert!(Name::try_from(String::new()).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Some(Millis(250)));
        assert_eq!(parse_duration("5s"), Some(Millis(5000)));
        assert_eq!(parse_duration("2m"), Some(Millis(120_000)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("5h"), None);
    }
}

/// A socket address written `IP:PORT` (`127.0.0.1:8080`, `[::1]:8080`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct Addr(pub std::net::SocketAddr);

impl TryFrom<String> for Addr {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse().map(Addr).map_err(|_| {
            format!(
                "invalid address `{s}`: expected `IP:PORT`, e.g. `127.0.0.1:8080` or `[::1]:8080`"
            )
        })
    }
}

impl std::ops::Deref for Addr {
    type Target = std::net::SocketAddr;
    fn deref(&self) -> &std::net::SocketAddr {
        &self.0
    }
}

/// An IP network written as a CIDR (`10.0.0.0/8`, `2001:db8::/32`) or a single
/// address (`/32` or `/128`). Host bits must be zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize)]
#[serde(try_from = "String")]
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
        let bad = || {
            format!(
                "invalid network `{s}`: expected an address or a CIDR such as `10.0.0.0/8` or `2001:db8::/32`"
            )
        };
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: std::net::IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
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

impl TryFrom<String> for Cidr {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod cidr_tests {
    use super::Cidr;

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
        assert!("nope".parse::<Cidr>().is_err());
    }
}
