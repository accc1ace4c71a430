//! CGI/1.1 (RFC 3875) for run-once functions: the request as environment variables, and the
//! script's output parsed back into a response.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};

/// What the CGI environment is built from.
pub struct CgiRequest<'a> {
    pub parts: &'a http::request::Parts,
    /// The path after the function's prefix (`/fn/NAME`), always starting with `/`.
    pub path_info: &'a str,
    /// The prefix the function is mounted at, e.g. `/fn/hello` (empty for host routing).
    pub script_name: &'a str,
    pub body_len: usize,
    pub remote_addr: Option<std::net::IpAddr>,
    pub server_port: u16,
}

/// The meta-variables of RFC 3875 section 4.1, plus one `HTTP_*` variable per request header.
pub fn env(req: &CgiRequest<'_>) -> Vec<(String, String)> {
    let parts = req.parts;
    let mut env = vec![
        ("GATEWAY_INTERFACE".to_string(), "CGI/1.1".to_string()),
        ("SERVER_PROTOCOL".to_string(), format!("{:?}", parts.version)),
        ("SERVER_SOFTWARE".to_string(), concat!("yun/", env!("CARGO_PKG_VERSION")).to_string()),
        ("REQUEST_METHOD".to_string(), parts.method.to_string()),
        ("PATH_INFO".to_string(), req.path_info.to_string()),
        ("SCRIPT_NAME".to_string(), req.script_name.to_string()),
        ("QUERY_STRING".to_string(), parts.uri.query().unwrap_or("").to_string()),
        ("SERVER_PORT".to_string(), req.server_port.to_string()),
    ];
    let host = parts.headers.get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let server_name = host.rsplit_once(':').map_or(host, |(name, _)| name);
    env.push(("SERVER_NAME".to_string(), server_name.to_string()));
    if let Some(ip) = req.remote_addr {
        env.push(("REMOTE_ADDR".to_string(), ip.to_string()));
    }
    if req.body_len > 0 || parts.headers.contains_key(http::header::CONTENT_LENGTH) {
        env.push(("CONTENT_LENGTH".to_string(), req.body_len.to_string()));
    }
    if let Some(ct) = parts.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
        env.push(("CONTENT_TYPE".to_string(), ct.to_string()));
    }
    for name in parts.headers.keys() {
        // Content-Type/Length have their own variables; `Proxy` must never become HTTP_PROXY
        // (httpoxy), which HTTP clients in the script would take as their proxy setting.
        if name == http::header::CONTENT_TYPE || name == http::header::CONTENT_LENGTH || name == "proxy" {
            continue;
        }
        let values: Vec<&str> = parts.headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect();
        if values.is_empty() {
            continue;
        }
        let var = format!("HTTP_{}", name.as_str().to_ascii_uppercase().replace('-', "_"));
        env.push((var, values.join(", ")));
    }
    env
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CgiError {
    #[error("the CGI header block is malformed: {0}")]
    Header(String),
    #[error("the CGI Status header is invalid: {0:?}")]
    Status(String),
}

/// Splits the script's stdout into a response. The header block is optional: output that does
/// not open with `Name: value` lines ended by a blank line is all body (`200`, `text/plain`).
pub fn parse_output(out: Bytes) -> Result<http::Response<Bytes>, CgiError> {
    let Some((head_len, body_start)) = header_block(&out) else {
        let mut resp = http::Response::new(out);
        resp.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        return Ok(resp);
    };
    let head = std::str::from_utf8(&out[..head_len]).map_err(|_| CgiError::Header("not UTF-8".into()))?;
    let mut resp = http::Response::new(out.slice(body_start..));
    let mut status = None;
    let mut location = false;
    for line in head.split('\n').map(|l| l.trim_end_matches('\r')).filter(|l| !l.is_empty()) {
        let (name, value) =
            line.split_once(':').ok_or_else(|| CgiError::Header(format!("line {line:?} has no ':'")))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().unwrap_or("");
            let parsed = code.parse::<u16>().ok().and_then(|c| StatusCode::from_u16(c).ok());
            status = Some(parsed.ok_or_else(|| CgiError::Status(value.to_string()))?);
            continue;
        }
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| CgiError::Header(format!("invalid header name {name:?}")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| CgiError::Header(format!("invalid value for header {name}")))?;
        location |= name == http::header::LOCATION;
        resp.headers_mut().append(name, value);
    }
    // RFC 3875 6.2.3: a Location without a Status is a client redirect.
    *resp.status_mut() = status.unwrap_or(if location { StatusCode::FOUND } else { StatusCode::OK });
    Ok(resp)
}

/// Where the header block ends and the body starts, if the output opens with one.
fn header_block(out: &[u8]) -> Option<(usize, usize)> {
    let first_line_end = out.iter().position(|&b| b == b'\n')?;
    let first = &out[..first_line_end];
    let colon = first.iter().position(|&b| b == b':')?;
    if colon == 0 || !first[..colon].iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return None;
    }
    let mut i = 0;
    while i < out.len() {
        let end = out[i..].iter().position(|&b| b == b'\n').map(|p| i + p)?;
        let line = &out[i..end];
        if line.is_empty() || line == b"\r" {
            return Some((i, end + 1));
        }
        i = end + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut b = http::Request::builder().method("POST").uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn lookup<'a>(env: &'a [(String, String)], k: &str) -> Option<&'a str> {
        env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn request_becomes_meta_variables() {
        let p = parts(
            "/a/b?x=1&y=2",
            &[
                ("host", "hello.localhost:8080"),
                ("content-type", "text/plain"),
                ("x-thing", "one"),
                ("x-thing", "two"),
                ("proxy", "http://evil"),
            ],
        );
        let env = env(&CgiRequest {
            parts: &p,
            path_info: "/a/b",
            script_name: "/fn/hello",
            body_len: 5,
            remote_addr: Some("127.0.0.1".parse().unwrap()),
            server_port: 8080,
        });
        assert_eq!(lookup(&env, "REQUEST_METHOD"), Some("POST"));
        assert_eq!(lookup(&env, "PATH_INFO"), Some("/a/b"));
        assert_eq!(lookup(&env, "SCRIPT_NAME"), Some("/fn/hello"));
        assert_eq!(lookup(&env, "QUERY_STRING"), Some("x=1&y=2"));
        assert_eq!(lookup(&env, "CONTENT_TYPE"), Some("text/plain"));
        assert_eq!(lookup(&env, "CONTENT_LENGTH"), Some("5"));
        assert_eq!(lookup(&env, "HTTP_X_THING"), Some("one, two"));
        assert_eq!(lookup(&env, "SERVER_NAME"), Some("hello.localhost"));
        assert_eq!(lookup(&env, "REMOTE_ADDR"), Some("127.0.0.1"));
        assert_eq!(lookup(&env, "HTTP_PROXY"), None, "httpoxy");
        assert_eq!(lookup(&env, "HTTP_CONTENT_TYPE"), None);
    }

    #[test]
    fn output_with_status_and_headers() {
        let r = parse_output(Bytes::from_static(
            b"Status: 404 Not Found\r\nContent-Type: text/html\r\nX-A: 1\r\n\r\n<p>no</p>",
        ))
        .unwrap();
        assert_eq!(r.status(), 404);
        assert_eq!(r.headers()["content-type"], "text/html");
        assert_eq!(r.headers()["x-a"], "1");
        assert_eq!(r.body(), &Bytes::from_static(b"<p>no</p>"));
    }

    #[test]
    fn output_with_lf_only_and_default_status() {
        let r = parse_output(Bytes::from_static(b"Content-Type: application/json\n\n{\"a\":1}\n")).unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.body(), &Bytes::from_static(b"{\"a\":1}\n"));
    }

    #[test]
    fn location_without_status_redirects() {
        let r = parse_output(Bytes::from_static(b"Location: /elsewhere\n\n")).unwrap();
        assert_eq!(r.status(), 302);
        assert_eq!(r.headers()["location"], "/elsewhere");
    }

    #[test]
    fn output_without_header_block_is_body() {
        for out in [&b"hello world\n"[..], b"", b"no colon here\n\nbody", b"a: b\nno blank line after"] {
            let r = parse_output(Bytes::copy_from_slice(out)).unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(r.body().as_ref(), out);
            assert_eq!(r.headers()["content-type"], "text/plain");
        }
    }

    #[test]
    fn bad_status_is_an_error() {
        assert_eq!(
            parse_output(Bytes::from_static(b"Status: lots\n\n")).unwrap_err(),
            CgiError::Status("lots".into())
        );
        assert!(parse_output(Bytes::from_static(b"Status: 99\n\n")).is_err());
    }
}
