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
                format!("invalid duration `{s}`: expected milliseconds or a number with a unit: `250ms`, `5s`, `1m`, `1h`")
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
        "h" => 3_600_000,
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
        assert_eq!(parse_duration("2h"), Some(Millis(7_200_000)));
        assert_eq!(parse_duration("5d"), None);
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

/// An IP network in the config: [`outpost_common::Cidr`] (one rule for the node,
/// the config and the guests), read from a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct Cidr(pub outpost_common::Cidr);

impl std::ops::Deref for Cidr {
    type Target = outpost_common::Cidr;
    fn deref(&self) -> &outpost_common::Cidr {
        &self.0
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.parse().map(Cidr)
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
        self.0.fmt(f)
    }
}
