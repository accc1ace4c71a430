//! Which function a request is for, decided from its host and path alone.
//!
//! Pure: no I/O, no knowledge of what functions exist. Two forms address a function:
//! `/fn/NAME/rest...` on any host, and any path on the host `NAME.<base-domain>`. The host form
//! wins, so a function owns its whole host (including paths like `/v1/...`).

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target<'a> {
    /// A function, with the path the function sees (always starting with `/`).
    Function { name: &'a str, path: &'a str },
    /// The platform itself (management API, health), with the original path.
    Platform,
}

/// The routing rules, configured once at start-up.
#[derive(Debug, Clone)]
pub struct Router {
    base_domain: String,
}

/// The path prefix that addresses a function on any host.
pub const FUNCTION_PREFIX: &str = "/fn/";

impl Router {
    /// `base_domain` is the domain function hosts live under (`localhost` gives
    /// `hello.localhost`); it is matched case-insensitively.
    pub fn new(base_domain: &str) -> Self {
        Self { base_domain: base_domain.trim_matches('.').to_ascii_lowercase() }
    }

    pub fn route<'a>(&self, host: Option<&'a str>, path: &'a str) -> Target<'a> {
        if let Some(name) = host.and_then(|h| self.function_from_host(h)) {
            let path = if path.is_empty() { "/" } else { path };
            return Target::Function { name, path };
        }
        if let Some(rest) = path.strip_prefix(FUNCTION_PREFIX) {
            let (name, path) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, "/"),
            };
            if !name.is_empty() {
                return Target::Function { name, path };
            }
        }
        Target::Platform
    }

    /// `NAME.<base-domain>[:port]` → `NAME`. Only a single label is taken as a name, so deeper
    /// hosts stay free for later uses (tags, for example).
    fn function_from_host<'a>(&self, host: &'a str) -> Option<&'a str> {
        let host = strip_port(host);
        let (label, domain) = host.split_once('.')?;
        let domain = domain.strip_suffix('.').unwrap_or(domain);
        if label.is_empty() || label.contains('.') || !domain.eq_ignore_ascii_case(&self.base_domain) {
            return None;
        }
        Some(label)
    }
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

    fn r() -> Router {
        Router::new("localhost")
    }

    fn f<'a>(name: &'a str, path: &'a str) -> Target<'a> {
        Target::Function { name, path }
    }

    #[test]
    fn path_prefix_addresses_a_function() {
        assert_eq!(r().route(None, "/fn/hello"), f("hello", "/"));
        assert_eq!(r().route(None, "/fn/hello/"), f("hello", "/"));
        assert_eq!(r().route(None, "/fn/hello/any/path"), f("hello", "/any/path"));
        assert_eq!(r().route(Some("127.0.0.1:8080"), "/fn/hello/a"), f("hello", "/a"));
    }

    #[test]
    fn empty_names_and_other_paths_go_to_the_platform() {
        assert_eq!(r().route(None, "/fn/"), Target::Platform);
        assert_eq!(r().route(None, "/fn"), Target::Platform);
        assert_eq!(r().route(None, "/v1/functions"), Target::Platform);
        assert_eq!(r().route(None, "/"), Target::Platform);
        assert_eq!(r().route(None, "/function/hello"), Target::Platform);
    }

    #[test]
    fn host_addresses_a_function() {
        assert_eq!(r().route(Some("hello.localhost"), "/x"), f("hello", "/x"));
        assert_eq!(r().route(Some("hello.localhost:8080"), "/"), f("hello", "/"));
        assert_eq!(r().route(Some("hello.LOCALHOST"), "/"), f("hello", "/"));
        assert_eq!(r().route(Some("hello.localhost."), "/"), f("hello", "/"));
        assert_eq!(r().route(Some("hello.localhost"), ""), f("hello", "/"));
    }

    #[test]
    fn host_wins_over_path() {
        assert_eq!(r().route(Some("a.localhost"), "/fn/b/x"), f("a", "/fn/b/x"));
        assert_eq!(r().route(Some("a.localhost"), "/v1/functions"), f("a", "/v1/functions"));
    }

    #[test]
    fn other_hosts_are_not_functions() {
        assert_eq!(r().route(Some("localhost"), "/x"), Target::Platform);
        assert_eq!(r().route(Some("localhost:8080"), "/x"), Target::Platform);
        assert_eq!(r().route(Some("hello.example.com"), "/x"), Target::Platform);
        assert_eq!(r().route(Some("a.b.localhost"), "/x"), Target::Platform);
        assert_eq!(r().route(Some(".localhost"), "/x"), Target::Platform);
        assert_eq!(r().route(Some("[::1]:8080"), "/x"), Target::Platform);
        assert_eq!(r().route(Some("127.0.0.1"), "/x"), Target::Platform);
    }

    #[test]
    fn base_domain_is_configurable() {
        let r = Router::new("fn.example.com");
        assert_eq!(r.route(Some("hello.fn.example.com"), "/"), f("hello", "/"));
        assert_eq!(r.route(Some("hello.localhost"), "/"), Target::Platform);
        assert_eq!(Router::new(".fn.example.com.").route(Some("x.fn.example.com"), "/"), f("x", "/"));
    }
}
