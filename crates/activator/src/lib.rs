//! The routing table of live revisions, and bringing a revision into memory when a request
//! finds it cold, whether it is a wasm component or a process function.
//!
//! The control plane tells the activator which revision of each function serves; the gateway
//! asks it, per request, for that revision ready to run. Only the first request after a deploy
//! or a restart takes the cold path (load precompiled code from disk, or compile it if the
//! cache misses); the rest is a map lookup. It does not decide routes from URLs (the router
//! does) and it does not run guests (the runtime does).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::OnceCell;
use yun_runtime_process::{ProcessConfig, ProcessRevision, ProcessRuntime};
use yun_runtime_wasm::{CompileError, CompileSandbox, LoadedRevision, RevisionConfig, Runtime};
use yun_store::BlobStore;
use yun_telemetry::{Counters, LogSink};
use yun_types::{Digest, Revision};

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

/// The revision that serves a function, loaded on first use.
pub struct Deployment {
    pub revision: Revision,
    loaded: OnceCell<Loaded>,
}

/// A revision ready to serve, by runtime.
#[derive(Clone)]
pub enum Loaded {
    Wasm(Arc<LoadedRevision>),
    Process(Arc<ProcessRevision>),
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
    table: RwLock<HashMap<String, Arc<Deployment>>>,
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
        }
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Routes the function's traffic to `revision`. Requests already holding the previous
    /// deployment finish on it.
    pub fn install(&self, revision: Revision) -> Arc<Deployment> {
        let deployment = Arc::new(Deployment { revision, loaded: OnceCell::new() });
        let name = deployment.revision.function.to_string();
        self.table.write().unwrap_or_else(|p| p.into_inner()).insert(name, deployment.clone());
        deployment
    }

    pub fn remove(&self, function: &str) {
        self.table.write().unwrap_or_else(|p| p.into_inner()).remove(function);
    }

    /// The deployment serving `function`, if any: the per-request lookup.
    pub fn lookup(&self, function: &str) -> Option<Arc<Deployment>> {
        self.table.read().unwrap_or_else(|p| p.into_inner()).get(function).cloned()
    }

    /// The deployment's revision ready to run. Concurrent cold requests share one load.
    pub async fn activate(&self, deployment: &Deployment) -> Result<Loaded, ActivateError> {
        deployment.loaded.get_or_try_init(|| self.load(&deployment.revision)).await.cloned()
    }

    /// `Err(why)` when this server cannot run process functions.
    pub fn process_runtime(&self) -> Result<&ProcessRuntime, &str> {
        self.process.as_deref().map_err(String::as_str)
    }

    /// Compiles an upload into the code cache, in the isolated compiler. On success the
    /// precompiled code for `digest` is in place; on failure nothing is.
    pub async fn precompile(&self, wasm: &Path, digest: &Digest) -> Result<(), CompileError> {
        let dest = self.blobs.compiled_path(self.runtime.fingerprint(), digest);
        let dir = dest.parent().expect("compiled paths have a parent");
        std::fs::create_dir_all(dir).map_err(|e| CompileError::Internal(e.to_string()))?;
        let tmp = dir.join(format!(".{}.{}.tmp", digest.hex(), std::process::id()));
        let result = self.sandbox.compile(wasm, &tmp).await;
        if result.is_ok() {
            Counters::incr(&self.counters.compilations);
            let persisted = std::fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .and_then(|()| std::fs::rename(&tmp, &dest))
                .and_then(|()| std::fs::File::open(dir)?.sync_all());
            if let Err(e) = persisted {
                let _ = std::fs::remove_file(&tmp);
                return Err(CompileError::Internal(format!("storing compiled code: {e}")));
            }
        } else {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    async fn load(&self, revision: &Revision) -> Result<Loaded, ActivateError> {
        let digest = &revision.spec.artifact;
        if let Some(process) = &revision.spec.process {
            // Nothing to load: the code is unpacked on disk and the first request starts a
            // process (or, in stdio mode, every request does).
            let code_dir = self.blobs.code_dir(digest);
            if !code_dir.is_dir() {
                return Err(ActivateError::MissingCode(digest.clone()));
            }
            let spec = &revision.spec;
            let config = ProcessConfig {
                function: revision.function.as_str().into(),
                revision: revision.number,
                code_dir,
                spec: process.clone(),
                env: spec.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                memory_bytes: spec.limits.memory_bytes,
                timeout: Duration::from_millis(spec.limits.timeout_ms),
                outbound: !spec.allow_outbound.is_empty(),
            };
            let runtime = self.process.clone().map_err(ActivateError::ProcessesDisabled)?;
            return Ok(Loaded::Process(Arc::new(ProcessRevision::new(runtime, config))));
        }
        let cwasm = self.blobs.compiled_path(self.runtime.fingerprint(), digest);
        let mut compiled_now = false;
        if !cwasm.exists() {
            let wasm = self.blobs.artifact_path(digest);
            if !wasm.exists() {
                return Err(ActivateError::MissingArtifact(digest.clone()));
            }
            tracing::info!(function = %revision.function, revision = revision.number, "no precompiled code for this engine; compiling");
            self.precompile(&wasm, digest).await?;
            compiled_now = true;
        }
        let loaded = LoadedRevision::load(&self.runtime, &cwasm, self.config(revision))
            .map_err(|e| ActivateError::Load(e.to_string()))?;
        if !compiled_now {
            Counters::incr(&self.counters.compiled_cache_hits);
        }
        tracing::debug!(function = %revision.function, revision = revision.number, "revision loaded");
        Ok(Loaded::Wasm(Arc::new(loaded)))
    }

    fn config(&self, revision: &Revision) -> RevisionConfig {
        let spec = &revision.spec;
        RevisionConfig {
            function: revision.function.as_str().into(),
            revision: revision.number,
            env: spec.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            allow_outbound: spec.allow_outbound.clone(),
            memory_bytes: spec.limits.memory_bytes,
            timeout: Duration::from_millis(spec.limits.timeout_ms),
            mode: spec.instance,
            max_reuse: self.policy.max_reuse,
            idle_timeout: self.policy.idle_timeout,
            log_sink: self.log_sink.clone(),
        }
    }
}
