//! Process functions: code in any language run as sandboxed OS processes, in the models
//! serverless platforms use. **http** (resident: a web server on `PORT`, started on the first
//! request, stopped when idle), **stdio** (run-once: one process per request, CGI/1.1), and
//! **lambda** (resident: an AWS Lambda runtime client talking to yun's Runtime API).
//!
//! It owns the lifecycle of a revision's processes and the translation between an HTTP
//! invocation and each model. It does not isolate (the sandbox crate does), does not pick the
//! revision (the activator does), and does not run wasm.

mod cgi;
mod output;
mod resident;
mod stdio;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use yun_sandbox::{InstanceSpec, Network, Sandbox};
use yun_telemetry::LogSink;
use yun_types::{ErrorCode, ProcessMode, ProcessSpec, ScaleSettings};

pub use yun_pool::{Policy, Stats, Temperature};

pub use cgi::{CgiError, parse_output as parse_cgi_output};
pub use yun_lambda::runtime_api::Invocation as LambdaOutcome;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Request and response bodies, as the gateway passes them.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// Platform-wide settings for process instances.
#[derive(Clone, Debug)]
pub struct ProcessLimits {
    /// Size of each instance's `/tmp`.
    pub tmp_bytes: u64,
    /// Processes and threads one instance may have.
    pub pids_max: u64,
    /// CPU quota of one instance, in cores.
    pub cpus: f64,
    /// Largest output a run-once process may write (it is read whole to parse its CGI header).
    pub max_stdout_bytes: usize,
}

impl Default for ProcessLimits {
    fn default() -> Self {
        Self { tmp_bytes: 64 << 20, pids_max: 256, cpus: 1.0, max_stdout_bytes: 32 << 20 }
    }
}

/// What every process revision shares: the sandbox, where logs go, the limits.
pub struct ProcessRuntime {
    sandbox: Arc<Sandbox>,
    log_sink: Arc<dyn LogSink>,
    limits: ProcessLimits,
}

impl ProcessRuntime {
    pub fn new(sandbox: Arc<Sandbox>, log_sink: Arc<dyn LogSink>, limits: ProcessLimits) -> Arc<Self> {
        Arc::new(Self { sandbox, log_sink, limits })
    }

    /// The function logs' sink this runtime was made with.
    pub fn log_sink(&self) -> Arc<dyn LogSink> {
        self.log_sink.clone()
    }

    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// One instance of `config`'s revision with the platform's limits and the given environment.
    pub(crate) fn instance_spec(
        &self,
        config: &ProcessConfig,
        env: Vec<(String, String)>,
        stdin: bool,
    ) -> InstanceSpec {
        InstanceSpec {
            code_dir: config.code_dir.clone(),
            command: config.spec.command.clone(),
            env,
            memory_bytes: config.memory_bytes,
            cpus: self.limits.cpus,
            pids_max: self.limits.pids_max,
            tmp_bytes: self.limits.tmp_bytes,
            network: if config.outbound { Network::Host } else { Network::Loopback },
            label: format!("{}-r{}", config.function, config.revision),
            stdin,
        }
    }
}

/// Everything that decides how one revision's processes run.
#[derive(Clone)]
pub struct ProcessConfig {
    pub function: Arc<str>,
    pub revision: u64,
    /// The unpacked, read-only code.
    pub code_dir: PathBuf,
    pub spec: ProcessSpec,
    pub env: Vec<(String, String)>,
    pub memory_bytes: u64,
    pub timeout: Duration,
    /// Whether the function may open connections beyond its own loopback.
    pub outbound: bool,
    /// Where this revision's output goes (the runtime's sink, or one that redacts its secrets).
    pub log_sink: Arc<dyn LogSink>,
    /// yun's own API, served to resident instances on `YUN_API` (inside their sandbox).
    pub local: Option<Arc<dyn yun_types::local::LocalApi>>,
    /// Object store buckets the function uses (it gets `AWS_ENDPOINT_URL_S3` and a key for them).
    pub buckets: Vec<String>,
}

impl std::fmt::Debug for ProcessConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values stay out: the environment carries the function's secrets.
        let env: Vec<&str> = self.env.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("ProcessConfig")
            .field("function", &self.function)
            .field("revision", &self.revision)
            .field("code_dir", &self.code_dir)
            .field("spec", &self.spec)
            .field("env", &env)
            .field("memory_bytes", &self.memory_bytes)
            .field("timeout", &self.timeout)
            .field("outbound", &self.outbound)
            .finish_non_exhaustive()
    }
}

/// One HTTP invocation as a process function sees it.
#[derive(Clone, Debug)]
pub struct Invocation {
    pub id: String,
    /// When the function must have answered by.
    pub deadline: Instant,
    /// The path after the function's prefix, starting with `/` (the query is in the request URI).
    pub path: String,
    /// The prefix the function is served under (`/fn/NAME`), empty for host routing.
    pub prefix: String,
    pub remote_addr: Option<IpAddr>,
    /// The invocation's W3C `traceparent`: a `lambda` function's runtime gets it as its
    /// Lambda-Runtime-Trace-Id, a run-once process as `TRACEPARENT`.
    pub traceparent: Option<String>,
}

#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct InvokeError {
    pub code: ErrorCode,
    pub message: String,
}

impl InvokeError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

/// A process revision ready to serve: its configuration and the pool of its instances.
pub struct ProcessRevision {
    runtime: Arc<ProcessRuntime>,
    config: Arc<ProcessConfig>,
    pool: Pools,
}

enum Pools {
    /// `http` and `lambda`: each instance is a resident process.
    Resident(resident::ResidentPool),
    /// `stdio`: one instance stands for the right to run processes, as many at once as the
    /// function's maximum; each request still gets a process of its own.
    RunOnce(yun_pool::Pool<stdio::RunOnceFactory>),
}

impl ProcessRevision {
    pub fn new(runtime: Arc<ProcessRuntime>, config: ProcessConfig, scale: &ScaleSettings) -> Self {
        let config = Arc::new(config);
        let pool = match config.spec.mode {
            ProcessMode::Stdio => Pools::RunOnce(yun_pool::Pool::new(
                stdio::RunOnceFactory,
                pool_config(config.spec.mode, scale),
            )),
            ProcessMode::Http | ProcessMode::Lambda => Pools::Resident(yun_pool::Pool::new(
                resident::ResidentFactory::new(runtime.clone(), config.clone()),
                pool_config(config.spec.mode, scale),
            )),
        };
        Self { runtime, config, pool }
    }

    pub fn config(&self) -> &ProcessConfig {
        &self.config
    }

    /// New scaling settings, from the next request and the next scaler tick on.
    pub fn set_scale(&self, scale: &ScaleSettings) {
        let config = pool_config(self.config.spec.mode, scale);
        match &self.pool {
            Pools::Resident(p) => p.set_config(config),
            Pools::RunOnce(p) => p.set_config(config),
        }
    }

    /// Instances, requests in flight and waiting. For `stdio`, `in_flight` is the processes
    /// running and instances are not meaningful.
    pub fn stats(&self) -> yun_pool::Stats {
        match &self.pool {
            Pools::Resident(p) => p.stats(),
            Pools::RunOnce(p) => p.stats(),
        }
    }

    /// Starts or stops resident instances until there are `n` (within min and max).
    pub fn scale_to(&self, n: u32) {
        if let Pools::Resident(p) = &self.pool {
            p.scale_to(n);
        }
    }

    /// Lets `policy` decide the number of resident instances, every `tick`, for as long as the
    /// revision serves. Run-once revisions keep their one slot and need no policy.
    pub fn spawn_scaler<P: yun_pool::Policy>(&self, policy: P, tick: Duration) {
        if let Pools::Resident(p) = &self.pool {
            p.spawn_scaler(policy, tick);
        }
    }

    pub async fn invoke(
        &self,
        request: http::Request<Body>,
        inv: Invocation,
    ) -> Result<http::Response<Body>, InvokeError> {
        match &self.pool {
            Pools::RunOnce(pool) => {
                let asked = Instant::now();
                let _lease = pool.acquire(&inv.id).await.map_err(acquire_error)?;
                let mut inv = inv;
                inv.deadline += asked.elapsed();
                stdio::invoke(&self.runtime, &self.config, request, &inv).await
            }
            Pools::Resident(pool) => resident::invoke(pool, &self.config, request, &inv).await,
        }
    }

    /// `lambda` mode, for the Invoke API: `event` goes to the function as it is and its result
    /// (or the error it reported) comes back as it is, with how the invocation started.
    pub async fn invoke_event(
        &self,
        event: Bytes,
        inv: Invocation,
    ) -> Result<(LambdaOutcome, Temperature, yun_types::Used), InvokeError> {
        match (&self.pool, self.config.spec.mode) {
            (Pools::Resident(pool), ProcessMode::Lambda) => {
                resident::invoke_event(pool, &self.config, event, &inv).await
            }
            _ => Err(InvokeError::new(ErrorCode::Internal, "only lambda-mode functions take raw events")),
        }
    }

    /// Stops every instance (the revision stopped serving); requests still waiting are refused.
    pub fn stop(&self) {
        match &self.pool {
            Pools::Resident(p) => {
                p.factory().discard_spare();
                p.stop();
            }
            Pools::RunOnce(p) => p.stop(),
        }
    }
}

impl Drop for ProcessRevision {
    fn drop(&mut self) {
        self.stop();
    }
}

fn pool_config(mode: ProcessMode, s: &ScaleSettings) -> yun_pool::PoolConfig {
    let queue_timeout = Duration::from_millis(s.queue_timeout_ms);
    let max_queue = s.max_queue as usize;
    let freeze_for = Duration::from_millis(s.freeze_ms);
    match mode {
        ProcessMode::Stdio => yun_pool::PoolConfig {
            concurrency: s.max_instances,
            min_instances: 0,
            max_instances: 1,
            max_queue,
            queue_timeout,
            freeze_for: Duration::ZERO,
            max_starting: yun_pool::default_max_starting(),
        },
        // A Lambda runtime client takes one invocation at a time, whatever the setting says.
        ProcessMode::Lambda | ProcessMode::Http => yun_pool::PoolConfig {
            concurrency: if mode == ProcessMode::Lambda { 1 } else { s.concurrency },
            min_instances: s.min_instances,
            max_instances: s.max_instances,
            max_queue,
            queue_timeout,
            freeze_for,
            max_starting: yun_pool::default_max_starting(),
        },
    }
}

/// What a caller is told when no instance took its request.
pub(crate) fn acquire_error(e: yun_pool::AcquireError<InvokeError>) -> InvokeError {
    use yun_pool::AcquireError;
    match e {
        AcquireError::Overloaded { waiting } => InvokeError::new(
            ErrorCode::TooManyRequests,
            format!(
                "every instance of the function is busy at its maximum and {waiting} requests are \
                 already waiting: retry later"
            ),
        ),
        AcquireError::QueueTimeout(waited) => InvokeError::new(
            ErrorCode::Unavailable,
            format!("no instance of the function became free within {waited:?}: retry later"),
        ),
        AcquireError::Start(e) => e,
        AcquireError::Stopped => InvokeError::new(ErrorCode::Unavailable, "this revision no longer serves"),
    }
}

/// The environment every process gets besides the function's own variables.
pub(crate) fn base_env(config: &ProcessConfig) -> Vec<(String, String)> {
    let mut env = config.env.clone();
    let mut set = |k: &str, v: String| {
        if !env.iter().any(|(n, _)| n == k) {
            env.push((k.to_string(), v));
        }
    };
    set("YUN_FUNCTION", config.function.to_string());
    set("YUN_REVISION", config.revision.to_string());
    set("PATH", "/usr/local/bin:/usr/bin:/bin".to_string());
    set("HOME", "/tmp".to_string());
    set("LANG", "C.UTF-8".to_string());
    // Unbuffered Python output, so its lines reach the logs as they are printed.
    set("PYTHONUNBUFFERED", "1".to_string());
    env
}

/// Reads a request body whole (the gateway already bounded it by the function's limit).
pub(crate) async fn read_body(body: Body) -> Result<Bytes, InvokeError> {
    use http_body_util::BodyExt;
    Ok(body
        .collect()
        .await
        .map_err(|e| InvokeError::new(ErrorCode::BadRequest, format!("reading the request body: {e}")))?
        .to_bytes())
}

pub(crate) fn boxed(bytes: Bytes) -> Body {
    use http_body_util::BodyExt;
    http_body_util::Full::new(bytes).map_err(|never| match never {}).boxed_unsync()
}
