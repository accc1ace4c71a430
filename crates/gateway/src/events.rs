//! Asynchronous invocations at the gateway. A request with `x-yun-invocation-type: event` (or
//! an Invoke API call of type `Event`) is stored durably and answered 202 with its invocation
//! id; the dispatcher (crates/triggers) delivers it later through [`GatewayInvoker`], which
//! runs it through the same invocation path as a request off the wire, in-process.

use std::sync::{Arc, OnceLock, Weak};

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::{BodyExt, Limited};
use serde_json::json;
use yun_control_plane::body::{self, Body};
use yun_triggers::{Delivery, Invoker, Outcome};
use yun_types::ErrorCode;

use crate::Gateway;
use crate::invoke::{INVOCATION_ID, InBody, Origin};
use crate::report::Via;

pub const INVOCATION_TYPE: &str = "x-yun-invocation-type";

/// The largest body an asynchronous invocation stores, as a queue message.
pub const MAX_EVENT_BYTES: usize = 256 * 1024;

/// Whether the caller asked for an asynchronous invocation.
pub(crate) fn is_event(headers: &http::HeaderMap) -> bool {
    headers.get(INVOCATION_TYPE).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"event"))
}

impl Gateway {
    /// Stores the request as an event of `name` and answers 202 once it is on disk.
    pub(crate) async fn accept_event<B: InBody>(
        self: &Arc<Self>,
        req: Request<B>,
        deployment: &yun_activator::Deployment,
        name: &str,
        tag: Option<&str>,
        path: &str,
    ) -> Response<Body> {
        let spec = &deployment.revision.spec;
        if spec.private && !self.may_call_private(req.headers()) {
            return body::error(
                ErrorCode::Unauthorized,
                format!("function {name} is private: send `Authorization: Bearer <token>`"),
            );
        }
        let limit = MAX_EVENT_BYTES.min(spec.limits.max_body_bytes as usize);
        let (parts, incoming) = req.into_parts();
        let payload = match Limited::new(incoming, limit).collect().await {
            Ok(c) => c.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return body::error(
                    ErrorCode::PayloadTooLarge,
                    format!("an asynchronous invocation's body is at most {limit} bytes"),
                );
            }
            Err(e) => return body::error(ErrorCode::BadRequest, format!("reading the request body: {e}")),
        };
        let uri = match parts.uri.query() {
            Some(q) => format!("{path}?{q}"),
            None => path.to_string(),
        };
        let mut attributes = yun_triggers::envelope::store_request(&parts.method, &uri, &parts.headers);
        if let Some(tag) = tag {
            attributes.insert(yun_triggers::ATTR_TAG.to_string(), tag.to_string());
        }
        self.enqueue(name, payload, attributes).await
    }

    pub(crate) async fn enqueue(
        &self,
        name: &str,
        payload: Bytes,
        attributes: std::collections::BTreeMap<String, String>,
    ) -> Response<Body> {
        match self.control.triggers().enqueue(name, payload, attributes).await {
            Ok(id) => {
                let mut response = body::json(202, &json!({ "invocation_id": id, "status": "queued" }));
                if let Ok(v) = HeaderValue::from_str(&id) {
                    response.headers_mut().insert(INVOCATION_ID, v);
                }
                response
            }
            Err(e) => {
                tracing::error!(function = name, "storing an event failed: {e}");
                let code =
                    if e.status() == 413 { ErrorCode::PayloadTooLarge } else { ErrorCode::Unavailable };
                body::error(code, format!("the event could not be stored: {e}"))
            }
        }
    }
}

/// The triggers' way into the gateway. Made before the gateway exists (the control plane,
/// which the gateway is built on, needs the triggers), and attached to it afterwards.
pub struct GatewayInvoker {
    gateway: OnceLock<Weak<Gateway>>,
    auth: yun_control_plane::Auth,
    redis: OnceLock<std::net::SocketAddr>,
}

impl GatewayInvoker {
    pub fn new(auth: yun_control_plane::Auth) -> Self {
        GatewayInvoker { gateway: OnceLock::new(), auth, redis: OnceLock::new() }
    }

    /// Where the Redis endpoint listens, for functions' `REDIS_URL`.
    pub fn set_redis(&self, addr: std::net::SocketAddr) {
        let _ = self.redis.set(addr);
    }

    pub fn attach(&self, gateway: &Arc<Gateway>) {
        let _ = self.gateway.set(Arc::downgrade(gateway));
    }
}

impl yun_types::local::LocalApi for GatewayInvoker {
    fn call(
        &self,
        _caller: &str,
        request: Request<Bytes>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response<Bytes>> + Send + 'static>> {
        let gateway = self.gateway.get().and_then(Weak::upgrade);
        Box::pin(async move {
            let Some(gateway) = gateway else {
                let mut r = Response::new(Bytes::from_static(b"the server is stopping\n"));
                *r.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
                return r;
            };
            let response = gateway.serve_local(request.map(http_body_util::Full::new)).await;
            let (parts, body) = response.into_parts();
            Response::from_parts(parts, read_limited(body, yun_types::local::MAX_LOCAL_BODY).await)
        })
    }

    fn token_for(&self, function: &str) -> String {
        self.auth.function_token(function)
    }

    fn storage_for(
        &self,
        function: &str,
        revision: u64,
        buckets: &[String],
    ) -> Option<yun_types::local::StorageAccess> {
        let gateway = self.gateway.get().and_then(Weak::upgrade)?;
        gateway.control.storage_access(function, revision, buckets)
    }

    fn redis_for(&self, function: &str) -> Option<std::net::SocketAddr> {
        let addr = *self.redis.get()?;
        let gateway = self.gateway.get().and_then(Weak::upgrade)?;
        gateway.control.uses_kv(function).then_some(addr)
    }
}

impl Gateway {
    /// A request a function made to yun's own API, routed as one off the wire would be, but
    /// never leaving the process. Its rights are its bearer token's: the calling function's
    /// scoped token, not the administrator's.
    async fn serve_local<B: InBody>(self: &Arc<Self>, req: Request<B>) -> Response<Body> {
        let host = req.headers().get(http::header::HOST).and_then(|h| h.to_str().ok()).map(str::to_owned);
        let path = req.uri().path().to_owned();
        let router = self.control.router().get();
        match router.route(host.as_deref(), &path) {
            yun_router::Target::Function { name, tag, path, .. } => {
                self.invoke(req, name, tag, path, Origin { peer: None, trusted: false, via: Via::FUNCTION })
                    .await
            }
            yun_router::Target::Platform => self.control.handle(req.map(crate::to_body)).await,
        }
    }
}

/// What a function answered, up to this much, is kept for destinations and batch reports.
const MAX_OUTCOME_BODY: usize = 6 * 1024 * 1024;

impl Invoker for GatewayInvoker {
    fn invoke<'a>(
        &'a self,
        delivery: Delivery<'a>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Outcome> + Send + 'a>> {
        Box::pin(async move {
            // Events restored at start-up may be due before the gateway is attached, moments later.
            for _ in 0..500 {
                if self.gateway.get().is_some() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            let Some(gateway) = self.gateway.get().and_then(Weak::upgrade) else {
                return Outcome {
                    status: 503,
                    body: Bytes::new(),
                    error: Some("the server is stopping".into()),
                };
            };
            let via = Via { trigger: delivery.trigger, attempt: delivery.attempt };
            if delivery.lambda {
                let id = delivery.request.headers().get(INVOCATION_ID).and_then(|v| v.to_str().ok());
                let id = id.map(str::to_owned);
                return gateway
                    .lambda_event(delivery.function, id.as_deref(), delivery.request.into_body(), via)
                    .await;
            }
            let mut request = delivery.request.map(http_body_util::Full::new);
            // The runtimes need an authority, as any request off the wire has: a stored request
            // kept its own Host; an event gets the function's host name.
            if !request.headers().contains_key(http::header::HOST)
                && let Ok(host) = HeaderValue::from_str(&format!("{}.localhost", delivery.function))
            {
                request.headers_mut().insert(http::header::HOST, host);
            }
            let response = gateway.invoke_internal(delivery.function, delivery.tag, request, via).await;
            let status = response.status().as_u16();
            let body = read_limited(response.into_body(), MAX_OUTCOME_BODY).await;
            let error = (status >= 400).then(|| platform_error(&body)).flatten();
            Outcome { status, body, error }
        })
    }
}

/// Up to `max` bytes of a response body (what is past it, or a broken body, is dropped).
async fn read_limited(mut body: Body, max: usize) -> Bytes {
    let mut out = bytes::BytesMut::new();
    while let Some(Ok(frame)) = body.frame().await {
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > max {
                break;
            }
            out.extend_from_slice(&data);
        }
    }
    out.freeze()
}

/// The message of yun's own error body (`{"error":{"code","message"}}`), when that is what the
/// response is.
fn platform_error(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let e = v.get("error")?;
    Some(format!("{}: {}", e.get("code")?.as_str()?, e.get("message")?.as_str()?))
}
