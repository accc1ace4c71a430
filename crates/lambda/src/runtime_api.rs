//! The Lambda Runtime API of one function instance.
//!
//! Lambda hands a runtime one invocation at a time: the runtime long-polls
//! `GET /2018-06-01/runtime/invocation/next`, gets an event with its request id and deadline in
//! headers, and posts the outcome to `/invocation/{id}/response` or `/invocation/{id}/error`
//! before asking for the next one. A runtime that cannot start posts `/init/error` instead.
//!
//! Status codes and error bodies follow AWS's documentation and its Runtime Interface Emulator:
//! 202 `{"status":"OK"}` for accepted posts, 400 `InvalidRequestID` for an id that is not the
//! invocation in flight, 403 `InvalidStateTransition` for a call the state does not allow (a
//! response with nothing in flight, `/init/error` after initialisation), 413
//! `RequestEntityTooLarge` for a response over [`MAX_PAYLOAD_SIZE`] (the caller then gets a
//! `Function.ResponseSizeTooLarge` error, as in AWS), 500 once the instance is terminated.

use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_TYPE, HeaderName};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot, watch};

use crate::meta::FunctionMeta;

/// Largest event and largest response, as in AWS for synchronous invocations (6 MB).
pub const MAX_PAYLOAD_SIZE: usize = 6 * 1024 * 1024;

/// How much of an oversized body is read and thrown away before answering 413. Answering
/// without reading makes the client see a reset instead of the 413; reading without bound lets
/// a broken runtime stream forever.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

const PREFIX: &str = "/2018-06-01/runtime/";

const H_REQUEST_ID: HeaderName = HeaderName::from_static("lambda-runtime-aws-request-id");
const H_DEADLINE: HeaderName = HeaderName::from_static("lambda-runtime-deadline-ms");
const H_FUNCTION_ARN: HeaderName = HeaderName::from_static("lambda-runtime-invoked-function-arn");
const H_TRACE_ID: HeaderName = HeaderName::from_static("lambda-runtime-trace-id");
const H_CLIENT_CONTEXT: HeaderName = HeaderName::from_static("lambda-runtime-client-context");
const H_COGNITO_IDENTITY: HeaderName = HeaderName::from_static("lambda-runtime-cognito-identity");
const H_ERROR_TYPE: HeaderName = HeaderName::from_static("lambda-runtime-function-error-type");

/// What the function made of an invocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invocation {
    /// The bytes the runtime posted to `/response` (JSON for the official runtimes).
    Response(Bytes),
    /// The runtime posted to `/error` (or its response was too large).
    Error {
        /// The `errorType` of the posted body when it has one (`ValueError`,
        /// `&alloc::boxed::Box<dyn core::error::Error + Send + Sync>`, …), else the
        /// `Lambda-Runtime-Function-Error-Type` header, else `Unhandled`.
        error_type: String,
        /// What the runtime posted, normally `{"errorMessage","errorType","stackTrace"}`: this is
        /// what AWS returns as the Invoke API's payload with `X-Amz-Function-Error: Unhandled`.
        body: Bytes,
    },
}

/// The error a runtime reported at `/init/error`, or why the instance ended before it was ready.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("function initialisation failed: {error_type}: {message}")]
pub struct InitError {
    /// `Runtime.ImportModuleError`, …; `Runtime.ExitError` when the instance ended.
    pub error_type: String,
    /// `errorMessage` of the body when it has one.
    pub message: String,
    /// What the runtime posted, or an AWS-shaped JSON error made up by [`RuntimeApi::terminate`].
    pub body: Bytes,
}

/// Why an invocation got no outcome from the function.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    /// Another invocation is queued or in flight: an instance takes one at a time.
    #[error("the instance is busy with another invocation")]
    Busy,
    /// The runtime reported an init error, before or while this invocation waited.
    #[error(transparent)]
    InitFailed(InitError),
    /// [`RuntimeApi::terminate`] was called (the process exited, was killed, …).
    #[error("the instance is gone: {0}")]
    Terminated(String),
    /// The event is larger than [`MAX_PAYLOAD_SIZE`].
    #[error("event of {size} bytes is over the {limit}-byte limit")]
    EventTooLarge { size: usize, limit: usize },
    /// The request id is empty or cannot be sent as a header / path segment.
    #[error("invalid request id {0:?}")]
    InvalidRequestId(String),
}

/// One invocation as the runtime will see it. [`InvokeRequest::new`] fills the optional parts.
#[derive(Clone, Debug)]
pub struct InvokeRequest {
    pub request_id: String,
    pub deadline: SystemTime,
    pub event: Bytes,
    /// Reported as Lambda-Runtime-Invoked-Function-Arn; defaults to the unqualified ARN.
    pub invoked_function_arn: Option<String>,
    /// Lambda-Runtime-Trace-Id (`Root=1-…;Parent=…;Sampled=0`); a fresh one when `None`.
    pub trace_id: Option<String>,
    /// Lambda-Runtime-Client-Context: the JSON itself (the Invoke API carries it base64-encoded;
    /// decode it first, see [`crate::invoke_api::decode_client_context`]).
    pub client_context: Option<String>,
    /// Lambda-Runtime-Cognito-Identity, JSON.
    pub cognito_identity: Option<String>,
}

impl InvokeRequest {
    pub fn new(request_id: impl Into<String>, deadline: SystemTime, event: Bytes) -> Self {
        InvokeRequest {
            request_id: request_id.into(),
            deadline,
            event,
            invoked_function_arn: None,
            trace_id: None,
            client_context: None,
            cognito_identity: None,
        }
    }
}

type Outcome = Result<Invocation, RuntimeError>;

#[derive(Clone, Debug)]
enum InitStatus {
    Pending,
    Ready,
    Failed(InitError),
}

struct Queued {
    ticket: u64,
    request: InvokeRequest,
    reply: oneshot::Sender<Outcome>,
}

struct InFlight {
    request_id: String,
    reply: oneshot::Sender<Outcome>,
}

struct State {
    next_ticket: u64,
    /// Waiting for the runtime's next `/next`.
    queued: Option<Queued>,
    /// Handed to the runtime, waiting for its `/response` or `/error`.
    in_flight: Option<InFlight>,
    init: InitStatus,
    terminated: Option<String>,
}

/// The Runtime API of ONE instance (one invocation at a time, as in Lambda).
///
/// Pure mechanism: it does not start, watch or kill processes. Whoever does tells it with
/// [`RuntimeApi::terminate`] when the process is gone, so waiting callers are released.
pub struct RuntimeApi {
    meta: FunctionMeta,
    arn: String,
    state: Mutex<State>,
    /// Wakes `/next` long-polls when an invocation is queued or the instance is terminated.
    wake: Notify,
    /// Mirrors `State::init` for [`RuntimeApi::ready`]; only written under the state lock.
    init_tx: watch::Sender<InitStatus>,
}

impl RuntimeApi {
    pub fn new(meta: FunctionMeta) -> Arc<Self> {
        let arn = meta.arn();
        Arc::new(RuntimeApi {
            meta,
            arn,
            state: Mutex::new(State {
                next_ticket: 0,
                queued: None,
                in_flight: None,
                init: InitStatus::Pending,
                terminated: None,
            }),
            wake: Notify::new(),
            init_tx: watch::channel(InitStatus::Pending).0,
        })
    }

    pub fn meta(&self) -> &FunctionMeta {
        &self.meta
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; should it ever, the state is still consistent
        // enough to keep answering rather than poisoning every later call.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_init(&self, state: &mut State, status: InitStatus) {
        state.init = status.clone();
        self.init_tx.send_replace(status);
    }

    /// Resolves when the runtime first calls `/next` (it is initialised), or with the error it
    /// posted to `/init/error` (or the one [`RuntimeApi::terminate`] made up).
    ///
    /// A process that dies without either never resolves this by itself: race it against the
    /// process's exit, or call `terminate` when it exits.
    pub async fn ready(&self) -> Result<(), InitError> {
        let mut rx = self.init_tx.subscribe();
        // The sender lives in `self`, so `wait_for` cannot fail while we borrow `self`.
        let status = match rx.wait_for(|s| !matches!(s, InitStatus::Pending)).await {
            Ok(status) => status.clone(),
            Err(_) => return Ok(()),
        };
        match status {
            InitStatus::Failed(err) => Err(err),
            _ => Ok(()),
        }
    }

    /// Hands `event` to the instance and waits for its outcome. See [`RuntimeApi::invoke_with`].
    pub async fn invoke(&self, request_id: &str, deadline: SystemTime, event: Bytes) -> Outcome {
        self.invoke_with(InvokeRequest::new(request_id, deadline, event)).await
    }

    /// Hands an invocation to the instance and waits for its outcome.
    ///
    /// The caller applies the timeout: dropping the future abandons the invocation. One the
    /// runtime has not yet taken is withdrawn; one it has taken keeps the instance busy (later
    /// calls get [`RuntimeError::Busy`]) until the runtime answers, because a runtime cannot be
    /// interrupted mid-invocation: AWS resets the environment after a timeout, and so should the
    /// caller (terminate the process).
    pub async fn invoke_with(&self, request: InvokeRequest) -> Outcome {
        let id = &request.request_id;
        if id.is_empty()
            || id.contains(['/', '?', '#', '%'])
            || HeaderValue::from_str(id).is_err()
            || id.chars().any(|c| c.is_whitespace())
        {
            return Err(RuntimeError::InvalidRequestId(id.clone()));
        }
        if request.event.len() > MAX_PAYLOAD_SIZE {
            return Err(RuntimeError::EventTooLarge { size: request.event.len(), limit: MAX_PAYLOAD_SIZE });
        }
        let (reply, outcome) = oneshot::channel();
        let ticket = {
            let mut state = self.lock();
            if let Some(reason) = &state.terminated {
                return Err(RuntimeError::Terminated(reason.clone()));
            }
            if let InitStatus::Failed(err) = &state.init {
                return Err(RuntimeError::InitFailed(err.clone()));
            }
            if state.queued.is_some() || state.in_flight.is_some() {
                return Err(RuntimeError::Busy);
            }
            let ticket = state.next_ticket;
            state.next_ticket += 1;
            state.queued = Some(Queued { ticket, request, reply });
            ticket
        };
        self.wake.notify_waiters();
        let guard = Abandon { api: self, ticket };
        let outcome = outcome.await;
        std::mem::forget(guard);
        // The sender is only dropped unanswered if the state lost it, which it never does
        // (terminate answers it); say so rather than hang.
        outcome.unwrap_or_else(|_| Err(RuntimeError::Terminated("invocation was dropped".to_owned())))
    }

    /// The instance is gone (its process exited or was killed): fail the invocation queued or in
    /// flight, make later calls fail, and fail [`RuntimeApi::ready`] if it had not resolved.
    pub fn terminate(&self, reason: impl Into<String>) {
        let reason = reason.into();
        let mut state = self.lock();
        if state.terminated.is_some() {
            return;
        }
        state.terminated = Some(reason.clone());
        if let Some(queued) = state.queued.take() {
            let _ = queued.reply.send(Err(RuntimeError::Terminated(reason.clone())));
        }
        if let Some(in_flight) = state.in_flight.take() {
            let _ = in_flight.reply.send(Err(RuntimeError::Terminated(reason.clone())));
        }
        if matches!(state.init, InitStatus::Pending) {
            let body = error_body(&reason, "Runtime.ExitError");
            let err = InitError { error_type: "Runtime.ExitError".to_owned(), message: reason, body };
            self.set_init(&mut state, InitStatus::Failed(err));
        }
        drop(state);
        self.wake.notify_waiters();
    }

    /// Serves the Runtime API on `listener` until `shutdown` resolves: GET
    /// `/2018-06-01/runtime/invocation/next`, POST `…/invocation/{id}/response`,
    /// POST `…/invocation/{id}/error`, POST `/2018-06-01/runtime/init/error`.
    ///
    /// HTTP/1.1 only, like AWS's. No header-read timeout on purpose: the runtime keeps its
    /// connection idle for as long as a handler runs, and the listener is meant to be reachable
    /// by this one instance only.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, shutdown: impl Future<Output = ()> + Send) {
        let mut connections = tokio::task::JoinSet::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let _ = stream.set_nodelay(true);
                        let api = self.clone();
                        connections.spawn(async move {
                            let service = service_fn(move |request| {
                                let api = api.clone();
                                async move { Ok::<_, Infallible>(api.handle(request).await) }
                            });
                            if let Err(err) =
                                http1::Builder::new().serve_connection(TokioIo::new(stream), service).await
                            {
                                tracing::debug!(error = %err, "runtime API connection ended with an error");
                            }
                        });
                    }
                    Err(err) => {
                        // Out of descriptors and the like: transient, and spinning would not help.
                        tracing::warn!(error = %err, "runtime API accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        // Long-polls would hold a graceful shutdown forever; the instance is going away anyway.
        connections.shutdown().await;
    }

    async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = request.uri().path().to_owned();
        let Some(route) = path.strip_prefix(PREFIX) else {
            return not_found(&path);
        };
        let method = request.method().clone();
        match route.split('/').collect::<Vec<_>>().as_slice() {
            ["invocation", "next"] if method == Method::GET => self.next().await,
            ["invocation", id, "response"] if method == Method::POST => {
                let id = (*id).to_owned();
                self.response(&id, request).await
            }
            ["invocation", id, "error"] if method == Method::POST => {
                let id = (*id).to_owned();
                self.error(&id, request).await
            }
            ["init", "error"] if method == Method::POST => self.init_error(request).await,
            ["invocation", "next"] | ["invocation", _, "response" | "error"] | ["init", "error"] => {
                render(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed", "MethodNotAllowed")
            }
            _ => not_found(&path),
        }
    }

    async fn next(&self) -> Response<Full<Bytes>> {
        loop {
            let notified = self.wake.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before looking at the state, so a wake-up between the look and the
            // await is not lost.
            notified.as_mut().enable();
            {
                let mut state = self.lock();
                if state.terminated.is_some() {
                    return container_error();
                }
                match &state.init {
                    InitStatus::Failed(_) => {
                        return invalid_transition("InitError", "Ready", "runtime reported an init error");
                    }
                    InitStatus::Pending => self.set_init(&mut state, InitStatus::Ready),
                    InitStatus::Ready => {}
                }
                if state.in_flight.is_some() {
                    return invalid_transition(
                        "Invoking",
                        "Ready",
                        "the invocation in flight has no response or error yet",
                    );
                }
                if let Some(queued) = state.queued.take() {
                    let request = queued.request;
                    let response = self.event_response(&request);
                    state.in_flight = Some(InFlight { request_id: request.request_id, reply: queued.reply });
                    return response;
                }
            }
            notified.await;
        }
    }

    fn event_response(&self, request: &InvokeRequest) -> Response<Full<Bytes>> {
        let deadline_ms = request.deadline.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
        let trace_id = request.trace_id.clone().unwrap_or_else(new_trace_id);
        let arn = request.invoked_function_arn.as_deref().unwrap_or(&self.arn);
        let mut builder = Response::builder()
            .status(StatusCode::OK)
            .header(CONTENT_TYPE, "application/json")
            .header(H_REQUEST_ID, request.request_id.as_str())
            .header(H_DEADLINE, deadline_ms.to_string())
            .header(H_FUNCTION_ARN, arn)
            .header(H_TRACE_ID, trace_id);
        if let Some(context) = &request.client_context {
            builder = builder.header(H_CLIENT_CONTEXT, context.as_str());
        }
        if let Some(identity) = &request.cognito_identity {
            builder = builder.header(H_COGNITO_IDENTITY, identity.as_str());
        }
        builder.body(Full::new(request.event.clone())).unwrap_or_else(|err| {
            // Only an unsendable header value gets here (a caller-supplied ARN, context or
            // trace id); the runtime would choke on a half-made event anyway.
            tracing::error!(error = %err, "cannot render invocation headers");
            render(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error", "InternalServerError")
        })
    }

    /// Checks that `id` may be answered now: `Some` is the refusal to send instead.
    fn refuse_answer(&self, id: &str, to: &str) -> Option<Response<Full<Bytes>>> {
        let state = self.lock();
        if state.terminated.is_some() {
            return Some(container_error());
        }
        match &state.in_flight {
            None => Some(invalid_transition("Ready", to, "no invocation is in flight")),
            Some(in_flight) if in_flight.request_id != id => Some(invalid_request_id()),
            Some(_) => None,
        }
    }

    /// Takes the in-flight invocation if it is still `id` (it can be terminated meanwhile).
    fn take_in_flight(&self, id: &str) -> Option<InFlight> {
        let mut state = self.lock();
        match &state.in_flight {
            Some(in_flight) if in_flight.request_id == id => state.in_flight.take(),
            _ => None,
        }
    }

    async fn response(&self, id: &str, request: Request<Incoming>) -> Response<Full<Bytes>> {
        if let Some(response) = self.refuse_answer(id, "InvocationResponse") {
            return response;
        }
        let body = match read_body(request.into_body()).await {
            // The runtime went away mid-body: no outcome yet, and it may reconnect and answer
            // again, so the invocation stays in flight.
            Body::Failed(err) => return truncated(&err),
            body => body,
        };
        let Some(in_flight) = self.take_in_flight(id) else {
            return invalid_request_id();
        };
        match body {
            Body::Complete(body) => {
                let _ = in_flight.reply.send(Ok(Invocation::Response(body)));
                accepted()
            }
            Body::TooLarge => {
                let message = format!(
                    "Response payload size exceeded maximum allowed payload size ({MAX_PAYLOAD_SIZE} bytes)."
                );
                let error_type = "Function.ResponseSizeTooLarge";
                let error = Invocation::Error {
                    error_type: error_type.to_owned(),
                    body: error_body(&message, error_type),
                };
                let _ = in_flight.reply.send(Ok(error));
                too_large()
            }
            Body::Failed(err) => truncated(&err),
        }
    }

    async fn error(&self, id: &str, request: Request<Incoming>) -> Response<Full<Bytes>> {
        if let Some(response) = self.refuse_answer(id, "InvocationErrorResponse") {
            return response;
        }
        let header_type = header_string(&request, &H_ERROR_TYPE);
        let body = match read_body(request.into_body()).await {
            Body::Failed(err) => return truncated(&err),
            body => body,
        };
        let Some(in_flight) = self.take_in_flight(id) else {
            return invalid_request_id();
        };
        match body {
            Body::Complete(body) => {
                let error_type =
                    body_error_type(&body).or(header_type).unwrap_or_else(|| "Unhandled".to_owned());
                let _ = in_flight.reply.send(Ok(Invocation::Error { error_type, body }));
                accepted()
            }
            Body::TooLarge => {
                let message = format!(
                    "Error payload size exceeded maximum allowed payload size ({MAX_PAYLOAD_SIZE} bytes)."
                );
                let error_type = "Function.ResponseSizeTooLarge";
                let error = Invocation::Error {
                    error_type: error_type.to_owned(),
                    body: error_body(&message, error_type),
                };
                let _ = in_flight.reply.send(Ok(error));
                too_large()
            }
            Body::Failed(err) => truncated(&err),
        }
    }

    async fn init_error(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let header_type = header_string(&request, &H_ERROR_TYPE);
        let body = match read_body(request.into_body()).await {
            Body::Complete(body) => body,
            // Still an init failure; what it said is lost, which the made-up body says.
            Body::TooLarge => error_body("init error body too large", "Runtime.Unknown"),
            Body::Failed(_) => error_body("init error body truncated", "Runtime.Unknown"),
        };
        let mut state = self.lock();
        if state.terminated.is_some() {
            return container_error();
        }
        match state.init {
            InitStatus::Pending => {}
            InitStatus::Ready => {
                return invalid_transition("Ready", "InitError", "the runtime is initialised");
            }
            InitStatus::Failed(_) => {
                return invalid_transition("InitError", "InitError", "init error already reported");
            }
        }
        let error_type =
            body_error_type(&body).or(header_type).unwrap_or_else(|| "Runtime.Unknown".to_owned());
        let message = body_field(&body, "errorMessage").unwrap_or_default();
        let err = InitError { error_type, message, body };
        // An invocation that was waiting for this instance will never run on it.
        if let Some(queued) = state.queued.take() {
            let _ = queued.reply.send(Err(RuntimeError::InitFailed(err.clone())));
        }
        self.set_init(&mut state, InitStatus::Failed(err));
        accepted()
    }
}

/// Withdraws a queued invocation whose caller stopped waiting (see [`RuntimeApi::invoke_with`]).
struct Abandon<'a> {
    api: &'a RuntimeApi,
    ticket: u64,
}

impl Drop for Abandon<'_> {
    fn drop(&mut self) {
        let mut state = self.api.lock();
        if state.queued.as_ref().is_some_and(|q| q.ticket == self.ticket) {
            state.queued = None;
        }
        // In flight: left as is; the runtime is working on it and its answer goes nowhere.
    }
}

enum Body {
    Complete(Bytes),
    TooLarge,
    Failed(hyper::Error),
}

async fn read_body(mut body: Incoming) -> Body {
    let mut buf = BytesMut::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(err) => return Body::Failed(err),
        };
        // Trailers (Lambda-Runtime-Function-Error-* of streamed responses) are not supported.
        let Ok(data) = frame.into_data() else { continue };
        seen = seen.saturating_add(data.len());
        if seen > DRAIN_LIMIT {
            return Body::TooLarge;
        }
        if seen <= MAX_PAYLOAD_SIZE {
            buf.extend_from_slice(&data);
        }
    }
    if seen > MAX_PAYLOAD_SIZE { Body::TooLarge } else { Body::Complete(buf.freeze()) }
}

fn header_string(request: &Request<Incoming>, name: &HeaderName) -> Option<String> {
    request.headers().get(name).and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty()).map(str::to_owned)
}

fn body_field(body: &[u8], field: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value.get(field)?.as_str().map(str::to_owned)
}

fn body_error_type(body: &[u8]) -> Option<String> {
    body_field(body, "errorType").filter(|t| !t.is_empty())
}

/// `{"errorMessage": …, "errorType": …}`, the shape of every Lambda error body.
pub(crate) fn error_body(message: &str, error_type: &str) -> Bytes {
    Bytes::from(json!({ "errorMessage": message, "errorType": error_type }).to_string())
}

/// The X-Ray form (`Root=1-<8 hex>-<24 hex>;Parent=<16 hex>;Sampled=<0|1>`) of a W3C
/// `traceparent`, as OpenTelemetry's X-Ray propagator maps the two: the same 128-bit trace id,
/// split after its first 32 bits. `None` for anything but a valid version-00 header.
pub fn xray_trace_id(traceparent: &str) -> Option<String> {
    let mut parts = traceparent.trim().split('-');
    let (version, trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    if version != "00" || parts.next().is_some() || !hex(trace, 32) || !hex(span, 16) || !hex(flags, 2) {
        return None;
    }
    let sampled = u8::from_str_radix(flags, 16).ok()? & 1;
    Some(format!("Root=1-{}-{};Parent={span};Sampled={sampled}", &trace[..8], &trace[8..]))
}

fn new_trace_id() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let root = fastrand::u128(..) & ((1u128 << 96) - 1);
    format!("Root=1-{:08x}-{root:024x};Parent={:016x};Sampled=0", secs as u32, fastrand::u64(..))
}

fn render(status: StatusCode, message: &str, error_type: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(error_body(message, error_type)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn accepted() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(br#"{"status":"OK"}"#)));
    *response.status_mut() = StatusCode::ACCEPTED;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn invalid_request_id() -> Response<Full<Bytes>> {
    render(StatusCode::BAD_REQUEST, "Invalid request ID", "InvalidRequestID")
}

fn invalid_transition(from: &str, to: &str, why: &str) -> Response<Full<Bytes>> {
    let message = format!("State transition from {from} to {to} failed for runtime. Error: {why}");
    render(StatusCode::FORBIDDEN, &message, "InvalidStateTransition")
}

fn too_large() -> Response<Full<Bytes>> {
    let message = format!("Exceeded maximum allowed payload size ({MAX_PAYLOAD_SIZE} bytes).");
    render(StatusCode::PAYLOAD_TOO_LARGE, &message, "RequestEntityTooLarge")
}

fn truncated(err: &hyper::Error) -> Response<Full<Bytes>> {
    tracing::debug!(error = %err, "reading a runtime's post failed");
    render(StatusCode::BAD_REQUEST, "HTTP request detected as truncated", "TruncatedHTTPRequest")
}

fn container_error() -> Response<Full<Bytes>> {
    render(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Container error. Non-recoverable state. Runtime should exit promptly.",
        "InternalServerError",
    )
}

fn not_found(path: &str) -> Response<Full<Bytes>> {
    render(StatusCode::NOT_FOUND, &format!("No Runtime API route for {path}"), "NotFound")
}

#[cfg(test)]
mod xray_tests {
    #[test]
    fn a_traceparent_becomes_the_same_trace_in_xray_form() {
        assert_eq!(
            super::xray_trace_id("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").as_deref(),
            Some("Root=1-0af76519-16cd43dd8448eb211c80319c;Parent=b7ad6b7169203331;Sampled=1")
        );
        assert_eq!(super::xray_trace_id("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00-x"), None);
        assert_eq!(super::xray_trace_id("garbage"), None);
    }
}
