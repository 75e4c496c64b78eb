//! Path patterns with captures (`/old/{id}/{*rest}`) and templates with
//! variables (`https://{host}/new/{id}/{rest}`).

/// The variables every template may use besides the captures of its pattern.
pub const VARS: &[&str] = &[
    "scheme", "host", "path", "query", "method", "id", "ip", "country",
];

/// The request facts a template can refer to.
#[derive(Debug, Clone, Copy, Default)]
pub struct Vars<'a> {
    /// `http` or `https`.
    pub scheme: &'a str,
    /// The authority as sent.
    pub host: &'a str,
    /// The current path.
    pub path: &'a str,
    /// The current query, raw, without `?`.
    pub query: &'a str,
    /// The request method.
    pub method: &'a str,
    /// The node's request id.
    pub id: &'a str,
    /// The client ip.
    pub ip: &'a str,
    /// The client country, or empty.
    pub country: &'a str,
}

impl Vars<'_> {
    fn get(&self, var: Var) -> &str {
        match var {
            Var::Scheme => self.scheme,
            Var::Host => self.host,
            Var::Path => self.path,
            Var::Query => self.query,
            Var::Method => self.method,
            Var::Id => self.id,
            Var::Ip => self.ip,
            Var::Country => self.country,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Var {
    Scheme,
    Host,
    Path,
    Query,
    Method,
    Id,
    Ip,
    Country,
}

impl Var {
    fn parse(name: &str) -> Option<Var> {
        Some(match name {
            "scheme" => Var::Scheme,
            "host" => Var::Host,
            "path" => Var::Path,
            "query" => Var::Query,
            "method" => Var::Method,
            "id" => Var::Id,
            "ip" => Var::Ip,
            "country" => Var::Country,
            _ => return None,
        })
    }
}

/// A capture or variable name: ASCII letters, digits and `_`.
pub fn is_ident(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Lit(String),
    One(String),
    Rest(String),
}

/// A path pattern: literal segments, `{name}` (one non-empty segment) and a
/// final `{*name}` (the rest: zero or more segments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    segs: Vec<Seg>,
}

impl Pattern {
    /// Parse `s`; the error says what is wrong.
    pub fn parse(s: &str) -> Result<Self, String> {
        let Some(body) = s.strip_prefix('/') else {
            return Err(format!("pattern `{s}` must start with `/`"));
        };
        let parts: Vec<&str> = body.split('/').collect();
        let mut segs = Vec::with_capacity(parts.len());
        let mut names: Vec<&str> = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            if let Some(inner) = part.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
                let (rest, name) = match inner.strip_prefix('*') {
                    Some(n) => (true, n),
                    None => (false, inner),
                };
                if !is_ident(name) {
                    return Err(format!(
                        "bad capture `{{{inner}}}` in pattern `{s}`: names are letters, digits and `_`"
                    ));
                }
                if names.contains(&name) {
                    return Err(format!("capture `{name}` appears twice in pattern `{s}`"));
                }
                if rest && i + 1 != parts.len() {
                    return Err(format!(
                        "`{{*{name}}}` must be the last segment of pattern `{s}`"
                    ));
                }
                names.push(name);
                segs.push(if rest {
                    Seg::Rest(name.to_string())
                } else {
                    Seg::One(name.to_string())
                });
            } else if part.contains(['{', '}']) {
                return Err(format!(
                    "segment `{part}` of pattern `{s}`: a capture must be a whole segment (`{{name}}` or `{{*name}}`)"
                ));
            } else {
                segs.push(Seg::Lit((*part).to_string()));
            }
        }
        Ok(Pattern { segs })
    }

    /// The capture names, in order.
    pub fn names(&self) -> Vec<&str> {
        self.segs
            .iter()
            .filter_map(|s| match s {
                Seg::Lit(_) => None,
                Seg::One(n) | Seg::Rest(n) => Some(n.as_str()),
            })
            .collect()
    }

    /// Match `path`; the captured values in the order of [`Pattern::names`].
    pub fn matches<'p>(&self, path: &'p str) -> Option<Vec<&'p str>> {
        let mut remaining = Some(path.strip_prefix('/')?);
        let mut caps = Vec::new();
        for seg in &self.segs {
            if let Seg::Rest(_) = seg {
                caps.push(remaining.unwrap_or(""));
                return Some(caps);
            }
            let r = remaining?;
            let (cur, next) = match r.split_once('/') {
                Some((a, b)) => (a, Some(b)),
                None => (r, None),
            };
            match seg {
                Seg::Lit(l) if l == cur => {}
                Seg::One(_) if !cur.is_empty() => caps.push(cur),
                _ => return None,
            }
            remaining = next;
        }
        remaining.is_none().then_some(caps)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    Cap(usize),
    Var(Var),
}

/// A template: literal text with `{name}` substitutions (`{{` and `}}` are
/// literal braces).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
    has_query: bool,
}

impl Template {
    /// Parse `s`; `{name}` must be one of `captures` or a [`VARS`] name (a
    /// capture hides a variable of the same name).
    pub fn parse(s: &str, captures: &[&str]) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = s;
        while let Some(i) = rest.find(['{', '}']) {
            lit.push_str(&rest[..i]);
            let tail = &rest[i..];
            if let Some(after) = tail.strip_prefix("{{") {
                lit.push('{');
                rest = after;
            } else if let Some(after) = tail.strip_prefix("}}") {
                lit.push('}');
                rest = after;
            } else if let Some(after) = tail.strip_prefix('{') {
                let Some(end) = after.find('}') else {
                    return Err(format!("unclosed `{{` in template `{s}`"));
                };
                let name = &after[..end];
                let part = if let Some(i) = captures.iter().position(|c| *c == name) {
                    Part::Cap(i)
                } else if let Some(v) = Var::parse(name) {
                    Part::Var(v)
                } else {
                    let caps = if captures.is_empty() {
                        "none".to_string()
                    } else {
                        captures.join(", ")
                    };
                    return Err(format!(
                        "unknown variable `{{{name}}}` in template `{s}` (captures: {caps}; variables: {})",
                        VARS.join(", ")
                    ));
                };
                if !lit.is_empty() {
                    parts.push(Part::Lit(std::mem::take(&mut lit)));
                }
                parts.push(part);
                rest = &after[end + 1..];
            } else {
                return Err(format!(
                    "stray `}}` in template `{s}` (write `}}}}` for a literal brace)"
                ));
            }
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        let has_query = parts
            .iter()
            .any(|p| matches!(p, Part::Lit(l) if l.contains('?')));
        Ok(Template { parts, has_query })
    }

    /// Does the template's literal text contain a `?`?
    pub fn has_query(&self) -> bool {
        self.has_query
    }

    /// The literal text the template starts with.
    pub fn literal_prefix(&self) -> &str {
        match self.parts.first() {
            Some(Part::Lit(l)) => l,
            _ => "",
        }
    }

    /// Does the template start with variable `name`?
    pub fn starts_with_var(&self, name: &str) -> bool {
        matches!(self.parts.first(), Some(Part::Var(v)) if Var::parse(name) == Some(*v))
    }

    /// Substitute `caps` (in the pattern's order) and `vars`.
    pub fn render(&self, caps: &[&str], vars: &Vars<'_>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Lit(l) => out.push_str(l),
                Part::Cap(i) => out.push_str(caps.get(*i).copied().unwrap_or("")),
                Part::Var(v) => out.push_str(vars.get(*v)),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_segments() {
        let cases: &[(&str, &str, Option<&[&str]>)] = &[
            ("/old/{id}", "/old/42", Some(&["42"])),
            ("/old/{id}", "/old/", None),
            ("/old/{id}", "/old/42/", None),
            ("/old/{id}/", "/old/42/", Some(&["42"])),
            ("/old/{id}", "/old/4/2", None),
            ("/old/{*rest}", "/old", Some(&[""])),
            ("/old/{*rest}", "/old/", Some(&[""])),
            ("/old/{*rest}", "/old/a/b/", Some(&["a/b/"])),
            ("/old/{*rest}", "/older/a", None),
            ("/{a}/x/{*r}", "/v1/x/y/z", Some(&["v1", "y/z"])),
            ("/", "/", Some(&[])),
            ("/", "/a", None),
            ("/{*all}", "/", Some(&[""])),
            ("/a", "/A", None),
        ];
        for (pat, path, want) in cases {
            let p = Pattern::parse(pat).unwrap();
            let got = p.matches(path);
            assert_eq!(got.as_deref(), *want, "{pat} vs {path}");
        }
    }

    #[test]
    fn bad_patterns() {
        for (pat, msg) in [
            ("old", "must start with `/`"),
            ("/{*r}/x", "must be the last"),
            ("/a{b}", "whole segment"),
            ("/{a}/{a}", "twice"),
            ("/{a-b}", "bad capture"),
            ("/{}", "bad capture"),
        ] {
            let err = Pattern::parse(pat).unwrap_err();
            assert!(err.contains(msg), "{pat}: {err}");
        }
    }

    #[test]
    fn templates_render() {
        let t = Template::parse("https://{host}/new/{rest}?x={{1}}", &["rest"]).unwrap();
        let vars = Vars {
            host: "example.com",
            ..Vars::default()
        };
        assert_eq!(
            t.render(&["a/b"], &vars),
            "https://example.com/new/a/b?x={1}"
        );
        assert!(t.has_query());
        assert!(
            Template::parse("/x/{nope}", &["id"])
                .unwrap_err()
                .contains("unknown variable `{nope}`")
        );
        assert!(
            Template::parse("/x/{id", &[])
                .unwrap_err()
                .contains("unclosed")
        );
        assert!(Template::parse("/x/}", &[]).unwrap_err().contains("stray"));
    }
}
