//! Routing that does not grow with the number of routes: a multi-tenant POP has a
//! route per customer host name, and a linear scan made the last of 10,000 cost five
//! times a single route. Routes are indexed by exact host (a hash map), by wildcard
//! suffix (`*.example.com`, one hash lookup per label of the request's host), and
//! those for any host; the first route in configured order still wins.

use std::collections::HashMap;

/// Where each route can match, by position in the configured order.
#[derive(Debug, Default)]
pub struct RouteIndex {
    /// Routes for one exact host, in order.
    exact: HashMap<String, Vec<usize>>,
    /// Routes for `*.suffix`, by suffix, in order.
    wildcard: HashMap<String, Vec<usize>>,
    /// Routes for any host, in order.
    any: Vec<usize>,
    /// Each route's path prefix.
    prefixes: Vec<String>,
}

impl RouteIndex {
    /// The index of routes given as (host pattern, path prefix), in order. A
    /// pattern is an exact host or `*.` and a suffix; none: any host.
    pub fn new<'a>(routes: impl IntoIterator<Item = (Option<&'a str>, &'a str)>) -> RouteIndex {
        let mut index = RouteIndex::default();
        for (i, (host, prefix)) in routes.into_iter().enumerate() {
            index.prefixes.push(prefix.to_string());
            match host {
                None => index.any.push(i),
                Some(pattern) => match pattern.strip_prefix("*.") {
                    Some(suffix) => index.wildcard.entry(suffix.to_string()).or_default(),
                    None => index.exact.entry(pattern.to_string()).or_default(),
                }
                .push(i),
            }
        }
        index
    }

    /// The position of the first route (in configured order) matching `host`
    /// (lower-case, no port) and `path`.
    pub fn find(&self, host: &str, path: &str) -> Option<usize> {
        let first = |list: &[usize]| {
            list.iter()
                .copied()
                .find(|&i| self.prefixes.get(i).is_some_and(|p| path.starts_with(p)))
        };
        let mut best = first(&self.any);
        let mut consider = |list: Option<&Vec<usize>>| {
            if let Some(i) = list.and_then(|l| first(l)) {
                best = Some(best.map_or(i, |b| b.min(i)));
            }
        };
        consider(self.exact.get(host));
        // `*.example.com` matches any host ending in `.example.com`: look up what
        // follows each dot.
        if !self.wildcard.is_empty() {
            let mut rest = host;
            while let Some((_, tail)) = rest.split_once('.') {
                consider(self.wildcard.get(tail));
                rest = tail;
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The linear scan the index replaces: the meaning it must keep.
    fn scan(routes: &[(Option<&str>, &str)], host: &str, path: &str) -> Option<usize> {
        routes.iter().position(|(pattern, prefix)| {
            path.starts_with(prefix)
                && match pattern {
                    None => true,
                    Some(p) => match p.strip_prefix("*.") {
                        Some(suffix) => host
                            .strip_suffix(suffix)
                            .is_some_and(|rest| rest.ends_with('.')),
                        None => host == *p,
                    },
                }
        })
    }

    #[test]
    fn the_index_finds_what_the_scan_finds() {
        let routes = [
            (Some("a.example"), "/live/"),
            (Some("*.example"), "/live/"),
            (None, "/admin/"),
            (Some("a.example"), "/"),
            (Some("*.b.example"), "/"),
            (Some("*.example"), "/"),
            (Some("*."), "/x"),
            (Some("*"), "/"),
            (Some("c.example"), "/vod/"),
            (None, "/"),
        ];
        let index = RouteIndex::new(routes.iter().copied());
        let hosts = [
            "a.example",
            "b.example",
            "x.b.example",
            "y.x.b.example",
            "example",
            ".example",
            "c.example",
            "a.example.",
            "other.test",
            "*",
            "",
        ];
        let paths = ["/", "/live/a.m3u8", "/admin/x", "/vod/1", "/x"];
        for host in hosts {
            for path in paths {
                assert_eq!(
                    index.find(host, path),
                    scan(&routes, host, path),
                    "{host} {path}"
                );
            }
        }
    }

    #[test]
    fn ten_thousand_hosts_each_find_their_own() {
        let names: Vec<String> = (0..10_000).map(|i| format!("c{i}.cdn.test")).collect();
        let index = RouteIndex::new(names.iter().map(|n| (Some(n.as_str()), "/")));
        assert_eq!(index.find("c9999.cdn.test", "/a"), Some(9999));
        assert_eq!(index.find("c0.cdn.test", "/a"), Some(0));
        assert_eq!(index.find("c10000.cdn.test", "/a"), None);
    }
}
