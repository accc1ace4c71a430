//! Custom routes: user-declared `[host]/pattern -> function[@tag]` rules, validated once when the
//! table is built so that matching a request is a scan over pre-parsed patterns with no allocation.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Longest pattern accepted, in bytes.
pub const MAX_PATTERN_LEN: usize = 1024;
/// Most segments a pattern may have (the final `*` counts).
pub const MAX_SEGMENTS: usize = 64;

/// One custom route as a user declares it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// Only requests for this host match; `None` matches requests for any host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The path pattern (syntax in the crate documentation).
    pub path: String,
    pub function: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

impl fmt::Display for RouteSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(host) = &self.host {
            f.write_str(host)?;
        }
        write!(f, "{} -> {}", self.path, self.function)?;
        if let Some(tag) = &self.tag {
            write!(f, "@{tag}")?;
        }
        Ok(())
    }
}

/// Why a route cannot be added. The `route`, `existing` and `new` strings are routes in their
/// [`RouteSpec`] display form.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RouteError {
    /// A bad pattern, host, function name or tag (a client error: 400).
    #[error("route {route} is invalid: {why}")]
    Invalid { route: String, why: String },
    /// A host-less route that the platform's own paths would always shadow (400).
    #[error("route {route} {}", reserved_reason(route))]
    Reserved { route: String },
    /// Two routes that would match exactly the same requests (409).
    #[error("route {new} conflicts with route {existing}: both match the same requests")]
    Conflict { existing: String, new: String },
}

/// The custom routes in force: validated, conflict-free, indexed for matching.
///
/// Cloning is cheap (the table is shared), so a router holding it can be cloned per swap.
#[derive(Clone, Debug, Default)]
pub struct Routes {
    table: Arc<Table>,
}

#[derive(Debug, Default)]
struct Table {
    /// Normalised specs, in the order they were given.
    specs: Vec<RouteSpec>,
    /// Parallel to `specs`.
    patterns: Vec<Pattern>,
    /// Indices into `specs` of the host-less routes, most specific first.
    hostless: Vec<usize>,
    /// Per host (lowercase, sorted for binary search): indices, most specific first.
    by_host: Vec<(String, Vec<usize>)>,
}

#[derive(Clone, Debug)]
struct Pattern {
    segments: Vec<Segment>,
    /// Ends in `*`: also matches anything below the segments (and the segments alone).
    star: bool,
    /// The pattern with parameter names erased: two routes on one host with the same shape
    /// match the same requests.
    shape: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param,
}

/// What a matching route contributes to a [`crate::Target`].
pub(crate) struct Matched<'a> {
    pub function: &'a str,
    pub tag: Option<&'a str>,
    pub pattern: &'a str,
}

impl Routes {
    /// Validates every spec and rejects conflicts among them. Hosts are normalised to lowercase
    /// and a pattern's trailing slash is dropped, so [`Routes::specs`] shows the canonical form.
    pub fn new(specs: Vec<RouteSpec>) -> Result<Routes, RouteError> {
        let mut checked = Vec::with_capacity(specs.len());
        let mut patterns = Vec::with_capacity(specs.len());
        let mut seen: HashMap<(Option<String>, String), usize> = HashMap::with_capacity(specs.len());
        for spec in specs {
            let (spec, pattern) = check(spec)?;
            let key = (spec.host.clone(), pattern.shape.clone());
            if let Some(&i) = seen.get(&key) {
                let existing: &RouteSpec = &checked[i];
                return Err(RouteError::Conflict { existing: existing.to_string(), new: spec.to_string() });
            }
            seen.insert(key, checked.len());
            checked.push(spec);
            patterns.push(pattern);
        }
        Ok(Routes::build(checked, patterns))
    }

    /// The routes, normalised, in the order they were added.
    pub fn specs(&self) -> &[RouteSpec] {
        &self.table.specs
    }

    pub fn len(&self) -> usize {
        self.table.specs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.specs.is_empty()
    }

    /// A table with `spec` added, or an error (self is unchanged either way). A route with the
    /// same host and an equivalent pattern already present is a [`RouteError::Conflict`].
    pub fn with(&self, spec: RouteSpec) -> Result<Routes, RouteError> {
        let (spec, pattern) = check(spec)?;
        let t = &self.table;
        if let Some(i) =
            (0..t.specs.len()).find(|&i| t.specs[i].host == spec.host && t.patterns[i].shape == pattern.shape)
        {
            return Err(RouteError::Conflict { existing: t.specs[i].to_string(), new: spec.to_string() });
        }
        let mut specs = t.specs.clone();
        let mut patterns = t.patterns.clone();
        specs.push(spec);
        patterns.push(pattern);
        Ok(Routes::build(specs, patterns))
    }

    /// A table without the route of this host and path, or `None` if there is no such route.
    /// Host and path are compared in their normalised forms (lowercase host, no trailing slash),
    /// parameter names included: `/u/{name}` does not remove `/u/{id}`.
    pub fn without(&self, host: Option<&str>, path: &str) -> Option<Routes> {
        let host = host.map(normalise_host);
        let path = canonical_path(path);
        let t = &self.table;
        let i = t.specs.iter().position(|s| s.host.as_deref() == host.as_deref() && s.path == path)?;
        let mut specs = t.specs.clone();
        let mut patterns = t.patterns.clone();
        specs.remove(i);
        patterns.remove(i);
        Some(Routes::build(specs, patterns))
    }

    /// Routes that point at `function`, so removing a function can say which routes it breaks.
    pub fn for_function<'a>(&'a self, function: &'a str) -> impl Iterator<Item = &'a RouteSpec> + 'a {
        self.table.specs.iter().filter(move |s| s.function == function)
    }

    fn build(specs: Vec<RouteSpec>, patterns: Vec<Pattern>) -> Routes {
        let by_specificity = |a: &usize, b: &usize| more_specific(&patterns[*a], &patterns[*b]);
        let mut hostless = Vec::new();
        let mut by_host: Vec<(String, Vec<usize>)> = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            match &spec.host {
                None => hostless.push(i),
                Some(h) => match by_host.binary_search_by(|(k, _)| k.as_str().cmp(h)) {
                    Ok(at) => by_host[at].1.push(i),
                    Err(at) => by_host.insert(at, (h.clone(), vec![i])),
                },
            }
        }
        hostless.sort_by(by_specificity);
        for (_, list) in &mut by_host {
            list.sort_by(by_specificity);
        }
        Routes { table: Arc::new(Table { specs, patterns, hostless, by_host }) }
    }

    /// The most specific route for `host` (already port- and dot-stripped, any case) and `path`.
    pub(crate) fn match_host<'a>(&'a self, host: &str, path: &str) -> Option<Matched<'a>> {
        let t = &self.table;
        if t.by_host.is_empty() {
            return None;
        }
        let lower = host.bytes().map(|b| b.to_ascii_lowercase());
        let at = t.by_host.binary_search_by(|(k, _)| k.bytes().cmp(lower.clone())).ok()?;
        self.first_match(&t.by_host[at].1, path)
    }

    pub(crate) fn match_hostless<'a>(&'a self, path: &str) -> Option<Matched<'a>> {
        self.first_match(&self.table.hostless, path)
    }

    /// The lists are sorted most specific first, so the first hit is the longest match.
    fn first_match<'a>(&'a self, list: &[usize], path: &str) -> Option<Matched<'a>> {
        let t = &self.table;
        let &i = list.iter().find(|&&i| t.patterns[i].matches(path))?;
        let spec = &t.specs[i];
        Some(Matched { function: &spec.function, tag: spec.tag.as_deref(), pattern: &spec.path })
    }

    /// Specs whose host satisfies `pred` (the router uses it to find shadowed routes).
    pub(crate) fn with_host_where<'a>(
        &'a self,
        pred: impl Fn(&str) -> bool + 'a,
    ) -> impl Iterator<Item = &'a RouteSpec> + 'a {
        self.table.specs.iter().filter(move |s| s.host.as_deref().is_some_and(&pred))
    }
}

impl TryFrom<Vec<RouteSpec>> for Routes {
    type Error = RouteError;
    fn try_from(specs: Vec<RouteSpec>) -> Result<Self, Self::Error> {
        Routes::new(specs)
    }
}

impl From<Routes> for Vec<RouteSpec> {
    fn from(routes: Routes) -> Self {
        routes.table.specs.clone()
    }
}

impl Serialize for Routes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.table.specs.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Routes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Routes::new(Vec::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl Pattern {
    fn matches(&self, path: &str) -> bool {
        let mut rest = path_segments(path);
        for seg in &self.segments {
            let Some(s) = rest.next() else { return false };
            let ok = match seg {
                Segment::Literal(l) => s == l,
                Segment::Param => !s.is_empty(),
            };
            if !ok {
                return false;
            }
        }
        self.star || rest.next().is_none()
    }

    /// Per-position ranks: literal 3 > parameter 2 > end of an exact pattern 1 > `*` 0.
    fn ranks(&self) -> impl Iterator<Item = u8> + '_ {
        let tail = if self.star { 0 } else { 1 };
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Literal(_) => 3,
                Segment::Param => 2,
            })
            .chain(std::iter::once(tail))
    }
}

/// Most specific first. Both patterns matching one path means their literals agree wherever both
/// have literals, so the first differing rank decides: literal beats parameter beats `*`, and an
/// exact pattern beats a `*` with the same prefix. Equal ranks can only happen for patterns that
/// never match the same path; the shape breaks those ties so the order is deterministic.
fn more_specific(a: &Pattern, b: &Pattern) -> Ordering {
    b.ranks().cmp(a.ranks()).then_with(|| a.shape.cmp(&b.shape))
}

/// A request path's segments, with the leading slash and one trailing slash ignored.
fn path_segments(path: &str) -> impl Iterator<Item = &str> {
    let body = path.strip_prefix('/').unwrap_or(path);
    let body = body.strip_suffix('/').unwrap_or(body);
    let mut it = body.split('/');
    if body.is_empty() {
        it.next(); // "" splits into one empty segment; the root has none
    }
    it
}

/// Validates and normalises a spec, returning it with its parsed pattern.
fn check(mut spec: RouteSpec) -> Result<(RouteSpec, Pattern), RouteError> {
    let invalid = |spec: &RouteSpec, why: String| RouteError::Invalid { route: spec.to_string(), why };
    // Errors quote the route as the user wrote it, so normalise only once all checks pass.
    let host = spec.host.as_deref().map(validate_host).transpose().map_err(|why| invalid(&spec, why))?;
    validate_name("function name", &spec.function).map_err(|why| invalid(&spec, why))?;
    if let Some(tag) = &spec.tag {
        validate_name("tag", tag).map_err(|why| invalid(&spec, why))?;
    }
    let pattern = parse_pattern(&spec.path).map_err(|why| invalid(&spec, why))?;
    spec.host = host;
    spec.path = canonical_path(&spec.path);
    if spec.host.is_none() && is_reserved(&pattern) {
        return Err(RouteError::Reserved { route: spec.to_string() });
    }
    Ok((spec, pattern))
}

/// Drops one trailing slash (except from the root), which patterns treat as insignificant.
fn canonical_path(path: &str) -> String {
    match path.strip_suffix('/') {
        Some(p) if !p.is_empty() => p.to_owned(),
        _ => path.to_owned(),
    }
}

fn normalise_host(host: &str) -> String {
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

fn validate_host(host: &str) -> Result<String, String> {
    if host.starts_with("*.") {
        return Err(format!("wildcard hosts like {host:?} are not supported; add one route per host"));
    }
    if host.contains(':') {
        return Err(format!("host {host:?} must not include a port; routes match any port"));
    }
    let normal = normalise_host(host);
    if normal.is_empty() {
        return Err("host must not be empty; leave it out to match any host".into());
    }
    if normal.len() > 253 {
        return Err(format!("host {host:?} is longer than 253 characters"));
    }
    for label in normal.split('.') {
        let b = label.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 63
            && b[0] != b'-'
            && b[b.len() - 1] != b'-'
            && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-');
        if !ok {
            return Err(format!(
                "host {host:?} is not a DNS name: each dot-separated label must be 1 to 63 letters, \
                 digits or '-', not starting or ending with '-'"
            ));
        }
    }
    Ok(normal)
}

/// yun's function-name rules (shared by tags): they double as DNS labels in host routing.
fn validate_name(what: &str, name: &str) -> Result<(), String> {
    let b = name.as_bytes();
    if b.is_empty() {
        return Err(format!("{what} must not be empty"));
    }
    if b.len() > 63 {
        return Err(format!("{what} {name:?} is longer than 63 characters"));
    }
    let ok = b[0].is_ascii_lowercase()
        && b[b.len() - 1] != b'-'
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-');
    if !ok {
        return Err(format!(
            "{what} {name:?} is invalid: use lowercase letters, digits and '-', starting with a letter \
             and not ending with '-'"
        ));
    }
    Ok(())
}

fn parse_pattern(raw: &str) -> Result<Pattern, String> {
    if !raw.starts_with('/') {
        return Err(format!("path pattern {raw:?} must start with '/'"));
    }
    if raw.len() > MAX_PATTERN_LEN {
        return Err(format!("path pattern is longer than {MAX_PATTERN_LEN} bytes"));
    }
    let mut pattern = Pattern { segments: Vec::new(), star: false, shape: String::new() };
    if raw == "/" {
        pattern.shape.push('/');
        return Ok(pattern);
    }
    let body = &raw[1..];
    let body = body.strip_suffix('/').unwrap_or(body);
    let mut params: Vec<&str> = Vec::new();
    for (i, seg) in body.split('/').enumerate() {
        if pattern.star {
            return Err(format!("in path pattern {raw:?}, '*' must be the last segment"));
        }
        if i >= MAX_SEGMENTS {
            return Err(format!("path pattern {raw:?} has more than {MAX_SEGMENTS} segments"));
        }
        pattern.shape.push('/');
        if seg.is_empty() {
            return Err(format!("path pattern {raw:?} has an empty segment (two slashes in a row)"));
        }
        if seg == "*" {
            pattern.star = true;
            pattern.shape.push('*');
            continue;
        }
        if let Some(inner) = seg.strip_prefix('{') {
            let name = inner.strip_suffix('}').ok_or_else(|| {
                format!("segment {seg:?} of path pattern {raw:?} must be a whole {{param}} segment")
            })?;
            if name.is_empty() {
                return Err(format!("in path pattern {raw:?}, {{}} needs a parameter name, like {{id}}"));
            }
            if !name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') {
                return Err(format!(
                    "parameter {seg} in path pattern {raw:?} must be named with letters, digits and '_'"
                ));
            }
            if params.contains(&name) {
                return Err(format!("parameter {seg} appears twice in path pattern {raw:?}"));
            }
            params.push(name);
            pattern.segments.push(Segment::Param);
            pattern.shape.push_str("{}");
            continue;
        }
        if let Some(c) = seg.chars().find(|&c| !c.is_ascii_graphic() || "{}*?#".contains(c)) {
            return Err(format!(
                "segment {seg:?} of path pattern {raw:?} contains {c:?}; literal segments are printable \
                 ASCII without spaces or any of {{ }} * ? # ('*' is only allowed as a whole last segment)"
            ));
        }
        pattern.segments.push(Segment::Literal(seg.to_owned()));
        pattern.shape.push_str(seg);
    }
    Ok(pattern)
}

/// Paths the router sends to the platform (or treats as `/fn/` addresses) before it looks at
/// host-less routes, so a host-less route there could never match.
const V1: &str = "v1";
const FN: &str = "fn";
const HEALTHZ: &str = "healthz";
const METRICS: &str = "metrics";
const LAMBDA: &str = "2015-03-31";

fn is_reserved(p: &Pattern) -> bool {
    let Some(Segment::Literal(first)) = p.segments.first() else { return false };
    match first.as_str() {
        V1 | FN => true,
        HEALTHZ | METRICS => p.segments.len() == 1 && !p.star,
        LAMBDA => p.segments.len() > 1 || p.star,
        _ => false,
    }
}

fn reserved_reason(route: &str) -> &'static str {
    let path = route.split(" -> ").next().unwrap_or(route);
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    match first {
        V1 => "is under /v1/, which the platform serves (its management API)",
        FN => "is under /fn/, which addresses functions directly",
        HEALTHZ => "is /healthz, which the platform serves (its health check)",
        METRICS => "is /metrics, which the platform serves (Prometheus metrics)",
        LAMBDA => "is under /2015-03-31/, which the platform serves (the Lambda Invoke API)",
        _ => "is a path the platform serves",
    }
}

#[cfg(test)]
pub(crate) fn spec(host: Option<&str>, path: &str, function: &str, tag: Option<&str>) -> RouteSpec {
    RouteSpec {
        host: host.map(str::to_owned),
        path: path.to_owned(),
        function: function.to_owned(),
        tag: tag.map(str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hostless(path: &str) -> RouteSpec {
        spec(None, path, "f", None)
    }

    fn one(path: &str) -> Routes {
        Routes::new(vec![hostless(path)]).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn matches(pattern: &str, path: &str) -> bool {
        one(pattern).match_hostless(path).is_some()
    }

    /// The pattern of the route that wins for `path` among host-less `patterns`.
    fn winner<'a>(routes: &'a Routes, path: &str) -> Option<&'a str> {
        routes.match_hostless(path).map(|m| m.pattern)
    }

    fn table(patterns: &[&str]) -> Routes {
        Routes::new(patterns.iter().map(|p| hostless(p)).collect()).unwrap()
    }

    fn invalid_why(s: RouteSpec) -> String {
        match Routes::new(vec![s]) {
            Err(RouteError::Invalid { why, .. }) => why,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn exact_patterns_match_only_their_path_trailing_slash_aside() {
        assert!(matches("/api/users", "/api/users"));
        assert!(matches("/api/users", "/api/users/"));
        assert!(matches("/api/users/", "/api/users"));
        assert!(!matches("/api/users", "/api/users/1"));
        assert!(!matches("/api/users", "/api"));
        assert!(!matches("/api/users", "/api/usersx"));
        assert!(!matches("/api/users", "/API/users"), "paths are case-sensitive");
        assert!(!matches("/api/users", "/api//users"));
    }

    #[test]
    fn root_pattern_matches_only_the_root() {
        assert!(matches("/", "/"));
        assert!(matches("/", ""));
        assert!(!matches("/", "/a"));
    }

    #[test]
    fn params_match_exactly_one_non_empty_segment() {
        assert!(matches("/u/{id}", "/u/42"));
        assert!(matches("/u/{id}", "/u/42/"));
        assert!(!matches("/u/{id}", "/u"));
        assert!(!matches("/u/{id}", "/u/"));
        assert!(!matches("/u/{id}", "/u/42/posts"));
        assert!(!matches("/u/{id}", "/u//"));
        assert!(matches("/u/{id}/posts/{post}", "/u/1/posts/2"));
        assert!(!matches("/u/{id}/posts/{post}", "/u/1/comments/2"));
        assert!(matches("/{a}", "/anything"));
    }

    #[test]
    fn star_matches_the_prefix_and_everything_below() {
        assert!(matches("/api/users/*", "/api/users"));
        assert!(matches("/api/users/*", "/api/users/"));
        assert!(matches("/api/users/*", "/api/users/1"));
        assert!(matches("/api/users/*", "/api/users/1/posts/2"));
        assert!(!matches("/api/users/*", "/api/usersx"));
        assert!(!matches("/api/users/*", "/api"));
        assert!(!matches("/api/users/*", "/"));
        assert!(matches("/*", "/"));
        assert!(matches("/*", ""));
        assert!(matches("/*", "/a/b/c"));
        assert!(matches("/u/{id}/*", "/u/1"));
        assert!(matches("/u/{id}/*", "/u/1/x/y"));
        assert!(!matches("/u/{id}/*", "/u"));
    }

    #[test]
    fn literal_beats_param_beats_star() {
        let t = table(&["/u/*", "/u/{id}", "/u/me", "/*"]);
        assert_eq!(winner(&t, "/u/me"), Some("/u/me"));
        assert_eq!(winner(&t, "/u/42"), Some("/u/{id}"));
        assert_eq!(winner(&t, "/u/42/x"), Some("/u/*"));
        assert_eq!(winner(&t, "/u"), Some("/u/*"));
        assert_eq!(winner(&t, "/v"), Some("/*"));
    }

    #[test]
    fn exact_beats_star_of_the_same_prefix() {
        let t = table(&["/api/users/*", "/api/users"]);
        assert_eq!(winner(&t, "/api/users"), Some("/api/users"));
        assert_eq!(winner(&t, "/api/users/"), Some("/api/users"));
        assert_eq!(winner(&t, "/api/users/1"), Some("/api/users/*"));
    }

    #[test]
    fn more_matched_literal_segments_win() {
        let t = table(&["/*", "/a/*", "/a/b/*", "/a/b/c/*"]);
        assert_eq!(winner(&t, "/a/b/c/d"), Some("/a/b/c/*"));
        assert_eq!(winner(&t, "/a/b/x"), Some("/a/b/*"));
        assert_eq!(winner(&t, "/a/x"), Some("/a/*"));
        assert_eq!(winner(&t, "/x"), Some("/*"));
    }

    #[test]
    fn the_first_differing_segment_decides() {
        // A literal earlier in the path outweighs literals later on: the leftmost segment is the
        // most significant, as in a prefix tree.
        let t = table(&["/a/{p}/c/d", "/a/b/*", "/{x}/b/c/d"]);
        assert_eq!(winner(&t, "/a/b/c/d"), Some("/a/b/*"));
        assert_eq!(winner(&t, "/a/z/c/d"), Some("/a/{p}/c/d"));
        assert_eq!(winner(&t, "/z/b/c/d"), Some("/{x}/b/c/d"));
        let t = table(&["/{a}/x", "/y/{b}"]);
        assert_eq!(winner(&t, "/y/x"), Some("/y/{b}"));
    }

    #[test]
    fn order_of_declaration_does_not_change_the_winner() {
        let mut patterns = vec!["/*", "/a/*", "/a/{x}", "/a/b", "/{y}/b", "/a/b/*", "/{y}/*"];
        let paths = ["/a/b", "/a/c", "/z/b", "/a/b/c", "/z", "/", "/a", "/q/r/s"];
        let expected: Vec<_> = {
            let t = table(&patterns);
            paths.iter().map(|p| winner(&t, p).map(str::to_owned)).collect()
        };
        assert_eq!(expected[0].as_deref(), Some("/a/b"));
        assert_eq!(expected[2].as_deref(), Some("/{y}/b"));
        for _ in 0..patterns.len() {
            patterns.rotate_left(1);
            let t = table(&patterns);
            let got: Vec<_> = paths.iter().map(|p| winner(&t, p).map(str::to_owned)).collect();
            assert_eq!(got, expected, "{patterns:?}");
            patterns.reverse();
            let t = table(&patterns);
            let got: Vec<_> = paths.iter().map(|p| winner(&t, p).map(str::to_owned)).collect();
            assert_eq!(got, expected, "{patterns:?}");
        }
    }

    #[test]
    fn routes_with_equal_rank_never_both_match() {
        // Same shape of ranks, different literals: the order between them is only a tie-break.
        let t = table(&["/a/x", "/b/x", "/c/x"]);
        assert_eq!(winner(&t, "/b/x"), Some("/b/x"));
        assert_eq!(winner(&t, "/c/x"), Some("/c/x"));
        assert_eq!(winner(&t, "/d/x"), None);
    }

    #[test]
    fn conflicts_name_both_routes() {
        let err =
            Routes::new(vec![spec(None, "/u/{id}", "a", None), spec(None, "/u/{name}", "b", Some("t"))])
                .unwrap_err();
        assert_eq!(
            err,
            RouteError::Conflict { existing: "/u/{id} -> a".into(), new: "/u/{name} -> b@t".into() }
        );
        assert_eq!(
            err.to_string(),
            "route /u/{name} -> b@t conflicts with route /u/{id} -> a: both match the same requests"
        );
    }

    #[test]
    fn equivalent_patterns_conflict() {
        for (a, b) in [
            ("/a", "/a"),
            ("/a", "/a/"),
            ("/a/*", "/a/*/"),
            ("/x/{a}/y/{b}", "/x/{c}/y/{d}"),
            ("/{a}/*", "/{b}/*"),
        ] {
            let r = Routes::new(vec![hostless(a), hostless(b)]);
            assert!(matches!(r, Err(RouteError::Conflict { .. })), "{a} vs {b}: {r:?}");
        }
    }

    #[test]
    fn more_specific_patterns_do_not_conflict() {
        for (a, b) in [("/a", "/a/*"), ("/a/{x}", "/a/b"), ("/a/{x}", "/a/*"), ("/a", "/b"), ("/*", "/")] {
            assert!(Routes::new(vec![hostless(a), hostless(b)]).is_ok(), "{a} vs {b}");
        }
    }

    #[test]
    fn conflicts_are_per_host() {
        let ok = Routes::new(vec![
            spec(None, "/a", "f", None),
            spec(Some("x.com"), "/a", "f", None),
            spec(Some("y.com"), "/a", "f", None),
        ]);
        assert!(ok.is_ok());
        let err =
            Routes::new(vec![spec(Some("x.com"), "/a", "f", None), spec(Some("X.COM"), "/a/", "g", None)])
                .unwrap_err();
        assert_eq!(err, RouteError::Conflict { existing: "x.com/a -> f".into(), new: "x.com/a -> g".into() });
    }

    #[test]
    fn reserved_hostless_paths_are_rejected() {
        for (path, why) in [
            ("/v1", "is under /v1/, which the platform serves"),
            ("/v1/", "is under /v1/, which the platform serves"),
            ("/v1/*", "is under /v1/, which the platform serves"),
            ("/v1/functions/{name}", "is under /v1/, which the platform serves"),
            ("/fn", "is under /fn/"),
            ("/fn/*", "is under /fn/"),
            ("/fn/hello/x", "is under /fn/"),
            ("/healthz", "is /healthz"),
            ("/2015-03-31/*", "is under /2015-03-31/"),
            ("/2015-03-31/functions/{f}/invocations", "is under /2015-03-31/"),
        ] {
            let err = Routes::new(vec![hostless(path)]).unwrap_err();
            let route = format!("{} -> f", canonical_path(path));
            assert_eq!(err, RouteError::Reserved { route: route.clone() }, "{path}");
            assert!(err.to_string().starts_with(&format!("route {route} {why}")), "{path}: {err}");
        }
    }

    #[test]
    fn paths_next_to_reserved_ones_are_allowed() {
        for path in
            ["/v1x", "/v2/a", "/fnord", "/healthz/x", "/healthz/*", "/2015-03-31", "/*", "/{x}", "/{x}/*"]
        {
            assert!(Routes::new(vec![hostless(path)]).is_ok(), "{path}");
        }
    }

    #[test]
    fn reserved_paths_are_allowed_with_a_host() {
        for path in ["/v1/*", "/fn/*", "/healthz", "/2015-03-31/*"] {
            assert!(Routes::new(vec![spec(Some("api.example.com"), path, "f", None)]).is_ok(), "{path}");
        }
    }

    #[test]
    fn invalid_patterns_are_rejected_with_reasons() {
        let cases = [
            ("", "must start with '/'"),
            ("api", "must start with '/'"),
            ("//", "empty segment"),
            ("/a//b", "empty segment"),
            ("/a/*/b", "'*' must be the last segment"),
            ("/a*", "contains '*'"),
            ("/a/b*", "contains '*'"),
            ("/a?b", "contains '?'"),
            ("/a#b", "contains '#'"),
            ("/a b", "contains ' '"),
            ("/a\tb", "contains '\\t'"),
            ("/é", "contains 'é'"),
            ("/a}", "contains '}'"),
            ("/{id", "whole {param} segment"),
            ("/x{id}", "contains '{'"),
            ("/{id}x", "whole {param} segment"),
            ("/{}", "needs a parameter name"),
            ("/{a-b}", "letters, digits and '_'"),
            ("/{id}/{id}", "appears twice"),
        ];
        for (path, why) in cases {
            let got = invalid_why(hostless(path));
            assert!(got.contains(why), "{path:?}: {got}");
        }
    }

    #[test]
    fn pattern_size_limits() {
        let max_segments = "/a".repeat(MAX_SEGMENTS);
        assert!(Routes::new(vec![hostless(&max_segments)]).is_ok());
        assert!(invalid_why(hostless(&format!("{max_segments}/a"))).contains("more than 64 segments"));
        assert!(invalid_why(hostless(&format!("{max_segments}/*"))).contains("more than 64 segments"));
        let long = format!("/{}", "a".repeat(MAX_PATTERN_LEN - 1));
        assert!(Routes::new(vec![hostless(&long)]).is_ok());
        assert!(invalid_why(hostless(&format!("{long}b"))).contains("longer than 1024 bytes"));
    }

    #[test]
    fn invalid_hosts_are_rejected_with_reasons() {
        let cases = [
            ("*.example.com", "wildcard hosts"),
            ("example.com:8080", "must not include a port"),
            ("", "must not be empty"),
            (".", "must not be empty"),
            ("a..b", "not a DNS name"),
            ("-a.com", "not a DNS name"),
            ("a-.com", "not a DNS name"),
            ("a_b.com", "not a DNS name"),
            ("a b.com", "not a DNS name"),
            ("é.com", "not a DNS name"),
            ("[::1]", "must not include a port"),
        ];
        for (host, why) in cases {
            let got = invalid_why(spec(Some(host), "/", "f", None));
            assert!(got.contains(why), "{host:?}: {got}");
        }
        let long_label = format!("{}.com", "a".repeat(64));
        assert!(invalid_why(spec(Some(&long_label), "/", "f", None)).contains("not a DNS name"));
        let long_host = vec!["a".repeat(63); 4].join(".");
        assert!(invalid_why(spec(Some(&long_host), "/", "f", None)).contains("longer than 253"));
    }

    #[test]
    fn hosts_are_normalised() {
        let r = Routes::new(vec![spec(Some("Api.Example.COM."), "/a/", "f", None)]).unwrap();
        assert_eq!(r.specs()[0], spec(Some("api.example.com"), "/a", "f", None));
        assert!(Routes::new(vec![spec(Some("localhost"), "/", "f", None)]).is_ok());
        assert!(Routes::new(vec![spec(Some("127.0.0.1"), "/", "f", None)]).is_ok());
    }

    #[test]
    fn function_names_and_tags_follow_yun_rules() {
        for name in ["", "Users", "1abc", "-a", "a-", "a_b", "a.b", &"a".repeat(64)] {
            let why = invalid_why(spec(None, "/x", name, None));
            assert!(why.starts_with("function name"), "{name:?}: {why}");
            let why = invalid_why(spec(None, "/x", "f", Some(name)));
            assert!(why.starts_with("tag"), "{name:?}: {why}");
        }
        for name in ["a", "users", "a-b-2", &"a".repeat(63)] {
            assert!(Routes::new(vec![spec(None, "/x", name, Some(name))]).is_ok(), "{name}");
        }
    }

    #[test]
    fn invalid_error_names_the_route_as_given() {
        let err = Routes::new(vec![spec(Some("API.x.com"), "/a", "Bad", Some("t"))]).unwrap_err();
        let RouteError::Invalid { route, why } = &err else { panic!("{err:?}") };
        assert_eq!(route, "API.x.com/a -> Bad@t");
        assert!(why.contains("\"Bad\""));
        assert!(err.to_string().starts_with("route API.x.com/a -> Bad@t is invalid: function name \"Bad\""));
    }

    #[test]
    fn display_shows_host_only_when_set() {
        assert_eq!(
            spec(Some("api.example.com"), "/api/users/*", "users", Some("prod")).to_string(),
            "api.example.com/api/users/* -> users@prod"
        );
        assert_eq!(spec(None, "/api/users/*", "users", None).to_string(), "/api/users/* -> users");
    }

    #[test]
    fn with_adds_and_leaves_the_original_alone() {
        let a = Routes::default();
        let b = a.with(hostless("/a")).unwrap();
        let c = b.with(spec(Some("x.com"), "/a", "g", None)).unwrap();
        assert!(a.is_empty());
        assert_eq!(b.len(), 1);
        assert_eq!(c.len(), 2);
        assert_eq!(c.specs()[1], spec(Some("x.com"), "/a", "g", None));
        assert_eq!(c.match_host("X.com", "/a").map(|m| m.function), Some("g"));
        assert_eq!(b.match_host("x.com", "/a").map(|m| m.function), None);
    }

    #[test]
    fn with_rejects_conflicts_and_invalid_specs_without_changing_self() {
        let t = Routes::new(vec![hostless("/u/{id}"), hostless("/v")]).unwrap();
        let err = t.with(spec(None, "/u/{name}/", "g", None)).unwrap_err();
        assert_eq!(
            err,
            RouteError::Conflict { existing: "/u/{id} -> f".into(), new: "/u/{name} -> g".into() }
        );
        assert!(matches!(t.with(hostless("/v1/x")), Err(RouteError::Reserved { .. })));
        assert!(matches!(t.with(hostless("nope")), Err(RouteError::Invalid { .. })));
        assert_eq!(t.len(), 2);
        assert_eq!(winner(&t, "/u/1"), Some("/u/{id}"));
    }

    #[test]
    fn with_keeps_longest_match_ordering() {
        let t = Routes::default().with(hostless("/*")).unwrap().with(hostless("/a/*")).unwrap();
        let t = t.with(hostless("/a/b")).unwrap();
        assert_eq!(winner(&t, "/a/b"), Some("/a/b"));
        assert_eq!(winner(&t, "/a/c"), Some("/a/*"));
        assert_eq!(winner(&t, "/c"), Some("/*"));
    }

    #[test]
    fn without_removes_by_normalised_host_and_path() {
        let t = Routes::new(vec![hostless("/a"), spec(Some("x.com"), "/a", "g", None), hostless("/u/{id}")])
            .unwrap();
        let u = t.without(Some("X.COM"), "/a/").expect("present");
        assert_eq!(u.len(), 2);
        assert!(u.match_host("x.com", "/a").is_none());
        assert!(u.match_hostless("/a").is_some());
        let v = t.without(None, "/a").expect("present");
        assert!(v.match_hostless("/a").is_none());
        assert!(v.match_host("x.com", "/a").is_some());
        assert!(t.without(None, "/u/{name}").is_none(), "parameter names must match");
        assert!(t.without(None, "/b").is_none());
        assert!(t.without(Some("y.com"), "/a").is_none());
        assert!(t.without(None, "/u/{id}").is_some());
        assert_eq!(t.len(), 3, "self is unchanged");
        let empty = t.without(None, "/a").and_then(|t| t.without(Some("x.com"), "/a"));
        let empty = empty.and_then(|t| t.without(None, "/u/{id}/")).expect("all present");
        assert!(empty.is_empty());
    }

    #[test]
    fn for_function_lists_its_routes() {
        let t = Routes::new(vec![
            spec(None, "/a", "users", None),
            spec(None, "/b", "orders", None),
            spec(Some("x.com"), "/c", "users", Some("prod")),
        ])
        .unwrap();
        let paths: Vec<_> = t.for_function("users").map(|s| s.path.as_str()).collect();
        assert_eq!(paths, ["/a", "/c"]);
        assert_eq!(t.for_function("orders").count(), 1);
        assert_eq!(t.for_function("none").count(), 0);
        assert_eq!(t.for_function("user").count(), 0);
    }

    #[test]
    fn specs_keep_declaration_order() {
        let t = table(&["/*", "/a/b", "/a/*"]);
        let paths: Vec<_> = t.specs().iter().map(|s| s.path.as_str()).collect();
        assert_eq!(paths, ["/*", "/a/b", "/a/*"]);
    }

    #[test]
    fn spec_deserialises_strictly() {
        use serde::de::value::{Error, MapDeserializer};
        let de = MapDeserializer::<_, Error>::new([("path", "/a"), ("function", "f")].into_iter());
        assert_eq!(RouteSpec::deserialize(de).unwrap(), hostless("/a"));
        let de =
            MapDeserializer::<_, Error>::new([("path", "/a"), ("function", "f"), ("fn", "g")].into_iter());
        let err = RouteSpec::deserialize(de).unwrap_err().to_string();
        assert!(err.contains("unknown field `fn`"), "{err}");
        let de = MapDeserializer::<_, Error>::new([("path", "/a")].into_iter());
        assert!(RouteSpec::deserialize(de).unwrap_err().to_string().contains("missing field `function`"));
    }

    #[test]
    fn routes_deserialise_through_validation() {
        use serde::de::value::{Error, SeqDeserializer};
        let ok = SeqDeserializer::<_, Error>::new(vec![hostless("/a"), hostless("/b")].into_iter());
        assert_eq!(Routes::deserialize(ok).unwrap().len(), 2);
        let bad = SeqDeserializer::<_, Error>::new(vec![hostless("/a"), hostless("/a/")].into_iter());
        let err = Routes::deserialize(bad).unwrap_err().to_string();
        assert!(err.contains("conflicts with route /a -> f"), "{err}");
        assert_eq!(Vec::from(table(&["/x"])), vec![hostless("/x")]);
    }

    impl<'de> serde::de::IntoDeserializer<'de, serde::de::value::Error> for RouteSpec {
        type Deserializer = serde::de::value::MapDeserializer<
            'de,
            std::vec::IntoIter<(&'static str, String)>,
            serde::de::value::Error,
        >;
        fn into_deserializer(self) -> Self::Deserializer {
            let mut fields = vec![("path", self.path), ("function", self.function)];
            fields.extend(self.host.map(|h| ("host", h)));
            fields.extend(self.tag.map(|t| ("tag", t)));
            serde::de::value::MapDeserializer::new(fields.into_iter())
        }
    }
}
