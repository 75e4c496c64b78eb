//! Facts about the client the node establishes itself: its address (through
//! trusted proxies only), the scheme it used, and its country.

use std::collections::HashMap;
use std::net::IpAddr;

use edge_config::{Cidr, Config, Diagnostic, ForwardedHeader};
use http::HeaderMap;

/// The largest country table or database read (GeoLite2-Country is about 10 MiB).
const MAX_TABLE_BYTES: u64 = 256 << 20;

/// The address a client is counted by for connection caps, fairness and
/// allowances: an IPv4 address as it is (an IPv4-mapped IPv6 address as IPv4), an
/// IPv6 address by its /64, the block one host or subscriber line is given, so a
/// host cannot rotate through its addresses to escape its caps.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(std::net::Ipv6Addr::from(bits))
            }
        },
    }
}

/// What the node knows about a request's client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFacts {
    /// The client's address.
    pub ip: IpAddr,
    /// `http` or `https`, as the client reached the edge.
    pub scheme: &'static str,
    /// ISO 3166-1 alpha-2, when known.
    pub country: Option<String>,
}

/// Set by the listener on requests of a TLS connection.
#[derive(Debug, Clone, Copy)]
pub struct OverTls;

/// How the node establishes client facts (the config's `[client]`).
#[derive(Default)]
pub struct ClientRules {
    trusted: Vec<Cidr>,
    header: ForwardedHeader,
    table: CountryTable,
    db: Option<maxminddb::Reader<Vec<u8>>>,
}

impl ClientRules {
    /// Build from the config: read the country table and database. Every problem
    /// is reported, positioned at the setting that named the file.
    pub fn load(config: &Config) -> Result<ClientRules, Vec<Diagnostic>> {
        let src = config.source();
        let c = &config.client;
        let mut errors = Vec::new();
        let mut table = CountryTable::default();
        if let Some(path) = &c.country_table {
            let file = config.resolve_path(path.get_ref());
            let text = edge_config::read_capped(&file, MAX_TABLE_BYTES).and_then(|b| {
                String::from_utf8(b).map_err(|_| std::io::Error::other("not valid UTF-8"))
            });
            match text {
                Ok(text) => {
                    for (line, problem) in table.add_csv(&text) {
                        errors.push(src.diagnostic(
                            path.span(),
                            format!("country_table {}:{line}: {problem}", file.display()),
                        ));
                    }
                }
                Err(e) => errors.push(src.diagnostic(
                    path.span(),
                    format!("cannot read country_table `{}`: {e}", file.display()),
                )),
            }
        }
        // Inline entries win over the table's.
        for (net, cc) in &c.countries {
            table.insert(*net, cc.get_ref());
        }
        let db = match &c.country_db {
            None => None,
            Some(path) => {
                let file = config.resolve_path(path.get_ref());
                match edge_config::read_capped(&file, MAX_TABLE_BYTES)
                    .map_err(|e| e.to_string())
                    .and_then(|b| maxminddb::Reader::from_source(b).map_err(|e| e.to_string()))
                {
                    Ok(r) => Some(r),
                    Err(e) => {
                        errors.push(src.diagnostic(
                            path.span(),
                            format!(
                                "cannot open country_db `{}` as a MaxMind DB: {e}",
                                file.display()
                            ),
                        ));
                        None
                    }
                }
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(ClientRules {
            trusted: c.trusted_proxies.iter().map(|t| *t.get_ref()).collect(),
            header: c.forwarded_header,
            table,
            db,
        })
    }

    fn trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|c| c.contains(ip))
    }

    /// The facts for a request from `peer` with `headers`, on a connection that
    /// used TLS or not (the scheme, unless a trusted proxy says which the client used).
    pub fn facts(&self, peer: IpAddr, headers: &HeaderMap, tls: bool) -> ClientFacts {
        let (ip, scheme) = if self.trusted(peer) {
            match self.header {
                ForwardedHeader::XForwardedFor => (
                    self.walk(peer, x_forwarded_for(headers)),
                    x_forwarded_proto(headers),
                ),
                ForwardedHeader::Forwarded => {
                    let (fors, proto) = forwarded(headers);
                    (self.walk(peer, fors), proto)
                }
            }
        } else {
            (peer, None)
        };
        ClientFacts {
            ip,
            scheme: scheme.unwrap_or(if tls { "https" } else { "http" }),
            country: self.country(ip),
        }
    }

    /// Walk the forwarding chain from the right (nearest hop first), skipping
    /// trusted proxies: the first untrusted address is the client. An entry that is
    /// not an address stops the walk at the last good one.
    fn walk(&self, peer: IpAddr, chain: Vec<Option<IpAddr>>) -> IpAddr {
        let mut client = peer;
        for hop in chain.into_iter().rev() {
            let Some(ip) = hop else { break };
            client = ip;
            if !self.trusted(ip) {
                break;
            }
        }
        client
    }

    /// The country of `ip`: inline entries and the table first, then the database.
    pub fn country(&self, ip: IpAddr) -> Option<String> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        if let Some(cc) = self.table.lookup(ip) {
            return Some(cc.to_string());
        }
        let db = self.db.as_ref()?;
        let found = db.lookup(ip).ok()?;
        let iso: Option<String> = found
            .decode_path(&[
                maxminddb::PathElement::Key("country"),
                maxminddb::PathElement::Key("iso_code"),
            ])
            .ok()
            .flatten();
        iso.filter(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()))
            .map(|c| c.to_ascii_uppercase())
    }
}

/// Every address of every `X-Forwarded-For` field, in order; `None` for an entry
/// that is not an address.
fn x_forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| parse_node(s.trim()))
        .collect()
}

fn x_forwarded_proto(headers: &HeaderMap) -> Option<&'static str> {
    let v = headers.get("x-forwarded-proto")?.to_str().ok()?;
    scheme(v.split(',').next()?.trim())
}

fn scheme(s: &str) -> Option<&'static str> {
    if s.eq_ignore_ascii_case("https") {
        Some("https")
    } else if s.eq_ignore_ascii_case("http") {
        Some("http")
    } else {
        None
    }
}

/// RFC 7239 `Forwarded`: the `for=` of each element in order, and the `proto=` of
/// the last element that has one.
fn forwarded(headers: &HeaderMap) -> (Vec<Option<IpAddr>>, Option<&'static str>) {
    let mut fors = Vec::new();
    let mut proto = None;
    for v in headers
        .get_all("forwarded")
        .iter()
        .filter_map(|v| v.to_str().ok())
    {
        for element in split_unquoted(v, ',') {
            for pair in split_unquoted(element, ';') {
                let Some((k, val)) = pair.trim().split_once('=') else {
                    continue;
                };
                let val = val.trim().trim_matches('"');
                if k.trim().eq_ignore_ascii_case("for") {
                    fors.push(parse_node(val));
                } else if k.trim().eq_ignore_ascii_case("proto") {
                    proto = scheme(val).or(proto);
                }
            }
        }
    }
    (fors, proto)
}

fn split_unquoted(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                out.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// `192.0.2.1`, `192.0.2.1:443`, `2001:db8::1`, `[2001:db8::1]:443`.
fn parse_node(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse() {
        return Some(ip);
    }
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    let (host, port) = s.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// An IP-to-country table: the most specific network containing an address wins.
#[derive(Default)]
pub struct CountryTable {
    /// (is IPv4, prefix length) → network bits → country.
    by_prefix: HashMap<(bool, u8), HashMap<u128, [u8; 2]>>,
    /// The prefix lengths present, longest first.
    prefixes: Vec<(bool, u8)>,
}

impl CountryTable {
    /// Add `net` → `cc` (two ASCII letters; anything else is ignored).
    pub fn insert(&mut self, net: Cidr, cc: &str) {
        let b = cc.as_bytes();
        if b.len() != 2 || !b.iter().all(u8::is_ascii_alphabetic) {
            return;
        }
        let key = (net.addr.is_ipv4(), net.prefix);
        if !self.prefixes.contains(&key) {
            self.prefixes.push(key);
            self.prefixes.sort_by_key(|p| std::cmp::Reverse(p.1));
        }
        self.by_prefix.entry(key).or_default().insert(
            net.range().0,
            [b[0].to_ascii_uppercase(), b[1].to_ascii_uppercase()],
        );
    }

    /// Add the lines of a CSV table: `CIDR,CC` (further columns ignored; blank
    /// lines, `#` comments and a header line starting with `network` skipped).
    /// Returns the problems: (1-based line, message).
    pub fn add_csv(&mut self, text: &str) -> Vec<(usize, String)> {
        let mut problems = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with("network") {
                continue;
            }
            let mut cols = line.split(',').map(|c| c.trim().trim_matches('"'));
            let (Some(net), Some(cc)) = (cols.next(), cols.next()) else {
                problems.push((i + 1, "expected `CIDR,CC`".to_string()));
                continue;
            };
            let net: Cidr = match net.parse() {
                Ok(n) => n,
                Err(e) => {
                    problems.push((i + 1, e));
                    continue;
                }
            };
            if cc.len() != 2 || !cc.bytes().all(|b| b.is_ascii_alphabetic()) {
                problems.push((
                    i + 1,
                    format!("`{cc}` is not an ISO 3166-1 alpha-2 code such as `US`"),
                ));
                continue;
            }
            self.insert(net, cc);
        }
        problems
    }

    /// The country of the most specific network holding `ip`.
    pub fn lookup(&self, ip: IpAddr) -> Option<&str> {
        let (v4, bits) = match ip {
            IpAddr::V4(a) => (true, u128::from(u32::from(a))),
            IpAddr::V6(a) => (false, u128::from(a)),
        };
        let width = if v4 { 32 } else { 128 };
        for &(fam, prefix) in &self.prefixes {
            if fam != v4 {
                continue;
            }
            let host_bits = width - u32::from(prefix);
            let net = bits
                .checked_shr(host_bits)
                .and_then(|n| n.checked_shl(host_bits))
                .unwrap_or(0);
            if let Some(cc) = self.by_prefix.get(&(fam, prefix)).and_then(|m| m.get(&net)) {
                return std::str::from_utf8(cc).ok();
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn addresses_are_counted_by_their_block() {
        use super::address_key;
        let k = |s: &str| address_key(s.parse().expect("ip")).to_string();
        assert_eq!(k("192.0.2.7"), "192.0.2.7");
        assert_eq!(k("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(k("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::");
        assert_eq!(k("2001:db8:1:2:bbbb::9"), "2001:db8:1:2::");
        assert_ne!(k("2001:db8:1:3::1"), k("2001:db8:1:2::1"));
    }

    use super::*;

    fn rules(trusted: &[&str], header: ForwardedHeader) -> ClientRules {
        ClientRules {
            trusted: trusted.iter().map(|t| t.parse().unwrap()).collect(),
            header,
            ..ClientRules::default()
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn untrusted_peer_cannot_forge() {
        let r = rules(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
        let f = r.facts(
            "203.0.113.9".parse().unwrap(),
            &headers(&[
                ("x-forwarded-for", "1.2.3.4"),
                ("x-forwarded-proto", "https"),
            ]),
            false,
        );
        assert_eq!(f.ip, "203.0.113.9".parse::<IpAddr>().unwrap());
        assert_eq!(f.scheme, "http");
    }

    #[test]
    fn trusted_chain_walks_from_the_right() {
        let r = rules(&["10.0.0.0/8", "127.0.0.1"], ForwardedHeader::XForwardedFor);
        let peer = "127.0.0.1".parse().unwrap();
        // The client forged 6.6.6.6; the first untrusted hop from the right is real.
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6, 198.51.100.7"),
            ("x-forwarded-for", "10.1.1.1"),
            ("x-forwarded-proto", "HTTPS"),
        ]);
        let f = r.facts(peer, &h, false);
        assert_eq!(f.ip, "198.51.100.7".parse::<IpAddr>().unwrap());
        assert_eq!(f.scheme, "https");
        // Garbage stops the walk at the last good hop.
        let f = r.facts(
            peer,
            &headers(&[("x-forwarded-for", "junk, 10.2.2.2")]),
            false,
        );
        assert_eq!(f.ip, "10.2.2.2".parse::<IpAddr>().unwrap());
        // No header: the peer.
        assert_eq!(r.facts(peer, &HeaderMap::new(), false).ip, peer);
    }

    #[test]
    fn rfc7239_forwarded() {
        let r = rules(&["127.0.0.1"], ForwardedHeader::Forwarded);
        let h = headers(&[(
            "forwarded",
            r#"for="[2001:db8:cafe::17]:4711";proto=https, for=127.0.0.1"#,
        )]);
        let f = r.facts("127.0.0.1".parse().unwrap(), &h, false);
        assert_eq!(f.ip, "2001:db8:cafe::17".parse::<IpAddr>().unwrap());
        assert_eq!(f.scheme, "https");
        let h = headers(&[(
            "forwarded",
            "for=192.0.2.60:8080;proto=http;by=203.0.113.43",
        )]);
        let f = r.facts("127.0.0.1".parse().unwrap(), &h, false);
        assert_eq!(f.ip, "192.0.2.60".parse::<IpAddr>().unwrap());
        let h = headers(&[("forwarded", "for=_hidden")]);
        assert_eq!(
            r.facts("127.0.0.1".parse().unwrap(), &h, false).ip,
            "127.0.0.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn country_table_most_specific_wins() {
        let mut t = CountryTable::default();
        let problems = t.add_csv(
            "network,country\n# comment\n10.0.0.0/8,US\n10.1.0.0/16,de\n2001:db8::/32,FR\nbad,US\n10.9.0.0/16,USA\n",
        );
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(problems[0].0, 6);
        assert_eq!(problems[1].0, 7);
        assert_eq!(t.lookup("10.2.3.4".parse().unwrap()), Some("US"));
        assert_eq!(t.lookup("10.1.3.4".parse().unwrap()), Some("DE"));
        assert_eq!(t.lookup("2001:db8::9".parse().unwrap()), Some("FR"));
        assert_eq!(t.lookup("11.0.0.1".parse().unwrap()), None);
        let mut r = rules(&[], ForwardedHeader::XForwardedFor);
        r.table = t;
        assert_eq!(
            r.country("::ffff:10.1.0.1".parse().unwrap()).as_deref(),
            Some("DE")
        );
    }
}
