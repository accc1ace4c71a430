//! Helpers for serving Lambda's Invoke API, `POST /2015-03-31/functions/{name}/invocations`,
//! so that `boto3.client("lambda", endpoint_url=…).invoke(…)` and `aws lambda invoke` work.
//!
//! Parsing what the SDKs send (function name in its several forms, `Qualifier`,
//! `X-Amz-Invocation-Type`, `X-Amz-Log-Type`, `X-Amz-Client-Context`) and building what they
//! read back (`X-Amz-Function-Error`, `X-Amz-Executed-Version`, `X-Amz-Log-Result`, and errors as
//! `x-amzn-ErrorType` + `{"Type","Message"}`, from which botocore raises
//! `client.exceptions.ResourceNotFoundException` and friends). Routing, authentication and
//! running the function are the caller's.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderName, HeaderValue, Response, StatusCode};

use crate::runtime_api::Invocation;

pub const INVOCATION_TYPE: HeaderName = HeaderName::from_static("x-amz-invocation-type");
pub const LOG_TYPE: HeaderName = HeaderName::from_static("x-amz-log-type");
pub const CLIENT_CONTEXT: HeaderName = HeaderName::from_static("x-amz-client-context");
pub const FUNCTION_ERROR: HeaderName = HeaderName::from_static("x-amz-function-error");
pub const EXECUTED_VERSION: HeaderName = HeaderName::from_static("x-amz-executed-version");
pub const LOG_RESULT: HeaderName = HeaderName::from_static("x-amz-log-result");
pub const ERROR_TYPE: HeaderName = HeaderName::from_static("x-amzn-errortype");
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-amzn-requestid");

/// Path prefix of the Invoke API; the full path is `{PREFIX}{name}/invocations`.
pub const PATH_PREFIX: &str = "/2015-03-31/functions/";

/// Largest payload of a synchronous (RequestResponse) invocation, as in AWS.
pub const MAX_SYNC_PAYLOAD: usize = 6 * 1024 * 1024;
/// Largest payload of an asynchronous (Event) invocation: AWS raised it from 256 KB to 1 MB.
pub const MAX_ASYNC_PAYLOAD: usize = 1024 * 1024;
/// How much log `X-Amz-Log-Result` carries: the last 4 KB, as in AWS.
pub const LOG_TAIL_BYTES: usize = 4096;

/// `X-Amz-Invocation-Type`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InvocationType {
    /// Run now and return the result (the default).
    #[default]
    RequestResponse,
    /// Queue and answer 202 at once.
    Event,
    /// Only check that the call would be allowed: 204.
    DryRun,
}

impl InvocationType {
    /// The status of a successful call of this type (200, 202, 204), as AWS answers.
    pub fn success_status(self) -> StatusCode {
        match self {
            InvocationType::RequestResponse => StatusCode::OK,
            InvocationType::Event => StatusCode::ACCEPTED,
            InvocationType::DryRun => StatusCode::NO_CONTENT,
        }
    }

    /// Largest payload this type accepts.
    pub fn max_payload(self) -> usize {
        match self {
            InvocationType::Event => MAX_ASYNC_PAYLOAD,
            _ => MAX_SYNC_PAYLOAD,
        }
    }
}

/// `X-Amz-Log-Type`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogType {
    #[default]
    None,
    /// Return the last 4 KB of the invocation's log in `X-Amz-Log-Result` (synchronous only).
    Tail,
}

/// What an Invoke API request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvokeParams {
    /// The bare function name, whichever form (name, partial or full ARN) the caller used.
    pub function_name: String,
    /// Version or alias, from the `Qualifier` query parameter or the ARN's suffix.
    pub qualifier: Option<String>,
    pub invocation_type: InvocationType,
    pub log_type: LogType,
    /// `X-Amz-Client-Context` decoded: the JSON the runtime gets as Lambda-Runtime-Client-Context.
    pub client_context: Option<String>,
}

/// An Invoke API error as AWS reports it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 404: no such function, version or alias.
    #[error("Function not found: {0}")]
    ResourceNotFound(String),
    /// 400: a header or parameter is malformed.
    #[error("{0}")]
    InvalidParameterValue(String),
    /// 400: the payload is not valid JSON.
    #[error("{0}")]
    InvalidRequestContent(String),
    /// 413: the payload is over the limit for its invocation type.
    #[error("{size} byte payload is too large for the {kind} invocation type (limit {limit} bytes)")]
    RequestTooLarge { size: usize, limit: usize, kind: &'static str },
    /// 429: no instance could take the invocation.
    #[error("Rate Exceeded.")]
    TooManyRequests,
    /// 500: something in the platform failed.
    #[error("{0}")]
    Service(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::ResourceNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::InvalidParameterValue(_) | ApiError::InvalidRequestContent(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::RequestTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Service(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The exception name botocore maps to `client.exceptions.<name>`.
    pub fn error_type(&self) -> &'static str {
        match self {
            ApiError::ResourceNotFound(_) => "ResourceNotFoundException",
            ApiError::InvalidParameterValue(_) => "InvalidParameterValueException",
            ApiError::InvalidRequestContent(_) => "InvalidRequestContentException",
            ApiError::RequestTooLarge { .. } => "RequestTooLargeException",
            ApiError::TooManyRequests => "TooManyRequestsException",
            ApiError::Service(_) => "ServiceException",
        }
    }

    /// `{"Type":"User"|"Service","Message":…}` with `x-amzn-ErrorType` and `x-amzn-RequestId`.
    pub fn to_response(&self, request_id: &str) -> Response<Bytes> {
        let fault = if matches!(self, ApiError::Service(_)) { "Service" } else { "User" };
        let mut body = serde_json::json!({ "Type": fault, "Message": self.to_string() });
        if let ApiError::TooManyRequests = self {
            body["Reason"] = "ReservedFunctionConcurrentInvocationLimitExceeded".into();
        }
        let mut response = Response::new(Bytes::from(body.to_string()));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(ERROR_TYPE, HeaderValue::from_static(self.error_type()));
        if let Ok(id) = HeaderValue::from_str(request_id) {
            headers.insert(REQUEST_ID, id);
        }
        response
    }
}

/// The function named in an Invoke API path, or `None` if the path is not
/// `/2015-03-31/functions/{name}/invocations`. The name is percent-decoded (botocore encodes the
/// `:` of ARNs) but not otherwise interpreted; [`parse_function_name`] does that.
pub fn path_function(path: &str) -> Option<String> {
    let name = path.strip_prefix(PATH_PREFIX)?.strip_suffix("/invocations")?;
    if name.is_empty() || name.contains('/') {
        return None;
    }
    Some(percent_decode(name))
}

/// Splits the forms AWS accepts for `FunctionName` into name and qualifier: `name`,
/// `name:qualifier`, `123456789012:function:name[:qualifier]` and
/// `arn:aws:lambda:region:123456789012:function:name[:qualifier]`.
pub fn parse_function_name(input: &str) -> Result<(String, Option<String>), ApiError> {
    let invalid = || ApiError::InvalidParameterValue(format!("Invalid function name: {input}"));
    let parts: Vec<&str> = input.split(':').collect();
    let (name, qualifier) = match parts.as_slice() {
        [name] => (*name, None),
        [name, qualifier] => (*name, Some(*qualifier)),
        [_account, "function", name] => (*name, None),
        [_account, "function", name, qualifier] => (*name, Some(*qualifier)),
        ["arn", _partition, "lambda", _region, _account, "function", name] => (*name, None),
        ["arn", _partition, "lambda", _region, _account, "function", name, qualifier] => {
            (*name, Some(*qualifier))
        }
        _ => return Err(invalid()),
    };
    let valid =
        |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid(name) || name.len() > 64 {
        return Err(invalid());
    }
    // Qualifiers are versions, aliases or $LATEST.
    if let Some(q) = qualifier
        && (q.is_empty() || q.len() > 128 || !(q == "$LATEST" || valid(q)))
    {
        return Err(invalid());
    }
    Ok((name.to_owned(), qualifier.map(str::to_owned)))
}

/// Reads an Invoke API request's path, query and headers. The body is the caller's to read
/// (bounded by [`InvocationType::max_payload`]) and check with [`check_payload`].
pub fn parse_invoke(parts: &http::request::Parts) -> Result<InvokeParams, ApiError> {
    let raw_name = path_function(parts.uri.path())
        .ok_or_else(|| ApiError::ResourceNotFound(format!("no function in path {}", parts.uri.path())))?;
    let (function_name, arn_qualifier) = parse_function_name(&raw_name)?;
    let query_qualifier = parts.uri.query().into_iter().flat_map(|q| q.split('&')).find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        (name == "Qualifier").then(|| percent_decode(value))
    });
    let qualifier = match (arn_qualifier, query_qualifier) {
        (Some(a), Some(q)) if a != q => {
            return Err(ApiError::InvalidParameterValue(
                "The derived qualifier from the function name does not match the specified qualifier."
                    .to_owned(),
            ));
        }
        (a, q) => a.or(q).filter(|q| !q.is_empty()),
    };
    let header = |name: &HeaderName| -> Result<Option<&str>, ApiError> {
        match parts.headers.get(name) {
            None => Ok(None),
            Some(value) => value
                .to_str()
                .map(Some)
                .map_err(|_| ApiError::InvalidParameterValue(format!("Invalid {name} header"))),
        }
    };
    let invocation_type = match header(&INVOCATION_TYPE)? {
        None | Some("RequestResponse") => InvocationType::RequestResponse,
        Some("Event") => InvocationType::Event,
        Some("DryRun") => InvocationType::DryRun,
        Some(other) => {
            return Err(ApiError::InvalidParameterValue(format!(
                "1 validation error detected: Value '{other}' at 'invocationType' failed to satisfy constraint: \
                 Member must satisfy enum value set: [Event, RequestResponse, DryRun]"
            )));
        }
    };
    let log_type = match header(&LOG_TYPE)? {
        None | Some("None") => LogType::None,
        Some("Tail") => LogType::Tail,
        Some(other) => {
            return Err(ApiError::InvalidParameterValue(format!(
                "1 validation error detected: Value '{other}' at 'logType' failed to satisfy constraint: \
                 Member must satisfy enum value set: [None, Tail]"
            )));
        }
    };
    let client_context = header(&CLIENT_CONTEXT)?.map(decode_client_context).transpose()?;
    Ok(InvokeParams { function_name, qualifier, invocation_type, log_type, client_context })
}

/// `X-Amz-Client-Context` is base64 of a JSON object (at most 3583 bytes encoded); the runtime
/// gets the JSON itself.
pub fn decode_client_context(encoded: &str) -> Result<String, ApiError> {
    let invalid = || {
        ApiError::InvalidParameterValue("Client context must be a valid Base64-encoded JSON object.".into())
    };
    if encoded.len() > 3583 {
        return Err(ApiError::InvalidParameterValue("Client context must be at most 3583 bytes.".into()));
    }
    let json = BASE64.decode(encoded.trim()).map_err(|_| invalid())?;
    let text = String::from_utf8(json).map_err(|_| invalid())?;
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(serde_json::Value::Object(_)) => Ok(text),
        _ => Err(invalid()),
    }
}

/// Checks an Invoke API payload: within the limit of its type, and JSON (AWS rejects anything
/// else with `InvalidRequestContentException`). An empty payload is allowed (boto3 sends none
/// when `Payload` is omitted); [`event_bytes`] turns it into an event.
pub fn check_payload(invocation_type: InvocationType, payload: &[u8]) -> Result<(), ApiError> {
    let limit = invocation_type.max_payload();
    if payload.len() > limit {
        let kind = match invocation_type {
            InvocationType::Event => "Event",
            InvocationType::DryRun => "DryRun",
            InvocationType::RequestResponse => "RequestResponse",
        };
        return Err(ApiError::RequestTooLarge { size: payload.len(), limit, kind });
    }
    if !payload.iter().all(u8::is_ascii_whitespace)
        && serde_json::from_slice::<serde::de::IgnoredAny>(payload).is_err()
    {
        return Err(ApiError::InvalidRequestContent(
            "Could not parse request body into json: Unexpected character".to_owned(),
        ));
    }
    Ok(())
}

/// The event to hand the runtime for an Invoke API payload: the payload itself, or `{}` when it
/// is empty, because `lambda_runtime` and awslambdaric both fail to deserialise an empty body.
pub fn event_bytes(payload: Bytes) -> Bytes {
    if payload.iter().all(u8::is_ascii_whitespace) { Bytes::from_static(b"{}") } else { payload }
}

/// The `X-Amz-Log-Result` value: base64 of the last [`LOG_TAIL_BYTES`] of `log`, cut at a UTF-8
/// character boundary so the decoded text is valid.
pub fn log_result(log: &[u8]) -> String {
    let mut start = log.len().saturating_sub(LOG_TAIL_BYTES);
    // Skip continuation bytes (10xxxxxx) of a character cut in half.
    while start < log.len() && start > 0 && log[start] & 0xC0 == 0x80 {
        start += 1;
    }
    BASE64.encode(&log[start..])
}

/// The response to a synchronous (RequestResponse) invocation that ran: 200 with the function's
/// payload, `X-Amz-Executed-Version`, `X-Amz-Function-Error: Unhandled` when the function
/// failed (the payload is then its error JSON), and `X-Amz-Log-Result` when a log tail is given
/// (pass it only for `LogType::Tail`).
pub fn invocation_response(
    outcome: &Invocation,
    executed_version: &str,
    log_tail: Option<&[u8]>,
    request_id: &str,
) -> Response<Bytes> {
    let (body, function_error) = match outcome {
        Invocation::Response(body) => (body.clone(), None),
        Invocation::Error { body, .. } => (body.clone(), Some("Unhandled")),
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(version) = HeaderValue::from_str(executed_version) {
        headers.insert(EXECUTED_VERSION, version);
    }
    if let Some(kind) = function_error {
        headers.insert(FUNCTION_ERROR, HeaderValue::from_static(kind));
    }
    if let Some(log) = log_tail
        && let Ok(value) = HeaderValue::from_str(&log_result(log))
    {
        headers.insert(LOG_RESULT, value);
    }
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert(REQUEST_ID, id);
    }
    response
}

/// The response to an accepted Event (202) or DryRun (204) invocation: empty body.
pub fn accepted_response(invocation_type: InvocationType, request_id: &str) -> Response<Bytes> {
    let mut response = Response::new(Bytes::new());
    *response.status_mut() = invocation_type.success_status();
    if let Ok(id) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert(REQUEST_ID, id);
    }
    response
}

/// A function that ran out of time, reported as AWS does: the function error payload
/// `{"errorMessage":"… Task timed out after N seconds","errorType":"Sandbox.Timedout"}`
/// (AWS's wording), for [`invocation_response`].
pub fn timeout_outcome(request_id: &str, timeout: std::time::Duration) -> Invocation {
    let message = format!("{request_id} Task timed out after {:.2} seconds", timeout.as_secs_f64());
    Invocation::Error {
        error_type: "Sandbox.Timedout".to_owned(),
        body: crate::runtime_api::error_body(&message, "Sandbox.Timedout"),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) =
                ((bytes[i + 1] as char).to_digit(16), (bytes[i + 2] as char).to_digit(16))
        {
            out.push((hi << 4 | lo) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(request: http::Request<()>) -> http::request::Parts {
        request.into_parts().0
    }

    #[test]
    fn parses_defaults_and_headers() {
        let p = parse_invoke(&parts(
            http::Request::post("/2015-03-31/functions/hello/invocations").body(()).unwrap(),
        ))
        .unwrap();
        assert_eq!(
            p,
            InvokeParams {
                function_name: "hello".into(),
                qualifier: None,
                invocation_type: InvocationType::RequestResponse,
                log_type: LogType::None,
                client_context: None,
            }
        );

        let context = BASE64.encode(r#"{"custom":{"k":"v"}}"#);
        let request = http::Request::post("/2015-03-31/functions/hello/invocations?Qualifier=v2")
            .header("X-Amz-Invocation-Type", "Event")
            .header("X-Amz-Log-Type", "Tail")
            .header("X-Amz-Client-Context", context)
            .body(())
            .unwrap();
        let p = parse_invoke(&parts(request)).unwrap();
        assert_eq!(p.qualifier.as_deref(), Some("v2"));
        assert_eq!(p.invocation_type, InvocationType::Event);
        assert_eq!(p.log_type, LogType::Tail);
        assert_eq!(p.client_context.as_deref(), Some(r#"{"custom":{"k":"v"}}"#));

        let request = http::Request::post("/2015-03-31/functions/hello/invocations")
            .header("X-Amz-Invocation-Type", "DryRun")
            .body(())
            .unwrap();
        assert_eq!(parse_invoke(&parts(request)).unwrap().invocation_type, InvocationType::DryRun);
    }

    #[test]
    fn rejects_bad_headers() {
        for (name, value) in [
            ("X-Amz-Invocation-Type", "Sometimes"),
            ("X-Amz-Log-Type", "Head"),
            ("X-Amz-Client-Context", "%%%"),
        ] {
            let request = http::Request::post("/2015-03-31/functions/f/invocations")
                .header(name, value)
                .body(())
                .unwrap();
            let err = parse_invoke(&parts(request)).unwrap_err();
            assert_eq!(err.error_type(), "InvalidParameterValueException", "{name}");
            assert_eq!(err.status(), 400);
        }
        let request = http::Request::post("/2015-03-31/functions/invocations").body(()).unwrap();
        assert_eq!(parse_invoke(&parts(request)).unwrap_err().status(), 404);
    }

    #[test]
    fn function_name_forms() {
        let arn = "arn%3Aaws%3Alambda%3Ayun-local-1%3A000000000000%3Afunction%3Ahello%3Aprod";
        let request =
            http::Request::post(format!("/2015-03-31/functions/{arn}/invocations")).body(()).unwrap();
        let p = parse_invoke(&parts(request)).unwrap();
        assert_eq!((p.function_name.as_str(), p.qualifier.as_deref()), ("hello", Some("prod")));

        assert_eq!(parse_function_name("hello").unwrap(), ("hello".into(), None));
        assert_eq!(parse_function_name("hello:$LATEST").unwrap(), ("hello".into(), Some("$LATEST".into())));
        assert_eq!(parse_function_name("000000000000:function:hello").unwrap(), ("hello".into(), None));
        assert!(parse_function_name("arn:aws:s3:::bucket").is_err());
        assert!(parse_function_name("bad name").is_err());
        assert!(parse_function_name("").is_err());

        let request = http::Request::post("/2015-03-31/functions/hello:prod/invocations?Qualifier=dev")
            .body(())
            .unwrap();
        assert_eq!(parse_invoke(&parts(request)).unwrap_err().error_type(), "InvalidParameterValueException");
    }

    #[test]
    fn builds_responses_boto3_reads() {
        let ok = invocation_response(
            &Invocation::Response(Bytes::from_static(b"{\"a\":1}")),
            "$LATEST",
            None,
            "r1",
        );
        assert_eq!(ok.status(), 200);
        assert_eq!(ok.headers()["x-amz-executed-version"], "$LATEST");
        assert!(ok.headers().get("x-amz-function-error").is_none());
        assert!(ok.headers().get("x-amz-log-result").is_none());
        assert_eq!(ok.body(), "{\"a\":1}");

        let failed = Invocation::Error {
            error_type: "ValueError".into(),
            body: Bytes::from_static(br#"{"errorMessage":"no","errorType":"ValueError","stackTrace":[]}"#),
        };
        let err = invocation_response(&failed, "3", Some(b"START\nboom\nEND\n"), "r2");
        assert_eq!(err.status(), 200);
        assert_eq!(err.headers()["x-amz-function-error"], "Unhandled");
        assert_eq!(err.headers()["x-amz-executed-version"], "3");
        let log = BASE64.decode(err.headers()["x-amz-log-result"].as_bytes()).unwrap();
        assert_eq!(log, b"START\nboom\nEND\n");

        assert_eq!(accepted_response(InvocationType::Event, "r3").status(), 202);
        assert_eq!(accepted_response(InvocationType::DryRun, "r3").status(), 204);

        match timeout_outcome("r4", std::time::Duration::from_secs(3)) {
            Invocation::Error { error_type, body } => {
                assert_eq!(error_type, "Sandbox.Timedout");
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(v["errorMessage"], "r4 Task timed out after 3.00 seconds");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn log_tail_is_last_4k_on_a_char_boundary() {
        let mut log = "é".repeat(3000).into_bytes(); // 6000 bytes of two-byte characters
        log.extend_from_slice(b"end");
        let tail = BASE64.decode(log_result(&log)).unwrap();
        assert!(tail.len() <= LOG_TAIL_BYTES);
        assert!(tail.len() >= LOG_TAIL_BYTES - 1);
        let text = String::from_utf8(tail).unwrap();
        assert!(text.ends_with("éend"));
        assert_eq!(BASE64.decode(log_result(b"short")).unwrap(), b"short");
    }

    #[test]
    fn error_bodies_botocore_maps() {
        let response =
            ApiError::ResourceNotFound("arn:aws:lambda:r:0:function:nope".into()).to_response("req-5");
        assert_eq!(response.status(), 404);
        assert_eq!(response.headers()["x-amzn-errortype"], "ResourceNotFoundException");
        assert_eq!(response.headers()["x-amzn-requestid"], "req-5");
        let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(body["Type"], "User");
        assert_eq!(body["Message"], "Function not found: arn:aws:lambda:r:0:function:nope");

        let response = ApiError::Service("disk on fire".into()).to_response("x");
        assert_eq!(response.status(), 500);
        let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(body["Type"], "Service");
        assert_eq!(ApiError::TooManyRequests.to_response("x").status(), 429);
    }

    #[test]
    fn payload_checks() {
        assert!(check_payload(InvocationType::RequestResponse, b"").is_ok());
        assert!(check_payload(InvocationType::RequestResponse, br#"{"a":1}"#).is_ok());
        assert_eq!(
            check_payload(InvocationType::RequestResponse, b"{nope").unwrap_err().error_type(),
            "InvalidRequestContentException"
        );
        let big = vec![b' '; MAX_ASYNC_PAYLOAD + 1];
        assert!(check_payload(InvocationType::RequestResponse, &big).is_ok());
        let err = check_payload(InvocationType::Event, &big).unwrap_err();
        assert_eq!((err.status().as_u16(), err.error_type()), (413, "RequestTooLargeException"));
        assert_eq!(event_bytes(Bytes::new()), "{}");
        assert_eq!(event_bytes(Bytes::from_static(b"[1]")), "[1]");
    }
}
