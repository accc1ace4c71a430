//! Which function a request is for, decided from its host and path alone.
//!
//! Pure: no I/O, no knowledge of which functions or tags exist (an unknown name still routes,
//! and the gateway answers 404). Routing a request allocates nothing.
//!
//! # Addressing a function
//!
//! - Host form: any path on `NAME.<base-domain>` or `TAG.NAME.<base-domain>` (exactly one or two
//!   labels before the base domain; deeper hosts are not function hosts). The function owns the
//!   whole host, including paths like `/v1/...`, and sees the path unchanged.
//! - Path form on any host: `/fn/NAME/rest` or `/fn/NAME@TAG/rest`; the function sees `/rest`.
//!   An empty name or tag (`/fn/@t/x`, `/fn/a@/x`) goes to the platform, which answers 404.
//! - Custom routes ([`Routes`]): user-declared `[host]/pattern -> function[@tag]` rules. The
//!   function sees the request's full path, and the target's `route` names the pattern.
//!
//! # Precedence
//!
//! 1. Function hosts (`NAME.<domain>`, `TAG.NAME.<domain>`).
//! 2. Custom routes whose host equals the request's (port and trailing dot ignored, any case).
//! 3. `/fn` and `/fn/...`: a function address, or the platform when malformed.
//! 4. The platform's own paths: `/v1`, `/v1/...`, `/healthz`, `/metrics`, `/2015-03-31/...`.
//! 5. Custom routes without a host.
//! 6. Otherwise the platform (the gateway answers 404).
//!
//! A host-less route that step 3 or 4 would always shadow is rejected ([`RouteError::Reserved`]).
//!
//! # Path patterns
//!
//! A pattern starts with `/` and is a list of `/`-separated segments:
//!
//! - a literal, matched byte for byte: printable ASCII without spaces or any of `{ } * ? #`;
//! - `{param}`: exactly one non-empty segment (names are letters, digits and `_`, unique within
//!   the pattern; they document the route and do not affect matching);
//! - a final `*`: the segments before it and anything below, so `/api/users/*` matches
//!   `/api/users`, `/api/users/` and `/api/users/42/posts`. `/*` matches every path.
//!
//! Without `*` a pattern matches its path exactly. A trailing slash is not significant, in
//! patterns or in requests. At most 64 segments and 1024 bytes.
//!
//! When several routes match, the most specific wins, compared segment by segment from the left:
//! a literal beats `{param}`, which beats `*`; so the route with more matching literal segments
//! in front wins, and an exact pattern beats a `*` pattern with the same prefix. Two routes on the
//! same host (or both host-less) whose patterns are the same after erasing parameter names
//! (`/u/{id}`, `/u/{name}`) match the same requests, and are rejected as a
//! [`RouteError::Conflict`]. That makes the winner unique, whatever order routes were added in.
//!
//! Hosts in routes are lowercase DNS names (input is lowercased), without a port; wildcards
//! (`*.example.com`) are not supported. Function names and tags follow yun's name rules:
//! lowercase letters, digits and `-`, starting with a letter, not ending with `-`, at most 63.

mod routes;

pub use routes::{MAX_PATTERN_LEN, MAX_SEGMENTS, RouteError, RouteSpec, Routes};

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target<'a> {
    /// A function, with the path the function sees (always starting with `/`).
    Function {
        name: &'a str,
        /// The tag addressed (`NAME@TAG`, `TAG.NAME.<domain>`, or a route's tag); `None` for the
        /// function's default.
        tag: Option<&'a str>,
        path: &'a str,
        /// The custom route's pattern when one matched, e.g. `/api/users/*`.
        route: Option<&'a str>,
    },
    /// The platform itself (management API, health, Lambda API, 404s), with the original path.
    Platform,
}

/// The routing rules. Cheap to clone; to change the routes, build a new router with
/// [`Router::with_routes`] and swap it in.
#[derive(Debug, Clone)]
pub struct Router {
    base_domain: String,
    routes: Routes,
}

/// The path prefix that addresses a function on any host.
pub const FUNCTION_PREFIX: &str = "/fn/";

impl Router {
    /// `base_domain` is the domain function hosts live under (`localhost` gives
    /// `hello.localhost`); it is matched case-insensitively. No custom routes.
    pub fn new(base_domain: &str) -> Self {
        Self { base_domain: base_domain.trim_matches('.').to_ascii_lowercase(), routes: Routes::default() }
    }

    /// This router with `routes` in place of its custom routes.
    pub fn with_routes(&self, routes: Routes) -> Router {
        Router { base_domain: self.base_domain.clone(), routes }
    }

    pub fn routes(&self) -> &Routes {
        &self.routes
    }

    /// Routes that can never match because their host is a function host (precedence step 1),
    /// so whoever adds routes can warn about or refuse them.
    pub fn shadowed_routes(&self) -> impl Iterator<Item = &RouteSpec> + '_ {
        self.routes.with_host_where(move |h| self.function_from_host(h).is_some())
    }

    pub fn route<'a>(&'a self, host: Option<&'a str>, path: &'a str) -> Target<'a> {
        let host = host.map(request_host);
        let full_path = if path.is_empty() { "/" } else { path };
        if let Some((name, tag)) = host.and_then(|h| self.function_from_host(h)) {
            return Target::Function { name, tag, path: full_path, route: None };
        }
        let custom = |m: routes::Matched<'a>| Target::Function {
            name: m.function,
            tag: m.tag,
            path: full_path,
            route: Some(m.pattern),
        };
        if let Some(m) = host.and_then(|h| self.routes.match_host(h, path)) {
            return custom(m);
        }
        if let Some(rest) = path.strip_prefix("/fn") {
            if rest.is_empty() {
                return Target::Platform;
            }
            if let Some(rest) = rest.strip_prefix('/') {
                return function_from_path(rest);
            }
        }
        if is_platform_path(path) {
            return Target::Platform;
        }
        self.routes.match_hostless(path).map_or(Target::Platform, custom)
    }

    /// `NAME.<base-domain>` → (NAME, None); `TAG.NAME.<base-domain>` → (NAME, Some(TAG)). Deeper
    /// hosts are left free for later uses. `host` has its port and trailing dot already removed.
    fn function_from_host<'a>(&self, host: &'a str) -> Option<(&'a str, Option<&'a str>)> {
        let split = host.len().checked_sub(self.base_domain.len())?;
        if !host.is_char_boundary(split) {
            return None;
        }
        let (labels, domain) = host.split_at(split);
        if !domain.eq_ignore_ascii_case(&self.base_domain) {
            return None;
        }
        let labels = labels.strip_suffix('.')?;
        match labels.split_once('.') {
            None if !labels.is_empty() => Some((labels, None)),
            Some((tag, name)) if !tag.is_empty() && !name.is_empty() && !name.contains('.') => {
                Some((name, Some(tag)))
            }
            _ => None,
        }
    }
}

/// `rest` is what follows `/fn/`: `NAME[@TAG][/path]`.
fn function_from_path(rest: &str) -> Target<'_> {
    let (address, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let (name, tag) = match address.split_once('@') {
        Some((name, tag)) => (name, Some(tag)),
        None => (address, None),
    };
    if name.is_empty() || tag == Some("") {
        return Target::Platform;
    }
    Target::Function { name, tag, path, route: None }
}

fn is_platform_path(path: &str) -> bool {
    path == "/v1"
        || path.starts_with("/v1/")
        || path == "/healthz"
        || path == "/metrics"
        || path.starts_with("/2015-03-31/")
}

/// The host as routing compares it: without a port or a trailing dot.
fn request_host(host: &str) -> &str {
    let host = strip_port(host);
    host.strip_suffix('.').unwrap_or(host)
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host; // an IPv6 literal is never a function host
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::spec;

    fn r() -> Router {
        Router::new("localhost")
    }

    fn f<'a>(name: &'a str, path: &'a str) -> Target<'a> {
        Target::Function { name, tag: None, path, route: None }
    }

    fn ft<'a>(name: &'a str, tag: &'a str, path: &'a str) -> Target<'a> {
        Target::Function { name, tag: Some(tag), path, route: None }
    }

    fn via<'a>(name: &'a str, tag: Option<&'a str>, path: &'a str, route: &'a str) -> Target<'a> {
        Target::Function { name, tag, path, route: Some(route) }
    }

    /// A router on `localhost` with routes given as `(host, pattern, function)`.
    fn with(routes: &[(Option<&str>, &str, &str)]) -> Router {
        let specs = routes.iter().map(|(h, p, f)| spec(*h, p, f, None)).collect();
        r().with_routes(Routes::new(specs).expect("valid routes"))
    }

    #[test]
    fn path_prefix_addresses_a_function() {
        assert_eq!(r().route(None, "/fn/hello"), f("hello", "/"));
        assert_eq!(r().route(None, "/fn/hello/"), f("hello", "/"));
        assert_eq!(r().route(None, "/fn/hello/any/path"), f("hello", "/any/path"));
        assert_eq!(r().route(Some("127.0.0.1:8080"), "/fn/hello/a"), f("hello", "/a"));
    }

    #[test]
    fn path_prefix_carries_a_tag() {
        assert_eq!(r().route(None, "/fn/hello@prod"), ft("hello", "prod", "/"));
        assert_eq!(r().route(None, "/fn/hello@prod/"), ft("hello", "prod", "/"));
        assert_eq!(r().route(None, "/fn/hello@v2/a/b"), ft("hello", "v2", "/a/b"));
        // Only the address segment is parsed; an '@' further down belongs to the function.
        assert_eq!(r().route(None, "/fn/hello/a@b"), f("hello", "/a@b"));
    }

    #[test]
    fn empty_tags_and_names_go_to_the_platform() {
        assert_eq!(r().route(None, "/fn/a@/x"), Target::Platform);
        assert_eq!(r().route(None, "/fn/a@"), Target::Platform);
        assert_eq!(r().route(None, "/fn/@prod/x"), Target::Platform);
        assert_eq!(r().route(None, "/fn/@"), Target::Platform);
    }

    #[test]
    fn empty_names_and_other_paths_go_to_the_platform() {
        assert_eq!(r().route(None, "/fn/"), Target::Platform);
        assert_eq!(r().route(None, "/fn"), Target::Platform);
        assert_eq!(r().route(None, "/v1/functions"), Target::Platform);
        assert_eq!(r().route(None, "/"), Target::Platform);
        assert_eq!(r().route(None, ""), Target::Platform);
        assert_eq!(r().route(None, "/function/hello"), Target::Platform);
        assert_eq!(r().route(None, "/fnord/hello"), Target::Platform);
    }

    #[test]
    fn host_addresses_a_function() {
        assert_eq!(r().route(Some("hello.localhost"), "/x"), f("hello", "/x"));
        assert_eq!(r().route(Some("hello.localhost:8080"), "/"), f("hello", "/"));
        assert_eq!(r().route(Some("hello.LOCALHOST"), "/"), f("hello", "/"));
        assert_eq!(r().route(Some("hello.localhost."), "/"), f("hello", "/"));
        assert_eq!(r().route(Some("hello.localhost.:8080"), "/"), f("hello", "/"));
        assert_eq!(r().route(Some("hello.localhost"), ""), f("hello", "/"));
    }

    #[test]
    fn host_carries_a_tag() {
        assert_eq!(r().route(Some("prod.hello.localhost"), "/x"), ft("hello", "prod", "/x"));
        assert_eq!(r().route(Some("prod.hello.localhost:8080"), ""), ft("hello", "prod", "/"));
        assert_eq!(r().route(Some("prod.hello.LocalHost."), "/"), ft("hello", "prod", "/"));
        let r = Router::new("fn.example.com");
        assert_eq!(r.route(Some("v2.api.fn.example.com"), "/a"), ft("api", "v2", "/a"));
        assert_eq!(r.route(Some("api.fn.example.com"), "/a"), f("api", "/a"));
    }

    #[test]
    fn host_wins_over_path() {
        assert_eq!(r().route(Some("a.localhost"), "/fn/b/x"), f("a", "/fn/b/x"));
        assert_eq!(r().route(Some("a.localhost"), "/v1/functions"), f("a", "/v1/functions"));
        assert_eq!(r().route(Some("t.a.localhost"), "/fn/b@u/x"), ft("a", "t", "/fn/b@u/x"));
        assert_eq!(r().route(Some("a.localhost"), "/healthz"), f("a", "/healthz"));
    }

    #[test]
    fn other_hosts_are_not_functions() {
        assert_eq!(r().route(Some("localhost"), "/x"), Target::Platform);
        assert_eq!(r().route(Some("localhost:8080"), "/x"), Target::Platform);
        assert_eq!(r().route(Some("hello.example.com"), "/x"), Target::Platform);
        assert_eq!(r().route(Some("a.b.c.localhost"), "/x"), Target::Platform);
        assert_eq!(r().route(Some(".localhost"), "/x"), Target::Platform);
        assert_eq!(r().route(Some(".b.localhost"), "/x"), Target::Platform);
        assert_eq!(r().route(Some("a..localhost"), "/x"), Target::Platform);
        assert_eq!(r().route(Some("alocalhost"), "/x"), Target::Platform);
        assert_eq!(r().route(Some("[::1]:8080"), "/x"), Target::Platform);
        assert_eq!(r().route(Some("127.0.0.1"), "/x"), Target::Platform);
        assert_eq!(r().route(Some("é.localhost"), "/x"), f("é", "/x"), "names are checked later");
        assert_eq!(r().route(Some("ééé"), "/x"), Target::Platform, "no panic on a non-char boundary");
    }

    #[test]
    fn base_domain_is_configurable() {
        let r = Router::new("fn.example.com");
        assert_eq!(r.route(Some("hello.fn.example.com"), "/"), f("hello", "/"));
        assert_eq!(r.route(Some("hello.localhost"), "/"), Target::Platform);
        assert_eq!(r.route(Some("a.b.c.fn.example.com"), "/"), Target::Platform);
        assert_eq!(Router::new(".fn.example.com.").route(Some("x.fn.example.com"), "/"), f("x", "/"));
    }

    #[test]
    fn custom_route_sees_the_full_path_and_names_its_pattern() {
        let r = with(&[(None, "/api/users/*", "users")]);
        assert_eq!(r.route(None, "/api/users/42"), via("users", None, "/api/users/42", "/api/users/*"));
        assert_eq!(r.route(Some("x.org"), "/api/users"), via("users", None, "/api/users", "/api/users/*"));
        assert_eq!(r.route(None, "/api/other"), Target::Platform);
    }

    #[test]
    fn custom_route_carries_its_tag() {
        let routes = Routes::new(vec![spec(None, "/pay", "billing", Some("canary"))]).unwrap();
        let r = r().with_routes(routes);
        assert_eq!(r.route(None, "/pay"), via("billing", Some("canary"), "/pay", "/pay"));
    }

    #[test]
    fn root_route_gets_the_root_path_for_an_empty_request_path() {
        let r = with(&[(None, "/", "home")]);
        assert_eq!(r.route(None, ""), via("home", None, "/", "/"));
        assert_eq!(r.route(None, "/"), via("home", None, "/", "/"));
        assert_eq!(r.route(None, "/x"), Target::Platform);
    }

    #[test]
    fn precedence_function_host_beats_a_route_on_that_host() {
        let r = with(&[(Some("hello.localhost"), "/*", "other")]);
        assert_eq!(r.route(Some("hello.localhost"), "/a"), f("hello", "/a"));
        let shadowed: Vec<_> = r.shadowed_routes().map(|s| s.function.as_str()).collect();
        assert_eq!(shadowed, ["other"]);
    }

    #[test]
    fn shadowed_routes_lists_only_function_hosts() {
        let r = with(&[
            (Some("hello.localhost"), "/a", "a"),
            (Some("t.hello.localhost"), "/b", "b"),
            (Some("a.b.c.localhost"), "/c", "c"),
            (Some("api.example.com"), "/d", "d"),
            (None, "/e", "e"),
        ]);
        let shadowed: Vec<_> = r.shadowed_routes().map(|s| s.function.as_str()).collect();
        assert_eq!(shadowed, ["a", "b"]);
    }

    #[test]
    fn precedence_host_route_beats_fn_path_and_platform_paths() {
        let r = with(&[(Some("api.example.com"), "/*", "site")]);
        let h = Some("api.example.com");
        assert_eq!(r.route(h, "/fn/other/x"), via("site", None, "/fn/other/x", "/*"));
        assert_eq!(r.route(h, "/v1/functions"), via("site", None, "/v1/functions", "/*"));
        assert_eq!(r.route(h, "/healthz"), via("site", None, "/healthz", "/*"));
        let lambda = "/2015-03-31/functions/f/invocations";
        assert_eq!(r.route(h, lambda), via("site", None, lambda, "/*"));
        // Other hosts keep the platform's paths.
        assert_eq!(r.route(Some("other.example.com"), "/v1/functions"), Target::Platform);
        assert_eq!(r.route(None, "/fn/other/x"), f("other", "/x"));
    }

    #[test]
    fn precedence_fn_path_when_no_host_route_matches() {
        let r = with(&[(Some("api.example.com"), "/only", "site"), (None, "/*", "catchall")]);
        assert_eq!(r.route(Some("api.example.com"), "/fn/x/y"), f("x", "/y"));
        assert_eq!(r.route(Some("api.example.com"), "/only"), via("site", None, "/only", "/only"));
    }

    #[test]
    fn precedence_platform_paths_beat_hostless_routes() {
        let r = with(&[(None, "/*", "catchall"), (None, "/{x}", "one")]);
        for p in
            ["/v1", "/v1/", "/v1/functions", "/healthz", "/metrics", "/2015-03-31/functions/f/invocations"]
        {
            assert_eq!(r.route(None, p), Target::Platform, "{p}");
            assert_eq!(r.route(Some("api.example.com"), p), Target::Platform, "{p}");
        }
        // Malformed /fn addresses still belong to the platform, so they 404 rather than
        // reaching a catch-all.
        for p in ["/fn", "/fn/", "/fn/a@/x", "/fn/@t"] {
            assert_eq!(r.route(None, p), Target::Platform, "{p}");
        }
        // Near misses are ordinary paths.
        assert_eq!(r.route(None, "/v1x"), via("one", None, "/v1x", "/{x}"));
        assert_eq!(r.route(None, "/healthz/x"), via("catchall", None, "/healthz/x", "/*"));
        assert_eq!(r.route(None, "/2015-03-31"), via("one", None, "/2015-03-31", "/{x}"));
        assert_eq!(r.route(None, "/fnord"), via("one", None, "/fnord", "/{x}"));
    }

    #[test]
    fn precedence_host_route_beats_hostless_route() {
        let r = with(&[(None, "/api/users/42", "exact"), (Some("api.example.com"), "/*", "host")]);
        // The host-less route is more specific, but a host match comes first.
        assert_eq!(
            r.route(Some("api.example.com"), "/api/users/42"),
            via("host", None, "/api/users/42", "/*")
        );
        assert_eq!(
            r.route(Some("x.example.com"), "/api/users/42"),
            via("exact", None, "/api/users/42", "/api/users/42")
        );
    }

    #[test]
    fn host_routes_ignore_case_ports_and_trailing_dots() {
        let routes = Routes::new(vec![spec(Some("API.Example.COM"), "/a", "f", None)]).unwrap();
        assert_eq!(routes.specs()[0].host.as_deref(), Some("api.example.com"));
        let r = r().with_routes(routes);
        for h in [
            "api.example.com",
            "API.EXAMPLE.COM",
            "api.example.com:8443",
            "Api.Example.Com.:80",
            "api.example.com.",
        ] {
            assert_eq!(r.route(Some(h), "/a"), via("f", None, "/a", "/a"), "{h}");
        }
        for h in ["example.com", "x.api.example.com", "api.example.co", "api.example.com:x"] {
            assert_eq!(r.route(Some(h), "/a"), Target::Platform, "{h}");
        }
        assert_eq!(r.route(None, "/a"), Target::Platform, "no host never matches a host route");
    }

    #[test]
    fn many_hosts_are_looked_up_correctly() {
        let specs: Vec<_> =
            (0..50).map(|i| spec(Some(&format!("h{i}.example.com")), "/x", &format!("f{i}"), None)).collect();
        let r = r().with_routes(Routes::new(specs).unwrap());
        for i in 0..50 {
            let host = format!("H{i}.example.com");
            let name = format!("f{i}");
            assert_eq!(r.route(Some(&host), "/x"), via(&name, None, "/x", "/x"));
        }
        assert_eq!(r.route(Some("h50.example.com"), "/x"), Target::Platform);
    }

    #[test]
    fn router_is_clone_send_sync() {
        fn check<T: Clone + Send + Sync + 'static>() {}
        check::<Router>();
        check::<Routes>();
    }

    #[test]
    fn with_routes_keeps_the_base_domain() {
        let r = Router::new("fn.example.com").with_routes(Routes::default());
        assert_eq!(r.route(Some("a.fn.example.com"), "/"), f("a", "/"));
        assert!(r.routes().is_empty());
    }

    /// A tiny deterministic generator, so the property test needs no dependency.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    /// Among literal routes (with or without a final `*`), the winner is the one whose literal
    /// prefix is longest, an exact match beating a `*` of the same prefix. Checked against a
    /// brute-force reference over random tables and paths.
    #[test]
    fn property_longest_literal_prefix_wins() {
        const WORDS: [&str; 3] = ["a", "b", "c"];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..300 {
            let mut specs = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for i in 0..rng.below(12) + 1 {
                let depth = rng.below(4);
                let mut path: String = (0..depth).map(|_| format!("/{}", WORDS[rng.below(3)])).collect();
                let star = rng.below(2) == 0;
                if star {
                    path.push_str("/*");
                } else if path.is_empty() {
                    path.push('/');
                }
                if seen.insert(path.clone()) {
                    specs.push(spec(None, &path, &format!("f{i}"), None));
                }
            }
            let routes = Routes::new(specs.clone()).expect("distinct literal routes never conflict");
            let r = r().with_routes(routes);
            for _ in 0..40 {
                let depth = rng.below(5);
                let mut path: String = (0..depth).map(|_| format!("/{}", WORDS[rng.below(3)])).collect();
                if path.is_empty() || rng.below(4) == 0 {
                    path.push('/');
                }
                let expected = reference(&specs, &path);
                let got = match r.route(None, &path) {
                    Target::Function { route, .. } => route,
                    Target::Platform => None,
                };
                assert_eq!(got, expected, "round {round}, path {path}, routes {specs:?}");
            }
        }
    }

    /// The obvious, slow definition: the matching route with the most literal segments, an exact
    /// one winning over a `*` one of equal length.
    fn reference<'a>(specs: &'a [RouteSpec], path: &str) -> Option<&'a str> {
        let req: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        specs
            .iter()
            .filter_map(|s| {
                let (prefix, star) = match s.path.strip_suffix("/*") {
                    Some(p) => (p, true),
                    None if s.path == "/*" => ("", true),
                    None => (s.path.as_str(), false),
                };
                let lits: Vec<&str> = prefix.split('/').filter(|s| !s.is_empty()).collect();
                let ok = req.len() >= lits.len()
                    && req[..lits.len()] == lits[..]
                    && (star || req.len() == lits.len());
                ok.then_some((lits.len(), !star, s.path.as_str()))
            })
            .max_by_key(|&(n, exact, _)| (n, exact))
            .map(|(_, _, p)| p)
    }
}
