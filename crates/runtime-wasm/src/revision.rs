//! A revision loaded into memory, ready to serve: precompiled code, its `InstancePre`, and the
//! pool of instances handling its requests.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime::component::Component;
use wasmtime_wasi_http::WasiBody;
use wasmtime_wasi_http::handler::{ExpirationError, InstantiationError, ProxyHandler, ProxyPre};
use yun_telemetry::LogSink;
use yun_types::InstanceMode;

use crate::Runtime;
use crate::pool::RevisionHandler;

/// Everything that decides how a revision's instances behave.
pub struct RevisionConfig {
    pub function: Arc<str>,
    pub revision: u64,
    pub env: Vec<(String, String)>,
    pub allow_outbound: Vec<String>,
    pub memory_bytes: u64,
    pub timeout: Duration,
    pub mode: InstanceMode,
    /// Requests one instance serves before it is replaced (reuse mode).
    pub max_reuse: usize,
    /// How long an idle instance stays warm (reuse mode).
    pub idle_timeout: Duration,
    pub log_sink: Arc<dyn LogSink>,
    /// yun's own API, reached by the guest at `http://yun.internal/`, in-process.
    pub local: Option<Arc<dyn yun_types::local::LocalApi>>,
}

/// One invocation as the runtime sees it: its id, and what went wrong, if anything.
pub struct RequestCtx {
    pub invocation_id: String,
    /// When the function must have responded by.
    pub deadline: Instant,
    memory_exceeded: AtomicBool,
    /// The most linear memory the serving instance has had during this request, in bytes.
    max_memory: std::sync::atomic::AtomicU64,
    /// The request's W3C `traceparent`, which the function's outbound calls carry on.
    traceparent: std::sync::OnceLock<http::HeaderValue>,
    /// Set when this request failed: the instance that served it must not serve another.
    failed: AtomicBool,
    failure: Mutex<Option<String>>,
}

impl RequestCtx {
    pub fn new(invocation_id: String, deadline: Instant) -> Self {
        Self {
            invocation_id,
            deadline,
            memory_exceeded: AtomicBool::new(false),
            max_memory: std::sync::atomic::AtomicU64::new(0),
            traceparent: std::sync::OnceLock::new(),
            failed: AtomicBool::new(false),
            failure: Mutex::new(None),
        }
    }

    pub(crate) fn mark_memory_exceeded(&self) {
        self.memory_exceeded.store(true, Ordering::Relaxed);
    }

    /// The most linear memory (all of the instance's memories) it had while serving this
    /// request: what Lambda's REPORT calls Max Memory Used. An instance serving many requests
    /// in turn never shrinks, so each of them sees at least what the earlier ones grew to.
    pub fn max_memory_bytes(&self) -> u64 {
        self.max_memory.load(Ordering::Relaxed)
    }

    pub fn traceparent(&self) -> Option<&http::HeaderValue> {
        self.traceparent.get()
    }

    pub(crate) fn note_memory(&self, bytes: u64) {
        self.max_memory.fetch_max(bytes, Ordering::Relaxed);
    }

    pub(crate) fn set_failure(&self, message: String) {
        self.failure.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(message);
    }

    pub(crate) fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    fn failure(&self) -> Option<String> {
        self.failure.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvokeErrorKind {
    /// The guest trapped, panicked or never produced a response.
    FunctionError,
    MemoryLimitExceeded,
    Timeout,
    /// No instance could be created right now (the pool is exhausted).
    Unavailable,
    /// The function is at its maximum of instances and its queue is full.
    Overloaded,
    /// The platform failed the request (its code could not be loaded).
    Internal,
}

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct InvokeError {
    pub kind: InvokeErrorKind,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("precompiled code at {path} cannot be loaded: {message}")]
    Incompatible { path: String, message: String },
    #[error("cannot prepare the component: {0}")]
    Link(String),
}

/// A revision ready to serve requests.
pub struct LoadedRevision {
    handler: ProxyHandler<RevisionHandler>,
    config: Arc<RevisionConfig>,
}

impl LoadedRevision {
    /// Loads precompiled code written by [`crate::compile_component`] for this runtime's engine.
    pub fn load(
        runtime: &Runtime,
        cwasm: &Path,
        config: impl Into<Arc<RevisionConfig>>,
    ) -> Result<Self, LoadError> {
        // SAFETY: yun wrote this file itself, from a validated upload, with an engine of the same
        // fingerprint (it is stored under it); nothing else writes into the compiled cache.
        let component = unsafe { Component::deserialize_file(runtime.engine(), cwasm) }.map_err(|e| {
            LoadError::Incompatible { path: cwasm.display().to_string(), message: format!("{e:#}") }
        })?;
        Self::from_component(runtime, &component, config)
    }

    pub fn from_component(
        runtime: &Runtime,
        component: &Component,
        config: impl Into<Arc<RevisionConfig>>,
    ) -> Result<Self, LoadError> {
        let pre = runtime.linker.instantiate_pre(component).map_err(|e| LoadError::Link(format!("{e:#}")))?;
        let pre = wasmtime_wasi_http::p2::bindings::ProxyPre::new(pre)
            .map_err(|e| LoadError::Link(format!("{e:#}")))?;
        let config = config.into();
        let handler = ProxyHandler::new(RevisionHandler {
            pre: ProxyPre::P2(pre),
            engine: runtime.engine().clone(),
            env: config.env.clone(),
            outbound: config.allow_outbound.clone().into(),
            config: config.clone(),
        });
        Ok(Self { handler, config })
    }

    pub fn config(&self) -> &RevisionConfig {
        &self.config
    }

    /// Hands `request` to an instance and returns its response, whose body streams from the
    /// guest as it writes it.
    pub async fn invoke(
        &self,
        request: http::Request<WasiBody>,
        ctx: Arc<RequestCtx>,
    ) -> Result<http::Response<WasiBody>, InvokeError> {
        // The worker expires the request at its deadline from inside the instance's event
        // loop; this bound runs on the caller's task, so the caller gets its 504 on time even
        // when the instance's thread is slow to be scheduled.
        if let Some(trace) = request.headers().get("traceparent") {
            let _ = ctx.traceparent.set(trace.clone());
        }
        let outer = tokio::time::Instant::from_std(ctx.deadline + Duration::from_millis(50));
        let outcome = tokio::time::timeout_at(outer, self.handler.handle(ctx.clone(), request)).await;
        let error = match outcome {
            Ok(Ok(response)) => return Ok(response),
            Ok(Err(e)) => Some(e),
            Err(_elapsed) => None,
        };
        // A trap or a deadline already ends the instance; this also retires one whose guest
        // returned without a response and lives on. The worker checks the flag before it takes
        // its next request, so under load one queued request may still reach it.
        ctx.failed.store(true, Ordering::Relaxed);
        let Some(error) = error else { return Err(self.timeout_error()) };
        if ctx.memory_exceeded.load(Ordering::Relaxed) {
            return Err(InvokeError {
                kind: InvokeErrorKind::MemoryLimitExceeded,
                message: format!(
                    "the function exceeded its memory limit of {} MiB",
                    self.config.memory_bytes >> 20
                ),
            });
        }
        if error.is::<ExpirationError>() || Instant::now() >= ctx.deadline {
            return Err(self.timeout_error());
        }
        if let Some(inst) = error.downcast_ref::<InstantiationError<Arc<RequestCtx>>>() {
            let message = format!("{:#}", inst.error);
            let kind = if message.contains("maximum concurrent") || message.contains("pooling") {
                InvokeErrorKind::Unavailable
            } else {
                InvokeErrorKind::FunctionError
            };
            return Err(InvokeError { kind, message: format!("the function failed to start: {message}") });
        }
        let detail = ctx.failure().unwrap_or_else(|| format!("{error:#}"));
        Err(InvokeError {
            kind: InvokeErrorKind::FunctionError,
            message: format!("the function failed: {detail}"),
        })
    }

    fn timeout_error(&self) -> InvokeError {
        InvokeError {
            kind: InvokeErrorKind::Timeout,
            message: format!("the function did not respond within its timeout of {:?}", self.config.timeout),
        }
    }
}
