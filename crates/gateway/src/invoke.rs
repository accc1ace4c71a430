//! One function invocation: find the serving revision, check access and size limits, hand the
//! request to the runtime, and turn the outcome into the response the caller sees.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, Uri};
use http_body_util::{BodyExt, Full, Limited};
use yun_control_plane::body::{self, Body, BoxError};
use yun_runtime_wasm::{InvokeErrorKind, RequestCtx};
use yun_telemetry::Counters;
use yun_types::{ErrorBody, ErrorCode};

use crate::Gateway;
use crate::report::{Failure, Memory, Report, Via};
use std::net::IpAddr;
use yun_activator::Loaded;
use yun_runtime_process::{Invocation, ProcessRevision};

/// Where a request came from: a client (its address, if known), or the platform itself, which
/// authorized it when it accepted it.
#[derive(Clone, Copy)]
pub(crate) struct Origin {
    pub peer: Option<IpAddr>,
    pub trusted: bool,
    /// What triggered the invocation, for its record.
    pub via: Via,
}

/// What the process path needs from the common prelude of an invocation.
struct ProcessCall<'a> {
    name: &'a str,
    path: &'a str,
    peer: Option<IpAddr>,
    revision: u64,
    invocation_id: String,
    declared: Option<u64>,
    max_body: u64,
}

pub const INVOCATION_ID: &str = "x-yun-invocation-id";
pub const REVISION: &str = "x-yun-revision";

/// A request body the invocation path accepts: hyper's, for requests off the wire, or any other
/// (a stored event's bytes), so triggers invoke through the same path without a network hop.
pub trait InBody:
    http_body::Body<Data = Bytes, Error: std::error::Error + Send + Sync + 'static> + Send + Unpin + 'static
{
}
impl<T> InBody for T where
    T: http_body::Body<Data = Bytes, Error: std::error::Error + Send + Sync + 'static>
        + Send
        + Unpin
        + 'static
{
}

impl Gateway {
    /// Invokes `function` (the revision its split draws, or `tag`'s) with a request that did not
    /// come off the wire: a stored event's, a trigger's. It was authorized when it was accepted,
    /// so a private function does not ask again. `req`'s path is the one the function sees.
    pub async fn invoke_internal<B: InBody>(
        self: &Arc<Self>,
        function: &str,
        tag: Option<&str>,
        req: Request<B>,
        via: Via,
    ) -> Response<Body> {
        let path = req.uri().path().to_owned();
        self.invoke(req, function, tag, &path, Origin { peer: None, trusted: true, via }).await
    }

    pub(crate) async fn invoke<B: InBody>(
        self: &Arc<Self>,
        mut req: Request<B>,
        name: &str,
        tag: Option<&str>,
        path: &str,
        origin: Origin,
    ) -> Response<Body> {
        let Origin { trusted, via, .. } = origin;
        let arrived = std::time::Instant::now();
        // A stored event keeps its id through every attempt; a client cannot choose one.
        let invocation_id = match req.headers().get(INVOCATION_ID).and_then(|v| v.to_str().ok()) {
            Some(id) if trusted && !id.is_empty() => id.to_string(),
            _ => new_invocation_id(),
        };
        let Some(service) = self.activator.lookup(name) else {
            return fail(&invocation_id, None, ErrorCode::NotFound, format!("no function named {name}"));
        };
        let deployment = match service.pick(tag, req.headers()) {
            Ok(d) => d,
            Err(yun_activator::Miss::UnknownTag(tag)) => {
                return fail(
                    &invocation_id,
                    None,
                    ErrorCode::NotFound,
                    format!("function {name} has no tag {tag}"),
                );
            }
        };
        drop(service);
        if !trusted && crate::events::is_event(req.headers()) {
            return self.accept_event(req, &deployment, name, tag, path).await;
        }
        // W3C trace context: the caller's trace goes on with a span of this invocation; a
        // missing or malformed `traceparent` starts a new trace rather than failing.
        let trace = TraceParent::child_of(req.headers().get(TRACEPARENT).and_then(|v| v.to_str().ok()));
        if let Ok(v) = HeaderValue::from_str(&trace.header()) {
            req.headers_mut().insert(TRACEPARENT, v);
        }
        let mut report = crate::report::Report::new(self, &deployment, &invocation_id, 0);
        report.arrived = arrived;
        report.trace_id = trace.trace_id.clone();
        report.span_id = trace.span_id.clone();
        report.parent_span_id = trace.parent_id.clone();
        report.via = via;
        let mut response = self.invoke_deployment(req, &deployment, name, path, origin, &mut report).await;
        if let Ok(v) = HeaderValue::from_str(&trace.trace_id) {
            response.headers_mut().insert(TRACE_ID, v);
        }
        crate::report::attach(response, report)
    }

    async fn invoke_deployment<B: InBody>(
        self: &Arc<Self>,
        req: Request<B>,
        deployment: &yun_activator::Deployment,
        name: &str,
        path: &str,
        origin: Origin,
        report: &mut Report,
    ) -> Response<Body> {
        let Origin { peer, trusted, .. } = origin;
        let invocation_id = report.invocation_id.clone();
        let revision = deployment.revision.number;
        let spec = &deployment.revision.spec;
        if spec.private && !trusted && !self.may_call_private(req.headers()) {
            return fail(
                &invocation_id,
                Some(revision),
                ErrorCode::Unauthorized,
                format!("function {name} is private: send `Authorization: Bearer <token>`"),
            );
        }
        let max_body = spec.limits.max_body_bytes;
        let declared = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max_body) {
            // A client that waits for `100 Continue` gets its answer without sending a byte;
            // one that sends anyway is read from a little so it gets to see the 413.
            if !req.headers().contains_key(http::header::EXPECT) {
                linger(req.into_body()).await;
            }
            return fail(&invocation_id, Some(revision), ErrorCode::PayloadTooLarge, too_large(max_body));
        }
        Counters::incr(&self.counters.invocations);
        let _slot = self.inflight.acquire().await.expect("the semaphore is never closed");
        let loaded = match self.activator.activate(deployment).await {
            Ok(Loaded::Wasm(l)) => l,
            Ok(Loaded::Process(p)) => {
                let call = ProcessCall { name, path, peer, revision, invocation_id, declared, max_body };
                return self.invoke_process(req, &p, call, report).await;
            }
            Err(e) => {
                Counters::incr(&self.counters.invocation_errors);
                tracing::error!(function = name, revision, "activation failed: {e}");
                let code = match e {
                    yun_activator::ActivateError::ProcessesDisabled(_) => ErrorCode::Unavailable,
                    _ => ErrorCode::Internal,
                };
                return fail(
                    &invocation_id,
                    Some(revision),
                    code,
                    format!("the function could not be loaded: {e}"),
                );
            }
        };

        let (mut parts, incoming) = req.into_parts();
        let path_and_query = match parts.uri.query() {
            Some(q) => format!("{path}?{q}"),
            None => path.to_string(),
        };
        let mut uri = Uri::builder().path_and_query(path_and_query);
        if let Some(authority) = parts.uri.authority() {
            uri = uri.authority(authority.clone());
        }
        if let Some(scheme) = parts.uri.scheme() {
            uri = uri.scheme(scheme.clone());
        }
        parts.uri = match uri.build() {
            Ok(u) => u,
            Err(e) => {
                return fail(
                    &invocation_id,
                    Some(revision),
                    ErrorCode::BadRequest,
                    format!("invalid request URI: {e}"),
                );
            }
        };
        let id_header = HeaderValue::from_str(&invocation_id).expect("uuids are valid header values");
        parts.headers.insert(INVOCATION_ID, id_header.clone());

        let body_too_large = Arc::new(AtomicBool::new(false));
        let body = if declared.is_none() && !incoming.is_end_stream() {
            match read_unknown_length(incoming, max_body).await {
                Ok(bytes) => {
                    report.bytes_in = bytes.len() as u64;
                    Full::new(bytes).map_err(|never| match never {}).boxed_unsync()
                }
                Err((code, message)) => return fail(&invocation_id, Some(revision), code, message),
            }
        } else {
            // A body shorter than declared fails the request, so the declared length is what
            // the function got whenever it got all of it.
            report.bytes_in = declared.unwrap_or(0);
            // The declared length was checked above; the limit still guards a client that
            // sends more than it declared.
            let flag = body_too_large.clone();
            Limited::new(incoming, max_body as usize)
                .map_err(move |e: BoxError| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        flag.store(true, Ordering::Relaxed);
                        wasmtime_wasi_http::Error::HttpRequestBodySize(Some(max_body))
                    } else {
                        match e.downcast::<hyper::Error>() {
                            Ok(h) => wasmtime_wasi_http::Error::Hyper(*h),
                            Err(e) => wasmtime_wasi_http::Error::InternalError(Some(e.to_string())),
                        }
                    }
                })
                .boxed_unsync()
        };
        let deadline = std::time::Instant::now() + loaded.config().timeout;
        let ctx = Arc::new(RequestCtx::new(invocation_id.clone(), deadline));
        report.memory = Memory::Wasm(ctx.clone());
        match loaded.invoke(Request::from_parts(parts, body), ctx).await {
            Ok(response) => {
                let mut response = response.map(|b| b.map_err(|e| Box::new(e) as BoxError).boxed_unsync());
                let headers = response.headers_mut();
                headers.insert(INVOCATION_ID, id_header);
                headers.insert(REVISION, HeaderValue::from(revision));
                response
            }
            Err(e) => {
                Counters::incr(&self.counters.invocation_errors);
                if body_too_large.load(Ordering::Relaxed) {
                    return fail(
                        &invocation_id,
                        Some(revision),
                        ErrorCode::PayloadTooLarge,
                        too_large(max_body),
                    );
                }
                let code = wasm_error_code(e.kind);
                tracing::info!(
                    function = name,
                    revision,
                    invocation_id,
                    code = code.as_str(),
                    "invocation failed: {}",
                    e.message
                );
                fail(&invocation_id, Some(revision), code, e.message)
            }
        }
    }

    async fn invoke_process<B: InBody>(
        &self,
        req: Request<B>,
        process: &ProcessRevision,
        call: ProcessCall<'_>,
        report: &mut Report,
    ) -> Response<Body> {
        let ProcessCall { name, path, peer, revision, invocation_id, declared, max_body } = call;
        let original_path = req.uri().path();
        let prefix = format!("/fn/{name}");
        let path_routed =
            original_path.strip_prefix(&prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        let prefix = if path_routed { prefix } else { String::new() };
        let (parts, incoming) = req.into_parts();
        let body = if declared.is_none() && !incoming.is_end_stream() {
            match read_unknown_length(incoming, max_body).await {
                Ok(bytes) => {
                    report.bytes_in = bytes.len() as u64;
                    Full::new(bytes).map_err(|never| match never {}).boxed_unsync()
                }
                Err((code, message)) => return fail(&invocation_id, Some(revision), code, message),
            }
        } else {
            report.bytes_in = declared.unwrap_or(0);
            Limited::new(incoming, max_body as usize).boxed_unsync()
        };
        let invocation = Invocation {
            id: invocation_id.clone(),
            deadline: std::time::Instant::now() + process.config().timeout,
            path: path.to_string(),
            prefix,
            remote_addr: peer,
            traceparent: parts.headers.get(TRACEPARENT).and_then(|v| v.to_str().ok()).map(str::to_owned),
        };
        match process.invoke(Request::from_parts(parts, body), invocation).await {
            Ok(mut response) => {
                if let Some(used) = response.extensions_mut().remove::<yun_types::Used>() {
                    report.memory = Memory::Measured(used);
                }
                let headers = response.headers_mut();
                if let Ok(v) = HeaderValue::from_str(&invocation_id) {
                    headers.insert(INVOCATION_ID, v);
                }
                headers.insert(REVISION, HeaderValue::from(revision));
                response
            }
            Err(e) => {
                Counters::incr(&self.counters.invocation_errors);
                tracing::info!(
                    function = name,
                    revision,
                    invocation_id,
                    code = e.code.as_str(),
                    "invocation failed: {}",
                    e.message
                );
                fail(&invocation_id, Some(revision), e.code, e.message)
            }
        }
    }
}

impl Gateway {
    /// A private function answers the administrator, and other functions (by their scoped
    /// tokens) calling it from inside.
    pub(crate) fn may_call_private(&self, headers: &http::HeaderMap) -> bool {
        self.control.auth().check(headers) || self.control.auth().function_of(headers).is_some()
    }
}

pub const TRACEPARENT: &str = "traceparent";
/// The trace an invocation belongs to, on its response: the id to look for in the logs.
pub const TRACE_ID: &str = "x-yun-trace-id";

/// A W3C `traceparent` (version 00): `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TraceParent {
    pub trace_id: String,
    pub span_id: String,
    pub flags: String,
    /// The caller's span, when this one continues the caller's trace.
    pub parent_id: Option<String>,
}

impl TraceParent {
    /// Parses a header; `None` for anything the W3C format does not allow (all-zero ids too).
    pub fn parse(header: &str) -> Option<TraceParent> {
        let parts: Vec<&str> = header.trim().split('-').collect();
        let hex = |s: &str, n: usize| {
            s.len() == n && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        let [version, trace, span, flags] = parts.as_slice() else { return None };
        if *version != "00" || !hex(trace, 32) || !hex(span, 16) || !hex(flags, 2) {
            return None;
        }
        if trace.bytes().all(|b| b == b'0') || span.bytes().all(|b| b == b'0') {
            return None;
        }
        Some(TraceParent {
            trace_id: trace.to_string(),
            span_id: span.to_string(),
            flags: flags.to_string(),
            parent_id: None,
        })
    }

    /// This invocation's span: in the caller's trace when it sent a valid one, else a new trace.
    pub fn child_of(header: Option<&str>) -> TraceParent {
        let span_id = format!("{:016x}", fastrand::u64(1..));
        match header.and_then(TraceParent::parse) {
            Some(parent) => TraceParent { parent_id: Some(parent.span_id), span_id, ..parent },
            None => TraceParent {
                trace_id: format!("{:032x}", fastrand::u128(1..)),
                span_id,
                flags: "01".into(),
                parent_id: None,
            },
        }
    }

    pub fn header(&self) -> String {
        format!("00-{}-{}-{}", self.trace_id, self.span_id, self.flags)
    }
}

/// What the caller is told when a wasm invocation fails.
pub(crate) fn wasm_error_code(kind: InvokeErrorKind) -> ErrorCode {
    match kind {
        InvokeErrorKind::FunctionError => ErrorCode::FunctionError,
        InvokeErrorKind::MemoryLimitExceeded => ErrorCode::MemoryLimitExceeded,
        InvokeErrorKind::Timeout => ErrorCode::Timeout,
        InvokeErrorKind::Unavailable => ErrorCode::Unavailable,
        InvokeErrorKind::Overloaded => ErrorCode::TooManyRequests,
        InvokeErrorKind::Internal => ErrorCode::Internal,
    }
}

/// Reads and drops what a refused client is still sending (bounded in bytes and time), like
/// nginx's lingering close: closing on a client mid-upload makes it see a broken pipe instead
/// of the 413 it was sent.
async fn linger<B: InBody>(mut body: B) {
    const MAX_BYTES: usize = 16 * 1024 * 1024;
    let drain = async {
        let mut seen = 0;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len());
            if seen > MAX_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), drain).await;
}

/// A UUIDv7: time-ordered, so ids sort by arrival in logs. Its random bits come from a
/// thread-local generator seeded once per thread: an invocation id must be unique, not
/// unguessable, and `Uuid::now_v7` asks the kernel for randomness on every request.
pub(crate) fn new_invocation_id() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let random: [u8; 16] = fastrand::u128(..).to_le_bytes();
    let mut tail = [0u8; 10];
    tail.copy_from_slice(&random[..10]);
    uuid::Builder::from_unix_timestamp_millis(millis, &tail).into_uuid().to_string()
}

/// Reads a body of unknown length up front (as nginx does by default): once a function has
/// started its response, an over-limit body could only cut it off, while read first it gets a
/// precise 413.
async fn read_unknown_length<B: InBody>(
    mut incoming: B,
    max_body: u64,
) -> Result<Bytes, (ErrorCode, String)> {
    let mut buf = bytes::BytesMut::new();
    loop {
        match incoming.frame().await {
            None => return Ok(buf.freeze()),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if (buf.len() + data.len()) as u64 > max_body {
                        linger(incoming).await;
                        return Err((ErrorCode::PayloadTooLarge, too_large(max_body)));
                    }
                    buf.extend_from_slice(&data);
                }
            }
            Some(Err(e)) => {
                return Err((ErrorCode::BadRequest, format!("reading the request body: {e}")));
            }
        }
    }
}

fn too_large(max: u64) -> String {
    format!("the request body is larger than the function's limit of {max} bytes")
}

fn fail(invocation_id: &str, revision: Option<u64>, code: ErrorCode, message: String) -> Response<Body> {
    let failure = Failure(format!("{}: {message}", code.as_str()));
    let mut err = ErrorBody::new(code, message);
    err.error.invocation_id = Some(invocation_id.to_string());
    let mut response = body::error_body(err);
    response.extensions_mut().insert(failure);
    let headers = response.headers_mut();
    headers
        .insert(INVOCATION_ID, HeaderValue::from_str(invocation_id).expect("uuids are valid header values"));
    if let Some(r) = revision {
        headers.insert(REVISION, HeaderValue::from(r));
    }
    if matches!(code, ErrorCode::Unavailable | ErrorCode::TooManyRequests) {
        headers.insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

#[cfg(test)]
mod trace_tests {
    use super::TraceParent;

    #[test]
    fn a_valid_traceparent_is_continued_and_a_bad_one_replaced() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let child = TraceParent::child_of(Some(parent));
        assert_eq!(child.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(child.span_id, "00f067aa0ba902b7");
        assert_eq!(child.parent_id.as_deref(), Some("00f067aa0ba902b7"));
        let reparsed = TraceParent::parse(&child.header()).unwrap();
        assert_eq!((reparsed.trace_id, reparsed.span_id), (child.trace_id.clone(), child.span_id.clone()));
        for bad in [
            "garbage",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
            let fresh = TraceParent::child_of(Some(bad));
            assert_eq!(fresh.trace_id.len(), 32);
            assert!(TraceParent::parse(&fresh.header()).is_some());
        }
    }
}
