//! HTTP request → API Gateway HTTP API v2 event (payload version 2.0, the shape a Lambda
//! Function URL sends), and the function's result → HTTP response.
//!
//! The event is written with serde structs of our own rather than `aws_lambda_events`'
//! `ApiGatewayV2httpRequest`: that type is made for *reading* events, and serialising it emits
//! fields a Function URL never sends (a top-level `httpMethod`, `type`, `methodArn`,
//! `identitySource`, `authorizationToken`, `resource` and `stageVariables`, most as `null`). The
//! tests parse what we produce with `aws_lambda_events` (the type `lambda_http` reads) to keep
//! the two honest.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http::header::{CONTENT_TYPE, COOKIE, HOST, SET_COOKIE, USER_AGENT};
use http::{HeaderName, HeaderValue, Response, StatusCode, Version};
use serde::Serialize;
use serde_json::Value;

/// Why a function's result could not be made into an HTTP response (a 502 in AWS).
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("function result is not JSON: {0}")]
    NotJson(#[from] serde_json::Error),
    #[error("function result has an invalid statusCode: {0}")]
    InvalidStatus(String),
    #[error("function result has isBase64Encoded but its body is not base64: {0}")]
    InvalidBase64(#[from] base64::DecodeError),
    #[error("function result has an invalid header {0:?}")]
    InvalidHeader(String),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HttpEvent<'a> {
    version: &'static str,
    route_key: &'static str,
    raw_path: &'a str,
    raw_query_string: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    cookies: Vec<String>,
    headers: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    query_string_parameters: BTreeMap<String, String>,
    request_context: RequestContext<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<String>,
    is_base64_encoded: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RequestContext<'a> {
    account_id: &'static str,
    api_id: &'a str,
    domain_name: &'a str,
    domain_prefix: &'a str,
    http: HttpDescription<'a>,
    request_id: &'a str,
    route_key: &'static str,
    stage: &'static str,
    time: String,
    time_epoch: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HttpDescription<'a> {
    method: &'a str,
    path: &'a str,
    protocol: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_agent: Option<String>,
}

/// HTTP request → API Gateway HTTP API v2 event, as a Function URL with auth type NONE sends it.
///
/// `path` is the path as the function should see it (the platform may have stripped a route
/// prefix); the query string comes from `parts.uri`. Headers are lowercased and repeated ones
/// comma-joined; `Cookie` headers become the `cookies` array (and leave `headers`, as in AWS,
/// since `lambda_http` rebuilds the header from the array). The body is sent as text when the
/// content type is textual and the bytes are UTF-8, else base64 with `isBase64Encoded: true`.
/// `requestContext.accountId` is `anonymous`, which is what AWS reports for unauthenticated
/// Function URL calls.
pub fn http_to_event(
    parts: &http::request::Parts,
    path: &str,
    body: &[u8],
    source_ip: Option<IpAddr>,
    request_id: &str,
) -> Bytes {
    event_at(parts, path, body, source_ip, request_id, SystemTime::now())
}

fn event_at(
    parts: &http::request::Parts,
    path: &str,
    body: &[u8],
    source_ip: Option<IpAddr>,
    request_id: &str,
    now: SystemTime,
) -> Bytes {
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    let mut cookies = Vec::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        if name == COOKIE {
            cookies.extend(value.split(';').map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned));
            continue;
        }
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|joined| {
                joined.push(',');
                joined.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    // HTTP/2 requests carry the host in the URI, not a Host header.
    let host = parts
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| parts.uri.authority().map(|a| a.to_string()))
        .unwrap_or_else(|| "localhost".to_owned());
    let domain_prefix = host.split('.').next().unwrap_or_default().to_owned();
    let raw_query = parts.uri.query().unwrap_or("");
    let (body, is_base64_encoded) = encode_body(parts.headers.get(CONTENT_TYPE), body);
    let epoch_ms = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
    let event = HttpEvent {
        version: "2.0",
        route_key: "$default",
        raw_path: path,
        raw_query_string: raw_query,
        cookies,
        headers,
        query_string_parameters: parse_query(raw_query),
        request_context: RequestContext {
            account_id: "anonymous",
            api_id: &domain_prefix,
            domain_name: &host,
            domain_prefix: &domain_prefix,
            http: HttpDescription {
                method: parts.method.as_str(),
                path,
                protocol: protocol(parts.version),
                source_ip: source_ip.map(|ip| ip.to_string()),
                user_agent: parts
                    .headers
                    .get(USER_AGENT)
                    .map(|ua| String::from_utf8_lossy(ua.as_bytes()).into_owned()),
            },
            request_id,
            route_key: "$default",
            stage: "$default",
            time: clf_time(epoch_ms / 1000),
            time_epoch: epoch_ms,
        },
        body,
        is_base64_encoded,
    };
    // Serialising plain strings and maps cannot fail.
    Bytes::from(serde_json::to_vec(&event).unwrap_or_default())
}

fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// Whether a body of this content type travels as text. The same rule `lambda_http` applies to
/// responses, so a text body round-trips as text.
fn is_text(content_type: &str) -> bool {
    let media = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    media.starts_with("text/")
        || ["application/json", "application/javascript", "application/xml", "application/yaml"]
            .contains(&media.as_str())
        || ["+json", "+xml", "+yaml"].iter().any(|suffix| media.ends_with(suffix))
}

fn encode_body(content_type: Option<&HeaderValue>, body: &[u8]) -> (Option<String>, bool) {
    if body.is_empty() {
        return (None, false);
    }
    let textual = content_type.and_then(|ct| ct.to_str().ok()).is_some_and(is_text);
    match std::str::from_utf8(body) {
        Ok(text) if textual => (Some(text.to_owned()), false),
        _ => (Some(BASE64.encode(body)), true),
    }
}

/// `queryStringParameters`: decoded names and values, repeated names comma-joined (as in AWS's
/// v2 payload, which has no multi-value form).
fn parse_query(raw: &str) -> BTreeMap<String, String> {
    let mut params: BTreeMap<String, String> = BTreeMap::new();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value);
        params
            .entry(percent_decode(name))
            .and_modify(|joined| {
                joined.push(',');
                joined.push_str(&value);
            })
            .or_insert(value);
    }
    params
}

/// Form-style decoding (`+` is a space); malformed escapes stay as written, invalid UTF-8 is
/// replaced rather than rejected, since the raw string is in the event too.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// `12/Mar/2020:19:03:58 +0000`, the `requestContext.time` format (Apache common log).
fn clf_time(epoch_secs: u64) -> String {
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let days = (epoch_secs / 86_400) as i64;
    let secs = epoch_secs % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{day:02}/{}/{year}:{:02}:{:02}:{:02} +0000",
        MONTHS[(month - 1) as usize],
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// The function's result → HTTP response, by the Function URL rules.
///
/// An object with `statusCode` is a response: `statusCode`, `headers` (string values, or
/// numbers and booleans written out), `multiValueHeaders` (for names `headers` lacks),
/// `cookies` (each a `Set-Cookie`), `body` (base64-decoded when `isBase64Encoded`). Any other
/// JSON is the body of a 200 `application/json` response: a JSON string as its contents, anything
/// else as the JSON text itself. A result that is not JSON at all is an error (AWS answers 502).
pub fn result_to_http(payload: &[u8]) -> Result<Response<Bytes>, MappingError> {
    let value: Value = serde_json::from_slice(payload)?;
    let object = match value {
        Value::Object(object) if object.contains_key("statusCode") => object,
        Value::String(text) => return Ok(json_response(Bytes::from(text))),
        _ => return Ok(json_response(Bytes::copy_from_slice(payload))),
    };
    let status = match &object["statusCode"] {
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        // Some hand-written functions send "200"; API Gateway accepts it too.
        Value::String(s) => s.trim().parse::<u16>().ok(),
        _ => None,
    }
    .and_then(|code| StatusCode::from_u16(code).ok())
    .filter(|code| code.as_u16() >= 100)
    .ok_or_else(|| MappingError::InvalidStatus(object["statusCode"].to_string()))?;

    let mut response = Response::new(Bytes::new());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if let Some(Value::Object(map)) = object.get("headers") {
        for (name, value) in map {
            if let Some(value) = scalar(value) {
                headers.append(header_name(name)?, header_value(name, &value)?);
            }
        }
    }
    if let Some(Value::Object(map)) = object.get("multiValueHeaders") {
        for (name, values) in map {
            let name = header_name(name)?;
            // `headers` wins: API Gateway v1 merged the two and duplicated values that way.
            if headers.contains_key(&name) {
                continue;
            }
            for value in values.as_array().into_iter().flatten().filter_map(scalar) {
                headers.append(name.clone(), header_value(name.as_str(), &value)?);
            }
        }
    }
    if let Some(Value::Array(cookies)) = object.get("cookies") {
        for cookie in cookies.iter().filter_map(Value::as_str) {
            headers.append(SET_COOKIE, header_value("set-cookie", cookie)?);
        }
    }
    let base64 = matches!(object.get("isBase64Encoded"), Some(Value::Bool(true)));
    let body = match object.get("body") {
        None | Some(Value::Null) => Bytes::new(),
        Some(Value::String(text)) if base64 => Bytes::from(BASE64.decode(text.trim())?),
        Some(Value::String(text)) => Bytes::from(text.clone()),
        Some(other) => Bytes::from(other.to_string()),
    };
    *response.body_mut() = body;
    Ok(response)
}

fn json_response(body: Bytes) -> Response<Bytes> {
    let mut response = Response::new(body);
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn header_name(name: &str) -> Result<HeaderName, MappingError> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| MappingError::InvalidHeader(name.to_owned()))
}

fn header_value(name: &str, value: &str) -> Result<HeaderValue, MappingError> {
    HeaderValue::from_str(value).map_err(|_| MappingError::InvalidHeader(name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn parts(request: http::Request<()>) -> http::request::Parts {
        request.into_parts().0
    }

    fn event(request: http::Request<()>, path: &str, body: &[u8]) -> Value {
        let at = UNIX_EPOCH + Duration::from_millis(1_583_348_638_390);
        let ip = Some("203.0.113.7".parse().unwrap());
        let bytes = event_at(&parts(request), path, body, ip, "req-1", at);
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn text_body_headers_cookies_and_query() {
        let request = http::Request::post("http://fn.example.com/my/path?a=1&a=2&b=x%20y&c=+&d")
            .header("Host", "abc123.lambda-url.yun.local")
            .header("Content-Type", "application/json")
            .header("User-Agent", "curl/8")
            .header("X-Multi", "one")
            .header("x-multi", "two")
            .header("Cookie", "c1=v1; c2=v2")
            .header("cookie", "c3=v3")
            .body(())
            .unwrap();
        let e = event(request, "/my/path", br#"{"k":"v"}"#);
        assert_eq!(e["version"], "2.0");
        assert_eq!(e["routeKey"], "$default");
        assert_eq!(e["rawPath"], "/my/path");
        assert_eq!(e["rawQueryString"], "a=1&a=2&b=x%20y&c=+&d");
        assert_eq!(e["cookies"], serde_json::json!(["c1=v1", "c2=v2", "c3=v3"]));
        assert_eq!(e["headers"]["x-multi"], "one,two");
        assert_eq!(e["headers"]["content-type"], "application/json");
        assert!(e["headers"].get("cookie").is_none());
        assert_eq!(
            e["queryStringParameters"],
            serde_json::json!({"a": "1,2", "b": "x y", "c": " ", "d": ""})
        );
        assert_eq!(e["body"], r#"{"k":"v"}"#);
        assert_eq!(e["isBase64Encoded"], false);
        assert!(e.get("pathParameters").is_none());
        assert!(e.get("stageVariables").is_none());
        let cx = &e["requestContext"];
        assert_eq!(cx["accountId"], "anonymous");
        assert_eq!(cx["apiId"], "abc123");
        assert_eq!(cx["domainName"], "abc123.lambda-url.yun.local");
        assert_eq!(cx["domainPrefix"], "abc123");
        assert_eq!(cx["http"]["method"], "POST");
        assert_eq!(cx["http"]["path"], "/my/path");
        assert_eq!(cx["http"]["protocol"], "HTTP/1.1");
        assert_eq!(cx["http"]["sourceIp"], "203.0.113.7");
        assert_eq!(cx["http"]["userAgent"], "curl/8");
        assert_eq!(cx["requestId"], "req-1");
        assert_eq!(cx["routeKey"], "$default");
        assert_eq!(cx["stage"], "$default");
        // AWS's documented example: timeEpoch 1583348638390 is 04/Mar/2020:19:03:58 +0000.
        assert_eq!(cx["time"], "04/Mar/2020:19:03:58 +0000");
        assert_eq!(cx["timeEpoch"], 1_583_348_638_390u64);
    }

    #[test]
    fn binary_and_empty_bodies() {
        let request = http::Request::put("/up").header("content-type", "image/png").body(()).unwrap();
        let e = event(request, "/up", &[0x89, b'P', b'N', b'G', 0xff]);
        assert_eq!(e["isBase64Encoded"], true);
        assert_eq!(BASE64.decode(e["body"].as_str().unwrap()).unwrap(), [0x89, b'P', b'N', b'G', 0xff]);
        assert!(e.get("queryStringParameters").is_none());
        assert_eq!(e["rawQueryString"], "");
        assert!(e.get("cookies").is_none());

        // No content type: not known to be text, so base64 even when it happens to be UTF-8.
        let request = http::Request::post("/").body(()).unwrap();
        let e = event(request, "/", b"hello");
        assert_eq!(e["isBase64Encoded"], true);
        assert_eq!(e["body"], "aGVsbG8=");

        // Text content type but not UTF-8: base64 rather than a lossy string.
        let request = http::Request::post("/").header("content-type", "text/plain").body(()).unwrap();
        assert_eq!(event(request, "/", &[0xff, 0xfe])["isBase64Encoded"], true);

        let request = http::Request::get("/").body(()).unwrap();
        let e = event(request, "/", b"");
        assert!(e.get("body").is_none());
        assert_eq!(e["isBase64Encoded"], false);

        for ct in ["text/html; charset=utf-8", "application/vnd.api+json", "application/xml"] {
            assert!(is_text(ct), "{ct}");
        }
        for ct in ["application/octet-stream", "application/x-www-form-urlencoded", "multipart/form-data"] {
            assert!(!is_text(ct), "{ct}");
        }
    }

    /// What we produce must read back through the types `lambda_http` itself deserialises.
    #[test]
    fn parses_as_aws_lambda_events_v2_request() {
        use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
        let request = http::Request::post("/p?name=yun&x=1&x=2")
            .header("host", "h.example")
            .header("content-type", "text/plain")
            .header("cookie", "a=b")
            .body(())
            .unwrap();
        let bytes = event_at(&parts(request), "/p", b"hi", None, "id-9", SystemTime::now());
        let parsed: ApiGatewayV2httpRequest = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(parsed.raw_path.as_deref(), Some("/p"));
        assert_eq!(parsed.body.as_deref(), Some("hi"));
        assert!(!parsed.is_base64_encoded);
        assert_eq!(parsed.cookies, Some(vec!["a=b".to_owned()]));
        assert_eq!(parsed.query_string_parameters.first("name"), Some("yun"));
        assert_eq!(parsed.request_context.http.method, http::Method::POST);
        assert_eq!(parsed.request_context.request_id.as_deref(), Some("id-9"));
        assert_eq!(parsed.headers.get("content-type").unwrap(), "text/plain");
    }

    #[test]
    fn clf_time_formats() {
        assert_eq!(clf_time(0), "01/Jan/1970:00:00:00 +0000");
        assert_eq!(clf_time(951_782_400), "29/Feb/2000:00:00:00 +0000");
        assert_eq!(clf_time(1_649_597_405), "10/Apr/2022:13:30:05 +0000");
    }

    #[test]
    fn percent_decoding_edges() {
        assert_eq!(percent_decode("a%2Fb"), "a/b");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%e2%82%ac"), "€");
    }

    #[test]
    fn status_code_object() {
        let payload = br#"{"statusCode":201,"headers":{"content-type":"text/plain","x-n":5},
            "multiValueHeaders":{"x-m":["1","2"],"x-n":["ignored"]},
            "cookies":["a=1; Path=/","b=2"],"body":"made","isBase64Encoded":false}"#;
        let response = result_to_http(payload).unwrap();
        assert_eq!(response.status(), 201);
        assert_eq!(response.headers()["content-type"], "text/plain");
        assert_eq!(response.headers()["x-n"], "5");
        let multi: Vec<_> = response.headers().get_all("x-m").iter().collect();
        assert_eq!(multi, ["1", "2"]);
        assert_eq!(response.headers().get_all("x-n").iter().count(), 1);
        let cookies: Vec<_> = response.headers().get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1; Path=/", "b=2"]);
        assert_eq!(response.body(), "made");
    }

    #[test]
    fn base64_body_and_bad_results() {
        let response =
            result_to_http(br#"{"statusCode":200,"body":"AAEC/w==","isBase64Encoded":true}"#).unwrap();
        assert_eq!(response.body().as_ref(), [0, 1, 2, 255]);
        assert!(response.headers().get("content-type").is_none());

        let response = result_to_http(br#"{"statusCode":"204"}"#).unwrap();
        assert_eq!(response.status(), 204);
        assert!(response.body().is_empty());

        assert!(matches!(result_to_http(b"not json"), Err(MappingError::NotJson(_))));
        assert!(matches!(result_to_http(br#"{"statusCode":99}"#), Err(MappingError::InvalidStatus(_))));
        assert!(matches!(result_to_http(br#"{"statusCode":true}"#), Err(MappingError::InvalidStatus(_))));
        assert!(matches!(
            result_to_http(br#"{"statusCode":200,"body":"!!","isBase64Encoded":true}"#),
            Err(MappingError::InvalidBase64(_))
        ));
        assert!(matches!(
            result_to_http(br#"{"statusCode":200,"headers":{"bad name":"x"}}"#),
            Err(MappingError::InvalidHeader(_))
        ));
    }

    #[test]
    fn inferred_responses() {
        let response = result_to_http(br#""Hello, world!""#).unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "application/json");
        assert_eq!(response.body(), "Hello, world!");

        let response = result_to_http(br#"{"message":"hi"}"#).unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "application/json");
        assert_eq!(response.body(), r#"{"message":"hi"}"#);

        let response = result_to_http(b"42").unwrap();
        assert_eq!(response.body(), "42");
    }
}
