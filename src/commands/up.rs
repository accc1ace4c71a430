//! `yun up`: check every flag, open the data directory, bind, and serve until SIGTERM/SIGINT.

use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use yun_activator::{Activator, InstancePolicy};
use yun_control_plane::{ApiLimits, Auth, ControlPlane, ControlPlaneParts};
use yun_gateway::{Gateway, GatewayLimits, Shutdown};
use yun_runtime_wasm::{CompileSandbox, Runtime, RuntimeConfig};
use yun_store::{BlobStore, RedbStore};
use yun_telemetry::{Counters, LogRetention, LogStore};

use crate::Global;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Address to serve functions and the API on; port 0 picks a free port.
    #[arg(long, env = "YUN_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Functions are also served on `NAME.<base-domain>`.
    #[arg(long, env = "YUN_BASE_DOMAIN", default_value = "localhost")]
    base_domain: String,
    /// Log history kept per function (e.g. 16Mi).
    #[arg(long, default_value = "16Mi", value_parser = parse_size)]
    log_max_size: u64,
    /// Log lines older than this are dropped (e.g. 7d).
    #[arg(long, default_value = "7d", value_parser = humantime::parse_duration)]
    log_max_age: Duration,
    /// Invocation records kept per function (the oldest go first).
    #[arg(long, default_value_t = 10_000)]
    records_max: u64,
    /// Invocation records older than this are dropped (e.g. 7d).
    #[arg(long, default_value = "7d", value_parser = humantime::parse_duration)]
    records_max_age: Duration,
    /// `off` records nothing per invocation: no invocation records, REPORT lines, metrics,
    /// usage or trace spans (the function's own log lines are kept). For measuring what
    /// recording costs (bench/), not for production: usage is then not metered.
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    recording: String,
    /// Address of the S3-compatible object storage API (`off`: no object storage).
    #[arg(long, env = "YUN_S3_LISTEN", default_value = "127.0.0.1:9000", value_parser = parse_s3_listen)]
    s3_listen: MaybeAddr,
    /// The region S3 clients sign for and buckets report.
    #[arg(long, env = "YUN_S3_REGION", default_value = "us-east-1")]
    s3_region: String,
    /// Address of the Redis-protocol endpoint over the key-value stores (`off`: none).
    /// Clients authenticate with `AUTH [STORE] TOKEN` (the admin token, or a function's).
    #[arg(long, env = "YUN_REDIS_LISTEN", default_value = "127.0.0.1:6380", value_parser = parse_s3_listen)]
    redis_listen: MaybeAddr,
    /// How long the key-value writer gathers writes into one fsynced commit (group commit);
    /// 0 commits as soon as no write is waiting. Acknowledged writes are always durable.
    #[arg(long, default_value = "200us", value_parser = humantime::parse_duration)]
    kv_group_commit: Duration,
    /// The most one SQL database may hold.
    #[arg(long, default_value = "1Gi", value_parser = parse_size)]
    sql_max_size: u64,
    /// How long one SQL request (all its statements) may run before it is rolled back.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    sql_timeout: Duration,
    /// Send a span of every invocation to this OpenTelemetry collector (OTLP/HTTP protobuf,
    /// e.g. http://127.0.0.1:4318).
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// Headers for the collector, `k1=v1,k2=v2` (for example an API key).
    #[arg(long, env = "OTEL_EXPORTER_OTLP_HEADERS", default_value = "")]
    otlp_headers: String,
    /// The `service.name` the spans carry.
    #[arg(long, env = "OTEL_SERVICE_NAME", default_value = "yun")]
    otlp_service_name: String,
    /// Wasm instances that may exist at once, across all functions.
    #[arg(long, default_value_t = 1000)]
    max_instances: u32,
    /// Open client connections.
    #[arg(long, default_value_t = 4096)]
    max_connections: usize,
    /// How long a reused instance stays warm without requests.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    instance_idle: Duration,
    /// Largest component upload accepted.
    #[arg(long, default_value = "256Mi", value_parser = parse_size)]
    max_artifact_size: u64,
    /// Memory (address space) the compiler of one upload may use beyond the loaded program.
    #[arg(long, default_value = "4Gi", value_parser = parse_size)]
    compile_memory: u64,
    /// Time the compiler of one upload may take.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    compile_timeout: Duration,
    /// On shutdown, how long in-flight requests get to finish.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    drain_timeout: Duration,
    /// Run process functions as plain child processes, without namespaces, cgroups or seccomp.
    /// For development on hosts that cannot isolate: any function can then read and kill
    /// anything yun can.
    #[arg(long)]
    insecure_no_sandbox: bool,
    /// Serve /metrics without the admin token (for a Prometheus on a trusted network).
    #[arg(long)]
    metrics_public: bool,
}

/// An address to listen on, or `off`.
#[derive(Clone, Copy, Debug)]
struct MaybeAddr(Option<SocketAddr>);

fn parse_s3_listen(s: &str) -> Result<MaybeAddr, String> {
    if s == "off" {
        return Ok(MaybeAddr(None));
    }
    s.parse().map(|a| MaybeAddr(Some(a))).map_err(|e| format!("{e}: give ADDR:PORT or off"))
}

fn parse_size(s: &str) -> Result<u64, String> {
    yun_types::parse_size(s)
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    init_tracing();
    if args.max_instances == 0 || args.max_connections == 0 {
        bail!("--max-instances and --max-connections must be at least 1");
    }
    if args.base_domain.trim_matches('.').is_empty() {
        bail!("--base-domain must not be empty");
    }
    let data_dir = global.data_dir()?;
    prepare_data_dir(&data_dir)?;

    let store = RedbStore::open(&data_dir.join("meta.redb")).with_context(|| {
        format!("opening the metadata store in {} (is another `yun up` using it?)", data_dir.display())
    })?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(data_dir.join("meta.redb"), std::fs::Permissions::from_mode(0o600))?;
    }
    let blobs = BlobStore::open(&data_dir.join("blobs")).context("opening the artifact store")?;
    let logs = Arc::new(
        LogStore::open(
            &data_dir.join("logs"),
            LogRetention { max_bytes_per_function: args.log_max_size, max_age: args.log_max_age },
        )
        .context("opening the log store")?,
    );
    let auth = Auth::load_or_create(&data_dir).context("reading the admin token")?;
    let runtime = Arc::new(Runtime::new(&RuntimeConfig { max_instances: args.max_instances })?);
    let counters = Arc::new(Counters::default());
    let sandbox = CompileSandbox {
        program: std::env::current_exe().context("locating the yun binary for the compiler child")?,
        args: vec!["__compile".into()],
        memory_limit: args.compile_memory,
        time_limit: args.compile_timeout,
    };
    // Wasm functions need no OS sandbox: a host that cannot isolate processes still serves them,
    // and says exactly why process functions are off.
    let isolation = yun_sandbox::Sandbox::new(yun_sandbox::SandboxConfig {
        helper_exe: std::env::current_exe().context("locating the yun binary for the sandbox helper")?,
        run_dir: sandbox_run_dir(&data_dir, !args.insecure_no_sandbox),
        isolate: !args.insecure_no_sandbox,
    })
    .await
    .map_err(|e| e.to_string());
    if args.insecure_no_sandbox {
        eprintln!(
            "WARNING: --insecure-no-sandbox: process functions run as plain child processes of yun, with its user, files and network. Never use this with code you do not trust."
        );
    }
    let sandbox_line = match &isolation {
        Ok(s) => s.describe(),
        Err(why) => format!("sandbox: unavailable, process functions are disabled: {why}"),
    };
    let process = isolation.map(|s| {
        yun_runtime_process::ProcessRuntime::new(
            Arc::new(s),
            logs.clone(),
            yun_runtime_process::ProcessLimits::default(),
        )
    });
    let activator = Arc::new(Activator::new(
        runtime,
        process,
        blobs.clone(),
        sandbox,
        logs.clone(),
        counters.clone(),
        InstancePolicy { idle_timeout: args.instance_idle, ..InstancePolicy::default() },
    ));

    // Secrets are sealed with the data directory's key: a key that is unreadable or too open is
    // an error now, not at the first deploy that needs it.
    let keyring = yun_control_plane::Keyring::open_or_create(&data_dir.join("secret.key"))
        .context("opening the secrets key")?;

    // Events (queues, topics, asynchronous invocations) in their own embedded store.
    let events =
        Arc::new(yun_events::EventStore::open(&data_dir.join("events.redb")).with_context(|| {
            format!("opening the event store in {} (is another `yun up` using it?)", data_dir.display())
        })?);

    let usage = Arc::new(
        yun_telemetry::Usage::open(&data_dir)
            .with_context(|| format!("reading usage in {}", data_dir.display()))?,
    );

    let recording = args.recording == "on";
    let records = if recording {
        let path = data_dir.join("records.redb");
        let retention = yun_telemetry::RecordRetention {
            max_per_function: args.records_max,
            max_age: args.records_max_age,
        };
        Some(Arc::new(yun_telemetry::Records::open(&path, retention).with_context(|| {
            format!("opening the invocation records {} (is another `yun up` using it?)", path.display())
        })?))
    } else {
        None
    };

    let traces = match &args.otlp_endpoint {
        Some(endpoint) if recording => {
            let headers = yun_traces::parse_headers(&args.otlp_headers).context("--otlp-headers")?;
            Some(Arc::new(
                yun_traces::Exporter::start(yun_traces::Config {
                    endpoint: endpoint.clone(),
                    headers,
                    service_name: args.otlp_service_name.clone(),
                    max_batch: 512,
                    interval: Duration::from_secs(1),
                    max_queue: 65_536,
                })
                .context("--otlp-endpoint")?,
            ))
        }
        _ => None,
    };

    let objects = match args.s3_listen.0 {
        Some(_) => {
            let root = data_dir.join("objects");
            Some(Arc::new(yun_storage::ObjectStore::open(&root).await.with_context(|| {
                format!("opening the object store in {} (is another `yun up` using it?)", root.display())
            })?))
        }
        None => None,
    };

    let kv_dir = data_dir.join("kv");
    let kv = yun_kv::Kv::open(
        &kv_dir,
        yun_kv::Config { group_commit: args.kv_group_commit, ..yun_kv::Config::default() },
    )
    .with_context(|| {
        format!("opening the key-value stores in {} (is another `yun up` using it?)", kv_dir.display())
    })?;
    let sql_dir = data_dir.join("sql");
    let sql = yun_sql::Sql::open(
        &sql_dir,
        yun_sql::Config {
            max_db_bytes: args.sql_max_size,
            timeout: args.sql_timeout,
            ..yun_sql::Config::default()
        },
    )
    .with_context(|| format!("opening the SQL databases in {}", sql_dir.display()))?;

    // Everything that can be checked has been; only now take the ports.
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    let s3_listener = match args.s3_listen.0 {
        Some(a) => {
            Some(tokio::net::TcpListener::bind(a).await.with_context(|| format!("binding --s3-listen {a}"))?)
        }
        None => None,
    };
    let s3_addr = s3_listener.as_ref().map(|l| l.local_addr()).transpose()?;
    let redis_listener = match args.redis_listen.0 {
        Some(a) => Some(
            tokio::net::TcpListener::bind(a).await.with_context(|| format!("binding --redis-listen {a}"))?,
        ),
        None => None,
    };
    let redis_addr = redis_listener.as_ref().map(|l| l.local_addr()).transpose()?;
    let storage = match (&objects, s3_addr) {
        (Some(store), Some(a)) => Some(yun_control_plane::Storage {
            store: store.clone(),
            keys: Arc::new(store.keys()),
            s3_url: format!("http://{a}"),
            s3_addr: a,
            region: args.s3_region.clone(),
        }),
        _ => None,
    };
    let (trigger, shutdown) = Shutdown::new();
    let invoker = Arc::new(yun_gateway::GatewayInvoker::new(auth.clone()));
    activator.set_local(invoker.clone());
    if let Some(a) = redis_addr {
        invoker.set_redis(a);
    }
    let triggers = yun_triggers::Triggers::new(
        Arc::new(yun_events::Queues::new(events)),
        invoker.clone(),
        shutdown.receiver(),
    );
    let control = Arc::new(ControlPlane::new(ControlPlaneParts {
        store: Arc::new(store),
        blobs,
        activator: activator.clone(),
        logs: logs.clone(),
        counters: counters.clone(),
        auth,
        public_url: format!("http://{addr}"),
        limits: ApiLimits { max_artifact_bytes: args.max_artifact_size, ..ApiLimits::default() },
        shutdown: shutdown.receiver(),
        keyring,
        router: Arc::new(yun_control_plane::LiveRouter::new(&args.base_domain)),
        triggers,
        metrics: Arc::new(yun_telemetry::Metrics::new()),
        usage: usage.clone(),
        records: records.clone(),
        recording,
        storage,
        kv: Some(kv.clone()),
        sql: Some(sql),
        metrics_public: args.metrics_public,
        data_dir: data_dir.clone(),
    }));
    let restored = control.restore().await.context("restoring functions from the data directory")?;
    control.spawn_rollout_controller();
    control.spawn_storage_tasks();
    let redis_task = redis_listener.map(|l| {
        let policy = control.clone();
        let credentials = move |user: Option<&str>, token: &str| {
            policy.redis_store(user, token).map(|store| yun_redis::Grant::new(store, true))
        };
        let endpoint = Arc::new(yun_redis::RedisEndpoint::new(kv.clone(), Arc::new(credentials)));
        let config =
            yun_resp::Config { max_connections: args.max_connections, ..yun_resp::Config::default() };
        let mut stop = shutdown.receiver();
        tokio::spawn(yun_redis::serve(l, endpoint, config, async move {
            let _ = stop.wait_for(|s| *s).await;
        }))
    });
    let gateway = Arc::new(
        Gateway::new(
            activator,
            control,
            counters,
            GatewayLimits {
                max_connections: args.max_connections,
                max_inflight: args.max_instances as usize,
                drain_timeout: args.drain_timeout,
                ..GatewayLimits::default()
            },
        )
        .with_traces(traces.clone()),
    );
    // Stored events reach functions through the gateway, in-process.
    invoker.attach(&gateway);

    let flushed = logs.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            if let Err(e) = logs.sweep(yun_types::now_ms()) {
                tracing::warn!("log retention sweep failed: {e}");
            }
        }
    });
    // Log lines are buffered; this bounds how late they reach the files.
    let periodic = flushed.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tick.tick().await;
            if let Err(e) = periodic.flush() {
                tracing::warn!("writing log lines failed: {e}");
            }
        }
    });
    // Metered use: written when it changed, off the request path.
    let metered = usage.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            tick.tick().await;
            let u = metered.clone();
            if let Ok(Err(e)) = tokio::task::spawn_blocking(move || u.flush()).await {
                tracing::warn!("writing usage failed: {e}");
            }
        }
    });
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
        else {
            tracing::error!("cannot install signal handlers");
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("shutting down: finishing in-flight requests");
        trigger.trigger();
    });

    let s3_task = match (s3_listener, &objects) {
        (Some(l), Some(store)) => {
            let server = yun_storage::S3Server {
                store: store.clone(),
                keys: Arc::new(store.keys()),
                region: args.s3_region.clone(),
                max_connections: args.max_connections,
            };
            let mut stop = shutdown.receiver();
            Some(tokio::spawn(yun_storage::serve(l, server, async move {
                let _ = stop.wait_for(|s| *s).await;
            })))
        }
        _ => None,
    };

    println!("{sandbox_line}");
    if let Some(a) = s3_addr {
        println!("s3 api on http://{a} (region {})", args.s3_region);
    }
    if let Some(a) = redis_addr {
        println!("redis api on redis://{a}");
    }
    println!(
        "yun {} listening on http://{addr} ({restored} functions, data in {})",
        env!("CARGO_PKG_VERSION"),
        data_dir.display()
    );
    yun_gateway::run(listener, gateway, shutdown).await?;
    if let Some(task) = s3_task {
        match task.await {
            Ok(Err(e)) => tracing::warn!("the S3 API stopped with an error: {e}"),
            Err(e) => tracing::warn!("the S3 API task failed: {e}"),
            Ok(Ok(())) => {}
        }
    }
    if let Some(task) = redis_task {
        match task.await {
            Ok(Err(e)) => tracing::warn!("the Redis endpoint stopped with an error: {e}"),
            Err(e) => tracing::warn!("the Redis endpoint task failed: {e}"),
            Ok(Ok(())) => {}
        }
    }
    if let Err(e) = kv.close().await {
        tracing::warn!("closing the key-value stores failed: {e}");
    }
    if let Err(e) = flushed.flush() {
        tracing::warn!("writing the last log lines failed: {e}");
    }
    if let Err(e) = usage.flush() {
        tracing::warn!("writing usage failed: {e}");
    }
    if let Some(traces) = &traces {
        traces.shutdown().await;
    }
    if let Some(records) = &records
        && let Err(e) = records.flush()
    {
        tracing::warn!("writing invocation records failed: {e}");
    }
    println!("yun stopped");
    Ok(ExitCode::SUCCESS)
}

/// The data directory is yun's alone (0700); only the code of process functions inside it is
/// readable by others (sealed 0555/0444), which the sandbox's unprivileged users need.
fn prepare_data_dir(data_dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)
        .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
    Ok(())
}

/// Where sandboxes are assembled: a directory every instance's user-namespace root can reach,
/// which a data directory under a private parent (a 0700 home or temp dir) cannot promise. It
/// holds only empty mount points and uid-slot locks, and is shared by every yun on the host, so
/// two of them never hand out the same uid.
fn sandbox_run_dir(data_dir: &std::path::Path, isolate: bool) -> std::path::PathBuf {
    if !isolate {
        return data_dir.join("run").join("sandbox");
    }
    let run = std::path::Path::new("/run");
    if run.is_dir() { run.join("yun") } else { std::env::temp_dir().join("yun-run") }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("YUN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init();
}
