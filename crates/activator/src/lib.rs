//! The routing table of live revisions, and the cold path: bringing a revision's instances up
//! when a request finds none free, whether it is a wasm component or a process function.
//!
//! The control plane tells the activator how each function's traffic divides among its
//! revisions (its split, stickiness and tags) and how it scales; the gateway asks it, per
//! request, for the revision that request goes to, ready to run. Each revision has
//! a pool of instances (crates/pool) whose size a policy sets (the autoscaler and keep-alive,
//! `scaling.rs`): a request that finds no free instance waits in the pool's bounded queue while
//! one starts (a wasm revision is loaded from its precompiled code, or compiled if the cache
//! misses; a process is started in its sandbox). It does not decide routes from URLs (the
//! router does) and it does not run guests (the runtimes do).

mod scaling;
mod wasm;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use std::sync::Mutex;

use tokio::sync::OnceCell;
use yun_runtime_process::{ProcessConfig, ProcessRevision, ProcessRuntime};
use yun_runtime_wasm::{CompileError, CompileSandbox, RevisionConfig, Runtime};
use yun_store::BlobStore;
use yun_telemetry::{Counters, LogSink};
use yun_types::{Digest, KeepAliveKind, Revision, ScaleSettings, ScaleSpec};

pub use scaling::PolicyView;
pub use wasm::WasmRevision;
pub use yun_pool::{Stats, Temperature};

/// Instance policy the platform applies to every wasm revision.
#[derive(Clone, Debug)]
pub struct InstancePolicy {
    /// Requests one reused instance serves before it is replaced.
    pub max_reuse: usize,
    /// How long an idle reused instance stays warm.
    pub idle_timeout: Duration,
}

impl Default for InstancePolicy {
    fn default() -> Self {
        Self { max_reuse: 10_000, idle_timeout: Duration::from_secs(60) }
    }
}

/// One revision of a function that traffic or a tag routes to, and its pool, made on first use.
pub struct Deployment {
    pub revision: Revision,
    loaded: OnceCell<Loaded>,
    /// Read by the pool's policy at every tick, so `yun scale` applies without a redeploy.
    scale: Arc<Mutex<ScaleSettings>>,
    view: Arc<Mutex<PolicyView>>,
    /// What its invocations did since the rollout controller last looked.
    pub outcomes: yun_traffic::Outcomes,
    /// Its series in `/metrics`, made once rather than per invocation.
    pub metric_labels: yun_telemetry::FunctionLabels,
    secrets: Secrets,
}

/// A revision's secrets, resolved to values when its deployment is made.
#[derive(Clone, Default)]
pub struct Secrets {
    pub env: Vec<(String, String)>,
    /// Takes the values out of the guest's log lines.
    pub redactor: yun_secrets::Redactor,
    /// Identifies the values, so a rotated secret gets a fresh deployment and an unchanged one
    /// keeps its warm instances.
    pub fingerprint: u64,
}

impl Deployment {
    pub fn scale(&self) -> ScaleSettings {
        self.scale.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The pool's state, once the revision has been activated.
    pub fn stats(&self) -> Option<Stats> {
        self.loaded.get().map(|l| match l {
            Loaded::Wasm(w) => w.stats(),
            Loaded::Process(p) => p.stats(),
        })
    }

    pub fn policy_view(&self) -> PolicyView {
        self.view.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Deployment {
    fn apply_scale(&self, settings: ScaleSettings) {
        *self.scale.lock().unwrap_or_else(|p| p.into_inner()) = settings.clone();
        match self.loaded.get() {
            Some(Loaded::Wasm(w)) => w.set_scale(&settings),
            Some(Loaded::Process(p)) => p.set_scale(&settings),
            None => {}
        }
    }

    /// The guest's environment: its own variables, then its secrets.
    fn env(&self) -> Vec<(String, String)> {
        let spec = &self.revision.spec;
        let mut env: Vec<(String, String)> = spec.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        env.extend(self.secrets.env.iter().cloned());
        env
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        // Nothing routes here any more and the last request on it has finished.
        if let Some(Loaded::Wasm(w)) = self.loaded.get() {
            w.stop();
        }
    }
}

/// A function's live routing: how requests divide among its revisions, its tags, and a
/// deployment for every revision either routes to.
pub struct Service {
    pub function: yun_types::Function,
    split: yun_types::Split,
    deployments: HashMap<u64, Arc<Deployment>>,
}

/// Why a request found no revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Miss {
    UnknownTag(String),
}

impl Service {
    /// The deployment one request goes to: the tag's revision when the address names a tag,
    /// else one drawn from the split (by the sticky key when the request carries one).
    pub fn pick(&self, tag: Option<&str>, headers: &http::HeaderMap) -> Result<Arc<Deployment>, Miss> {
        let revision = match tag {
            Some(tag) => *self.function.tags.get(tag).ok_or_else(|| Miss::UnknownTag(tag.to_string()))?,
            None => {
                let key = self.function.sticky.as_ref().and_then(|s| s.key(headers));
                self.split.pick(key)
            }
        };
        Ok(self.deployments.get(&revision).expect("every routed revision has a deployment").clone())
    }

    pub fn deployment(&self, revision: u64) -> Option<&Arc<Deployment>> {
        self.deployments.get(&revision)
    }

    pub fn deployments(&self) -> impl Iterator<Item = &Arc<Deployment>> {
        self.deployments.values()
    }

    /// The deployment of the stable revision (all traffic's, when there is no split).
    pub fn primary(&self) -> Option<&Arc<Deployment>> {
        self.deployments.get(&self.function.active_revision).or_else(|| self.deployments.values().next())
    }
}

/// A new routing for a function, with the deployments it needs that did not exist before (to
/// be warmed before the routing takes traffic).
pub struct Prepared {
    service: Arc<Service>,
    pub fresh: Vec<Arc<Deployment>>,
}

/// A revision ready to serve, by runtime.
#[derive(Clone)]
pub enum Loaded {
    Wasm(Arc<WasmRevision>),
    Process(Arc<ProcessRevision>),
}

/// Scaling defaults by runtime. A wasm revision's one pool instance is its loaded code, and
/// `max_instances` caps how many wasm instances run its requests at once; for a process
/// function an instance is one process.
pub fn scale_defaults(revision: &Revision) -> ScaleSettings {
    match &revision.spec.process {
        Some(p) => ScaleSettings {
            min_instances: 0,
            max_instances: 10,
            concurrency: 1,
            idle_ms: p.idle_timeout_ms,
            keep_alive: KeepAliveKind::Fixed,
            max_queue: 100,
            queue_timeout_ms: 30_000,
            // Off unless asked for: a frozen instance still holds its memory.
            freeze_ms: 0,
            window_ms: 60_000,
        },
        None => ScaleSettings {
            min_instances: 0,
            max_instances: 100,
            concurrency: 1,
            // Reloading precompiled code takes milliseconds, so unloading pays sooner than
            // stopping a process does.
            idle_ms: 10 * 60_000,
            keep_alive: KeepAliveKind::Fixed,
            max_queue: 1000,
            queue_timeout_ms: 30_000,
            freeze_ms: 0,
            window_ms: 60_000,
        },
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ActivateError {
    #[error("the artifact {0} of this revision is missing from the data directory")]
    MissingArtifact(Digest),
    #[error("the code {0} of this revision is missing from the data directory")]
    MissingCode(Digest),
    #[error("process functions are disabled on this server: {0}")]
    ProcessesDisabled(String),
    #[error(transparent)]
    Compile(#[from] CompileError),
    #[error("{0}")]
    Load(String),
}

pub struct Activator {
    runtime: Arc<Runtime>,
    /// Why process functions cannot run here, when the host cannot isolate them.
    process: Result<Arc<ProcessRuntime>, String>,
    blobs: BlobStore,
    sandbox: CompileSandbox,
    log_sink: Arc<dyn LogSink>,
    counters: Arc<Counters>,
    policy: InstancePolicy,
    table: RwLock<HashMap<String, Arc<Service>>>,
    /// yun's API as functions reach it from inside; set once the gateway exists.
    local: std::sync::OnceLock<Arc<dyn yun_types::local::LocalApi>>,
}

impl Activator {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        runtime: Arc<Runtime>,
        process: Result<Arc<ProcessRuntime>, String>,
        blobs: BlobStore,
        sandbox: CompileSandbox,
        log_sink: Arc<dyn LogSink>,
        counters: Arc<Counters>,
        policy: InstancePolicy,
    ) -> Self {
        Self {
            runtime,
            process,
            blobs,
            sandbox,
            log_sink,
            counters,
            policy,
            table: RwLock::new(HashMap::new()),
            local: std::sync::OnceLock::new(),
        }
    }

    /// Lets functions call yun's API from inside (in-process for wasm, `YUN_API` for
    /// processes); revisions loaded from now on get it.
    pub fn set_local(&self, local: Arc<dyn yun_types::local::LocalApi>) {
        let _ = self.local.set(local);
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The routing `function` asks for, over `revisions` (every revision it routes to, with its
    /// secrets resolved). Deployments already serving a revision with the same secrets are
    /// kept, warm; the rest are new and returned in `fresh`. Nothing changes until [`Self::commit`].
    pub fn prepare(&self, function: &yun_types::Function, revisions: Vec<(Revision, Secrets)>) -> Prepared {
        let current = self.lookup(function.name.as_str());
        let settings_for = |revision: &Revision| function.scale.resolve(&scale_defaults(revision));
        let mut deployments = HashMap::new();
        let mut fresh = Vec::new();
        for (revision, secrets) in revisions {
            let number = revision.number;
            let kept = current
                .as_ref()
                .and_then(|c| c.deployments.get(&number))
                .filter(|d| d.secrets.fingerprint == secrets.fingerprint && d.revision == revision);
            let deployment = match kept {
                Some(d) => {
                    d.apply_scale(settings_for(&d.revision));
                    d.clone()
                }
                None => {
                    let d = Arc::new(Deployment {
                        metric_labels: yun_telemetry::FunctionLabels {
                            function: revision.function.to_string(),
                            revision: revision.number.to_string(),
                        },
                        scale: Arc::new(Mutex::new(settings_for(&revision))),
                        revision,
                        loaded: OnceCell::new(),
                        view: Arc::default(),
                        outcomes: yun_traffic::Outcomes::new(),
                        secrets,
                    });
                    fresh.push(d.clone());
                    d
                }
            };
            deployments.insert(number, deployment);
        }
        let split = function.split();
        for n in function.routed_revisions() {
            assert!(deployments.contains_key(&n), "revision {n} is routed to but was not given");
        }
        Prepared { service: Arc::new(Service { function: function.clone(), split, deployments }), fresh }
    }

    /// Puts a prepared routing in force. Requests already holding a deployment it drops finish
    /// on it.
    pub fn commit(&self, prepared: Prepared) -> Arc<Service> {
        let name = prepared.service.function.name.to_string();
        let service = prepared.service;
        self.table.write().unwrap_or_else(|p| p.into_inner()).insert(name, service.clone());
        service
    }

    /// New scaling settings for every deployment of the function, applied at once.
    pub fn set_scale(&self, function: &str, scale: &ScaleSpec) {
        let Some(service) = self.lookup(function) else { return };
        for deployment in service.deployments.values() {
            deployment.apply_scale(scale.resolve(&scale_defaults(&deployment.revision)));
        }
    }

    pub fn remove(&self, function: &str) {
        self.table.write().unwrap_or_else(|p| p.into_inner()).remove(function);
    }

    /// The function's live routing, if any: the per-request lookup.
    pub fn lookup(&self, function: &str) -> Option<Arc<Service>> {
        self.table.read().unwrap_or_else(|p| p.into_inner()).get(function).cloned()
    }

    /// Every function's live routing (for the rollout controller and status views).
    pub fn services(&self) -> Vec<Arc<Service>> {
        self.table.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    /// The deployment's revision ready to take requests: its pool, made on first use, with the
    /// scaler running. Instances start as requests need them (see `yun_pool::Pool::acquire`).
    pub async fn activate(&self, deployment: &Deployment) -> Result<Loaded, ActivateError> {
        deployment.loaded.get_or_try_init(|| self.load(deployment)).await.cloned()
    }

    /// Like [`Self::activate`], then starts what the function should have before its first
    /// request: its min instances, and for wasm its code, loaded (a deploy is activity, and the
    /// load is cheap).
    pub async fn prewarm(&self, deployment: &Deployment) -> Result<(), ActivateError> {
        let loaded = self.activate(deployment).await?;
        let min = deployment.scale().min_instances;
        match loaded {
            Loaded::Wasm(w) => w.prewarm().await?,
            Loaded::Process(p) if min > 0 => p.scale_to(min),
            Loaded::Process(_) => {}
        }
        Ok(())
    }

    /// `Err(why)` when this server cannot run process functions.
    pub fn process_runtime(&self) -> Result<&ProcessRuntime, &str> {
        self.process.as_deref().map_err(String::as_str)
    }

    /// Compiles an upload into the code cache, in the isolated compiler. On success the
    /// precompiled code for `digest` is in place; on failure nothing is.
    pub async fn precompile(&self, wasm: &Path, digest: &Digest) -> Result<(), CompileError> {
        wasm::precompile(&self.runtime, &self.blobs, &self.sandbox, &self.counters, wasm, digest).await
    }

    async fn load(&self, deployment: &Deployment) -> Result<Loaded, ActivateError> {
        let revision = &deployment.revision;
        let digest = &revision.spec.artifact;
        let policy = || scaling::ScalePolicy::new(deployment.scale.clone(), deployment.view.clone());
        let settings = deployment.scale();
        if let Some(process) = &revision.spec.process {
            // Nothing to load: the code is unpacked on disk; instances start as requests come.
            let code_dir = self.blobs.code_dir(digest);
            if !code_dir.is_dir() {
                return Err(ActivateError::MissingCode(digest.clone()));
            }
            let spec = &revision.spec;
            let mut env = deployment.env();
            if let Some(local) = self.local.get() {
                env.push(("YUN_TOKEN".into(), local.token_for(revision.function.as_str())));
            }
            let config = ProcessConfig {
                function: revision.function.as_str().into(),
                revision: revision.number,
                code_dir,
                spec: process.clone(),
                env,
                local: self.local.get().cloned(),
                memory_bytes: spec.limits.memory_bytes,
                timeout: Duration::from_millis(spec.limits.timeout_ms),
                outbound: !spec.allow_outbound.is_empty(),
                log_sink: self.sink_for(deployment),
                buckets: spec.buckets.clone(),
            };
            let runtime = self.process.clone().map_err(ActivateError::ProcessesDisabled)?;
            let process = Arc::new(ProcessRevision::new(runtime, config, &settings));
            process.spawn_scaler(policy(), scaling::TICK);
            return Ok(Loaded::Process(process));
        }
        let loader = wasm::Loader {
            runtime: self.runtime.clone(),
            blobs: self.blobs.clone(),
            sandbox: self.sandbox.clone(),
            counters: self.counters.clone(),
            revision: revision.clone(),
            config: Arc::new(self.config(deployment)),
        };
        let wasm = Arc::new(WasmRevision::new(loader, &settings));
        wasm.spawn_scaler(policy(), scaling::TICK);
        Ok(Loaded::Wasm(wasm))
    }

    /// Where the guest's lines go: the function's logs, with its secrets' values taken out.
    fn sink_for(&self, deployment: &Deployment) -> Arc<dyn LogSink> {
        if deployment.secrets.redactor.is_empty() {
            return self.log_sink.clone();
        }
        Arc::new(Redacting { inner: self.log_sink.clone(), redactor: deployment.secrets.redactor.clone() })
    }

    fn config(&self, deployment: &Deployment) -> RevisionConfig {
        let revision = &deployment.revision;
        let spec = &revision.spec;
        RevisionConfig {
            function: revision.function.as_str().into(),
            revision: revision.number,
            env: deployment.env(),
            allow_outbound: spec.allow_outbound.clone(),
            memory_bytes: spec.limits.memory_bytes,
            timeout: Duration::from_millis(spec.limits.timeout_ms),
            mode: spec.instance,
            max_reuse: self.policy.max_reuse,
            idle_timeout: self.policy.idle_timeout,
            log_sink: self.sink_for(deployment),
            local: self.local.get().cloned(),
        }
    }
}

struct Redacting {
    inner: Arc<dyn LogSink>,
    redactor: yun_secrets::Redactor,
}

impl LogSink for Redacting {
    fn emit(&self, mut entry: yun_telemetry::LogEntry) {
        if let std::borrow::Cow::Owned(line) = self.redactor.redact(&entry.line) {
            entry.line = line;
        }
        self.inner.emit(entry);
    }
}
