//! AWS Lambda's Invoke API (`POST /2015-03-31/functions/{name}/invocations`) for every
//! function, so `boto3.client("lambda", endpoint_url=...).invoke(...)` and `aws lambda invoke`
//! work against yun. A `lambda`-mode function gets the payload as its event; any other function
//! gets it as the body of a `POST /` and its response body is the result.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use yun_activator::{Deployment, Loaded};
use yun_control_plane::body::Body;
use yun_lambda::invoke_api::{self, InvocationType, LogType};
use yun_lambda::runtime_api::Invocation as Outcome;
use yun_runtime_process::Invocation;
use yun_runtime_wasm::RequestCtx;
use yun_telemetry::Counters;

use crate::Gateway;
use crate::invoke::{new_invocation_id, wasm_error_code};
use crate::report::Via;
use yun_triggers::envelope;
use yun_types::ErrorCode;

/// Largest function result returned through the Invoke API, as in AWS.
const MAX_RESULT: usize = 6 * 1024 * 1024;

impl Gateway {
    /// A stored Invoke API event, delivered: the function's split picks the revision.
    pub(crate) async fn lambda_event(
        self: &Arc<Self>,
        function: &str,
        id: Option<&str>,
        payload: Bytes,
        via: Via,
    ) -> yun_triggers::Outcome {
        let gone =
            |status: u16, why: String| yun_triggers::Outcome { status, body: Bytes::new(), error: Some(why) };
        let Some(service) = self.activator.lookup(function) else {
            return gone(404, format!("no function named {function}"));
        };
        let Ok(deployment) = service.pick(None, &http::HeaderMap::new()) else {
            return gone(404, format!("no function named {function}"));
        };
        drop(service);
        let id = id.map_or_else(new_invocation_id, str::to_owned);
        match self.run_payload(&deployment, payload, &id, None, via).await {
            Outcome::Response(body) => yun_triggers::Outcome { status: 200, body, error: None },
            Outcome::Error { error_type, body } => {
                yun_triggers::Outcome { status: 500, body, error: Some(error_type) }
            }
        }
    }

    pub(crate) async fn lambda_invoke(
        self: &Arc<Self>,
        req: Request<Incoming>,
        peer: Option<IpAddr>,
    ) -> Response<Body> {
        let request_id = new_invocation_id();
        let (parts, incoming) = req.into_parts();
        let params = match invoke_api::parse_invoke(&parts) {
            Ok(p) => p,
            Err(e) => return aws(e.to_response(&request_id)),
        };
        let not_found = || {
            aws(invoke_api::ApiError::ResourceNotFound(format!(
                "Function not found: arn:aws:lambda:{}:{}:function:{}",
                yun_lambda::DEFAULT_REGION,
                yun_lambda::DEFAULT_ACCOUNT,
                params.function_name
            ))
            .to_response(&request_id))
        };
        let Some(service) = self.activator.lookup(&params.function_name) else { return not_found() };
        // Unqualified and `$LATEST` follow the function's traffic split; an alias is a tag; a
        // version is a revision that traffic or a tag routes to.
        let deployment = match params.qualifier.as_deref() {
            None | Some("$LATEST") => service.pick(None, &parts.headers).ok(),
            Some(q) => match q.parse::<u64>() {
                Ok(n) => service.deployment(n).cloned(),
                Err(_) => service.pick(Some(q), &parts.headers).ok(),
            },
        };
        drop(service);
        let Some(deployment) = deployment else { return not_found() };
        if deployment.revision.spec.private && !self.control.auth().check(&parts.headers) {
            let mut r = Response::new(Bytes::from(
                r#"{"Type":"User","Message":"this function is private: send Authorization: Bearer <token>"}"#,
            ));
            *r.status_mut() = StatusCode::FORBIDDEN;
            r.headers_mut().insert(invoke_api::ERROR_TYPE, HeaderValue::from_static("AccessDeniedException"));
            return aws(r);
        }
        let limit = params.invocation_type.max_payload();
        let payload = match Limited::new(incoming, limit).collect().await {
            Ok(c) => c.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                let kind =
                    if params.invocation_type == InvocationType::Event { "Event" } else { "RequestResponse" };
                return aws(invoke_api::ApiError::RequestTooLarge { size: limit + 1, limit, kind }
                    .to_response(&request_id));
            }
            Err(e) => {
                return aws(invoke_api::ApiError::InvalidRequestContent(format!("reading the payload: {e}"))
                    .to_response(&request_id));
            }
        };
        if let Err(e) = invoke_api::check_payload(params.invocation_type, &payload) {
            return aws(e.to_response(&request_id));
        }
        let payload = invoke_api::event_bytes(payload);
        match params.invocation_type {
            InvocationType::DryRun => aws(invoke_api::accepted_response(InvocationType::DryRun, &request_id)),
            InvocationType::Event => {
                // Accepted once stored: the dispatcher delivers it (retried, dead-lettered).
                drop(deployment);
                let mut attributes = std::collections::BTreeMap::new();
                attributes.insert(envelope::ATTR_KIND.to_string(), envelope::KIND_EVENT.to_string());
                attributes.insert(yun_triggers::ATTR_LAMBDA.to_string(), "1".to_string());
                attributes.insert("content-type".to_string(), "application/json".to_string());
                match self.control.triggers().enqueue(&params.function_name, payload, attributes).await {
                    Ok(id) => aws(invoke_api::accepted_response(InvocationType::Event, &id)),
                    Err(e) => {
                        aws(invoke_api::ApiError::Service(format!("the event could not be stored: {e}"))
                            .to_response(&request_id))
                    }
                }
            }
            InvocationType::RequestResponse => {
                let since = yun_types::now_ms();
                let outcome = self.run_payload(&deployment, payload, &request_id, peer, Via::INVOKE).await;
                let tail = if params.log_type == LogType::Tail {
                    Some(self.log_tail(&deployment, since, &request_id).await)
                } else {
                    None
                };
                aws(invoke_api::invocation_response(
                    &outcome,
                    &deployment.revision.number.to_string(),
                    tail.as_deref(),
                    &request_id,
                ))
            }
        }
    }

    /// Runs one Invoke API payload on the function, whatever its runtime.
    async fn run_payload(
        &self,
        deployment: &Arc<Deployment>,
        payload: Bytes,
        id: &str,
        peer: Option<IpAddr>,
        via: Via,
    ) -> Outcome {
        Counters::incr(&self.counters.invocations);
        // Filed when this returns, so `LogType: Tail` includes it, as Lambda's does.
        let mut report = crate::report::Report::new(self, deployment, id, 500);
        report.via = via;
        report.bytes_in = payload.len() as u64;
        let outcome = self.run_payload_reported(deployment, payload, id, peer, &mut report).await;
        match &outcome {
            Outcome::Response(body) => {
                report.status = 200;
                report.egress = body.len() as u64;
            }
            Outcome::Error { error_type, body } => {
                report.egress = body.len() as u64;
                report.error =
                    Some(format!("{error_type}: {}", String::from_utf8_lossy(&body[..body.len().min(512)])));
            }
        }
        outcome
    }

    async fn run_payload_reported(
        &self,
        deployment: &Deployment,
        payload: Bytes,
        id: &str,
        peer: Option<IpAddr>,
        report: &mut crate::report::Report,
    ) -> Outcome {
        let spec = &deployment.revision.spec;
        let timeout = Duration::from_millis(spec.limits.timeout_ms);
        let deadline = Instant::now() + timeout;
        let _slot = self.inflight.acquire().await.expect("the semaphore is never closed");
        let failed = |code: &str, message: String| Outcome::Error {
            error_type: code.to_string(),
            body: error_body(&message, code),
        };
        let loaded = match self.activator.activate(deployment).await {
            Ok(l) => l,
            Err(e) => return failed("ServiceException", format!("the function could not be loaded: {e}")),
        };
        let request = || {
            // wasi:http gives guests the authority, so the request needs one.
            Request::post("/")
                .header(http::header::HOST, "localhost")
                .header(http::header::CONTENT_TYPE, "application/json")
                .header(crate::invoke::INVOCATION_ID, id)
        };
        let result: Result<(StatusCode, Bytes), (String, String)> = match loaded {
            Loaded::Wasm(wasm) => {
                let body = Full::new(payload).map_err(|never| match never {}).boxed_unsync();
                let req = request().body(body).expect("valid request");
                let ctx = Arc::new(RequestCtx::new(id.to_string(), deadline));
                report.memory = crate::report::Memory::Wasm(ctx.clone());
                match wasm.invoke(req, ctx).await {
                    Ok(resp) => {
                        report.temperature = resp.extensions().get::<yun_activator::Temperature>().copied();
                        collect(resp).await
                    }
                    Err(e) => Err((wasm_error_code(e.kind).as_str().to_string(), e.message)),
                }
            }
            Loaded::Process(process) => {
                let inv = Invocation {
                    id: id.to_string(),
                    deadline,
                    path: "/".to_string(),
                    prefix: String::new(),
                    remote_addr: peer,
                    traceparent: None,
                };
                if process.config().spec.mode == yun_types::ProcessMode::Lambda {
                    return match process.invoke_event(payload, inv).await {
                        Ok((outcome, temperature, used)) => {
                            report.temperature = Some(temperature);
                            report.memory = crate::report::Memory::Measured(used);
                            outcome
                        }
                        Err(e) if e.code == yun_types::ErrorCode::Timeout => {
                            invoke_api::timeout_outcome(id, timeout)
                        }
                        Err(e) => failed(e.code.as_str(), e.message),
                    };
                }
                let body = Full::new(payload).map_err(|never| match never {}).boxed_unsync();
                match process.invoke(request().body(body).expect("valid request"), inv).await {
                    Ok(resp) => {
                        report.temperature = resp.extensions().get::<yun_activator::Temperature>().copied();
                        if let Some(used) = resp.extensions().get::<yun_types::Used>() {
                            report.memory = crate::report::Memory::Measured(*used);
                        }
                        collect(resp).await
                    }
                    Err(e) => Err((e.code.as_str().to_string(), e.message)),
                }
            }
        };
        match result {
            Ok((status, body)) if !status.is_server_error() => Outcome::Response(body),
            Ok((status, body)) => failed(
                "Unhandled",
                format!(
                    "the function answered {status}: {}",
                    String::from_utf8_lossy(&body[..body.len().min(1024)])
                ),
            ),
            Err((code, message)) => {
                Counters::incr(&self.counters.invocation_errors);
                if code == ErrorCode::Timeout.as_str() {
                    return invoke_api::timeout_outcome(id, timeout);
                }
                failed(&code, message)
            }
        }
    }

    /// The invocation's log lines, for `X-Amz-Log-Type: Tail`.
    async fn log_tail(&self, deployment: &Deployment, since_ms: u64, id: &str) -> Vec<u8> {
        // A process's last lines travel through a pipe and a reader task; give them a moment.
        tokio::time::sleep(Duration::from_millis(25)).await;
        let name = deployment.revision.function.as_str();
        let entries = self.control.log_store().read(name, since_ms, 10_000).unwrap_or_default();
        let mut out = Vec::new();
        for e in entries.iter().filter(|e| e.invocation_id == id) {
            out.extend_from_slice(e.line.as_bytes());
            out.push(b'\n');
        }
        out
    }
}

/// Reads a response body whole, up to the Invoke API's result limit.
async fn collect<B>(response: Response<B>) -> Result<(StatusCode, Bytes), (String, String)>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let (parts, mut body) = response.into_parts();
    let mut out = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ("Unhandled".to_string(), format!("reading the function's response: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > MAX_RESULT {
                return Err((
                    "Function.ResponseSizeTooLarge".to_string(),
                    format!("the response is larger than {MAX_RESULT} bytes"),
                ));
            }
            out.extend_from_slice(&data);
        }
    }
    Ok((parts.status, out.freeze()))
}

fn aws(r: Response<Bytes>) -> Response<Body> {
    r.map(|b| Full::new(b).map_err(|never| match never {}).boxed_unsync())
}

/// The error shape the Lambda runtimes post and the Invoke API returns.
fn error_body(message: &str, error_type: &str) -> Bytes {
    Bytes::from(serde_json::json!({ "errorMessage": message, "errorType": error_type }).to_string())
}
