//! Resident instances (`http` and `lambda` modes): processes that serve many requests each,
//! started by the revision's pool when a request finds none free (concurrent cold requests
//! share a start up to the instance's concurrency) and stopped when the pool scales in.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use yun_lambda::meta::FunctionMeta;
use yun_sandbox::Instance;
use yun_telemetry::LogStream;
use yun_types::{ErrorCode, ProcessMode};

use yun_lambda::runtime_api::{Invocation as LambdaOutcome, RuntimeApi, RuntimeError};

use crate::output::{Attribution, pump};
use crate::{Body, Invocation, InvokeError, ProcessConfig, ProcessRuntime, base_env};

/// How long after using its spare a revision builds the next one.
const SPARE_DELAY: Duration = Duration::from_millis(100);

/// The port an isolated app listens on: each instance has its own network namespace, so
/// every app may take the same one.
const ISOLATED_PORT: u16 = 8080;
/// Where an isolated Lambda runtime client finds the Runtime API (AWS uses 127.0.0.1:9001).
const ISOLATED_RUNTIME_API_PORT: u16 = 9001;
/// Where an isolated instance reaches yun's own API (`YUN_API`).
const ISOLATED_YUN_API_PORT: u16 = 9002;
/// Where an isolated instance reaches the object store's S3 API (relayed to yun's listener).
const ISOLATED_S3_PORT: u16 = 9003;
/// Where an isolated instance reaches the Redis endpoint (`REDIS_URL`).
const ISOLATED_REDIS_PORT: u16 = 9004;

/// Starts a revision's resident instances for its pool.
///
/// It keeps one sandbox made ahead of need (a spare: namespaces, root, cgroups and uid in
/// place, the command not started), so a cold start only starts the command: building a
/// sandbox costs ~25 ms, more than many programs take to start. A spare holds a blocked helper
/// process and no CPU; it is made again after each use and dropped when the revision stops.
pub(crate) struct ResidentFactory {
    runtime: Arc<ProcessRuntime>,
    config: Arc<ProcessConfig>,
    spare: Arc<SpareSlot>,
}

#[derive(Default)]
struct SpareSlot {
    spare: std::sync::Mutex<Option<Spare>>,
    making: AtomicBool,
    stopped: AtomicBool,
}

impl SpareSlot {
    fn take(&self) -> Option<Spare> {
        self.spare.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

impl ResidentFactory {
    pub(crate) fn new(runtime: Arc<ProcessRuntime>, config: Arc<ProcessConfig>) -> Self {
        let factory = Self { runtime, config, spare: Arc::default() };
        factory.refill();
        factory
    }

    /// Spares need the instance's own network namespace: on the host network the port chosen
    /// ahead could be taken by someone else before the command starts.
    fn keeps_spares(&self) -> bool {
        self.runtime.sandbox.isolates() && !self.config.outbound
    }

    /// Makes a spare in the background if there is none.
    fn refill(&self) {
        if !self.keeps_spares()
            || self.spare.stopped.load(Ordering::Relaxed)
            || self.spare.making.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            self.spare.making.store(false, Ordering::Release);
            return;
        };
        let (runtime, config, slot) = (self.runtime.clone(), self.config.clone(), self.spare.clone());
        handle.spawn(async move {
            // Not at once: the instance just started is answering its first requests now, and
            // building a sandbox takes the CPU they need.
            tokio::time::sleep(SPARE_DELAY).await;
            let made = Spare::make(&runtime, &config).await;
            let mut spare = slot.spare.lock().unwrap_or_else(|p| p.into_inner());
            match made {
                Ok(s) if spare.is_none() && !slot.stopped.load(Ordering::Relaxed) => *spare = Some(s),
                Ok(_) => {}
                Err(e) => tracing::debug!(function = %config.function, "no spare sandbox: {e}"),
            }
            slot.making.store(false, Ordering::Release);
        });
    }

    /// The revision stopped serving: its spare goes, and none is made again.
    pub(crate) fn discard_spare(&self) {
        self.spare.stopped.store(true, Ordering::Relaxed);
        drop(self.spare.take());
    }
}

impl yun_pool::Factory for ResidentFactory {
    type Instance = Resident;
    type Error = InvokeError;

    async fn start(&self, why: yun_pool::Start) -> Result<Resident, InvokeError> {
        let invocation_id = match why {
            yun_pool::Start::Request { invocation_id } => invocation_id,
            yun_pool::Start::Scale => String::new(),
        };
        let spare = match self.spare.take() {
            Some(spare) => spare,
            None => Spare::make(&self.runtime, &self.config).await?,
        };
        let launched = Resident::launch(spare, &self.config, &invocation_id).await;
        // Only now (and a little later, see `SPARE_DELAY`): building the next spare is ~25 ms
        // of CPU that would compete with this instance's start, which a request is waiting for.
        self.refill();
        launched
    }
}

impl yun_pool::Instance for Resident {
    fn alive(&self) -> bool {
        Resident::alive(self)
    }

    fn stop(&self) {
        self.to.note("stopped: scaled in (idle past its keep-alive, or more instances than the load needs)");
        self.kill();
    }

    fn freeze(&self) -> bool {
        self.freezer.as_ref().is_some_and(|f| f.freeze().is_ok())
    }

    fn thaw(&self) -> bool {
        self.freezer.as_ref().is_some_and(|f| f.thaw().is_ok())
    }
}

pub(crate) type ResidentPool = yun_pool::Pool<ResidentFactory>;

enum Op {
    Connect(oneshot::Sender<std::io::Result<TcpStream>>),
    Kill,
}

pub(crate) struct Resident {
    /// `lambda` mode: the Runtime API this instance's runtime client polls.
    lambda: Option<Arc<RuntimeApi>>,
    /// `lambda` mode: one invocation at a time, as in Lambda; the rest wait their turn.
    turn: tokio::sync::Mutex<()>,
    killed: AtomicBool,
    ops: mpsc::UnboundedSender<Op>,
    /// `Some(why)` once the process has ended.
    exited: watch::Receiver<Option<String>>,
    memory_exceeded: Arc<AtomicBool>,
    to: Arc<Attribution>,
    client: Client<Connector, Body>,
    /// Freezes and thaws the instance's processes (cgroup freezer), where the host can.
    freezer: Option<yun_sandbox::FreezeFile>,
    /// Reads the instance's peak memory and CPU time.
    meter: yun_sandbox::Meter,
}

/// Opens connections to the app inside its sandbox (through the supervisor, which owns the
/// instance).
#[derive(Clone)]
struct Connector {
    ops: mpsc::UnboundedSender<Op>,
    first: FirstConnection,
}

/// The connection the readiness probe made, kept for the request waiting on the cold start: it
/// saves that request a connection setup. Only used while fresh, since an app may close a
/// connection left idle.
type FirstConnection = Arc<Mutex<Option<(std::net::TcpStream, Instant)>>>;

const FIRST_CONNECTION_FRESH: Duration = Duration::from_millis(500);

impl tower_service::Service<http::Uri> for Connector {
    type Response = TokioIo<TcpStream>;
    type Error = std::io::Error;
    type Future = std::pin::Pin<Box<dyn Future<Output = std::io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: http::Uri) -> Self::Future {
        let ops = self.ops.clone();
        let first = self.first.lock().unwrap_or_else(|p| p.into_inner()).take();
        Box::pin(async move {
            if let Some((stream, made)) = first
                && made.elapsed() < FIRST_CONNECTION_FRESH
                && stream.set_nonblocking(true).is_ok()
                && let Ok(stream) = TcpStream::from_std(stream)
            {
                stream.set_nodelay(true)?;
                return Ok(TokioIo::new(stream));
            }
            let (tx, rx) = oneshot::channel();
            let gone =
                || std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "the instance has exited");
            ops.send(Op::Connect(tx)).map_err(|_| gone())?;
            let stream = rx.await.map_err(|_| gone())??;
            stream.set_nodelay(true)?;
            Ok(TokioIo::new(stream))
        })
    }
}

/// One request on an instance, from its start until it ends or its caller gives up: log
/// attribution must see both, including a client that went away mid-request.
struct Serving<'a> {
    resident: &'a Resident,
    id: &'a str,
}

impl Drop for Serving<'_> {
    fn drop(&mut self) {
        self.resident.to.end(self.id);
    }
}

impl Resident {
    fn serving<'a>(&'a self, id: &'a str) -> Serving<'a> {
        self.to.begin(id);
        Serving { resident: self, id }
    }

    fn alive(&self) -> bool {
        !self.killed.load(Ordering::Relaxed) && self.exited.borrow().is_none()
    }

    /// From now on no request is routed here, even before the process is reaped.
    fn kill(&self) {
        self.killed.store(true, Ordering::Relaxed);
        let _ = self.ops.send(Op::Kill);
    }
}

/// A sandbox made ahead of its instance (see [`ResidentFactory`]).
struct Spare {
    instance: Instance,
    port: u16,
    lambda: Option<Arc<RuntimeApi>>,
    host_listener: Option<tokio::net::TcpListener>,
    /// Unisolated: the host port yun's API is served on for this instance.
    api_listener: Option<tokio::net::TcpListener>,
    /// Isolated and using buckets: the S3 API's address on the host, relayed from inside.
    s3_relay: Option<std::net::SocketAddr>,
    /// Isolated and using key-value stores: the Redis endpoint on the host, relayed likewise.
    redis_relay: Option<std::net::SocketAddr>,
}

impl Spare {
    /// A sandbox for one instance, everything in place but the command.
    async fn make(runtime: &ProcessRuntime, config: &ProcessConfig) -> Result<Self, InvokeError> {
        let unavailable = |m: String| InvokeError::new(ErrorCode::Unavailable, m);
        let isolated = runtime.sandbox.isolates() && !config.outbound;
        let port = if isolated {
            ISOLATED_PORT
        } else {
            free_port().map_err(|e| unavailable(format!("no free port: {e}")))?
        };
        let mut env = base_env(config);
        env.push(("PORT".to_string(), port.to_string()));
        let lambda = (config.spec.mode == ProcessMode::Lambda).then(|| {
            let mut meta = FunctionMeta::new(config.function.to_string());
            meta.version = config.revision.to_string();
            meta.memory_mb = config.memory_bytes >> 20;
            meta.handler = config.spec.handler.clone();
            meta.timeout = config.timeout;
            if !runtime.sandbox.isolates() {
                meta.task_root = config.code_dir.display().to_string();
            }
            RuntimeApi::new(meta)
        });
        // Unisolated, the Runtime API needs a port of its own on the host, bound before the
        // process starts so its first poll cannot miss it.
        let mut host_listener = None;
        if let Some(api) = &lambda {
            let address = if isolated {
                format!("127.0.0.1:{ISOLATED_RUNTIME_API_PORT}")
            } else {
                let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .map_err(|e| unavailable(format!("cannot open the Runtime API: {e}")))?;
                let a = l.local_addr().map_err(|e| unavailable(e.to_string()))?.to_string();
                host_listener = Some(l);
                a
            };
            for (k, v) in api.meta().env(&address) {
                env.retain(|(n, _)| *n != k);
                env.push((k, v));
            }
        }
        let mut api_listener = None;
        if config.local.is_some() {
            let address = if isolated {
                format!("127.0.0.1:{ISOLATED_YUN_API_PORT}")
            } else {
                let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .map_err(|e| unavailable(format!("cannot open yun's API for the function: {e}")))?;
                let a = l.local_addr().map_err(|e| unavailable(e.to_string()))?.to_string();
                api_listener = Some(l);
                a
            };
            env.push(("YUN_API".to_string(), format!("http://{address}")));
        }
        let mut s3_relay = None;
        if let Some(access) = (!config.buckets.is_empty())
            .then(|| config.local.as_ref()?.storage_for(&config.function, config.revision, &config.buckets))
            .flatten()
        {
            // What boto3, the aws CLI and the other SDKs read (AWS_ENDPOINT_URL_S3 since 2023).
            let endpoint = if isolated {
                s3_relay = Some(access.endpoint);
                format!("http://127.0.0.1:{ISOLATED_S3_PORT}")
            } else {
                format!("http://{}", access.endpoint)
            };
            for (k, v) in [
                ("AWS_ENDPOINT_URL_S3", endpoint),
                ("AWS_ACCESS_KEY_ID", access.access_key_id),
                ("AWS_SECRET_ACCESS_KEY", access.secret_access_key),
                ("AWS_REGION", access.region.clone()),
                ("AWS_DEFAULT_REGION", access.region),
            ] {
                env.retain(|(n, _)| n != k);
                env.push((k.to_string(), v));
            }
        }
        let mut redis_relay = None;
        if let Some((local, addr)) =
            config.local.as_ref().and_then(|l| Some((l, l.redis_for(&config.function)?)))
        {
            let address = if isolated {
                redis_relay = Some(addr);
                format!("127.0.0.1:{ISOLATED_REDIS_PORT}")
            } else {
                addr.to_string()
            };
            // redis-py, ioredis, go-redis and redis-cli (-u) read this form; user `default` is
            // the function's first store.
            let url = format!("redis://default:{}@{address}/0", local.token_for(&config.function));
            env.retain(|(n, _)| n != "REDIS_URL");
            env.push(("REDIS_URL".to_string(), url));
        }
        let spec = runtime.instance_spec(config, env, false);
        let instance = runtime
            .sandbox
            .spawn(spec)
            .await
            .map_err(|e| unavailable(format!("the process could not be started: {e}")))?;
        Ok(Spare { instance, port, lambda, host_listener, api_listener, s3_relay, redis_relay })
    }
}

impl Resident {
    /// Starts the command in `spare` and waits until it is ready. `invocation_id`: the request
    /// whose arrival started it (empty for a scale-up), which the startup output belongs to.
    async fn launch(spare: Spare, config: &ProcessConfig, invocation_id: &str) -> Result<Self, InvokeError> {
        let unavailable = |m: String| InvokeError::new(ErrorCode::Unavailable, m);
        let Spare { mut instance, port, lambda, host_listener, api_listener, s3_relay, redis_relay } = spare;
        let to = Attribution::new(config.log_sink.clone(), config.function.clone(), config.revision);
        // Startup output belongs to the request that caused the start.
        to.begin(invocation_id);
        if let Some(out) = instance.stdout.take() {
            tokio::spawn(pump(out, LogStream::Stdout, to.clone()));
        }
        if let Some(err) = instance.stderr.take() {
            tokio::spawn(pump(err, LogStream::Stderr, to.clone()));
        }
        let (exited_tx, exited) = watch::channel(None);
        if let Some(api) = &lambda {
            let listener = match host_listener {
                Some(l) => l,
                None => instance
                    .listen_tcp(ISOLATED_RUNTIME_API_PORT)
                    .map_err(|e| unavailable(format!("cannot open the Runtime API in the sandbox: {e}")))?,
            };
            let mut gone = exited.clone();
            tokio::spawn(api.clone().serve(listener, async move {
                let _ = gone.wait_for(|e| e.is_some()).await;
            }));
        }
        if let Some(local) = &config.local {
            let listener = match api_listener {
                Some(l) => l,
                None => instance
                    .listen_tcp(ISOLATED_YUN_API_PORT)
                    .map_err(|e| unavailable(format!("cannot open yun's API in the sandbox: {e}")))?,
            };
            let mut gone = exited.clone();
            tokio::spawn(serve_local(local.clone(), config.function.clone(), listener, async move {
                let _ = gone.wait_for(|e| e.is_some()).await;
            }));
        }
        if let Some(target) = s3_relay {
            let listener = instance
                .listen_tcp(ISOLATED_S3_PORT)
                .map_err(|e| unavailable(format!("cannot open the S3 endpoint in the sandbox: {e}")))?;
            let mut gone = exited.clone();
            tokio::spawn(relay(listener, target, async move {
                let _ = gone.wait_for(|e| e.is_some()).await;
            }));
        }
        if let Some(target) = redis_relay {
            let listener = instance
                .listen_tcp(ISOLATED_REDIS_PORT)
                .map_err(|e| unavailable(format!("cannot open the Redis endpoint in the sandbox: {e}")))?;
            let mut gone = exited.clone();
            tokio::spawn(relay(listener, target, async move {
                let _ = gone.wait_for(|e| e.is_some()).await;
            }));
        }
        instance.start().map_err(|e| unavailable(format!("the process could not be started: {e}")))?;

        let (ops, ops_rx) = mpsc::unbounded_channel();
        let freezer = instance.freezer();
        let meter = instance.meter();
        let probe = instance.listen_probe(port);
        let first: FirstConnection = Arc::default();
        let memory_exceeded = Arc::new(AtomicBool::new(false));
        tokio::spawn(supervise(
            instance,
            port,
            ops_rx,
            exited_tx,
            Watch { memory_exceeded: memory_exceeded.clone(), to: to.clone(), lambda: lambda.clone() },
        ));

        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(Connector { ops: ops.clone(), first: first.clone() });
        let resident = Self {
            lambda,
            turn: tokio::sync::Mutex::new(()),
            killed: AtomicBool::new(false),
            ops,
            exited,
            memory_exceeded,
            to: to.clone(),
            client,
            freezer,
            meter,
        };
        let ready = resident.wait_ready(config, port, probe, &first).await;
        to.end(invocation_id);
        if let Err(e) = ready {
            resident.kill();
            return Err(e);
        }
        Ok(resident)
    }

    /// Polls until the app accepts connections (or answers its health path), the process
    /// exits, or the startup timeout passes.
    async fn wait_ready(
        &self,
        config: &ProcessConfig,
        port: u16,
        probe: yun_sandbox::ListenProbe,
        first: &FirstConnection,
    ) -> Result<(), InvokeError> {
        let timeout = Duration::from_millis(config.spec.startup_timeout_ms);
        let deadline = tokio::time::Instant::now() + timeout;
        if let Some(api) = &self.lambda {
            // The runtime client is ready when it first asks for an invocation.
            return match tokio::time::timeout_at(deadline, api.ready()).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(init)) => {
                    Err(self.startup_error(format!("the function failed to initialise: {init}")))
                }
                Err(_) => Err(self.startup_error(format!(
                    "the Lambda runtime client did not poll the Runtime API within {timeout:?}"
                ))),
            };
        }
        let Some(path) = &config.spec.health else {
            return self.wait_listening(config, port, probe, deadline.into_std(), first).await;
        };
        // An HTTP health check goes through the instance's connection pool; Tokio's timers
        // make its pauses a millisecond at least.
        let mut pause = Duration::from_millis(1);
        let mut exited = self.exited.clone();
        loop {
            let probe = async {
                let uri = format!("http://127.0.0.1:{port}{path}");
                let req =
                    http::Request::get(uri).body(crate::boxed(bytes::Bytes::new())).expect("valid request");
                match self.client.request(req).await {
                    Ok(resp) => resp.status().is_success(),
                    Err(_) => false,
                }
            };
            tokio::select! {
                ok = probe => if ok { return Ok(()) },
                why = exited.wait_for(|e| e.is_some()) => {
                    let why = why.map(|w| w.clone().unwrap_or_default()).unwrap_or_default();
                    return Err(self.startup_error(format!("the process {why} before it was ready")));
                }
                _ = tokio::time::sleep_until(deadline) => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(self.startup_error(format!(
                    "the process did not answer GET {path} with 2xx within {timeout:?}"
                )));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(2));
        }
    }

    /// Readiness by TCP connect, probed from a thread of its own (see `ListenProbe`).
    async fn wait_listening(
        &self,
        config: &ProcessConfig,
        port: u16,
        probe: yun_sandbox::ListenProbe,
        deadline: Instant,
        first: &FirstConnection,
    ) -> Result<(), InvokeError> {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = oneshot::channel();
        let flag = stop.clone();
        let spawned = std::thread::Builder::new().name("yun-ready".into()).spawn(move || {
            let _ = tx.send(probe.wait(deadline, &flag));
        });
        if let Err(e) = spawned {
            return Err(InvokeError::new(ErrorCode::Unavailable, format!("cannot probe readiness: {e}")));
        }
        // The probe thread stops at the deadline, or as soon as the process is gone.
        let _stop = StopOnDrop(stop);
        let mut exited = self.exited.clone();
        tokio::select! {
            ready = rx => match ready {
                Ok(Some(stream)) => {
                    *first.lock().unwrap_or_else(|p| p.into_inner()) = Some((stream, Instant::now()));
                    Ok(())
                }
                _ => {
                    let timeout = Duration::from_millis(config.spec.startup_timeout_ms);
                    Err(self.startup_error(format!(
                        "the process did not accept connections on PORT ({port}) within {timeout:?}"
                    )))
                }
            },
            why = exited.wait_for(|e| e.is_some()) => {
                let why = why.map(|w| w.clone().unwrap_or_default()).unwrap_or_default();
                Err(self.startup_error(format!("the process {why} before it was ready")))
            }
        }
    }

    fn startup_error(&self, what: String) -> InvokeError {
        self.to.note(&what);
        let tail = self.to.stderr_tail();
        let tail = if tail.is_empty() {
            String::new()
        } else {
            format!("; its last stderr lines: {}", tail.join(" | "))
        };
        InvokeError::new(ErrorCode::Unavailable, format!("{what}{tail}"))
    }

    /// Why a request failed, once the process has had a moment to be reaped: a memory kill
    /// and a crash look the same from the connection.
    async fn failure(&self, fallback: String) -> InvokeError {
        let mut exited = self.exited.clone();
        let _ = tokio::time::timeout(Duration::from_millis(250), exited.wait_for(|e| e.is_some())).await;
        if self.memory_exceeded.load(Ordering::Relaxed) {
            return InvokeError::new(
                ErrorCode::MemoryLimitExceeded,
                "the function exceeded its memory limit",
            );
        }
        match exited.borrow().clone() {
            Some(why) => InvokeError::new(
                ErrorCode::BadGateway,
                format!("the function's process {why} while handling the request"),
            ),
            None => InvokeError::new(ErrorCode::BadGateway, fallback),
        }
    }
}

/// Tells a probe thread to give up when the wait for it ends.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// What the supervisor of an instance keeps up to date or acts on.
struct Watch {
    memory_exceeded: Arc<AtomicBool>,
    to: Arc<Attribution>,
    lambda: Option<Arc<RuntimeApi>>,
}

async fn supervise(
    mut instance: Instance,
    port: u16,
    mut ops: mpsc::UnboundedReceiver<Op>,
    exited: watch::Sender<Option<String>>,
    watch: Watch,
) {
    let Watch { memory_exceeded, to, lambda } = watch;
    let mut killed_for = None;
    // Idle instances are stopped by the revision's pool, as its keep-alive policy says.
    let exit = loop {
        let op = tokio::select! {
            exit = instance.wait() => break exit,
            op = ops.recv() => op,
        };
        match op {
            Some(Op::Connect(reply)) => {
                let _ = reply.send(instance.connect_tcp(port).await);
            }
            Some(Op::Kill) | None => {
                killed_for.get_or_insert_with(|| "stopped".to_string());
                instance.kill();
            }
        }
    };
    memory_exceeded.store(instance.memory_exceeded(), Ordering::Relaxed);
    let why = match killed_for {
        Some(reason) => reason,
        None if instance.memory_exceeded() => format!("was killed for exceeding its memory limit ({exit})"),
        None => format!("exited ({exit})"),
    };
    to.note(&format!("instance {}: {why}", instance.id()));
    if let Some(api) = lambda {
        api.terminate(why.clone());
    }
    let _ = exited.send(Some(why));
}

fn free_port() -> std::io::Result<u16> {
    // Without a network namespace of its own the app shares the host's ports; the kernel's
    // pick of a free one may be taken again before the app binds it, which only costs a retry.
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// An instance for the request, and the invocation with its deadline moved by the time it
/// waited: as in Lambda, starting a process has its own limit (the startup timeout) and neither
/// that nor waiting in the queue eats into the function's timeout.
async fn ready_instance(
    pool: &ResidentPool,
    inv: &Invocation,
) -> Result<(yun_pool::Lease<ResidentFactory>, Invocation), InvokeError> {
    let asked = Instant::now();
    let lease = pool.acquire(&inv.id).await.map_err(crate::acquire_error)?;
    let mut inv = inv.clone();
    inv.deadline += asked.elapsed();
    Ok((lease, inv))
}

/// Headers that describe one connection, not the request (RFC 9110 7.6.1).
const HOP_BY_HOP: &[&str] =
    &["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"];

pub(crate) async fn invoke(
    pool: &ResidentPool,
    config: &ProcessConfig,
    request: http::Request<Body>,
    inv: &Invocation,
) -> Result<http::Response<Body>, InvokeError> {
    let (lease, inv) = ready_instance(pool, inv).await?;
    let inv = &inv;
    let resident: &Resident = lease.instance();
    let _serving = resident.serving(&inv.id);
    let before = resident.meter.usage();
    let mut response = match &resident.lambda {
        Some(api) => lambda_http(resident, api, config, request, inv).await,
        None => proxy(resident, config, request, inv).await,
    }?;
    response.extensions_mut().insert(lease.temperature());
    response.extensions_mut().insert(used_since(&resident.meter, before));
    Ok(response)
}

async fn proxy(
    resident: &Resident,
    config: &ProcessConfig,
    request: http::Request<Body>,
    inv: &Invocation,
) -> Result<http::Response<Body>, InvokeError> {
    let (mut parts, body) = request.into_parts();
    let path_and_query = match parts.uri.query() {
        Some(q) => format!("{}?{q}", inv.path),
        None => inv.path.clone(),
    };
    // The authority is a placeholder: the connector always dials the instance.
    parts.uri = format!("http://instance{path_and_query}")
        .parse()
        .map_err(|e| InvokeError::new(ErrorCode::BadRequest, format!("invalid request path: {e}")))?;
    for h in HOP_BY_HOP {
        parts.headers.remove(*h);
    }
    if let Some(ip) = inv.remote_addr
        && let Ok(v) = http::HeaderValue::from_str(&ip.to_string())
    {
        parts.headers.append("x-forwarded-for", v);
    }
    parts.headers.insert("x-forwarded-proto", http::HeaderValue::from_static("http"));
    if !inv.prefix.is_empty()
        && let Ok(v) = http::HeaderValue::from_str(&inv.prefix)
    {
        parts.headers.insert("x-forwarded-prefix", v);
    }
    if let Ok(v) = http::HeaderValue::from_str(&inv.id) {
        parts.headers.insert("x-yun-invocation-id", v);
    }
    parts.version = http::Version::HTTP_11;
    let request = http::Request::from_parts(parts, body);
    let deadline = tokio::time::Instant::from_std(inv.deadline);
    match tokio::time::timeout_at(deadline, resident.client.request(request)).await {
        Ok(Ok(response)) => {
            let (mut parts, body) = response.into_parts();
            for h in HOP_BY_HOP {
                parts.headers.remove(*h);
            }
            let body = body.map_err(|e| Box::new(e) as crate::BoxError).boxed_unsync();
            Ok(http::Response::from_parts(parts, body))
        }
        Ok(Err(e)) => {
            let detail = std::error::Error::source(&e).map_or_else(|| e.to_string(), |s| s.to_string());
            Err(resident.failure(format!("the function's server failed the request: {detail}")).await)
        }
        Err(_) => {
            // A resident that overran a deadline may be stuck for good; like Lambda, replace it.
            resident.to.note("killed: a request passed the function's timeout");
            resident.kill();
            Err(InvokeError::new(
                ErrorCode::Timeout,
                format!("the function did not respond within its timeout of {:?}", config.timeout),
            ))
        }
    }
}

/// `lambda` mode over HTTP: the request becomes an API Gateway v2 (Function URL) event and the
/// function's result becomes the response, as a Lambda Function URL does.
async fn lambda_http(
    resident: &Resident,
    api: &RuntimeApi,
    config: &ProcessConfig,
    request: http::Request<Body>,
    inv: &Invocation,
) -> Result<http::Response<Body>, InvokeError> {
    let (parts, body) = request.into_parts();
    let body = crate::read_body(body).await?;
    let event = yun_lambda::event::http_to_event(&parts, &inv.path, &body, inv.remote_addr, &inv.id);
    match run_event(resident, api, config, event, inv).await? {
        LambdaOutcome::Response(payload) => match yun_lambda::event::result_to_http(&payload) {
            Ok(response) => Ok(response.map(crate::boxed)),
            Err(e) => {
                resident.to.note(&format!("the function's result is not an HTTP response: {e}"));
                Err(InvokeError::new(
                    ErrorCode::BadGateway,
                    format!("the function's result is not an HTTP response: {e}"),
                ))
            }
        },
        LambdaOutcome::Error { error_type, body } => {
            let message = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("errorMessage").and_then(|m| m.as_str()).map(str::to_owned))
                .unwrap_or_default();
            Err(InvokeError::new(
                ErrorCode::FunctionError,
                format!("the function failed: {error_type}: {message}"),
            ))
        }
    }
}

/// Hands one event to the instance's runtime client, in turn, within the deadline.
pub(crate) async fn run_event(
    resident: &Resident,
    api: &RuntimeApi,
    config: &ProcessConfig,
    event: bytes::Bytes,
    inv: &Invocation,
) -> Result<LambdaOutcome, InvokeError> {
    let deadline = tokio::time::Instant::from_std(inv.deadline);
    let wall_deadline = std::time::SystemTime::now() + inv.deadline.saturating_duration_since(Instant::now());
    let outcome = tokio::time::timeout_at(deadline, async {
        let _turn = resident.turn.lock().await;
        let mut request = yun_lambda::runtime_api::InvokeRequest::new(inv.id.as_str(), wall_deadline, event);
        request.trace_id = inv.traceparent.as_deref().and_then(yun_lambda::runtime_api::xray_trace_id);
        api.invoke_with(request).await
    })
    .await;
    match outcome {
        Ok(Ok(outcome)) => Ok(outcome),
        Ok(Err(RuntimeError::EventTooLarge { size, limit })) => Err(InvokeError::new(
            ErrorCode::PayloadTooLarge,
            format!("the event of {size} bytes is over Lambda's {limit}-byte limit"),
        )),
        Ok(Err(RuntimeError::InvalidRequestId(id))) => {
            Err(InvokeError::new(ErrorCode::Internal, format!("invalid request id {id:?}")))
        }
        Ok(Err(e @ (RuntimeError::Busy | RuntimeError::InitFailed(_) | RuntimeError::Terminated(_)))) => {
            Err(resident.failure(format!("the Lambda runtime client failed the invocation: {e}")).await)
        }
        Err(_) => {
            resident.to.note("killed: an invocation passed the function's timeout");
            resident.kill();
            Err(InvokeError::new(
                ErrorCode::Timeout,
                format!("the function did not respond within its timeout of {:?}", config.timeout),
            ))
        }
    }
}

/// `lambda` mode through the Invoke API: the payload is the event, the result is returned as is.
pub(crate) async fn invoke_event(
    pool: &ResidentPool,
    config: &ProcessConfig,
    event: bytes::Bytes,
    inv: &Invocation,
) -> Result<(LambdaOutcome, yun_pool::Temperature, yun_types::Used), InvokeError> {
    let (lease, inv) = ready_instance(pool, inv).await?;
    let inv = &inv;
    let resident: &Resident = lease.instance();
    let Some(api) = resident.lambda.clone() else {
        return Err(InvokeError::new(ErrorCode::Internal, "not a lambda-mode function"));
    };
    let _serving = resident.serving(&inv.id);
    let before = resident.meter.usage();
    let outcome = run_event(resident, &api, config, event, inv).await?;
    Ok((outcome, lease.temperature(), used_since(&resident.meter, before)))
}

/// What the instance used since `before`: its peak so far (an instance's memory is shared by
/// the invocations it serves, as in Lambda), and the CPU time spent meanwhile (exactly this
/// invocation's when the instance serves one at a time).
pub(crate) fn used_since(meter: &yun_sandbox::Meter, before: yun_sandbox::Usage) -> yun_types::Used {
    let now = meter.usage();
    yun_types::Used {
        max_memory_bytes: now.max_memory_bytes,
        cpu_ms: match (before.cpu_usec, now.cpu_usec) {
            (Some(b), Some(a)) => Some(a.saturating_sub(b) as f64 / 1000.0),
            _ => None,
        },
    }
}

/// Relays the connections an instance makes to `listener` (inside its network namespace) to
/// `target` on the host, byte for byte, until the instance exits: the S3 API signs and checks
/// the Host the client used, so nothing in the stream needs rewriting.
async fn relay(
    listener: tokio::net::TcpListener,
    target: std::net::SocketAddr,
    gone: impl Future<Output = ()> + Send,
) {
    let mut gone = std::pin::pin!(gone);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            () = &mut gone => break,
            accepted = listener.accept() => match accepted {
                Ok((mut inside, _)) => {
                    connections.spawn(async move {
                        if let Ok(mut outside) = TcpStream::connect(target).await {
                            let _ = tokio::io::copy_bidirectional(&mut inside, &mut outside).await;
                        }
                    });
                }
                Err(_) => break,
            },
        }
    }
    connections.abort_all();
}

/// Serves yun's API to one instance (its `YUN_API`) until the instance exits.
async fn serve_local(
    local: Arc<dyn yun_types::local::LocalApi>,
    function: Arc<str>,
    listener: tokio::net::TcpListener,
    gone: impl Future<Output = ()> + Send,
) {
    use http_body_util::BodyExt;
    let mut gone = std::pin::pin!(gone);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            () = &mut gone => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let (local, function) = (local.clone(), function.clone());
                    connections.spawn(async move {
                        let service = hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
                            let (local, function) = (local.clone(), function.clone());
                            async move {
                                let (parts, body) = request.into_parts();
                                let limited = http_body_util::Limited::new(body, yun_types::local::MAX_LOCAL_BODY);
                                let response = match limited.collect().await {
                                    Ok(body) => {
                                        let request = http::Request::from_parts(parts, body.to_bytes());
                                        local.call(&function, request).await
                                    }
                                    Err(e) => {
                                        let mut r = http::Response::new(bytes::Bytes::from(format!("reading the request: {e}\n")));
                                        *r.status_mut() = http::StatusCode::PAYLOAD_TOO_LARGE;
                                        r
                                    }
                                };
                                Ok::<_, std::convert::Infallible>(response.map(http_body_util::Full::new))
                            }
                        });
                        let io = hyper_util::rt::TokioIo::new(stream);
                        if let Err(e) = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await {
                            tracing::debug!("a function's connection to yun's API ended: {e}");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!("accepting on a function's yun API failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}
