//! The front door: accepts HTTP connections, sends management calls to the control plane and
//! everything addressed to a function through router → activator → runtime, and stamps every
//! invocation with its id and revision.
//!
//! It owns connection handling (limits, timeouts, graceful shutdown) and the mapping of
//! runtime failures to HTTP statuses. It does not parse management commands, decide routes
//! or run guests itself.

mod events;
mod invoke;
mod lambda_api;
mod report;
mod shutdown;

pub use events::{GatewayInvoker, INVOCATION_TYPE};
pub use shutdown::{Shutdown, ShutdownTrigger};

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use yun_activator::Activator;
use yun_control_plane::ControlPlane;
use yun_control_plane::body::{self, Body};
use yun_router::Target;
use yun_telemetry::Counters;

/// Limits that keep the gateway's own resources bounded under any load.
#[derive(Clone, Debug)]
pub struct GatewayLimits {
    /// Open connections; further clients wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Function invocations in flight; further requests wait for a slot.
    pub max_inflight: usize,
    /// Time a client gets to send its request headers (slowloris protection).
    pub header_timeout: Duration,
    /// How long shutdown waits for in-flight requests before closing connections.
    pub drain_timeout: Duration,
}

impl Default for GatewayLimits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            max_inflight: 1000,
            header_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(30),
        }
    }
}

pub struct Gateway {
    activator: Arc<Activator>,
    control: Arc<ControlPlane>,
    counters: Arc<Counters>,
    inflight: Arc<Semaphore>,
    limits: GatewayLimits,
    /// Where invocation spans go, when an OTLP endpoint is configured.
    traces: Option<Arc<yun_traces::Exporter>>,
}

impl Gateway {
    pub fn new(
        activator: Arc<Activator>,
        control: Arc<ControlPlane>,
        counters: Arc<Counters>,
        limits: GatewayLimits,
    ) -> Self {
        let inflight = Arc::new(Semaphore::new(limits.max_inflight));
        Self { activator, control, counters, inflight, limits, traces: None }
    }

    /// Sends a span of every invocation to `exporter`.
    pub fn with_traces(mut self, exporter: Option<Arc<yun_traces::Exporter>>) -> Self {
        self.traces = exporter;
        self
    }

    async fn serve(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: Option<std::net::IpAddr>,
    ) -> Response<Body> {
        let host = req
            .headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri().authority().map(|a| a.as_str()))
            .map(str::to_owned);
        let path = req.uri().path().to_owned();
        let router = self.control.router().get();
        match router.route(host.as_deref(), &path) {
            Target::Function { name, tag, path, .. } => {
                self.invoke(
                    req,
                    name,
                    tag,
                    path,
                    invoke::Origin { peer, trusted: false, via: report::Via::HTTP },
                )
                .await
            }
            Target::Platform if path == "/healthz" => body::json(200, &serde_ok()),
            Target::Platform if path == "/metrics" => self.control.serve_metrics(req.headers()),
            Target::Platform if path.starts_with(yun_lambda::invoke_api::PATH_PREFIX) => {
                self.lambda_invoke(req, peer).await
            }
            Target::Platform => self.control.handle(req.map(to_body)).await,
        }
    }
}

/// A request body as the management API takes it (it is off the invocation path, so one box
/// is no cost worth avoiding).
pub(crate) fn to_body<B: invoke::InBody>(b: B) -> Body {
    use http_body_util::BodyExt;
    b.map_err(|e| Box::new(e) as yun_control_plane::body::BoxError).boxed_unsync()
}

fn serde_ok() -> std::collections::BTreeMap<&'static str, &'static str> {
    [("status", "ok")].into()
}

/// Serves `listener` until `shutdown` fires, then stops accepting, lets in-flight requests
/// finish (up to the drain timeout) and returns.
pub async fn run(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    mut shutdown: Shutdown,
) -> std::io::Result<()> {
    let connections = Arc::new(Semaphore::new(gateway.limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(gateway.limits.header_timeout)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    loop {
        let permit = tokio::select! {
            _ = shutdown.wait() => break,
            p = connections.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.wait() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Running out of file descriptors must not end the server: wait and retry.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let gw = gateway.clone();
        let peer = Some(peer.ip());
        let service = hyper::service::service_fn(move |req| {
            let gw = gw.clone();
            async move { Ok::<_, Infallible>(gw.serve(req, peer).await) }
        });
        let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("connection ended: {e}");
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(gateway.limits.drain_timeout) => {
            tracing::warn!("drain timeout passed with requests still in flight; closing them");
        }
    }
    Ok(())
}
